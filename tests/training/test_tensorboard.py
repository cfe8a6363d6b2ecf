"""TensorBoard event files: read back with TensorBoard's own reader, they hold history.csv's values."""

from __future__ import annotations

import io
import json

import pandas as pd
import pytest
import torch

pytest.importorskip("tensorboard", reason="the 'tensorboard' package (rnnkit[tensorboard]) is not installed")
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator  # noqa: E402

from rnnkit.training import Trainer  # noqa: E402
from rnnkit.training.tensorboard import read_scalars, write_history  # noqa: E402


def assert_events_equal_history(folder, history_csv: str) -> None:
    table = pd.read_csv(io.StringIO(history_csv))
    scalars = read_scalars(folder)
    assert sorted(scalars) == sorted(c for c in table.columns if c != "epoch")
    for column in scalars:
        steps = [s for s, _ in scalars[column]]
        values = [v for _, v in scalars[column]]
        assert steps == table["epoch"].tolist()
        # event files store float32
        assert values == pytest.approx(table[column].tolist(), rel=1e-6, abs=1e-12), column


def test_a_fits_events_equal_its_history_and_hold_weight_histograms(tmp_path, seed):
    x, y = torch.randn(200, 4), torch.randn(200, 1)
    model = torch.nn.Linear(4, 1)
    history = Trainer(epochs=4, batch_size=32, learning_rate=0.05, lr_plateau_patience=1).fit(
        model, (x[:150], y[:150]), (x[150:], y[150:])
    )
    folder = write_history(history, tmp_path / "tb", model)
    assert_events_equal_history(folder, history.to_csv())
    lrs = [v for _, v in read_scalars(folder)["lr"]]
    assert lrs[0] == pytest.approx(0.05)
    events = EventAccumulator(str(folder), size_guidance={"histograms": 0})
    events.Reload()
    assert sorted(events.Tags()["histograms"]) == ["weights/bias", "weights/weight"]
    weight = events.Histograms("weights/weight")[0]
    assert weight.step == 4 and weight.histogram_value.num == 4
    assert weight.histogram_value.sum == pytest.approx(float(model.weight.detach().sum()), abs=1e-5)


def test_writing_again_replaces_the_events(tmp_path):
    records = [
        {"epoch": 1, "loss": 2.0, "lr": 0.1, "seconds": 0.5},
        {"epoch": 2, "loss": 1.0, "lr": 0.1, "seconds": 0.5},
    ]
    write_history(records, tmp_path / "tb")
    write_history(records[:1], tmp_path / "tb")  # a resumed run writes its folder again
    assert read_scalars(tmp_path / "tb")["loss"] == [(1, 2.0)]
    assert len(list((tmp_path / "tb").iterdir())) == 1


def test_a_run_writes_events_per_model_only_when_the_config_asks(tmp_path):
    from helpers import tiny_config, write_jena_csv
    from rnnkit.tasks import parse_config
    from rnnkit.experiment import run_experiment

    csv = write_jena_csv(tmp_path / "hourly.csv")
    models = [
        {"name": "GRU(4)", "layers": [{"type": "GRU", "units": 4}, {"type": "Dense", "units": 1}]},
        {"name": "LSTM 3", "layers": [{"type": "LSTM", "units": 3}, {"type": "Dense", "units": 1}]},
    ]
    config = parse_config({**tiny_config(csv, models=models, training={"epochs": 3}), "output": {"tensorboard": True}})
    run_experiment(config, tmp_path / "run", log=lambda _: None)
    for slug in ("gru_4", "lstm_3"):
        history_csv = (tmp_path / "run" / "models" / slug / "history.csv").read_text()
        assert_events_equal_history(tmp_path / "run" / "tensorboard" / slug, history_csv)
    assert json.loads((tmp_path / "run" / "config.json").read_text())["output"]["tensorboard"] is True

    plain = parse_config(tiny_config(csv, training={"epochs": 1}))
    run_experiment(plain, tmp_path / "plain", log=lambda _: None)
    assert not (tmp_path / "plain" / "tensorboard").exists()


def test_the_hook_writes_each_epoch_while_the_fit_runs(tmp_path, seed):
    from rnnkit.training.hooks import Hook
    from rnnkit.training.tensorboard import TensorBoardHook

    seen: list[list[int]] = []

    class Look(Hook):  # runs after the TensorBoard hook: the epoch just ended is on disk already
        def on_epoch_end(self, loop, record):
            seen.append([step for step, _ in read_scalars(tmp_path / "tb").get("loss", [])])

    x, y = torch.randn(120, 3), torch.randn(120, 1)
    model = torch.nn.Linear(3, 1)
    history = Trainer(epochs=3, batch_size=40, progress=False, hooks=[TensorBoardHook(tmp_path / "tb"), Look()]).fit(
        model, (x[:80], y[:80]), (x[80:], y[80:])
    )
    assert seen == [[1], [1, 2], [1, 2, 3]]
    assert_events_equal_history(tmp_path / "tb", history.to_csv())
