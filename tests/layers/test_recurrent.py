"""SimpleRNN, LSTM, GRU: Keras parity, fused == loop, gradients, dropout, stateful, counts, errors."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import torch

from rnnkit.layers import regularizers
from rnnkit.layers.recurrent import GRU, LSTM, SimpleRNN
from keras_reference import IDS, KINDS, assert_close, keras_weights

keras = pytest.importorskip("keras")


# --- parameter counts -------------------------------------------------------------------------
@pytest.mark.parametrize(
    "layer,count,formula",
    [
        (SimpleRNN(16, input_size=14), 496, "16·14 + 16·16 + 16"),
        (LSTM(32, input_size=7), 5120, "4·(32·7 + 32·32 + 32)"),
        (GRU(32, input_size=7), 3936, "3·(32·7 + 32·32 + 2·32)"),
        (GRU(32, reset_after=False, input_size=7), 3840, "3·(32·7 + 32·32 + 32)"),
        (SimpleRNN(4, use_bias=False, input_size=3), 28, "4·3 + 4·4"),
    ],
)
def test_count_params_and_formula(layer, count, formula):
    assert layer.count_params() == count
    assert sum(p.numel() for p in layer.parameters()) == count
    assert layer.param_formula() == formula


@pytest.mark.parametrize("name,cls,kw", KINDS, ids=IDS)
def test_count_params_equals_keras(name, cls, kw):
    k = getattr(keras.layers, name)(5, **kw)
    k.build((None, 4, 3))
    assert cls(5, input_size=3, **kw).count_params() == k.count_params()


# --- Keras parity -----------------------------------------------------------------------------
@pytest.mark.parametrize("name,cls,kw", KINDS, ids=IDS)
@pytest.mark.parametrize(
    "options",
    [
        {},
        {"return_sequences": True},
        {"return_state": True},
        {"go_backwards": True, "return_sequences": True, "return_state": True},
    ],
    ids=["last", "sequences", "state", "backwards"],
)
def test_keras_parity(seed, name, cls, kw, options):
    x = seed.normal(size=(3, 6, 4)).astype(np.float32)
    k = getattr(keras.layers, name)(5, **kw, **options)
    expected = k(x)
    ours = cls(5, **kw, **options)
    ours.set_weights(keras_weights(k))
    assert_close(ours(torch.from_numpy(x)), expected)
    for got, want in zip(ours.get_weights(), keras_weights(k)):
        np.testing.assert_array_equal(got, want)


@pytest.mark.parametrize("name,cls,kw", KINDS, ids=IDS)
def test_keras_parity_stateful_three_batches(seed, name, cls, kw):
    k = getattr(keras.layers, name)(5, stateful=True, return_sequences=True, return_state=True, **kw)
    ours = cls(5, stateful=True, return_sequences=True, return_state=True, **kw)
    batches = [seed.normal(size=(2, 4, 3)).astype(np.float32) for _ in range(3)]
    k(batches[0][:, :1])  # build
    k.reset_state()
    ours.set_weights(keras_weights(k))
    for x in batches:
        assert_close(ours(torch.from_numpy(x)), k(x))


def test_keras_parity_stacked(seed):
    x = seed.normal(size=(2, 5, 3)).astype(np.float32)
    k1, k2 = keras.layers.LSTM(4, return_sequences=True), keras.layers.GRU(3)
    expected = k2(k1(x))
    r1, r2 = LSTM(4, return_sequences=True), GRU(3)
    r1.set_weights(keras_weights(k1))
    r2.set_weights(keras_weights(k2))
    assert r2.input_size == 4  # each layer's input width is the previous layer's output width
    assert_close(r2(r1(torch.from_numpy(x))), expected)


def test_explicit_initial_state_matches_keras(seed):
    x = seed.normal(size=(2, 4, 3)).astype(np.float32)
    h0, c0 = (seed.normal(size=(2, 5)).astype(np.float32) for _ in range(2))
    k = keras.layers.LSTM(5, return_state=True)
    expected = k(x, initial_state=[h0, c0])
    ours = LSTM(5, return_state=True)
    ours.set_weights(keras_weights(k))
    assert_close(ours(torch.from_numpy(x), initial_state=(torch.from_numpy(h0), torch.from_numpy(c0))), expected)


# --- fused path == step loop, gradients ----------------------------------------------------------
@pytest.mark.parametrize("name,cls,kw", KINDS, ids=IDS)
def test_fused_equals_loop(seed, name, cls, kw):
    layer = cls(8, return_sequences=True, return_state=True, input_size=5, **kw)
    x = torch.randn(4, 7, 5)
    fused = layer(x)
    assert layer.use_fused == (kw.get("reset_after", True))
    layer._force_loop = True
    assert not layer.use_fused
    assert_close(fused, layer(x), atol=1e-5)


@pytest.mark.parametrize("name,cls,kw", KINDS, ids=IDS)
def test_fused_gradients_equal_loop_gradients(seed, name, cls, kw):
    layer = cls(6, input_size=3, **kw)
    x = torch.randn(2, 5, 3)

    def grads():
        layer.zero_grad()
        layer(x).square().sum().backward()
        return [p.grad.clone() for p in layer.parameters()]

    fused = grads()
    layer._force_loop = True
    for a, b in zip(fused, grads()):
        torch.testing.assert_close(a, b, atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("name,cls,kw", KINDS, ids=IDS)
def test_step_loop_gradcheck(seed, name, cls, kw):
    layer = cls(3, return_sequences=True, input_size=2, **kw).double()
    layer._force_loop = True
    params = dict(layer.named_parameters())
    x = torch.randn(2, 4, 2, dtype=torch.float64, requires_grad=True)

    def run(x, *values):
        return torch.func.functional_call(layer, dict(zip(params, values)), (x,))

    assert torch.autograd.gradcheck(run, (x, *[p.detach().requires_grad_() for p in params.values()]))


def test_fused_gradcheck_with_batch_recurrent_dropout(seed):
    layer = GRU(3, recurrent_dropout=0.5, recurrent_dropout_mode="batch", input_size=2).double()
    mask = torch.tensor([2.0, 0.0, 2.0], dtype=torch.float64)
    layer._draw_masks = lambda batch, like: (None, mask)
    x = torch.randn(2, 4, 2, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(layer, (x,))


# --- dropout ----------------------------------------------------------------------------------
def test_input_mask_is_the_same_at_every_step(seed):
    # identity kernel, zero recurrent kernel, linear activation: h_t = x_t ⊙ mask
    layer = SimpleRNN(4, activation="linear", dropout=0.5, return_sequences=True, input_size=4)
    layer.set_weights([np.eye(4, dtype=np.float32), np.zeros((4, 4), np.float32), np.zeros(4, np.float32)])
    layer.train()
    y = layer(torch.ones(64, 10, 4))
    mask = layer.last_dropout_mask
    assert mask.shape == (64, 4)
    assert set(mask.unique().tolist()) == {0.0, 2.0}
    torch.testing.assert_close(y, mask.unsqueeze(1).expand(64, 10, 4))


def test_recurrent_mask_is_the_same_at_every_step(seed):
    # identity recurrent kernel, zero kernel, linear activation: h_t = h_{t-1} ⊙ m, so h_t = h_0 ⊙ m^t
    layer = SimpleRNN(4, activation="linear", recurrent_dropout=0.5, return_sequences=True, input_size=2)
    layer.set_weights([np.zeros((2, 4), np.float32), np.eye(4, dtype=np.float32), np.zeros(4, np.float32)])
    layer.train()
    y = layer(torch.zeros(64, 5, 2), initial_state=torch.ones(64, 4))
    m = layer.last_recurrent_dropout_mask
    assert m.shape == (64, 4)
    expected = torch.stack([m ** (t + 1) for t in range(5)], 1)
    torch.testing.assert_close(y, expected)


def _keras_gru_with_masks(weights, x, h, in_mask, rec_mask):
    """GRU (reset_after) loop written out from Keras's cell: masks on x and on h where it enters U only."""
    kernel, rec, bias = (torch.as_tensor(w, dtype=torch.float64) for w in weights)
    outs = []
    for t in range(x.shape[1]):
        xz, xr, xh = ((x[:, t] * in_mask) @ kernel + bias[0]).chunk(3, 1)
        hz, hr, hh = ((h * rec_mask) @ rec + bias[1]).chunk(3, 1)
        z, r = torch.sigmoid(xz + hz), torch.sigmoid(xr + hr)
        h = z * h + (1 - z) * torch.tanh(xh + r * hh)
        outs.append(h)
    return torch.stack(outs, 1)


