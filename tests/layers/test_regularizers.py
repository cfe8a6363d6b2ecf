"""Regularisers: penalties against hand-computed values and Keras 3, argument checks."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

import rnnkit as rk
from rnnkit.layers import regularizers

W = torch.tensor([[1.0, -2.0], [0.5, 0.0], [-3.0, 4.0]])  # Σ|w| = 10.5, Σw² = 30.25


@pytest.mark.parametrize(
    ("reg", "expected"),
    [
        (regularizers.l1(0.1), 0.1 * 10.5),
        (regularizers.l2(0.1), 0.1 * 30.25),
        (regularizers.l1_l2(0.1, 0.2), 0.1 * 10.5 + 0.2 * 30.25),
        (regularizers.l1(), 0.01 * 10.5),  # Keras defaults: 0.01
        (regularizers.l2(), 0.01 * 30.25),
        (regularizers.l1_l2(), 0.01 * 10.5 + 0.01 * 30.25),
        (regularizers.l1(0), 0.0),
    ],
)
def test_penalty_values(reg, expected):
    penalty = reg(W)
    assert penalty.dim() == 0
    assert penalty.item() == pytest.approx(expected, rel=1e-6)


def test_penalty_matches_keras(seed):
    keras = pytest.importorskip("keras")
    w = seed.standard_normal((5, 7)).astype("float32")
    ours = regularizers.l1_l2(l1=0.003, l2=0.02)(torch.from_numpy(w)).item()
    theirs = float(keras.regularizers.L1L2(l1=0.003, l2=0.02)(w).detach().cpu())
    assert ours == pytest.approx(theirs, rel=1e-6)


def test_penalty_gradient_is_l1_sign_plus_2_l2_w():
    w = W.clone().requires_grad_(True)
    regularizers.l1_l2(0.1, 0.2)(w).backward()
    expected = 0.1 * torch.sign(W) + 0.4 * W
    torch.testing.assert_close(w.grad, expected)


def test_package_exposes_regularizers():
    assert rk.regularizers.l2(1e-3) == regularizers.Regularizer(l2=1e-3)


def test_get_resolves_none_instance_and_dict():
    reg = regularizers.l2(0.5)
    assert regularizers.get(None) is None
    assert regularizers.get(reg) is reg
    assert regularizers.get({"l1": 0.1}) == regularizers.l1(0.1)
    assert regularizers.get({"l1": 0.1, "l2": 0.2}) == regularizers.l1_l2(0.1, 0.2)


def test_serialize_round_trip():
    reg = regularizers.l1_l2(0.1, 0.2)
    assert regularizers.serialize(reg) == {"l1": 0.1, "l2": 0.2}
    assert regularizers.get(regularizers.serialize(reg)) == reg
    assert regularizers.serialize(None) is None


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda: regularizers.l1(-0.1), "l1 must be a finite number >= 0, got -0.1"),
        (lambda: regularizers.l2(math.nan), "l2 must be a finite number >= 0, got nan"),
        (lambda: regularizers.l1_l2(l1=0.1, l2=math.inf), "l2 must be a finite number >= 0, got inf"),
        (lambda: regularizers.l2("0.1"), "l2 must be a finite number >= 0, got '0.1'"),
        (lambda: regularizers.l1(True), "l1 must be a finite number >= 0, got True"),
    ],
)
def test_invalid_factor(make, message):
    with pytest.raises(ValueError) as e:
        make()
    assert str(e.value) == message


def test_get_rejects_unknown_dict_keys():
    with pytest.raises(ValueError, match=r"kernel_regularizer: unknown regulariser keys \['l3'\]"):
        regularizers.get({"l3": 1.0}, "kernel_regularizer")


def test_get_rejects_other_types():
    with pytest.raises(
        ValueError, match=r"bias_regularizer must be None, rk.regularizers.l1/l2/l1_l2\(...\) or a dict, got 'l2'"
    ):
        regularizers.get("l2", "bias_regularizer")


def test_get_rejects_bad_dict_values():
    with pytest.raises(ValueError, match=r"l1 must be a finite number >= 0, got -1"):
        regularizers.get({"l1": -1})


def test_penalty_leaves_weight_unchanged():
    # the penalty does not modify the weight it reads
    w = W.clone()
    regularizers.l1_l2(0.1, 0.1)(w)
    np.testing.assert_array_equal(w.numpy(), W.numpy())
