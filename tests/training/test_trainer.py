"""Trainer: learning, repeatability, resume, early stopping, clipping, decay, stateful, progress."""

from __future__ import annotations

import io
import re
import math
import time

import numpy as np
import pytest
import torch
from torch import nn

from rnnkit.errors import RnnkitError
from rnnkit.training import Trainer
from rnnkit.training.checkpoint import CHECKPOINT_NAME


class GRURegressor(nn.Module):
    """A small nn.GRU + linear head: (batch, time, features) -> (batch, 1)."""

    def __init__(self, features: int = 1, units: int = 16, dropout: float = 0.0) -> None:
        super().__init__()
        self.gru = nn.GRU(features, units, batch_first=True)
        self.drop = nn.Dropout(dropout)
        self.head = nn.Linear(units, 1)

    def forward(self, x):
        out, _ = self.gru(x)
        return self.head(self.drop(out[:, -1]))


def sine_windows(n_rows: int = 400, length: int = 12, period: float = 25.0):
    t = torch.arange(n_rows, dtype=torch.float32)
    s = torch.sin(2 * math.pi * t / period)
    idx = torch.arange(n_rows - length)[:, None] + torch.arange(length)[None, :]
    x = s[idx][:, :, None]  # (windows, length, 1)
    y = s[length:][:, None]  # the next value after each window
    return x, y


def weights(model):
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


def assert_same_weights(a, b):
    assert a.keys() == b.keys()
    for k in a:
        assert torch.equal(a[k], b[k]), k


def linear_data(n=96, seed=0):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, 4, 3, generator=g)
    y = x.sum((1, 2))[:, None] * 0.3 + 0.1 * torch.randn(n, 1, generator=g)
    return x, y


def mlp(dropout=0.3, seed=1):
    torch.manual_seed(seed)
    return nn.Sequential(nn.Flatten(), nn.Linear(12, 16), nn.ReLU(), nn.Dropout(dropout), nn.Linear(16, 1))


# --- learning a known pattern -------------------------------------------------------------
def test_gru_learns_a_sine_to_mae_below_0_05():
    x, y = sine_windows()
    torch.manual_seed(0)
    model = GRURegressor()
    trainer = Trainer(learning_rate=1e-2, epochs=25, batch_size=32, seed=0)
    history = trainer.fit(model, (x[:300], y[:300]), (x[300:], y[300:]))
    result = trainer.evaluate(model, (x[300:], y[300:]))
    assert result["mae"] < 0.05, result
    assert history["val_loss"][-1] < history["val_loss"][0] / 10
    # The trainer's evaluate agrees with a direct computation.
    with torch.no_grad():
        direct = (model.eval()(x[300:]) - y[300:]).abs().mean().item()
    assert result["mae"] == pytest.approx(direct, rel=1e-6)


def test_cross_entropy_learns_a_separable_problem_and_reports_accuracy():
    g = torch.Generator().manual_seed(0)
    x = torch.randn(200, 2, generator=g)
    labels = (x[:, 0] + x[:, 1] > 0).long()
    torch.manual_seed(0)
    model = nn.Linear(2, 2)
    trainer = Trainer(loss="cross_entropy", learning_rate=0.05, epochs=15, seed=0)
    trainer.fit(model, (x, labels))
    result = trainer.evaluate(model, (x, labels))
    with torch.no_grad():
        expected = (model(x).argmax(1) == labels).double().mean().item()
    assert result["accuracy"] == expected
    assert result["accuracy"] > 0.95


# --- repeatability and resume ---------------------------------------------------------------
def test_same_seed_repeats_bit_for_bit_with_shuffling_and_dropout():
    x, y = linear_data()
    runs = []
    for _ in range(2):
        model = mlp()
        Trainer(epochs=3, batch_size=16, seed=7).fit(model, (x, y))
        runs.append(weights(model))
    assert_same_weights(*runs)
    other = mlp()
    Trainer(epochs=3, batch_size=16, seed=8).fit(other, (x, y))
    assert not torch.equal(weights(other)["1.weight"], runs[0]["1.weight"])


class InterruptingData:
    """Indexable data that raises KeyboardInterrupt on the n-th batch gathered (a killed run)."""

    def __init__(self, x, y, interrupt_at):
        self.x, self.y, self.calls, self.interrupt_at = x, y, 0, interrupt_at

    def __len__(self):
        return self.x.shape[0]

    def batch(self, indices):
        self.calls += 1
        if self.calls == self.interrupt_at:
            raise KeyboardInterrupt
        return self.x[indices], self.y[indices]


