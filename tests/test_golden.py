"""Golden runs: every shipped config's path and every CLI command give the metrics they gave before.

Each case below is a pinned, shrunken copy of a shipped config (``configs/*.toml`` and the demo):
the same task, target shape, baselines, layer kinds, per-model training overrides and stateful
settings, on a small synthetic station file (hourly rows: ``data.step`` counts 10-minute rows, so
step 12 keeps every 2nd row) and for one or two epochs, so that it runs in seconds
and does not change when the shipped configs' contents are retuned. The numbers in
``tests/golden/*.json`` were recorded from the code before the task registry (issue 9) moved the
task code around; a refactoring must reproduce them to float rounding.

Re-record (only when a change of numbers is intended, and say so in the commit)::

    RNNKIT_GOLDEN_RECORD=1 .venv/bin/python -m pytest tests/test_golden.py
"""

from __future__ import annotations

import json
import math
import os
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from rnnkit.cli import main
from rnnkit.tasks import parse_config

GOLDEN = Path(__file__).parent / "golden"
RECORD = os.environ.get("RNNKIT_GOLDEN_RECORD") == "1"
# Float rounding across x86 CPUs (AMD/Intel differ in the last bits) after two short epochs.
RTOL, ATOL = 1e-4, 1e-6


def write_station(path: Path, days: int = 50, seed: int = 0) -> Path:
    """Hourly rows in the station's format: a daily temperature cycle, pressure, humidity, wind, rain."""
    rng = np.random.default_rng(seed)
    n = days * 24
    t = np.arange(n)
    p = 1000 + np.cumsum(rng.normal(0, 0.5, n)) * 0.2 + rng.normal(0, 1, n)
    rain = np.zeros(n)
    rain[1:] = np.where(p[:-1] < 999, 300.0, 0.0)
    frame = pd.DataFrame(
        {
            "Date Time": pd.date_range("2024-06-01 01:00", periods=n, freq="h").strftime("%d.%m.%Y %H:%M:%S"),
            "p (mbar)": p,
            "T (degC)": 12 + 6 * np.sin(2 * np.pi * t / 24) + 0.01 * t + rng.normal(0, 0.4, n),
            "rh (%)": 70 + 10 * np.cos(2 * np.pi * t / 24) + rng.normal(0, 2, n),
            "wv (m/s)": np.abs(rng.normal(2, 1, n)),
            "max. wv (m/s)": np.abs(rng.normal(4, 1.5, n)),
            "wd (deg)": rng.uniform(0, 360, n),
            "raining (s)": rain,
        }
    )
    frame.to_csv(path, index=False, float_format="%.2f")
    return path


def _gru(units: int, out: int = 1, **kw) -> list[dict[str, Any]]:
    return [{"type": "GRU", "units": units, **kw}, {"type": "Dense", "units": out}]


