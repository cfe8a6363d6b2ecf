"""Multi-step forecasting through the config (windows.target_length = K): the baselines by hand from the
file, a direct GRU -> Dense(K) that learns a known K-step answer, the run folder with per-step MAE, the
shipped station config, and the settings that are refused in one line naming the key."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from helpers import tiny_config, write_jena_csv
from rnnkit.cli import main
from rnnkit.tasks import load_config, parse_config
from rnnkit.errors import RnnkitError
from rnnkit.experiment import evaluate_run, predict_file, run_experiment
from rnnkit.baselines import MultiStepResidualTarget, RepeatLastDay, RepeatLastPeriod
from rnnkit.tasks.regression import check_output
from rnnkit.training.metrics import multistep_scores

quiet = {"progress": False, "log": lambda _: None}
K = 6
DIRECT_GRU = {"name": "direct GRU", "layers": [{"type": "GRU", "units": 16}, {"type": "Dense", "units": K}]}


# --- the pieces, by hand ---------------------------------------------------------------------------


def test_repeat_last_day_picks_the_same_phase_on_the_latest_day():
    x = torch.arange(10.0).view(1, 10, 1)  # rows 0..9 hold their own number; a "day" is 4 rows
    # horizon 1: targets at rows 10, 11, ...; a day earlier: 6, 7, 8, 9, then 6, 7 again (still the last day)
    assert RepeatLastDay(0, period=4, target_length=6)(x).flatten().tolist() == [6.0, 7.0, 8.0, 9.0, 6.0, 7.0]
    # horizon 3: targets at rows 12, 13, 14, 15, 16 -> 8, 9, 6, 7, 8
    assert RepeatLastDay(0, period=4, target_length=5, horizon=3)(x).flatten().tolist() == [8.0, 9.0, 6.0, 7.0, 8.0]
    assert RepeatLastDay(0, period=4, target_length=5).get_config() == {
        "target_index": 0,
        "period": 4,
        "target_length": 5,
        "horizon": 1,
    }


def test_repeat_last_day_rejects_a_horizon_below_one():
    with pytest.raises(ValueError, match=r"^horizon must be a positive integer, got 0$"):
        RepeatLastDay(0, period=4, target_length=2, horizon=0)


def test_persistence_repeats_the_last_value_and_the_residual_adds_it_at_every_step():
    x = torch.tensor([[[1.0, 5.0], [2.0, 7.0]]])  # (1, 2, 2); target column 1, last value 7
    assert RepeatLastPeriod(1, 1, 3)(x).flatten().tolist() == [7.0, 7.0, 7.0]

    class Change(torch.nn.Module):  # a known change at each of 3 steps
        def __init__(self, shape):
            super().__init__()
            self.shape = shape

        def forward(self, x):
            return torch.tensor([1.0, 2.0, 3.0]).reshape(1, *self.shape)

    assert MultiStepResidualTarget(Change((3,)), 1, (3,))(x).tolist() == [[8.0, 9.0, 10.0]]
    assert MultiStepResidualTarget(Change((3, 1)), 1, (3, 1))(x).tolist() == [[[8.0], [9.0], [10.0]]]
    with pytest.raises(
        RnnkitError,
        match=r"MultiStepResidualTarget: model output \(1, 3, 1\) does not fit the "
        r"multi-step target \(1, 3\)",
    ):
        MultiStepResidualTarget(Change((3, 1)), 1, (3,))(x)


@pytest.mark.parametrize("shape", [(), (0,), (3, 2), [3.0]])
def test_residual_rejects_a_bad_output_shape(shape):
    with pytest.raises(ValueError, match=r"^output_shape must be \(steps,\) or \(steps, targets\) with positive sizes"):
        MultiStepResidualTarget(torch.nn.Identity(), 0, shape)


def test_check_output_accepts_k_or_k_by_one_only():
    assert check_output((4, 1), 4, "m") == (4, 1)
    with pytest.raises(RnnkitError, match=r"^m outputs shape \(4, 2\) per example; windows.target_length = 4 needs"):
        check_output((4, 2), 4, "m")


def test_multistep_scores_by_step_by_hand():
    x = torch.zeros(2, 3, 1)
    y = torch.tensor([[[1.0], [2.0]], [[3.0], [-2.0]]])  # 2 windows, 2 steps
    w = type(
        "W",
        (),
        {
            "x": x,
            "y": y,
            "__len__": lambda self: 2,
            "batch": lambda self, i: (x[torch.as_tensor(i)], y[torch.as_tensor(i)]),
        },
    )()
    s = multistep_scores(RepeatLastPeriod(0, 1, 2), w, scale=2.0, offset=10.0)  # predicts 0 (10 in data units)
    assert s["mae_by_step"] == pytest.approx([4.0, 4.0])  # step 1: |2·1|, |2·3|; step 2: |2·2|, |2·(−2)|
    assert s["mae"] == pytest.approx(4.0)


# --- a run on a synthetic station file -------------------------------------------------------------


@pytest.fixture(scope="module")
def multistep_run(tmp_path_factory):
    """A direct GRU(16) -> Dense(6) trained on a file whose next 6 hours are learnable: T is a daily sine
    (amplitude 5 degC) plus a slow trend and noise (sd 0.3 degC); the derived sin/cos of the time of day give
    the phase, so the change over each of the next 6 hours is known up to the noise."""
    folder = tmp_path_factory.mktemp("multistep")
    csv = write_jena_csv(folder / "station.csv", days=40, columns=("p (mbar)", "T (degC)", "rh (%)"))
    raw = tiny_config(
        csv,
        data={"derived": ["time"]},
        windows={"sequence_length": 24, "horizon": 1, "target_length": K, "residual": True},
        training={"epochs": 15, "batch_size": 16, "learning_rate": 1e-2, "seed": 0},
        baselines=["persistence", "repeat_last_day", "mean"],
        models=[DIRECT_GRU],
    )
    metrics = run_experiment(parse_config(raw), folder / "run", **quiet)
    return folder, csv, raw, metrics


def test_direct_gru_learns_the_known_answer_and_beats_the_baselines(multistep_run):
    """Over the next 6 hours the sine moves by up to 7 degC: persistence errs by 2.76 degC on test (measured),
    repeat-the-last-day by 0.52 (the noise of two readings and a day of trend); the direct GRU learning the
    change reaches <= 1.0 degC over all steps (measured 0.63; the noise alone gives ~0.24)."""
    _, _, _, metrics = multistep_run
    models = metrics["models"]
    assert set(models) == {"persistence", "repeat_last_day", "mean", "direct GRU"}
    gru, pers = models["direct GRU"], models["persistence"]
    assert gru["mae_test"] <= 1.0
    assert pers["mae_test"] >= 2.5
    assert gru["skill_test"] >= 0.6
    assert metrics["target_length"] == K
    # every step beats persistence; its error grows with the lead time while the GRU's stays small
    assert all(g < p for g, p in zip(gru["mae_test_by_step"], pers["mae_test_by_step"]))
    assert pers["mae_test_by_step"][-1] > 4 * pers["mae_test_by_step"][0]


def test_baselines_in_the_run_equal_the_data_by_hand(multistep_run):
    # the test part of the file: rows 80%..100%; windows of 24 rows, targets the next 6 rows
    _, csv, _, metrics = multistep_run
    temperature = pd.read_csv(csv)["T (degC)"].to_numpy()
    test = temperature[int(round(0.8 * len(temperature))) :]
    starts = range(0, len(test) - 24 - K + 1)
    last = np.array([[abs(test[s + 24 + k] - test[s + 23]) for k in range(K)] for s in starts])  # (windows, K)
    day = np.array([[abs(test[s + 24 + k] - test[s + k]) for k in range(K)] for s in starts])  # 24 rows before
    assert metrics["windows"]["test"] == len(starts)
    models = metrics["models"]
    assert models["persistence"]["mae_test_by_step"] == pytest.approx(last.mean(0).tolist(), abs=1e-4)
    assert models["persistence"]["mae_test"] == pytest.approx(last.mean(), abs=1e-4)
    assert models["repeat_last_day"]["mae_test_by_step"] == pytest.approx(day.mean(0).tolist(), abs=1e-4)
    assert models["repeat_last_day"]["mae_test"] == pytest.approx(day.mean(), abs=1e-4)
    assert models["repeat_last_day"]["skill_test"] == pytest.approx(1 - day.mean() / last.mean(), abs=1e-5)
    # mean: the training mean of each step, a constant curve
    train = temperature[: int(round(0.6 * len(temperature)))]
    train_targets = np.array([[train[s + 24 + k] for k in range(K)] for s in range(len(train) - 24 - K + 1)])
    targets = np.array([[test[s + 24 + k] for k in range(K)] for s in starts])
    expected = np.abs(targets - train_targets.mean(0)).mean()
    assert models["mean"]["mae_test"] == pytest.approx(expected, abs=1e-3)
    assert models["mean"]["params"] == K


def test_run_folder_metrics_by_step_and_evaluate(multistep_run):
    folder, csv, _, metrics = multistep_run
    run = folder / "run"
    for name in (
        "config.json",
        "scaler.json",
        "metrics.json",
        "history.csv",
        "learning_curves.png",
        "predictions.png",
        "models/direct_gru/model.safetensors",
        "models/direct_gru/model.json",
    ):
        assert (run / name).is_file(), name
    stored = json.loads((run / "metrics.json").read_text())
    gru = stored["models"]["direct GRU"]
    assert len(gru["mae_test_by_step"]) == K and len(gru["mae_val_by_step"]) == K
    # every window has K steps: the overall MAE is the mean of the per-step MAEs
    assert np.mean(gru["mae_test_by_step"]) == pytest.approx(gru["mae_test"], rel=1e-6)
    assert json.loads((run / "config.json").read_text())["windows"]["target_length"] == K
    description = json.loads((run / "models" / "direct_gru" / "model.json").read_text())
    assert description["class"].endswith(".MultiStepResidualTarget")
    again = evaluate_run(run)  # the saved model is rebuilt and scores the same
    for name in ("persistence", "repeat_last_day", "direct GRU"):
        assert again["models"][name]["mae_test_by_step"] == pytest.approx(
            metrics["models"][name]["mae_test_by_step"], rel=1e-5
        )
    table = predict_file(run, [str(csv)])  # every 24-row window of the file, a column per step
    assert len(table) == 40 * 24 - 24 + 1
    steps = [c for c in table.columns if c.startswith("predicted T (degC) step ")]
    assert len(steps) == K
    assert (table["target_time"] - table["last_input_time"] == pd.Timedelta(hours=1)).all()


def test_plain_target_with_k_by_one_output_is_saved_and_scored_again(tmp_path):
    csv = write_jena_csv(tmp_path / "station.csv", days=20)
    model = {
        "name": "GRU",
        "layers": [
            {"type": "GRU", "units": 4, "return_sequences": True},
            {"type": "GRU", "units": 4},
            {"type": "Dense", "units": 3},
        ],
    }
    raw = tiny_config(
        csv,
        windows={"sequence_length": 12, "horizon": 2, "target_length": 3},
        training={"epochs": 1},
        baselines=["persistence", "mean", "linear"],
        models=[model],
    )
    metrics = run_experiment(parse_config(raw), tmp_path / "run", **quiet)
    description = json.loads((tmp_path / "run" / "models" / "gru" / "model.json").read_text())
    assert description["class"].endswith(".Sequential")
    assert metrics["models"]["linear"]["params"] == 12 * 2 * 3 + 3  # flattened window -> 3 outputs
    again = evaluate_run(tmp_path / "run")
    assert again["models"]["GRU"]["mae_test"] == pytest.approx(metrics["models"]["GRU"]["mae_test"], rel=1e-5)


def test_cli_train_prints_the_first_and_last_step(tmp_path, capsys):
    csv = write_jena_csv(tmp_path / "station.csv", days=20)
    config = tmp_path / "c.toml"
    config.write_text(
        f'name = "m"\nbaselines = ["persistence", "repeat_last_day"]\n[data]\npaths = [{json.dumps(str(csv))}]\n'
        f"split = [0.6, 0.2, 0.2]\n[windows]\nsequence_length = 24\ntarget_length = 4\n[training]\nepochs = 1\n"
        f'[[models]]\nname = "GRU"\nlayers = [{{type = "GRU", units = 4}}, {{type = "Dense", units = 4}}]\n'
    )
    assert main(["train", str(config), "--output", str(tmp_path / "run"), "--quiet"]) == 0
    out = capsys.readouterr().out
    assert "MAE step 1 test (degC)" in out and "MAE step 4 test (degC)" in out and "target_length 4" in out


# --- refused settings: one line naming the key -----------------------------------------------------


def _run_error(tmp_path, windows=None, models=None, baselines=("persistence",)) -> str:
    csv = write_jena_csv(tmp_path / "station.csv", days=20)
    raw = tiny_config(
        csv,
        windows={"sequence_length": 24, "horizon": 1, "target_length": K, **(windows or {})},
        baselines=list(baselines),
        models=models or [DIRECT_GRU],
    )
    with pytest.raises(RnnkitError) as info:
        run_experiment(parse_config(raw), tmp_path / "run", **quiet)
    assert "\n" not in str(info.value)
    return str(info.value)


def test_a_model_output_width_other_than_k_is_refused(tmp_path):
    models = [{"name": "GRU", "layers": [{"type": "GRU", "units": 4}, {"type": "Dense", "units": 1}]}]
    assert _run_error(tmp_path, models=models) == (
        "model 'GRU' outputs shape (1,) per example; windows.target_length = 6 needs (6,) or (6, 1), "
        "a value per forecast step: end with Dense(6)"
    )


def test_repeat_last_day_with_a_window_shorter_than_a_day_is_refused(tmp_path):
    assert _run_error(tmp_path, windows={"sequence_length": 12}, baselines=["persistence", "repeat_last_day"]) == (
        "baselines 'repeat_last_day' needs windows.sequence_length >= 24 (one day of window rows at this data's "
        "step), got 12"
    )


def test_repeat_last_day_with_horizon_zero_is_refused(tmp_path):
    message = _run_error(tmp_path, windows={"horizon": 0}, baselines=["repeat_last_day"])
    # Refused as a leak before the baseline's own rule (issue 13): the target would be the last input row.
    assert "windows.horizon = 0 makes the target ('T (degC)') the last input row" in message


@pytest.mark.parametrize(
    "raw, message",
    [
        (
            {"task": "classification", "windows": {"sequence_length": 12, "target_length": 3}},
            "config: windows.target_length: a forecast of several steps needs task = 'regression', got target_length = 3 "
            "with task = 'classification'",
        ),
        (
            {"task": "tagging", "data": {"dataset": "teddy"}, "windows": {"sequence_length": 12, "target_length": 3}},
            "config: windows: task = 'tagging' tags every token of whole sentences (horizon 0) and takes no [windows] "
            "table, got one",
        ),
        (
            {"windows": {"sequence_length": 12, "target_length": 3, "return_sequences": True}},
            "config: windows.target_length must be 1 with windows.return_sequences = true (one target per input step), "
            "got 3",
        ),
        (
            {
                "windows": {"sequence_length": 12, "target_length": 3},
                "baselines": ["persistence", "seasonal_persistence"],
            },
            "config: baselines with windows.target_length > 1 (a forecast of 3 steps) must be among ['persistence', "
            "'repeat_last_day', 'mean', 'linear'] (they forecast every step), got ['seasonal_persistence']",
        ),
        (
            {"windows": {"sequence_length": 12, "target_length": 3}, "baselines": ["naive_dense"]},
            "config: baselines with windows.target_length > 1 (a forecast of 3 steps) must be among ['persistence', "
            "'repeat_last_day', 'mean', 'linear'] (they forecast every step), got ['naive_dense']",
        ),
        (
            {"windows": {"sequence_length": 12}, "baselines": ["repeat_last_day"]},
            "config: baselines: 'repeat_last_day' forecasts several steps: it needs windows.target_length > 1 "
            "(one step: 'seasonal_persistence'), got target_length = 1",
        ),
        (
            {"windows": {"sequence_length": 12, "target_length": 3}, "training": {"stateful": True}},
            "config: training.stateful: stateful training has no multi-step (windows.target_length > 1) path yet, got true",
        ),
        (
            {"windows": {"sequence_length": 12, "target_length": 0}},
            "config: 'windows.target_length': Input should be greater than or equal to 1, got 0",
        ),
        (
            {"windows": {"sequence_length": 12, "target_length": "24"}},
            "config: 'windows.target_length' must be an integer, got '24'",
        ),
    ],
)
def test_invalid_multistep_settings(raw, message):
    with pytest.raises(RnnkitError) as info:
        parse_config(raw)
    assert str(info.value) == message


def test_default_baselines_keep_those_that_forecast_every_step():
    assert parse_config({"windows": {"sequence_length": 12, "target_length": 3}}).baselines == ["persistence", "mean"]
    assert parse_config({"windows": {"sequence_length": 12}}).baselines == [
        "persistence",
        "seasonal_persistence",
        "mean",
    ]


# --- the shipped config on the station data --------------------------------------------------------

CONFIG = Path(__file__).resolve().parents[1] / "configs" / "multistep.toml"
DATA_DIR = Path(os.environ.get("RNNKIT_DATA_DIR", Path(__file__).resolve().parents[2] / ".." / "shared" / "data"))
HAS_STATION = any(DATA_DIR.glob("mpi_roof_*.csv*"))


def test_shipped_config_is_valid():
    config = load_config(CONFIG)
    assert (config.windows.sequence_length, config.windows.horizon, config.windows.target_length) == (48, 1, 24)
    assert config.baselines == ["persistence", "repeat_last_day", "mean"]


@pytest.mark.skipif(not HAS_STATION, reason="the mpi_roof station exports are not in RNNKIT_DATA_DIR")
def test_shipped_config_direct_gru_beats_repeat_last_day_on_the_station(tmp_path, monkeypatch):
    """Measured (seed 0): direct GRU test MAE 2.050 degC over 24 h, repeat_last_day 2.735, persistence 3.516.
    Stated margins: the GRU beats repeat_last_day by >= 15% and persistence by >= 30% over all 24 steps."""
    monkeypatch.setenv("RNNKIT_DATA_DIR", str(DATA_DIR))
    metrics = run_experiment(load_config(CONFIG), tmp_path / "run", **quiet)
    models = metrics["models"]
    gru, day = models["direct GRU"]["mae_test"], models["repeat_last_day"]["mae_test"]
    assert gru <= 0.85 * day
    assert models["direct GRU"]["skill_test"] >= 0.30
    # 24 h ahead, the value a day before the target is the last input itself: step 24 equals persistence's
    assert models["repeat_last_day"]["mae_test_by_step"][-1] == pytest.approx(
        models["persistence"]["mae_test_by_step"][-1]
    )


def test_describe_windows_names_the_first_and_last_target_step(tmp_path):
    from rnnkit.experiment import describe_windows

    csv = write_jena_csv(tmp_path / "station.csv", days=20)  # hourly rows from 2020-01-01 01:00
    raw = tiny_config(csv, windows={"sequence_length": 24, "horizon": 2, "target_length": 3})
    text = describe_windows(parse_config({**raw, "baselines": ["persistence"]}))
    # window 0: inputs rows 0..23 (01:00 to 00:00 next day); targets rows 25, 26, 27
    assert (
        "window 0: inputs 2020-01-01 01:00 to 2020-01-02 00:00 (24 rows), "
        "target 2020-01-02 02:00 to 2020-01-02 04:00 (3 steps)"
    ) in text