def test_run_interrupted_after_epoch_2_of_4_resumes_to_identical_weights(tmp_path):
    x, y = linear_data()
    xv, yv = linear_data(32, seed=1)
    settings = dict(epochs=4, batch_size=16, seed=3, lr_plateau_patience=1, early_stopping_patience=3)

    full = mlp()
    full_history = Trainer(checkpoint_dir=tmp_path / "full", **settings).fit(full, (x, y), (xv, yv))

    # 6 batches per epoch: the 15th gathered batch is in epoch 3, after epoch 2's checkpoint.
    broken = mlp()
    with pytest.raises(KeyboardInterrupt):
        Trainer(checkpoint_dir=tmp_path / "run", **settings).fit(broken, InterruptingData(x, y, 15), (xv, yv))
    assert (tmp_path / "run" / CHECKPOINT_NAME).is_file()

    resumed = mlp(seed=99)  # other initial weights: everything must come from the checkpoint
    history = Trainer(checkpoint_dir=tmp_path / "run", **settings).fit(resumed, (x, y), (xv, yv), resume=True)

    assert_same_weights(weights(resumed), weights(full))
    strip = lambda h: [{k: v for k, v in e.items() if k != "seconds"} for e in h.epochs]  # noqa: E731
    assert strip(history) == strip(full_history)
    assert [e["epoch"] for e in history.epochs] == [1, 2, 3, 4]


def test_resume_with_more_epochs_equals_a_longer_run(tmp_path):
    x, y = linear_data()
    long = mlp()
    Trainer(epochs=4, batch_size=32, seed=5).fit(long, (x, y))
    short = mlp()
    Trainer(epochs=2, batch_size=32, seed=5, checkpoint_dir=tmp_path).fit(short, (x, y))
    Trainer(epochs=4, batch_size=32, seed=5, checkpoint_dir=tmp_path).fit(short, (x, y), resume=True)
    assert_same_weights(weights(short), weights(long))


def test_resume_needs_checkpoint_dir():
    with pytest.raises(ValueError, match="resume=True needs checkpoint_dir, got checkpoint_dir=None"):
        Trainer().fit(nn.Linear(2, 1), (torch.zeros(4, 2), torch.zeros(4, 1)), resume=True)


def test_resume_without_checkpoint_is_a_clear_error(tmp_path):
    with pytest.raises(RnnkitError, match="no checkpoint to resume from"):
        Trainer(checkpoint_dir=tmp_path).fit(nn.Linear(2, 1), (torch.zeros(4, 2), torch.zeros(4, 1)), resume=True)


def test_resume_with_other_settings_is_refused(tmp_path):
    data = (torch.randn(8, 2), torch.randn(8, 1))
    Trainer(epochs=1, checkpoint_dir=tmp_path).fit(nn.Linear(2, 1), data)
    with pytest.raises(RnnkitError, match="optimizer: checkpoint 'adam', now 'sgd'"):
        Trainer(epochs=2, optimizer="sgd", checkpoint_dir=tmp_path).fit(nn.Linear(2, 1), data, resume=True)


def test_resume_into_a_model_that_does_not_fit_names_the_problem(tmp_path):
    data = (torch.randn(8, 2), torch.randn(8, 1))
    Trainer(epochs=1, checkpoint_dir=tmp_path).fit(nn.Linear(2, 1), data)
    with pytest.raises(RnnkitError, match="do not fit the model Sequential"):
        Trainer(epochs=2, checkpoint_dir=tmp_path).fit(nn.Sequential(nn.Linear(2, 1)), data, resume=True)