# The shipped configs, shrunk: (name, config dict without data.paths).
CASES: dict[str, dict[str, Any]] = {
    "demo": {  # demo.py: derived features, residual, early stopping, every baseline, naive_dense, Bidirectional
        "name": "demo",
        "data": {"target": "T (degC)", "derived": ["wind", "time"], "split": [0.6, 0.2, 0.2]},
        "windows": {"sequence_length": 24, "horizon": 6, "residual": True},
        "training": {
            "loss": "mae",
            "batch_size": 32,
            "epochs": 2,
            "early_stopping_patience": 4,
            "clip_grad_norm": 1.0,
            "seed": 0,
        },
        "baselines": ["persistence", "seasonal_persistence", "mean", "linear", "naive_dense"],
        "models": [
            {"name": "SimpleRNN(4)", "layers": [{"type": "SimpleRNN", "units": 4}, {"type": "Dense", "units": 1}]},
            {
                "name": "GRU(4) x 2 with dropout",
                "layers": [
                    {"type": "GRU", "units": 4, "return_sequences": True, "dropout": 0.2, "recurrent_dropout": 0.2},
                    {"type": "GRU", "units": 4, "dropout": 0.2, "recurrent_dropout": 0.2},
                    {"type": "Dense", "units": 1},
                ],
            },
            {
                "name": "Bidirectional GRU(4)",
                "layers": [
                    {"type": "Bidirectional", "layer": {"type": "GRU", "units": 4}},
                    {"type": "Dense", "units": 1},
                ],
            },
        ],
    },
    "chollet_jena": {  # sampling_rate, no split per segment, mse, per-model epochs, recurrent dropout
        "name": "chollet_jena",
        "baselines": ["persistence", "seasonal_persistence", "mean", "linear"],
        "data": {"target": "T (degC)", "split": [0.5, 0.25, 0.25], "split_per_segment": False},
        "windows": {"sequence_length": 20, "sampling_rate": 2, "horizon": 12},
        "training": {"optimizer": "adam", "learning_rate": 1e-3, "loss": "mse", "batch_size": 64, "epochs": 1},
        "models": [
            {"name": "LSTM(4)", "layers": [{"type": "LSTM", "units": 4}, {"type": "Dense", "units": 1}]},
            {
                "name": "LSTM(4, recurrent_dropout 0.25) + Dropout(0.5)",
                "layers": [
                    {"type": "LSTM", "units": 4, "recurrent_dropout": 0.25},
                    {"type": "Dropout", "rate": 0.5},
                    {"type": "Dense", "units": 1},
                ],
                "training": {"epochs": 2},
            },
        ],
    },
    "course_04a": {  # the reshape approach (shift = sequence_length), Flatten + Dense
        "name": "course_04a",
        "baselines": ["persistence", "mean"],
        "data": {"target": "T (degC)", "split": [0.64, 0.16, 0.2], "split_per_segment": False},
        "windows": {"sequence_length": 24, "shift": 24, "horizon": 12},
        "training": {"learning_rate": 1e-3, "loss": "mae", "batch_size": 8, "epochs": 2},
        "models": [
            {
                "name": "Dense(6) on the flattened window",
                "layers": [
                    {"type": "Flatten"},
                    {"type": "Dense", "units": 6, "activation": "relu"},
                    {"type": "Dense", "units": 1},
                ],
                "training": {"epochs": 3},
            },
            {"name": "SimpleRNN(4)", "layers": [{"type": "SimpleRNN", "units": 4}, {"type": "Dense", "units": 1}]},
        ],
    },
    "course_05a": {  # shift approach, step 2, reset_after = false
        "name": "course_05a",
        "baselines": ["persistence", "seasonal_persistence", "mean"],
        "data": {"target": "T (degC)", "step": 12, "split": [0.64, 0.16, 0.2], "split_per_segment": False},
        "windows": {"sequence_length": 24, "shift": 6, "horizon": 12},
        "training": {"loss": "mae", "batch_size": 16, "epochs": 2},
        "models": [
            {"name": "GRU(4)", "layers": _gru(4, reset_after=False)},
            {
                "name": "LSTM(4)+Dense(4)",
                "layers": [
                    {"type": "LSTM", "units": 4},
                    {"type": "Dense", "units": 4, "activation": "relu"},
                    {"type": "Dense", "units": 1},
                ],
            },
        ],
    },
    "course_05b": {  # stateful training on streams
        "name": "course_05b",
        "baselines": ["persistence", "mean"],
        "data": {"target": "T (degC)", "step": 36, "split": [0.64, 0.16, 0.2], "split_per_segment": False},
        "windows": {"sequence_length": 8, "horizon": 2},
        "training": {"loss": "mae", "batch_size": 16, "epochs": 2},
        "models": [
            {"name": "GRU(4)", "layers": _gru(4)},
            {
                "name": "stateful GRU(4, recurrent_dropout 0.8)",
                "layers": [
                    {"type": "GRU", "units": 4, "stateful": True, "recurrent_dropout": 0.8},
                    {"type": "Dense", "units": 1},
                ],
                "training": {"batch_size": 1, "shuffle": False, "stateful": True},
            },
        ],
    },
    "many_to_many": {  # a target per step, per-step residual
        "name": "many_to_many",
        "baselines": ["persistence", "mean"],
        "data": {"target": "T (degC)", "split": [0.6, 0.2, 0.2]},
        "windows": {"sequence_length": 24, "shift": 3, "horizon": 6, "return_sequences": True, "residual": True},
        "training": {"epochs": 2, "batch_size": 32, "learning_rate": 2e-3, "early_stopping_patience": 3},
        "models": [{"name": "GRU per step", "layers": _gru(4, return_sequences=True)}],
    },
    "multistep": {  # target_length, repeat_last_day, features, derived
        "name": "multistep",
        "baselines": ["persistence", "repeat_last_day", "mean"],
        "data": {
            "target": "T (degC)",
            "features": ["T (degC)", "p (mbar)", "rh (%)", "Wx", "Wy", "Day sin", "Day cos"],
            "derived": ["wind", "time"],
            "split": [0.6, 0.2, 0.2],
        },
        "windows": {"sequence_length": 24, "shift": 2, "horizon": 1, "target_length": 6, "residual": True},
        "training": {"epochs": 2, "batch_size": 32, "learning_rate": 2e-3, "early_stopping_patience": 3},
        "models": [{"name": "direct GRU", "layers": _gru(4, out=6)}],
    },
    "rain_classification": {  # classification, class weights, block means
        "name": "rain_classification",
        "task": "classification",
        "data": {"columns": "all", "target": "raining (s)", "step": 12, "how": "mean", "split": [0.6, 0.2, 0.2]},
        "windows": {"sequence_length": 12, "horizon": 1},
        "classification": {"threshold": 0.0, "class_weight": "balanced"},
        "training": {"epochs": 2, "batch_size": 64, "learning_rate": 1e-3, "early_stopping_patience": 3},
        "models": [
            {"name": "GRU", "layers": _gru(4, out=2)},
            {"name": "LSTM", "layers": [{"type": "LSTM", "units": 4}, {"type": "Dense", "units": 2}]},
        ],
    },
    "teddy_tagging": {  # tagging: the corpus, placeholders
        "name": "teddy_tagging",
        "task": "tagging",
        "baselines": ["majority_per_word"],
        "data": {"dataset": "teddy", "split": [0.6, 0.2, 0.2]},
        "tagging": {"sentences": 120, "seed": 0},
        "training": {"loss": "cross_entropy", "epochs": 2, "batch_size": 32, "learning_rate": 1e-2},
        "models": [
            {
                "name": "Bidirectional GRU",
                "layers": [
                    {"type": "Embedding", "input_dim": "vocabulary", "output_dim": 8, "mask_zero": True},
                    {"type": "Bidirectional", "layer": {"type": "GRU", "units": 4, "return_sequences": True}},
                    {"type": "Dense", "units": "tags"},
                ],
            },
            {
                "name": "forward GRU",
                "layers": [
                    {"type": "Embedding", "input_dim": "vocabulary", "output_dim": 8, "mask_zero": True},
                    {"type": "GRU", "units": 4, "return_sequences": True},
                    {"type": "Dense", "units": "tags"},
                ],
            },
        ],
    },
}


