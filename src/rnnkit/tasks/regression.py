"""Regression on a series: a value ahead of each window, scored in data units against baselines.

The target shape decides its part of the config check (the baselines that have that shape, what
it cannot train yet), the model's output, its residual wrapper, the baselines, the extra scores and
the prediction columns; each shape is one class below, chosen from ``config.windows`` by
:func:`shape_of` (the first in ``SHAPES`` whose ``applies`` holds). A new shape is one class and
one entry in ``SHAPES``:

- :class:`PerStep` (``windows.return_sequences``): a target for every input step, ``(T, 1)``;
- :class:`MultiStep` (``windows.target_length = K > 1``): the next K rows, ``(K,)`` or ``(K, 1)``;
- :class:`OneStep`: one value, ``(1,)``.

``metrics.json``: ``{"models": {name: {params, mae_val, mae_test, rmse_test, skill_test,
train_seconds, kind, ...the shape's keys}}, "target", "units", "best", "config", "windows", "rows",
"return_sequences", "target_length", ...}``; ``best`` is the trained model with the lowest
validation MAE.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import pandas as pd
import torch
from torch import nn

from rnnkit import baselines as bl
from rnnkit import intervals, published
from rnnkit.config import ExperimentConfig, ModelConfig, TrainingConfig, WindowConfig, build_layer
from rnnkit.errors import RnnkitError
from rnnkit.models import Sequential
from rnnkit.results import best_model, format_table, seconds
from rnnkit.tasks.base import Task, check_baselines, losses_of, stateful_anywhere
from rnnkit.tasks.series import (
    Prepared,
    ahead,
    data_counts,
    data_used,
    describe_prepared,
    describe_windows,
    load_frame,
    new_windows,
    prepare,
    require_windows,
    rows_per_day,
    units_of,
    window_summaries,
    with_data_paths,
)
from rnnkit.training import predict, score
from rnnkit.training.metrics import last_step_scores, multistep_scores

BASELINES: tuple[str, ...] = ("persistence", "seasonal_persistence", "mean", "linear", "naive_dense", "repeat_last_day")

# The course's "naive" fully connected network on the flattened window (a baseline that trains).
NAIVE_DENSE = ModelConfig(
    name="naive_dense",
    layers=[{"type": "Flatten"}, {"type": "Dense", "units": 12, "activation": "relu"}, {"type": "Dense", "units": 1}],
)


# --- a model's output against the target shape ----------------------------------------------------

# Layers whose output at step t reads inputs after t (or the whole window).
NON_CAUSAL = ("Bidirectional", "Flatten")


def check_causal(layers: Sequence[dict[str, Any]], where: str) -> None:
    """Refuse layer specs whose output at step t would read inputs after t.

    A per-step target's early steps (row t + horizon <= T - 1) lie inside the window itself, so a
    layer that reads the whole window would copy the answer instead of forecasting it.
    """
    for spec in layers:
        if spec.get("type") in NON_CAUSAL:
            raise RnnkitError(
                f"{where}: a per-step forecast (windows.return_sequences = true) must read only inputs up to its "
                f"step, but {spec['type']} reads the whole window, which holds the targets of the earlier steps; "
                f"use forward recurrent layers"
            )


def check_output(shape: Sequence[int], target_length: int, where: str) -> tuple[int, ...]:
    """The model output per example, ``(K,)`` or ``(K, 1)``, or a one-line error naming the key.

    Example:
        >>> check_output((24,), 24, "model 'GRU'")
        (24,)
    """
    out = tuple(int(s) for s in shape)
    k = target_length
    if out not in ((k,), (k, 1)):
        raise RnnkitError(
            f"{where} outputs shape {out} per example; windows.target_length = {k} needs "
            f"({k},) or ({k}, 1), a value per forecast step: end with Dense({k})"
        )
    return out


# --- target shapes ----------------------------------------------------------------------------------


class OneStep:
    """One value per window, ``horizon`` rows after its last input: outputs ``(1,)``."""

    wrapper_name: ClassVar[str] = "ResidualTarget"  # the residual model's class, as model.json names it
    baseline_names: ClassVar[tuple[str, ...]] = ("persistence", "seasonal_persistence", "mean", "linear", "naive_dense")

    @staticmethod
    def applies(windows: WindowConfig) -> bool:
        return True

    @classmethod
    def check_windows(cls, windows: WindowConfig) -> None:
        """Refuse [windows] settings that contradict this shape (before anything else is checked)."""

    @classmethod
    def check_config(cls, config: ExperimentConfig) -> None:
        """This shape's part of a regression config: its baselines, what it cannot train yet."""
        if "repeat_last_day" in config.baselines:
            raise ValueError(
                "baselines: 'repeat_last_day' forecasts several steps: it needs windows.target_length > 1 "
                "(one step: 'seasonal_persistence'), got target_length = 1"
            )

    def wrap(self, net: Sequential, spec: ModelConfig, prepared: Prepared, residual: bool) -> nn.Module:
        out = tuple(net.output_shapes[-1])
        if out != (1,):
            raise RnnkitError(
                f"model '{spec.name}' outputs shape {out} per example; the target needs (1,): end with Dense(1)"
            )
        return bl.ResidualTarget(net, prepared.target_index) if residual else net

    def rebuild(self, net: nn.Module, config: dict[str, Any]) -> nn.Module:
        return bl.ResidualTarget(net, config["target_index"])

    def baselines(self, config: ExperimentConfig, prepared: Prepared) -> dict[str, nn.Module]:
        L, F = prepared.input_shape
        out: dict[str, nn.Module] = {"persistence": bl.Persistence(prepared.target_index)}
        for name in config.baselines:
            if name == "seasonal_persistence":
                out[name] = seasonal_persistence(prepared)
            elif name == "mean":
                out[name] = bl.MeanBaseline.fit(prepared.windows["train"].y)
            elif name == "linear":
                out[name] = bl.LinearBaseline(L, F, ridge=1e-3).fit(prepared.windows["train"])
        return out

    def extra_scores(self, model: nn.Module, prepared: Prepared, part: str) -> dict[str, Any]:
        return {}

    def table_columns(self, m: dict[str, Any], units: str) -> dict[str, Any]:
        return {}

    def predict_columns(self, output: torch.Tensor, scale: float, offset: float, target: str) -> dict[str, np.ndarray]:
        return {f"predicted {target}": output.detach().numpy().reshape(-1) * scale + offset}


