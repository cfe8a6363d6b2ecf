"""The bad-input matrix (issue 13): every door of rnnkit given bad input ends in one named line.

Grouped by door: config, data, API, run folder, faults. A CLI case asserts exit code 2, one
line on stderr naming the problem and no traceback; an API case asserts a RnnkitError (a
ValueError) whose message names the argument or file. A bug (any other exception) at the CLI
is exit code 1 with one line saying where the traceback was written.
"""

from __future__ import annotations

import gzip
import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch

from helpers import tiny_config, write_jena_csv
from rnnkit import cli
from rnnkit.cli import main
from rnnkit.errors import RnnkitError
from test_cli import toml_of


def one_line(capsys, argv, *fragments, code=2):
    got = main([str(a) for a in argv])
    err = capsys.readouterr().err
    assert got == code, err
    assert err.count("\n") == 1 and "Traceback" not in err, err
    for fragment in fragments:
        assert fragment in err, err
    return err


@pytest.fixture
def csv(tmp_path):
    return write_jena_csv(tmp_path / "hourly.csv", days=12)


def write_config(tmp_path, csv, text_edit=None, **overrides):
    text = toml_of(tiny_config(csv, **overrides))
    if text_edit is not None:
        text = text_edit(text)
    path = tmp_path / "c.toml"
    path.write_text(text, encoding="utf-8")
    return path


# --- door: config ---------------------------------------------------------------------------------
def _replace(old, new):
    return lambda text: text.replace(old, new, 1)


CONFIG_CASES = [
    ("nested 5000 deep", lambda t: "a = " + "[" * 5000 + "]" * 5000 + "\n", "nested too deeply"),
    ("not TOML", lambda t: t + "\n[[[broken\n", "not valid TOML"),
    ("not UTF-8", None, "not a UTF-8 text file"),
    ("unknown key", _replace("[windows]", "[windows]\nhorizn = 3"), "'windows.horizn'"),
    ("epochs a string", _replace("epochs = 2", 'epochs = "two"'), "'training.epochs' must be an integer"),
]


@pytest.mark.parametrize("edit,fragment", [c[1:] for c in CONFIG_CASES], ids=[c[0] for c in CONFIG_CASES])
def test_config_door(tmp_path, csv, capsys, edit, fragment):
    path = write_config(tmp_path, csv, edit)
    if edit is None:
        path.write_bytes(path.read_bytes() + "\n# caf\xe9\n".encode("latin-1"))
    one_line(capsys, ["summary", path, "--features", "2"], fragment)


# --- door: data files -----------------------------------------------------------------------------
def _gzip_of(csv: Path, out: Path) -> Path:
    out.write_bytes(gzip.compress(csv.read_bytes()))
    return out


