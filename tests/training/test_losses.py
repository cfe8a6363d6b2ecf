"""Losses by name: golden values, target layout, invalid names."""

from __future__ import annotations

import math

import pytest
import torch

from rnnkit.errors import RnnkitError
from rnnkit.training.losses import get_loss


def test_mse_mae_huber_golden_values():
    pred = torch.tensor([[0.5], [2.0], [-1.0]])
    true = torch.tensor([[0.0], [0.0], [0.0]])
    assert get_loss("mse")(pred, true).item() == pytest.approx((0.25 + 4 + 1) / 3)
    assert get_loss("mae")(pred, true).item() == pytest.approx((0.5 + 2 + 1) / 3)
    # Huber with delta 1: ½·0.5², 1·(2 − ½), 1·(1 − ½)
    assert get_loss("huber")(pred, true).item() == pytest.approx((0.125 + 1.5 + 0.5) / 3)


def test_flat_target_is_laid_out_like_the_prediction_not_broadcast():
    pred = torch.tensor([[1.0], [2.0], [3.0]])
    true = torch.tensor([1.0, 2.0, 5.0])  # (3,) against (3, 1): must not become (3, 3)
    assert get_loss("mse")(pred, true).item() == pytest.approx(4 / 3)


def test_shape_mismatch_names_both_shapes():
    with pytest.raises(RnnkitError, match=r"model output shape \(3, 1\) does not fit target shape \(3, 2\)"):
        get_loss("mae")(torch.zeros(3, 1), torch.zeros(3, 2))


def test_cross_entropy_golden_and_per_time_step():
    logits = torch.tensor([[0.0, 0.0], [2.0, 0.0]])
    target = torch.tensor([0, 0])
    expected = (math.log(2) + math.log(1 + math.exp(-2))) / 2
    assert get_loss("cross_entropy")(logits, target).item() == pytest.approx(expected)
    # (batch, time, classes) with targets (batch, time): same mean over all steps
    assert get_loss("cross_entropy")(logits[None], target[None]).item() == pytest.approx(expected)
    # a trailing target axis of size one is accepted
    assert get_loss("cross_entropy")(logits, target[:, None]).item() == pytest.approx(expected)


def test_cross_entropy_refuses_fractional_targets():
    with pytest.raises(RnnkitError, match="cross_entropy targets must be class indices"):
        get_loss("cross_entropy")(torch.zeros(2, 3), torch.tensor([0.5, 1.0]))


def test_cross_entropy_refuses_wrong_shapes():
    with pytest.raises(RnnkitError, match=r"got logits \(2, 3\) and targets \(3,\)"):
        get_loss("cross_entropy")(torch.zeros(2, 3), torch.tensor([0, 1, 2]))


@pytest.mark.parametrize(
    ("alias", "name"),
    [("mean_squared_error", "mse"), ("MAE", "mae"), ("sparse_categorical_crossentropy", "cross_entropy")],
)
def test_keras_long_names(alias, name):
    assert get_loss(alias) is get_loss(name)


def test_unknown_loss_is_named():
    with pytest.raises(ValueError, match="loss must be one of mse, mae, huber, cross_entropy, pinball, got 'hinge'"):
        get_loss("hinge")


def test_cross_entropy_ignores_padded_steps_with_and_without_class_weights():
    from rnnkit.training.losses import IGNORE_INDEX, cross_entropy

    logits = torch.tensor([[[2.0, 0.0], [0.0, 1.0], [5.0, -5.0]]])  # (1, 3 steps, 2 classes)
    target = torch.tensor([[0, 1, IGNORE_INDEX]])
    by_hand = [math.log(1 + math.exp(-2.0)), math.log(1 + math.exp(-1.0))]  # -log softmax of the true class
    assert cross_entropy(logits, target).item() == pytest.approx(sum(by_hand) / 2, rel=1e-6)
    weighted = cross_entropy(logits, target, class_weight=[1.0, 3.0]).item()
    assert weighted == pytest.approx((1.0 * by_hand[0] + 3.0 * by_hand[1]) / 2, rel=1e-6)