# --- early stopping, plateau -------------------------------------------------------------------
def test_early_stopping_restores_the_best_epoch_weights():
    x, y = linear_data()
    xv, yv = x[:32], -y[:32]  # validation wants the opposite: val_loss rises while training improves
    torch.manual_seed(0)
    init = weights(mlp(dropout=0.0))

    model = mlp(dropout=0.0)
    model.load_state_dict(init)
    history = Trainer(epochs=30, batch_size=16, early_stopping_patience=2, learning_rate=1e-2, seed=0).fit(
        model, (x, y), (xv, yv)
    )
    assert history.stopped_early
    best = min(range(len(history)), key=lambda i: history["val_loss"][i]) + 1
    assert history.best_epoch == best
    assert len(history) == best + 2  # stopped after `patience` epochs without improvement

    # The weights at the end of the best epoch, from a run that stops there.
    reference = mlp(dropout=0.0)
    reference.load_state_dict(init)
    Trainer(epochs=best, batch_size=16, learning_rate=1e-2, seed=0, restore_best=False).fit(reference, (x, y), (xv, yv))
    assert_same_weights(weights(model), weights(reference))

    last = mlp(dropout=0.0)
    last.load_state_dict(init)
    h = Trainer(
        epochs=30, batch_size=16, early_stopping_patience=2, learning_rate=1e-2, seed=0, restore_best=False
    ).fit(last, (x, y), (xv, yv))
    assert h.best_epoch == len(h)
    assert not torch.equal(weights(last)["1.weight"], weights(model)["1.weight"])


def test_plateau_halves_the_learning_rate_after_patience_epochs():
    x, y = linear_data()
    # val targets that no model can fit better over time: random and unrelated.
    xv, yv = x[:32], torch.randn(32, 1, generator=torch.Generator().manual_seed(5)) * 10
    history = Trainer(loss="mse", epochs=6, lr_plateau_patience=1, lr_factor=0.5, learning_rate=0.01, seed=0).fit(
        mlp(0.0), (x, y), (xv, yv)
    )
    lrs, vals = history["lr"], history["val_loss"]
    # Replay the rule on the recorded validation losses.
    expected, best, wait, lr = [], math.inf, 0, 0.01
    for v in vals:
        expected.append(lr)
        if v < best:
            best, wait = v, 0
        else:
            wait += 1
            if wait >= 1:
                lr, wait = lr * 0.5, 0
    assert lrs == pytest.approx(expected, rel=0, abs=0)
    assert min(lrs) < 0.01


# --- the optimisation step ------------------------------------------------------------------------
def test_gradient_clipping_bounds_the_norm_of_the_step():
    x = torch.ones(1, 3)
    y = torch.full((1, 1), 1e4)  # a gradient with norm about 2e4
    for clip, bounded in ((0.5, True), (None, False)):
        torch.manual_seed(0)
        model = nn.Linear(3, 1)
        before = torch.cat([p.detach().flatten().clone() for p in model.parameters()])
        Trainer(optimizer="sgd", loss="mse", learning_rate=1.0, epochs=1, batch_size=1, clip_grad_norm=clip).fit(
            model, (x, y)
        )
        after = torch.cat([p.detach().flatten() for p in model.parameters()])
        step = (after - before).norm().item()
        if bounded:
            assert step == pytest.approx(0.5, rel=1e-5)  # SGD with lr 1: the step is the clipped gradient
        else:
            assert step > 1e4


def test_weight_decay_is_decoupled_and_applied_before_the_step():
    model = nn.Linear(1, 1, bias=False)
    with torch.no_grad():
        model.weight.fill_(2.0)
    x, y = torch.tensor([[1.0]]), torch.tensor([[0.0]])
    Trainer(optimizer="sgd", loss="mse", learning_rate=0.1, weight_decay=0.5, epochs=1, batch_size=1).fit(model, (x, y))
    # gradient of (w·1 − 0)² at w=2 is 4; decay first: 2·(1 − 0.1·0.5) = 1.9; then 1.9 − 0.1·4 = 1.5
    assert model.weight.item() == pytest.approx(1.5, abs=1e-6)


class Regularised(nn.Module):
    def __init__(self):
        super().__init__()
        self.w = nn.Parameter(torch.tensor([3.0]))

    def forward(self, x):
        return x * self.w

    def regularization_loss(self):
        return 0.1 * (self.w**2).sum()


def test_regularization_loss_is_added_to_the_objective():
    model = Regularised()
    x, y = torch.zeros(4, 1), torch.zeros(4, 1)  # data loss 0 and no data gradient
    history = Trainer(optimizer="sgd", learning_rate=0.5, epochs=1, batch_size=4).fit(model, (x, y))
    assert history["loss"][0] == pytest.approx(0.9)  # 0.1·3²
    assert model.w.item() == pytest.approx(3.0 - 0.5 * 0.2 * 3.0)  # w − lr·d(0.1w²)/dw


