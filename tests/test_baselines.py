"""Baselines are models: hand-computed persistence values, closed-form linear fit, residual wrapper."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from rnnkit.baselines import LinearBaseline, MeanBaseline, Persistence, ResidualTarget, SeasonalPersistence, naive_dense
from rnnkit.errors import RnnkitError
from rnnkit.training import Trainer
from rnnkit.training.metrics import score


def toy_windows(length: int = 6):
    """Series value = 10·row + column (2 columns); windows of `length` rows starting at rows 0, 1, 2."""
    rows = torch.arange(10.0)[:, None] * 10 + torch.tensor([0.0, 1.0])  # (10, 2)
    return torch.stack([rows[s : s + length] for s in range(3)])  # (3, length, 2)


def test_persistence_is_the_last_row_of_the_target_column():
    x = toy_windows()
    # window s ends at row s + 5; column 1 holds 10·row + 1
    assert Persistence(1)(x).flatten().tolist() == [51.0, 61.0, 71.0]
    assert Persistence([0, 1])(x).tolist() == [[50.0, 51.0], [60.0, 61.0], [70.0, 71.0]]


def test_seasonal_persistence_reads_the_row_one_period_before_the_target():
    x = toy_windows()
    # period 4, horizon 1: target row s + 6, one period earlier s + 2 = window row 2 = T − 1 − 3
    assert SeasonalPersistence(0, period=4, horizon=1)(x).flatten().tolist() == [20.0, 30.0, 40.0]
    # period 6, horizon 1: row s + 0, the first row of the window
    assert SeasonalPersistence(1, period=6, horizon=1)(x).flatten().tolist() == [1.0, 11.0, 21.0]
    # period = horizon: the last input row, i.e. persistence
    assert torch.equal(SeasonalPersistence(0, period=3, horizon=3)(x), Persistence(0)(x))


def test_seasonal_persistence_needs_the_row_inside_the_window():
    with pytest.raises(RnnkitError, match="needs windows of at least 7 rows \\(period 7, horizon 1\\), got 6"):
        SeasonalPersistence(0, period=7, horizon=1)(toy_windows())


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"target_index": 0, "period": 0}, "period must be a positive integer, got 0"),
        ({"target_index": 0, "period": 4, "horizon": 0}, "horizon must be a positive integer, got 0"),
        ({"target_index": 0, "period": 2, "horizon": 3}, "period must be >= horizon .* got period=2, horizon=3"),
        ({"target_index": -1, "period": 2}, "target_index must be an integer >= 0 or a non-empty list of them, got -1"),
    ],
)
def test_invalid_seasonal_persistence_argument_is_named(kwargs, message):
    with pytest.raises(ValueError, match=message):
        SeasonalPersistence(**kwargs)


def test_target_index_out_of_range_is_named():
    with pytest.raises(RnnkitError, match="target_index 5 is out of range for 2 features"):
        Persistence(5)(toy_windows())


def test_mean_baseline_predicts_the_training_mean():
    y = torch.tensor([[1.0], [2.0], [6.0]])
    mean = MeanBaseline.fit(y)
    assert mean(toy_windows()).flatten().tolist() == [3.0, 3.0, 3.0]
    assert MeanBaseline.fit((toy_windows(), y)).value.tolist() == [3.0]


def test_mean_baseline_value_must_be_finite():
    with pytest.raises(ValueError, match="value must be finite numbers, got nan"):
        MeanBaseline(float("nan"))


def test_linear_baseline_matches_numpy_least_squares():
    g = torch.Generator().manual_seed(0)
    x = torch.randn(200, 4, 3, generator=g)
    true_w = torch.randn(12, 1, generator=g)
    y = x.reshape(200, 12) @ true_w + 0.5 + 0.01 * torch.randn(200, 1, generator=g)
    lin = LinearBaseline(4, 3).fit((x, y), batch_size=64)  # several batches accumulate the normal equations
    a = np.hstack([x.reshape(200, 12).double().numpy(), np.ones((200, 1))])
    ref, *_ = np.linalg.lstsq(a, y.double().numpy(), rcond=None)
    assert np.allclose(lin.linear.weight.detach().double().numpy().T, ref[:-1], atol=1e-5)
    assert lin.linear.bias.item() == pytest.approx(ref[-1, 0], abs=1e-5)
    with torch.no_grad():
        assert torch.allclose(lin(x), torch.from_numpy(a @ ref).float(), atol=1e-4)


def test_linear_baseline_ridge_is_the_closed_form_without_penalising_the_bias():
    g = torch.Generator().manual_seed(1)
    x = torch.randn(50, 2, 2, generator=g)
    y = torch.randn(50, 1, generator=g)
    lin = LinearBaseline(2, 2, ridge=3.0).fit((x, y))
    a = np.hstack([x.reshape(50, 4).double().numpy(), np.ones((50, 1))])
    penalty = np.diag([3.0] * 4 + [0.0])
    ref = np.linalg.solve(a.T @ a + penalty, a.T @ y.double().numpy())
    assert np.allclose(lin.linear.weight.detach().numpy().T, ref[:-1], atol=1e-5)


def test_linear_baseline_without_ridge_on_fewer_windows_than_weights_is_the_minimum_norm_fit():
    """XᵀX is singular there: Cholesky fails and least squares gives numpy's minimum-norm answer."""
    g = torch.Generator().manual_seed(2)
    x = torch.randn(5, 4, 3, generator=g)  # 5 windows, 13 weights
    y = torch.randn(5, 1, generator=g)
    lin = LinearBaseline(4, 3).fit((x, y))
    a = np.hstack([x.reshape(5, 12).double().numpy(), np.ones((5, 1))])
    ref, *_ = np.linalg.lstsq(a, y.double().numpy(), rcond=None)
    assert np.allclose(lin.linear.weight.detach().double().numpy().T, ref[:-1], atol=1e-4)
    with torch.no_grad():
        assert torch.allclose(lin(x), y, atol=1e-4)  # it interpolates the 5 windows


