"""The bad-input matrix (issue 13): every door of rnnkit given bad input ends in one named line.

Grouped by door: config, data, API, run folder, faults. A CLI case asserts exit code 2, one
line on stderr naming the problem and no traceback; an API case asserts a RnnkitError (a
ValueError) whose message names the argument or file. A bug (any other exception) at the CLI
is exit code 1 with one line saying where the traceback was written.
"""

from __future__ import annotations

import contextlib
import gzip
import math
import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from helpers import one_line_error as one_line
from helpers import tiny_config, write_jena_csv
from test_cli import toml_of

from rnnkit import baselines, diagnostics, plots
from rnnkit.cli import main
from rnnkit.corpora import donald
from rnnkit.data.text import Vocabulary, pad_sequences
from rnnkit.errors import RnnkitError
from rnnkit.models import ensemble, forecasters, generators, language, series_embedding, taggers
from rnnkit.training import batches, callbacks, inference, losses
from rnnkit.training import metrics as training_metrics


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
    (
        "use_bias a string",
        _replace("units = 4}", 'units = 4, use_bias = "false"}'),
        "models[0].layers[0] (GRU): use_bias must be True or False, got 'false'",
    ),
    (
        "go_backwards a string",
        _replace("units = 4}", 'units = 4, go_backwards = "false"}'),
        "go_backwards must be True or False, got 'false'",
    ),
    (
        "return_sequences 1",
        _replace("units = 4}", "units = 4, return_sequences = 1}"),
        "return_sequences must be True or False, got 1",
    ),
    ("dropout 1.5", _replace("units = 4}", "units = 4, dropout = 1.5}"), "dropout must be in [0, 1), got 1.5"),
    (
        "recurrent_dropout -0.1",
        _replace("units = 4}", "units = 4, recurrent_dropout = -0.1}"),
        "recurrent_dropout must be in [0, 1), got -0.1",
    ),
    ("units 0", _replace("units = 4}", "units = 0}"), "units must be a positive integer, got 0"),
    ("units 2.5", _replace("units = 4}", "units = 2.5}"), "units must be a positive integer, got 2.5"),
    ("unknown activation", _replace("units = 4}", 'units = 4, activation = "tanhh"}'), "activation must be one of"),
    (
        "Dense use_bias string",
        _replace('"Dense", units = 1}', '"Dense", units = 1, use_bias = "no"}'),
        "models[0].layers[1] (Dense): use_bias must be True or False",
    ),
    (
        "Dropout rate 1",
        _replace('{type = "Dense"', '{type = "Dropout", rate = 1.0}, {type = "Dense"'),
        "rate must be in [0, 1), got 1.0",
    ),
    (
        "horizon 0 leak",
        _replace("horizon = 6", "horizon = 0"),
        "windows.horizon = 0 makes the target ('T (degC)') the last input row",
    ),
    ("horizon -1", _replace("horizon = 6", "horizon = -1"), "windows.horizon"),
    ("sequence_length 0", _replace("sequence_length = 24", "sequence_length = 0"), "windows.sequence_length"),
    ("learning_rate 0", _replace("[training]", "[training]\nlearning_rate = 0.0"), "training.learning_rate"),
    ("batch_size 0", _replace("batch_size = 64", "batch_size = 0"), "training.batch_size"),
    ("shuffle a string", _replace("[training]", '[training]\nshuffle = "false"'), "training.shuffle"),
    ("check_finite a string", _replace("[training]", '[training]\ncheck_finite = "no"'), "training.check_finite"),
    ("split not summing to 1", _replace("split = [0.6, 0.2, 0.2]", "split = [0.6, 0.2, 0.3]"), "data.split"),
    ("stateful 1", _replace("[training]", "[training]\nstateful = 1"), "training.stateful"),
    ("unknown table", lambda t: t + "\n[trainig]\nepochs = 1\n", "trainig"),
    (
        "duplicate model names",
        lambda t: t + '[[models]]\nname = "GRU(4)"\nlayers = [{type = "Dense", units = 1}]\n',
        "model names must be unique",
    ),
    ("unknown layer type", _replace('"GRU"', '"GRUU"'), "unknown layer type 'GRUU'"),
    ("unknown layer argument", _replace("units = 4}", "units = 4, unitz = 3}"), "unknown argument 'unitz'"),
    ("task unknown", lambda t: 'task = "forecastt"\n' + t, "task"),
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
    lines[3] = "2020-01-01 03:00:00" + lines[3][len("01.01.2020 03:00:00") :]
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


def _layers():
    from rnnkit import layers

    return layers


