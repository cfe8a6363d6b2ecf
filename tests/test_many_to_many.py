"""Many-to-many regression through the config (windows.return_sequences): per-step baselines by hand,
a per-step GRU that learns a known answer, the run folder, and the settings that are refused."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
import torch

from helpers import tiny_config, write_jena_csv
from rnnkit.cli import main
from rnnkit.tasks import parse_config
from rnnkit.data import make_windows
from rnnkit.errors import RnnkitError
from rnnkit.experiment import evaluate_run, predict_file, run_experiment
from rnnkit.baselines import StepMean, StepPersistence, StepResidualTarget
from rnnkit.training import score
from rnnkit.training.metrics import last_step_scores

quiet = {"progress": False, "log": lambda _: None}
PER_STEP_GRU = {
    "name": "GRU per step",
    "layers": [{"type": "GRU", "units": 16, "return_sequences": True}, {"type": "Dense", "units": 1}],
}


def squares_windows():
    # value t² at row t; 3-row windows, target 2 rows after each input row
    series = pd.DataFrame({"v": np.arange(8.0) ** 2})
    return make_windows(series, 3, horizon=2, targets="v", return_sequences=True)


def test_step_persistence_equals_hand_computed_values():
    w = squares_windows()
    # window 0: inputs rows 0, 1, 2 (0, 1, 4); targets rows 2, 3, 4 (4, 9, 16)
    assert w.y[0].flatten().tolist() == [4.0, 9.0, 16.0]
    assert StepPersistence(0)(w.x)[0].flatten().tolist() == [0.0, 1.0, 4.0]
    # windows 0..3 (rows 0-2 .. 3-5), |(t + 2)² − t²| = 4t + 4 for t = 0 .. 5: mean over the 12 steps
    errors = [4 * t + 4 for start in range(4) for t in range(start, start + 3)]
    assert len(w) == 4
    assert score(StepPersistence(0), w, scale=1.0)["mae"] == pytest.approx(np.mean(errors))
    # the last step alone: t = 2, 3, 4, 5 -> 12, 16, 20, 24
    assert last_step_scores(StepPersistence(0), w, scale=1.0, offset=0.0)["mae"] == pytest.approx(18.0)


def test_step_mean_and_residual_by_hand():
    w = squares_windows()
    mean = StepMean.fit(w.y)
    expected = float(w.y.double().mean())  # targets rows 2..7 in windows of 3 steps
    assert torch.allclose(mean(w.x), torch.full((4, 3, 1), expected))

    class Change(torch.nn.Module):  # a known change at every step: +1, +2, +3
        def forward(self, x):
            return torch.arange(1.0, 4.0).reshape(1, 3, 1).expand(x.shape[0], 3, 1)

    out = StepResidualTarget(Change(), 0)(w.x)
    assert out[1].flatten().tolist() == [1.0 + 1, 4.0 + 2, 9.0 + 3]  # window 1: inputs 1, 4, 9


class _LastStep(torch.nn.Module):  # a many-to-one model: (batch, T, 1) -> (batch, 1)
    def forward(self, x):
        return x[:, -1]


def test_step_residual_rejects_an_output_without_the_time_axis():
    with pytest.raises(
        RnnkitError, match=r"StepResidualTarget: model output \(4, 1\) does not fit the per-step target \(4, 3, 1\)"
    ):
        StepResidualTarget(_LastStep(), 0)(torch.zeros(4, 3, 1))


@pytest.fixture(scope="module")
def per_step_run(tmp_path_factory):
    """A per-step GRU trained on a synthetic station file where the answer is learnable: T is a daily sine
    (amplitude 5 °C) plus a slow trend and noise (sd 0.3 °C); the derived sin/cos of the time of day give the
    phase at every step, so the change over the next 6 hours is known up to the noise, even at step 0."""
    folder = tmp_path_factory.mktemp("m2m")
    csv = write_jena_csv(folder / "station.csv", days=40, columns=("p (mbar)", "T (degC)", "rh (%)"))
    raw = tiny_config(
        csv,
        data={"derived": ["time"]},
        windows={"sequence_length": 24, "horizon": 6, "return_sequences": True, "residual": True},
        training={"epochs": 15, "batch_size": 16, "learning_rate": 1e-2, "seed": 0},
        baselines=["persistence", "mean"],
        models=[PER_STEP_GRU],
    )
    metrics = run_experiment(parse_config(raw), folder / "run", **quiet)
    return folder, csv, raw, metrics


def test_per_step_gru_learns_the_known_answer_and_beats_persistence(per_step_run):
    """Six hours ahead the daily sine moves by up to 7 °C: per-step persistence errs by 4.5 °C (measured
    4.52 on test over all steps, 4.46 at the last step), while the per-step GRU(16) learning the change
    reaches <= 1.0 °C (measured 0.64 over all steps, 0.77 at the last step; the noise alone gives ~0.34)."""
    _, _, _, metrics = per_step_run
    models = metrics["models"]
    assert set(models) == {"persistence", "mean", "GRU per step"}
    gru, persistence = models["GRU per step"], models["persistence"]
    assert gru["mae_test"] <= 1.0
    assert gru["mae_last_test"] <= 1.0
    assert persistence["mae_test"] >= 4.0
    assert gru["skill_test"] >= 0.75
    assert metrics["return_sequences"] is True


def test_per_step_persistence_in_the_run_equals_the_data(per_step_run):
    # the test part of the file by hand: rows 80%..100%, windows of 24 rows, target 6 rows after each step
    _, csv, _, metrics = per_step_run
    temperature = pd.read_csv(csv)["T (degC)"].to_numpy()
    test = temperature[int(round(0.8 * len(temperature))) :]
    starts = range(0, len(test) - 24 - 6 + 1)
    errors = [abs(test[s + t + 6] - test[s + t]) for s in starts for t in range(24)]
    last = [abs(test[s + 23 + 6] - test[s + 23]) for s in starts]
    assert metrics["windows"]["test"] == len(starts)
    assert metrics["models"]["persistence"]["mae_test"] == pytest.approx(np.mean(errors), abs=1e-4)
    assert metrics["models"]["persistence"]["mae_last_test"] == pytest.approx(np.mean(last), abs=1e-4)


def test_per_step_run_folder_and_evaluate(per_step_run):
    folder, csv, _, metrics = per_step_run
    run = folder / "run"
    for name in (
        "config.json",
        "scaler.json",
        "metrics.json",
        "history.csv",
        "learning_curves.png",
        "predictions.png",
        "models/gru_per_step/model.safetensors",
        "models/gru_per_step/model.json",
    ):
        assert (run / name).is_file(), name
    stored = json.loads((run / "metrics.json").read_text())
    assert stored["models"]["GRU per step"]["mae_last_test"] == pytest.approx(
        metrics["models"]["GRU per step"]["mae_last_test"]
    )
    assert json.loads((run / "config.json").read_text())["windows"]["return_sequences"] is True
    description = json.loads((run / "models" / "gru_per_step" / "model.json").read_text())
    assert description["class"].endswith(".StepResidualTarget")
    again = evaluate_run(run)  # the saved model is rebuilt (StepResidualTarget or not) and scores the same
    for name in ("persistence", "GRU per step"):
        assert again["models"][name]["mae_test"] == pytest.approx(metrics["models"][name]["mae_test"], rel=1e-5)
    table = predict_file(run, [str(csv)])  # one forecast per window: its last step's
    assert len(table) == 40 * 24 - 24 + 1  # every 24-row window of the file


def test_per_step_plain_target_is_saved_and_scored_again(tmp_path):
    csv = write_jena_csv(tmp_path / "station.csv", days=20)
    raw = tiny_config(
        csv,
        windows={"sequence_length": 12, "horizon": 3, "return_sequences": True},
        training={"epochs": 1},
        baselines=["persistence"],
        models=[PER_STEP_GRU],
    )
    metrics = run_experiment(parse_config(raw), tmp_path / "run", **quiet)
    description = json.loads((tmp_path / "run" / "models" / "gru_per_step" / "model.json").read_text())
    assert description["class"].endswith(".Sequential")
    again = evaluate_run(tmp_path / "run")
    assert again["models"]["GRU per step"]["mae_test"] == pytest.approx(
        metrics["models"]["GRU per step"]["mae_test"], rel=1e-5
    )


def test_cli_train_prints_the_last_step_column(tmp_path, capsys):
    csv = write_jena_csv(tmp_path / "station.csv", days=20)
    raw = tiny_config(
        csv,
        windows={"sequence_length": 12, "horizon": 3, "return_sequences": True},
        training={"epochs": 1},
        baselines=["persistence", "mean"],
        models=[PER_STEP_GRU],
    )
    config = tmp_path / "c.toml"
    config.write_text(_toml(raw))
    assert main(["train", str(config), "--output", str(tmp_path / "run"), "--quiet"]) == 0
    out = capsys.readouterr().out
    assert "MAE last step test (degC)" in out and "a target for every input step" in out


def _toml(raw: dict) -> str:
    lines = [f'name = "{raw["name"]}"', f"baselines = {json.dumps(raw['baselines'])}"]
    for table in ("data", "windows", "training"):
        lines.append(f"[{table}]")
        lines += [f"{k} = {json.dumps(v)}" for k, v in raw[table].items()]
    for model in raw["models"]:
        layers = ", ".join(
            "{" + ", ".join(f"{k} = {json.dumps(v)}" for k, v in spec.items()) + "}" for spec in model["layers"]
        )
        lines += ["[[models]]", f'name = "{model["name"]}"', f"layers = [{layers}]"]
    return "\n".join(lines) + "\n"


# --- refused settings: one line naming the key -----------------------------------------------------


def _error(tmp_path, windows=None, models=None, **overrides) -> str:
    csv = write_jena_csv(tmp_path / "station.csv", days=20)
    raw = tiny_config(
        csv,
        windows={"sequence_length": 12, "horizon": 3, "return_sequences": True, **(windows or {})},
        baselines=["persistence"],
        models=models or [PER_STEP_GRU],
        **overrides,
    )
    with pytest.raises(RnnkitError) as info:
        run_experiment(parse_config(raw), tmp_path / "run", **quiet)
    assert "\n" not in str(info.value)
    return str(info.value)


def test_a_model_without_the_time_axis_is_refused(tmp_path):
    models = [{"name": "GRU", "layers": [{"type": "GRU", "units": 4}, {"type": "Dense", "units": 1}]}]
    assert _error(tmp_path, models=models) == (
        "model 'GRU' outputs shape (1,) per example; windows.return_sequences = true needs a value per step, "
        "(12, 1): give its last recurrent layer return_sequences = true and end with Dense(1)"
    )


def test_a_model_that_reads_the_future_steps_is_refused(tmp_path):
    models = [
        {
            "name": "BiGRU",
            "layers": [
                {"type": "Bidirectional", "layer": {"type": "GRU", "units": 4, "return_sequences": True}},
                {"type": "Dense", "units": 1},
            ],
        }
    ]
    message = _error(tmp_path, models=models)
    assert message.startswith(
        "model 'BiGRU': a per-step forecast (windows.return_sequences = true) must read only "
        "inputs up to its step, but Bidirectional reads the whole window"
    )


@pytest.mark.parametrize(
    "extra, message",
    [
        (
            {"baselines": ["persistence", "seasonal_persistence"]},
            "config: baselines with windows.return_sequences = true (a target per step) must be among "
            "['persistence', 'mean'] (they have a per-step version), got ['seasonal_persistence']",
        ),
        (
            {"baselines": ["linear"]},
            "config: baselines with windows.return_sequences = true (a target per step) must be among "
            "['persistence', 'mean'] (they have a per-step version), got ['linear']",
        ),
        (
            {"training": {"stateful": True}},
            "config: training.stateful: stateful training has no per-step (windows.return_sequences) path yet, got true",
        ),
        (
            {"task": "classification"},
            "config: windows.return_sequences: a label per step is task = 'tagging'; task = 'classification' labels "
            "whole windows, got return_sequences = true",
        ),
        (
            {"windows": {"sequence_length": 12, "return_sequences": "yes"}},
            "config: 'windows.return_sequences' must be true or false, got 'yes'",
        ),
    ],
)
def test_invalid_per_step_settings(extra, message):
    raw = {"windows": {"sequence_length": 12, "return_sequences": True}, **extra}
    with pytest.raises(RnnkitError) as info:
        parse_config(raw)
    assert str(info.value) == message


def test_default_baselines_drop_those_without_a_per_step_version():
    config = parse_config({"windows": {"sequence_length": 12, "return_sequences": True}})
    assert config.baselines == ["persistence", "mean"]