def test_non_finite_loss_is_a_clear_error():
    x, y = torch.full((4, 1), 1e30), torch.zeros(4, 1)  # finite data, a squared error beyond float32: inf
    with pytest.raises(RnnkitError, match="training loss became inf in epoch 1"):
        Trainer(epochs=1, loss="mse").fit(nn.Linear(1, 1), (x, y))


@pytest.mark.parametrize("split", ["train", "validation"])
def test_nan_in_the_data_names_the_split_and_first_window(split):
    x, y = torch.zeros(10, 4, 2), torch.zeros(10, 1)
    bad = x.clone()
    bad[6, 2, 1] = float("nan")
    bad[8, 0, 0] = float("inf")
    train, val = ((bad, y), (x, y)) if split == "train" else ((x, y), (bad, y))
    with pytest.raises(
        RnnkitError, match=f"^{split} inputs hold NaN or inf: first in window 6 \\(step 2, feature 1\\)"
    ):
        Trainer(epochs=1).fit(nn.Sequential(nn.Flatten(), nn.Linear(8, 1)), train, val)


def test_nan_in_windows_data_found_through_the_rows_check():
    # Windows are checked row by row (each row once); a NaN put into their rows after they were made
    # is still reported with the first window that holds it, and one that no window reads is not an error
    from rnnkit.data import make_windows

    w = make_windows(np.arange(40.0, dtype=np.float32).reshape(20, 2), 4, horizon=1, targets=0)
    w.data[19, 1] = float("nan")  # column 1 of the last row: an input of no window, nor any target
    Trainer(epochs=1).fit(nn.Sequential(nn.Flatten(), nn.Linear(8, 1)), w)
    w.data[9, 1] = float("nan")  # in windows 6 to 9 (steps 3 to 0)
    with pytest.raises(RnnkitError, match=r"^train inputs hold NaN or inf: first in window 6 \(step 3, feature 1\)"):
        Trainer(epochs=1).fit(nn.Sequential(nn.Flatten(), nn.Linear(8, 1)), w)


def test_check_finite_false_trains_on_nan_as_asked():
    x, y = torch.zeros(8, 2), torch.zeros(8, 1)
    val_x = x.clone()
    val_x[0, 0] = float("nan")
    history = Trainer(epochs=2, check_finite=False).fit(nn.Linear(2, 1), (x, y), (val_x, y))
    assert len(history) == 2 and all(math.isnan(v) for v in history["val_loss"])


# --- data forms ----------------------------------------------------------------------------------
class IndexedData:
    def __init__(self, x, y):
        self.x, self.y = x, y

    def __len__(self):
        return self.x.shape[0]

    def batch(self, indices):
        return self.x[indices], self.y[indices]


def test_indexable_data_trains_exactly_like_tensors():
    x, y = linear_data()
    a, b = mlp(), mlp()
    Trainer(epochs=2, batch_size=10, seed=1).fit(a, (x, y))
    Trainer(epochs=2, batch_size=10, seed=1).fit(b, IndexedData(x, y))
    assert_same_weights(weights(a), weights(b))


class StatefulProbe(nn.Module):
    """Records reset_states calls and the first input value of each batch it sees."""

    def __init__(self):
        super().__init__()
        self.lin = nn.Linear(1, 1)
        self.resets = 0
        self.seen: list[tuple[float, int]] = []

    def forward(self, x):
        self.seen.append((x[0, 0].item(), x.shape[0]))
        return self.lin(x)

    def reset_states(self):
        self.resets += 1
        self.seen.append(("reset", 0))


def test_stateful_training_keeps_order_constant_batches_and_resets_each_epoch():
    x = torch.arange(10.0)[:, None]
    y = torch.zeros(10, 1)
    model = StatefulProbe()
    Trainer(stateful=True, batch_size=4, epochs=2).fit(model, (x, y), (x[:8], y[:8]))
    epoch = [("reset", 0), (0.0, 4), (4.0, 4), ("reset", 0), (0.0, 4), (4.0, 4)]  # row 8, 9 dropped; then val
    assert model.seen == epoch + epoch
    assert model.resets == 4


def test_stateful_training_takes_an_ordered_batch_sequence():
    batches = [(torch.full((2, 1), float(k)), torch.zeros(2, 1)) for k in range(3)]
    model = StatefulProbe()
    Trainer(stateful=True, epochs=2).fit(model, batches)
    assert model.seen == [("reset", 0), (0.0, 2), (1.0, 2), (2.0, 2)] * 2


