"""Bidirectional: Keras parity for every merge mode and return_state, counts, weights, errors."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from rnnkit.layers import regularizers
from rnnkit.layers.bidirectional import Bidirectional
from rnnkit.layers.recurrent import GRU, LSTM, SimpleRNN
from keras_reference import as_numpy, assert_close

keras = pytest.importorskip("keras")

LAYERS = {"SimpleRNN": SimpleRNN, "LSTM": LSTM, "GRU": GRU}


def _keras_bidirectional(name, merge_mode, **options):
    return keras.layers.Bidirectional(getattr(keras.layers, name)(4, **options), merge_mode=merge_mode)


@pytest.mark.parametrize("merge_mode", ["concat", "sum", "mul", "ave", None])
@pytest.mark.parametrize("name", ["SimpleRNN", "LSTM", "GRU"])
@pytest.mark.parametrize(
    "options",
    [{}, {"return_sequences": True}, {"return_sequences": True, "return_state": True}],
    ids=["last", "seq", "state"],
)
def test_keras_parity(seed, merge_mode, name, options):
    x = seed.normal(size=(3, 5, 2)).astype(np.float32)
    k = _keras_bidirectional(name, merge_mode, **options)
    expected = k(x)
    ours = Bidirectional(LAYERS[name](4, **options), merge_mode=merge_mode)
    ours.set_weights([as_numpy(v.value) for v in k.weights])
    assert_close(ours(torch.from_numpy(x)), expected)


def test_keras_parity_go_backwards_forward_layer(seed):
    # the wrapped layer runs backwards, the copy forwards: Keras still flips the copy's output
    x = seed.normal(size=(2, 5, 3)).astype(np.float32)
    # Keras's own copy keeps go_backwards=True and then refuses; give it the flipped copy explicitly
    k = keras.layers.Bidirectional(
        keras.layers.GRU(4, return_sequences=True, go_backwards=True),
        backward_layer=keras.layers.GRU(4, return_sequences=True),
    )
    expected = k(x)
    ours = Bidirectional(GRU(4, return_sequences=True, go_backwards=True))
    assert not ours.backward_layer.go_backwards
    ours.set_weights([as_numpy(v.value) for v in k.weights])
    assert_close(ours(torch.from_numpy(x)), expected)


def test_keras_parity_initial_state(seed):
    x = seed.normal(size=(2, 5, 3)).astype(np.float32)
    states = [seed.normal(size=(2, 4)).astype(np.float32) for _ in range(4)]
    k = _keras_bidirectional("LSTM", "sum", return_state=True)
    expected = k(x, initial_state=states)
    ours = Bidirectional(LSTM(4, return_state=True), merge_mode="sum")
    ours.set_weights([as_numpy(v.value) for v in k.weights])
    assert_close(ours(torch.from_numpy(x), initial_state=[torch.from_numpy(s) for s in states]), expected)


def test_backward_layer_is_an_independent_copy(seed):
    layer = Bidirectional(GRU(4, dropout=0.1, input_size=3))
    forward, backward = layer.forward_layer, layer.backward_layer
    assert backward.go_backwards and not forward.go_backwards
    assert backward.dropout == 0.1 and backward.units == 4
    assert not torch.equal(forward.cell.weight_ih, backward.cell.weight_ih)


def test_count_params_and_formula():
    layer = Bidirectional(LSTM(32, input_size=7))
    assert layer.count_params() == 10240
    assert layer.param_formula() == "2 × (4·(32·7 + 32·32 + 32))"


def test_weights_are_forward_then_backward(seed):
    layer = Bidirectional(GRU(3, input_size=2))
    weights = layer.get_weights()
    assert len(weights) == 6
    for got, want in zip(weights, layer.forward_layer.get_weights() + layer.backward_layer.get_weights()):
        np.testing.assert_array_equal(got, want)
    new = [seed.normal(size=w.shape).astype(np.float32) for w in weights]
    layer.set_weights(new)
    for got, want in zip(layer.get_weights(), new):
        np.testing.assert_array_equal(got, want)


def test_stateful_and_reset_states(seed):
    layer = Bidirectional(GRU(3, stateful=True, input_size=2), merge_mode="sum")
    x = torch.randn(4, 5, 2)
    first = layer(x)
    assert not torch.allclose(layer(x), first)
    layer.reset_states()
    torch.testing.assert_close(layer(x), first)


def test_regularization_loss_is_both_directions(seed):
    reg = regularizers.l2(0.01)
    layer = Bidirectional(SimpleRNN(3, kernel_regularizer=reg, input_size=2))
    expected = sum(0.01 * float(np.square(w).sum()) for w in (layer.get_weights()[0], layer.get_weights()[3]))
    assert layer.regularization_loss().item() == pytest.approx(expected, rel=1e-5)


def test_config_round_trip():
    layer = Bidirectional(LSTM(4, return_sequences=True, input_size=3), merge_mode="ave")
    config = json.loads(json.dumps(layer.get_config()))
    assert config["layer"]["class_name"] == "LSTM"
    rebuilt = Bidirectional(**config)
    assert rebuilt.get_config() == layer.get_config()
    assert rebuilt.count_params() == layer.count_params()


def test_compute_output_shape():
    assert Bidirectional(GRU(4, return_sequences=True)).compute_output_shape((10, 3)) == (10, 8)
    assert Bidirectional(GRU(4), merge_mode="sum").compute_output_shape((10, 3)) == (4,)
    assert Bidirectional(GRU(4), merge_mode=None).compute_output_shape((10, 3)) == [(4,), (4,)]
    assert Bidirectional(LSTM(4, return_state=True)).compute_output_shape((10, 3)) == [(8,), (4,), (4,), (4,), (4,)]


def test_invalid_merge_mode():
    with pytest.raises(
        ValueError, match=r"merge_mode must be one of \['concat', 'sum', 'mul', 'ave', None\], got 'max'"
    ):
        Bidirectional(GRU(4), merge_mode="max")


def test_invalid_layer():
    with pytest.raises(ValueError, match=r"layer must be a SimpleRNN, LSTM or GRU layer .*got 'GRU'"):
        Bidirectional("GRU")


def test_input_not_3d():
    with pytest.raises(ValueError, match=r"input must be 3-D \(batch, time, features\), got shape \(2, 3\)"):
        Bidirectional(GRU(4))(torch.randn(2, 3))