@pytest.mark.parametrize("rate,segments,steps", [(1, 1, 1), (2, 1, 3), (3, 3, 1)])
def test_linear_baseline_on_overlapping_windows_sums_lagged_rows_exactly(rate, segments, steps):
    # Windows of shift 1 take AᵀA from the rows' lagged products, not from every flattened window:
    # the same sums to float64 rounding, and the same fit as from the windows as tensors
    from rnnkit.baselines import _windows_moments
    from rnnkit.data import make_windows

    rng = np.random.default_rng(rate)
    parts = [rng.normal(size=(300 + 17 * k, 4)).astype(np.float32) for k in range(segments)]
    w = make_windows(
        parts if segments > 1 else parts[0], 12, sampling_rate=rate, horizon=5, targets=1, target_length=steps
    )
    gram, xty, n = _windows_moments(w, 12, 4, steps)
    a = torch.cat([w.x.reshape(len(w), -1).double(), torch.ones(len(w), 1, dtype=torch.float64)], 1)
    y = w.y.reshape(len(w), -1).double()
    assert n == len(w) and gram.shape == (49, 49)
    torch.testing.assert_close(gram, a.T @ a, rtol=1e-12, atol=1e-10)
    torch.testing.assert_close(xty, a.T @ y, rtol=1e-12, atol=1e-10)
    fast = LinearBaseline(12, 4, outputs=steps, ridge=1e-3).fit(w)
    slow = LinearBaseline(12, 4, outputs=steps, ridge=1e-3).fit((w.x, w.y.reshape(len(w), -1)))
    torch.testing.assert_close(fast.linear.weight, slow.linear.weight, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(fast.linear.bias, slow.linear.bias, rtol=1e-5, atol=1e-6)


def test_linear_baseline_on_windows_of_another_shift_sums_batches():
    from rnnkit.baselines import _windows_moments
    from rnnkit.data import make_windows

    w = make_windows(np.random.default_rng(0).normal(size=(400, 2)).astype(np.float32), 10, shift=10, targets=0)
    assert _windows_moments(w, 10, 2, 1) is None  # starts 10 rows apart share no rows
    lin = LinearBaseline(10, 2).fit(w)
    ref = LinearBaseline(10, 2).fit((w.x, w.y))
    torch.testing.assert_close(lin.linear.weight, ref.linear.weight, rtol=0, atol=0)


def test_linear_baseline_checks_the_window_shape_and_arguments():
    with pytest.raises(RnnkitError, match=r"expects windows \(batch, 4, 3\), got \(5, 4, 2\)"):
        LinearBaseline(4, 3).fit((torch.zeros(5, 4, 2), torch.zeros(5, 1)))
    with pytest.raises(ValueError, match="ridge must be a number >= 0, got -1"):
        LinearBaseline(4, 3, ridge=-1)
    with pytest.raises(ValueError, match="sequence_length must be a positive integer, got 0"):
        LinearBaseline(0, 3)


def test_naive_dense_is_flatten_dense12_relu_dense1():
    model = naive_dense(240, 14)
    assert sum(p.numel() for p in model.parameters()) == 240 * 14 * 12 + 12 + 12 + 1
    torch.manual_seed(0)
    small = naive_dense(3, 2, units=4)
    x = torch.randn(5, 3, 2)
    w1, b1, w2, b2 = small[1].weight, small[1].bias, small[3].weight, small[3].bias
    expected = torch.relu(x.reshape(5, 6) @ w1.T + b1) @ w2.T + b2
    assert torch.allclose(small(x), expected)


def test_naive_dense_argument_is_named():
    with pytest.raises(ValueError, match="units must be a positive integer, got 0"):
        naive_dense(3, 2, units=0)


class Constant(nn.Module):
    def __init__(self, value):
        super().__init__()
        self.value = value
        self.resets = 0

    def forward(self, x):
        return torch.full((x.shape[0], 1), self.value)

    def regularization_loss(self):
        return torch.tensor(0.25)

    def reset_states(self):
        self.resets += 1


def test_residual_target_adds_the_last_value_and_passes_through():
    inner = Constant(0.5)
    model = ResidualTarget(inner, target_index=1)
    assert model(toy_windows()).flatten().tolist() == [51.5, 61.5, 71.5]
    assert model.regularization_loss().item() == 0.25
    model.reset_states()
    assert inner.resets == 1


def test_residual_target_learns_a_change_the_trainer_can_fit():
    # Target = last value + 1: the inner linear model must learn only the constant change.
    g = torch.Generator().manual_seed(0)
    x = torch.randn(64, 3, 1, generator=g)
    y = x[:, -1] + 1.0
    torch.manual_seed(0)
    model = ResidualTarget(nn.Sequential(nn.Flatten(), nn.Linear(3, 1)), target_index=0)
    Trainer(optimizer="sgd", loss="mse", learning_rate=0.1, epochs=40, batch_size=16).fit(model, (x, y))
    assert score(model, (x, y))["mae"] < 0.01


def test_baselines_are_scored_by_the_same_code():
    x = toy_windows()
    y = torch.tensor([[62.0], [70.0], [85.0]])  # column 1 at target rows, perturbed
    pers = score(Persistence(1), (x, y), persistence=Persistence(1))
    # |62 − 51|, |70 − 61|, |85 − 71| = 11, 9, 14
    assert pers["mae"] == pytest.approx(34 / 3)
    mean = score(MeanBaseline(72.0), (x, y), persistence=Persistence(1))
    # |62 − 72|, |70 − 72|, |85 − 72| = 10, 2, 13 → MAE 25/3, skill 1 − 25/34
    assert mean["skill"] == pytest.approx(1 - 25 / 34)