def test_one_shot_iterator_is_refused():
    gen = ((torch.zeros(2, 1), torch.zeros(2, 1)) for _ in range(2))
    with pytest.raises(ValueError, match="train must be re-iterable"):
        Trainer(stateful=True).fit(nn.Linear(1, 1), gen)


def test_shuffling_a_batch_sequence_is_refused():
    with pytest.raises(ValueError, match="shuffle must be False for train given as a sequence of batches"):
        Trainer(shuffle=True).fit(nn.Linear(1, 1), [(torch.zeros(2, 1), torch.zeros(2, 1))])


def test_stateful_needs_a_full_batch():
    with pytest.raises(RnnkitError, match="stateful training needs at least batch_size=32 examples, got 10"):
        Trainer(stateful=True).fit(nn.Linear(1, 1), (torch.zeros(10, 1), torch.zeros(10, 1)))


def test_wrong_target_shape_names_both_shapes():
    with pytest.raises(RnnkitError, match=r"model output shape \(4, 1\) does not fit target shape \(4, 2\)"):
        Trainer(epochs=1).fit(nn.Linear(3, 1), (torch.zeros(4, 3), torch.zeros(4, 2)))


# --- evaluate and predict -----------------------------------------------------------------------------
def test_evaluate_gives_hand_computed_values():
    pred = torch.tensor([[1.0], [2.0], [4.0]])
    truth = torch.tensor([[1.0], [0.0], [0.0]])
    result = Trainer(loss="mse", batch_size=2).evaluate(nn.Identity(), (pred, truth))
    assert result["loss"] == pytest.approx((0 + 4 + 16) / 3)
    assert result["mae"] == pytest.approx(2.0)
    assert result["rmse"] == pytest.approx(math.sqrt(20 / 3))


def test_predict_matches_the_model_in_batches():
    torch.manual_seed(0)
    model = nn.Linear(3, 2)
    x = torch.randn(11, 3)
    out = Trainer().predict(model, x, batch_size=4)
    assert torch.allclose(out, model(x).detach(), atol=1e-6)


# --- progress bar ---------------------------------------------------------------------------------------
class TTY(io.StringIO):
    def isatty(self):
        return True


def test_progress_is_a_bar_on_a_terminal_a_line_per_epoch_elsewhere_and_nothing_when_off():
    data = (torch.zeros(8, 1), torch.zeros(8, 1))
    shown = {}
    for name, stream, progress in (
        ("tty", TTY(), None),
        ("log", io.StringIO(), None),
        ("off", TTY(), False),
        ("forced", io.StringIO(), True),
    ):
        Trainer(epochs=3, progress=progress, progress_stream=stream).fit(nn.Linear(1, 1), data, data)
        shown[name] = stream.getvalue()
    assert shown["off"] == ""
    # a log: exactly one line per epoch, no bar (no carriage returns), loss, val_loss, time and the ETA
    lines = shown["log"].splitlines()
    assert len(lines) == 3 and "\r" not in shown["log"]
    assert [line.split(":")[0] for line in lines] == ["epoch 1/3", "epoch 2/3", "epoch 3/3"]
    assert all(
        re.fullmatch(r"epoch \d/3: loss [-\d.e+]+, val_loss [-\d.e+]+; \d+\.\d s(, ETA \d+ s)?", line) for line in lines
    ), lines
    assert "ETA" in lines[0] and "ETA" in lines[1] and "ETA" not in lines[2]  # nothing left after the last
    # a terminal (or forced): tqdm's bar over the batches ("\r" redraws), then the same epoch lines
    for name in ("tty", "forced"):
        assert "\r" in shown[name] and "it/s" in shown[name]
        assert [line for line in shown[name].replace("\r", "\n").splitlines() if line.startswith("epoch 3/3:")]


