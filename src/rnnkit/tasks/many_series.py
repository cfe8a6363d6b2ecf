"""Many series from Parquet: one model over every series, a value ahead of each window, scored in data units.

``task = "many_series"`` with ``[data] dataset = "parquet"``: ``paths`` names a Parquet file or a
folder (a long table: ``id_column``, ``time_column``, the value columns; or one file per series),
``target`` and ``features`` name value columns, ``scaling`` is ``"global"`` (one mean and std per
column over every series' training rows) or ``"series"`` (each series its own); ``id_embedding = k``
gives each series k learned numbers added to every step's inputs (:class:`SeriesEmbedding`). Every series is
split in time by ``data.split``; windows follow ``[windows]`` within each part of each series
(:mod:`rnnkit.data.many_series`). The rows stay on disk (:mod:`rnnkit.datasets.parquet`): memory
holds the index and the batch, not the table.

``metrics.json``: ``{"models": {name: {params, mae_val, mae_test, rmse_test, skill_test,
train_seconds, kind}}, "target", "units", "best", "series", "rows", "windows", "scaling"}``; MAE and
RMSE in the target's units (each window's prediction unscaled with its series' statistics), skill
against persistence on the same windows. ``scaling.json`` holds the statistics.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from rnnkit import baselines as bl
from rnnkit.config import ExperimentConfig, ModelConfig, TrainingConfig, build_layer
from rnnkit.data.many_series import SeriesScaler, SeriesWindows, part_bounds
from rnnkit.datasets.parquet import SeriesStore, read_parquet_series
from rnnkit.errors import RnnkitError
from rnnkit.io import write_json_atomic
from rnnkit.models import Sequential
from rnnkit.models.series_embedding import SeriesEmbedding
from rnnkit.results import best_model, format_table, seconds
from rnnkit.tasks.base import Task, check_baselines, stateful_anywhere
from rnnkit.tasks.series import PARTS, PART_NAMES, units_of

PARQUET_KEYS = ("id_column", "time_column", "scaling", "id_embedding")


class ManySeries(Task):
    """``task = "many_series"``: one global model over many series read from Parquet."""

    name = "many_series"
    scaled = False  # its statistics are per series: scaling.json, not scaler.json
    best_key, lowest = "mae_val", True
    baseline_names = ("persistence",)

    @classmethod
    def check_absent(cls, config: ExperimentConfig) -> None:
        data = config.data
        if data.dataset == "parquet":
            raise ValueError(f"data.dataset: 'parquet' is read by task = 'many_series', got task = {config.task!r}")
        for key in PARQUET_KEYS:
            if getattr(data, key) is not None:
                raise ValueError(f"data.{key}: applies to data.dataset = 'parquet' (task = 'many_series') only")

    @classmethod
    def check_config(cls, config: ExperimentConfig) -> None:
        data = config.data
        if data.dataset != "parquet":
            raise ValueError(f"data.dataset: task = 'many_series' reads 'parquet', got {data.dataset!r}")
        w = config.windows
        if w is None:
            raise ValueError("missing key 'windows' (task = 'many_series' cuts each series into windows)")
        if w.return_sequences or w.target_length != 1:
            raise ValueError(
                "windows: task = 'many_series' forecasts one value per window: return_sequences = false "
                "and target_length = 1"
            )
        if data.split_by != "rows":
            raise ValueError("data.split_by: task = 'many_series' splits each series' rows in time: it must be 'rows'")
        if "baselines" not in config.model_fields_set:
            config.baselines = list(cls.baseline_names)
        check_baselines(config, cls.baseline_names)
        if stateful_anywhere(config):
            raise ValueError(
                "training.stateful: task = 'many_series' trains on shuffled windows of many series; "
                "stateful streams are not made for it, got true"
            )
        if data.scaling is None:
            data.scaling = "global"

    def __init__(self, config: ExperimentConfig) -> None:
        super().__init__(config)
        self.store: SeriesStore | None = None  # after prepare()
        self.windows: dict[str, SeriesWindows] = {}
        self.series_scaler: SeriesScaler | None = None
        self._persistence: nn.Module | None = None

    # --- the data
    def prepare(self, data_paths: list[str] | None = None) -> None:
        data = self.config.data
        paths = list(data_paths or data.paths)
        if not paths:
            raise RnnkitError("data.dataset = 'parquet' needs data.paths (a Parquet file or folder) or --data")
        if data_paths:
            resolved = [str(Path(p).resolve()) for p in data_paths]
            self.config = self.config.model_copy(update={"data": data.model_copy(update={"paths": resolved})})
            data = self.config.data
        columns = list(dict.fromkeys([*(data.features or [data.target]), data.target]))
        self.store = read_parquet_series(
            paths, id_column=data.id_column or "id", time_column=data.time_column or "time", columns=columns
        )
        self.target_index = columns.index(data.target)
        bounds = np.array([part_bounds(int(n), data.split) for n in self.store.lengths], dtype=np.int64)
        ranges = {part: bounds[:, k : k + 2] for k, part in enumerate(PARTS)}
        self.series_scaler = SeriesScaler.fit(
            self.store, ranges["train"], per_series=data.scaling == "series", ids=self.store.ids
        )
        w = self.config.windows
        self.windows = {
            part: SeriesWindows(
                self.store,
                self.series_scaler,
                ranges[part],
                sequence_length=w.sequence_length,
                shift=w.shift,
                sampling_rate=w.sampling_rate,
                horizon=w.horizon,
                target_index=[self.target_index],
                part=PART_NAMES[part],
                with_series=data.id_embedding is not None,
            )
            for part in PARTS
        }

    @property
    def input_shape(self) -> tuple[int, int]:
        """The windows' shape: the value columns, then the series index when there is an id embedding."""
        extra = 1 if self.config.data.id_embedding else 0
        return (self.config.windows.sequence_length, len(self.store.columns) + extra)

    @property
    def network_shape(self) -> tuple[int, int]:
        """What the network reads: the value columns, then the series' embedding."""
        return (self.config.windows.sequence_length, len(self.store.columns) + (self.config.data.id_embedding or 0))

    def data_used(self) -> dict[str, Any] | None:
        return {"files": list(self.store.files), "series": len(self.store), "rows": self.store.n_rows}

    def describe(self) -> str:
        s, w = self.store, self.config.windows
        lines = [
            f"data: {len(s.files)} Parquet file(s), {len(s):,} series, {s.n_rows:,} rows x {len(s.columns)} "
            f"columns {s.columns}; target {self.config.data.target!r}; scaling {self.config.data.scaling}",
            f"windows: sequence_length {w.sequence_length}, shift {w.shift}, sampling_rate {w.sampling_rate}, "
            f"horizon {w.horizon}" + (", residual target (change from the last input)" if w.residual else ""),
        ]
        for part in PARTS:
            lines.append(f"  {PART_NAMES[part]:<10} {len(self.windows[part]):>9,} windows")
        return "\n".join(lines)

    # --- the models
    def baselines(self) -> dict[str, nn.Module]:
        self._persistence = bl.Persistence(self.target_index)
        return {"persistence": self._persistence}

    def build(self, spec: ModelConfig) -> nn.Module:
        try:
            net = Sequential(*[build_layer(s) for s in spec.layers], input_shape=self.network_shape)
        except ValueError as e:
            raise RnnkitError(f"model '{spec.name}': {e}") from None
        out = tuple(net.output_shapes[-1])
        if out != (1,):
            raise RnnkitError(
                f"model '{spec.name}' outputs shape {out} per example; the target needs (1,): end with Dense(1)"
            )
        dim = self.config.data.id_embedding
        model: nn.Module = SeriesEmbedding(net, len(self.store), dim) if dim else net
        residual = self.config.windows.residual if spec.residual is None else spec.residual
        return bl.ResidualTarget(model, self.target_index) if residual else model

    def rebuild(self, description: dict[str, Any]) -> nn.Module:
        config = description.get("config")
        cls = str(description.get("class", "")).rsplit(".", 1)[-1]
        if isinstance(config, dict) and cls == "ResidualTarget":
            return bl.ResidualTarget(_network(config["model"]), config["target_index"])
        if isinstance(config, dict) and cls == "SeriesEmbedding":
            return _network(config)
        return super().rebuild(description)

    def train_data(self, training: TrainingConfig) -> tuple[Any, Any]:
        return self.windows["train"], self.windows["val"]

    def metadata(self, spec: ModelConfig) -> dict[str, Any]:
        return {
            "name": spec.name,
            "task": self.name,
            "features": list(self.store.columns) + (["series index"] if self.config.data.id_embedding else []),
            "target": self.config.data.target,
            "input_shape": list(self.input_shape),
            "windows": self.config.windows.model_dump(),
            "scaling": self.config.data.scaling,
        }

    # --- scores
    def score(self, model: nn.Module, training: TrainingConfig | None = None) -> dict[str, Any]:
        """MAE and RMSE in data units on val and test, and skill against persistence on the same windows."""
        if self._persistence is None:
            self.baselines()
        out: dict[str, Any] = {}
        was_training = model.training
        model.eval()
        try:
            for part in ("val", "test"):
                out.update(self._scores(model, part))
        finally:
            model.train(was_training)
        return out

    def _scores(self, model: nn.Module, part: str, batch_size: int = 1024) -> dict[str, float]:
        windows = self.windows[part]
        sums = np.zeros(3)  # |error|, error², |persistence error| in data units
        n = 0
        with torch.no_grad():
            for start in range(0, len(windows), batch_size):
                idx = torch.arange(start, min(len(windows), start + batch_size))
                x, y = windows.batch(idx)
                mean, std = windows.scaler.stats(windows.series_of(idx))
                m, s = mean[:, self.target_index], std[:, self.target_index]
                truth = y[:, 0].double().numpy() * s + m
                pred = model(x).reshape(len(idx)).double().numpy() * s + m
                last = self._persistence(x).reshape(len(idx)).double().numpy() * s + m
                sums += [np.abs(pred - truth).sum(), ((pred - truth) ** 2).sum(), np.abs(last - truth).sum()]
                n += len(idx)
        mae, rmse, base = sums[0] / n, float(np.sqrt(sums[1] / n)), sums[2] / n
        return {
            f"mae_{part}": float(mae),
            f"rmse_{part}": rmse,
            f"skill_{part}": float(1 - mae / base) if base else 0.0,
        }

    def summary(self, result: dict[str, Any]) -> str:
        return f"MAE val {result['mae_val']:.3f}, test {result['mae_test']:.3f} {units_of(self.config.data.target)}"

    @property
    def loss_name(self) -> str:
        return f"{self.config.training.loss} (scaled units)"

    def document(self, results: dict[str, dict[str, Any]]) -> dict[str, Any]:
        kept = ("params", "mae_val", "mae_test", "rmse_test", "skill_test", "train_seconds", "kind")
        models = {name: {k: r[k] for k in kept if k in r} for name, r in results.items()}
        return {
            "task": self.name,
            "models": models,
            "target": self.config.data.target,
            "units": units_of(self.config.data.target),
            "best": best_model(models, self.best_key, lowest=self.lowest),
            "config": self.config.name,
            "series": len(self.store),
            "rows": self.store.n_rows,
            "windows": {part: len(self.windows[part]) for part in PARTS},
            "scaling": self.config.data.scaling,
            "data_used": self.data_used(),
        }

    def finish(self, out: Path, baselines: dict[str, nn.Module], trained: Any, metrics: dict[str, Any]) -> None:
        """``scaling.json``: the series ids and the statistics the windows were scaled with."""
        write_json_atomic(out / "scaling.json", {"ids": self.store.ids, **self.series_scaler.to_dict()})

    # --- reading runs back
    @classmethod
    def table(cls, metrics: dict[str, Any]) -> str:
        units = metrics.get("units") or "units"
        rows = [
            {
                "model": name,
                "params": m["params"],
                f"MAE val ({units})": m["mae_val"],
                f"MAE test ({units})": m["mae_test"],
                "skill test": f"{100 * m['skill_test']:+.1f}%",
                "seconds": seconds(m["train_seconds"]),
            }
            for name, m in metrics["models"].items()
        ]
        return format_table(rows)

    @classmethod
    def best_line(cls, name: str, scores: dict[str, Any]) -> str:
        return f"\nbest by validation MAE: {name} (test skill {100 * scores['skill_test']:+.1f}% against persistence)"

    def summaries(self, features: int | None = None) -> str:
        columns = features or len(self.config.data.features or [1])
        shape = (self.config.windows.sequence_length, columns + (self.config.data.id_embedding or 0))
        blocks = [f"{self.config.name}: input_shape {shape}"]
        for spec in self.config.models:
            blocks += [
                f"\n{spec.name}",
                Sequential(*[build_layer(s) for s in spec.layers], input_shape=shape).summary(),
            ]
        return "\n".join(blocks)

    def describe_windows(self, data_paths: list[str] | None = None) -> str:
        self.prepare(data_paths)
        return self.describe()


def _network(config: dict[str, Any]) -> nn.Module:
    """A saved network: a Sequential, or a SeriesEmbedding around one (its config has ``series`` and ``dim``)."""
    if "series" in config and "dim" in config:
        return SeriesEmbedding(Sequential.from_config(config["model"]), int(config["series"]), int(config["dim"]))
    return Sequential.from_config(config)


TASK = ManySeries
