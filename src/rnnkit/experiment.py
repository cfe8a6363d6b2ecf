"""Experiments: a config becomes data, models, training, scores and a run folder.

This module wires the pieces together (datasets → split → scaling → windows → models →
Trainer → metrics → files); each piece lives in its own module and knows nothing of the others.

A run folder holds::

    config.json         the resolved config (every default filled in)
    scaler.json         the Standardizer fit on the training part
    metrics.json        {"models": {name: {params, mae_val, mae_test, rmse_test, skill_test, train_seconds}}, ...}
                        (windows.return_sequences: over every step, plus mae_last_val/test of the last step;
                        windows.target_length > 1: over every forecast step, plus mae_val/test_by_step)
    history.csv         loss per epoch of every trained model
    learning_curves.png, predictions.png
    models/<slug>/      model.safetensors + model.json, history.csv, result.json, checkpoint/
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
from torch import nn

from rnnkit import baselines as bl
from rnnkit import datasets
from rnnkit.datasets.jena import describe_source
from rnnkit.config import ExperimentConfig, ModelConfig, TrainingConfig, build_layer, parse_config
from rnnkit.data import Standardizer, Windows, make_windows, split, split_per_segment, stream_batches
from rnnkit.errors import RnnkitError
from rnnkit.io import load_weights, read_json, read_model_json
from rnnkit.models import Sequential
from rnnkit import multistep, published
from rnnkit.runs import (
    Log, baseline_results, best_model, finish_run, format_table, saved_model_results, slug,
    start_run, train_models,
)
from rnnkit.sequence_tasks import StepMean, StepPersistence, StepResidualTarget, check_causal, last_step_scores
from rnnkit.training import predict, score

PARTS = ("train", "val", "test")
# The course's "naive" fully connected network on the flattened window (a baseline that trains).
NAIVE_DENSE = ModelConfig(name="naive_dense", layers=[
    {"type": "Flatten"}, {"type": "Dense", "units": 12, "activation": "relu"}, {"type": "Dense", "units": 1}])
PART_NAMES = {"train": "training", "val": "validation", "test": "test"}


# --- data ----------------------------------------------------------------------------------------

def load_frame(config: ExperimentConfig, paths: list[str] | None = None) -> pd.DataFrame:
    """The series of ``config.data`` as a DataFrame (data units), with only the wanted columns."""
    data = config.data
    chosen = list(paths) if paths else list(data.paths)
    if data.dataset == "teddy":
        raise RnnkitError("data.dataset 'teddy' is a corpus of tagged sentences, not a series: it has no rows "
                          "or windows (task = 'tagging' reads it through rnnkit.tagging)")
    if data.dataset == "jena":
        frame = datasets.jena_climate(chosen or None, columns=data.columns, derived=data.derived, step=data.step,
                                      how="position" if data.gaps == "ignore" and data.how == "every" else data.how,
                                      source=data.source)
    else:
        if len(chosen) > 1:
            raise RnnkitError(f"the sunspots dataset reads one file, got {len(chosen)}")
        frame = datasets.sunspots(chosen[0] if chosen else None)
        if data.step > 1:
            frame = frame.iloc[data.step - 1 :: data.step] if data.how == "every" else _block_mean(frame, data.step)
    return select_columns(frame, data.features, data.target)


def _block_mean(frame: pd.DataFrame, step: int) -> pd.DataFrame:
    n = len(frame) // step * step
    blocks = frame.iloc[:n].to_numpy().reshape(-1, step, frame.shape[1]).mean(axis=1)
    return pd.DataFrame(blocks, index=frame.index[step - 1 : n : step], columns=frame.columns)


def select_columns(frame: pd.DataFrame, features: list[str] | None, target: str) -> pd.DataFrame:
    """Keep ``features`` (all columns when None) with the target among them (persistence needs it)."""
    columns = [str(c) for c in frame.columns]
    if target not in columns:
        raise RnnkitError(f"target column {target!r} is not in the data; its columns are {columns}")
    wanted = list(features) if features is not None else columns
    missing = [c for c in wanted if c not in columns]
    if missing:
        raise RnnkitError(f"data.features names columns the data does not have: {missing}; it has {columns}")
    if target not in wanted:
        wanted.append(target)
    out = frame[wanted]
    bad = out.columns[out.isna().any()].tolist()
    if bad:
        raise RnnkitError(f"the data holds NaN in columns {bad} after cleaning")
    return out


def units_of(column: str) -> str:
    """``"degC"`` for ``"T (degC)"``: the text in the column name's last parentheses."""
    match = re.search(r"\(([^()]*)\)\s*$", column)
    return match.group(1) if match else ""


