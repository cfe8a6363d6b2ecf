"""``task = "quantile"``: forecast quantiles of the target (e.g. 0.1, 0.5, 0.9) with the pinball loss.

A probabilistic forecast on the regression path (same data, windows, residual target): the model
ends with ``Dense(Q)``, one output per level of ``[quantile] levels`` (residual: the last value is
added to each, as :class:`rnnkit.baselines.MultiStepResidualTarget` does over K steps), and trains
on :func:`rnnkit.training.losses.pinball`. Scored on validation and test:

- the median (level 0.5) like any forecast: ``mae``, ``rmse``, ``skill`` against persistence;
- the interval between the lowest and highest level (0.1-0.9: 80%): ``coverage`` (share of
  targets inside it) and ``width`` (mean, data units); ``pinball`` (data units).

The baseline ``persistence`` is the last value with the *empirical* interval of its training
errors: level q adds the q-quantile of (target − last value) over the training windows (the
median column adds nothing, so its point forecast is persistence itself).

``rnnkit predict`` gives a column per level.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
from torch import nn

from rnnkit import baselines as bl
from rnnkit import intervals
from rnnkit.config import ExperimentConfig, ModelConfig, QuantileConfig, TrainingConfig
from rnnkit.errors import RnnkitError
from rnnkit.models import Sequential
from rnnkit.results import best_model, format_table, seconds
from rnnkit.tasks.base import default_loss_and_baselines, losses_of, require_loss, stateful_anywhere
from rnnkit.tasks.regression import Regression, step_truth, with_truth
from rnnkit.tasks.series import data_counts, data_used, require_windows, units_of
from rnnkit.training import predict
from rnnkit.training.losses import pinball
from rnnkit.training.metrics import regression_metrics


class EmpiricalInterval(nn.Module):
    """A point forecaster plus fixed offsets, one per level: ``(batch, 1) -> (batch, Q)``.

    Args:
        point: a module ``(batch, T, features) -> (batch, 1)`` (e.g. persistence).
        offsets: ``(Q,)``, added to the point forecast (scaled units).

    Example:
        >>> m = EmpiricalInterval(bl.Persistence(0), torch.tensor([-1.0, 0.0, 2.0]))
        >>> m(torch.tensor([[[3.0], [5.0]]])).tolist()
        [[4.0, 5.0, 7.0]]
    """

    def __init__(self, point: nn.Module, offsets: torch.Tensor) -> None:
        super().__init__()
        self.point = point
        self.register_buffer("offsets", torch.as_tensor(offsets, dtype=torch.float32).reshape(-1))

    @classmethod
    def fit(cls, point: nn.Module, windows: Any, levels: list[float]) -> EmpiricalInterval:
        """Offsets = the levels' quantiles of the training errors (target − point); 0 at the median."""
        errors = (windows.y.reshape(-1, 1) - predict(point, windows, 1024).reshape(-1, 1)).double().reshape(-1)
        offsets = torch.quantile(errors, torch.tensor(levels, dtype=torch.float64))
        offsets[torch.tensor(levels) == 0.5] = 0.0
        return cls(point, offsets.float())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.point(x).reshape(x.shape[0], 1) + self.offsets.to(x.dtype)


def quantile_scores(
    output: torch.Tensor,
    target: torch.Tensor,
    levels: list[float],
    *,
    scale: float,
    offset: float,
    persistence: torch.Tensor,
) -> dict[str, float]:
    """The median's MAE/RMSE/skill, the outer interval's coverage and width, and the pinball loss (data units).

    Example:
        >>> out = torch.tensor([[0.0, 1.0, 2.0], [0.0, 1.0, 2.0]])   # levels 0.1, 0.5, 0.9
        >>> s = quantile_scores(out, torch.tensor([[1.5], [3.0]]), [0.1, 0.5, 0.9], scale=2.0, offset=0.0,
        ...                     persistence=torch.tensor([[0.5], [1.0]]))
        >>> s["mae"], s["coverage"], s["width"]    # |0.5|·2, |2|·2 -> 2.5; 1 of 2 inside [0, 2]; (2 − 0)·2
        (2.5, 0.5, 4.0)
    """
    median = levels.index(0.5)
    out = output.double().reshape(len(output), len(levels))
    y = target.double().reshape(-1)
    point = regression_metrics(
        y, out[:, median], persistence=persistence.double().reshape(-1), scale=scale, offset=offset
    )
    low, high = out[:, 0], out[:, -1]
    return {
        **point,
        "coverage": float(((y >= low) & (y <= high)).double().mean()),
        "width": float((high - low).mean()) * scale,
        "pinball": float(pinball(out, y.reshape(-1, 1), levels)) * scale,
    }


