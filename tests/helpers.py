"""Test helpers shared by the experiment and CLI tests: a small Jena-format file with a known pattern."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd


def write_jena_csv(
    path: Path, days: int = 40, seed: int = 0, columns: tuple[str, ...] = ("p (mbar)", "T (degC)")
) -> Path:
    """Hourly rows in the benchmark's format: T follows a daily cycle plus noise, p is noise."""
    rng = np.random.default_rng(seed)
    n = days * 24
    t = np.arange(n)
    index = pd.date_range("2020-01-01 01:00", periods=n, freq="h")
    data = {
        "p (mbar)": 1000 + rng.normal(0, 2, n),
        "T (degC)": 10 + 5 * np.sin(2 * np.pi * t / 24) + 0.02 * t + rng.normal(0, 0.3, n),
        "rh (%)": 70 + 10 * np.cos(2 * np.pi * t / 24) + rng.normal(0, 1, n),
    }
    frame = pd.DataFrame({c: data[c] for c in columns})
    frame.insert(0, "Date Time", index.strftime("%d.%m.%Y %H:%M:%S"))
    frame.to_csv(path, index=False, float_format="%.2f")
    return path


def tiny_config(csv: Path, **overrides) -> dict:
    """A config dict that trains one tiny GRU for two epochs on ``csv``."""
    config = {
        "name": "tiny",
        "data": {"paths": [str(csv)], "split": [0.6, 0.2, 0.2]},
        "windows": {"sequence_length": 24, "horizon": 6},
        "training": {"epochs": 2, "batch_size": 64, "seed": 0},
        "baselines": ["persistence", "seasonal_persistence", "mean", "linear"],
        "models": [{"name": "GRU(4)", "layers": [{"type": "GRU", "units": 4}, {"type": "Dense", "units": 1}]}],
    }
    for key, value in overrides.items():
        config[key] = {**config[key], **value} if isinstance(value, dict) else value
    return config


def one_line_error(capsys, argv, *fragments, code: int = 2) -> str:
    """Run the CLI on ``argv``: it ends with ``code`` and one line on stderr (no traceback) holding each fragment."""
    from rnnkit.cli import main

    got = main([str(a) for a in argv])
    err = capsys.readouterr().err
    assert got == code, err
    assert err.count("\n") == 1 and "Traceback" not in err, err
    for fragment in fragments:
        assert fragment in err, err
    return err


def chromium() -> str:
    """The headless Chromium on PATH, or the test skips and says why."""
    import shutil

    import pytest

    for name in ("chromium", "chromium-browser", "google-chrome"):
        found = shutil.which(name)
        if found:
            return found
    pytest.skip("no headless Chromium on this machine (.ci/run installs Debian's 'chromium' with apt-get as root)")
