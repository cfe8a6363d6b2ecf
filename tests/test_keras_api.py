"""The course's 04a and 05a cells as a student writes them in Keras, run on rnnkit's Keras face (issue 20).

Each cell is the Keras code word for word (``compile`` / ``fit`` / ``evaluate`` / ``predict`` /
``save`` / ``load_model``); only the layer constructors are rnnkit's (``rk.Sequential(a, b)`` for
``keras.Sequential([a, b])``). The data is the hourly record embedded in the package.

The trained-score margins were measured over seeds 0–25 (compile(seed=...)): 04a SimpleRNN(12) test
MAE 0.30–0.34 std units (the course prints 0.31–0.32; the training mean scores 0.79), Dense(12)
0.32–0.41, last/first epoch loss at most 0.74; 05a GRU(16) after 3 epochs test 2.7–3.6 degC
(training mean 6.9), last/first epoch loss at most 0.89.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

import rnnkit as rk
from rnnkit.datasets.jena import EMBEDDED_JENA
from rnnkit.errors import RnnkitError
from tests.helpers import tiny_config, write_jena_csv


@pytest.fixture(scope="module")
def jena():
    frame = rk.datasets.jena_climate(EMBEDDED_JENA)
    return frame.to_numpy(dtype=np.float32), list(frame.columns).index("T (degC)")


def toy(seed: int = 0, n: int = 96):
    """x (n, 6, 2) noise, y (n, 1) a function of the last step that a small RNN learns in a few epochs."""
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, 6, 2)).astype(np.float32)
    return x, (0.8 * x[:, -1, :1] - 0.3 * x[:, -2, 1:]).astype(np.float32)


def small_rnn() -> rk.Sequential:
    return rk.Sequential(rk.layers.SimpleRNN(4), rk.layers.Dense(1), input_shape=(6, 2))


# --- the course's cells ----------------------------------------------------------------------------


def test_course_04a_reshape_approach_dense_against_simple_rnn(jena):
    data, T = jena
    # 04a: non-overlapping 40-hour windows (the course's 240 ten-minute rows), split by window in time order
    L = 40
    n = len(data) // L
    mean, std = data[: 1121 * L].mean(axis=0), data[: 1121 * L].std(axis=0)
    windows = ((data[: n * L] - mean) / std).reshape(n, L, 14)
    parts = windows[:1121], windows[1121:1401], windows[1401:]
    # the target: the temperature 24 h after the last input row, the 24th row of the next window
    (x_train, y_train), (x_val, y_val), (x_test, y_test) = [(p[:-1], p[1:, 23, T]) for p in parts]
    # the course's 1,120 / 279 / 350 pairs; the hourly record holds 1,751 windows, one fewer than the course's 1,752
    assert (len(x_train), len(x_val), len(x_test)) == (1120, 279, 349)

    dense = rk.Sequential(
        rk.layers.Flatten(), rk.layers.Dense(12, activation="relu"), rk.layers.Dense(1), input_shape=(L, 14)
    )
    dense.compile(optimizer="adam", loss="mae")
    dense_history = dense.fit(x_train, y_train, epochs=10, batch_size=32, validation_data=(x_val, y_val), verbose=0)

    rnn = rk.Sequential(rk.layers.SimpleRNN(12), rk.layers.Dense(1), input_shape=(L, 14))
    rnn.compile(optimizer="adam", loss="mae", metrics=["mae"])
    history = rnn.fit(x_train, y_train, epochs=10, batch_size=32, validation_data=(x_val, y_val), verbose=0)
    test_loss, test_mae = rnn.evaluate(x_test, y_test)
    predictions = rnn.predict(x_test)

    assert (dense.count_params(), rnn.count_params()) == (40 * 14 * 12 + 12 + 13, 337)  # the course's 337
    assert set(history.history) == {"loss", "val_loss", "mae", "val_mae", "lr", "seconds"}
    assert all(len(v) == 10 for v in history.history.values())
    assert set(dense_history.history) == {"loss", "val_loss", "lr", "seconds"}
    for h in (history, dense_history):
        assert h.history["loss"][-1] < 0.9 * h.history["loss"][0]
    # evaluate and predict agree: the loss is the test MAE of the predictions
    assert predictions.shape == (349, 1) and predictions.dtype == np.float32
    np.testing.assert_allclose(test_loss, np.abs(predictions[:, 0] - y_test).mean(), rtol=1e-5)
    assert test_mae == pytest.approx(test_loss, rel=1e-6)
    # with validation data, the model holds its best validation epoch (rnnkit's restore_best)
    assert rnn.evaluate(x_val, y_val)[0] == pytest.approx(min(history.history["val_loss"]), rel=1e-6)
    assert history.history["val_mae"] == pytest.approx(history.history["val_loss"], rel=1e-6)
    mean_baseline = np.abs(y_test - y_train.mean()).mean()
    assert mean_baseline > 0.75
    assert test_loss < 0.45 and dense.evaluate(x_test, y_test) < 0.6


def test_course_05a_shift_approach_gru_with_validation_split(jena):
    data, T = jena
    # 05a: 96-hour windows every 24 hours, the temperature 24 h after the last input; the last 20% test
    windows = rk.data.make_windows(data, 96, shift=24, horizon=24, targets=[T])
    x, y = windows.x.numpy(), windows.y.numpy()
    n_train = len(x) - int(0.2 * len(x))
    mean, std = data[: n_train * 24].mean(axis=0), data[: n_train * 24].std(axis=0)
    x_scaled, y_scaled = (x - mean) / std, (y - mean[T]) / std[T]
    x_train, y_train, x_test, y_test = x_scaled[:n_train], y_scaled[:n_train], x_scaled[n_train:], y[n_train:]

    model = rk.Sequential(rk.layers.GRU(16, reset_after=False), rk.layers.Dense(1), input_shape=(96, 14))
    model.compile(optimizer="adam", loss="mae")
    history = model.fit(x_train, y_train, epochs=3, batch_size=16, validation_split=0.2, verbose=0)
    predicted = model.predict(x_test) * std[T] + mean[T]
    test_mae = np.abs(predicted - y_test).mean()

    assert (x.shape, n_train, model.count_params()) == ((2915, 96, 14), 2332, 1_505)  # the course's 1,505
    assert set(history.history) == {"loss", "val_loss", "lr", "seconds"} and len(history.history["loss"]) == 3
    assert history.history["loss"][-1] < 0.95 * history.history["loss"][0]
    assert test_mae < 4.5 < np.abs(y_test - y[:n_train].mean()).mean()
    # validation_split is Keras's: the last 20% of the training windows, cut before shuffling
    cut = int(n_train * 0.8)
    again = rk.Sequential(rk.layers.GRU(16, reset_after=False), rk.layers.Dense(1), input_shape=(96, 14))
    again.compile(optimizer="adam", loss="mae")
    same = again.fit(
        x_train[:cut], y_train[:cut], epochs=3, batch_size=16, validation_data=(x_train[cut:], y_train[cut:]), verbose=0
    )
    assert same.history["val_loss"] == history.history["val_loss"]


def test_fit_takes_windows_and_batches_as_keras_takes_datasets():
    series = np.sin(np.arange(400) / 6.0)[:, None].astype(np.float32)
    train = rk.data.make_windows(series[:300], 12, horizon=1)
    val = rk.data.make_windows(series[300:], 12, horizon=1)
    model = rk.Sequential(rk.layers.GRU(4), rk.layers.Dense(1), input_shape=(12, 1))
    model.compile(optimizer="adam", loss="mse", learning_rate=1e-2)
    history = model.fit(train, validation_data=val, epochs=4, verbose=0)
    assert len(history.history["val_loss"]) == 4 and history.history["loss"][-1] < history.history["loss"][0]
    batches = [(val.x[i : i + 32], val.y[i : i + 32]) for i in range(0, len(val), 32)]
    loader = torch.utils.data.DataLoader(torch.utils.data.TensorDataset(val.x, val.y), batch_size=32)
    expected = model.evaluate(val.x.numpy(), val.y.numpy())
    assert model.evaluate(val) == pytest.approx(expected, rel=1e-6)
    assert model.evaluate(batches) == pytest.approx(expected, rel=1e-6)
    assert model.evaluate(loader) == pytest.approx(expected, rel=1e-6)
    np.testing.assert_array_equal(model.predict(val), model.predict(val.x))


def test_fit_is_the_trainers_fit_with_the_compiled_settings():
    x, y = toy(3)
    labels = (y[:, 0] > 0).astype(np.int64)
    build = lambda: rk.Sequential(rk.layers.GRU(4), rk.layers.Dense(2), input_shape=(6, 2))  # noqa: E731
    torch.manual_seed(0)
    ours = build()
    ours.compile(optimizer="adam", loss="sparse_categorical_crossentropy", metrics=["accuracy"], learning_rate=1e-2)
    history = ours.fit(x, labels, epochs=3, batch_size=16, validation_split=0.25, class_weight={1: 3.0}, verbose=0)
    torch.manual_seed(0)
    direct = build()
    trainer = rk.training.Trainer(
        loss="cross_entropy", learning_rate=1e-2, epochs=3, batch_size=16, class_weight=[1.0, 3.0], progress=False
    )
    cut = 72  # Keras's split: the last quarter of 96 examples validates
    xs, ys = torch.from_numpy(x), torch.from_numpy(labels)
    expected = trainer.fit(direct, (xs[:cut], ys[:cut]), (xs[cut:], ys[cut:]))
    assert history.history["loss"] == expected["loss"] and history.history["val_loss"] == expected["val_loss"]
    for a, b in zip(ours.get_weights(), direct.get_weights()):
        np.testing.assert_array_equal(a, b)
    assert history.history["val_accuracy"][-1] == pytest.approx(
        trainer.evaluate(direct, (xs[cut:], ys[cut:]))["accuracy"]
    )


def test_the_pinball_loss_compiles_with_its_quantiles(tmp_path):
    x, y = toy()
    model = rk.Sequential(rk.layers.SimpleRNN(4), rk.layers.Dense(3), input_shape=(6, 2))
    with pytest.raises(ValueError, match="quantiles go with loss='pinball'"):
        model.compile(loss="pinball")
    model.compile(loss="pinball", quantiles=[0.1, 0.5, 0.9])
    history = model.fit(x, y, epochs=2, verbose=0)
    model.save(tmp_path / "q")
    assert rk.load_model(tmp_path / "q").evaluate(x, y) == pytest.approx(model.evaluate(x, y), rel=1e-7)
    assert len(history.history["loss"]) == 2


# --- save and load -----------------------------------------------------------------------------------


def test_a_saved_and_loaded_model_predicts_identically_and_stays_compiled(tmp_path):
    x, y = toy()
    model = small_rnn()
    model.compile(optimizer="rmsprop", loss="mse", metrics=["mae", "rmse"], learning_rate=3e-3)
    model.fit(x, y, epochs=2, batch_size=16, verbose=0)
    model.save(tmp_path / "toy")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["toy.json", "toy.safetensors"]

    loaded = rk.load_model(tmp_path / "toy")
    assert type(loaded) is rk.Sequential and not loaded.training
    np.testing.assert_array_equal(loaded.predict(x), model.predict(x))
    assert loaded.evaluate(x, y, return_dict=True) == model.evaluate(x, y, return_dict=True)
    loss, mae, rmse = loaded.evaluate(x, y)  # compiled again: mse loss, then the metrics in order
    error = loaded.predict(x) - y
    np.testing.assert_allclose(
        [loss, mae, rmse], [(error**2).mean(), np.abs(error).mean(), np.sqrt((error**2).mean())], rtol=1e-5
    )
    assert rk.load_model(tmp_path / "toy.safetensors").get_weights()[0].tolist() == model.get_weights()[0].tolist()


def test_a_residual_wrapper_saves_and_loads_as_well(tmp_path):
    x, _ = toy()
    model = rk.baselines.ResidualTarget(small_rnn(), target_index=0)
    model.save(tmp_path / "residual")
    loaded = rk.load_model(tmp_path / "residual")
    assert type(loaded) is rk.baselines.ResidualTarget
    np.testing.assert_array_equal(loaded.predict(x), model.predict(x))


def test_load_run_gives_the_runs_models_scaler_and_windows(tmp_path):
    csv = write_jena_csv(tmp_path / "jena.csv", days=20)
    config = rk.tasks.parse_config(tiny_config(csv, training={"epochs": 1, "loss": "mse"}))
    metrics = rk.run_experiment(config, tmp_path / "run", progress=False, log=lambda line: None)

    run = rk.load_run(tmp_path / "run")
    assert list(run.models) == ["GRU(4)"] and run.best == metrics["best"] == "GRU(4)"
    assert run.scaler.columns == ["p (mbar)", "T (degC)"] and run.windows.sequence_length == 24
    assert run.windows.horizon == 6
    model = run.models["GRU(4)"]
    from_file = rk.load_model(tmp_path / "run" / "models" / "gru_4" / "model")
    x = np.random.default_rng(0).normal(size=(5, 24, 2)).astype(np.float32)
    np.testing.assert_array_equal(model.predict(x), from_file.predict(x))
    y = np.zeros((5, 1), np.float32)
    assert model.evaluate(x, y) == pytest.approx(float((model.predict(x) ** 2).mean()), rel=1e-5)  # the run's mse


# --- callbacks -------------------------------------------------------------------------------------


def diverging():
    """Validation targets opposite to the training targets: the better the fit, the worse val_loss."""
    x, y = toy(0, 128)
    x_val, y_val = toy(1, 64)
    return x, y, x_val, -y_val


def test_early_stopping_stops_after_patience_and_restores_the_best_weights():
    x, y, x_val, y_val = diverging()
    model = small_rnn()
    model.compile(optimizer="adam", loss="mse", learning_rate=1e-2)
    stop = rk.training.EarlyStopping(monitor="val_loss", patience=2, restore_best_weights=True)
    history = model.fit(x, y, epochs=50, batch_size=16, validation_data=(x_val, y_val), callbacks=[stop], verbose=0)
    val = history.history["val_loss"]
    best = int(np.argmin(val))
    assert len(val) == best + 1 + 2 < 50  # stopped two epochs without improvement after the best
    assert history.stopped_early and history.best_epoch == best + 1
    assert model.evaluate(x_val, y_val) == pytest.approx(val[best], rel=1e-6)


def test_early_stopping_without_restore_keeps_the_last_epoch_as_keras_does():
    x, y, x_val, y_val = diverging()
    model = small_rnn()
    model.compile(optimizer="adam", loss="mse", learning_rate=1e-2)
    history = model.fit(
        x,
        y,
        epochs=50,
        batch_size=16,
        validation_data=(x_val, y_val),
        verbose=0,
        callbacks=[rk.training.EarlyStopping(patience=1)],
    )
    val = history.history["val_loss"]
    assert len(val) == int(np.argmin(val)) + 2 < 50
    assert model.evaluate(x_val, y_val) == pytest.approx(val[-1], rel=1e-6)


def test_reduce_lr_on_plateau_follows_keras_rule():
    x, y, x_val, y_val = diverging()
    model = small_rnn()
    model.compile(optimizer="adam", loss="mse", learning_rate=1e-2)
    history = model.fit(
        x,
        y,
        epochs=8,
        batch_size=16,
        validation_data=(x_val, y_val),
        verbose=0,
        callbacks=[rk.training.ReduceLROnPlateau(monitor="val_loss", factor=0.5, patience=2)],
    )
    # Keras's rule replayed: after `patience` epochs without a new best, the rate halves and the count restarts
    lr, best, wait, expected = 1e-2, np.inf, 0, []
    for v in history.history["val_loss"]:
        expected.append(lr)
        if v < best:
            best, wait = v, 0
        else:
            wait += 1
            if wait >= 2:
                lr, wait = lr * 0.5, 0
    assert history.history["lr"] == pytest.approx(expected)
    assert min(expected) < 1e-2  # the rate did fall


# --- against Keras --------------------------------------------------------------------------------


def test_same_weights_as_keras_give_the_same_predictions_and_the_same_sgd_steps():
    keras = pytest.importorskip("keras")
    from tests.keras_reference import as_numpy, keras_weights

    x, y = toy(2, 32)
    ours = small_rnn()
    theirs = keras.Sequential([keras.Input((6, 2)), keras.layers.SimpleRNN(4), keras.layers.Dense(1)])
    theirs.set_weights(ours.get_weights())
    np.testing.assert_allclose(ours.predict(x), as_numpy(theirs(x)), atol=1e-6)

    theirs.compile(optimizer=keras.optimizers.SGD(learning_rate=0.1), loss="mse")
    ours.compile(optimizer="sgd", loss="mse", learning_rate=0.1)
    keras_history = theirs.fit(x, y, epochs=3, batch_size=8, shuffle=False, verbose=0)
    history = ours.fit(x, y, epochs=3, batch_size=8, shuffle=False, verbose=0)
    np.testing.assert_allclose(history.history["loss"], keras_history.history["loss"], rtol=1e-5)
    for a, b in zip(ours.get_weights(), [w for layer in theirs.layers for w in keras_weights(layer)]):
        np.testing.assert_allclose(a, b, atol=1e-6)
    assert ours.evaluate(x, y) == pytest.approx(float(as_numpy(theirs.evaluate(x, y, verbose=0))), rel=1e-5)


# --- compile is Keras's; bad arguments are named --------------------------------------------------


def test_compile_is_keras_compile_not_torch_compile():
    model = small_rnn()
    model.compile(optimizer="adam", loss="mean_squared_error")
    assert model._compiled_call_impl is None  # nn.Module.compile would have set torch.compile's wrapper
    assert model._compiled().training.loss == "mse"


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda m, x, y: m.compile(optimizer="adamw"), "optimizer must be one of adam, rmsprop, sgd"),
        (lambda m, x, y: m.compile(metrics=["accuracy"]), "metrics: 'accuracy' does not go with loss='mae'"),
        (lambda m, x, y: m.compile(metrics="mae"), "metrics must be a list of names"),
        (lambda m, x, y: m.compile(momentum=0.9), r"compile: unknown settings \['momentum'\]"),
        (lambda m, x, y: m.fit(x), "x is an array without targets"),
        (lambda m, x, y: m.fit(x, y, validation_split=1.0), r"validation_split must be in \[0, 1\), got 1.0"),
        (
            lambda m, x, y: m.fit(x, y, validation_split=0.2, validation_data=(x, y)),
            "validation_data or validation_split",
        ),
        (lambda m, x, y: m.fit(x, y, verbose=3), "verbose must be 'auto', 0, 1 or 2, got 3"),
        (lambda m, x, y: m.fit(x, y, callbacks=[rk.training.EarlyStopping()]), "the Trainer watches 'loss'"),
        (
            lambda m, x, y: m.fit(x, y, callbacks=[rk.training.EarlyStopping(min_delta=0.1, monitor="loss")]),
            "min_delta must be 0",
        ),
        (lambda m, x, y: m.fit(x, y, callbacks=[print]), "callbacks must be rk.training.EarlyStopping"),
        (lambda m, x, y: m.save("model.keras"), "give a stem such as 'model'"),
        (lambda m, x, y: rk.training.EarlyStopping(monitor="val_mae"), "monitor must be 'val_loss' or 'loss'"),
    ],
)
def test_invalid_argument_is_named(call, message):
    x, y = toy()
    with pytest.raises(ValueError, match=message):
        call(small_rnn(), x, y)


def test_load_model_refuses_a_class_it_does_not_rebuild(tmp_path):
    from rnnkit.io import save_model

    save_model(rk.baselines.Persistence(0), tmp_path / "p")
    with pytest.raises(RnnkitError, match="load_model cannot rebuild a model of class 'rnnkit.baselines.Persistence'"):
        rk.load_model(tmp_path / "p")


def test_a_runs_forecasts_sit_beside_the_truth_and_persistence_at_their_target_times(tmp_path):
    csv = write_jena_csv(tmp_path / "jena.csv", days=20)
    config = rk.tasks.parse_config(tiny_config(csv, training={"epochs": 1}))
    metrics = rk.run_experiment(config, tmp_path / "run", progress=False, log=lambda line: None)
    run = rk.load_run(tmp_path / "run")
    frame = rk.datasets.jena_climate(csv)  # the truth looked up by time, in the file's own rows
    for part, key in (("test", "mae_test"), ("val", "mae_val")):
        table = run.forecasts(part)
        assert list(table.columns) == ["target_time", "true T (degC)", "persistence T (degC)", "GRU(4)"]
        np.testing.assert_allclose(
            table["true T (degC)"], frame.loc[table["target_time"], "T (degC)"].to_numpy(), rtol=0, atol=1e-4
        )
        # persistence is the value 6 rows (hours) before the target: the window's last input
        before = frame.loc[table["target_time"] - np.timedelta64(6, "h"), "T (degC)"].to_numpy()
        np.testing.assert_allclose(table["persistence T (degC)"], before, rtol=0, atol=1e-4)
        for name in ("GRU(4)", "persistence"):
            column = name if name in table else "persistence T (degC)"
            error = float(np.abs(table[column] - table["true T (degC)"]).mean())
            assert error == pytest.approx(metrics["models"][name][key], rel=1e-4), (part, name)
    assert run.forecasts("test", names=[]).shape[1] == 3
    with pytest.raises(RnnkitError, match="part must be one of 'train', 'val', 'test', got 'testing'"):
        run.forecasts("testing")
    with pytest.raises(RnnkitError, match="no model 'LSTM' in the run"):
        run.forecasts(names=["LSTM"])
