"""The station weather studies of multi-step forecasting and one-to-many generation (library API, no config).

Imported by ``examples/multistep_forecast.py`` and ``examples/generate_sequences.py`` (run from
anywhere: a script's own folder is on ``sys.path``); ``tests/test_weather_studies.py`` loads it by path.

Data (the same framing as the demo): hourly rows of :func:`rnnkit.datasets.jena_climate`
(``step=6``), each contiguous segment split 60/20/20 in time, a :class:`Standardizer` fit on
the training part only. The measured columns are standardised; the clock columns
(``Day sin``, ``Day cos``) stay as they are (already in [-1, 1]) so that a
:class:`rnnkit.models.forecasters.Clock` can advance them into the future. Scores are in °C.

- :func:`multistep_comparison`: the next 24 hours from the last 5 days: direct,
  autoregressive and seq2seq GRUs against "repeat the last day", persistence and the mean
  daily curve.
- :func:`curve_generation_comparison`: one input vector of current conditions → the next
  24 hourly temperatures (:class:`rnnkit.models.generators.OneToMany`), against repeating the
  current temperature and the mean daily curve.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import pandas as pd
import torch
from torch import nn

from rnnkit import datasets
from rnnkit.data import Standardizer, Windows, make_windows, split_per_segment
from rnnkit.baselines import MeanDailyCurve, RepeatLastPeriod
from rnnkit.models.forecasters import AutoregressiveForecaster, Clock, DirectForecaster, Seq2SeqForecaster
from rnnkit.models.generators import OneToMany
from rnnkit.training import Trainer, predict
from rnnkit.training.metrics import forecast_scores

TARGET = "T (degC)"
MEASURED = [TARGET, "p (mbar)", "rh (%)", "Wx", "Wy"]
CLOCK_COLUMNS = ["Day sin", "Day cos"]
PARTS = ("train", "val", "test")
Log = Callable[[str], None]


@dataclass
class WeatherParts:
    """Hourly weather split per segment: ``parts[name]`` is a list of frames (one per segment)."""

    parts: dict[str, list[pd.DataFrame]]
    scaler: Standardizer  # fit on the measured columns of the training part

    @property
    def features(self) -> list[str]:
        return MEASURED + CLOCK_COLUMNS

    @property
    def scale(self) -> float:
        return float(self.scaler.std[self.scaler.column_index(TARGET)])

    @property
    def offset(self) -> float:
        return float(self.scaler.mean[self.scaler.column_index(TARGET)])

    @property
    def clock(self) -> Clock:
        f = self.features
        return Clock([(f.index("Day sin"), f.index("Day cos"), 24)])

    def windows(self, part: str, sequence_length: int, target_length: int, targets) -> Windows:
        return make_windows(self.parts[part], sequence_length, horizon=1, target_length=target_length, targets=targets)


def weather_parts(frame: pd.DataFrame | None = None, fractions=(0.6, 0.2, 0.2)) -> WeatherParts:
    """Hourly station data (RNNKIT_DATA_DIR), split per segment, measured columns standardised."""
    if frame is None:
        frame = datasets.jena_climate(derived=["wind", "time"], step=6)
    frame = frame[MEASURED + CLOCK_COLUMNS]
    pieces = dict(zip(PARTS, split_per_segment(frame, fractions)))
    scaler = Standardizer().fit(pd.concat(pieces["train"])[MEASURED])
    scaled = {
        part: [pd.concat([scaler.transform(p[MEASURED]), p[CLOCK_COLUMNS]], axis=1) for p in pieces[part]]
        for part in PARTS
    }
    return WeatherParts(scaled, scaler)


def _fit(model: nn.Module, train, val, epochs: int, seed: int, log: Log | None, name: str) -> tuple[nn.Module, float]:
    torch.manual_seed(seed)  # the model was built by the caller; the Trainer seeds shuffling and dropout
    trainer = Trainer(
        learning_rate=3e-3,
        batch_size=64,
        epochs=epochs,
        early_stopping_patience=3,
        seed=seed,
        clip_grad_norm=1.0,
        progress=False,
    )
    started = time.perf_counter()
    history = trainer.fit(model, train, val)
    seconds = time.perf_counter() - started
    if log:
        log(f"{name}: {len(history)} epochs, best {history.best_epoch}, {seconds:.0f} s")
    return model, seconds


def _row(
    name: str, model: nn.Module, windows: Windows, parts: WeatherParts, column: int = 0, seconds: float = 0.0
) -> dict:
    prediction = predict(model, windows)[..., column]  # (examples, target_length)
    truth = windows.y[..., column]
    s = forecast_scores(truth, prediction, scale=parts.scale, offset=parts.offset)
    target_length = len(s["mae_by_step"])
    row = {"model": name, "params": sum(p.numel() for p in model.parameters()), "mae": s["mae"], "rmse": s["rmse"]}
    for k in sorted({1, 6, 12, target_length}):
        if k <= target_length:
            row[f"mae_h{k}"] = s["mae_by_step"][k - 1]
    row["train_s"] = seconds
    return row


def multistep_comparison(
    parts: WeatherParts | None = None,
    *,
    sequence_length: int = 120,
    target_length: int = 24,
    units: int = 32,
    epochs: int = 15,
    seed: int = 0,
    log: Log | None = None,
) -> pd.DataFrame:
    """Test scores (°C) of the multi-step forecasters and baselines on the next ``target_length`` hours.

    Inputs: the last ``sequence_length`` hours of the 7 columns (T, p, rh, wind x/y, day
    sin/cos). Direct and seq2seq are trained on the temperature only; the autoregressive
    model on all five measured columns (it must predict every fed-back column), and is
    scored on the temperature. Returns one row per model: params, mae, rmse, mae at
    steps 1/6/12/24, training seconds; ``skill`` against "repeat the last day".
    """
    parts = parts or weather_parts()
    F = len(parts.features)
    w = {p: parts.windows(p, sequence_length, target_length, TARGET) for p in PARTS}
    w_all = {p: parts.windows(p, sequence_length, target_length, MEASURED) for p in PARTS}
    rows = [
        _row("repeat the last day", RepeatLastPeriod(0, 24, target_length), w["test"], parts),
        _row("repeat the last value", RepeatLastPeriod(0, 1, target_length), w["test"], parts),
    ]
    train_rows = np.concatenate([p.to_numpy() for p in parts.parts["train"]])
    curve = MeanDailyCurve(0, F - 2, F - 1, target_length, anchored=True).fit(train_rows)
    rows.append(_row("mean daily change from now", curve, w["test"], parts))

    torch.manual_seed(seed)
    direct, seconds = _fit(
        DirectForecaster(F, target_length, units=units), w["train"], w["val"], epochs, seed, log, "direct"
    )
    rows.append(_row("direct GRU", direct, w["test"], parts, seconds=seconds))
    torch.manual_seed(seed)
    auto = AutoregressiveForecaster(F, target_length, units=units, clock=parts.clock)
    auto, seconds = _fit(auto, w_all["train"], w_all["val"], epochs, seed, log, "autoregressive")
    rows.append(_row("autoregressive GRU", auto, w_all["test"], parts, column=0, seconds=seconds))
    torch.manual_seed(seed)
    seq2seq = Seq2SeqForecaster(F, target_length, target_index=0, units=units, clock=parts.clock)
    seq2seq, seconds = _fit(seq2seq, w["train"], w["val"], epochs, seed, log, "seq2seq")
    rows.append(_row("seq2seq GRU", seq2seq, w["test"], parts, seconds=seconds))

    table = pd.DataFrame(rows).set_index("model")
    table.insert(3, "skill", 1.0 - table["mae"] / table.loc["repeat the last day", "mae"])
    return table


def curve_generation_comparison(
    parts: WeatherParts | None = None,
    *,
    target_length: int = 24,
    units: int = 32,
    epochs: int = 15,
    seed: int = 0,
    log: Log | None = None,
) -> pd.DataFrame:
    """Test scores (°C) of a 24-hour temperature curve generated from one vector of current conditions.

    Input: one row (T, p, rh, wind x/y, day sin/cos, now); output: the next ``target_length`` hourly
    temperatures, by :class:`OneToMany` (GRU decoder, clock fed in), against repeating the
    current temperature, the mean daily curve (training means per hour of day) and the
    current temperature plus the mean daily change.
    """
    parts = parts or weather_parts()
    F = len(parts.features)
    w = {p: parts.windows(p, 1, target_length, TARGET) for p in PARTS}  # x (examples, 1, F): one row
    train_rows = np.concatenate([p.to_numpy() for p in parts.parts["train"]])
    rows = [
        _row("repeat the current temperature", RepeatLastPeriod(0, 1, target_length), w["test"], parts),
        _row("mean daily curve", MeanDailyCurve(0, F - 2, F - 1, target_length).fit(train_rows), w["test"], parts),
        _row(
            "mean daily change from now",
            MeanDailyCurve(0, F - 2, F - 1, target_length, anchored=True).fit(train_rows),
            w["test"],
            parts,
        ),
    ]
    torch.manual_seed(seed)
    model = OneToMany(F, target_length=target_length, units=units, target_index=0, clock=parts.clock)
    model, seconds = _fit(model, w["train"], w["val"], epochs, seed, log, "one-to-many")
    rows.append(_row("one-to-many GRU", model, w["test"], parts, seconds=seconds))
    table = pd.DataFrame(rows).set_index("model")
    table.insert(3, "skill", 1.0 - table["mae"] / table.loc["repeat the current temperature", "mae"])
    return table