API_CASES = [
    (
        "GRU go_backwards 'false'",
        lambda L: L.GRU(4, go_backwards="false"),
        "go_backwards must be True or False, got 'false'",
    ),
    (
        "LSTM return_sequences 'true'",
        lambda L: L.LSTM(4, return_sequences="true"),
        "return_sequences must be True or False",
    ),
    ("SimpleRNN stateful 1", lambda L: L.SimpleRNN(4, stateful=1), "stateful must be True or False, got 1"),
    ("GRU use_bias 'false'", lambda L: L.GRU(4, use_bias="false"), "use_bias must be True or False"),
    ("GRU reset_after 0", lambda L: L.GRU(4, reset_after=0), "reset_after must be True or False, got 0"),
    (
        "LSTM unit_forget_bias 'yes'",
        lambda L: L.LSTM(4, unit_forget_bias="yes"),
        "unit_forget_bias must be True or False",
    ),
    ("GRU return_state None", lambda L: L.GRU(4, return_state=None), "return_state must be True or False, got None"),
    ("Dense use_bias 'yes'", lambda L: L.Dense(4, use_bias="yes"), "use_bias must be True or False"),
    ("Embedding mask_zero 1", lambda L: L.Embedding(5, 2, mask_zero=1), "mask_zero must be True or False"),
    ("GRU units 0", lambda L: L.GRU(0), "units must be a positive integer, got 0"),
    ("LSTM units -3", lambda L: L.LSTM(-3), "units must be a positive integer, got -3"),
    ("GRU units 2.0", lambda L: L.GRU(2.0), "units must be a positive integer, got 2.0"),
    ("GRU units True", lambda L: L.GRU(True), "units must be a positive integer, got True"),
    ("Dense units '4'", lambda L: L.Dense("4"), "units must be a positive integer, got '4'"),
    ("GRU dropout 1.0", lambda L: L.GRU(4, dropout=1.0), "dropout must be in [0, 1), got 1.0"),
    ("GRU dropout nan", lambda L: L.GRU(4, dropout=math.nan), "dropout must be in [0, 1), got nan"),
    ("LSTM recurrent_dropout -0.5", lambda L: L.LSTM(4, recurrent_dropout=-0.5), "recurrent_dropout must be in [0, 1)"),
    ("Dropout rate 1.5", lambda L: L.Dropout(1.5), "rate must be in [0, 1), got 1.5"),
    (
        "Bidirectional merge_mode 'cat'",
        lambda L: L.Bidirectional(L.GRU(2), merge_mode="cat"),
        "merge_mode must be one of",
    ),
    ("GRU activation 'relu6'", lambda L: L.GRU(2, activation="relu6"), "activation must be one of"),
    (
        "GRU recurrent_dropout_mode 'x'",
        lambda L: L.GRU(2, recurrent_dropout=0.1, recurrent_dropout_mode="x"),
        "recurrent_dropout_mode must be one of",
    ),
    ("l2 negative", lambda L: L.GRU(2, kernel_regularizer={"l2": -1.0}), "l2 must be a finite number >= 0"),
    ("regulariser typo", lambda L: L.GRU(2, kernel_regularizer={"l3": 1.0}), "unknown regulariser keys"),
]


@pytest.mark.parametrize("make,fragment", [c[1:] for c in API_CASES], ids=[c[0] for c in API_CASES])
def test_api_door_layer_arguments(make, fragment):
    with pytest.raises(RnnkitError) as caught:
        make(_layers())
    assert fragment in str(caught.value) and "\n" not in str(caught.value)


def _rk():
    import rnnkit

    return rnnkit


def _small_rnn():
    rk = _rk()
    return rk.Sequential(rk.layers.SimpleRNN(2), rk.layers.Dense(1), input_shape=(3, 1))


def _xy():
    return torch.zeros(4, 3, 1), torch.zeros(4, 1)