def corrupt_middle(tmp_path, csv):
    blob = bytearray(_gzip_of(csv, tmp_path / "x.csv.gz").read_bytes())
    for i in range(len(blob) // 3, len(blob) // 3 + 200):
        blob[i] ^= 0x5A
    (tmp_path / "bad.csv.gz").write_bytes(bytes(blob))
    return tmp_path / "bad.csv.gz"


def truncated_gzip(tmp_path, csv):
    blob = _gzip_of(csv, tmp_path / "x.csv.gz").read_bytes()
    (tmp_path / "bad.csv.gz").write_bytes(blob[: len(blob) // 2])
    return tmp_path / "bad.csv.gz"


def not_gzip(tmp_path, csv):
    (tmp_path / "bad.csv.gz").write_bytes(b"plain text, not gzip")
    return tmp_path / "bad.csv.gz"


def header_only(tmp_path, csv):
    (tmp_path / "bad.csv").write_text(csv.read_text().splitlines()[0] + "\n")
    return tmp_path / "bad.csv"


def empty_file(tmp_path, csv):
    (tmp_path / "bad.csv").write_text("")
    return tmp_path / "bad.csv"


def iso_timestamps(tmp_path, csv):
    lines = csv.read_text().splitlines()
    lines[3] = "2020-01-01 03:00:00" + lines[3][len("01.01.2020 03:00:00"):]
    (tmp_path / "bad.csv").write_text("\n".join(lines) + "\n")
    return tmp_path / "bad.csv"


DATA_CASES = [
    ("corrupt gzip", corrupt_middle, "corrupt or truncated compressed file"),
    ("truncated gzip", truncated_gzip, "corrupt or truncated compressed file"),
    ("not gzip", not_gzip, "bad.csv.gz: "),
    ("header only", header_only, "no data rows"),
    ("empty file", empty_file, "the file is empty"),
    ("ISO timestamps", iso_timestamps, "must be dd.mm.yyyy HH:MM:SS; data row 3 holds '2020-01-01 03:00:00'"),
]


@pytest.mark.parametrize("make,fragment", [c[1:] for c in DATA_CASES], ids=[c[0] for c in DATA_CASES])
@pytest.mark.parametrize("door", ["rnnkit data", "config data.paths"])
def test_data_door(tmp_path, csv, capsys, make, fragment, door):
    bad = make(tmp_path, csv)
    if door == "rnnkit data":
        one_line(capsys, ["data", bad], fragment, "bad.csv")
    else:
        config = write_config(tmp_path, bad)
        one_line(capsys, ["windows", config], fragment, "bad.csv")


# --- door: API ------------------------------------------------------------------------------------
def test_float64_input_to_a_float32_model_is_converted():
    from rnnkit.layers import GRU, Dense
    from rnnkit.models import Sequential

    torch.manual_seed(0)
    model = Sequential(GRU(4), Dense(1))
    x = torch.randn(2, 5, 3, dtype=torch.float64)
    expected = model(x.float())
    torch.testing.assert_close(model(x), expected, rtol=0, atol=0)


def test_integer_input_to_a_recurrent_layer_is_refused():
    from rnnkit.layers import GRU

    with pytest.raises(RnnkitError, match="GRU input must be floating point, got torch.int64"):
        GRU(3)(torch.ones(2, 3, 4, dtype=torch.long))


# --- door: run folder -----------------------------------------------------------------------------
def test_output_below_a_regular_file(tmp_path, csv, capsys):
    (tmp_path / "afile").write_text("x")
    config = write_config(tmp_path, csv)
    one_line(capsys, ["train", config, "--output", tmp_path / "afile" / "run", "--quiet"], "afile")


@pytest.mark.parametrize("name,content,fragment", [
    ("metrics.json", "{not json", "metrics.json: the run metrics is not valid JSON"),
    ("metrics.json", "[1, 2]", "metrics.json: the run metrics must hold a JSON object"),
    ("scaler.json", "garbage", "scaler.json: the scaler is not valid JSON"),
    ("scaler.json", '{"columns": ["a"], "mean": ["x"], "std": [1]}', "scaler.json: a scaler needs"),
    ("scaler.json", '{"columns": ["a", "b"], "mean": [1], "std": [1]}', "scaler.json: a scaler's 'columns'"),
    ("config.json", "\x00\x01", "config.json: the run config is not valid JSON"),
])
def test_damaged_run_files(tmp_path, csv, capsys, name, content, fragment):
    run = tmp_path / "run"
    config = write_config(tmp_path, csv, training={"epochs": 1})
    assert main(["train", str(config), "--output", str(run), "--quiet"]) == 0
    capsys.readouterr()
    (run / name).write_text(content)
    one_line(capsys, ["evaluate", run], fragment)


# --- door: faults (a bug is not bad input) --------------------------------------------------------
def test_a_bug_is_one_line_exit_1_with_the_traceback_in_the_run_folder(tmp_path, csv, capsys, monkeypatch):
    import rnnkit.experiment as experiment

    def broken(*args, **kwargs):
        raise KeyError("an internal key")  # before issue 13 a KeyError was reported as bad input

    monkeypatch.setattr(experiment, "run_report", broken)
    run = tmp_path / "run"
    config = write_config(tmp_path, csv, training={"epochs": 1})
    err = one_line(capsys, ["train", config, "--output", run, "--quiet"], "internal error", "KeyError", code=1)
    log = run / "error.log"
    assert str(log) in err and "--debug" in err
    assert "Traceback" in log.read_text() and "an internal key" in log.read_text()


def test_a_bug_without_a_run_folder_goes_to_the_cache_and_debug_prints_it(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("HOME", str(tmp_path))
    import rnnkit.datasets as datasets

    monkeypatch.setattr(datasets, "describe", lambda paths: [][1])
    assert main(["--debug", "data", "x.csv"]) == 1
    err = capsys.readouterr().err
    assert err.splitlines()[0].startswith("rnnkit: internal error (a bug, not your input): IndexError")
    assert "Traceback" in err  # --debug
    logs = list((tmp_path / ".cache" / "rnnkit" / "logs").glob("rnnkit-error-*.log"))
    assert len(logs) == 1 and "IndexError" in logs[0].read_text()


def test_a_full_disk_is_one_line_exit_2(tmp_path, csv, capsys, monkeypatch):
    import errno

    def full(*args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device", str(tmp_path / "run" / "metrics.json"))

    import rnnkit.experiment as experiment

    monkeypatch.setattr(experiment, "run_report", full)
    config = write_config(tmp_path, csv, training={"epochs": 1})
    one_line(capsys, ["train", config, "--output", tmp_path / "run", "--quiet"], "No space left on device",
             "metrics.json")
