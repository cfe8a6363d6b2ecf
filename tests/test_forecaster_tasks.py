"""task = "autoregressive" and task = "seq2seq" through the config: the same baselines, keys and table as the
direct multi-step regression on the same data; the forecaster saved with its architecture and rebuilt from
model.json to the same outputs; the autoregressive loop (its clock on standardised columns) against a loop
written here; train / evaluate / predict at the command line; refused settings in one line."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from helpers import tiny_config, write_jena_csv
from rnnkit.cli import main
from rnnkit.tasks import load_config, parse_config
from rnnkit.errors import RnnkitError
from rnnkit.experiment import describe_windows, evaluate_run, metrics_table, predict_file, run_experiment
from rnnkit.models.forecasters import AutoregressiveForecaster, Seq2SeqForecaster
from rnnkit.io import load_weights, read_model_json, save_model
from rnnkit.runs import load_trained
from rnnkit.tasks import task_for
from rnnkit.tasks.series import part_windows
from rnnkit.training import predict

CONFIGS = Path(__file__).resolve().parents[1] / "configs"
quiet = {"progress": False, "log": lambda _: None}
K = 4
FORECASTER = [{"name": "GRU", "layers": [{"type": "GRU", "units": 4}]}]
DIRECT = [{"name": "GRU", "layers": [{"type": "GRU", "units": 4}, {"type": "Dense", "units": K}]}]


def _raw(csv: Path, task: str, **overrides) -> dict:
    models = DIRECT if task == "regression" else FORECASTER
    raw = tiny_config(
        csv,
        task=task,
        data={"derived": ["time"]},
        windows={"sequence_length": 24, "horizon": 1, "target_length": K, "residual": True},
        training={"epochs": 2, "batch_size": 32, "seed": 0},
        baselines=["persistence", "repeat_last_day", "mean", "linear"],
        models=models,
    )
    for key, value in overrides.items():
        raw[key] = {**raw[key], **value} if isinstance(value, dict) else value
    return raw


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """The same station file and windows as a direct (regression), an autoregressive and a seq2seq run."""
    folder = tmp_path_factory.mktemp("forecasters")
    csv = write_jena_csv(folder / "station.csv", days=20, columns=("p (mbar)", "T (degC)", "rh (%)"))
    metrics = {
        task: run_experiment(parse_config(_raw(csv, task)), folder / task, **quiet)
        for task in ("regression", "autoregressive", "seq2seq")
    }
    return folder, csv, metrics


# --- scored like the direct multi-step regression -------------------------------------------------


@pytest.mark.parametrize("task", ["autoregressive", "seq2seq"])
def test_baselines_and_keys_equal_the_direct_regression_runs(runs, task):
    _, _, metrics = runs
    direct, mine = metrics["regression"], metrics[task]
    for name in ("persistence", "repeat_last_day", "mean", "linear"):
        assert mine["models"][name] == direct["models"][name], name  # the very same numbers
    assert mine["task"] == task and "task" not in direct
    assert set(mine["models"]["GRU"]) == set(direct["models"]["GRU"])  # mae_*_by_step, skill_test, ...
    assert set(mine) - {"task"} == set(direct)
    assert mine["target_length"] == K and mine["windows"] == direct["windows"]
    header = metrics_table(mine).splitlines()[0].split()
    assert header == metrics_table(direct).splitlines()[0].split()
    assert "step" in header and str(K) in header  # MAE step 1 / step K test columns


@pytest.mark.parametrize("task", ["autoregressive", "seq2seq"])
def test_evaluate_rebuilds_the_forecaster_from_model_json_and_scores_the_same(runs, task):
    folder, _, metrics = runs
    description = json.loads((folder / task / "models" / "gru" / "model.json").read_text())
    cls = AutoregressiveForecaster if task == "autoregressive" else Seq2SeqForecaster
    assert description["class"].endswith("." + cls.__name__)
    assert description["config"]["target_length"] == K and description["config"]["layer"] == "GRU"
    clock = description["config"]["clock"]
    assert [p[:2] for p in clock["pairs"]] == [[3, 4], [5, 6]]  # Day sin/cos, Year sin/cos after p, T, rh
    assert clock["pairs"][0][2] == pytest.approx(24.0) and clock["pairs"][1][2] == pytest.approx(365.2425 * 24)
    again = evaluate_run(folder / task)
    trained = {k: v for k, v in metrics[task]["models"]["GRU"].items() if k != "train_seconds"}
    assert {k: again["models"]["GRU"][k] for k in trained} == trained  # exactly: the same model, the same windows
    for name in ("persistence", "repeat_last_day", "mean", "linear"):  # fitted again (linear: to the last bits)
        for key, value in metrics[task]["models"][name].items():
            assert again["models"][name][key] == (value if key == "kind" else pytest.approx(value, rel=1e-6)), key


@pytest.mark.parametrize("task", ["autoregressive", "seq2seq"])
def test_a_saved_forecaster_rebuilt_from_model_json_gives_the_same_outputs(tmp_path, task):
    csv = write_jena_csv(tmp_path / "station.csv", days=20, columns=("p (mbar)", "T (degC)", "rh (%)"))
    config = parse_config(_raw(csv, task))
    t = task_for(config)
    t.prepare()
    torch.manual_seed(3)
    model = t.build(config.models[0])
    with torch.no_grad():  # weights away from their initial values (the zero biases too)
        for p in model.parameters():
            p.add_(0.1 * torch.randn_like(p))
    x = t.prepared.windows["test"].x
    before = predict(model, x)
    save_model(model, tmp_path / "model", metadata=t.metadata(config.models[0]))
    rebuilt = t.rebuild(read_model_json(tmp_path / "model"))
    load_weights(tmp_path / "model.safetensors", rebuilt)
    assert type(rebuilt) is type(model)
    assert torch.equal(predict(rebuilt, x), before)


def test_predict_gives_the_trained_models_target_forecast_per_step(runs):
    folder, csv, _ = runs
    run = folder / "autoregressive"
    name, model, description = load_trained(run)
    table = predict_file(run, [str(csv)])
    config = load_config_json(run)
    t = task_for(config)
    t.prepare()  # the run's scaler and features
    columns = [f"predicted T (degC) step {k + 1}" for k in range(K)]
    assert list(table.columns) == [
        "model",
        "last_input_time",
        "target_time",
        *columns,
        "true T (degC)",
        "persistence T (degC)",
    ]
    assert len(table) == 20 * 24 - 24 + 1  # every 24-row window of the file
    # by hand: the whole file scaled by the run's scaler, the forecaster's T column (fed back: p, T, rh -> 1)
    frame = pd.read_csv(csv)
    times = pd.to_datetime(frame["Date Time"], format="%d.%m.%Y %H:%M:%S")
    seconds = (times - pd.Timestamp(0)).dt.total_seconds().to_numpy()
    full = pd.DataFrame(
        {
            "p (mbar)": frame["p (mbar)"],
            "T (degC)": frame["T (degC)"],
            "rh (%)": frame["rh (%)"],
            "Day sin": np.sin(2 * np.pi * seconds / 86400),
            "Day cos": np.cos(2 * np.pi * seconds / 86400),
            "Year sin": np.sin(2 * np.pi * seconds / (365.2425 * 86400)),
            "Year cos": np.cos(2 * np.pi * seconds / (365.2425 * 86400)),
        }
    )
    scaler = t.prepared.scaler
    z = torch.tensor(scaler.transform(full[scaler.columns]).to_numpy(), dtype=torch.float32)
    x = z.unfold(0, 24, 1).transpose(1, 2)  # (windows, 24, 7)
    out = predict(model, x)[..., 1]  # (windows, K): T is the second fed-back column
    ti = scaler.column_index("T (degC)")
    expected = out.numpy() * scaler.std[ti] + scaler.mean[ti]
    np.testing.assert_allclose(table[columns].to_numpy(), expected, rtol=1e-5, atol=1e-4)


def load_config_json(run: Path):
    raw = json.loads((run / "config.json").read_text())
    raw.pop("data_used", None)
    return parse_config(raw)


# --- the autoregressive loop, by hand ---------------------------------------------------------------


def test_autoregressive_training_windows_hold_every_fed_back_column(runs):
    folder, _, _ = runs
    t = task_for(load_config_json(folder / "autoregressive"))
    t.prepare()
    train, val = t.train_data(t.config.training)
    assert t.fed_back == ["p (mbar)", "T (degC)", "rh (%)"]
    assert train.y.shape == (len(t.prepared.windows["train"]), K, 3)
    # the same windows as the run's (target-only) ones: their T column is the run's target
    assert torch.equal(train.y[..., 1:2], t.prepared.windows["train"].y)
    assert torch.equal(val.x, t.prepared.windows["val"].x)


def test_autoregressive_forecast_equals_a_loop_written_here(runs):
    """The forecaster's loop against one written from its parts: warm up on all rows but the last, then K
    times: read the row, predict the change of p, T, rh, add it, and set the time columns of the next row
    from the clock's angle (atan2 of the last row's sin/cos in data units, plus 2 pi k / period)."""
    folder, _, _ = runs
    t = task_for(load_config_json(folder / "autoregressive"))
    t.prepare()
    _, model, _ = load_trained(folder / "autoregressive")
    x = t.prepared.windows["test"].x[:16]
    scaler = t.prepared.scaler
    mean = torch.tensor(scaler.mean, dtype=torch.float32)
    std = torch.tensor(scaler.std, dtype=torch.float32)
    periods = {3: 24.0, 5: 365.2425 * 24}  # sin column -> period in rows (cos is the next column)
    with torch.no_grad():
        _, *state = model.rnn(x[:, :-1], initial_state=None)
        row = x[:, -1]
        raw = row * std + mean
        angle = {s: torch.atan2(raw[:, s], raw[:, s + 1]) for s in periods}
        steps = []
        for k in range(K):
            h, *state = model.rnn(row[:, None], initial_state=tuple(state))
            values = row[:, :3] + model.head(h)
            steps.append(values)
            time = []
            for s, period in periods.items():
                a = angle[s] + 2 * math.pi * (k + 1) / period
                time += [(torch.sin(a) - mean[s]) / std[s], (torch.cos(a) - mean[s + 1]) / std[s + 1]]
            row = torch.cat([values, torch.stack(time, 1)], 1)
        by_hand = torch.stack(steps, 1)
        torch.testing.assert_close(model(x), by_hand, rtol=1e-4, atol=1e-5)


def test_the_clock_advances_the_time_columns_to_the_datas_own(runs):
    """The clock (standardised Day and Year columns, period from the data's step) gives the next K rows'
    time columns exactly as the data holds them."""
    folder, _, _ = runs
    t = task_for(load_config_json(folder / "autoregressive"))
    t.prepare()
    clock = t.clock()
    time_columns = ["Day sin", "Day cos", "Year sin", "Year cos"]
    truth = part_windows(t.config, t.prepared.parts["test"], time_columns)
    future = clock.future(truth.x[:, -1], K)  # (windows, K, 4)
    torch.testing.assert_close(future, truth.y, rtol=0, atol=2e-4)


# --- the command line ----------------------------------------------------------------------------------


@pytest.mark.parametrize("task", ["autoregressive", "seq2seq"])
def test_cli_train_evaluate_predict(tmp_path, capsys, task):
    csv = write_jena_csv(tmp_path / "station.csv", days=20, columns=("p (mbar)", "T (degC)", "rh (%)"))
    config = tmp_path / "c.toml"
    config.write_text(
        f'name = "c"\ntask = "{task}"\nbaselines = ["persistence", "repeat_last_day"]\n'
        f'[data]\npaths = [{json.dumps(str(csv))}]\nderived = ["time"]\nsplit = [0.6, 0.2, 0.2]\n'
        f"[windows]\nsequence_length = 24\ntarget_length = 3\nresidual = true\n[training]\nepochs = 1\n"
        f'[[models]]\nname = "{task} GRU"\nlayers = [{{type = "GRU", units = 4}}]\n'
    )
    run = tmp_path / "run"
    assert main(["train", str(config), "--output", str(run), "--quiet"]) == 0
    trained = capsys.readouterr().out
    assert "MAE step 1 test (degC)" in trained and "MAE step 3 test (degC)" in trained
    assert f"best by validation MAE: {task} GRU" in trained
    assert main(["evaluate", str(run)]) == 0
    evaluated = capsys.readouterr().out
    row = next(line for line in evaluated.splitlines() if line.strip().startswith(f"{task} GRU"))
    assert row in trained  # the same numbers, rebuilt from model.json
    assert main(["predict", str(run), "--data", str(csv), "--output", str(tmp_path / "p.csv")]) == 0
    table = pd.read_csv(tmp_path / "p.csv")
    assert list(table.columns[3:6]) == [f"predicted T (degC) step {k}" for k in (1, 2, 3)]
    assert len(table) == 20 * 24 - 24 + 1
    assert main(["summary", str(config)]) == 0
    assert "GRU(4)" in capsys.readouterr().out


def test_shipped_configs_share_the_data_and_the_multistep_configs_windows_and_baselines():
    direct = load_config(CONFIGS / "multistep.toml")
    ar, s2s = (load_config(CONFIGS / f"{name}.toml") for name in ("autoregressive", "seq2seq"))
    assert (ar.task, s2s.task) == ("autoregressive", "seq2seq")
    assert ar.data == s2s.data and ar.windows == s2s.windows and ar.training == s2s.training
    assert ar.data.source == "record"  # the default data: runs with nothing local
    for key in ("target", "features", "derived", "step", "split"):
        assert getattr(ar.data, key) == getattr(direct.data, key), key
    assert ar.windows.model_dump(exclude={"shift"}) == direct.windows.model_dump(exclude={"shift"})
    assert ar.baselines == direct.baselines


@pytest.mark.parametrize("name", ["autoregressive", "seq2seq"])
def test_shipped_configs_window_the_embedded_record_with_nothing_local(nothing_local, name):
    text = describe_windows(load_config(CONFIGS / f"{name}.toml"))
    assert "embedded in rnnkit" in text
    assert "8,367 windows" in text and "2,736 windows" in text and "2,776 windows" in text  # 60/20/20 in time


# --- refused settings ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"windows": {"target_length": 1}}, "windows.target_length: task = 'autoregressive' forecasts several steps"),
        ({"windows": {"horizon": 2}}, "windows.horizon must equal windows.sampling_rate with task = 'autoregressive'"),
        (
            {"models": [{"name": "m", "layers": [{"type": "GRU", "units": 4}, {"type": "Dense", "units": K}]}]},
            "models[0].layers: task = 'autoregressive' builds the forecaster around one recurrent layer",
        ),
        (
            {"models": [{"name": "m", "layers": [{"type": "LSTM", "units": 4, "dropout": 0.1}]}]},
            "models[0].layers: task = 'autoregressive' builds the forecaster around one recurrent layer",
        ),
        (
            {"models": [{"name": "m", "layers": [{"type": "Dense", "units": 4}]}]},
            "(type SimpleRNN, LSTM, GRU; units only)",
        ),
        ({"training": {"stateful": True}}, "stateful training has no multi-step"),
        ({"baselines": ["seasonal_persistence"]}, "must be among ['persistence', 'repeat_last_day', 'mean', 'linear']"),
    ],
)
def test_invalid_forecaster_settings_are_one_line_naming_the_key(tmp_path, change, message):
    raw = _raw(tmp_path / "none.csv", "autoregressive", **change)
    with pytest.raises(RnnkitError) as info:
        parse_config(raw)
    assert message in str(info.value)
    assert "\n" not in str(info.value)


def test_a_run_folder_of_one_forecaster_refuses_another_models_description(runs, tmp_path):
    folder, _, _ = runs
    t = task_for(load_config_json(folder / "seq2seq"))
    description = json.loads((folder / "autoregressive" / "models" / "gru" / "model.json").read_text())
    with pytest.raises(
        RnnkitError, match="cannot rebuild a model of class .*AutoregressiveForecaster for task = 'seq2seq'"
    ):
        t.rebuild(description)


# --- the clock on standardised columns, and its config ---------------------------------------------------


def test_a_scaled_clock_rotates_in_data_units_and_round_trips_its_config():
    from rnnkit.models.forecasters import Clock

    mean, std = [0.1, -0.2], [0.7, 0.8]
    clock = Clock([(0, 1, 24)], mean, std)
    angle = 2 * math.pi * 5 / 24  # the hour 5 of the day
    row = torch.tensor([[(math.sin(angle) - 0.1) / 0.7, (math.cos(angle) + 0.2) / 0.8]])
    ahead = 2 * math.pi * torch.arange(6, 9) / 24  # hours 6, 7, 8
    expected = torch.stack([(torch.sin(ahead) - 0.1) / 0.7, (torch.cos(ahead) + 0.2) / 0.8], -1)[None]
    torch.testing.assert_close(clock.future(row, 3), expected)
    again = Clock.from_config(json.loads(json.dumps(clock.get_config())))
    assert (again.pairs, again.mean, again.std) == (clock.pairs, clock.mean, clock.std)
    assert Clock.from_config(None) is None


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"mean": [0.0, 0.0]}, "mean and std must be given together"),
        ({"mean": [0.0], "std": [1.0]}, "mean and std must hold 2 numbers (std > 0), one per clock column"),
        ({"mean": [0.0, 0.0], "std": [1.0, 0.0]}, "mean and std must hold 2 numbers (std > 0)"),
    ],
)
def test_invalid_clock_scaling(kwargs, message):
    from rnnkit.models.forecasters import Clock

    with pytest.raises(ValueError) as info:
        Clock([(0, 1, 24)], **kwargs)
    assert message in str(info.value)


@pytest.mark.parametrize("task", ["autoregressive", "seq2seq"])
def test_the_report_draws_the_forecasts_of_the_target(runs, task):
    """report.html's forecast section for a feedback forecaster: the best model's target column over test weeks
    (the autoregressive model forecasts p, T, rh: the report reads the T column, as the scores do)."""
    folder, _, _ = runs
    report = (folder / task / "report.html").read_text()
    assert "<section id='forecasts'>" in report and "Error per forecast step (test)" in report
    assert "GRU MAE" in report  # the model's own line beside persistence in a week's caption
