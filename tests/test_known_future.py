"""Known-future inputs (``windows.known_future``, issue 19 part 2): values, leaks, and refusals.

The leak tests poison every value that a window must not read — the undeclared columns past its
last input row — with huge numbers, and check that the window (and a model's forecast from it,
through the task's own data path and scaler) is bit-for-bit unchanged; then they poison a declared
column at the target row and check that the forecast does change, so the test can see a read.
"""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
import torch

from helpers import one_line_error, tiny_config, write_jena_csv
from rnnkit.data import make_windows
from rnnkit.errors import RnnkitError
from rnnkit.models.forecasters import Seq2SeqForecaster
from rnnkit.tasks import parse_config, task_for
from rnnkit.tasks.series import prepare
from rnnkit.training import predict

POISON = 1e6
CALENDAR = ["Day sin", "Day cos", "Year sin", "Year cos"]


def _series(rows: int = 60, features: int = 4, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).normal(size=(rows, features)).astype(np.float32)


# --- the windows: values ----------------------------------------------------------------------------


@pytest.mark.parametrize("target_length, sampling_rate, return_sequences", [(1, 1, False), (3, 2, False), (1, 1, True)])
def test_each_input_row_carries_the_declared_columns_at_its_target_rows(target_length, sampling_rate, return_sequences):
    data = _series()
    horizon, known = 3, [2, 3]
    w = make_windows(
        data,
        5,
        sampling_rate=sampling_rate,
        horizon=horizon,
        target_length=target_length,
        targets=0,
        return_sequences=return_sequences,
        known_future=known,
    )
    steps = 1 if return_sequences else target_length
    assert w.x.shape[-1] == 4 + len(known) * steps
    assert w.known_future == ["2", "3"]
    for i in range(len(w)):
        inputs, targets = w.rows(i)
        np.testing.assert_array_equal(w.x[i, :, :4].numpy(), data[inputs])
        for k in range(steps):
            rows = np.array(inputs) + horizon + k * sampling_rate
            np.testing.assert_array_equal(w.x[i, :, 4 + 2 * k : 6 + 2 * k].numpy(), data[rows][:, known])
        if not return_sequences:  # at the last input row: the values at the window's target rows
            last = w.x[i, -1, 4:].reshape(steps, 2).numpy()
            np.testing.assert_array_equal(last, data[np.atleast_1d(targets)][:, known])
    x, _ = w.batch(torch.arange(len(w)))  # the trainer's gather gives the same numbers as the view
    torch.testing.assert_close(x, w.x, rtol=0, atol=0)


def test_names_and_segments():
    frame = pd.DataFrame(
        _series(40, 3),
        columns=["T", "p", "Day sin"],
        index=pd.date_range("2020-01-01", periods=44, freq="h").delete(range(18, 22)),
    )
    w = make_windows(frame, 4, horizon=2, target_length=2, targets="T", known_future=["Day sin"])
    assert w.feature_names == ["T", "p", "Day sin", "Day sin @ target step 1", "Day sin @ target step 2"]
    # the gap splits the rows into two segments; no window's known values come from the other one
    values = frame.to_numpy(dtype=np.float32)
    for i in range(len(w)):
        inputs, targets = w.rows(i)
        assert w.x[i, -1, 3:].tolist() == values[targets, 2].tolist()
        assert (inputs[0] < 18) == (targets[-1] < 18)


# --- the windows: leaks -----------------------------------------------------------------------------


@pytest.mark.parametrize("target_length, sampling_rate, return_sequences", [(1, 1, False), (4, 3, False), (1, 1, True)])
def test_no_undeclared_column_is_read_past_a_windows_last_row(target_length, sampling_rate, return_sequences):
    data = _series(80)
    options = dict(
        sampling_rate=sampling_rate,
        horizon=2,
        target_length=target_length,
        targets=0,
        return_sequences=return_sequences,
        known_future=[3],
    )
    clean = make_windows(data, 6, **options)
    for i in range(len(clean)):
        last = int(clean.last_rows[i])
        poisoned = data.copy()
        poisoned[last + 1 :, :3] = POISON  # every undeclared column, every row after the last input
        w = make_windows(poisoned, 6, **options)
        torch.testing.assert_close(w.x[i], clean.x[i], rtol=0, atol=0)
        poisoned[last + 1 :, 3] = POISON  # the declared column: now the window must change
        assert (make_windows(poisoned, 6, **options).x[i, -1] == POISON).any()


def test_without_known_future_nothing_past_the_last_row_is_read():
    data = _series(50)
    clean = make_windows(data, 6, horizon=4, target_length=3, targets=0)
    assert clean.x.shape[-1] == 4
    for i in range(len(clean)):
        poisoned = data.copy()
        poisoned[int(clean.last_rows[i]) + 1 :] = POISON
        torch.testing.assert_close(
            make_windows(poisoned, 6, horizon=4, target_length=3, targets=0).x[i], clean.x[i], rtol=0, atol=0
        )