class Quantile(Regression):
    """``task = "quantile"``: the quantile forecasters of the config and persistence with its empirical interval."""

    name = "quantile"
    settings_key = "quantile"
    baseline_names = ("persistence",)  # with the empirical interval of its training errors
    reads_known_future = False  # not built for it yet

    @classmethod
    def check_config(cls, config: ExperimentConfig) -> None:
        """Its [quantile] levels, the pinball loss, persistence only, one value per window."""
        require_windows(config)
        if config.quantile is None:
            config.quantile = QuantileConfig()
        default_loss_and_baselines(config, "pinball", cls.baseline_names)
        require_loss(config, "pinball")
        wrong = [b for b in config.baselines if b not in cls.baseline_names]
        if wrong:
            raise ValueError(
                f"baselines for task = 'quantile' must be among ['persistence'] (it has an empirical "
                f"interval), got {wrong}"
            )
        w = config.windows
        if w.return_sequences or w.target_length > 1:
            raise ValueError(
                "windows: task = 'quantile' forecasts one value per window (target_length = 1, "
                "return_sequences = false)"
            )
        if stateful_anywhere(config):
            raise ValueError("training.stateful: stateful training has no quantile path yet, got true")

    @classmethod
    def check_absent(cls, config: ExperimentConfig) -> None:
        """The quantile settings and the pinball loss under any other task."""
        super().check_absent(config)
        for key, loss in losses_of(config):
            if loss == "pinball":
                raise ValueError(f"{key} 'pinball' needs task = 'quantile', got task = {config.task!r}")

    @property
    def levels(self) -> list[float]:
        return list(self.config.quantile.levels)

    def baselines(self) -> dict[str, nn.Module]:
        persistence = bl.Persistence(self.prepared.target_index)
        self._persistence = persistence
        self._baselines = {
            "persistence": EmpiricalInterval.fit(persistence, self.prepared.windows["train"], self.levels)
        }
        return self._baselines

    def build(self, spec: ModelConfig) -> nn.Module:
        net = self.network(spec)
        q = len(self.levels)
        out = tuple(net.output_shapes[-1])
        if out != (q,):
            raise RnnkitError(
                f"model '{spec.name}' outputs shape {out} per example; {q} quantile levels need "
                f"({q},): end with Dense({q})"
            )
        residual = self.config.windows.residual if spec.residual is None else spec.residual
        return bl.MultiStepResidualTarget(net, self.prepared.target_index, (q,)) if residual else net

    def rebuild(self, description: dict[str, Any]) -> nn.Module:
        config = description.get("config")
        if isinstance(config, dict) and str(description.get("class", "")).endswith(".MultiStepResidualTarget"):
            return bl.MultiStepResidualTarget(
                Sequential.from_config(config["model"]), config["target_index"], tuple(config["output_shape"])
            )
        return super().rebuild(description)

    def trainer_options(self) -> dict[str, Any]:
        return {"quantiles": self.levels}

    def describe_epoch(self, training: TrainingConfig) -> Any:
        return None

    def score(self, model: nn.Module, training: TrainingConfig | None = None) -> dict[str, Any]:
        if self._baselines is None:
            self.baselines()
        prepared = self.prepared
        out: dict[str, Any] = {}
        for part in ("val", "test"):
            windows = prepared.windows[part]
            s = quantile_scores(
                predict(model, windows, 1024),
                windows.y,
                self.levels,
                scale=prepared.scale,
                offset=prepared.offset,
                persistence=predict(self._persistence, windows, 1024),
            )
            out.update({f"{k}_{part}": v for k, v in s.items()})
        median = self.levels.index(0.5)  # conformal intervals around the median, beside the quantile interval
        out.update(intervals.run_scores(self.config, model, prepared, point=lambda o: o[:, median : median + 1]))
        return out

    def summary(self, result: dict[str, Any]) -> str:
        units = units_of(self.config.data.target)
        return (
            f"median MAE val {result['mae_val']:.3f}, test {result['mae_test']:.3f} {units}; interval coverage "
            f"val {result['coverage_val']:.3f}, test {result['coverage_test']:.3f}"
        )

    @property
    def loss_name(self) -> str:
        return f"pinball over {self.levels} (scaled units)"

    def document(self, results: dict[str, dict[str, Any]]) -> dict[str, Any]:
        config = self.config
        kept = (
            "params",
            "mae_val",
            "mae_test",
            "rmse_test",
            "skill_test",
            "coverage_val",
            "coverage_test",
            "width_val",
            "width_test",
            "pinball_val",
            "pinball_test",
            "train_seconds",
            "kind",
            "members",
        )
        models = {name: {**{k: r[k] for k in kept if k in r}, **intervals.kept(r)} for name, r in results.items()}
        used = data_used(self.prepared.frame)
        return {
            "task": "quantile",
            **intervals.document(config),
            "models": models,
            "target": config.data.target,
            "units": units_of(config.data.target),
            "levels": self.levels,
            "interval": [self.levels[0], self.levels[-1]],
            "best": best_model(models, self.best_key, lowest=self.lowest),
            "config": config.name,
            **data_counts(self.prepared),
            **({"data_used": used} if used else {}),
        }

    def finish(self, out: Path, baselines: dict[str, nn.Module], trained: Any, metrics: dict[str, Any]) -> None:
        """No predictions plot yet for quantiles; the conformal calibration where [intervals] asks for it."""
        intervals.write(out, metrics)

    @classmethod
    def table(cls, metrics: dict[str, Any]) -> str:
        units = metrics.get("units") or "units"
        low, high = metrics["interval"]
        share = f"{100 * (high - low):g}%"
        rows = [
            {
                "model": name,
                "params": m["params"],
                f"median MAE val ({units})": m["mae_val"],
                f"median MAE test ({units})": m["mae_test"],
                "skill test": f"{100 * m['skill_test']:+.1f}%",
                f"{share} coverage val": m["coverage_val"],
                f"{share} coverage test": m["coverage_test"],
                f"width test ({units})": m["width_test"],
                **intervals.table_columns(m, units),
                "seconds": seconds(m["train_seconds"]),
            }
            for name, m in metrics["models"].items()
        ]
        return "\n".join(
            [
                format_table(rows) + f"\ninterval: levels {low:g} to {high:g} ({share} if calibrated)",
                *(f"conformal {line} (around the median)" for line in intervals.notes(metrics)),
            ]
        )

    @classmethod
    def best_line(cls, name: str, scores: dict[str, Any]) -> str:
        return (
            f"\nbest by validation median MAE: {name} (test skill {100 * scores['skill_test']:+.1f}%, "
            f"interval coverage {scores['coverage_test']:.3f})"
        )

    draws_forecasts = False  # the report draws forecast weeks of point forecasts only

    def predict_table(
        self,
        run: str | Path,
        scaler: Any,
        name: str,
        model: nn.Module,
        description: dict[str, Any],
        data_paths: list[str],
    ) -> pd.DataFrame:
        """One row per window: model, last input time, target time, a column per level (sorted: they never
        cross), the truth and persistence; ``attrs["score"]`` scores the median, ``attrs["note"]`` the sort."""
        table, output, std, mean = self.predictions_on(scaler, name, model, description, data_paths)
        values = output.detach().numpy().reshape(len(table), -1) * std + mean
        order = np.argsort(self.levels)
        raw = values[:, order]
        # the heads of a quantile model are trained apart and may cross; sorting each row keeps them ordered
        crossed = int((np.diff(raw, axis=1) < 0).any(axis=1).sum())
        ordered = np.sort(raw, axis=1)
        levels = [self.levels[k] for k in order]
        for k, level in enumerate(levels):
            table[f"predicted {self.config.data.target} q{level:g}"] = ordered[:, k]
        median = min(range(len(levels)), key=lambda k: abs(levels[k] - 0.5))
        column = f"predicted {self.config.data.target} q{levels[median]:g}"
        intervals.add_columns(
            table,
            intervals.read(run, name),
            {column: table[column].to_numpy()},  # around the median
            *step_truth(table, 1, self.config.windows),
        )
        table = with_truth(table, column, self.config.data.target, name)
        table.attrs["note"] = (
            f"quantiles sorted in each row so that they never cross ({crossed:,} of {len(table):,} rows had crossed)"
        )
        return table


TASK = Quantile
