"""Early stopping, plateau schedule and best-weights tracking, replayed by hand."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from rnnkit.training.callbacks import BestTracker, EarlyStopping, ReduceLROnPlateau


def test_early_stopping_counts_epochs_without_improvement():
    stop = EarlyStopping(patience=2)
    assert [stop.update(v) for v in (1.0, 0.8, 0.9, 0.7, 0.75, 0.71)] == [False, False, False, False, False, True]
    assert stop.state() == {"best": 0.7, "wait": 2, "stopped": True}


def test_early_stopping_state_round_trips():
    a = EarlyStopping(patience=3)
    for v in (1.0, 2.0):
        a.update(v)
    b = EarlyStopping(patience=3)
    b.load_state(a.state())
    assert [a.update(3.0), a.update(3.0)] == [b.update(3.0), b.update(3.0)] == [False, True]


def test_plateau_reduces_and_respects_min_lr():
    param = nn.Parameter(torch.zeros(1))
    opt = torch.optim.SGD([param], lr=1.0)
    plateau = ReduceLROnPlateau(opt, patience=2, factor=0.1, min_lr=0.005)
    lrs = []
    for v in (1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0):
        plateau.step(v)
        lrs.append(opt.param_groups[0]["lr"])
    assert lrs == pytest.approx([1.0, 1.0, 0.1, 0.1, 0.01, 0.01, 0.005])


def test_best_tracker_keeps_a_copy_of_the_best_weights():
    model = nn.Linear(2, 1)
    best = BestTracker()
    with torch.no_grad():
        model.weight.fill_(1.0)
    assert best.update(0.5, 1, model)
    with torch.no_grad():
        model.weight.fill_(2.0)
    assert not best.update(0.6, 2, model)
    assert best.restore(model)
    assert torch.equal(model.weight, torch.ones(1, 2))
    assert best.epoch == 1


@pytest.mark.parametrize(
    ("build", "message"),
    [
        (lambda opt: EarlyStopping(patience=0), "early_stopping_patience must be None or an integer >= 1, got 0"),
        (
            lambda opt: ReduceLROnPlateau(opt, patience=1.5),
            "lr_plateau_patience must be None or an integer >= 1, got 1.5",
        ),
        (lambda opt: ReduceLROnPlateau(opt, patience=1, factor=0.0), r"lr_factor must be in \(0, 1\), got 0.0"),
        (lambda opt: ReduceLROnPlateau(opt, patience=1, min_lr=-1), "min_lr must be >= 0, got -1"),
    ],
)
def test_invalid_callback_argument_is_named(build, message):
    opt = torch.optim.SGD([nn.Parameter(torch.zeros(1))], lr=1.0)
    with pytest.raises(ValueError, match=message):
        build(opt)