@dataclass
class Prepared:
    """The data of an experiment, scaled and windowed per part (train, val, test)."""

    config: ExperimentConfig
    frame: pd.DataFrame
    scaler: Standardizer
    parts: dict[str, list[pd.DataFrame]]  # scaled, one frame per contiguous piece
    windows: dict[str, Windows]
    target_index: int

    @property
    def target(self) -> str:
        return self.config.data.target

    @property
    def features(self) -> list[str]:
        return [str(c) for c in self.frame.columns]

    @property
    def input_shape(self) -> tuple[int, int]:
        return (self.config.windows.sequence_length, len(self.features))

    @property
    def scale(self) -> float:
        return float(self.scaler.std[self.target_index])

    @property
    def offset(self) -> float:
        return float(self.scaler.mean[self.target_index])

    @property
    def per_step(self) -> bool:
        """A target for every input step (windows.return_sequences): outputs (batch, T, 1)."""
        return self.config.windows.return_sequences

    @property
    def steps(self) -> int:
        """Forecast steps K per window (windows.target_length): outputs (batch, K) or (batch, K, 1)."""
        return self.config.windows.target_length

    def to_units(self, values: torch.Tensor) -> np.ndarray:
        return values.detach().cpu().numpy().reshape(-1) * self.scale + self.offset

    def last_step(self, values: torch.Tensor) -> torch.Tensor:
        """Per-step values (batch, T, 1) or K forecast steps -> those of the last step; others unchanged."""
        if self.steps > 1:
            return values[:, -1]
        return values[:, -1] if self.per_step and values.dim() == 3 else values

    def target_times(self, part: str) -> pd.DatetimeIndex:
        """The timestamp of each target of ``part``'s windows."""
        index = pd.Index(np.concatenate([p.index.to_numpy() for p in self.parts[part]]))
        rows = self.windows[part].target_rows
        rows = rows[:, -1] if rows.dim() == 2 else rows  # per-step or multi-step targets: the last step's
        return pd.DatetimeIndex(index[rows.numpy()])

    def streams(self, part: str, batch_size: int):
        """Stateful batches of ``part``: contiguous streams, so row b of batch k+1 continues row b of batch k."""
        pieces = self.parts[part]
        piece = max(pieces, key=len)  # streams need one contiguous series: the longest piece
        w = self.config.windows
        try:
            return stream_batches(piece, batch_size, w.sequence_length, horizon=w.horizon, targets=self.target)
        except ValueError as e:
            raise RnnkitError(f"{PART_NAMES[part]} part: {e}") from None


def prepare(config: ExperimentConfig, frame: pd.DataFrame) -> Prepared:
    """Split in time, fit the scaler on the training part only, and cut each part into windows."""
    fractions = tuple(config.data.split)
    try:
        if config.data.split_by == "windows":
            split_parts = split_windows(frame, config)
        elif config.data.split_per_segment:
            split_parts = split_per_segment(frame, fractions)
        else:
            split_parts = tuple([piece] for piece in split(frame, fractions))
    except ValueError as e:
        raise RnnkitError(f"cannot split {len(frame)} rows by {list(fractions)}: {e}") from None
    pieces = dict(zip(PARTS, split_parts))
    scaler = Standardizer().fit(pd.concat(pieces["train"]))
    scaled = {p: [scaler.transform(piece) for piece in pieces[p]] for p in PARTS}
    w = config.windows
    windows: dict[str, Windows] = {}
    for part in PARTS:
        # A DataFrame keeps its own gaps; a list of pieces makes each piece a segment.
        data = scaled[part] if len(scaled[part]) > 1 else scaled[part][0]
        if config.data.gaps == "ignore":  # rows by position: no timestamps, one segment per piece
            data = ([p.reset_index(drop=True) for p in data] if isinstance(data, list)
                    else data.reset_index(drop=True))
        try:
            windows[part] = make_windows(
                data, w.sequence_length, shift=w.shift, sampling_rate=w.sampling_rate,
                horizon=w.horizon, targets=config.data.target, return_sequences=w.return_sequences,
                target_length=w.target_length,
            )
        except ValueError as e:
            rows = sum(len(p) for p in pieces[part])
            raise RnnkitError(
                f"the {PART_NAMES[part]} part ({rows} rows of {len(frame)}) yields no window: {e}. "
                f"The config '{config.name}' needs a longer series"
                + (" (the 2009-2016 benchmark file jena_climate_2009_2016.csv in RNNKIT_DATA_DIR)"
                   if config.data.dataset == "jena" else "")
            ) from None
    target_index = scaler.column_index(config.data.target)
    return Prepared(config, frame, scaler, scaled, windows, target_index)