def test_describe_epoch_adds_the_tasks_reading_and_hooks_see_every_epoch():
    from rnnkit.training.hooks import Hook

    class Count(Hook):
        def __init__(self):
            self.events = []

        def on_fit_start(self, loop):
            self.events.append(("start", loop.epochs))

        def on_epoch_end(self, loop, record):
            self.events.append(("epoch", loop.epoch, record["epoch"]))

        def on_fit_end(self, loop):
            self.events.append(("end", loop.epoch))

    stream, count = io.StringIO(), Count()
    x, y = torch.ones(8, 1), torch.full((8, 1), 2.0)
    history = Trainer(
        loss="mae",
        epochs=2,
        progress=None,
        progress_stream=stream,
        hooks=[count],
        describe_epoch=lambda r: f"val MAE {r['val_loss'] * 10:.3f} degC",
    ).fit(nn.Linear(1, 1), (x, y), (x, y))
    lines = stream.getvalue().splitlines()
    for line, record in zip(lines, history.epochs, strict=True):
        assert f", val MAE {record['val_loss'] * 10:.3f} degC; " in line
    assert count.events == [("start", 2), ("epoch", 1, 1), ("epoch", 2, 2), ("end", 2)]


def test_epoch_line_reads_the_record_and_the_eta():
    from rnnkit.training.hooks import Loop, duration, epoch_line

    loop = Loop(None, None, None, epochs=10, epoch=4)
    line = epoch_line(
        loop,
        {"loss": 0.123456, "val_loss": 0.5, "seconds": 30.0},
        lambda r: "val MAE 4.2 degC",
        seconds=[30.0, 30.0, 30.0, 30.0],
    )
    assert line == "epoch 4/10: loss 0.1235, val_loss 0.5, val MAE 4.2 degC; 30.0 s, ETA 3 min 00 s"
    assert duration(59.4) == "59 s" and duration(3600) == "1 h 00 min"


def test_hooks_must_be_hooks():
    with pytest.raises(ValueError, match=r"hooks must be rnnkit.training.hooks.Hook objects, got \['int'\]"):
        Trainer(hooks=[3])


# --- invalid arguments: one test each --------------------------------------------------------------------
@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"optimizer": "adagrad"}, "optimizer must be one of adam, rmsprop, sgd, got 'adagrad'"),
        ({"learning_rate": 0}, "learning_rate must be a finite number > 0, got 0"),
        ({"learning_rate": float("nan")}, "learning_rate must be a finite number > 0, got nan"),
        ({"weight_decay": -0.1}, "weight_decay must be a finite number >= 0, got -0.1"),
        ({"loss": "hinge"}, "loss must be one of mse, mae, huber, cross_entropy, pinball, got 'hinge'"),
        ({"batch_size": 0}, "batch_size must be a positive integer, got 0"),
        ({"batch_size": 2.5}, "batch_size must be a positive integer, got 2.5"),
        ({"epochs": 0}, "epochs must be a positive integer, got 0"),
        ({"shuffle": "yes"}, "shuffle must be True, False or None, got 'yes'"),
        ({"stateful": 1}, "stateful must be True or False, got 1"),
        ({"stateful": True, "shuffle": True}, "shuffle must be False or None when stateful=True"),
        ({"clip_grad_norm": 0.0}, "clip_grad_norm must be None or a finite number > 0, got 0.0"),
        ({"early_stopping_patience": 0}, "early_stopping_patience must be a positive integer, got 0"),
        ({"lr_plateau_patience": -1}, "lr_plateau_patience must be a positive integer, got -1"),
        ({"lr_factor": 1.0}, r"lr_factor must be in \(0, 1\), got 1.0"),
        ({"seed": -1}, "seed must be an integer >= 0, got -1"),
        ({"progress": "auto"}, "progress must be True, False or None \\(auto\\), got 'auto'"),
        ({"restore_best": None}, "restore_best must be True or False, got None"),
    ],
)
def test_invalid_trainer_argument_is_named(kwargs, message):
    with pytest.raises(ValueError, match=message):
        Trainer(**kwargs)


def test_invalid_train_data_is_named():
    with pytest.raises(ValueError, match="train must be a pair of tensors"):
        Trainer().fit(nn.Linear(1, 1), 42)


def test_model_without_parameters_cannot_be_fit():
    with pytest.raises(RnnkitError, match="Identity has no trainable parameters to fit"):
        Trainer().fit(nn.Identity(), (torch.zeros(4, 1), torch.zeros(4, 1)))


