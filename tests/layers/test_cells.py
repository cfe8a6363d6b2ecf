"""Cells: one step against hand-written Keras maths, Keras-layout round trips, gradcheck."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from rnnkit.layers.cells import GRUCell, LSTMCell, SimpleRNNCell


def _sigmoid(a):
    return 1 / (1 + np.exp(-a))


def _keras_step(kind, weights, x, state, reset_after=True):
    """One step written from Keras's formulas on Keras-layout numpy weights (gates z, r, h for GRU)."""
    kernel, rec, bias = weights
    if kind == "simple":
        (h,) = state
        h = np.tanh(x @ kernel + h @ rec + bias)
        return h, (h,)
    if kind == "lstm":
        h, c = state
        i, f, g, o = np.split(x @ kernel + h @ rec + bias, 4, axis=1)
        c = _sigmoid(f) * c + _sigmoid(i) * np.tanh(g)
        h = _sigmoid(o) * np.tanh(c)
        return h, (h, c)
    (h,) = state
    n = h.shape[1]
    if reset_after:
        xz, xr, xh = np.split(x @ kernel + bias[0], 3, axis=1)
        hz, hr, hh = np.split(h @ rec + bias[1], 3, axis=1)
        z, r = _sigmoid(xz + hz), _sigmoid(xr + hr)
        cand = np.tanh(xh + r * hh)
    else:
        xz, xr, xh = np.split(x @ kernel + bias, 3, axis=1)
        z = _sigmoid(xz + h @ rec[:, :n])
        r = _sigmoid(xr + h @ rec[:, n : 2 * n])
        cand = np.tanh(xh + (r * h) @ rec[:, 2 * n :])
    h = z * h + (1 - z) * cand
    return h, (h,)


CASES = [
    ("simple", lambda: SimpleRNNCell(3, 4), {}),
    ("lstm", lambda: LSTMCell(3, 4), {}),
    ("gru", lambda: GRUCell(3, 4), {"reset_after": True}),
    ("gru", lambda: GRUCell(3, 4, reset_after=False), {"reset_after": False}),
]


@pytest.mark.parametrize("kind,make,kw", CASES)
def test_step_matches_keras_formulas(seed, kind, make, kw):
    cell = make().double()
    weights = [seed.normal(size=s) for s in cell.keras_shapes()]
    cell.set_keras_weights(weights)
    x = seed.normal(size=(5, 3))
    state = tuple(seed.normal(size=(5, 4)) for _ in range(cell.state_count))
    h, new_state = cell(torch.from_numpy(x), tuple(torch.from_numpy(s) for s in state))
    h_ref, state_ref = _keras_step(kind, weights, x, state, **kw)
    np.testing.assert_allclose(h.detach().numpy(), h_ref, atol=1e-12)
    for s, s_ref in zip(new_state, state_ref):
        np.testing.assert_allclose(s.detach().numpy(), s_ref, atol=1e-12)


@pytest.mark.parametrize("kind,make,kw", CASES)
def test_keras_weights_round_trip(seed, kind, make, kw):
    cell = make()
    weights = [seed.normal(size=s).astype(np.float32) for s in cell.keras_shapes()]
    cell.set_keras_weights(weights)
    for got, want in zip(cell.keras_weights(), weights):
        np.testing.assert_array_equal(got, want)


def test_gru_gate_order_maps_keras_z_r_h_to_torch_r_z_n(seed):
    cell = GRUCell(2, 3)
    kernel = np.concatenate([np.full((2, 3), v, np.float32) for v in (1.0, 2.0, 3.0)], axis=1)  # z, r, h
    cell.set_keras_weights([kernel, np.zeros((3, 9), np.float32), np.zeros((2, 9), np.float32)])
    # PyTorch's blocks are r, z, n
    assert cell.weight_ih[:3].unique().tolist() == [2.0]
    assert cell.weight_ih[3:6].unique().tolist() == [1.0]
    assert cell.weight_ih[6:].unique().tolist() == [3.0]


def test_default_initialisers(seed):
    cell = LSTMCell(7, 32)
    limit = np.sqrt(6 / (7 + 128))
    assert cell.weight_ih.abs().max().item() <= limit
    # orthogonal recurrent kernel: Keras's (n, 4n) has orthonormal rows
    u = cell.weight_hh.t().detach()
    torch.testing.assert_close(u @ u.t(), torch.eye(32), atol=1e-5, rtol=0)
    # unit_forget_bias: forget gate 1, the rest 0
    expected = torch.cat([torch.zeros(32), torch.ones(32), torch.zeros(64)])
    assert torch.equal(cell.bias.detach(), expected)


@pytest.mark.parametrize("kind,make,kw", CASES)
def test_step_gradcheck_with_recurrent_mask(seed, kind, make, kw):
    cell = make().double()
    x = torch.randn(2, 3, dtype=torch.float64, requires_grad=True)
    state = tuple(torch.randn(2, 4, dtype=torch.float64, requires_grad=True) for _ in range(cell.state_count))
    mask = torch.tensor([[2.0, 0.0, 2.0, 2.0], [0.0, 2.0, 2.0, 0.0]], dtype=torch.float64)

    def step(x, *state):
        h, new_state = cell.step(cell.input_projection(x), state, cell.weight_hh.t(), mask)
        return new_state

    assert torch.autograd.gradcheck(step, (x, *state))


def test_invalid_units():
    with pytest.raises(ValueError, match=r"units must be a positive integer, got 0"):
        GRUCell(3, 0)


def test_invalid_activation():
    with pytest.raises(ValueError, match=r"activation must be one of .*got 'nope'"):
        SimpleRNNCell(3, 4, activation="nope")