class PerStep(OneStep):
    """A target for every input step t (row t + horizon): outputs ``(T, 1)``; the model must be causal."""

    wrapper_name = "StepResidualTarget"
    baseline_names = ("persistence", "mean")  # the baselines with a per-step version

    @staticmethod
    def applies(windows: WindowConfig) -> bool:
        return windows.return_sequences

    @classmethod
    def check_windows(cls, windows: WindowConfig) -> None:
        if windows.target_length > 1:
            raise ValueError(
                f"windows.target_length must be 1 with windows.return_sequences = true (one target "
                f"per input step), got {windows.target_length}"
            )

    @classmethod
    def check_config(cls, config: ExperimentConfig) -> None:
        wrong = [b for b in config.baselines if b not in cls.baseline_names]
        if wrong:
            raise ValueError(
                f"baselines with windows.return_sequences = true (a target per step) must be among "
                f"{list(cls.baseline_names)} (they have a per-step version), got {wrong}"
            )
        if stateful_anywhere(config):
            raise ValueError(
                "training.stateful: stateful training has no per-step (windows.return_sequences) path yet, got true"
            )

    def wrap(self, net: Sequential, spec: ModelConfig, prepared: Prepared, residual: bool) -> nn.Module:
        out = tuple(net.output_shapes[-1])
        steps = prepared.config.windows.sequence_length
        if out != (steps, 1):
            raise RnnkitError(
                f"model '{spec.name}' outputs shape {out} per example; windows.return_sequences = true needs a value "
                f"per step, ({steps}, 1): give its last recurrent layer return_sequences = true and end with Dense(1)"
            )
        check_causal(spec.layers, f"model '{spec.name}'")
        return bl.StepResidualTarget(net, prepared.target_index) if residual else net

    def rebuild(self, net: nn.Module, config: dict[str, Any]) -> nn.Module:
        return bl.StepResidualTarget(net, config["target_index"])

    def baselines(self, config: ExperimentConfig, prepared: Prepared) -> dict[str, nn.Module]:
        # the config allows only the baselines with a per-step version
        steps: dict[str, nn.Module] = {"persistence": bl.StepPersistence(prepared.target_index)}
        if "mean" in config.baselines:
            steps["mean"] = bl.StepMean.fit(prepared.windows["train"].y)
        return steps

    def extra_scores(self, model: nn.Module, prepared: Prepared, part: str) -> dict[str, Any]:
        # the scores are over every step; here the last step alone, as many-to-one would predict
        return {
            f"mae_last_{part}": last_step_scores(
                model, prepared.windows[part], scale=prepared.scale, offset=prepared.offset
            )["mae"]
        }

    def table_columns(self, m: dict[str, Any], units: str) -> dict[str, Any]:
        return {f"MAE last step test ({units})": m["mae_last_test"]}

    def predict_columns(self, output: torch.Tensor, scale: float, offset: float, target: str) -> dict[str, np.ndarray]:
        # the last step's forecast lies horizon rows after the last input
        return super().predict_columns(output[:, -1], scale, offset, target)