def test_a_lazily_built_model_is_built_before_the_optimizer_sees_it():
    import rnnkit as rk

    model = rk.Sequential(rk.layers.GRU(4), rk.layers.Dense(1))  # no input_shape: no weights yet
    torch.manual_seed(0)  # the trainer seeds with 0, then builds: the same initial weights as here
    initial = rk.Sequential(rk.layers.GRU(4), rk.layers.Dense(1), input_shape=(5, 3))
    x, y = torch.randn(32, 5, 3), torch.randn(32, 1)
    Trainer(epochs=1, batch_size=8, learning_rate=0.1, seed=0).fit(model, (x, y))
    assert model.built
    # Every weight was trained, the recurrent ones included (not only those the first call would make).
    for (name, start), trained in zip(initial.named_parameters(), model.parameters()):
        assert start.shape == trained.shape and not torch.equal(start, trained), name


def test_a_model_that_cannot_build_itself_is_refused():
    import rnnkit as rk

    class Wrapper(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.inner = rk.layers.GRU(4)

        def forward(self, x):
            return self.inner(x)[:, :1]

    with pytest.raises(RnnkitError, match=r"layers without weights yet \(GRU\)"):
        Trainer(epochs=1).fit(Wrapper(), (torch.randn(8, 5, 3), torch.randn(8, 1)))


def test_one_settings_object_one_set_of_defaults():
    import inspect

    from rnnkit.config import ExperimentConfig
    from rnnkit.training.settings import TrainingConfig

    assert ExperimentConfig.model_fields["training"].annotation is TrainingConfig  # the config's [training]
    signature = inspect.signature(Trainer.__init__).parameters
    for name, field in TrainingConfig.model_fields.items():
        assert signature[name].default == field.default, name  # every setting is a Trainer argument, same default
    trainer = Trainer.from_config(TrainingConfig(loss="huber", epochs=3), progress=False)
    assert (trainer.loss, trainer.epochs, trainer.shuffle, trainer.progress) == ("huber", 3, True, False)
    assert (Trainer().loss, Trainer().epochs) == ("mae", 20)


def test_a_long_epoch_prints_a_line_every_interval_off_a_terminal_and_none_on_one():
    from rnnkit.training.hooks import Hook

    class Slow(Hook):  # each batch takes >= 30 ms: with a 0.1 s interval, a line every 4th batch or so
        def wrap_batches(self, batches, loop):
            for batch in batches:
                time.sleep(0.03)
                yield batch

    x, y = torch.ones(40, 1), torch.full((40, 1), 2.0)
    log, tty = io.StringIO(), TTY()
    history = Trainer(
        loss="mae", epochs=2, batch_size=2, progress_stream=log, progress_interval=0.1, hooks=[Slow()]
    ).fit(nn.Linear(1, 1), (x, y), (x, y))
    lines = log.getvalue().splitlines()
    within = [line for line in lines if ": batch " in line]
    pattern = r"epoch (\d)/2: batch (\d+)/20 \((\d+)%\), loss ([\d.]+) so far; \d+ s, epoch ETA \d+ s"
    matches = [re.fullmatch(pattern, line) for line in within]
    assert all(matches), within
    # each epoch: 20 batches x >= 30 ms = >= 0.6 s, so at least 3 lines, at most one per 0.1 s (no flood)
    for epoch in (1, 2):
        done = [int(m[2]) for m in matches if m[1] == str(epoch)]
        assert 3 <= len(done) <= 7 and done == sorted(done) and all(0 < k < 20 for k in done), done
        assert all(int(m[3]) == 100 * int(m[2]) // 20 for m in matches)
    # the epoch line still follows each epoch's batch lines; the running loss is the epoch's mean so far
    # (the learning rate barely moves the weights in 20 steps: it stays near the epoch's mean)
    assert [line.split(":")[0] for line in lines if ": loss " in line] == ["epoch 1/2", "epoch 2/2"]
    assert lines.index(next(line for line in lines if line.startswith("epoch 1/2: loss"))) > lines.index(within[0])
    assert abs(float(matches[-1][4]) - history.epochs[-1]["loss"]) < 0.5
    # on a terminal: the bar, no batch lines
    Trainer(loss="mae", epochs=1, batch_size=2, progress_stream=tty, progress_interval=0.1, hooks=[Slow()]).fit(
        nn.Linear(1, 1), (x, y)
    )
    assert ": batch " not in tty.getvalue() and "\r" in tty.getvalue()


@pytest.mark.parametrize("interval", [0, -1.0, float("inf"), "10", True])
def test_progress_interval_must_be_a_positive_number(interval):
    with pytest.raises(ValueError, match=r"progress_interval must be a finite number of seconds > 0, got "):
        Trainer(progress_interval=interval)