def split_windows(frame: pd.DataFrame, config: ExperimentConfig) -> tuple[list[pd.DataFrame], ...]:
    """The course's split: the windows of the whole series, in order, split by ``data.split``.

    Each part is returned as the rows its windows span (from its first window's first input to its
    last window's last target), so parts overlap by a window's length at most and cutting windows
    within a part gives back exactly its windows. Rows are taken by position.
    """
    w = config.windows
    span = (w.sequence_length - 1) * w.sampling_rate + w.horizon + (w.target_length - 1) * w.sampling_rate + 1
    n = (len(frame) - span) // w.shift + 1 if len(frame) >= span else 0
    fractions = config.data.split
    counts = [int(fractions[0] * n), int(fractions[1] * n)]
    counts.append(n - sum(counts))
    if min(counts) < 1:
        raise ValueError(f"{n} windows of {span} rows cannot be split into {list(fractions)} with a window in each part")
    parts, first = [], 0
    for count in counts:
        start, stop = first * w.shift, (first + count - 1) * w.shift + span
        parts.append([frame.iloc[start:stop]])
        first += count
    return tuple(parts)


# --- models --------------------------------------------------------------------------------------

def build_model(spec: ModelConfig, prepared: Prepared) -> nn.Module:
    """The model of ``spec`` for the prepared data (wrapped to learn the change when residual)."""
    try:
        net = Sequential(*[build_layer(s) for s in spec.layers], input_shape=prepared.input_shape)
    except ValueError as e:
        raise RnnkitError(f"model '{spec.name}': {e}") from None
    out = tuple(net.output_shapes[-1])
    residual = prepared.config.windows.residual if spec.residual is None else spec.residual
    if prepared.per_step:
        steps = prepared.config.windows.sequence_length
        if out != (steps, 1):
            raise RnnkitError(
                f"model '{spec.name}' outputs shape {out} per example; windows.return_sequences = true needs a value "
                f"per step, ({steps}, 1): give its last recurrent layer return_sequences = true and end with Dense(1)")
        check_causal(spec.layers, f"model '{spec.name}'")
        return StepResidualTarget(net, prepared.target_index) if residual else net
    if prepared.steps > 1:  # the direct forecaster: every step at once
        shape = multistep.check_output(out, prepared.steps, f"model '{spec.name}'")
        return multistep.MultiStepResidualTarget(net, prepared.target_index, shape) if residual else net
    if out != (1,):
        raise RnnkitError(f"model '{spec.name}' outputs shape {out} per example; the target needs (1,): end with Dense(1)")
    return bl.ResidualTarget(net, prepared.target_index) if residual else net


def rebuild_model(description: dict[str, Any]) -> nn.Module:
    """A model from the ``model.json`` that :func:`save_model` wrote (architecture only)."""
    config = description.get("config")
    cls = str(description.get("class", ""))
    if not isinstance(config, dict):
        raise RnnkitError(f"model description has no architecture (class {cls})")
    if cls.endswith(".ResidualTarget"):
        return bl.ResidualTarget(Sequential.from_config(config["model"]), config["target_index"])
    if cls.endswith(".StepResidualTarget"):
        return StepResidualTarget(Sequential.from_config(config["model"]), config["target_index"])
    if cls.endswith(".MultiStepResidualTarget"):
        return multistep.MultiStepResidualTarget(Sequential.from_config(config["model"]), config["target_index"],
                                                 tuple(config["output_shape"]))
    if cls.endswith(".Sequential"):
        return Sequential.from_config(config)
    raise RnnkitError(f"cannot rebuild a model of class {cls}")


def make_baselines(config: ExperimentConfig, prepared: Prepared) -> dict[str, nn.Module]:
    """The fitted baselines of ``config.baselines`` (persistence is always scored: skill needs it)."""
    ti = prepared.target_index
    L, F = prepared.input_shape
    if prepared.per_step:  # the config allows only the baselines with a per-step version
        steps: dict[str, nn.Module] = {"persistence": StepPersistence(ti)}
        if "mean" in config.baselines:
            steps["mean"] = StepMean.fit(prepared.windows["train"].y)
        return steps
    if prepared.steps > 1:  # K forecast steps: the baselines that forecast every step
        K = prepared.steps
        ahead: dict[str, nn.Module] = {"persistence": multistep.persistence(ti, K)}
        for name in config.baselines:
            if name == "repeat_last_day":
                ahead[name] = repeat_last_day(prepared)
            elif name == "mean":  # the training mean of each step
                ahead[name] = bl.MeanBaseline.fit(prepared.windows["train"].y)
            elif name == "linear":
                ahead[name] = bl.LinearBaseline(L, F, outputs=K, ridge=1e-3).fit(prepared.windows["train"])
        return ahead
    out: dict[str, nn.Module] = {"persistence": bl.Persistence(ti)}
    for name in config.baselines:
        if name == "seasonal_persistence":
            out[name] = seasonal_persistence(prepared)
        elif name == "mean":
            out[name] = bl.MeanBaseline.fit(prepared.windows["train"].y)
        elif name == "linear":
            out[name] = bl.LinearBaseline(L, F, ridge=1e-3).fit(prepared.windows["train"])
    return out