def numbers(value: Any, path: str = "") -> dict[str, float]:
    """Every number of a metrics document by its dotted path, except timings."""
    out: dict[str, float] = {}
    if isinstance(value, dict):
        for k, v in value.items():
            if k != "train_seconds":
                out.update(numbers(v, f"{path}.{k}" if path else str(k)))
    elif isinstance(value, list):
        for i, v in enumerate(value):
            out.update(numbers(v, f"{path}[{i}]"))
    elif isinstance(value, (int, float)) and not isinstance(value, bool):
        out[path] = float(value)
    elif isinstance(value, (str, bool)) or value is None:
        out[path] = value  # type: ignore[assignment]
    return out


def check(name: str, got: dict[str, Any]) -> None:
    file = GOLDEN / f"{name}.json"
    if RECORD:
        GOLDEN.mkdir(exist_ok=True)
        file.write_text(json.dumps(got, indent=1, sort_keys=True) + "\n", encoding="utf-8")
        return
    want = json.loads(file.read_text(encoding="utf-8"))
    # Every recorded number must come out again; keys added since (new metadata) are not compared.
    missing = sorted(set(want) - set(got))
    assert not missing, f"{name}: recorded keys no longer produced: {missing[:10]}"
    bad = []
    for key, w in want.items():
        g = got[key]
        if isinstance(w, float) and not isinstance(w, bool) and isinstance(g, (int, float)):
            if not (math.isclose(g, w, rel_tol=RTOL, abs_tol=ATOL) or (math.isnan(g) and math.isnan(w))):
                bad.append(f"{key}: {g!r} != {w!r}")
        elif g != w:
            bad.append(f"{key}: {g!r} != {w!r}")
    assert not bad, f"{name}: " + "; ".join(bad[:10])


@pytest.fixture(scope="module")
def station(tmp_path_factory) -> Path:
    return write_station(tmp_path_factory.mktemp("golden") / "station.csv")


def config_of(name: str, station: Path) -> dict[str, Any]:
    raw = json.loads(json.dumps(CASES[name]))
    if raw["data"].get("dataset") != "teddy":
        raw["data"]["paths"] = [str(station)]
    return raw