@pytest.mark.parametrize("mode", ["sample", "batch"])
def test_dropout_matches_keras_formulas_given_masks(seed, mode):
    layer = GRU(4, dropout=0.3, recurrent_dropout=0.4, recurrent_dropout_mode=mode, return_sequences=True, input_size=3)
    layer.double().train()
    x = torch.randn(5, 6, 3, dtype=torch.float64)
    y = layer(x)
    in_mask, rec_mask = layer.last_dropout_mask, layer.last_recurrent_dropout_mask
    assert rec_mask.shape == ((5, 4) if mode == "sample" else (4,))
    expected = _keras_gru_with_masks(layer.get_weights(), x, torch.zeros(5, 4, dtype=torch.float64), in_mask, rec_mask)
    torch.testing.assert_close(y, expected, atol=1e-10, rtol=0)


@pytest.mark.parametrize("cls", [SimpleRNN, LSTM, GRU])
def test_batch_mode_equals_sample_mode_with_one_mask_for_the_batch(seed, cls):
    torch.manual_seed(1)
    batch_layer = cls(5, dropout=0.2, recurrent_dropout=0.3, recurrent_dropout_mode="batch", input_size=3)
    sample_layer = cls(5, dropout=0.2, recurrent_dropout=0.3, input_size=3)
    sample_layer.load_state_dict(batch_layer.state_dict())
    x = torch.randn(6, 7, 3)
    y_batch = batch_layer.train()(x)
    assert batch_layer.use_fused
    in_mask, rec_mask = batch_layer.last_dropout_mask, batch_layer.last_recurrent_dropout_mask
    sample_layer._draw_masks = lambda batch, like: (in_mask, rec_mask.expand(batch, -1))
    torch.testing.assert_close(sample_layer.train()(x), y_batch, atol=1e-5, rtol=0)