def seasonal_persistence(prepared: Prepared) -> nn.Module:
    """Same time of day, on the latest day that the window holds before the target."""
    w = prepared.config.windows
    step = pd.Series(prepared.frame.index).diff().median()
    rows_per_day = pd.Timedelta("1D") / (step * w.sampling_rate)
    if not float(rows_per_day).is_integer() or w.horizon % w.sampling_rate:
        raise RnnkitError(
            f"seasonal_persistence needs a whole number of window rows per day and a horizon that is a multiple "
            f"of sampling_rate; got {rows_per_day:g} rows per day, horizon {w.horizon}, sampling_rate {w.sampling_rate}"
        )
    period, horizon = int(rows_per_day), w.horizon // w.sampling_rate
    days_back = max(1, math.ceil(horizon / period))
    return bl.SeasonalPersistence(prepared.target_index, period=days_back * period, horizon=max(horizon, 1))


def repeat_last_day(prepared: Prepared) -> nn.Module:
    """Each forecast step's value at the same time of day on the latest day of the window."""
    w = prepared.config.windows
    step = pd.Series(prepared.frame.index).diff().median()
    rows_per_day = pd.Timedelta("1D") / (step * w.sampling_rate) if pd.notna(step) else float("nan")
    if not float(rows_per_day).is_integer() or w.horizon % w.sampling_rate or w.horizon < 1:
        raise RnnkitError(
            f"baselines 'repeat_last_day' needs a whole number of window rows per day and a windows.horizon >= 1 "
            f"that is a multiple of sampling_rate; got {rows_per_day:g} rows per day, horizon {w.horizon}, "
            f"sampling_rate {w.sampling_rate}")
    period = int(rows_per_day)
    if w.sequence_length < period:
        raise RnnkitError(f"baselines 'repeat_last_day' needs windows.sequence_length >= {period} (one day of window "
                          f"rows at this data's step), got {w.sequence_length}")
    return multistep.RepeatLastDay(prepared.target_index, period, w.target_length, horizon=w.horizon // w.sampling_rate)


# --- running -------------------------------------------------------------------------------------

def _scores(model: nn.Module, prepared: Prepared, persistence: nn.Module,
            training: TrainingConfig | None = None) -> dict[str, float]:
    """MAE, RMSE and skill on val and test; a stateful model (its ``training``) is scored on streams."""
    stateful = training is not None and training.stateful
    batch_size = training.batch_size if stateful else 1024
    out: dict[str, float] = {}
    for part in ("val", "test"):
        data = prepared.streams(part, batch_size) if stateful else prepared.windows[part]
        s = score(model, data, persistence=persistence, scale=prepared.scale, offset=prepared.offset,
                  stateful=stateful, batch_size=batch_size)
        out[f"mae_{part}"] = s["mae"]
        out[f"rmse_{part}"] = s["rmse"]
        out[f"skill_{part}"] = s["skill"]
        if prepared.per_step:  # over every step above; here the last step alone, as many-to-one would predict
            out[f"mae_last_{part}"] = last_step_scores(model, prepared.windows[part], scale=prepared.scale,
                                                       offset=prepared.offset)["mae"]
        if prepared.steps > 1:  # over every forecast step above; here step by step
            out[f"mae_{part}_by_step"] = multistep.multistep_scores(
                model, prepared.windows[part], scale=prepared.scale, offset=prepared.offset)["mae_by_step"]
    return out


def with_data_paths(config: ExperimentConfig, data_paths: list[str] | None) -> ExperimentConfig:
    """``config`` reading ``data_paths`` instead (resolved, so the saved config names the files the run used)."""
    if not data_paths:
        return config
    resolved = [str(Path(p).resolve()) for p in data_paths]
    return config.model_copy(update={"data": config.data.model_copy(update={"paths": resolved})})


def trained_specs(config: ExperimentConfig) -> list[ModelConfig]:
    """The models a run trains, in order (the naive dense baseline first when asked for)."""
    return ([NAIVE_DENSE] if "naive_dense" in config.baselines else []) + list(config.models)


def run_experiment(
    config: ExperimentConfig,
    output: str | Path,
    *,
    data_paths: list[str] | None = None,
    epochs: int | None = None,
    resume: bool = False,
    progress: bool | None = None,
    log: Log = print,
) -> dict[str, Any]:
    """Train and score every model and baseline of ``config``; write the run folder ``output``.

    With ``resume=True`` the models that finished are read back and the one that was
    interrupted continues from its last checkpoint.

    Returns:
        The content of ``metrics.json``.
    """
    if config.task == "classification":  # labels, logits head, class weights: rnnkit.classification
        from rnnkit.classification import run_classification

        return run_classification(config, output, data_paths=data_paths, epochs=epochs, resume=resume,
                                  progress=progress, log=log)
    if config.task == "tagging":  # a tag per token of tagged sentences: rnnkit.tagging
        from rnnkit.tagging import run_tagging

        return run_tagging(config, output, epochs=epochs, resume=resume, progress=progress, log=log)
    config = with_data_paths(config, data_paths)
    prepared = prepare(config, load_frame(config))
    out = start_run(output, config, prepared.scaler, data_used(prepared.frame))
    units = units_of(config.data.target)
    log(describe_prepared(prepared))
    base = make_baselines(config, prepared)
    results = baseline_results(base, lambda model: _scores(model, prepared, base["persistence"]))

    def data(training: TrainingConfig) -> tuple[Any, Any]:
        if training.stateful:
            return prepared.streams("train", training.batch_size), prepared.streams("val", training.batch_size)
        return prepared.windows["train"], prepared.windows["val"]

    trained = train_models(
        config, trained_specs(config), out, build=lambda spec: build_model(spec, prepared), data=data,
        score=lambda model, training: _scores(model, prepared, base["persistence"], training),
        metadata=lambda spec: _model_metadata(prepared, spec),
        summary=lambda r: f"MAE val {r['mae_val']:.3f}, test {r['mae_test']:.3f} {units}",
        epochs=epochs, resume=resume, progress=progress, log=log)
    results.update(trained.results)
    chosen = {**base, **{n: m for n, m in trained.models.items() if not trained.training[n].stateful}}
    test_preds = {n: prepared.to_units(prepared.last_step(predict(m, prepared.windows["test"], 1024)))
                  for n, m in chosen.items()}

    metrics = _metrics_document(config, prepared, results)
    finish_run(out, metrics, trained.histories, loss_name=f"{config.training.loss} (scaled units)")
    _plot_predictions(out, prepared, test_preds, metrics, config)
    return metrics


def _model_metadata(prepared: Prepared, spec: ModelConfig) -> dict[str, Any]:
    return {"name": spec.name, "features": prepared.features, "target": prepared.target,
            "input_shape": list(prepared.input_shape), "windows": prepared.config.windows.model_dump()}


def _metrics_document(config: ExperimentConfig, prepared: Prepared, results: dict[str, dict[str, Any]]) -> dict[str, Any]:
    models = {
        name: {
            "params": r["params"], "mae_val": r["mae_val"], "mae_test": r["mae_test"], "rmse_test": r["rmse_test"],
            "skill_test": r["skill_test"], "train_seconds": r["train_seconds"], "kind": r["kind"],
            **({"mae_last_val": r["mae_last_val"], "mae_last_test": r["mae_last_test"]} if "mae_last_test" in r else {}),
            **({"mae_val_by_step": r["mae_val_by_step"], "mae_test_by_step": r["mae_test_by_step"]}
               if "mae_test_by_step" in r else {}),
        }
        for name, r in results.items()
    }
    return {
        "models": models,
        "target": config.data.target,
        "units": units_of(config.data.target),
        "best": best_model(models, "mae_val", lowest=True),
        "config": config.name,
        **data_counts(prepared),
        **({"data_used": data_used(prepared.frame)} if data_used(prepared.frame) else {}),
        # per-step: mae/rmse/skill are over every step of every window; mae_last_* over the last step only
        "return_sequences": config.windows.return_sequences,
        # multi-step: mae/rmse/skill are over all target_length steps; mae_*_by_step step by step (step 1 first)
        "target_length": config.windows.target_length,
        **({"published": config.published.model_dump(mode="json")} if config.published else {}),
    }


def data_used(frame: pd.DataFrame) -> dict[str, Any] | None:
    """The files a frame was read from and its resolution (config.json's and metrics.json's ``data_used``)."""
    if not frame.attrs.get("files"):
        return None
    return {"files": list(frame.attrs["files"]), "embedded_record": bool(frame.attrs.get("embedded")),
            "file_resolution": frame.attrs.get("file_resolution"), "resolution": frame.attrs.get("resolution")}


def data_counts(prepared: Prepared) -> dict[str, Any]:
    """``windows`` per part and ``rows`` of the series, as the metrics documents record them."""
    return {"windows": {part: len(prepared.windows[part]) for part in PARTS}, "rows": len(prepared.frame)}


def _plot_predictions(out: Path, prepared: Prepared, test_preds: dict[str, np.ndarray], metrics: dict[str, Any],
                      config: ExperimentConfig) -> None:
    from rnnkit import plots

    times = prepared.target_times("test")
    truth = prepared.to_units(prepared.last_step(prepared.windows["test"].y))
    shown = slice(0, min(len(times), 14 * _rows_per_day(prepared)))  # two weeks
    best = metrics["best"]
    chosen = {n: v[shown] for n, v in test_preds.items() if n == best}  # one model: the plot stays readable
    plots.plot_predictions(times[shown], truth[shown], chosen, out / "predictions.png",
                           persistence=test_preds["persistence"][shown],
                           title=f"{config.data.target}, {_ahead(prepared)} ahead: the first test weeks"
                                 + (f" (best model by validation MAE: {best})" if best else ""),
                           units=config.data.target)


def _ahead(prepared: Prepared) -> str:
    """The horizon as a duration, e.g. ``"24 h"`` (or in rows when the step is not regular)."""
    step = pd.Series(prepared.frame.index).diff().median()
    w = prepared.config.windows
    horizon = w.horizon + (w.target_length - 1) * w.sampling_rate  # the last forecast step's
    if pd.isna(step):
        return f"{horizon} rows"
    ahead = horizon * step
    return f"{ahead / pd.Timedelta(hours=1):g} h" if ahead < pd.Timedelta(days=14) else f"{ahead.days} days"


def _rows_per_day(prepared: Prepared) -> int:
    step = pd.Series(prepared.frame.index).diff().median()
    return max(1, int(pd.Timedelta("1D") / step)) if pd.notna(step) and step > pd.Timedelta(0) else 100


# --- describing ----------------------------------------------------------------------------------

def describe_prepared(prepared: Prepared) -> str:
    """What the windowing produced: rows, windows and periods of each part."""
    w = prepared.config.windows
    lines = [
        *([describe_source(prepared.frame)] if prepared.frame.attrs.get("files") else []),
        f"data: {len(prepared.frame):,} rows x {len(prepared.features)} features, "
        f"{prepared.frame.index[0]} to {prepared.frame.index[-1]}; target {prepared.target!r}",
        f"windows: sequence_length {w.sequence_length}, shift {w.shift}, sampling_rate {w.sampling_rate}, "
        f"horizon {w.horizon}" + (", a target for every input step (return_sequences)" if w.return_sequences else "")
        + (f", target_length {w.target_length} (the next {w.target_length} rows, every sampling_rate)"
           if w.target_length > 1 else "")
        + ((", residual target (change from the input at each step)" if w.return_sequences
            else ", residual target (change from the last input)") if w.residual else ""),
    ]
    for part in PARTS:
        pieces = prepared.parts[part]
        rows = sum(len(p) for p in pieces)
        span = ", ".join(f"{p.index[0]:%Y-%m-%d} to {p.index[-1]:%Y-%m-%d}" for p in pieces)
        lines.append(f"  {PART_NAMES[part]:<10} {rows:>7,} rows, {len(prepared.windows[part]):>6,} windows ({span})")
    return "\n".join(lines)


def metrics_table(metrics: dict[str, Any]) -> str:
    """The comparison table: model, parameters, MAE val/test, skill, seconds (classification: its own table)."""
    if metrics.get("task") == "classification":
        return classification_table(metrics)
    if metrics.get("task") == "tagging":
        from rnnkit.tagging import tagging_table

        return tagging_table(metrics)
    units = metrics.get("units") or "units"
    rows = [
        {
            "model": name,
            "params": m["params"],
            f"MAE val ({units})": m["mae_val"],
            f"MAE test ({units})": m["mae_test"],
            **({f"MAE last step test ({units})": m["mae_last_test"]} if "mae_last_test" in m else {}),
            **({f"MAE step 1 test ({units})": m["mae_test_by_step"][0],
                f"MAE step {len(m['mae_test_by_step'])} test ({units})": m["mae_test_by_step"][-1]}
               if "mae_test_by_step" in m else {}),
            "skill test": f"{100 * m['skill_test']:+.1f}%",
            "seconds": m["train_seconds"],
        }
        for name, m in metrics["models"].items()
    ]
    table = format_table(published.add_columns(rows, metrics.get("published")))
    return "\n".join([table, *published.notes(metrics.get("published"))])


def run_report(metrics: dict[str, Any], output: str | Path) -> str:
    """What a finished run prints: its table, the model chosen by validation, and the files written."""
    best = metrics["models"].get(metrics.get("best")) if metrics.get("best") else None
    task = metrics.get("task")
    files = f"written: {output}/metrics.json, history.csv, learning_curves.png, "
    if task == "classification":
        lines = [classification_table(metrics)]
        if best:
            lines.append(f"\nbest by validation balanced accuracy: {metrics['best']} (test: balanced accuracy "
                         f"{best['balanced_accuracy_test']:.3f}, F1 {best['f1_test']:.3f})")
        return "\n".join([*lines, files + "models/"])
    lines = [metrics_table(metrics)]
    if task == "tagging":
        if best:
            lines.append(f"\nbest by validation token accuracy: {metrics['best']} (test: token accuracy "
                         f"{best['token_accuracy_test']:.3f}, ambiguous words {best['ambiguous_accuracy_test']:.3f})")
        return "\n".join([*lines, files + "models/"])
    if best:
        lines.append(f"\nbest by validation MAE: {metrics['best']} (test skill {100 * best['skill_test']:+.1f}% "
                     f"against persistence)")
    return "\n".join([*lines, files + "predictions.png, models/"])


def classification_table(metrics: dict[str, Any]) -> str:
    """The table of a classification run: accuracy, balanced accuracy, F1, confusion matrix (test)."""
    from rnnkit import classification

    return classification.classification_table(metrics)


def load_run(run: str | Path) -> tuple[ExperimentConfig, Standardizer | None, dict[str, Any]]:
    """The config, scaler and metrics of a run folder (no scaler for a tagging run: tokens are not scaled)."""
    folder = Path(run)
    if not folder.is_dir():
        raise RnnkitError(f"run folder not found: {folder}")
    try:
        raw = read_json(folder / "config.json", "run config")
        raw.pop("data_used", None)  # what the run read: a record, not a setting
        tagging = raw.get("task") == "tagging"
        scaler_file = folder / "scaler.json"
        scaler = None if tagging else Standardizer.from_dict(read_json(scaler_file, "scaler"))
    except FileNotFoundError as e:
        raise RnnkitError(f"{folder} is not an rnnkit run folder: {Path(e.filename).name} is missing") from None
    except RnnkitError as e:
        if str(e).startswith("a scaler"):
            raise RnnkitError(f"{scaler_file}: {e}") from None
        raise
    config = parse_config(raw, source=str(folder / "config.json"))
    metrics_file = folder / "metrics.json"
    metrics = read_json(metrics_file, "run metrics") if metrics_file.is_file() else {}
    return config, scaler, metrics


def load_trained(run: str | Path, name: str | None = None) -> tuple[str, nn.Module, dict[str, Any]]:
    """A trained model of a run (the best by validation MAE when ``name`` is None)."""
    config, _, metrics = load_run(run)
    names = trained_model_names(config)
    if name is None:
        name = metrics.get("best") or (names[0] if names else None)
    if name not in names:
        raise RnnkitError(f"model {name!r} is not in the run; its models are {names}")
    stem = Path(run) / "models" / slug(name) / "model"
    description = read_model_json(stem)
    model = rebuild_model(description)
    load_weights(stem.with_suffix(".safetensors"), model)
    model.eval()
    return name, model, description


def predict_file(run: str | Path, data_paths: list[str], name: str | None = None) -> pd.DataFrame:
    """Predictions of a run's model on new data: one row per window (input end, target time, prediction).

    A multi-step run (``windows.target_length = K``) gives one prediction column per step;
    ``target_time`` is then the first step's time.
    """
    config, scaler, _ = load_run(run)
    if scaler is None:
        raise RnnkitError(f"{run} is a tagging run: its models tag sentences, not a series file "
                          f"(use rnnkit.tagging.predict_tags on token ids)")
    name, model, description = load_trained(run, name)
    meta = description.get("metadata", {})
    features = list(meta.get("features", scaler.columns))
    frame = load_frame(config, data_paths)
    missing = [c for c in features if c not in frame.columns]
    if missing:
        raise RnnkitError(f"the data does not fit the model {name!r}: it lacks the columns {missing}")
    frame = frame[features]
    w = config.windows
    windows = make_windows(scaler.transform(frame), w.sequence_length, shift=1, sampling_rate=w.sampling_rate,
                           horizon=0, targets=config.data.target)
    ti = scaler.column_index(config.data.target)
    last = frame.index[windows.last_rows.numpy()]
    step = pd.Series(frame.index).diff().median()
    if config.task == "classification":  # logits (windows, classes): the probability of each class
        probabilities = torch.softmax(predict(model, windows.x, 1024).double(), dim=-1).numpy()
        table = pd.DataFrame({"last_input_time": last, "target_time": last + w.horizon * step,
                              "predicted class": probabilities.argmax(1)})
        for c in range(probabilities.shape[1]):
            table[f"P(class {c})"] = probabilities[:, c]
        return table
    output = predict(model, windows.x, 1024)
    if w.target_length > 1:  # K forecast steps: one column per step, target_time is the first step's
        values = output.detach().numpy().reshape(len(windows), w.target_length) * scaler.std[ti] + scaler.mean[ti]
        table = pd.DataFrame({"last_input_time": last, "target_time": last + w.horizon * step})
        for k in range(w.target_length):
            table[f"predicted {config.data.target} step {k + 1}"] = values[:, k]
        return table
    if w.return_sequences:  # per-step outputs: the last step's is the forecast horizon rows after the last input
        output = output[:, -1]
    values = output.detach().numpy().reshape(-1) * scaler.std[ti] + scaler.mean[ti]
    return pd.DataFrame({
        "last_input_time": last,
        "target_time": last + w.horizon * step,
        f"predicted {config.data.target}": values,
    })


def trained_model_names(config: ExperimentConfig) -> list[str]:
    """Names of the models a run trains, in order (the naive dense baseline first when asked for)."""
    return [spec.name for spec in trained_specs(config)]


def evaluate_run(run: str | Path) -> dict[str, Any]:
    """Score the baselines and every saved model of a run again, on the run's own data and scaler."""
    config, scaler, stored = load_run(run)
    if scaler is None:  # task = "tagging"
        from rnnkit.tagging import evaluate_tagging

        return evaluate_tagging(config, run, stored)
    prepared = prepare(config, load_frame(config))
    if not np.allclose(prepared.scaler.mean, scaler.mean) or not np.allclose(prepared.scaler.std, scaler.std):
        raise RnnkitError(f"the data found now differ from the data of the run {run} (other training statistics)")
    if config.task == "classification":
        from rnnkit.classification import evaluate_classification

        return evaluate_classification(config, run, stored, prepared)
    base = make_baselines(config, prepared)
    results = baseline_results(base, lambda model: _scores(model, prepared, base["persistence"]))
    results.update(saved_model_results(config, run, trained_specs(config), stored,
                                       lambda model, training: _scores(model, prepared, base["persistence"], training)))
    return _metrics_document(config, prepared, results)


def model_summaries(config: ExperimentConfig, features: int | None = None) -> str:
    """The summary table of every model of a config, for inputs of (sequence_length, features)."""
    if config.task == "tagging":  # token ids in, the corpus decides the sizes
        from rnnkit.tagging import tagging_summaries

        return tagging_summaries(config)
    note = ""
    if features is None:
        try:
            features = load_frame(config).shape[1]
            note = "(features counted in the data found)"
        except (RnnkitError, ValueError, FileNotFoundError):
            features, note = 14, "(no data found: 14 features assumed, as in the benchmark file)"
    shape = (config.windows.sequence_length, features)
    blocks = [f"{config.name}: input_shape {shape} {note}".rstrip()]
    for spec in trained_specs(config):
        try:
            net = Sequential(*[build_layer(s) for s in spec.layers], input_shape=shape)
        except ValueError as e:
            raise RnnkitError(f"model '{spec.name}': {e}") from None
        residual = config.windows.residual if spec.residual is None else spec.residual
        blocks.append(f"\n{spec.name}" + (" (predicts the change from the last input)" if residual else ""))
        blocks.append(net.summary())
    return "\n".join(blocks)


def describe_windows(config: ExperimentConfig, data_paths: list[str] | None = None) -> str:
    """What the windowing of a config produces, with the rows and times of some windows."""
    if config.windows is None:
        raise RnnkitError(f"task = {config.task!r} has no windows: it tags every token of whole sentences")
    prepared = prepare(config, load_frame(config, data_paths))
    lines = [describe_prepared(prepared)]
    for part in PARTS:
        w = prepared.windows[part]
        index = pd.Index(np.concatenate([p.index.to_numpy() for p in prepared.parts[part]]))
        lines.append(f"\n{PART_NAMES[part]}: {len(w):,} windows, x {tuple(w.x.shape)}, y {tuple(w.y.shape)}")
        for i in sorted({0, 1, len(w) - 1} & set(range(len(w)))):
            inputs, targets = w.rows(i)
            lines.append(f"  window {i}: inputs {pd.Timestamp(index[inputs[0]]):%Y-%m-%d %H:%M} to "
                         f"{pd.Timestamp(index[inputs[-1]]):%Y-%m-%d %H:%M} ({len(inputs)} rows), "
                         f"target {pd.Timestamp(index[targets[0]]):%Y-%m-%d %H:%M}"
                         + (f" to {pd.Timestamp(index[targets[-1]]):%Y-%m-%d %H:%M} ({len(targets)} steps)"
                            if w.target_length > 1 else ""))
    return "\n".join(lines)