# One case per module that the issue 22 audit turned to RnnkitError (each a bare ValueError before,
# and so "internal error" exit 1 wherever a command reached it): the class, not only the message.
API_AUDIT_CASES = [
    ("fit verbose 3", lambda: _small_rnn().fit(*_xy(), verbose=3), "verbose must be 'auto', 0, 1 or 2, got 3"),
    ("fit x without y", lambda: _small_rnn().fit(torch.zeros(4, 3, 1)), "x is an array without targets"),
    ("compile optimizer", lambda: _small_rnn().compile(optimizer="adamw"), "optimizer must be one of"),
    (
        "gradient_flow 2-D x",
        lambda: diagnostics.gradient_flow(_small_rnn(), torch.zeros(3, 4)),
        "x must be a floating-point tensor (batch, time, features), got (3, 4)",
    ),
    (
        "set_remember_bias Dense",
        lambda: diagnostics.set_remember_bias(_rk().layers.Dense(2), 4.0),
        "layer must be an rnnkit SimpleRNN, LSTM or GRU, got Dense",
    ),
    (
        "plot_history no epoch",
        lambda: plots.plot_history([], None),
        "history must hold at least one epoch, got none",
    ),
    (
        "get_loss hinge",
        lambda: losses.get_loss("hinge"),
        "loss must be one of mse, mae, huber, cross_entropy, pinball, got 'hinge'",
    ),
    (
        "skill persistence 0",
        lambda: training_metrics.skill(1.0, 0.0),
        "mae_persistence must be > 0, got 0.0",
    ),
    (
        "Ensemble of one",
        lambda: ensemble.Ensemble([_small_rnn()]),
        "an ensemble needs at least two members, got 1",
    ),
    (
        "Clock no pairs",
        lambda: forecasters.Clock([]),
        "pairs must hold at least one (sin_index, cos_index, period), got []",
    ),
    (
        "generate 3-D start ids",
        lambda: generators.generate(generators.CharRNN("ab"), torch.zeros(1, 1, 1, dtype=torch.long), 3),
        "start ids must be (s,) or (batch, s) with s >= 1, got shape (1, 1, 1)",
    ),
    (
        "next_word_windows one word",
        lambda: language.next_word_windows([["a"]], Vocabulary([["a"]]), 3),
        "sentences must hold at least one sentence of two or more words",
    ),
    (
        "Sequential of a torch layer",
        lambda: _rk().Sequential(torch.nn.Linear(3, 2)),
        "Sequential layers must be rnnkit layers (rk.layers.*), got Linear",
    ),
    (
        "SeriesEmbedding dim 0",
        lambda: series_embedding.SeriesEmbedding(_small_rnn(), 3, 0),
        "series and dim must be positive integers, got series=3, dim=0",
    ),
    (
        "tagging_dataset unknown tag",
        lambda: taggers.tagging_dataset([[("paris", "LOC")]], tag_names=["O", "PERSON"]),
        "tags must be among tag_names ['O', 'PERSON'], got ['LOC']",
    ),
    ("Dense on a 1-D input", lambda: _rk().layers.Dense(2)(torch.ones(3)), "Dense expects inputs of shape"),
    (
        "Embedding id out of range",
        lambda: _rk().layers.Embedding(5, 2)(torch.tensor([[7]])),
        "Embedding inputs must be ids in [0, 5) (input_dim), got values in [7, 7]",
    ),
    (
        "Bidirectional of a Dense",
        lambda: _rk().layers.Bidirectional(_rk().layers.Dense(2)),
        "layer must be a SimpleRNN, LSTM or GRU layer",
    ),
    ("Dropout set_weights", lambda: _rk().layers.Dropout(0.1).set_weights([np.zeros(1)]), "Dropout has no weights"),
    (
        "EarlyStopping monitor val_mae",
        lambda: callbacks.EarlyStopping(monitor="val_mae"),
        "monitor must be 'val_loss' or 'loss'",
    ),
    (
        "TensorPair of unequal lengths",
        lambda: batches.TensorPair(torch.zeros(3, 2), torch.zeros(4, 1)),
        "data x and y must have the same number of examples, got 3 and 4",
    ),
    (
        "predict batch_size 0",
        lambda: inference.predict(torch.nn.Linear(3, 1), torch.zeros(10, 3), batch_size=0),
        "batch_size must be a positive integer, got 0",
    ),
    ("pad_sequences padding", lambda: pad_sequences([[1, 2]], padding="middle"), "padding must be one of"),
    ("donald sentences 0", lambda: donald.sentences(0), "n must be a positive integer, got 0"),
    (
        "MeanDailyCurve not fitted",
        lambda: baselines.MeanDailyCurve(0, 1, 2, target_length=2, period=4)(torch.zeros(1, 3, 3)),
        "MeanDailyCurve must be fitted before use: call fit(rows)",
    ),
    (
        "serialize a torch layer",
        lambda: _rk().layers.serialize(torch.nn.Linear(3, 2)),
        "serialize: layer must be one of",
    ),
]


@pytest.mark.parametrize("call,fragment", [c[1:] for c in API_AUDIT_CASES], ids=[c[0] for c in API_AUDIT_CASES])
def test_api_door_audited_checks_raise_rnnkit_error(call, fragment):
    with pytest.raises(RnnkitError) as caught:
        call()
    assert fragment in str(caught.value) and "\n" not in str(caught.value), caught.value


TRAINER_CASES = [
    ("learning_rate 0", {"learning_rate": 0}, "learning_rate must be a finite number > 0"),
    ("epochs 0", {"epochs": 0}, "epochs"),
    ("batch_size True", {"batch_size": True}, "batch_size"),
    ("shuffle 'no'", {"shuffle": "no"}, "shuffle must be True, False or None"),
    ("clip_grad_norm -1", {"clip_grad_norm": -1.0}, "clip_grad_norm must be None or a finite number > 0"),
    ("lr_factor 1", {"lr_factor": 1.0}, "lr_factor must be in (0, 1)"),
    ("seed -1", {"seed": -1}, "seed must be an integer >= 0"),
    ("optimizer 'adamw'", {"optimizer": "adamw"}, "optimizer must be one of"),
    ("check_finite 'yes'", {"check_finite": "yes"}, "check_finite must be True or False"),
]


@pytest.mark.parametrize("kwargs,fragment", [c[1:] for c in TRAINER_CASES], ids=[c[0] for c in TRAINER_CASES])
def test_api_door_trainer_arguments(kwargs, fragment):
    from rnnkit.training import Trainer

    with pytest.raises(ValueError, match=re.escape(fragment)):
        Trainer(**kwargs)


@pytest.mark.parametrize("split,bad", [("train", math.nan), ("validation", math.nan), ("validation", math.inf)])
def test_api_door_non_finite_data_stops_training(split, bad):
    from rnnkit.training import Trainer

    x, y = torch.zeros(12, 5, 2), torch.zeros(12, 1)
    broken = x.clone()
    broken[7, 4, 0] = bad
    train, val = ((broken, y), (x, y)) if split == "train" else ((x, y), (broken, y))
    model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(10, 1))
    with pytest.raises(RnnkitError, match=f"{split} inputs hold NaN or inf: first in window 7 \\(step 4, feature 0\\)"):
        Trainer(epochs=3).fit(model, train, val)


def test_integer_input_to_a_recurrent_layer_is_refused():
    from rnnkit.layers import GRU

    with pytest.raises(RnnkitError, match="GRU input must be floating point, got torch.int64"):
        GRU(3)(torch.ones(2, 3, 4, dtype=torch.long))