@pytest.mark.parametrize("cls", [SimpleRNN, LSTM, GRU])
def test_eval_mode_is_deterministic_and_equals_no_dropout(seed, cls):
    layer = cls(5, dropout=0.5, recurrent_dropout=0.5, input_size=3).eval()
    plain = cls(5, input_size=3)
    plain.load_state_dict(layer.state_dict())
    x = torch.randn(4, 6, 3)
    y1, y2 = layer(x), layer(x)
    assert torch.equal(y1, y2)
    assert layer.last_dropout_mask is None and layer.last_recurrent_dropout_mask is None
    torch.testing.assert_close(y1, plain(x))


def test_training_mode_draws_new_masks_per_call(seed):
    layer = GRU(8, dropout=0.5, input_size=4).train()
    x = torch.randn(16, 3, 4)
    assert not torch.equal(layer(x), layer(x))


# --- stateful ---------------------------------------------------------------------------------
@pytest.mark.parametrize("cls", [SimpleRNN, LSTM, GRU])
def test_stateful_two_halves_equal_one_call(seed, cls):
    whole = cls(5, return_sequences=True, input_size=3)
    halves = cls(5, return_sequences=True, stateful=True, input_size=3)
    halves.load_state_dict(whole.state_dict())
    x = torch.randn(4, 10, 3)
    y = torch.cat([halves(x[:, :6]), halves(x[:, 6:])], 1)
    torch.testing.assert_close(y, whole(x))


def test_stateful_state_is_detached_and_reset_returns_to_zeros(seed):
    layer = GRU(5, stateful=True, input_size=3)
    fresh = GRU(5, input_size=3)
    fresh.load_state_dict(layer.state_dict())
    x = torch.randn(4, 6, 3)
    first = layer(x)
    second = layer(x)
    assert not torch.allclose(first, second)
    assert not layer._states[0].requires_grad
    layer.reset_states()
    torch.testing.assert_close(layer(x), fresh(x))


def test_stateful_other_batch_size_raises(seed):
    layer = LSTM(5, stateful=True, input_size=3)
    layer(torch.randn(4, 6, 3))
    with pytest.raises(ValueError, match=r"stateful layer holds states for batch size 4, got a batch of 3"):
        layer(torch.randn(3, 6, 3))


# --- regularisation, config, output shapes --------------------------------------------------------
@pytest.mark.parametrize(
    "reg,penalty",
    [
        (regularizers.l1(0.01), lambda w: 0.01 * np.abs(w).sum()),
        (regularizers.l2(0.001), lambda w: 0.001 * np.square(w).sum()),
        (regularizers.l1_l2(0.01, 0.02), lambda w: 0.01 * np.abs(w).sum() + 0.02 * np.square(w).sum()),
    ],
    ids=["l1", "l2", "l1_l2"],
)
@pytest.mark.parametrize("cls", [SimpleRNN, LSTM, GRU])
def test_regularization_loss_equals_hand_computed_sum(seed, cls, reg, penalty):
    layer = cls(4, kernel_regularizer=reg, recurrent_regularizer=reg, bias_regularizer=reg, input_size=3)
    weights = [seed.normal(size=w.shape).astype(np.float32) for w in layer.get_weights()]
    layer.set_weights(weights)
    expected = sum(penalty(w.astype(np.float64)) for w in weights)
    assert layer.regularization_loss().item() == pytest.approx(expected, rel=1e-5)
    only_kernel = cls(4, kernel_regularizer=reg, input_size=3)
    only_kernel.set_weights(weights)
    assert only_kernel.regularization_loss().item() == pytest.approx(penalty(weights[0].astype(np.float64)), rel=1e-5)


