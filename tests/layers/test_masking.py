"""Masks for variable-length sequences: padded steps change nothing (forwards, go_backwards,
Bidirectional, stateful, Embedding(mask_zero) in Sequential), Keras parity, fused == loop."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from rnnkit.layers import use_kernel
from rnnkit.layers.bidirectional import Bidirectional
from rnnkit.layers.core import Dense, Embedding
from rnnkit.layers.recurrent import GRU, LSTM, RNN, SimpleRNN
from rnnkit.models.sequential import Sequential
from keras_reference import IDS, KINDS, as_list, as_numpy, assert_close, keras_weights

keras = pytest.importorskip("keras")


LAYERS = {"SimpleRNN": SimpleRNN, "LSTM": LSTM, "GRU": GRU}

# (batch 4, time 6) masks in time order
MASKS = {
    "right_padded": [[1, 1, 1, 1, 1, 1], [1, 1, 1, 0, 0, 0], [1, 0, 0, 0, 0, 0], [1, 1, 1, 1, 1, 0]],
    "left_padded": [[0, 0, 1, 1, 1, 1], [1, 1, 1, 1, 1, 1], [0, 0, 0, 0, 0, 1], [0, 1, 1, 1, 1, 1]],
    "holes": [[1, 0, 1, 1, 0, 1], [1, 1, 1, 0, 0, 0], [0, 1, 0, 1, 0, 0], [1, 1, 1, 1, 1, 1]],
    "empty_row": [[1, 1, 1, 0, 0, 0], [0, 0, 0, 0, 0, 0], [1, 1, 1, 1, 1, 1], [1, 1, 0, 0, 0, 0]],
}
LENGTHS = [6, 3, 1, 5]  # the right-padded rows' lengths


def _mask(name):
    return torch.tensor(MASKS[name], dtype=torch.bool)


# --- Keras parity -------------------------------------------------------------------------------
@pytest.mark.parametrize("name,cls,kw", KINDS, ids=IDS)
@pytest.mark.parametrize("mask_name", list(MASKS))
@pytest.mark.parametrize(
    "options",
    [
        {},
        {"return_sequences": True, "return_state": True},
        {"go_backwards": True, "return_sequences": True, "return_state": True},
    ],
    ids=["last", "sequences", "backwards"],
)
def test_keras_parity_with_mask(seed, name, cls, kw, mask_name, options):
    x = seed.normal(size=(4, 6, 3)).astype(np.float32)
    mask = _mask(mask_name)
    k = getattr(keras.layers, name)(5, **kw, **options)
    expected = k(x, mask=mask)
    ours = cls(5, **kw, **options)
    ours.set_weights(keras_weights(k))
    assert_close(ours(torch.from_numpy(x), mask=mask), expected)


@pytest.mark.parametrize("merge_mode", ["concat", "sum", "mul", "ave", None])
@pytest.mark.parametrize("name", ["SimpleRNN", "LSTM", "GRU"])
@pytest.mark.parametrize("mask_name", ["right_padded", "holes"])
@pytest.mark.parametrize("options", [{}, {"return_sequences": True, "return_state": True}], ids=["last", "sequences"])
def test_keras_parity_bidirectional_with_mask(seed, merge_mode, name, mask_name, options):
    x = seed.normal(size=(4, 6, 2)).astype(np.float32)
    mask = _mask(mask_name)
    k = keras.layers.Bidirectional(getattr(keras.layers, name)(4, **options), merge_mode=merge_mode)
    expected = k(x, mask=mask)
    ours = Bidirectional(LAYERS[name](4, **options), merge_mode=merge_mode)
    ours.set_weights(keras_weights(k))
    assert_close(ours(torch.from_numpy(x), mask=mask), expected)


def test_keras_parity_sequential_embedding_mask_zero(seed):
    ids = np.array([[5, 2, 7, 1, 0, 0], [3, 3, 0, 0, 0, 0], [1, 2, 3, 4, 5, 6]], dtype=np.int64)
    k = keras.Sequential(
        [
            keras.layers.Embedding(8, 3, mask_zero=True),
            keras.layers.Bidirectional(keras.layers.LSTM(4, return_sequences=True)),
            keras.layers.GRU(5, return_sequences=True),
            keras.layers.Dense(2),
        ]
    )
    expected = k(ids)
    ours = Sequential(
        Embedding(8, 3, mask_zero=True),
        Bidirectional(LSTM(4, return_sequences=True)),
        GRU(5, return_sequences=True),
        Dense(2),
        input_shape=(6,),
    )
    ours.set_weights([as_numpy(v.value) for v in k.weights])
    got = ours(torch.from_numpy(ids))
    assert_close(got, expected)
    # the GRU repeats its last real output over the padding, so Dense does too
    np.testing.assert_array_equal(as_numpy(got[1, 2:]), np.broadcast_to(as_numpy(got[1, 1]), (4, 2)))


# --- padded == unpadded -------------------------------------------------------------------------
def _padded_batch(seed, features=3):
    """Right-padded x (4, 6, features) with LENGTHS, pad values random (they must not matter)."""
    x = torch.from_numpy(seed.normal(size=(4, 6, features)).astype(np.float32))
    return x, _mask("right_padded")


@pytest.mark.parametrize("name,cls,kw", KINDS, ids=IDS)
@pytest.mark.parametrize("go_backwards", [False, True], ids=["forwards", "backwards"])
def test_padded_equals_unpadded(seed, name, cls, kw, go_backwards):
    x, mask = _padded_batch(seed)
    layer = cls(5, return_sequences=True, return_state=True, go_backwards=go_backwards, **kw)
    padded = layer(x, mask=mask)
    for b, length in enumerate(LENGTHS):
        alone = layer(x[b : b + 1, :length])
        # go_backwards returns steps in processing order: the padding comes first
        real = slice(6 - length, 6) if go_backwards else slice(0, length)
        assert_close(padded[0][b : b + 1, real], alone[0], atol=1e-6)
        assert_close([s[b : b + 1] for s in padded[1:]], list(alone[1:]), atol=1e-6)
        last = cls(5, go_backwards=go_backwards, **kw)
        last.set_weights(layer.get_weights())
        assert_close(last(x, mask=mask)[b : b + 1], alone[1], atol=1e-6)


@pytest.mark.parametrize("merge_mode", ["concat", "sum", "mul", "ave", None])
@pytest.mark.parametrize("name", ["SimpleRNN", "LSTM", "GRU"])
def test_bidirectional_padded_equals_unpadded(seed, merge_mode, name):
    x, mask = _padded_batch(seed)
    layer = Bidirectional(LAYERS[name](4, return_sequences=True), merge_mode=merge_mode)
    padded = as_list(layer(x, mask=mask))
    for b, length in enumerate(LENGTHS):
        # the backward direction must start at the row's last real step, not at the padding
        alone = as_list(layer(x[b : b + 1, :length]))
        for p, a in zip(padded, alone):
            assert_close(p[b : b + 1, :length], a, atol=1e-6)
            assert torch.count_nonzero(p[b, length:]) == 0  # Keras: zeros at padded steps


def test_bidirectional_last_output_padded_equals_unpadded(seed):
    x, mask = _padded_batch(seed)
    layer = Bidirectional(GRU(4, return_state=True))
    padded = layer(x, mask=mask)
    for b, length in enumerate(LENGTHS):
        alone = layer(x[b : b + 1, :length])
        assert_close([t[b : b + 1] for t in padded], list(alone), atol=1e-6)


@pytest.mark.parametrize("name,cls,kw", KINDS, ids=IDS)
def test_stateful_state_is_the_last_real_steps(seed, name, cls, kw):
    # two batches of right-padded rows; each row continues from its own last real step
    xs = [_padded_batch(seed) for _ in range(2)]
    masks = [xs[0][1], xs[1][1].flip(0)]  # other lengths in the second batch
    layer = cls(5, stateful=True, return_sequences=True, **kw)
    outputs = [layer(x, mask=m) for (x, _), m in zip(xs, masks)]
    held = layer._states
    for b in range(4):
        row = cls(5, stateful=True, return_sequences=True, **kw)
        row.set_weights(layer.get_weights())
        for (x, _), m, out in zip(xs, masks, outputs):
            length = int(m[b].sum())
            assert_close(out[b : b + 1, :length], row(x[b : b + 1, :length]), atol=1e-6)
        assert_close([s[b : b + 1] for s in held], list(row._states), atol=1e-6)


# --- the fused path on packed runs == the step loop -------------------------------------------------
@pytest.mark.parametrize("name,cls,kw", KINDS[:4], ids=IDS[:4])
@pytest.mark.parametrize("mask_name", ["right_padded", "left_padded"])
@pytest.mark.parametrize("go_backwards", [False, True], ids=["forwards", "backwards"])
@pytest.mark.parametrize("return_state", [False, True], ids=["h_only", "states"])
@pytest.mark.parametrize("pack", [None, True], ids=["auto", "packed"])
def test_fused_runs_equal_loop_values_and_gradients(
    seed, monkeypatch, name, cls, kw, mask_name, go_backwards, return_state, pack
):
    x = torch.from_numpy(seed.normal(size=(4, 6, 3)).astype(np.float32))
    mask = _mask(mask_name)
    options = {"return_sequences": True, "return_state": return_state, "go_backwards": go_backwards}
    fused = cls(5, input_size=3, **options, **kw)
    loop = cls(5, **options, **kw)
    loop.set_weights(fused.get_weights())
    loop._force_loop = True
    fused._pack_runs = pack
    assert fused.use_fused and not loop.use_fused
    calls = []
    original = RNN._fused_runs
    monkeypatch.setattr(RNN, "_fused_runs", lambda self, *a: calls.append(1) or original(self, *a))
    h0 = torch.from_numpy(seed.normal(size=(4, 5)).astype(np.float32))
    initial = (h0, h0 * 0.5) if name == "LSTM" else h0
    with use_kernel("torch"):  # PyTorch's fused path on runs (the compiled kernel takes masks itself)
        a, b = fused(x, initial, mask=mask), loop(x, initial, mask=mask)
    # on a CPU an LSTM whose c is asked for takes the step loop unless packing is forced
    assert len(calls) == (0 if name == "LSTM" and return_state and pack is None else 1)
    assert_close(a, b, atol=1e-6)
    sum(t.square().sum() for t in as_list(a)).backward()
    sum(t.square().sum() for t in as_list(b)).backward()
    for p, q in zip(fused.parameters(), loop.parameters()):
        np.testing.assert_allclose(as_numpy(p.grad), as_numpy(q.grad), atol=1e-5)


def test_fused_runs_ignore_non_finite_padding(seed):
    x = torch.from_numpy(seed.normal(size=(4, 6, 3)).astype(np.float32))
    mask = _mask("right_padded")
    x_nan = x.masked_fill(~mask.unsqueeze(-1), float("nan"))
    layer = GRU(5, return_sequences=True, input_size=3)
    y = layer(x_nan, mask=mask)
    y.sum().backward()
    assert torch.isfinite(y).all() and all(torch.isfinite(p.grad).all() for p in layer.parameters())
    assert_close(y, layer(x, mask=mask), atol=0)


def test_fused_runs_with_batch_recurrent_dropout_equal_loop(seed):
    x = torch.from_numpy(seed.normal(size=(4, 6, 3)).astype(np.float32))
    mask = _mask("right_padded")
    fused = GRU(5, return_sequences=True, dropout=0.2, recurrent_dropout=0.3, recurrent_dropout_mode="batch")
    loop = GRU(5, return_sequences=True, dropout=0.2, recurrent_dropout=0.3, recurrent_dropout_mode="batch")
    fused(x)
    loop.set_weights(fused.get_weights())
    loop._force_loop = True
    torch.manual_seed(3)
    a = fused(x, mask=mask)
    torch.manual_seed(3)
    b = loop(x, mask=mask)
    assert_close(a, b, atol=1e-6)


def test_all_true_mask_is_no_mask(seed):
    x = torch.from_numpy(seed.normal(size=(2, 5, 3)).astype(np.float32))
    layer = LSTM(4, return_sequences=True)
    assert torch.equal(layer(x, mask=torch.ones(2, 5, dtype=torch.bool)), layer(x))


def test_masked_golden_values():
    # SimpleRNN(1) with kernel 1, recurrent kernel 0.5, no bias: h_t = tanh(x_t + 0.5 h_{t-1})
    layer = SimpleRNN(1, use_bias=False, return_sequences=True, input_size=1)
    layer.set_weights([np.array([[1.0]], np.float32), np.array([[0.5]], np.float32)])
    x = torch.tensor([[[1.0], [9.0], [2.0]]])
    mask = torch.tensor([[True, False, True]])
    h1 = np.tanh(1.0)
    h3 = np.tanh(2.0 + 0.5 * h1)  # step 2 skipped: its 9.0 never enters
    assert_close(layer(x, mask=mask), np.array([[[h1], [h1], [h3]]]), atol=1e-6)


# --- Sequential carries the mask --------------------------------------------------------------------
def test_sequential_embedding_mask_zero_padded_equals_unpadded(seed):
    torch.manual_seed(0)
    model = Sequential(
        Embedding(10, 3, mask_zero=True),
        Bidirectional(GRU(4, return_sequences=True)),
        LSTM(3),
        Dense(2),
    )
    ids = torch.tensor([[4, 5, 6, 0, 0], [7, 8, 9, 1, 2]])
    padded = model(ids)
    assert_close(padded[0:1], model(ids[0:1, :3]), atol=1e-6)
    assert_close(padded[1:2], model(ids[1:2]), atol=1e-6)
    assert not torch.allclose(padded[0:1], Sequential(*model.layers[1:])(model.layers[0](ids[0:1])))


def test_embedding_compute_mask():
    ids = torch.tensor([[3, 0, 2]])
    assert torch.equal(Embedding(4, 2, mask_zero=True).compute_mask(ids), torch.tensor([[True, False, True]]))
    assert Embedding(4, 2).compute_mask(ids) is None


def test_recurrent_compute_mask_ends_without_return_sequences():
    mask = torch.tensor([[True, False]])
    assert GRU(2, return_sequences=True).compute_mask(None, mask) is mask
    assert GRU(2).compute_mask(None, mask) is None
    assert Bidirectional(GRU(2)).compute_mask(None, mask) is None


# --- invalid arguments -----------------------------------------------------------------------------
def test_mask_must_be_bool():
    with pytest.raises(
        ValueError, match=r"mask must be a bool tensor \(batch, time\), True for real steps, got tensor"
    ):
        GRU(2)(torch.zeros(1, 3, 2), mask=torch.ones(1, 3))


def test_mask_must_match_batch_and_time():
    with pytest.raises(ValueError, match=r"mask must have the input's \(batch, time\) shape \(1, 3\), got \(1, 4\)"):
        GRU(2)(torch.zeros(1, 3, 2), mask=torch.ones(1, 4, dtype=torch.bool))


def test_mask_zero_must_be_bool():
    with pytest.raises(ValueError, match="mask_zero must be True or False, got 1"):
        Embedding(4, 2, mask_zero=1)
