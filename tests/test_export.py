"""ONNX export: onnxruntime gives the model's outputs (to 1e-5) on random and real windows, any batch and length."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
import torch

onnx = pytest.importorskip("onnx", reason="the 'onnx' package (rnnkit[onnx]) is not installed")
ort = pytest.importorskip("onnxruntime", reason="'onnxruntime' (rnnkit[onnx]) is not installed")

import rnnkit as rk
from rnnkit import baselines as bl
from rnnkit.errors import RnnkitError
from rnnkit.export import to_model_proto, torch_kernel
from rnnkit.baselines import (
    MultiStepResidualTarget,
    RepeatLastDay,
    RepeatLastPeriod,
    StepMean,
    StepPersistence,
    StepResidualTarget,
)
from rnnkit.layers import GRU, LSTM, Bidirectional, Dense, Dropout, Flatten, SimpleRNN

TOLERANCE = 1e-5
F = 5  # features of the random windows


def seq(*layers, features=F, steps=12):
    return rk.Sequential(*layers, input_shape=(steps, features))


def scramble(model: torch.nn.Module) -> torch.nn.Module:
    """Every weight random, biases included (zero biases would hide a wrong bias or gate order)."""
    with torch.no_grad():
        for p in model.parameters():
            p.normal_(0.0, 0.5)
    return model.eval()


def session(model, features=F):
    proto = to_model_proto(model, features)
    return ort.InferenceSession(proto.SerializeToString(), providers=["CPUExecutionProvider"]), proto


def max_difference(model, x):
    s, _ = session(model, x.shape[-1])
    got = s.run(None, {"x": x.numpy()})[0]
    with torch.no_grad(), torch_kernel():
        want = model(x).numpy()
    assert got.shape == want.shape
    return float(np.abs(got - want).max())


# The recurrent kinds the issue names; each ends the way a forecasting model does.
MODELS = {
    "SimpleRNN": lambda: seq(SimpleRNN(8), Dense(1)),
    "SimpleRNN relu, go_backwards": lambda: seq(SimpleRNN(8, activation="relu", go_backwards=True), Dense(1)),
    "LSTM": lambda: seq(LSTM(8), Dense(1)),
    "GRU reset_after=True": lambda: seq(GRU(8), Dense(1)),
    "GRU reset_after=False": lambda: seq(GRU(8, reset_after=False), Dense(1)),
    "GRU hard_sigmoid/softsign": lambda: seq(
        GRU(8, recurrent_activation="hard_sigmoid", activation="softsign"), Dense(1)
    ),
    "Bidirectional(LSTM) concat": lambda: seq(Bidirectional(LSTM(6)), Dense(1)),
    "Bidirectional(GRU) ave, sequences": lambda: seq(
        Bidirectional(GRU(6, return_sequences=True), merge_mode="ave"), Dense(1)
    ),
    "Bidirectional(SimpleRNN) sum / mul": lambda: seq(
        Bidirectional(SimpleRNN(6, return_sequences=True), merge_mode="sum"),
        Bidirectional(SimpleRNN(4), merge_mode="mul"),
        Dense(1),
    ),
    "stacked GRU-LSTM, dropout, dense relu": lambda: seq(
        GRU(8, return_sequences=True, dropout=0.2, recurrent_dropout=0.2),
        LSTM(6, return_sequences=True),
        Dropout(0.5),
        SimpleRNN(4),
        Dense(3, activation="relu"),
        Dense(1),
    ),
    "ResidualTarget(GRU)": lambda: bl.ResidualTarget(seq(GRU(8), Dense(1)), target_index=2),
    "MultiStepResidualTarget(LSTM)": lambda: MultiStepResidualTarget(seq(LSTM(8), Dense(4)), 1, (4,)),
    "StepResidualTarget(GRU per step)": lambda: StepResidualTarget(seq(GRU(8, return_sequences=True), Dense(1)), 0),
}


@pytest.mark.parametrize("kind", list(MODELS))
def test_recurrent_models_match_on_random_windows_of_any_batch_and_length(kind):
    torch.manual_seed(0)
    model = scramble(MODELS[kind]())
    for batch, steps in ((1, 12), (7, 12), (3, 30), (2, 1)):
        x = torch.randn(batch, steps, F)
        assert max_difference(model, x) < TOLERANCE, (kind, batch, steps)


def test_graph_declares_batch_and_time_dynamic_and_uses_onnx_recurrent_operators():
    _, proto = session(seq(GRU(4, return_sequences=True), LSTM(3), Dense(1)))
    dims = proto.graph.input[0].type.tensor_type.shape.dim
    assert [d.dim_param or d.dim_value for d in dims] == ["batch", "time", F]
    assert [n.op_type for n in proto.graph.node if n.op_type in ("GRU", "LSTM")] == ["GRU", "LSTM"]
    out = proto.graph.output[0].type.tensor_type.shape.dim
    assert [d.dim_param or d.dim_value for d in out] == ["batch", 1]


BASELINES = {
    "persistence": lambda: bl.Persistence([1, 3]),
    "seasonal persistence": lambda: bl.SeasonalPersistence(0, period=4, horizon=1),
    "seasonal persistence, horizon = period": lambda: bl.SeasonalPersistence(2, period=3, horizon=3),
    "mean": lambda: bl.MeanBaseline(torch.tensor([1.5, -2.0])),
    "repeat last period (multi-step persistence)": lambda: RepeatLastPeriod([0, 2], period=3, target_length=5),
    "repeat last day": lambda: RepeatLastDay(1, period=4, target_length=6, horizon=2),
    "step persistence": lambda: StepPersistence([1]),
    "step mean": lambda: StepMean.fit(torch.randn(10, 12, 1)),
}


@pytest.mark.parametrize("kind", list(BASELINES))
def test_baselines_match_exactly(kind):
    torch.manual_seed(1)
    model = BASELINES[kind]()
    for batch, steps in ((1, 12), (6, 9)):
        assert max_difference(model, torch.randn(batch, steps, F)) == 0.0


def test_window_flattening_models_read_their_own_length_and_match():
    torch.manual_seed(2)
    linear = bl.LinearBaseline(12, F, outputs=2).fit((torch.randn(80, 12, F), torch.randn(80, 2)))
    dense = scramble(seq(Flatten(), Dense(6, activation="relu"), Dense(1)))
    for model in (linear, bl.naive_dense(12, F), dense):
        _, proto = session(model)
        dims = proto.graph.input[0].type.tensor_type.shape.dim
        assert [d.dim_param or d.dim_value for d in dims] == ["batch", 12, F]
        assert max_difference(model.eval(), torch.randn(9, 12, F)) < TOLERANCE


def test_dense_activations_match():
    torch.manual_seed(3)
    for activation in (
        "tanh",
        "sigmoid",
        "relu",
        "elu",
        "selu",
        "softsign",
        "softplus",
        "hard_sigmoid",
        "silu",
        "gelu",
    ):
        model = scramble(seq(GRU(4, return_sequences=True), Dense(3, activation=activation)))
        assert max_difference(model, torch.randn(4, 12, F) * 3) < TOLERANCE, activation


@pytest.fixture(scope="module")
def real_windows():
    """Scaled 120-hour windows of the real hourly Jena record (the first 256 after the start)."""
    folder = Path(os.environ.get("RNNKIT_DATA_DIR") or Path(__file__).resolve().parents[2] / "shared" / "data")
    path = folder / "jena_climate_2009_2016_hourly.csv.gz"
    if not path.is_file():
        pytest.skip(f"the hourly Jena record is not in {folder} (set RNNKIT_DATA_DIR)")
    frame = rk.datasets.jena_climate([str(path)]).iloc[:3000]
    scaled = rk.data.Standardizer().fit(frame).transform(frame)
    w = rk.data.make_windows(scaled, 120, shift=7, horizon=24, targets="T (degC)")
    return w.x[:256].float(), list(frame.columns).index("T (degC)")


@pytest.mark.parametrize(
    "kind",
    [
        "SimpleRNN",
        "LSTM",
        "GRU reset_after=True",
        "GRU reset_after=False",
        "Bidirectional",
        "stacked",
        "ResidualTarget",
    ],
)
def test_recurrent_models_match_on_real_windows(kind, real_windows):
    x, target = real_windows
    features = x.shape[-1]
    build = {
        "SimpleRNN": lambda: SimpleRNN(16),
        "LSTM": lambda: LSTM(16),
        "GRU reset_after=True": lambda: GRU(16),
        "GRU reset_after=False": lambda: GRU(16, reset_after=False),
        "Bidirectional": lambda: Bidirectional(GRU(16)),
    }
    torch.manual_seed(4)
    if kind == "stacked":
        model = seq(GRU(16, return_sequences=True), LSTM(16), Dense(1), features=features, steps=120)
    elif kind == "ResidualTarget":
        model = bl.ResidualTarget(seq(GRU(16), Dense(1), features=features, steps=120), target)
    else:
        model = seq(build[kind](), Dense(1), features=features, steps=120)
    # Keras's initialisation (orthogonal recurrent kernel), a small bias: a trained model's scale
    with torch.no_grad():
        for name, p in model.named_parameters():
            if "bias" in name:
                p.normal_(0.0, 0.1)
    model.eval()
    assert max_difference(model, x) < TOLERANCE
    assert max_difference(model, x[:1]) < TOLERANCE


def test_unsupported_settings_are_one_clear_error():
    with pytest.raises(RnnkitError, match="activation 'selu'"):
        to_model_proto(seq(SimpleRNN(3, activation="selu"), Dense(1)))
    with pytest.raises(RnnkitError, match="merge_mode=None"):
        to_model_proto(seq(Bidirectional(GRU(3), merge_mode=None)))
    with pytest.raises(RnnkitError, match="no converter for it"):
        to_model_proto(torch.nn.Sequential(torch.nn.Conv1d(3, 3, 1)), F)


def test_write_to_a_missing_folder_or_a_folder_is_refused(tmp_path):
    model = seq(GRU(3), Dense(1))
    with pytest.raises(RnnkitError, match="does not exist"):
        rk.export.onnx(model, tmp_path / "nowhere" / "m.onnx")
    with pytest.raises(RnnkitError, match="is a folder"):
        rk.export.onnx(model, tmp_path)
    written = rk.export.onnx(model, tmp_path / "m.onnx")
    assert onnx.load(str(written)).graph.input[0].name == "x"


# --- the command line ------------------------------------------------------------------------------

from helpers import one_line_error, tiny_config, write_jena_csv  # noqa: E402
from rnnkit.cli import main  # noqa: E402
from rnnkit.experiment import load_trained, load_run  # noqa: E402
from rnnkit.tasks.series import load_frame, prepare  # noqa: E402


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory):
    from test_cli import toml_of

    tmp = tmp_path_factory.mktemp("export")
    csv = write_jena_csv(tmp / "hourly.csv")
    config = tmp / "tiny.toml"
    config.write_text(toml_of(tiny_config(csv, windows={"sequence_length": 24, "horizon": 6, "residual": True})))
    run = tmp / "run"
    assert main(["train", str(config), "--output", str(run), "--quiet"]) == 0
    return run


def test_cli_exports_the_best_model_and_onnxruntime_predicts_the_runs_test_windows(tiny_run, capsys):
    capsys.readouterr()
    assert main(["export", str(tiny_run), "--onnx"]) == 0
    out = capsys.readouterr().out
    path = tiny_run / "models" / "gru_4" / "model.onnx"
    assert f"GRU(4): {path}" in out and "max |onnxruntime - rnnkit| on 64 random windows" in out
    config, _, _ = load_run(tiny_run)
    windows = prepare(config, load_frame(config)).windows["test"]
    _, model, _ = load_trained(tiny_run)
    got = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"]).run(None, {"x": windows.x.numpy()})[0]
    with torch.no_grad(), torch_kernel():
        want = model(windows.x).numpy()
    assert np.abs(got - want).max() < TOLERANCE


def test_exported_file_carries_its_metadata_and_a_usage_note(tiny_run, capsys):
    import json

    import onnx as onnx_lib

    assert main(["export", str(tiny_run), "--onnx"]) == 0
    path = tiny_run / "models" / "gru_4" / "model.onnx"
    assert f"usage note: {path.with_name('model.usage.txt')}" in capsys.readouterr().out
    props = {p.key: p.value for p in onnx_lib.load(str(path)).metadata_props}
    _, scaler, _ = load_run(tiny_run)
    _, _, description = load_trained(tiny_run)
    features = description["metadata"]["features"]
    assert json.loads(props["input_columns"]) == features
    assert json.loads(props["derived_columns"]) == []
    index = [scaler.columns.index(c) for c in features]
    np.testing.assert_allclose(json.loads(props["scaler_mean"]), np.asarray(scaler.mean)[index])
    np.testing.assert_allclose(json.loads(props["scaler_std"]), np.asarray(scaler.std)[index])
    assert props["target"] == "T (degC)" and props["horizon_rows"] == "6" and props["sequence_length"] == "24"
    assert json.loads(props["residual"]) is True and props["rnnkit_model"] == "GRU(4)"
    note = path.with_name("model.usage.txt").read_text()
    assert "(batch, 24, " in note and "residual" in note and "scaler_mean" in note


def test_cli_bad_input_is_one_line_exit_2(tiny_run, tmp_path, capsys):
    one_line_error(capsys, ["export", str(tiny_run)], "--onnx")
    one_line_error(capsys, ["export", str(tmp_path / "nothing"), "--onnx"], "run folder not found")
    one_line_error(capsys, ["export", str(tiny_run), "--onnx", "--model", "LSTM(9)"], "'LSTM(9)' is not in the run")
    one_line_error(
        capsys, ["export", str(tiny_run), "--onnx", "--output", str(tmp_path / "no" / "m.onnx")], "does not exist"
    )
    # a run whose training never wrote a model
    empty = tmp_path / "empty"
    empty.mkdir()
    for name in ("config.json", "scaler.json"):
        (empty / name).write_bytes((tiny_run / name).read_bytes())
    one_line_error(capsys, ["export", str(empty), "--onnx"], "model.json' does not exist")
    if os.geteuid() != 0:  # root writes anywhere
        locked = tmp_path / "locked"
        locked.mkdir(mode=0o500)
        one_line_error(
            capsys, ["export", str(tiny_run), "--onnx", "--output", str(locked / "m.onnx")], "permission denied"
        )