# --- door: run folder -----------------------------------------------------------------------------
def test_output_below_a_regular_file(tmp_path, csv, capsys):
    (tmp_path / "afile").write_text("x")
    config = write_config(tmp_path, csv)
    one_line(capsys, ["train", config, "--output", tmp_path / "afile" / "run", "--quiet"], "afile")


@pytest.mark.parametrize(
    "name,content,fragment",
    [
        ("metrics.json", "{not json", "metrics.json: the run metrics is not valid JSON"),
        ("metrics.json", "[1, 2]", "metrics.json: the run metrics must hold a JSON object"),
        ("scaler.json", "garbage", "scaler.json: the scaler is not valid JSON"),
        ("scaler.json", '{"columns": ["a"], "mean": ["x"], "std": [1]}', "scaler.json: a scaler needs"),
        ("scaler.json", '{"columns": ["a", "b"], "mean": [1], "std": [1]}', "scaler.json: a scaler's 'columns'"),
        ("config.json", "\x00\x01", "config.json: the run config is not valid JSON"),
    ],
)
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
    one_line(
        capsys, ["train", config, "--output", tmp_path / "run", "--quiet"], "No space left on device", "metrics.json"
    )


# --- door: data files (more) ----------------------------------------------------------------------
def test_a_folder_given_as_a_data_file(tmp_path, capsys):
    one_line(capsys, ["data", tmp_path], f"{tmp_path} is a folder: name the data file(s) in it")


def test_files_of_different_sampling_steps_are_refused(tmp_path, csv, capsys):
    ten = write_jena_csv(tmp_path / "ten.csv", days=2)
    lines = ten.read_text().splitlines()
    stamps = pd.date_range("2020-03-01 00:10", periods=len(lines) - 1, freq="10min").strftime("%d.%m.%Y %H:%M:%S")
    ten.write_text("\n".join([lines[0], *[s + line[19:] for s, line in zip(stamps, lines[1:])]]) + "\n")
    one_line(
        capsys, ["data", csv, ten], "different sampling steps (hourly.csv: 0 days 01:00:00, ten.csv: 0 days 00:10:00)"
    )


def test_a_block_at_another_step_inside_a_file_is_refused(tmp_path, csv, capsys):
    lines = csv.read_text().splitlines()
    late = pd.date_range("2021-01-01 00:00", periods=60, freq="10min").strftime("%d.%m.%Y %H:%M:%S")
    mixed = tmp_path / "mixed.csv"
    mixed.write_text("\n".join([*lines, *[s + line[19:] for s, line in zip(late, lines[1:61])]]) + "\n")
    one_line(
        capsys, ["data", mixed], "mixed.csv: rows at two sampling steps: 0 days 01:00:00 for most, 0 days 00:10:00"
    )


@pytest.mark.parametrize("encoding", ["utf-8", "utf-8-sig", "latin-1", "utf-16"])
def test_every_encoding_gives_the_same_column_names(tmp_path, encoding):
    from rnnkit.datasets.jena import read_jena_file

    text = '"Date Time","SWDR (W/m²)","T (degC)"\n01.01.2025 00:10:00, 1.5, -2.0\n01.01.2025 00:20:00, 2.5, -2.5\n'
    path = tmp_path / "mpi_roof.csv"
    path.write_bytes(text.encode(encoding))
    frame = read_jena_file(path)
    assert list(frame.columns) == ["SWDR (W/m²)", "T (degC)"]
    assert frame["SWDR (W/m²)"].tolist() == [1.5, 2.5]


@pytest.mark.parametrize("command", ["windows", "train"])
def test_data_columns_naming_a_column_not_in_the_file(tmp_path, csv, capsys, command):
    config = write_config(tmp_path, csv, data={"columns": ["T (degC)", "rh (%)"]})  # the file: p and T only
    argv = [command, config] + (["--output", tmp_path / "run", "--quiet"] if command == "train" else [])
    one_line(capsys, argv, "columns (data.columns) ['rh (%)'] are not in hourly.csv; it has ['p (mbar)', 'T (degC)']")
    assert not (tmp_path / "run").exists()  # nothing written for a config that cannot run


def test_a_constant_feature_in_the_training_part_is_bad_input_not_a_bug(tmp_path, csv, capsys):
    lines = csv.read_text().splitlines()
    flat = tmp_path / "flat.csv"
    flat.write_text("\n".join([lines[0] + ',"rain (mm)"', *[line + ",0.00" for line in lines[1:]]]) + "\n")
    config = write_config(tmp_path, flat, data={"features": ["T (degC)", "rain (mm)"], "columns": "all"})
    one_line(capsys, ["train", config, "--output", tmp_path / "run", "--quiet"], "['rain (mm)'] are constant (std 0)")


# --- door: sweeps (issue 22) ----------------------------------------------------------------------
def write_sweep(tmp_path, csv, params, epochs=2, **search):
    """A sweep config on ``csv`` searching ``params`` (random sampler, seed 0, 3 trials unless told)."""
    from rnnkit.config import config_toml
    from rnnkit.tasks import parse_config

    raw = {**tiny_config(csv, training={"epochs": epochs}, baselines=["persistence"]), "output": {"report": False}}
    raw["search"] = {"trials": 3, "sampler": "random", "seed": 0, "params": params, **search}
    path = tmp_path / "sweep.toml"
    path.write_text(config_toml(parse_config(raw)), encoding="utf-8")
    return path