@pytest.mark.parametrize("name", sorted(CASES))
def test_train_and_evaluate_give_the_recorded_metrics(name, station, tmp_path):
    from rnnkit.experiment import evaluate_run, run_experiment

    config = parse_config(config_of(name, station), source=name)
    metrics = run_experiment(config, tmp_path / "run", progress=False, log=lambda line: None)
    again = evaluate_run(tmp_path / "run")
    check(
        name,
        {
            **{f"train.{k}": v for k, v in numbers(metrics).items()},
            **{f"evaluate.{k}": v for k, v in numbers(again).items()},
        },
    )


def test_cli_commands_give_the_recorded_output(station, tmp_path, capsys):
    """train, evaluate, predict, summary and windows through the CLI on the multi-step and demo cases."""
    got: dict[str, Any] = {}
    for name in ("demo", "multistep", "rain_classification"):
        toml = tmp_path / f"{name}.toml"
        toml.write_text(_to_toml(config_of(name, station)), encoding="utf-8")
        run = tmp_path / f"run-{name}"
        assert main(["train", str(toml), "--output", str(run), "--quiet"]) == 0
        capsys.readouterr()
        assert main(["evaluate", str(run)]) == 0
        got[f"{name}.evaluate"] = _numbers_in(capsys.readouterr().out)
        out_csv = tmp_path / f"{name}-pred.csv"
        assert main(["predict", str(run), "--data", str(station), "--output", str(out_csv)]) == 0
        capsys.readouterr()
        table = pd.read_csv(out_csv)
        got[f"{name}.predict.columns"] = list(table.columns)
        got[f"{name}.predict.rows"] = len(table)
        values = table.select_dtypes("number")
        got[f"{name}.predict.column_sums"] = [float(v) for v in values.sum()]
        got[f"{name}.predict.first_row"] = [float(v) for v in values.iloc[0]]
        assert main(["summary", str(toml), "--features", "7"]) == 0
        got[f"{name}.summary"] = _counts_in(capsys.readouterr().out)
        assert main(["windows", str(toml)]) == 0
        got[f"{name}.windows"] = _counts_in(capsys.readouterr().out)
    flat: dict[str, Any] = {}
    for key, value in got.items():
        if isinstance(value, list) and value and isinstance(value[0], float):
            flat.update({f"{key}[{i}]": v for i, v in enumerate(value)})
        else:
            flat[key] = value
    check("cli", flat)


def _numbers_in(text: str) -> list[float]:
    """The numbers of a table, without its last column (``seconds``: a timing)."""
    import re

    rows = [re.sub(r"\s+[-+]?\d+(\.\d+)?\s*$", "", line) for line in text.splitlines()]
    return [float(m) for row in rows for m in re.findall(r"[-+]?\d+\.\d+", row)]


def _counts_in(text: str) -> list[str]:
    """The numbers and times of a text (shapes, counts, rows, dates), not its wording or the file's name."""
    import re

    lines = [line for line in text.splitlines() if not line.startswith("file:")]
    return re.findall(r"\d[\d,:.-]*", "\n".join(lines))


def _to_toml(raw: dict[str, Any]) -> str:
    """A TOML file of a config dict (tables for dicts, arrays of tables for the models)."""

    def value(v: Any) -> str:
        if isinstance(v, bool):
            return "true" if v else "false"
        if isinstance(v, str):
            return json.dumps(v)
        if isinstance(v, (int, float)):
            return repr(v)
        if isinstance(v, list):
            return "[" + ", ".join(value(x) for x in v) + "]"
        if isinstance(v, dict):
            return "{" + ", ".join(f"{json.dumps(k)} = {value(x)}" for k, x in v.items()) + "}"
        raise TypeError(type(v))

    top = [f"{k} = {value(v)}" for k, v in raw.items() if not isinstance(v, dict) and k != "models"]
    tables = [
        f"\n[{k}]\n" + "\n".join(f"{json.dumps(kk)} = {value(vv)}" for kk, vv in v.items())
        for k, v in raw.items()
        if isinstance(v, dict)
    ]
    models = [
        "\n[[models]]\n" + "\n".join(f"{json.dumps(kk)} = {value(vv)}" for kk, vv in m.items())
        for m in raw.get("models", [])
    ]
    return "\n".join(top + tables + models) + "\n"
