"""Multi-step regression by a forecaster that feeds its own predictions back (the shared part).

``task = "autoregressive"`` (:mod:`rnnkit.tasks.autoregressive`) and ``task = "seq2seq"``
(:mod:`rnnkit.tasks.seq2seq`) are multi-step regression (``windows.target_length = K > 1``) whose
models are :class:`rnnkit.models.forecasters.AutoregressiveForecaster` or
:class:`rnnkit.models.forecasters.Seq2SeqForecaster` instead of layers ending in ``Dense(K)``. Everything
else is the regression task's multi-step shape: the same data path, windows and scaler, the same
baselines (persistence repeated K times, ``repeat_last_day``, the training mean of each step,
``linear``), scored by the same code into the same ``metrics.json`` keys and table columns (MAE
over every step, step 1 and step K, skill against persistence), and the same ``predict`` columns
(one per step).

A model is given as one recurrent layer, the forecaster is built around it::

    [[models]]
    name = "autoregressive GRU"
    layers = [{type = "GRU", units = 32}]     # SimpleRNN, LSTM or GRU; units only

``windows.residual`` (or the model's ``residual``) makes each step predict the change from the
value before it. The forecasters feed each prediction back as the next input row, so the first
target must be the window's next row (``horizon = sampling_rate``).

Known future inputs: the columns ``Day sin``/``Day cos`` and ``Year sin``/``Year cos``
(``data.derived = ["time"]``), when among the features, are a :class:`rnnkit.models.forecasters.Clock`:
advanced exactly at every step (rotated in data units: the run's scaler standardises them),
never predicted. Their period in window rows comes from the data's step and ``sampling_rate``.

The model saved is the forecaster itself, with its architecture (``get_config``: features,
target_length, units, layer, clock with its scaling, residual) in ``model.json``; :meth:`Forecaster.rebuild` builds
it back from there.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Any, ClassVar, Protocol

import pandas as pd
from torch import nn

from rnnkit.config import ExperimentConfig, ModelConfig, TrainingConfig
from rnnkit.datasets.jena import DAY_S, YEAR_S
from rnnkit.errors import RnnkitError
from rnnkit.models.forecasters import Clock
from rnnkit.tasks.base import check_one_recurrent_layer
from rnnkit.tasks.regression import Regression
from rnnkit.tasks.series import Prepared, load_frame, prepare, require_windows

# (sin column, cos column, period in seconds): the known future inputs of data.derived = ["time"]
CLOCK_COLUMNS = (("Day sin", "Day cos", DAY_S), ("Year sin", "Year cos", YEAR_S))


def clock_of(prepared: Prepared) -> Clock | None:
    """The clock of the prepared data's time columns (standardised by its scaler), or None without them.

    The period of a pair in window rows is its period in seconds over the seconds between two
    window rows (the data's median step times ``windows.sampling_rate``): 24 for the day on hourly rows.
    """
    features = prepared.features
    step = pd.Series(prepared.frame.index).diff().median()
    if not isinstance(step, pd.Timedelta) or pd.isna(step) or step <= pd.Timedelta(0):
        return None  # rows without a regular clock: nothing can be advanced
    row_seconds = step.total_seconds() * prepared.config.windows.sampling_rate
    pairs: list[tuple[int, int, float]] = []
    mean: list[float] = []
    std: list[float] = []
    scaler = prepared.scaler
    for sin, cos, seconds in CLOCK_COLUMNS:
        if sin in features and cos in features:
            i, j = features.index(sin), features.index(cos)
            pairs.append((i, j, seconds / row_seconds))
            mean += [float(scaler.mean[scaler.column_index(sin)]), float(scaler.mean[scaler.column_index(cos)])]
            std += [float(scaler.std[scaler.column_index(sin)]), float(scaler.std[scaler.column_index(cos)])]
    return Clock(pairs, mean, std) if pairs else None


def recurrent_spec(spec: ModelConfig) -> tuple[str, int]:
    """``(layer, units)`` of a forecaster's one recurrent layer ``[{type = "GRU", units = 32}]``."""
    layer = spec.layers[0]
    return str(layer["type"]), int(layer["units"])


class Rebuildable(Protocol):
    """What a forecaster task needs of its model class: ``from_config``, for a run's ``model.json``."""

    @classmethod
    def from_config(cls, config: dict[str, Any]) -> nn.Module: ...


class Forecaster(Regression):
    """Multi-step regression whose models are one kind of feedback forecaster (see the module docstring).

    Subclasses name the kind (``forecaster``: its class, as ``model.json`` names it) and build it (:meth:`make`).
    """

    forecaster: ClassVar[type[Rebuildable]]
    reads_known_future = False  # a forecaster that feeds back whole rows must predict every input column

    @classmethod
    def check_config(cls, config: ExperimentConfig) -> None:
        """K > 1 steps from the window's next row; each model one recurrent layer (type and units); then
        the regression task's multi-step checks (baselines that forecast every step, no stateful path)."""
        require_windows(config)
        where = f"task = {cls.name!r}"
        w = config.windows
        if w.target_length < 2:
            raise ValueError(
                f"windows.target_length: {where} forecasts several steps, each fed back; it needs "
                f"target_length >= 2, got {w.target_length}"
            )
        if w.horizon != w.sampling_rate:
            raise ValueError(
                f"windows.horizon must equal windows.sampling_rate with {where}: the first forecast "
                f"is the window's next row, which the forecaster feeds back (got horizon {w.horizon}, "
                f"sampling_rate {w.sampling_rate})"
            )
        check_one_recurrent_layer(config, f"{where} builds the forecaster", 32)
        super().check_config(config)

    # --- the models
    def clock(self) -> Clock | None:
        return clock_of(self.prepared)

    def make(self, layer: str, units: int, residual: bool) -> nn.Module:
        """The untrained forecaster for the prepared data."""
        raise NotImplementedError

    def build(self, spec: ModelConfig) -> nn.Module:
        layer, units = recurrent_spec(spec)
        residual = self.config.windows.residual if spec.residual is None else spec.residual
        return self.make(layer, units, residual)

    def rebuild(self, description: dict[str, Any]) -> nn.Module:
        config = description.get("config")
        cls = str(description.get("class", ""))
        if not isinstance(config, dict) or cls.rsplit(".", 1)[-1] != self.forecaster.__name__:
            raise RnnkitError(
                f"cannot rebuild a model of class {cls} for task = {self.name!r} "
                f"(its models are {self.forecaster.__name__})"
            )
        try:
            return self.forecaster.from_config(config)
        except (TypeError, ValueError, KeyError) as e:
            raise RnnkitError(f"the model description of class {cls} does not build: {e}") from None

    def train_data(self, training: TrainingConfig) -> tuple[Any, Any]:
        return self.prepared.windows["train"], self.prepared.windows["val"]

    def metadata(self, spec: ModelConfig) -> dict[str, Any]:
        return {**super().metadata(spec), "task": self.name}

    # --- scores and documents
    def score(self, model: nn.Module, training: TrainingConfig | None = None) -> dict[str, Any]:
        return super().score(
            self.scored(model, self.prepared.target_index), None
        )  # never stateful (the config refuses it)

    def document(self, results: dict[str, dict[str, Any]]) -> dict[str, Any]:
        return {"task": self.name, **super().document(results)}

    def finish(self, out: Path, baselines: dict[str, nn.Module], trained: Any, metrics: dict[str, Any]) -> None:
        models = {name: self.scored(model, self.prepared.target_index) for name, model in trained.models.items()}
        super().finish(out, baselines, replace(trained, models=models), metrics)

    def predict_table(
        self,
        run: str | Path,
        scaler: Any,
        name: str,
        model: nn.Module,
        description: dict[str, Any],
        data_paths: list[str],
    ) -> pd.DataFrame:
        features = list(description.get("metadata", {}).get("features", scaler.columns))
        scored = self.scored(model, features.index(self.config.data.target))
        return super().predict_table(run, scaler, name, scored, description, data_paths)

    def summaries(self, features: int | None = None) -> str:
        """Each forecaster built for the config's data: what it reads, feeds back and predicts, its parameters."""
        self.prepared = prepare(self.config, load_frame(self.config))
        self.scaler = self.prepared.scaler
        p = self.prepared
        blocks = [
            f"{self.config.name}: input_shape {p.input_shape} ({', '.join(p.features)}), {p.target_length} steps ahead"
        ]
        for spec in self.config.models:
            model = self.build(spec)
            params = sum(t.numel() for t in model.parameters())
            blocks.append(f"\n{spec.name}: {self.describe_model(model)}; {params:,} parameters")
        return "\n".join(blocks)

    def describe_model(self, model: nn.Module) -> str:
        """One line on a built forecaster (for ``rnnkit summary`` and the run's log)."""
        raise NotImplementedError

    def describe(self) -> str:
        clock = self.clock()
        names = self.prepared.features
        known = (
            "; known future inputs (advanced, never predicted): "
            + ", ".join(f"{names[s]}/{names[c]} (period {period:g} rows)" for s, c, period in clock.pairs)
            if clock is not None
            else "; no clock columns (Day sin/cos, Year sin/cos) among the features"
        )
        return super().describe() + f"\nforecaster: {self.name}{known}"