def _alive(pid):
    from rnnkit.rundir import pid_alive

    return pid_alive(pid)


def killed_sweep(tmp_path, csv, *, group):
    """``rnnkit sweep --workers 2`` killed with -9 once both workers run a trial: the sweep alone (group=False)
    or with its workers (group=True: the whole process group, as the OOM killer or a job scheduler may).
    Returns the config, the sweep folder and the workers' pids."""
    import os
    import signal
    import subprocess
    import sys
    import time

    config = write_sweep(
        tmp_path,
        csv,
        {"training.learning_rate": {"type": "float", "low": 1e-3, "high": 1e-2}},
        epochs=100_000,
        trials=2,
    )  # trials long enough to be caught running
    out = tmp_path / "sweep"
    sweep = subprocess.Popen(
        [sys.executable, "-m", "rnnkit", "sweep", str(config), "--output", str(out), "--workers", "2"],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )
    try:
        for line in sweep.stdout:
            if line.startswith("workers started: pids "):
                pids = [int(p) for p in line.removeprefix("workers started: pids ").split(",")]
                break
        else:
            raise AssertionError("the sweep started no workers")
        deadline = time.monotonic() + 60
        while sum("trial " in p.read_text() for p in out.glob("worker-*.log")) < 2:
            assert time.monotonic() < deadline, "the workers ran no trial"
            time.sleep(0.1)
        time.sleep(0.5)  # into the trials' epochs
    except BaseException:
        os.killpg(sweep.pid, signal.SIGKILL)
        raise
    if group:
        os.killpg(sweep.pid, signal.SIGKILL)
    else:
        os.kill(sweep.pid, signal.SIGKILL)
    sweep.wait()
    sweep.stdout.close()
    return config, out, pids


def test_sweep_killed_with_9_stops_its_workers(tmp_path, csv):
    import time

    _, out, pids = killed_sweep(tmp_path, csv, group=False)
    killed = time.monotonic()
    while any(_alive(pid) for pid in pids) and time.monotonic() - killed < 5:
        time.sleep(0.05)
    assert not any(_alive(pid) for pid in pids), f"workers {pids} still run 5 s after their sweep was killed"
    table = pd.read_csv(out / "trials.csv")  # each worker told its trial FAIL, and why, before it stopped
    assert table["state"].tolist() == ["FAIL", "FAIL"]
    assert all(reason.startswith("stopped: the sweep's process (pid ") for reason in table["error"]), table


def test_sweep_resumed_after_a_kill_agrees_with_its_study(tmp_path, csv, capsys, monkeypatch):
    import optuna

    from rnnkit import search
    from rnnkit.search import opened

    config, out, pids = killed_sweep(tmp_path, csv, group=True)  # nobody lived to tell: both trials RUNNING
    chosen = search.trial_config  # the two new trials of the resume train 2 epochs, not the killed ones' 100,000
    monkeypatch.setattr(
        search, "trial_config", lambda c, values, source: chosen(c, {**values, "training.epochs": 2}, source)
    )
    assert main(["sweep", str(config), "--output", str(out), "--resume", "--trials", "2"]) == 0
    printed = capsys.readouterr().out
    with opened(f"sqlite:///{out / 'study.db'}") as storage:
        study = {t.number: t.state.name for t in optuna.load_study(study_name="tiny", storage=storage).get_trials()}
    table = pd.read_csv(out / "trials.csv").set_index("number")
    # no RUNNING left in either; the two lost trials do not count toward --trials 2: two more ran
    assert study == table["state"].to_dict() == {0: "FAIL", 1: "FAIL", 2: "COMPLETE", 3: "COMPLETE"}
    reasons = set(table["error"][:2])
    assert reasons == {f"its worker (pid {pid}) ended while the trial ran: killed, or its sweep was" for pid in pids}
    assert "trials: 2 COMPLETE, 0 PRUNED, 2 FAIL" in printed and "FAIL trial 0: its worker (pid " in printed


DONE = ("COMPLETE", "PRUNED")  # a finished trial's states


