"""examples/weather_studies.py, the scripted station studies of the forecasters and generators (loaded by path)."""

from __future__ import annotations

import importlib.util
import os
import sys
from pathlib import Path

import numpy as np
import pytest

from rnnkit.baselines import RepeatLastPeriod

ROOT = Path(__file__).resolve().parents[1]


def _data_dir() -> Path | None:
    env = os.environ.get("RNNKIT_DATA_DIR")
    folder = Path(env) if env else ROOT / ".." / "shared" / "data"
    return folder if any(folder.glob("mpi_roof*.csv*")) else None


def _weather_studies(monkeypatch):
    spec = importlib.util.spec_from_file_location("weather_studies", ROOT / "examples" / "weather_studies.py")
    module = importlib.util.module_from_spec(spec)
    monkeypatch.setitem(sys.modules, spec.name, module)  # its dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


@pytest.mark.skipif(_data_dir() is None, reason="the station exports mpi_roof*.csv.gz are not in RNNKIT_DATA_DIR")
def test_weather_parts_scale_on_train_and_repeat_last_day_in_celsius(monkeypatch):
    from rnnkit import datasets

    studies = _weather_studies(monkeypatch)
    monkeypatch.setenv("RNNKIT_DATA_DIR", str(_data_dir()))
    frame = datasets.jena_climate(derived=["wind", "time"], step=6)
    parts = studies.weather_parts(frame)
    train = np.concatenate([p[studies.MEASURED].to_numpy() for p in parts.parts["train"]])
    np.testing.assert_allclose(train.mean(0), 0.0, atol=1e-9)  # fit on the training part only
    assert parts.parts["test"][0]["Day sin"].abs().max() <= 1.0  # the clock stays unscaled
    w = parts.windows("test", 120, 24, "T (degC)")
    pred = RepeatLastPeriod(0, 24, 24)(w.x[:1])[0, :, 0].double() * parts.scale + parts.offset
    first_test_row = frame.index.get_loc(parts.parts["test"][0].index[0])
    expected = frame["T (degC)"].to_numpy()[first_test_row + 96 : first_test_row + 120]
    np.testing.assert_allclose(pred.numpy(), expected, atol=1e-4)


@pytest.mark.skipif(_data_dir() is None, reason="the station exports mpi_roof*.csv.gz are not in RNNKIT_DATA_DIR")
def test_the_two_studies_run_end_to_end_and_score_their_baselines(monkeypatch):
    # Tiny models, one epoch: the scripts' plumbing (windows, baselines, the three forecasters, the curve
    # generator, the score table), not their accuracy (examples/*.py print that).
    studies = _weather_studies(monkeypatch)
    monkeypatch.setenv("RNNKIT_DATA_DIR", str(_data_dir()))
    parts = studies.weather_parts()
    multi = studies.multistep_comparison(parts, sequence_length=24, units=4, epochs=1)
    assert list(multi.index) == [
        "repeat the last day",
        "repeat the last value",
        "mean daily change from now",
        "direct GRU",
        "autoregressive GRU",
        "seq2seq GRU",
    ]
    assert multi.loc["repeat the last day", "skill"] == 0.0  # the reference
    last = multi.loc["repeat the last value"]
    # persistence drifts away over the first hours, and comes back at 24 h: the same hour of the next day
    # (on these exports: 6 h 3.35 degC, 24 h 2.71 degC; no training involved, so these are fixed numbers)
    assert 0.2 < last["mae_h1"] < last["mae_h6"] and last["mae_h24"] < last["mae_h6"]
    assert last["mae_h6"] == pytest.approx(3.3453, abs=1e-3) and last["mae_h24"] == pytest.approx(2.7123, abs=1e-3)
    curve = studies.curve_generation_comparison(parts, units=4, epochs=1)
    assert "repeat the current temperature" in curve.index and len(curve) == 4
    assert np.isfinite(curve["mae"].to_numpy()).all() and (curve["mae"] > 0).all()
