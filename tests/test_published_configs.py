"""The course's and Chollet's configs on the embedded record: their data exactly as published, and
the published numbers they carry, parsed and printed beside rnnkit's."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from rnnkit.tasks import load_config, parse_config
from rnnkit.datasets.jena import EMBEDDED_JENA
from rnnkit.errors import RnnkitError
from rnnkit.experiment import metrics_table
from rnnkit.tasks.regression import make_baselines
from rnnkit.tasks.series import load_frame, prepare
from rnnkit.training import predict

CONFIGS = Path(__file__).resolve().parents[1] / "configs"


@pytest.fixture(autouse=True)
def _only_the_embedded_record(monkeypatch, tmp_path):
    monkeypatch.delenv("RNNKIT_DATA_DIR", raising=False)
    from rnnkit.datasets import _files

    monkeypatch.setattr(_files, "cache_dir", lambda: tmp_path / "cache")


def _mae(prepared, model, part: str) -> float:
    w = prepared.windows[part]
    return float(np.abs(prepared.to_units(predict(model, w.x, 4096)) - prepared.to_units(w.y)).mean())


def test_chollet_jena_persistence_is_the_books():
    config = load_config(CONFIGS / "chollet_jena.toml")
    prepared = prepare(config, load_frame(config))
    assert {p: len(w) for p, w in prepared.windows.items()} == {"train": 34_903, "val": 17_380, "test": 17_380}
    persistence = make_baselines(config, prepared)["persistence"]
    assert _mae(prepared, persistence, "val") == pytest.approx(2.4406, abs=5e-4)
    assert _mae(prepared, persistence, "test") == pytest.approx(2.6185, abs=5e-4)
    rows = {r.run_as: r for r in config.published.rows}
    assert (rows["persistence"].mae_val, rows["persistence"].mae_test) == (2.44, 2.62)
    assert rows["2 x GRU(32, recurrent_dropout 0.5) + Dropout(0.5)"].mae_test == 2.39


def test_course_05a_has_the_courses_2916_windows_split_as_the_course_splits_them():
    config = load_config(CONFIGS / "course_05a.toml")
    prepared = prepare(config, load_frame(config))
    assert len(prepared.frame) == 70_092
    assert [len(prepared.windows[p]) for p in ("train", "val", "test")] == [1_866, 466, 584]
    # The last test window ends at the record's last row by position: 2,916 windows of shift 24.
    t = pd.read_csv(EMBEDDED_JENA)["T (degC)"].to_numpy()
    y = prepared.to_units(prepared.windows["test"].y)
    assert y[-1] == pytest.approx(t[2915 * 24 + 95 + 24], abs=1e-4) and y[0] == pytest.approx(
        t[2332 * 24 + 119], abs=1e-4
    )
    ref = {r.run_as: r for r in config.published.rows}["GRU(16)"]
    assert (ref.mae_val, ref.mae_test) == ([3.55, 3.58], [3.40, 3.50])


def test_course_05b_weekly_rows_are_every_1008th_ten_minute_row():
    config = load_config(CONFIGS / "course_05b.toml")
    prepared = prepare(config, load_frame(config))
    t = pd.read_csv(EMBEDDED_JENA)["T (degC)"].to_numpy()[::168]
    assert len(prepared.frame) == 418 and np.array_equal(prepared.frame["T (degC)"].to_numpy(), t)
    assert [len(prepared.windows[p]) for p in ("train", "val", "test")] == [233, 58, 74]
    persistence = make_baselines(config, prepared)["persistence"]
    last = np.arange(291 + 51, 418 - 2)  # test windows: 291 onwards, 52 in, 2 ahead
    assert _mae(prepared, persistence, "test") == pytest.approx(np.abs(t[last + 2] - t[last]).mean(), abs=1e-4)


def test_published_numbers_are_validated():
    base = {
        "windows": {"sequence_length": 4},
        "baselines": ["persistence"],
        "models": [{"name": "GRU", "layers": [{"type": "GRU", "units": 2}, {"type": "Dense", "units": 1}]}],
    }
    ok = parse_config(
        {
            **base,
            "published": {
                "source": "x",
                "rows": [{"model": "m", "run_as": "GRU", "mae_val": [3.4, 3.5], "mae_test": 3}],
            },
        }
    )
    assert ok.published.rows[0].mae_val == [3.4, 3.5] and ok.published.rows[0].mae_test == 3.0
    for row, message in [
        ({"model": "m", "run_as": "LSTM"}, "published.rows[0].run_as must name a model or baseline"),
        ({"model": "m", "mae_val": [3.5, 3.4]}, "range [low, high] with 0 < low <= high"),
        ({"model": "m", "mae_test": -1}, "must be a number > 0"),
        ({"model": "m", "mae_test": 1, "typo": 2}, "typo"),
    ]:
        with pytest.raises(RnnkitError, match=message.replace("[", r"\[").replace("]", r"\]")):
            parse_config({**base, "published": {"source": "x", "rows": [row]}})


def test_the_table_prints_the_published_numbers_beside_rnnkits():
    metrics = {
        "units": "degC",
        "models": {
            "persistence": {
                "params": 0,
                "mae_val": 2.4406,
                "mae_test": 2.6185,
                "skill_test": 0.0,
                "train_seconds": 0.0,
            },
            "GRU": {"params": 10, "mae_val": 2.2, "mae_test": 2.3, "skill_test": 0.12, "train_seconds": 5.0},
        },
        "published": {
            "source": "the book",
            "units": "degC",
            "rows": [
                {"model": "persistence", "run_as": "persistence", "mae_val": 2.44, "mae_test": 2.62, "note": ""},
                {"model": "convnet", "run_as": None, "mae_val": 2.9, "mae_test": None, "note": "approximate"},
            ],
        },
    }
    lines = metrics_table(metrics).splitlines()
    assert lines[0].split()[-4:] == ["published", "val", "published", "test"]
    assert lines[1].split()[0] == "persistence" and lines[1].split()[-2:] == ["2.44", "2.62"]
    assert lines[1].split()[2:4] == ["2.441", "2.619"]
    assert (
        lines[2].split()[0] == "GRU" and lines[2].split()[-1] == "5.0"
    )  # no published value: blank; seconds one decimal
    assert lines[3] == "published (degC): the book"
    assert lines[5] == "  convnet: val 2.90, test - (not run here; approximate)"


def test_course_05b_stateful_streams_run_over_the_rows_by_position():
    config = load_config(CONFIGS / "course_05b.toml")
    prepared = prepare(config, load_frame(config))
    batches = list(prepared.streams("train", 1))
    x, y = batches[0]
    assert x.shape == (1, 52, 14) and len(batches) == (286 - 2) // 52  # one stream of the training part's rows
    t = pd.read_csv(EMBEDDED_JENA)["T (degC)"].to_numpy()[::168]
    assert prepared.to_units(y).item() == pytest.approx(t[51 + 2], abs=1e-4)