@pytest.mark.parametrize(
    "workers,who",
    [(2, "group"), (2, "parent"), (1, "group")],
    ids=["Ctrl-C, 2 workers", "SIGINT to the sweep alone, 2 workers", "Ctrl-C, 1 worker"],
)
def test_ctrl_c_in_a_sweep_stops_it_in_one_line_and_keeps_the_finished_trials(tmp_path, csv, capsys, workers, who):
    """Ctrl-C (SIGINT to the process group, as a terminal sends it; or to the sweep's process alone): exit 130,
    one line saying how many trials finished and how to resume; trials.csv and the study agree and keep
    them; the trials stopped mid-run are FAIL "interrupted", no worker says "a bug"; --resume goes on."""
    import os
    import signal
    import subprocess
    import sys
    import time

    import optuna

    from rnnkit.search import INTERRUPTED, opened

    config = write_sweep(  # the median pruner: each epoch's report is a storage call too (a cut one locked SQLite)
        tmp_path,
        csv,
        {"training.learning_rate": {"type": "float", "low": 1e-3, "high": 1e-2}},
        epochs=4,
        trials=40,
        pruner="median",
        startup_trials=2,
    )
    out = tmp_path / "sweep"
    with open(tmp_path / "stdout", "w") as stdout, open(tmp_path / "stderr", "w") as stderr:
        sweep = subprocess.Popen(
            [sys.executable, "-m", "rnnkit", "sweep", str(config), "--output", str(out), "--workers", str(workers)],
            stdout=stdout,
            stderr=stderr,
            start_new_session=True,
        )
    try:
        deadline = time.monotonic() + 120
        while not (out / "trials.csv").is_file() or pd.read_csv(out / "trials.csv")["state"].isin(DONE).sum() < 2:
            assert time.monotonic() < deadline and sweep.poll() is None, "the sweep finished no 2 trials"
            time.sleep(0.1)
        (os.killpg if who == "group" else os.kill)(sweep.pid, signal.SIGINT)
        code = sweep.wait(timeout=60)
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(sweep.pid, signal.SIGKILL)
    err = (tmp_path / "stderr").read_text()
    assert code == 130, err
    assert err.count("\n") == 1 and "Traceback" not in err and "bug" not in err, err
    table = pd.read_csv(out / "trials.csv").set_index("number")
    with opened(f"sqlite:///{out / 'study.db'}") as storage:
        study = optuna.load_study(study_name="tiny", storage=storage).get_trials()
    assert {t.number: t.state.name for t in study} == table["state"].to_dict()  # the file agrees with the study
    complete = {t.number: t.value for t in study if t.state.name in DONE}
    assert len(complete) >= 2 and set(table["state"]) <= {*DONE, "FAIL"}  # none left RUNNING
    stopped = table.index[table["state"] == "FAIL"].tolist()
    assert all(table.loc[n, "error"] == INTERRUPTED for n in stopped), table
    assert err == (
        f"rnnkit: interrupted: {len(complete)} of 40 trials finished"
        + (f", {len(stopped)} stopped while running (FAIL)" if stopped else "")
        + f"; {out}/trials.csv and the study keep them; resume with: rnnkit sweep CONFIG --output {out} --resume\n"
    )
    assert not any("a bug" in p.read_text() for p in out.glob("worker-*.log"))
    assert not list(out.glob("worker-*.error"))
    if workers == 1:
        return
    more = len(table) + 1
    assert main(["sweep", str(config), "--output", str(out), "--resume", "--trials", str(more)]) == 0
    with opened(f"sqlite:///{out / 'study.db'}") as storage:
        after = optuna.load_study(study_name="tiny", storage=storage).get_trials()
    ran = [t for t in after if not t.user_attrs.get("stopped")]  # the stopped ones do not count toward --trials
    assert len(ran) == more and len(after) == more + len(stopped) and after[-1].state.name in DONE
    assert {t.number: t.value for t in after if t.number in complete} == complete  # kept, to the last bit


def test_a_sweep_that_ignores_ctrl_c_runs_to_its_end_workers_too(tmp_path, csv):
    """Started with SIGINT ignored (``nohup``, or ``&`` in a script), a sweep and its workers ignore a Ctrl-C
    sent to its process group: before, the workers stopped their trials while the sweep went on."""
    import os
    import signal
    import subprocess
    import sys
    import time

    config = write_sweep(
        tmp_path, csv, {"training.learning_rate": {"type": "float", "low": 1e-3, "high": 1e-2}}, trials=4
    )
    out = tmp_path / "sweep"
    sweep = subprocess.Popen(
        [sys.executable, "-m", "rnnkit", "sweep", str(config), "--output", str(out), "--workers", "2"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_IGN),
    )
    try:
        deadline = time.monotonic() + 120
        while sum("trial " in p.read_text() for p in out.glob("worker-*.log")) < 2:
            assert time.monotonic() < deadline and sweep.poll() is None, "the workers ran no trial"
            time.sleep(0.1)
        os.killpg(sweep.pid, signal.SIGINT)
        _, err = sweep.communicate(timeout=120)
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(sweep.pid, signal.SIGKILL)
    assert sweep.returncode == 0, err
    assert pd.read_csv(out / "trials.csv")["state"].tolist() == ["COMPLETE"] * 4


def test_sweep_whose_every_trial_fails_on_bad_input_says_why(tmp_path, csv, capsys):
    config = write_sweep(tmp_path, csv, {"windows.sequence_length": {"type": "int", "low": 400, "high": 800}})
    assert main(["sweep", str(config), "--output", str(tmp_path / "out")]) == 2
    captured = capsys.readouterr()
    assert captured.err.count("\n") == 1 and "Traceback" not in captured.err, captured.err
    assert captured.err.startswith(
        "rnnkit: error: every trial of the sweep failed on bad input (3 FAIL; each one's reason in "
    ), captured.err
    table = pd.read_csv(tmp_path / "out" / "trials.csv")
    assert table["state"].tolist() == ["FAIL"] * 3
    for number, length, reason in zip(table["number"], table["windows.sequence_length"], table["error"]):
        assert f"sequence_length {length} is too long for the data" in reason, reason
        assert f"trial {number}: FAIL, " in captured.out  # each trial's line, as it ended
        assert f"FAIL trial {number}: {reason}" in captured.out  # and the summary's
    assert f"trial 0: {table['error'][0]}" in captured.err


