"""A run on the embedded 2009-2016 record with no data folder, no cache and no network."""

from __future__ import annotations

import json

import numpy as np
import pytest

from rnnkit.tasks import parse_config
from rnnkit.datasets.jena import EMBEDDED_JENA
from rnnkit.experiment import evaluate_run, load_run, run_experiment, run_report


WEEKLY = {
    "name": "weekly_record",
    "data": {
        "source": "record",
        "step": 1008,
        "gaps": "ignore",
        "split": [0.64, 0.16, 0.2],
        "split_per_segment": False,
        "features": ["T (degC)", "p (mbar)"],
    },
    "windows": {"sequence_length": 8, "horizon": 2},
    "training": {"epochs": 2, "batch_size": 16},
    "baselines": ["persistence", "mean"],
    "models": [{"name": "GRU(4)", "layers": [{"type": "GRU", "units": 4}, {"type": "Dense", "units": 1}]}],
    "published": {
        "source": "a made-up reference",
        "rows": [{"model": "GRU(4), 2 epochs", "run_as": "GRU(4)", "mae_val": [4.7, 4.9], "mae_test": 5.1}],
    },
}


def test_a_run_with_nothing_local_reads_the_embedded_record_and_names_it(nothing_local, tmp_path):
    lines: list[str] = []
    out = tmp_path / "run"
    metrics = run_experiment(parse_config(WEEKLY), out, progress=False, log=lines.append)
    used = {"files": [str(EMBEDDED_JENA)], "embedded_record": True, "file_resolution": "1 h", "resolution": "7 days"}
    assert json.loads((out / "config.json").read_text())["data_used"] == used
    assert metrics["data_used"] == used and metrics["rows"] == 418
    assert any(
        line.startswith("file: jena_climate_2009_2016_hourly.csv.gz (the 2009-2016 record embedded")
        and "rows used every 7 days" in line
        for line in lines
    )
    # Persistence by hand on the weekly rows (every 168th hourly row, by position), test part.
    import pandas as pd

    t = pd.read_csv(EMBEDDED_JENA)["T (degC)"].to_numpy()[::168]
    assert len(t) == 418
    a = int(0.64 * 418) + int(0.16 * 418)
    last = np.arange(a + 7, 418 - 2)
    assert metrics["models"]["persistence"]["mae_test"] == pytest.approx(np.abs(t[last + 2] - t[last]).mean(), abs=1e-4)
    report = run_report(metrics, out).splitlines()
    gru = next(line for line in report if line.split()[:1] == ["GRU(4)"])
    assert gru.split()[-2:] == ["4.70-4.90", "5.10"]
    assert "published (degC): a made-up reference" in report
    config, _, _ = load_run(out)  # the data_used record does not get in the way of reading the run back
    assert config.data.source == "record"
    again = evaluate_run(out)
    assert again["models"]["GRU(4)"]["mae_test"] == pytest.approx(metrics["models"]["GRU(4)"]["mae_test"], abs=1e-5)
