"""The trainer and baselines on rnnkit.data's windows and stateful streams (integration)."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from torch import nn

from rnnkit.baselines import Persistence, SeasonalPersistence
from rnnkit.data import make_windows, stream_batches
from rnnkit.training import Trainer
from rnnkit.training.metrics import score


def series(n=240, period=24):
    t = np.arange(n, dtype=np.float32)
    return np.stack([np.sin(2 * np.pi * t / period), np.cos(2 * np.pi * t / period)], axis=1)  # (n, 2)


def test_windows_train_exactly_like_their_tensors():
    w = make_windows(series(), 12, horizon=3, targets=[0])
    a, b = nn.Sequential(nn.Flatten(), nn.Linear(24, 1)), nn.Sequential(nn.Flatten(), nn.Linear(24, 1))
    b.load_state_dict(a.state_dict())
    Trainer(epochs=2, batch_size=16, seed=2).fit(a, w)
    Trainer(epochs=2, batch_size=16, seed=2).fit(b, (w.x, w.y))
    for k in a.state_dict():
        assert torch.equal(a.state_dict()[k], b.state_dict()[k])


def test_persistence_on_windows_is_the_row_before_the_horizon():
    data = series()
    w = make_windows(data, 30, horizon=1, targets=[0])
    pred = Persistence(w.target_index)(w.x)
    # window i's last input row is i + 29
    assert torch.equal(pred[:, 0], torch.from_numpy(data[29 : 29 + len(w), 0]))
    # period 24 rows, horizon 1: one season before the target is the row at the target − 24,
    # which for a sine of period 24 equals the target itself
    seasonal = score(SeasonalPersistence(w.target_index, period=24, horizon=1), w)
    assert seasonal["mae"] < 1e-5


class StatefulGRU(nn.Module):
    """nn.GRU that carries its state across batches (detached), for the stateful test."""

    def __init__(self):
        super().__init__()
        self.gru = nn.GRU(2, 8, batch_first=True)
        self.head = nn.Linear(8, 1)
        self.h = None
        self.resets = 0

    def forward(self, x):
        out, h = self.gru(x, self.h)
        self.h = h.detach()
        return self.head(out[:, -1])

    def reset_states(self):
        self.h = None
        self.resets += 1


def test_stateful_training_on_stream_batches():
    streams = stream_batches(series(400), batch_size=4, sequence_length=10, horizon=1, targets=[0])
    torch.manual_seed(0)
    model = StatefulGRU()
    trainer = Trainer(stateful=True, epochs=15, learning_rate=1e-2)
    history = trainer.fit(model, streams, streams)
    assert model.resets == 2 * 15  # each epoch start and before each validation
    assert history["loss"][-1] < history["loss"][0] / 5
    assert trainer.evaluate(model, streams)["mae"] < 0.1
    assert not math.isnan(history["val_loss"][-1])


def test_shuffled_stateful_run_is_refused():
    with pytest.raises(ValueError, match="shuffle must be False or None when stateful=True"):
        Trainer(stateful=True, shuffle=True)
