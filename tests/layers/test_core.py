"""Dense, Dropout, Embedding, Flatten: golden values, Keras 3 parity, initialisers, arguments."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch

from rnnkit.layers import Dense, Dropout, Embedding, Flatten, deserialize, regularizers, serialize

keras = pytest.importorskip("keras")


def keras_weights(model) -> list[np.ndarray]:
    # keras's get_weights() goes through np.array(tensor), which warns under numpy 2
    return [v.value.detach().cpu().numpy() for v in model.weights]


def keras_call(model, x: np.ndarray) -> np.ndarray:
    return model(x).detach().cpu().numpy()


# --- Dense ---------------------------------------------------------------------------------------
def test_dense_golden_values():
    dense = Dense(2, input_size=3)
    dense.set_weights([np.array([[1.0, 2.0], [3.0, 4.0], [5.0, 6.0]]), np.array([0.5, -1.0])])
    y = dense(torch.tensor([[1.0, 0.0, -1.0], [0.0, 1.0, 1.0]]))
    # [1, 0, -1] W = [-4, -4]; [0, 1, 1] W = [8, 10]; plus b
    torch.testing.assert_close(y, torch.tensor([[-3.5, -5.0], [8.5, 9.0]]))


def test_dense_relu_golden_values():
    dense = Dense(2, activation="relu", input_size=3)
    dense.set_weights([np.array([[1.0, 2.0], [3.0, 4.0], [5.0, 6.0]]), np.array([0.5, -1.0])])
    y = dense(torch.tensor([[1.0, 0.0, -1.0], [0.0, 1.0, 1.0]]))
    torch.testing.assert_close(y, torch.tensor([[0.0, 0.0], [8.5, 9.0]]))


@pytest.mark.parametrize("activation", [None, "tanh", "relu", "sigmoid"])
@pytest.mark.parametrize("input_shape", [(5,), (4, 5)], ids=["2d", "3d"])
def test_dense_matches_keras(seed, activation, input_shape):
    k = keras.Sequential([keras.Input(input_shape), keras.layers.Dense(3, activation=activation)])
    dense = Dense(3, activation=activation)
    x = seed.standard_normal((6, *input_shape)).astype("float32")
    dense(torch.from_numpy(x))  # lazy build from the first call
    dense.set_weights(keras_weights(k))
    np.testing.assert_allclose(dense(torch.from_numpy(x)).detach().numpy(), keras_call(k, x), atol=1e-5)


def test_dense_without_bias_matches_keras(seed):
    k = keras.Sequential([keras.Input((5,)), keras.layers.Dense(2, use_bias=False)])
    dense = Dense(2, use_bias=False, input_size=5)
    assert [w.shape for w in dense.get_weights()] == [(5, 2)]
    dense.set_weights(keras_weights(k))
    x = seed.standard_normal((3, 5)).astype("float32")
    np.testing.assert_allclose(dense(torch.from_numpy(x)).detach().numpy(), keras_call(k, x), atol=1e-5)
    assert dense.count_params() == 10 and dense.param_formula() == "5·2"


def test_dense_per_time_step_equals_dense_on_each_step(seed):
    dense = Dense(4, activation="tanh", input_size=3)
    x = torch.from_numpy(seed.standard_normal((2, 6, 3)).astype("float32"))
    y = dense(x)
    for t in range(6):
        torch.testing.assert_close(y[:, t], dense(x[:, t]))


def test_dense_count_and_formula():
    dense = Dense(12, input_size=3360)
    assert dense.count_params() == 3360 * 12 + 12 == 40_332
    assert dense.param_formula() == "3360·12 + 12"


def test_dense_keras_initialisers():
    torch.manual_seed(0)
    dense = Dense(200, input_size=300)
    kernel, bias = dense.get_weights()
    limit = math.sqrt(6.0 / (300 + 200))
    assert kernel.shape == (300, 200)
    assert np.abs(kernel).max() <= limit and np.abs(kernel).max() > 0.99 * limit
    assert kernel.var() == pytest.approx(limit**2 / 3, rel=0.03)  # variance of U(-a, a)
    np.testing.assert_array_equal(bias, np.zeros(200, dtype=np.float32))


def test_dense_regularization_loss_is_hand_computed_sum():
    dense = Dense(2, input_size=3, kernel_regularizer=regularizers.l1(0.1), bias_regularizer=regularizers.l2(0.5))
    kernel = np.array([[1.0, -2.0], [3.0, -4.0], [5.0, 6.0]])
    bias = np.array([0.5, -1.0])
    dense.set_weights([kernel, bias])
    expected = 0.1 * np.abs(kernel).sum() + 0.5 * np.square(bias).sum()  # 2.1 + 0.625
    assert dense.regularization_loss().item() == pytest.approx(expected, rel=1e-6)
    assert Dense(2, input_size=3).regularization_loss().item() == 0.0


def test_dense_gradcheck_float64(seed):
    dense = Dense(3, activation="tanh", input_size=4).double()
    x = torch.from_numpy(seed.standard_normal((2, 5, 4))).requires_grad_(True)
    assert torch.autograd.gradcheck(dense, (x,))


def test_dense_config_round_trip_through_json(seed):
    dense = Dense(3, activation="relu", use_bias=True, kernel_regularizer=regularizers.l2(1e-3), input_size=4)
    spec = json.loads(json.dumps(serialize(dense)))
    assert spec == {
        "class_name": "Dense",
        "config": {
            "units": 3,
            "activation": "relu",
            "use_bias": True,
            "kernel_regularizer": {"l1": 0.0, "l2": 1e-3},
            "bias_regularizer": None,
            "input_size": 4,
        },
    }
    copy = deserialize(spec)
    copy.set_weights(dense.get_weights())
    x = torch.from_numpy(seed.standard_normal((2, 4)).astype("float32"))
    torch.testing.assert_close(copy(x), dense(x), rtol=0, atol=0)
    assert copy.regularization_loss().item() == pytest.approx(dense.regularization_loss().item())


# --- Dense: invalid arguments ----------------------------------------------------------------------
@pytest.mark.parametrize("units", [0, -1, 2.5, True])
def test_dense_units_must_be_positive_int(units):
    with pytest.raises(ValueError) as e:
        Dense(units)
    assert str(e.value) == f"units must be a positive integer, got {units!r}"


def test_dense_unknown_activation():
    with pytest.raises(ValueError, match=r"activation must be one of \[.*'relu'.*\], got 'relux'"):
        Dense(1, activation="relux")


def test_dense_use_bias_must_be_bool():
    with pytest.raises(ValueError, match=r"use_bias must be True or False, got 'yes'"):
        Dense(1, use_bias="yes")


def test_dense_input_size_must_be_positive():
    with pytest.raises(ValueError, match=r"input_size must be a positive integer, got 0"):
        Dense(1, input_size=0)


def test_dense_bad_regularizer():
    with pytest.raises(ValueError, match=r"kernel_regularizer must be None, .*got 'l2'"):
        Dense(1, kernel_regularizer="l2")


def test_dense_features_must_match_built_layer():
    dense = Dense(2, input_size=3)
    with pytest.raises(ValueError, match=r"Dense was built for 3 input features, got 4 \(input shape \(5, 4\)\)"):
        dense(torch.zeros(5, 4))


def test_dense_input_needs_batch_axis():
    with pytest.raises(
        ValueError, match=r"Dense expects inputs of shape \(batch, \.\.\., features\), got shape \(3,\)"
    ):
        Dense(2)(torch.zeros(3))


def test_dense_set_weights_wrong_count():
    with pytest.raises(ValueError, match=r"Dense.set_weights expects 2 arrays \(kernel \(3, 2\), bias \(2,\)\), got 1"):
        Dense(2, input_size=3).set_weights([np.zeros((3, 2))])


def test_dense_set_weights_wrong_shape_names_expected_shape():
    with pytest.raises(ValueError, match=r"Dense.set_weights: kernel must have shape \(3, 2\), got \(2, 3\)"):
        Dense(2, input_size=3).set_weights([np.zeros((2, 3)), np.zeros(2)])


def test_dense_set_weights_needs_built_layer():
    with pytest.raises(ValueError, match=r"Dense.set_weights needs a built layer"):
        Dense(2).set_weights([np.zeros((3, 2)), np.zeros(2)])


# --- Dropout -------------------------------------------------------------------------------------------
@pytest.mark.parametrize("rate", [0.25, 0.5, 0.8])
def test_dropout_train_mask_values_and_rate(rate):
    torch.manual_seed(0)
    drop = Dropout(rate).train()
    y = drop(torch.ones(200, 500))
    values = torch.unique(y)
    torch.testing.assert_close(values, torch.tensor([0.0, 1.0 / (1.0 - rate)]))
    dropped = (y == 0).float().mean().item()
    assert dropped == pytest.approx(rate, abs=0.01)  # 100k draws: std of the share ≈ 0.0016


def test_dropout_masks_each_value_independently():
    torch.manual_seed(0)
    y = Dropout(0.5).train()(torch.ones(4, 1000))
    assert not torch.equal(y[0], y[1])


def test_dropout_eval_is_identity(seed):
    x = torch.from_numpy(seed.standard_normal((3, 7, 2)).astype("float32"))
    drop = Dropout(0.5).eval()
    torch.testing.assert_close(drop(x), x, rtol=0, atol=0)


def test_dropout_rate_zero_is_identity_in_training(seed):
    x = torch.from_numpy(seed.standard_normal((3, 7)).astype("float32"))
    torch.testing.assert_close(Dropout(0.0).train()(x), x, rtol=0, atol=0)


def test_dropout_has_no_weights():
    drop = Dropout(0.3)
    assert drop.count_params() == 0 and drop.get_weights() == [] and drop.get_config() == {"rate": 0.3}


@pytest.mark.parametrize("rate", [1.0, 1.5, -0.1, math.nan, "0.5", True])
def test_dropout_rate_must_be_in_0_1(rate):
    with pytest.raises(ValueError) as e:
        Dropout(rate)
    assert str(e.value) == f"rate must be in [0, 1), got {rate!r}"


# --- Embedding ---------------------------------------------------------------------------------------
def test_embedding_matches_keras(seed):
    k = keras.Sequential([keras.Input((5,), dtype="int32"), keras.layers.Embedding(10, 3)])
    emb = Embedding(10, 3)
    emb.set_weights(keras_weights(k))
    ids = seed.integers(0, 10, size=(4, 5)).astype("int64")
    np.testing.assert_allclose(emb(torch.from_numpy(ids)).detach().numpy(), keras_call(k, ids.astype("int32")), atol=0)


def test_embedding_golden_lookup():
    emb = Embedding(3, 2)
    table = np.array([[0.0, 1.0], [2.0, 3.0], [4.0, 5.0]])
    emb.set_weights([table])
    y = emb(torch.tensor([[2, 0], [1, 1]]))
    torch.testing.assert_close(y, torch.tensor([[[4.0, 5.0], [0.0, 1.0]], [[2.0, 3.0], [2.0, 3.0]]]))
    assert emb.count_params() == 6 and emb.param_formula() == "3·2"


def test_embedding_keras_initialiser():
    torch.manual_seed(0)
    (table,) = Embedding(500, 40).get_weights()
    assert np.abs(table).max() <= 0.05 and np.abs(table).max() > 0.0499
    assert table.var() == pytest.approx(0.05**2 / 3, rel=0.03)


def test_embedding_regularization_loss():
    emb = Embedding(2, 2, embeddings_regularizer=regularizers.l2(0.1))
    emb.set_weights([np.array([[1.0, 2.0], [-3.0, 0.5]])])
    assert emb.regularization_loss().item() == pytest.approx(0.1 * (1 + 4 + 9 + 0.25))


def test_embedding_config_round_trip():
    emb = Embedding(7, 3, mask_zero=True)
    copy = deserialize(json.loads(json.dumps(serialize(emb))))
    assert copy.get_config() == {"input_dim": 7, "output_dim": 3, "embeddings_regularizer": None, "mask_zero": True}


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"input_dim": 0, "output_dim": 3}, "input_dim must be a positive integer, got 0"),
        ({"input_dim": 5, "output_dim": -2}, "output_dim must be a positive integer, got -2"),
    ],
)
def test_embedding_invalid_sizes(kwargs, message):
    with pytest.raises(ValueError) as e:
        Embedding(**kwargs)
    assert str(e.value) == message


def test_embedding_rejects_float_inputs():
    with pytest.raises(ValueError, match=r"Embedding inputs must be integer token ids, got dtype torch.float32"):
        Embedding(5, 2)(torch.zeros(2, 3))


def test_embedding_rejects_ids_out_of_range():
    with pytest.raises(
        ValueError, match=r"Embedding inputs must be ids in \[0, 5\) \(input_dim\), got values in \[0, 5\]"
    ):
        Embedding(5, 2)(torch.tensor([[0, 5]]))


# --- Flatten -------------------------------------------------------------------------------------------
def test_flatten_matches_keras(seed):
    k = keras.Sequential([keras.Input((4, 3)), keras.layers.Flatten()])
    x = seed.standard_normal((2, 4, 3)).astype("float32")
    np.testing.assert_array_equal(Flatten()(torch.from_numpy(x)).numpy(), keras_call(k, x))


def test_flatten_golden_order_and_shape():
    x = torch.arange(12.0).reshape(1, 3, 4)
    torch.testing.assert_close(Flatten()(x), torch.arange(12.0).reshape(1, 12))
    assert Flatten().compute_output_shape((240, 14)) == (3360,)
    assert Flatten().compute_output_shape((None, 14)) == (None,)


def test_flatten_needs_batch_axis():
    with pytest.raises(ValueError, match=r"Flatten expects inputs of shape \(batch, \.\.\.\), got shape \(\)"):
        Flatten()(torch.tensor(1.0))


# --- (de)serialisation -------------------------------------------------------------------------------
def test_deserialize_unknown_class():
    with pytest.raises(ValueError, match=r"deserialize: class_name must be one of \[.*'Dense'.*\], got 'Conv1D'"):
        deserialize({"class_name": "Conv1D", "config": {}})


def test_deserialize_bad_config_key():
    with pytest.raises(ValueError, match=r"deserialize: bad config for Dense: .*'unitz'"):
        deserialize({"class_name": "Dense", "config": {"unitz": 3}})


def test_deserialize_needs_class_name_and_config():
    with pytest.raises(
        ValueError,
        match=r"deserialize: spec must be a dict with keys 'class_name' and 'config', got \{'class_name': 'Dense'\}",
    ):
        deserialize({"class_name": "Dense"})


def test_serialize_unregistered_layer():
    from rnnkit.layers.base import Layer

    class Custom(Layer):
        pass

    with pytest.raises(ValueError, match=r"serialize: layer must be one of \[.*'GRU'.*\], got Custom"):
        serialize(Custom())


@pytest.mark.parametrize("layer", [Dense(3, input_size=2), Dropout(0.1), Embedding(4, 2), Flatten()])
def test_serialize_round_trip_every_core_layer(layer):
    spec = serialize(layer)
    assert json.loads(json.dumps(spec)) == spec
    copy = deserialize(spec)
    assert type(copy) is type(layer) and copy.get_config() == layer.get_config()