class MultiStep(OneStep):
    """The next ``target_length = K`` rows from one window (the direct forecaster): outputs ``(K,)`` or ``(K, 1)``."""

    wrapper_name = "MultiStepResidualTarget"
    # persistence repeats the last value K times; repeat_last_day the last day's values; mean and linear
    # have one output per step
    baseline_names = ("persistence", "repeat_last_day", "mean", "linear")

    @staticmethod
    def applies(windows: WindowConfig) -> bool:
        return windows.target_length > 1

    @classmethod
    def check_config(cls, config: ExperimentConfig) -> None:
        k = config.windows.target_length
        wrong = [b for b in config.baselines if b not in cls.baseline_names]
        if wrong:
            raise ValueError(
                f"baselines with windows.target_length > 1 (a forecast of {k} steps) must be "
                f"among {list(cls.baseline_names)} (they forecast every step), got {wrong}"
            )
        if stateful_anywhere(config):
            raise ValueError(
                "training.stateful: stateful training has no multi-step (windows.target_length > 1) path yet, got true"
            )

    def wrap(self, net: Sequential, spec: ModelConfig, prepared: Prepared, residual: bool) -> nn.Module:
        shape = check_output(tuple(net.output_shapes[-1]), prepared.target_length, f"model '{spec.name}'")
        return bl.MultiStepResidualTarget(net, prepared.target_index, shape) if residual else net

    def rebuild(self, net: nn.Module, config: dict[str, Any]) -> nn.Module:
        return bl.MultiStepResidualTarget(net, config["target_index"], tuple(config["output_shape"]))

    def baselines(self, config: ExperimentConfig, prepared: Prepared) -> dict[str, nn.Module]:
        L, F = prepared.input_shape
        K = prepared.target_length
        ahead_: dict[str, nn.Module] = {"persistence": bl.RepeatLastPeriod(prepared.target_index, 1, K)}
        for name in config.baselines:
            if name == "repeat_last_day":
                ahead_[name] = repeat_last_day(prepared)
            elif name == "mean":  # the training mean of each step
                ahead_[name] = bl.MeanBaseline.fit(prepared.windows["train"].y)
            elif name == "linear":
                ahead_[name] = bl.LinearBaseline(L, F, outputs=K, ridge=1e-3).fit(prepared.windows["train"])
        return ahead_

    def extra_scores(self, model: nn.Module, prepared: Prepared, part: str) -> dict[str, Any]:
        # the scores are over every forecast step; here step by step
        return {
            f"mae_{part}_by_step": multistep_scores(
                model, prepared.windows[part], scale=prepared.scale, offset=prepared.offset
            )["mae_by_step"]
        }

    def table_columns(self, m: dict[str, Any], units: str) -> dict[str, Any]:
        by_step = m["mae_test_by_step"]
        return {f"MAE step 1 test ({units})": by_step[0], f"MAE step {len(by_step)} test ({units})": by_step[-1]}

    def predict_columns(self, output: torch.Tensor, scale: float, offset: float, target: str) -> dict[str, np.ndarray]:
        # one column per step; the table's target_time is the first step's
        values = output.detach().numpy().reshape(len(output), -1) * scale + offset
        return {f"predicted {target} step {k + 1}": values[:, k] for k in range(values.shape[1])}