def test_sweep_trial_with_a_sequence_too_long_fails_alone(tmp_path, capsys):
    rows = write_jena_csv(tmp_path / "rows.csv", days=63)  # 1,512 rows
    config = write_sweep(tmp_path, rows, {"windows.sequence_length": {"type": "categorical", "choices": [24, 4000]}})
    assert main(["sweep", str(config), "--output", str(tmp_path / "out")]) == 0
    printed = capsys.readouterr().out
    table = pd.read_csv(tmp_path / "out" / "trials.csv").set_index("number")
    assert table["windows.sequence_length"].to_dict() == {0: 4000, 1: 24, 2: 24}  # seed 0's draws
    assert table["state"].to_dict() == {0: "FAIL", 1: "COMPLETE", 2: "COMPLETE"}
    assert "sequence_length 4000 is too long for the data" in table.loc[0, "error"]
    assert re.search(
        r"^trial 0: FAIL, [\d.]+ s, \{\"windows.sequence_length\": 4000\}: .*sequence_length 4000 is "
        r"too long for the data",
        printed,
        re.M,
    ), printed
    assert "trials: 2 COMPLETE, 0 PRUNED, 1 FAIL" in printed and "internal error" not in printed


# --- door: data files cut short, Parquet, torchrun (issue 22) -------------------------------------
REAL_EXPORT = "mpi_roof_2025-01-01_2025-04-27.csv.gz"  # the station's own layout: quoted header, padded numbers


def real_export_cut(tmp_path, rows=300, keep_fields=5):
    """The first ``rows`` data rows of a real station export, its last row cut in the middle of a number."""
    import os

    source = Path(os.environ.get("RNNKIT_DATA_DIR", "")) / REAL_EXPORT
    if not source.is_file():
        pytest.skip(f"RNNKIT_DATA_DIR holds no {REAL_EXPORT} (the Makefile points it at ../shared/data)")
    lines = gzip.decompress(source.read_bytes()).decode("latin-1").splitlines()[: rows + 1]
    cut = ",".join(lines[-1].split(",")[:keep_fields])
    cut = cut[: len(cut) - 1]  # '   87.20' -> '   87.2', a number cut short
    path = tmp_path / "mpi_roof_cut.csv"
    path.write_bytes(("\n".join([*lines[:-1], cut])).encode("latin-1"))
    return path, lines


def test_a_truncated_last_row_is_dropped_with_a_warning_naming_file_and_line(tmp_path, capsys):
    from rnnkit.datasets import jena_climate
    from rnnkit.errors import RnnkitWarning

    path, lines = real_export_cut(tmp_path)
    with pytest.warns(
        RnnkitWarning,
        match=re.escape(
            f"{path}: line 301, the last row, has 5 of the header's 22 "
            "fields (the file was cut short?): dropped, not read as data"
        ),
    ):
        frame = jena_climate(path, columns="all", clean=False)
    assert len(frame) == 299 and not frame.isna().any().any()
    assert str(frame.index[-1]) == "2025-01-03 01:50:00"  # the row before the cut one
    assert frame["rh (%)"].iloc[-1] == float(lines[-2].split(",")[5])
    assert main(["data", str(path)]) == 0  # the command line: one warning line, then the description
    captured = capsys.readouterr()
    assert captured.err == (
        f"rnnkit: warning: {path}: line 301, the last row, has 5 of the header's 22 fields "
        "(the file was cut short?): dropped, not read as data\n"
    )
    assert "rows: 299" in captured.out


@pytest.mark.parametrize(
    "cut,shown",
    [("  43", "'43'"), ("  433.", "'433.'"), ("", "an empty field")],
    ids=["433.00 cut to 43", "433.00 cut to 433.", "cut after the last comma"],
)
def test_a_last_row_whose_last_number_is_cut_short_is_dropped_with_a_warning(tmp_path, capsys, cut, shown):
    """Every field there, the last one cut (the file ends without a line end): before, ``  43`` was read as
    43.0 ppm CO2 (the export writes ``  433.00``) and an empty field as NaN, then interpolated, silently."""
    from rnnkit.datasets import jena_climate
    from rnnkit.errors import RnnkitWarning

    path, lines = real_export_cut(tmp_path, keep_fields=22)
    assert lines[-1].endswith(",  433.00")  # the station pads each number to one width
    path.write_bytes("\n".join([*lines[:-1], lines[-1][: -len("  433.00")] + cut]).encode("latin-1"))
    message = (
        f"{path}: line 301, the last row, ends without a line end in {shown}, a number cut short "
        "(the file was cut short?): dropped, not read as data"
    )
    with pytest.warns(RnnkitWarning, match=re.escape(message)):
        frame = jena_climate(path, columns="all")
    assert len(frame) == 299 and str(frame.index[-1]) == "2025-01-03 01:50:00"
    assert frame["CO2 (ppm)"].iloc[-1] == float(lines[-2].split(",")[-1]) and not frame.isna().any().any()
    assert main(["data", str(path)]) == 0
    captured = capsys.readouterr()
    assert captured.err == f"rnnkit: warning: {message}\n" and "rows: 299" in captured.out


