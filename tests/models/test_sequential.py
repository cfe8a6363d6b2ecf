"""Sequential: Keras-identical counts, the summary, Keras 3 parity of whole stacks,
regularisation, weights, config round trips, and argument checks."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

import rnnkit as rk
from rnnkit.layers import GRU, LSTM, Bidirectional, Dense, Dropout, Embedding, Flatten, SimpleRNN, regularizers
from rnnkit.models import Sequential
from keras_reference import keras_weights

keras = pytest.importorskip("keras")


def keras_call(model, x: np.ndarray) -> np.ndarray:
    return model(x).detach().cpu().numpy()


def run(model: Sequential, x: np.ndarray) -> np.ndarray:
    model.eval()
    with torch.no_grad():
        return model(torch.from_numpy(x)).numpy()


# --- parameter counts ----------------------------------------------------------------------------
def test_course_check_simple_rnn_16_on_14_features_is_513():
    model = rk.Sequential(SimpleRNN(16), Dense(1), input_shape=(120, 14))
    n, m = 16, 14
    assert [layer.count_params() for layer in model.layers] == [n * m + n * n + n, n * 1 + 1]
    assert model.count_params() == 513


def test_lstm_32_on_7_features_is_5153():
    model = rk.Sequential(LSTM(32), Dense(1), input_shape=(None, 7))
    n, m = 32, 7
    assert model.layers[0].count_params() == 4 * (n * m + n * n + n)
    assert model.count_params() == 5_153


def test_stack_feeds_each_layer_the_previous_output_width():
    model = rk.Sequential(GRU(32, return_sequences=True), GRU(32), Dense(1), input_shape=(120, 14))
    gru1, gru2, dense = model.layers
    assert (gru1.input_size, gru2.input_size, dense.input_size) == (14, 32, 32)
    n = 32
    assert gru1.count_params() == 3 * (n * 14 + n * n + 2 * n) == 4_608
    assert gru2.count_params() == 3 * (n * 32 + n * n + 2 * n) == 6_336
    assert dense.count_params() == 32 + 1
    assert model.count_params() == 4_608 + 6_336 + 33
    assert model.output_shapes == [(120, 32), (32,), (1,)]


def test_naive_dense_baseline_is_40345():
    model = rk.Sequential(Flatten(), Dense(12, activation="relu"), Dense(1), input_shape=(240, 14))
    assert model.count_params() == (240 * 14 * 12 + 12) + (12 + 1) == 40_345


@pytest.mark.parametrize(
    ("ours", "theirs", "input_shape"),
    [
        (lambda: [SimpleRNN(16), Dense(1)], lambda L: [L.SimpleRNN(16), L.Dense(1)], (120, 14)),
        (lambda: [LSTM(32), Dense(1)], lambda L: [L.LSTM(32), L.Dense(1)], (30, 7)),
        (
            lambda: [GRU(32, return_sequences=True), GRU(32, reset_after=False), Dense(1)],
            lambda L: [L.GRU(32, return_sequences=True), L.GRU(32, reset_after=False), L.Dense(1)],
            (120, 14),
        ),
        (lambda: [Bidirectional(LSTM(32)), Dense(1)], lambda L: [L.Bidirectional(L.LSTM(32)), L.Dense(1)], (30, 7)),
        (
            lambda: [Flatten(), Dense(12, activation="relu"), Dense(1)],
            lambda L: [L.Flatten(), L.Dense(12, activation="relu"), L.Dense(1)],
            (240, 14),
        ),
    ],
    ids=["simple_rnn", "lstm", "gru_stack", "bidirectional", "naive_dense"],
)
def test_counts_and_weight_shapes_equal_keras(ours, theirs, input_shape):
    model = rk.Sequential(*ours(), input_shape=input_shape)
    k = keras.Sequential([keras.Input(input_shape), *theirs(keras.layers)])
    assert model.count_params() == k.count_params()
    assert [w.shape for w in model.get_weights()] == [w.shape for w in keras_weights(k)]


def test_first_layer_input_size_builds_the_model():
    model = rk.Sequential(LSTM(32, input_size=7), Dense(1))
    assert model.built and model.input_shape == (None, 7)
    assert model.count_params() == 5_153


def test_lazy_build_at_first_call(seed):
    model = rk.Sequential(SimpleRNN(16), Dense(1))
    assert not model.built
    y = model(torch.from_numpy(seed.standard_normal((3, 10, 14)).astype("float32")))
    assert y.shape == (3, 1)
    assert model.count_params() == 513
    assert model.input_shape == (10, 14)


def test_add_builds_the_new_layer_from_the_last_output():
    model = rk.Sequential(GRU(8, return_sequences=True), input_shape=(None, 3))
    model.add(SimpleRNN(4))
    model.add(Dense(2))
    assert (model.layers[1].input_size, model.layers[2].input_size) == (8, 4)
    assert model.count_params() == 3 * (8 * 3 + 8 * 8 + 16) + (4 * 8 + 4 * 4 + 4) + (4 * 2 + 2)


# --- summary ---------------------------------------------------------------------------------------
def test_summary_rows_formulas_and_total():
    text = rk.Sequential(SimpleRNN(16), Dense(1), input_shape=(120, 14)).summary()
    lines = text.splitlines()
    rnn_row = next(line for line in lines if line.startswith("simple_rnn (SimpleRNN)"))
    dense_row = next(line for line in lines if line.startswith("dense (Dense)"))
    assert rnn_row.split()[2:] == ["(None,", "16)", "496", "16·14", "+", "16·16", "+", "16"]
    assert dense_row.split()[2:] == ["(None,", "1)", "17", "16·1", "+", "1"]
    assert "Total params: 513" in lines
    assert "Input shape: (None, 120, 14)" in lines


def test_summary_of_a_stack_shows_sequence_shapes_and_names():
    text = rk.Sequential(GRU(32, return_sequences=True), GRU(32), Dense(1), input_shape=(120, 14)).summary()
    assert "gru (GRU)" in text and "gru_1 (GRU)" in text
    assert "(None, 120, 32)" in text
    assert "3·(32·14 + 32·32 + 2·32)" in text and "3·(32·32 + 32·32 + 2·32)" in text
    assert "Total params: 10,977" in text


def test_summary_of_naive_dense_baseline():
    text = rk.Sequential(Flatten(), Dense(12, activation="relu"), Dense(1), input_shape=(240, 14)).summary()
    assert "(None, 3360)" in text and "3360·12 + 12" in text and "40,332" in text
    assert "Total params: 40,345" in text


# --- parity with Keras 3 -------------------------------------------------------------------------------
def _parity(ours: Sequential, theirs: list, x: np.ndarray) -> None:
    k = keras.Sequential([keras.Input(x.shape[1:], dtype=str(x.dtype)), *theirs])
    ours.set_weights(keras_weights(k))
    np.testing.assert_allclose(run(ours, x), keras_call(k, x), atol=1e-5, rtol=0)


def test_simple_rnn_dense_matches_keras(seed):
    x = seed.standard_normal((4, 6, 3)).astype("float32")
    L = keras.layers
    _parity(rk.Sequential(SimpleRNN(5), Dense(2), input_shape=(6, 3)), [L.SimpleRNN(5), L.Dense(2)], x)


def test_stacked_gru_matches_keras(seed):
    x = seed.standard_normal((4, 6, 3)).astype("float32")
    L = keras.layers
    _parity(
        rk.Sequential(GRU(5, return_sequences=True), GRU(4), Dense(1), input_shape=(6, 3)),
        [L.GRU(5, return_sequences=True), L.GRU(4), L.Dense(1)],
        x,
    )


def test_bidirectional_lstm_matches_keras(seed):
    x = seed.standard_normal((4, 6, 3)).astype("float32")
    L = keras.layers
    _parity(
        rk.Sequential(Bidirectional(LSTM(4)), Dense(1), input_shape=(6, 3)),
        [L.Bidirectional(L.LSTM(4)), L.Dense(1)],
        x,
    )


def test_per_step_dense_after_return_sequences_matches_keras(seed):
    x = seed.standard_normal((3, 5, 2)).astype("float32")
    L = keras.layers
    _parity(
        rk.Sequential(LSTM(4, return_sequences=True), Dense(3, activation="tanh"), input_shape=(5, 2)),
        [L.LSTM(4, return_sequences=True), L.Dense(3, activation="tanh")],
        x,
    )


def test_naive_dense_matches_keras(seed):
    x = seed.standard_normal((4, 6, 3)).astype("float32")
    L = keras.layers
    _parity(
        rk.Sequential(Flatten(), Dense(5, activation="relu"), Dense(1), input_shape=(6, 3)),
        [L.Flatten(), L.Dense(5, activation="relu"), L.Dense(1)],
        x,
    )


def test_embedding_stack_matches_keras(seed):
    x = seed.integers(0, 9, size=(3, 5)).astype("int32")
    L = keras.layers
    ours = rk.Sequential(Embedding(9, 4), SimpleRNN(3), Dense(1), input_shape=(5,))
    _parity(ours, [L.Embedding(9, 4), L.SimpleRNN(3), L.Dense(1)], x)


def test_dropout_in_a_stack_is_identity_in_eval(seed):
    x = seed.standard_normal((4, 6, 3)).astype("float32")
    L = keras.layers
    _parity(
        rk.Sequential(GRU(4), Dropout(0.5), Dense(1), input_shape=(6, 3)),
        [L.GRU(4), L.Dropout(0.5), L.Dense(1)],
        x,
    )


# --- regularisation ---------------------------------------------------------------------------------------
def _l1(a):
    return np.abs(a).sum()


def _l2(a):
    return np.square(a).sum()


def test_regularization_loss_is_the_hand_computed_sum():
    model = rk.Sequential(
        GRU(
            4,
            return_sequences=True,
            kernel_regularizer=regularizers.l2(1e-2),
            recurrent_regularizer=regularizers.l1(3e-3),
            bias_regularizer=regularizers.l1_l2(0.1, 0.2),
        ),
        LSTM(3, kernel_regularizer=regularizers.l1(0.05)),
        Dense(2, kernel_regularizer=regularizers.l1(0.5), bias_regularizer=regularizers.l2(0.25)),
        input_shape=(6, 3),
    )
    rng = np.random.default_rng(1)
    model.set_weights([rng.standard_normal(w.shape).astype("float32") for w in model.get_weights()])
    w = model.get_weights()  # GRU kernel, recurrent, bias (2, 12); LSTM kernel, recurrent, bias; Dense kernel, bias
    expected = (
        1e-2 * _l2(w[0])
        + 3e-3 * _l1(w[1])
        + 0.1 * _l1(w[2])
        + 0.2 * _l2(w[2])
        + 0.05 * _l1(w[3])
        + 0.5 * _l1(w[6])
        + 0.25 * _l2(w[7])
    )
    loss = model.regularization_loss()
    assert loss.dim() == 0
    assert loss.item() == pytest.approx(expected, rel=1e-5)


def test_regularization_loss_is_zero_without_regularisers():
    loss = rk.Sequential(SimpleRNN(4), Dense(1), input_shape=(5, 2)).regularization_loss()
    assert loss.dim() == 0 and loss.item() == 0.0


def test_regularization_loss_has_a_gradient():
    model = rk.Sequential(Dense(2, kernel_regularizer=regularizers.l2(0.5)), input_shape=(3,))
    model.regularization_loss().backward()
    torch.testing.assert_close(model.layers[0].kernel.grad, 2 * 0.5 * model.layers[0].kernel.detach())


class CountingL2(regularizers.Regularizer):
    """An l2 regulariser that records the size of every weight it penalises."""

    def __init__(self) -> None:
        super().__init__(l2=1.0)
        self.sizes: list[int] = []

    def __call__(self, weight):
        self.sizes.append(weight.numel())
        return super().__call__(weight)


def test_one_regularisation_term_per_regularised_weight():
    regs = [CountingL2() for _ in range(8)]
    model = rk.Sequential(
        SimpleRNN(
            4,
            kernel_regularizer=regs[0],
            recurrent_regularizer=regs[1],
            bias_regularizer=regs[2],
            return_sequences=True,
        ),
        LSTM(3, kernel_regularizer=regs[3], recurrent_regularizer=regs[4], bias_regularizer=regs[5]),
        Dense(2, kernel_regularizer=regs[6], bias_regularizer=regs[7]),
        input_shape=(6, 5),
    )
    model.regularization_loss()
    # each regulariser saw exactly its one weight: kernel, recurrent kernel, bias per layer
    assert [r.sizes for r in regs] == [[5 * 4], [4 * 4], [4], [4 * 4 * 3], [3 * 4 * 3], [4 * 3], [3 * 2], [2]]


# --- state ----------------------------------------------------------------------------------------------------
def test_reset_states_returns_a_stateful_stack_to_the_zero_state(seed):
    model = rk.Sequential(SimpleRNN(4, stateful=True), Dense(1), input_shape=(5, 2)).eval()
    x = torch.from_numpy(seed.standard_normal((3, 5, 2)).astype("float32"))
    with torch.no_grad():
        first = model(x)
        second = model(x)
        model.reset_states()
        again = model(x)
    assert not torch.allclose(first, second)
    torch.testing.assert_close(again, first, rtol=0, atol=0)


# --- weights and config -------------------------------------------------------------------------------------------
def test_get_weights_is_every_layer_in_order():
    model = rk.Sequential(SimpleRNN(4), Dense(1), input_shape=(5, 2))
    weights = model.get_weights()
    assert [w.shape for w in weights] == [(2, 4), (4, 4), (4,), (4, 1), (1,)]
    np.testing.assert_array_equal(weights[3], model.layers[1].get_weights()[0])


def _model_for_round_trip() -> Sequential:
    return rk.Sequential(
        Bidirectional(GRU(4, return_sequences=True, reset_after=False), merge_mode="sum"),
        LSTM(3, dropout=0.1, recurrent_regularizer=regularizers.l2(1e-3)),
        Dropout(0.2),
        Dense(2, activation="tanh", bias_regularizer=regularizers.l1(0.01)),
        input_shape=(None, 3),
    )


def test_config_round_trip_through_json_gives_identical_outputs(seed):
    model = _model_for_round_trip()
    config = json.loads(json.dumps(model.get_config()))
    assert config["input_shape"] == [None, 3]
    assert [d["class_name"] for d in config["layers"]] == ["Bidirectional", "LSTM", "Dropout", "Dense"]
    copy = Sequential.from_config(config)
    assert copy.get_config() == model.get_config()
    copy.set_weights(model.get_weights())
    x = seed.standard_normal((2, 7, 3)).astype("float32")
    np.testing.assert_array_equal(run(copy, x), run(model, x))
    assert copy.regularization_loss().item() == pytest.approx(model.regularization_loss().item(), rel=1e-7)


def test_state_dict_round_trip(seed):
    # what a safetensors checkpoint holds: the state dict of a model rebuilt from its config
    model = _model_for_round_trip()
    copy = Sequential.from_config(model.get_config())
    copy.load_state_dict(model.state_dict())
    x = seed.standard_normal((2, 4, 3)).astype("float32")
    np.testing.assert_array_equal(run(copy, x), run(model, x))


# --- invalid arguments -------------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "input_shape", [(0, 14), (120, -1), (120, None), (120, 14, 3), (), (120.0, 14), "120,14", (True, 2)]
)
def test_bad_input_shape(input_shape):
    with pytest.raises(ValueError) as e:
        rk.Sequential(SimpleRNN(4), input_shape=input_shape)
    assert str(e.value) == (
        "input_shape must be (sequence_length, features) with positive integers (sequence_length may be None), "
        f"got {input_shape!r}"
    )


def test_layers_must_be_rnnkit_layers():
    with pytest.raises(ValueError, match=r"Sequential layers must be rnnkit layers \(rk.layers.\*\), got Linear"):
        rk.Sequential(torch.nn.Linear(3, 2))


def test_first_layer_input_size_must_agree_with_input_shape():
    with pytest.raises(ValueError, match=r"layer 0 \(LSTM\) was built for 7 input features, but its input has 14"):
        rk.Sequential(LSTM(4, input_size=7), input_shape=(10, 14))


def test_return_state_layer_cannot_feed_the_next_layer():
    with pytest.raises(
        ValueError, match=r"layer 1 \(Dense\) follows a layer with several outputs .*use return_state=False"
    ):
        rk.Sequential(LSTM(4, return_state=True), Dense(1), input_shape=(10, 3))


@pytest.mark.parametrize("method", ["count_params", "summary", "get_weights"])
def test_unbuilt_model_says_how_to_build_it(method):
    with pytest.raises(
        ValueError,
        match=rf"{method} needs a built model: pass input_shape=\(sequence_length, features\) or call the model once",
    ):
        getattr(rk.Sequential(SimpleRNN(4), Dense(1)), method)()


def test_empty_model_cannot_run():
    with pytest.raises(ValueError, match=r"Sequential has no layers"):
        rk.Sequential()(torch.zeros(2, 3, 4))


def test_set_weights_wrong_count_lists_each_layer():
    model = rk.Sequential(SimpleRNN(16), Dense(1), input_shape=(120, 14))
    with pytest.raises(ValueError, match=r"set_weights expects 5 arrays \(simple_rnn: 3, dense: 2\), got 4"):
        model.set_weights(model.get_weights()[:4])


def test_set_weights_wrong_shape_names_the_expected_shape():
    model = rk.Sequential(SimpleRNN(16), Dense(1), input_shape=(120, 14))
    weights = model.get_weights()
    weights[3] = np.zeros((16, 2), dtype="float32")
    with pytest.raises(
        ValueError, match=r"set_weights: array 3 \(layer dense, weight 0\) must have shape \(16, 1\), got \(16, 2\)"
    ):
        model.set_weights(weights)


def test_from_config_rejects_unknown_keys():
    with pytest.raises(ValueError, match=r"Sequential config: unknown keys \['optimizer'\]"):
        Sequential.from_config({"input_shape": None, "layers": [], "optimizer": "adam"})


def test_from_config_needs_layers():
    with pytest.raises(ValueError, match=r"Sequential config must be a dict with 'layers'"):
        Sequential.from_config({"input_shape": [3, 2]})


def test_layers_are_separate_arguments_not_a_list():
    with pytest.raises(
        ValueError,
        match=r"Sequential takes the layers as separate arguments, Sequential\(layer1, layer2, \.\.\.\), got a list",
    ):
        rk.Sequential([SimpleRNN(4), Dense(1)])


def test_dense_after_flatten_needs_a_known_sequence_length():
    with pytest.raises(
        ValueError, match=r"Dense needs a known number of input features on the last axis, got input shape \(None,\)"
    ):
        rk.Sequential(Flatten(), Dense(1), input_shape=(None, 14))