SHAPES: tuple[type[OneStep], ...] = (PerStep, MultiStep, OneStep)  # the first that applies


def shape_of(windows: WindowConfig) -> OneStep:
    """The target shape of ``windows`` (see the module docstring)."""
    return next(shape for shape in SHAPES if shape.applies(windows))()


# --- baselines that need the data's clock -------------------------------------------------------------


def seasonal_persistence(prepared: Prepared) -> nn.Module:
    """Same time of day, on the latest day that the window holds before the target."""
    w = prepared.config.windows
    step = pd.Series(prepared.frame.index).diff().median()
    rows_per_day_ = pd.Timedelta("1D") / (step * w.sampling_rate)
    if not float(rows_per_day_).is_integer() or w.horizon % w.sampling_rate:
        raise RnnkitError(
            f"seasonal_persistence needs a whole number of window rows per day and a horizon that is a multiple "
            f"of sampling_rate; got {rows_per_day_:g} rows per day, horizon {w.horizon}, sampling_rate {w.sampling_rate}"
        )
    period, horizon = int(rows_per_day_), w.horizon // w.sampling_rate
    days_back = max(1, math.ceil(horizon / period))
    return bl.SeasonalPersistence(prepared.target_index, period=days_back * period, horizon=max(horizon, 1))


def repeat_last_day(prepared: Prepared) -> nn.Module:
    """Each forecast step's value at the same time of day on the latest day of the window."""
    w = prepared.config.windows
    step = pd.Series(prepared.frame.index).diff().median()
    rows_per_day_ = pd.Timedelta("1D") / (step * w.sampling_rate) if pd.notna(step) else float("nan")
    if not float(rows_per_day_).is_integer() or w.horizon % w.sampling_rate or w.horizon < 1:
        raise RnnkitError(
            f"baselines 'repeat_last_day' needs a whole number of window rows per day and a windows.horizon >= 1 "
            f"that is a multiple of sampling_rate; got {rows_per_day_:g} rows per day, horizon {w.horizon}, "
            f"sampling_rate {w.sampling_rate}"
        )
    period = int(rows_per_day_)
    if w.sequence_length < period:
        raise RnnkitError(
            f"baselines 'repeat_last_day' needs windows.sequence_length >= {period} (one day of window "
            f"rows at this data's step), got {w.sequence_length}"
        )
    return bl.RepeatLastDay(prepared.target_index, period, w.target_length, horizon=w.horizon // w.sampling_rate)


def make_baselines(config: ExperimentConfig, prepared: Prepared) -> dict[str, nn.Module]:
    """The fitted baselines of ``config.baselines`` for its target shape (persistence always: skill needs it)."""
    return shape_of(config.windows).baselines(config, prepared)


def forecast_table(task: Task, prepared: Prepared, models: dict[str, nn.Module], part: str = "test") -> pd.DataFrame:
    """The forecasts of ``models`` (name -> trained model) on the windows of ``part`` (``"train"``,
    ``"val"`` or ``"test"``), in data units, beside the truth and persistence: one row per window,
    ``target_time`` (the last target step's, for per-step and multi-step targets), ``true TARGET``,
    ``persistence TARGET`` and a column per model, named as the model. What the report draws;
    :meth:`Regression.forecasts` and ``rk.load_run(RUN).forecasts()`` give it."""
    if not task.draws_forecasts:
        raise RnnkitError(f"task = {task.name!r} has no point forecasts to set beside the truth")
    if part not in prepared.windows:
        raise RnnkitError(f"part must be one of {', '.join(repr(p) for p in prepared.windows)}, got {part!r}")
    windows = prepared.windows[part]
    target = task.config.data.target
    # persistence alone (the other baselines are fitted, and linear takes a while on a long series)
    persistence = make_baselines(task.config.model_copy(update={"baselines": []}), prepared)["persistence"]
    table = pd.DataFrame({"target_time": prepared.target_times(part)})
    table[f"true {target}"] = prepared.to_units(prepared.last_step(windows.y))
    table[f"persistence {target}"] = prepared.to_units(prepared.last_step(predict(persistence, windows, 1024)))
    for name, model in models.items():
        if any(getattr(m, "stateful", False) is True for m in model.modules()):
            raise RnnkitError(
                f"forecasts: the model {name!r} is stateful: it reads contiguous streams, not one window "
                "at a time; give the stateless models"
            )
        output = predict(task.scored(model, prepared.target_index), windows, 1024)
        table[name] = prepared.to_units(prepared.last_step(output))
    return table


# --- the task ---------------------------------------------------------------------------------------


class Regression(Task):
    """``task = "regression"``: forecast the target column, in data units, against persistence and the rest."""

    name = "regression"
    best_key, lowest = "mae_val", True
    draws_forecasts = True
    baseline_names = BASELINES
    reads_known_future = True  # windows.known_future: appended input columns (rk.data.make_windows)
    point_forecasts = True  # [intervals] (rnnkit.intervals) and ensembles (rnnkit.models.ensemble) apply

    @classmethod
    def check_config(cls, config: ExperimentConfig) -> None:
        """Windows; no cross-entropy; the rest is the target shape's (one-step, per-step, multi-step: SHAPES)."""
        require_windows(config)
        shape = shape_of(config.windows)
        shape.check_windows(config.windows)
        if "baselines" not in config.model_fields_set:
            config.baselines = [b for b in config.baselines if b in shape.baseline_names]
        for key, loss in losses_of(config):
            if loss == "cross_entropy":
                raise ValueError(f"{key} 'cross_entropy' needs task = 'classification', got task = {config.task!r}")
        check_baselines(config, BASELINES)
        if config.intervals is not None and stateful_anywhere(config):
            raise ValueError(
                "intervals: conformal intervals are calibrated on windows; a stateful model forecasts "
                "contiguous streams, got [intervals] with training.stateful = true"
            )
        if config.windows.known_future and stateful_anywhere(config):
            raise ValueError(
                f"windows.known_future: stateful training reads contiguous streams, which carry no "
                f"known-future columns, got {config.windows.known_future} with training.stateful = true"
            )
        shape.check_config(config)

    def __init__(self, config: ExperimentConfig) -> None:
        super().__init__(config)
        self.shape = shape_of(config.windows)
        self.prepared: Prepared | None = None
        self._baselines: dict[str, nn.Module] | None = None

    # --- the data
    def prepare(self, data_paths: list[str] | None = None) -> None:
        self.config = with_data_paths(self.config, data_paths)
        self.prepared = prepare(self.config, load_frame(self.config))
        self.scaler = self.prepared.scaler

    def data_used(self) -> dict[str, Any] | None:
        return data_used(self.prepared.frame)

    def describe(self) -> str:
        return describe_prepared(self.prepared)

    def check_same_data(self, scaler: Any, run: str | Path) -> None:
        mine = self.prepared.scaler
        if not np.allclose(mine.mean, scaler.mean) or not np.allclose(mine.std, scaler.std):
            raise RnnkitError(f"the data found now differ from the data of the run {run} (other training statistics)")

    # --- the models
    def specs(self) -> list[ModelConfig]:
        """The models a run trains, in order (the naive dense baseline first when asked for)."""
        return ([NAIVE_DENSE] if "naive_dense" in self.config.baselines else []) + list(self.config.models)

    def baselines(self) -> dict[str, nn.Module]:
        self._baselines = self.shape.baselines(self.config, self.prepared)
        return self._baselines

    def network(self, spec: ModelConfig) -> Sequential:
        """The layers of ``spec`` built for the prepared data's input shape."""
        try:
            return Sequential(*[build_layer(s) for s in spec.layers], input_shape=self.prepared.input_shape)
        except ValueError as e:
            raise RnnkitError(f"model '{spec.name}': {e}") from None

    def build(self, spec: ModelConfig) -> nn.Module:
        """The model of ``spec`` for the prepared data (wrapped to learn the change when residual)."""
        net = self.network(spec)
        residual = self.config.windows.residual if spec.residual is None else spec.residual
        return self.shape.wrap(net, spec, self.prepared, residual)

    def rebuild(self, description: dict[str, Any]) -> nn.Module:
        config = description.get("config")
        cls = str(description.get("class", ""))
        if isinstance(config, dict) and cls.rsplit(".", 1)[-1] == self.shape.wrapper_name:
            return self.shape.rebuild(Sequential.from_config(config["model"]), config)
        return super().rebuild(description)

    def train_data(self, training: TrainingConfig) -> tuple[Any, Any]:
        if training.stateful:
            return self.prepared.streams("train", training.batch_size), self.prepared.streams(
                "val", training.batch_size
            )
        return self.prepared.windows["train"], self.prepared.windows["val"]

    def describe_epoch(self, training: TrainingConfig) -> Any:
        """The validation MAE in data units, when the model trains on MAE (its val_loss, in scaled units)."""
        if training.loss != "mae":
            return None
        scale, units = self.prepared.scale, units_of(self.config.data.target)

        def reading(record: dict[str, Any]) -> str:
            return f"val MAE {record['val_loss'] * scale:.3f} {units}".rstrip() if "val_loss" in record else ""

        return reading

    def metadata(self, spec: ModelConfig) -> dict[str, Any]:
        p = self.prepared
        return {
            "name": spec.name,
            "features": p.features,
            "target": p.target,
            "input_shape": list(p.input_shape),
            "windows": self.config.windows.model_dump(),
        }

    # --- scores and documents
    def score(self, model: nn.Module, training: TrainingConfig | None = None) -> dict[str, Any]:
        """MAE, RMSE and skill on val and test; a stateful model (its ``training``) is scored on streams."""
        if self._baselines is None:
            self.baselines()
        persistence = self._baselines["persistence"]
        prepared = self.prepared
        stateful = training is not None and training.stateful
        batch_size = training.batch_size if stateful else 1024
        out: dict[str, Any] = {}
        for part in ("val", "test"):
            data = prepared.streams(part, batch_size) if stateful else prepared.windows[part]
            s = score(
                model,
                data,
                persistence=persistence,
                scale=prepared.scale,
                offset=prepared.offset,
                stateful=stateful,
                batch_size=batch_size,
            )
            out[f"mae_{part}"] = s["mae"]
            out[f"rmse_{part}"] = s["rmse"]
            out[f"skill_{part}"] = s["skill"]
            out.update(self.shape.extra_scores(model, prepared, part))
        if not stateful:  # a stateful model's forecasts come from streams, not windows
            out.update(intervals.run_scores(config=self.config, model=model, prepared=prepared))
        return out

    def summary(self, result: dict[str, Any]) -> str:
        return f"MAE val {result['mae_val']:.3f}, test {result['mae_test']:.3f} {units_of(self.config.data.target)}"

    @property
    def loss_name(self) -> str:
        return f"{self.config.training.loss} (scaled units)"

    def document(self, results: dict[str, dict[str, Any]]) -> dict[str, Any]:
        config, prepared = self.config, self.prepared
        kept = (
            "params",
            "mae_val",
            "mae_test",
            "rmse_test",
            "skill_test",
            "train_seconds",
            "kind",
            "mae_last_val",
            "mae_last_test",
            "mae_val_by_step",
            "mae_test_by_step",
            "members",
        )
        models = {name: {**{k: r[k] for k in kept if k in r}, **intervals.kept(r)} for name, r in results.items()}
        used = data_used(prepared.frame)
        return {
            "models": models,
            **intervals.document(config),
            "target": config.data.target,
            "units": units_of(config.data.target),
            "best": best_model(models, self.best_key, lowest=self.lowest),
            "config": config.name,
            **data_counts(prepared),
            **({"data_used": used} if used else {}),
            # per-step: mae/rmse/skill are over every step of every window; mae_last_* over the last step only
            "return_sequences": config.windows.return_sequences,
            # multi-step: mae/rmse/skill are over all target_length steps; mae_*_by_step step by step (step 1 first)
            "target_length": config.windows.target_length,
            **({"published": config.published.model_dump(mode="json")} if config.published else {}),
        }

    def finish(self, out: Path, baselines: dict[str, nn.Module], trained: Any, metrics: dict[str, Any]) -> None:
        """``predictions.png``: the first two test weeks of the best model and persistence."""
        from rnnkit import plots

        intervals.write(out, metrics)  # intervals.json: the calibration that predict and evaluate --data reuse
        prepared, best = self.prepared, metrics["best"]
        chosen = {**baselines, **{n: m for n, m in trained.models.items() if not trained.training[n].stateful}}
        chosen = {n: m for n, m in chosen.items() if n in (best, "persistence")}  # one model: the plot stays readable
        preds = {
            n: prepared.to_units(prepared.last_step(predict(m, prepared.windows["test"], 1024)))
            for n, m in chosen.items()
        }
        times = prepared.target_times("test")
        truth = prepared.to_units(prepared.last_step(prepared.windows["test"].y))
        shown = slice(0, min(len(times), 14 * rows_per_day(prepared)))  # two weeks
        plots.plot_predictions(
            times[shown],
            truth[shown],
            {n: v[shown] for n, v in preds.items() if n == best},
            out / "predictions.png",
            persistence=preds["persistence"][shown],
            title=f"{self.config.data.target}, {ahead(prepared)} ahead: the first test weeks"
            + (f" (best model by validation MAE: {best})" if best else ""),
            units=self.config.data.target,
        )

    # --- reading runs back
    @classmethod
    def table(cls, metrics: dict[str, Any]) -> str:
        """The comparison table: model, parameters, MAE val/test, the shape's columns, skill, seconds."""
        units = metrics.get("units") or "units"
        shape = shape_of(
            WindowConfig(
                sequence_length=1,
                return_sequences=metrics.get("return_sequences", False),
                target_length=metrics.get("target_length", 1),
            )
        )
        rows = []
        for name, m in metrics["models"].items():
            rows.append(
                {
                    "model": name,
                    "params": m["params"],
                    f"MAE val ({units})": m["mae_val"],
                    f"MAE test ({units})": m["mae_test"],
                    **shape.table_columns(m, units),
                    "skill test": f"{100 * m['skill_test']:+.1f}%",
                    **intervals.table_columns(m, units),
                    "seconds": seconds(m["train_seconds"]),
                }
            )
        table = format_table(published.add_columns(rows, metrics.get("published")))
        return "\n".join([table, *published.notes(metrics.get("published")), *intervals.notes(metrics)])

    @classmethod
    def best_line(cls, name: str, scores: dict[str, Any]) -> str:
        return f"\nbest by validation MAE: {name} (test skill {100 * scores['skill_test']:+.1f}% against persistence)"

    def predict_table(
        self,
        run: str | Path,
        scaler: Any,
        name: str,
        model: nn.Module,
        description: dict[str, Any],
        data_paths: list[str],
    ) -> pd.DataFrame:
        """One row per window: model, last input time, target time (the first step's), a column per output
        value, then the truth at the target time where the file holds it and persistence (the last input's
        value). ``table.attrs["score"]``: a one-line score against persistence when the truth is known."""
        table, output, std, mean = self.predictions_on(scaler, name, model, description, data_paths)
        predicted = self.shape.predict_columns(output, std, mean, self.config.data.target)
        for column, values in predicted.items():
            table[column] = values
        intervals.add_columns(
            table,
            intervals.read(run, name),
            predicted,  # lower/upper per level (intervals.json)
            *step_truth(table, len(predicted), self.config.windows),
        )
        return with_truth(table, next(iter(predicted)), self.config.data.target, name)

    def forecasts(self, models: dict[str, nn.Module], part: str = "test") -> pd.DataFrame:
        """The forecasts of trained ``models`` (name -> model) on ``part`` of the prepared data, beside
        the truth and persistence, in data units: ``target_time``, ``true TARGET``, ``persistence
        TARGET`` and a column per model (:func:`forecast_table`).

        Example::

            task.prepare()                         # then train gru on task.train_data(training)
            table = task.forecasts({"GRU(16)": gru})
            week = table[table.target_time < table.target_time[0] + pd.Timedelta(days=7)]
        """
        if self.prepared is None:
            raise RnnkitError("forecasts: the task has no data yet: call task.prepare() first")
        return forecast_table(self, self.prepared, models, part)

    def predictions_on(
        self, scaler: Any, name: str, model: nn.Module, description: dict[str, Any], data_paths: list[str]
    ) -> tuple[pd.DataFrame, torch.Tensor, float, float]:
        """The model's raw output on new data's windows, a table of their times, the target's std and mean."""
        config = self.config
        if any(getattr(m, "stateful", False) is True for m in model.modules()):
            raise RnnkitError(
                f"predict: the model {name!r} is stateful (it carries its state from one batch of "
                "contiguous streams to the next, so a window alone is not its input); predict with "
                "one of the run's stateless models (--model NAME)"
            )
        frame, windows = new_windows(config, scaler, name, description, data_paths)
        ti = scaler.column_index(config.data.target)
        last_rows = windows.last_rows.numpy()
        last = frame.index[last_rows]
        step = pd.Series(frame.index).diff().median()
        target_time = last + config.windows.horizon * step
        table = pd.DataFrame({"model": name, "last_input_time": last, "target_time": target_time})
        # the truth: the file's row at the target time, found by its timestamp (a gap between the last input
        # and the target moves it off `horizon` rows on); NaN where the file holds no row at that time
        target = frame[config.data.target].to_numpy(dtype=float)
        rows = frame.index.get_indexer(target_time)
        truth = np.where(rows >= 0, target[rows], np.nan)
        table["_truth"], table["_persistence"] = truth, target[last_rows]  # with_truth moves them to the end
        table.attrs["_rows"] = (frame.index, target, last_rows)  # step_truth: rolling intervals' errors per step
        return table, predict(model, windows.x, 1024), float(scaler.std[ti]), float(scaler.mean[ti])

    def summaries(self, features: int | None = None) -> str:
        return window_summaries(self.config, self.specs(), features)

    def describe_windows(self, data_paths: list[str] | None = None) -> str:
        return describe_windows(self.config, data_paths)


def step_truth(table: pd.DataFrame, steps: int, windows: Any) -> tuple[np.ndarray, tuple[np.ndarray, np.ndarray]]:
    """``(truth, (last_rows, target_rows))`` of the ``steps`` predicted columns (the last ``steps`` target steps),
    which rolling intervals need; popped from ``table.attrs``. Each step's truth is the file's row at its
    target time, found by timestamp (a gap before it moves it off ``offset`` rows on); NaN where the file
    holds no row at that time (it ends first, or the time falls in a gap); its target row is then the
    one by position (never known: its error is NaN)."""
    index, target, last_rows = table.attrs.pop("_rows")
    k = max(windows.target_length, steps)
    offsets = windows.horizon + np.arange(k)[-steps:] * windows.sampling_rate
    step = pd.Series(index).diff().median().to_timedelta64()
    expected = index.to_numpy()[last_rows][:, None] + offsets[None, :] * step  # (windows, steps)
    found = index.get_indexer(expected.reshape(-1)).reshape(expected.shape)
    truth = np.where(found >= 0, target[found], np.nan)
    rows = np.where(found >= 0, found, last_rows[:, None] + offsets[None, :])
    return truth, (last_rows, rows)


def with_truth(table: pd.DataFrame, predicted: str, target: str, name: str) -> pd.DataFrame:
    """``table`` with ``true TARGET`` (NaN where the file holds no row at the target time) and ``persistence TARGET``
    columns, and ``attrs["score"]``: the model's MAE against persistence's on the rows with a truth."""
    truth, persistence = table.pop("_truth").to_numpy(), table.pop("_persistence").to_numpy()
    table[f"true {target}"], table[f"persistence {target}"] = truth, persistence
    known = ~np.isnan(truth)
    if known.any():
        model_mae = float(np.abs(table[predicted].to_numpy()[known] - truth[known]).mean())
        persistence_mae = float(np.abs(persistence[known] - truth[known]).mean())
        skill = 1 - model_mae / persistence_mae if persistence_mae > 0 else float("nan")
        table.attrs["score"] = (
            f"score on the {int(known.sum()):,} windows whose target is in the file: {name} "
            f"MAE {model_mae:.3f}, persistence {persistence_mae:.3f} ({units_of(target)}), "
            f"skill {100 * skill:+.1f}%"
        )
    else:
        table.attrs["score"] = "no target time lies in the file: no score (the truth column is empty)"
    return table


TASK = Regression