def test_a_whole_last_row_without_a_line_end_is_read(tmp_path):
    """No line end after a whole last row (the 2009 12-column file is so) is no cut: every row read, no warning
    (the test run turns warnings into errors)."""
    from rnnkit.datasets import jena_climate

    path, lines = real_export_cut(tmp_path, keep_fields=22)
    path.write_bytes("\n".join(lines).encode("latin-1"))
    frame = jena_climate(path, columns="all", clean=False)
    assert len(frame) == 300 and frame["CO2 (ppm)"].iloc[-1] == 433.0
    import os

    record = Path(os.environ["RNNKIT_DATA_DIR"]) / "jena_climate_2009-01-01_2009-01-28_12cols.csv.gz"
    assert not gzip.decompress(record.read_bytes()).endswith(b"\n")
    frame = jena_climate(record, columns="all", clean=False)
    assert len(frame) == 4_000 and frame["rho (g/m**3)"].iloc[-1] == 1277.05


def test_a_short_row_before_the_last_is_refused(tmp_path, capsys):
    path, lines = real_export_cut(tmp_path)
    text = path.read_text(encoding="latin-1").splitlines()
    text[100] = ",".join(text[100].split(",")[:7])  # line 101 short, then full rows again: damaged, not cut
    path.write_text("\n".join(text[:-1]) + "\n", encoding="latin-1")
    one_line(capsys, ["data", path], f"{path}: line 101 has 7 fields, the header 22", "the file is damaged")


def _parquet_table(tmp_path, name="stations.parquet", id_name="id"):
    pa = pytest.importorskip("pyarrow")
    import pyarrow.parquet as pq

    times = pd.date_range("2020-01-01", periods=40, freq="h").to_numpy()
    table = pa.table(
        {
            id_name: ["a"] * 40 + ["b"] * 40,
            "time": np.concatenate([times, times]),
            "T (degC)": np.arange(80, dtype=float),
        }
    )
    pq.write_table(table, tmp_path / name)
    return tmp_path / name


def parquet_config(tmp_path, path):
    text = (
        f'name = "pq"\ntask = "many_series"\n[data]\ndataset = "parquet"\npaths = ["{path}"]\n'
        'id_column = "id"\ntime_column = "time"\ntarget = "T (degC)"\nfeatures = ["T (degC)"]\n'
        "split = [0.6, 0.2, 0.2]\n[windows]\nsequence_length = 4\n[training]\nepochs = 1\n"
        '[[models]]\nname = "GRU(2)"\nlayers = [{type = "GRU", units = 2}, {type = "Dense", units = 1}]\n'
    )
    (tmp_path / "pq.toml").write_text(text, encoding="utf-8")
    return tmp_path / "pq.toml"


def parquet_id_named_station(tmp_path):
    return _parquet_table(tmp_path, id_name="station")


def parquet_empty(tmp_path):
    (tmp_path / "stations.parquet").write_bytes(b"")
    return tmp_path / "stations.parquet"


def parquet_folder_one_corrupt(tmp_path):
    folder = tmp_path / "pq"
    folder.mkdir()
    _parquet_table(folder, "a.parquet")
    (folder / "b.parquet").write_bytes(b"not parquet at all, these bytes" * 10)
    return folder


PARQUET_CASES = [
    (
        "id column named station",
        parquet_id_named_station,
        ["stations.parquet: no id column 'id' (data.id_column); its columns are ['station', 'time', 'T (degC)']"],
    ),
    ("0-byte file", parquet_empty, ["stations.parquet: the file is empty (0 bytes), not a Parquet file"]),
    (
        "a corrupt file in a folder",
        parquet_folder_one_corrupt,
        ["b.parquet: not a readable Parquet file (", "magic bytes not found"],
    ),
]


@pytest.mark.parametrize("make,fragments", [c[1:] for c in PARQUET_CASES], ids=[c[0] for c in PARQUET_CASES])
def test_parquet_door(tmp_path, capsys, make, fragments):
    config = parquet_config(tmp_path, make(tmp_path))
    one_line(capsys, ["train", config, "--output", tmp_path / "run", "--quiet"], *fragments)


def test_torchrun_bad_config_is_said_once_by_rank_0(tmp_path, csv):
    import os
    import shutil
    import subprocess
    import sys

    torchrun = shutil.which("torchrun", path=str(Path(sys.executable).parent)) or shutil.which("torchrun")
    if torchrun is None:
        pytest.skip("no torchrun next to this python or on PATH")
    config = write_config(tmp_path, csv, _replace("[windows]", "[windows]\nhorizn = 3"))
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    got = subprocess.run(
        [
            torchrun,
            "--standalone",
            "--nproc-per-node",
            "2",
            "-m",
            "rnnkit",
            "train",
            str(config),
            "--output",
            str(tmp_path / "run"),
        ],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )
    said = [line for line in got.stderr.splitlines() if line.startswith("rnnkit:")]
    assert said == [f"rnnkit: error: {config}: unknown key 'windows.horizn' (did you mean 'horizon'?)"], got.stderr
    assert "exitcode  : 2" in got.stderr and "exitcode  : 1" not in got.stderr  # both ranks: bad input, exit 2
    assert not (tmp_path / "run").exists()


def test_other_ranks_exit_2_silently(tmp_path, csv, capsys, monkeypatch):
    config = write_config(tmp_path, csv, _replace("[windows]", "[windows]\nhorizn = 3"))
    monkeypatch.setenv("WORLD_SIZE", "2")
    monkeypatch.setenv("RANK", "1")
    assert main(["summary", str(config), "--features", "2"]) == 2
    assert capsys.readouterr().err == ""
    monkeypatch.setenv("RANK", "0")
    one_line(capsys, ["summary", config, "--features", "2"], "unknown key 'windows.horizn'")