def test_a_target_cannot_be_declared_known():
    with pytest.raises(RnnkitError, match=r"known_future must not hold a target column .* got \['0'\]"):
        make_windows(_series(), 5, targets=0, known_future=[0, 2])


# --- through the task: the scaler, the windows and a model's forecast ----------------------------------


def _frame(days: int = 30, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    index = pd.date_range("2020-01-01 00:10", periods=days * 24, freq="h")
    t = np.arange(len(index))
    seconds = index.as_unit("s").asi8.astype(float)
    return pd.DataFrame(
        {
            "T (degC)": 10 + 5 * np.sin(2 * np.pi * t / 24) + rng.normal(0, 0.5, len(t)),
            "p (mbar)": 1000 + rng.normal(0, 2, len(t)),
            "Day sin": np.sin(2 * np.pi * seconds / 86400),
            "Day cos": np.cos(2 * np.pi * seconds / 86400),
            "Year sin": np.sin(2 * np.pi * seconds / (365.2425 * 86400)),
            "Year cos": np.cos(2 * np.pi * seconds / (365.2425 * 86400)),
        },
        index=index,
    )


TASKS = {
    "one step": ("regression", {"horizon": 6}, [{"type": "GRU", "units": 4}, {"type": "Dense", "units": 1}]),
    "direct multi-step": (
        "regression",
        {"horizon": 1, "target_length": 4},
        [{"type": "GRU", "units": 4}, {"type": "Dense", "units": 4}],
    ),
    "seq2seq": ("seq2seq", {"horizon": 1, "target_length": 4}, [{"type": "GRU", "units": 4}]),
}


def _task(kind: str, frame: pd.DataFrame, known: list[str]):
    task_name, windows, layers = TASKS[kind]
    config = parse_config(
        {
            "name": "kf",
            "task": task_name,
            "data": {"split": [0.6, 0.2, 0.2]},
            "windows": {"sequence_length": 12, "residual": True, "known_future": known, **windows},
            "baselines": ["persistence"],
            "models": [{"name": "m", "layers": layers}],
        }
    )
    task = task_for(config)
    task.prepared = prepare(config, frame)
    return task


def _forecast(task, seed: int = 0) -> torch.Tensor:
    torch.manual_seed(seed)
    model = task.build(task.config.models[0])  # untrained, random weights: it responds to every input it reads
    model.eval()
    return predict(model, task.prepared.windows["test"], 256)


@pytest.mark.parametrize("kind", list(TASKS))
def test_a_forecast_reads_no_undeclared_column_past_its_window(kind):
    frame = _frame()
    task = _task(kind, frame, ["Day sin", "Day cos"])
    clean = _forecast(task)
    test = task.prepared.windows["test"]
    offset = frame.index.get_loc(task.prepared.parts["test"][0].index[0])
    assert task.prepared.input_shape[1] == 6 + 2 * task.prepared.target_length
    for i in (0, len(test) // 2, len(test) - 1):
        last = offset + int(test.last_rows[i])
        poisoned = frame.copy()
        undeclared = [c for c in frame.columns if c not in ("Day sin", "Day cos")]
        poisoned.iloc[last + 1 :, [frame.columns.get_loc(c) for c in undeclared]] = POISON
        again = _task(kind, poisoned, ["Day sin", "Day cos"])
        np.testing.assert_array_equal(again.prepared.scaler.mean, task.prepared.scaler.mean)  # test rows only
        torch.testing.assert_close(_forecast(again)[: i + 1], clean[: i + 1], rtol=0, atol=0)
        poisoned.iloc[last + 1 :, frame.columns.get_loc("Day sin")] = POISON  # declared: it must be read
        assert not torch.allclose(_forecast(_task(kind, poisoned, ["Day sin", "Day cos"]))[i], clean[i])


@pytest.mark.parametrize("kind", list(TASKS))
def test_without_the_key_the_same_poison_reaches_no_forecast(kind):
    frame = _frame()
    task = _task(kind, frame, [])
    clean = _forecast(task)
    test = task.prepared.windows["test"]
    offset = frame.index.get_loc(task.prepared.parts["test"][0].index[0])
    i = len(test) // 2
    poisoned = frame.copy()
    poisoned.iloc[offset + int(test.last_rows[i]) + 1 :] = POISON
    torch.testing.assert_close(_forecast(_task(kind, poisoned, []))[: i + 1], clean[: i + 1], rtol=0, atol=0)


def test_the_seq2seq_decoder_reads_step_ks_known_values_at_step_k():
    torch.manual_seed(0)
    model = Seq2SeqForecaster(3, target_length=4, target_index=0, units=5, known_future=2).eval()
    x = torch.randn(2, 6, 3 + 2 * 4)
    base = model(x)
    changed = x.clone()
    changed[:, -1, 3 + 2 * 2] += 5.0  # the first known column of step 3 (k = 2)
    out = model(changed)
    torch.testing.assert_close(out[:, :2], base[:, :2], rtol=0, atol=0)  # steps before it: unchanged
    assert (out[:, 2] - base[:, 2]).abs().min() > 1e-4
    changed = x.clone()
    changed[:, :-1, 3:] += 5.0  # the known columns of earlier rows: the decoder reads the last row's only
    torch.testing.assert_close(model(changed), base, rtol=0, atol=0)
    assert Seq2SeqForecaster.from_config(model.get_config()).known_future == 2
    with pytest.raises(ValueError, match="x must have 11 columns"):
        model(x[..., :-1])


# --- the config -------------------------------------------------------------------------------------


def _raw(csv, **windows):
    return tiny_config(csv, data={"derived": ["time"]}, windows={"sequence_length": 24, "horizon": 6, **windows})


def test_calendar_known_future_trains_end_to_end(tmp_path):
    from rnnkit.experiment import run_experiment

    csv = write_jena_csv(tmp_path / "station.csv", days=40)
    config = parse_config(_raw(csv, known_future=CALENDAR))
    metrics = run_experiment(config, tmp_path / "run", progress=False, log=lambda _: None)
    linear = metrics["models"]["linear"]["params"]
    assert linear == 24 * (6 + 4) + 1  # p, T, 4 calendar columns, and the 4 known ones: the linear baseline too
    assert metrics["models"]["GRU(4)"]["params"] == 3 * (4 * 10 + 4 * 4 + 2 * 4) + 5
    # predict and evaluate --data read the declared columns at the target rows of the new file
    from rnnkit.experiment import predict_file
    from rnnkit.transfer import evaluate_on_files

    other = write_jena_csv(tmp_path / "other.csv", days=10, seed=1)
    table = predict_file(tmp_path / "run", [str(other)], "GRU(4)")
    assert len(table) == 10 * 24 - 24 - 6 + 1  # every window whose target row the file holds
    assert table["true T (degC)"].notna().all()
    assert (table["target_time"] - table["last_input_time"] == pd.Timedelta(hours=6)).all()
    (result,) = evaluate_on_files(tmp_path / "run", [str(other)])
    assert result["windows"] == len(table)
    np.testing.assert_allclose(
        result["models"]["GRU(4)"]["mae"],
        (table["predicted T (degC)"] - table["true T (degC)"]).abs().mean(),
        rtol=1e-5,
    )


def _toml(csv, known, features=None) -> str:
    return "\n".join(
        [
            'name = "kf"',
            "[data]",
            f"paths = [{json.dumps(str(csv))}]",
            'derived = ["time"]',
            *([f"features = {json.dumps(features)}"] if features else []),
            "[windows]",
            "sequence_length = 24",
            "horizon = 6",
            f"known_future = {json.dumps(known)}",
            "[[models]]",
            'name = "GRU"',
            'layers = [{type = "GRU", units = 4}, {type = "Dense", units = 1}]',
            "",
        ]
    )


@pytest.mark.parametrize(
    "known, features, fragment",
    [
        (["T (degC)"], None, "windows.known_future must not hold the target ('T (degC)'): it is what is forecast"),
        (["Day sin", "Day sin"], None, "'windows.known_future': must not name a column twice, got ['Day sin']"),
        (
            ["Day sin"],
            ["T (degC)", "p (mbar)"],
            "windows.known_future names columns that are not among data.features: ['Day sin']",
        ),
    ],
)
def test_bad_known_future_is_one_line_exit_2(tmp_path, capsys, known, features, fragment):
    csv = write_jena_csv(tmp_path / "station.csv", days=40)
    path = tmp_path / "c.toml"
    path.write_text(_toml(csv, known, features))
    one_line_error(capsys, ["train", path, "--output", tmp_path / "run"], fragment)


def test_a_column_not_in_the_data_is_named(tmp_path):
    csv = write_jena_csv(tmp_path / "station.csv", days=40)
    task = task_for(parse_config(_raw(csv, known_future=["Holiday"])))
    with pytest.raises(RnnkitError, match="known_future: column 'Holiday' is not in the data"):
        task.prepare()


@pytest.mark.parametrize(
    "overrides, fragment",
    [
        (
            {"task": "classification", "classification": {"threshold": 10.0}, "baselines": ["persistence"]},
            "windows.known_future: task = 'classification' takes no known-future inputs (task = 'regression' or "
            "'seq2seq' does)",
        ),
        (
            {"training": {"stateful": True, "batch_size": 4}},
            "windows.known_future: stateful training reads contiguous streams",
        ),
    ],
)
def test_tasks_and_settings_that_take_no_known_future_refuse_it(tmp_path, overrides, fragment):
    csv = write_jena_csv(tmp_path / "station.csv", days=40)
    raw = _raw(csv, known_future=["Day sin"])
    for key, value in overrides.items():
        raw[key] = {**raw[key], **value} if isinstance(value, dict) and isinstance(raw.get(key), dict) else value
    with pytest.raises(RnnkitError) as e:
        parse_config(raw)
    assert fragment in str(e.value)
