"""task = "quantile": pinball loss, the empirical interval of persistence, scores by hand, a run end to end."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from rnnkit.baselines import Persistence
from rnnkit.cli import main
from rnnkit.tasks import parse_config
from rnnkit.data import make_windows
from rnnkit.errors import RnnkitError
from rnnkit.experiment import evaluate_run, metrics_table, predict_file, run_experiment
from rnnkit.runs import load_trained
from rnnkit.tasks.quantile import EmpiricalInterval, quantile_scores
from rnnkit.training import Trainer
from rnnkit.training.losses import pinball

quiet = {"progress": False, "log": lambda line: None}


def write_noisy_cycle(path: Path, days: int = 60, sigma: float = 1.0, seed: int = 0) -> Path:
    """Hourly rows: T = a daily cycle + Gaussian noise of std ``sigma`` (stationary: no trend); p is noise."""
    rng = np.random.default_rng(seed)
    n = days * 24
    t = np.arange(n)
    frame = pd.DataFrame(
        {
            "Date Time": pd.date_range("2024-01-01 01:00", periods=n, freq="h").strftime("%d.%m.%Y %H:%M:%S"),
            "p (mbar)": 1000 + rng.normal(0, 2, n),
            "T (degC)": 10 + 5 * np.sin(2 * np.pi * t / 24) + rng.normal(0, sigma, n),
        }
    )
    frame.to_csv(path, index=False, float_format="%.3f")
    return path


def quantile_config(csv: Path, **overrides) -> dict:
    config = {
        "name": "quantile",
        "task": "quantile",
        "data": {"paths": [str(csv)], "split": [0.6, 0.2, 0.2]},
        "windows": {"sequence_length": 24, "horizon": 6},
        "quantile": {"levels": [0.1, 0.5, 0.9]},
        "training": {"epochs": 12, "batch_size": 32, "learning_rate": 3e-3, "seed": 0},
        "models": [{"name": "GRU(8)", "layers": [{"type": "GRU", "units": 8}, {"type": "Dense", "units": 3}]}],
    }
    config.update(overrides)
    return config


# --- pieces by hand ------------------------------------------------------------------------------------


def test_pinball_by_hand_and_its_minimum_is_the_quantile():
    pred = torch.tensor([[1.0, 2.0, 3.0], [0.0, 0.0, 0.0]])
    y = torch.tensor([[2.5], [-1.0]])
    # row 1: e = 1.5, 0.5, -0.5 -> 0.15, 0.25, 0.05; row 2: e = -1 -> 0.9, 0.5, 0.1
    assert float(pinball(pred, y, [0.1, 0.5, 0.9])) == pytest.approx((0.15 + 0.25 + 0.05 + 0.9 + 0.5 + 0.1) / 6)
    values = torch.arange(1.0, 11.0).reshape(-1, 1)  # 1..10: the 0.9-quantile minimises the 0.9 pinball
    losses = {c: float(pinball(torch.full((10, 1), c), values, [0.9])) for c in (5.0, 9.0, 10.0)}
    assert min(losses, key=losses.get) == 9.0


def test_trainer_quantiles_go_with_pinball_only():
    with pytest.raises(ValueError, match="quantiles go with loss='pinball' and only with it"):
        Trainer(loss="mae", quantiles=[0.1, 0.9])
    with pytest.raises(ValueError, match="quantiles go with loss='pinball' and only with it"):
        Trainer(loss="pinball")
    with pytest.raises(ValueError, match=r"quantiles must be increasing levels in \(0, 1\), got \[0.9, 0.1\]"):
        Trainer(loss="pinball", quantiles=[0.9, 0.1])


def test_empirical_interval_adds_the_training_error_quantiles_and_keeps_persistence_at_the_median():
    series = pd.DataFrame({"T": [0.0, 1.0, 3.0, 2.0, 6.0, 5.0, 5.0, 9.0, 8.0, 8.0, 12.0]})
    w = make_windows(series, 2, horizon=1, targets="T")
    errors = (w.y.reshape(-1) - w.x[:, -1, 0]).double().numpy()  # target - last value
    m = EmpiricalInterval.fit(Persistence(0), w, [0.1, 0.5, 0.9])
    expected = np.quantile(errors, [0.1, 0.5, 0.9])  # numpy's linear interpolation, as torch.quantile
    assert m.offsets.tolist() == pytest.approx([expected[0], 0.0, expected[2]])
    out = m(w.x)
    assert out[:, 1].tolist() == w.x[:, -1, 0].tolist()  # the median column is persistence itself


def test_quantile_scores_by_hand():
    out = torch.tensor([[0.0, 1.0, 2.0], [1.0, 2.0, 4.0], [-1.0, 0.0, 1.0]])
    y = torch.tensor([[1.5], [5.0], [0.0]])
    s = quantile_scores(out, y, [0.1, 0.5, 0.9], scale=2.0, offset=1.0, persistence=torch.tensor([[1.0], [3.0], [1.0]]))
    assert s["mae"] == pytest.approx(2 * (0.5 + 3.0 + 0.0) / 3)
    assert s["skill"] == pytest.approx(1 - (0.5 + 3.0 + 0.0) / (0.5 + 2.0 + 1.0))
    assert s["coverage"] == pytest.approx(2 / 3)  # 1.5 in [0, 2], 5 not in [1, 4], 0 in [-1, 1]
    assert s["width"] == pytest.approx(2 * (2 + 3 + 2) / 3)
    assert s["pinball"] == pytest.approx(2 * float(pinball(out, y, [0.1, 0.5, 0.9])))


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        ({"quantile": {"levels": [0.1, 0.9]}}, "'quantile.levels': must be at least 3 increasing levels"),
        ({"quantile": {"levels": [0.1, 0.4, 0.9]}}, "with 0.5 among them"),
        ({"training": {"loss": "mae"}}, "training.loss must be 'pinball' when task = 'quantile', got 'mae'"),
        ({"baselines": ["mean"]}, r"baselines for task = 'quantile' must be among \['persistence'\]"),
        ({"windows": {"sequence_length": 24, "target_length": 3}}, "task = 'quantile' forecasts one value per window"),
    ],
)
def test_invalid_quantile_settings(raw, message):
    from rnnkit.tasks import parse_config as parse

    with pytest.raises(RnnkitError, match=message):
        parse({**quantile_config(Path("x.csv")), **raw})


def test_pinball_needs_the_quantile_task():
    with pytest.raises(RnnkitError, match="training.loss 'pinball' needs task = 'quantile', got task = 'regression'"):
        parse_config({"windows": {"sequence_length": 4}, "training": {"loss": "pinball"}})


# --- a run -------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def quantile_run(tmp_path_factory):
    folder = tmp_path_factory.mktemp("quantile")
    csv = write_noisy_cycle(folder / "cycle.csv")
    run = folder / "run"
    metrics = run_experiment(parse_config(quantile_config(csv)), run, **quiet)
    return csv, run, metrics


def test_the_run_scores_median_and_interval_and_persistence_by_hand(quantile_run):
    csv, run, metrics = quantile_run
    assert metrics["task"] == "quantile" and metrics["levels"] == [0.1, 0.5, 0.9]
    p, gru = metrics["models"]["persistence"], metrics["models"]["GRU(8)"]
    assert p["skill_test"] == 0.0
    # persistence's interval by hand: training errors' 10%/90% quantiles around the last value (data units)
    frame = pd.read_csv(csv)["T (degC)"].to_numpy()
    n = len(frame)
    train, test = frame[: int(0.6 * n)], frame[int(0.8 * n) :]

    def errors(part):
        last = np.arange(23, len(part) - 6)
        return part[last + 6] - part[last]

    lo, hi = np.quantile(errors(train), [0.1, 0.9])
    inside = (errors(test) >= lo) & (errors(test) <= hi)
    assert p["coverage_test"] == pytest.approx(inside.mean(), abs=2 / len(inside))  # float32 scaling at the edges
    assert p["width_test"] == pytest.approx(hi - lo, rel=1e-4)
    # The GRU learns the daily cycle; the rest is noise of std 1, whose true 10-90% interval is 2.56 wide.
    # Measured over training seeds 0-4 (torch 2.13 CPU): median skill 0.816-0.824, test coverage
    # 0.834-0.865 (validation 0.780-0.834), width 2.78-3.24 degC; persistence: coverage 0.803, width 13.97.
    assert gru["skill_test"] > 0.7
    assert 0.75 < gru["coverage_test"] < 0.95
    assert 2.56 < gru["width_test"] < 4.0 < p["width_test"]


def test_evaluate_predict_and_the_rebuilt_model(quantile_run, tmp_path):
    csv, run, metrics = quantile_run
    again = evaluate_run(run)
    for name, m in metrics["models"].items():
        for key in ("mae_test", "coverage_test", "width_test", "pinball_test"):
            assert again["models"][name][key] == pytest.approx(m[key], rel=1e-6)
    table = predict_file(run, [str(csv)])
    columns = [c for c in table.columns if c.startswith("predicted")]
    assert columns == ["predicted T (degC) q0.1", "predicted T (degC) q0.5", "predicted T (degC) q0.9"]
    assert (table[columns[0]] <= table[columns[1]]).all() and (table[columns[1]] <= table[columns[2]]).all()
    # issue 22: sorted in each row, and the note counts the rows that had crossed
    assert table.attrs["note"].startswith("quantiles sorted in each row so that they never cross (")
    assert table.attrs["note"].endswith(f" of {len(table):,} rows had crossed)")
    assert "true T (degC)" in table.columns and "persistence T (degC)" in table.columns
    assert table.attrs["score"].startswith("score on the ")
    description = json.loads((run / "models" / "gru_8" / "model.json").read_text())
    assert description["class"].endswith("MultiStepResidualTarget") or description["class"].endswith("Sequential")
    _, model, _ = load_trained(run)
    assert model(torch.zeros(2, 24, 2)).shape == (2, 3)
    assert "80% coverage test" in metrics_table(metrics)


def test_cli_train_evaluate_predict(quantile_run, tmp_path, capsys):
    csv, _, _ = quantile_run
    config = tmp_path / "q.toml"
    config.write_text(
        f'''name = "q"\ntask = "quantile"\n[data]\npaths = ["{csv}"]\nsplit = [0.6, 0.2, 0.2]\n'''
        """[windows]\nsequence_length = 24\nhorizon = 6\nresidual = true\n[training]\nepochs = 2\n"""
        """[[models]]\nname = "GRU"\nlayers = [{type = "GRU", units = 4}, {type = "Dense", units = 3}]\n"""
    )
    assert main(["train", str(config), "--output", str(tmp_path / "run"), "--quiet"]) == 0
    out = capsys.readouterr().out
    assert "80% coverage test" in out and "best by validation median MAE: GRU" in out
    assert main(["evaluate", str(tmp_path / "run")]) == 0
    assert "80% coverage test" in capsys.readouterr().out
    assert main(["predict", str(tmp_path / "run"), "--data", str(csv)]) == 0
    assert "q0.9" in capsys.readouterr().out