def test_no_regularizer_gives_zero():
    assert GRU(4, input_size=3).regularization_loss().item() == 0.0


@pytest.mark.parametrize("cls", [SimpleRNN, LSTM, GRU])
def test_config_round_trip(seed, cls):
    layer = cls(4, dropout=0.1, go_backwards=True, kernel_regularizer=regularizers.l2(1e-3), input_size=3)
    config = layer.get_config()
    import json

    rebuilt = cls(**json.loads(json.dumps(config)))
    assert rebuilt.get_config() == config
    assert rebuilt.kernel_regularizer == regularizers.l2(1e-3)


def test_compute_output_shape():
    assert GRU(4, input_size=3).compute_output_shape((10, 3)) == (4,)
    assert GRU(4, return_sequences=True).compute_output_shape((10, 3)) == (10, 4)
    assert LSTM(4, return_state=True).compute_output_shape((10, 3)) == [(4,), (4,), (4,)]


def test_lazy_build_infers_input_size(seed):
    layer = GRU(4)
    assert not layer.built and layer.get_weights() == []
    layer(torch.randn(2, 3, 6))
    assert layer.input_size == 6 and layer.count_params() == 3 * (4 * 6 + 16 + 8)


# --- invalid arguments ------------------------------------------------------------------------
@pytest.mark.parametrize("units", [0, -3, 2.5, True])
def test_invalid_units(units):
    with pytest.raises(ValueError, match=rf"units must be a positive integer, got {units!r}"):
        GRU(units)


@pytest.mark.parametrize("argument", ["dropout", "recurrent_dropout"])
@pytest.mark.parametrize("value", [1.0, 1.5, -0.1])
def test_invalid_dropout(argument, value):
    with pytest.raises(ValueError, match=rf"^{argument} must be in \[0, 1\), got {value}"):
        LSTM(4, **{argument: value})


def test_invalid_activation():
    with pytest.raises(ValueError, match=r"activation must be one of .*, got 'tanhh'"):
        SimpleRNN(4, activation="tanhh")


def test_invalid_recurrent_activation():
    with pytest.raises(ValueError, match=r"recurrent_activation must be one of .*, got 'sigmoidd'"):
        GRU(4, recurrent_activation="sigmoidd")


def test_invalid_recurrent_dropout_mode():
    with pytest.raises(ValueError, match=r"recurrent_dropout_mode must be one of \['sample', 'batch'\], got 'column'"):
        GRU(4, recurrent_dropout=0.1, recurrent_dropout_mode="column")


def test_input_not_3d():
    with pytest.raises(ValueError, match=r"input must be 3-D \(batch, time, features\), got shape \(2, 3\)"):
        GRU(4)(torch.randn(2, 3))


def test_features_differ_from_built_layer():
    layer = GRU(4, input_size=3)
    with pytest.raises(ValueError, match=r"input features must equal input_size=3, got 5"):
        layer(torch.randn(2, 6, 5))


def test_wrong_weight_shapes():
    with pytest.raises(ValueError, match=r"weights\[1\] must have shape \(4, 12\), got \(4, 4\)"):
        GRU(4, reset_after=False, input_size=3).set_weights([np.zeros((3, 12)), np.zeros((4, 4)), np.zeros(12)])


def test_batch_mode_without_recurrent_dropout_warns():
    with pytest.warns(UserWarning, match="recurrent_dropout_mode='batch' does nothing when recurrent_dropout=0"):
        GRU(4, recurrent_dropout_mode="batch")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        GRU(4, recurrent_dropout=0.1, recurrent_dropout_mode="batch")


@pytest.mark.parametrize("return_sequences", [True, False])
def test_gru_sample_mode_fast_loop_equals_reference_loop(seed, return_sequences):
    layer = GRU(6, recurrent_dropout=0.3, return_sequences=return_sequences, input_size=3).train()
    mask = (torch.rand(5, 6) > 0.3).float() / 0.7
    layer._draw_masks = lambda batch, like: (None, mask)
    x = torch.randn(5, 7, 3)

    def run():
        layer.zero_grad()
        y = layer(x)
        y.square().sum().backward()
        return [y.detach()] + [p.grad.clone() for p in layer.parameters()]

    fast = run()
    layer._force_loop = True
    for a, b in zip(fast, run()):
        torch.testing.assert_close(a, b, atol=1e-5, rtol=1e-5)
