"""Baselines are models: ``nn.Module`` s from windows to predictions, scored like any model.

Every baseline takes the window ``x`` of shape ``(batch, time, features)`` in scaled units
and returns ``(batch, outputs)`` in the units of the trained models' targets (a multi-step
forecast ``(batch, K, 1)``, a per-step one ``(batch, T, targets)``), so that the same metric
code (:func:`rnnkit.training.metrics.score`) scores all of them. The residual targets
(:class:`ResidualTarget` and its multi-step and per-step versions) wrap a model to learn the
change from the last input. The
persistence baselines assume, like the residual target, that the target column is scaled
with the same statistics as the input feature it is read from (the target *is* that
feature, later in time).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
from torch import nn

from rnnkit.data.windows import Windows
from rnnkit.errors import RnnkitError, check_positive_int
from rnnkit.models.wrapper import Wrapper
from rnnkit.training.batches import as_data, iter_batches

__all__ = [
    "LinearBaseline",
    "MajorityClass",
    "MeanBaseline",
    "MeanDailyCurve",
    "MultiStepResidualTarget",
    "Persistence",
    "RepeatLastDay",
    "RepeatLastPeriod",
    "ResidualTarget",
    "SameAsNow",
    "SeasonalPersistence",
    "StepMean",
    "StepPersistence",
    "StepResidualTarget",
    "naive_dense",
]


def _target_indices(target_index: int | Sequence[int]) -> list[int]:
    indices = [target_index] if isinstance(target_index, int) and not isinstance(target_index, bool) else target_index
    if (
        not isinstance(indices, (list, tuple))
        or not indices
        or not all(isinstance(i, int) and not isinstance(i, bool) and i >= 0 for i in indices)
    ):
        raise RnnkitError(f"target_index must be an integer >= 0 or a non-empty list of them, got {target_index!r}")
    return list(indices)


def _check_window(x: torch.Tensor, indices: list[int], name: str) -> None:
    if x.dim() != 3:
        raise RnnkitError(f"{name} needs windows (batch, time, features), got shape {tuple(x.shape)}")
    if max(indices) >= x.shape[-1]:
        raise RnnkitError(f"{name} target_index {max(indices)} is out of range for {x.shape[-1]} features")


class Persistence(nn.Module):
    """Predict the last input value of the target column: ``ŷ = x[:, T − 1, target_index]``.

    Args:
        target_index: the column (or columns) of the window holding the target variable.

    Shapes: ``x (batch, T, features)`` → ``(batch, len(target_index))``.

    Example:
        >>> Persistence(0)(torch.tensor([[[1.0], [2.0], [3.0]]]))
        tensor([[3.]])
    """

    def __init__(self, target_index: int | Sequence[int]) -> None:
        super().__init__()
        self.target_index = _target_indices(target_index)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        _check_window(x, self.target_index, "Persistence")
        return x[:, -1, self.target_index]

    def get_config(self) -> dict[str, Any]:
        return {"target_index": self.target_index}


class SeasonalPersistence(nn.Module):
    """Predict the target's value one season (``period`` rows) before the target time.

    Counted in the window's rows (data rows divided by the sampling rate): the target lies
    ``horizon`` rows after the last input row ``T − 1``, i.e. at row ``T − 1 + horizon``;
    one period earlier is row ``T − 1 + horizon − period``, so

        ŷ = x[:, T − 1 − (period − horizon), target_index]

    which needs ``period >= horizon`` (the row is not after the window) and
    ``period − horizon <= T − 1`` (the row is inside the window). Example, hourly rows and
    "same time the day before": ``period=24``; with ``horizon=1`` the prediction is row
    ``T − 24``; with ``horizon=24`` it is row ``T − 1``, plain persistence.

    Args:
        target_index: the target column (or columns) of the window.
        period: rows per season at the window's sampling (>= 1).
        horizon: rows from the last input row to the target (>= 1, <= period).

    Shapes: ``x (batch, T, features)`` → ``(batch, len(target_index))``.

    Example:
        >>> x = torch.arange(6.0).reshape(1, 6, 1)  # rows 0..5
        >>> SeasonalPersistence(0, period=4, horizon=1)(x)  # row 5 − 3 = 2
        tensor([[2.]])
    """

    def __init__(self, target_index: int | Sequence[int], period: int, horizon: int = 1) -> None:
        super().__init__()
        self.target_index = _target_indices(target_index)
        check_positive_int("period", period)
        check_positive_int("horizon", horizon)
        if period < horizon:
            raise RnnkitError(
                f"period must be >= horizon (the row one period before the target must not lie after the window), "
                f"got period={period}, horizon={horizon}"
            )
        self.period, self.horizon = period, horizon

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        _check_window(x, self.target_index, "SeasonalPersistence")
        back = self.period - self.horizon  # rows before the last input row
        if back > x.shape[1] - 1:
            raise RnnkitError(
                f"SeasonalPersistence needs windows of at least {back + 1} rows "
                f"(period {self.period}, horizon {self.horizon}), got {x.shape[1]}"
            )
        return x[:, x.shape[1] - 1 - back, self.target_index]

    def get_config(self) -> dict[str, Any]:
        return {"target_index": self.target_index, "period": self.period, "horizon": self.horizon}


class MeanBaseline(nn.Module):
    """Predict a constant, the training targets' mean: ``ŷ = value`` for every window.

    Args:
        value: a number or a 1-D tensor (one value per output).

    Example:
        >>> MeanBaseline.fit(torch.tensor([[1.0], [3.0]]))(torch.zeros(2, 5, 3))
        tensor([[2.],
                [2.]])
    """

    value: torch.Tensor  # buffer (outputs,)

    def __init__(self, value: float | torch.Tensor) -> None:
        super().__init__()
        v = torch.as_tensor(value, dtype=torch.float32).reshape(-1)
        if v.numel() == 0 or not torch.isfinite(v).all():
            raise RnnkitError(f"value must be finite numbers, got {value!r}")
        self.register_buffer("value", v)

    @classmethod
    def fit(cls, y: Any) -> MeanBaseline:
        """The mean of training targets ``y`` (a tensor ``(n, outputs)`` or ``(n,)``, or any data form)."""
        if not isinstance(y, torch.Tensor):
            y = torch.cat([t for _, t in iter_batches(as_data(y), 4096)])
        if y.numel() == 0:
            raise RnnkitError("MeanBaseline.fit needs at least one target, got none")
        return cls(y.reshape(y.shape[0], -1).double().mean(0).float())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.value.to(x.dtype).expand(x.shape[0], -1)

    def get_config(self) -> dict[str, Any]:
        return {"value": self.value.tolist()}


def _solve_normal_equations(matrix: torch.Tensor, rhs: torch.Tensor) -> torch.Tensor:
    """w with matrix · w = rhs, matrix = XᵀX + penalty (symmetric, float64).

    Cholesky where the matrix is positive definite (any ridge > 0 makes it so): on the demo's
    2,281 × 2,281 system 0.3 s against SVD-based least squares' 6.6 s. Where it is singular (fewer
    windows than weights, constant columns, no ridge) least squares (gelsd) gives the minimum-norm
    solution.
    """
    factor, info = torch.linalg.cholesky_ex(matrix)
    if int(info) == 0:
        w = torch.cholesky_solve(rhs, factor)
        if bool(torch.isfinite(w).all()):
            return w
    return torch.linalg.lstsq(matrix, rhs, driver="gelsd").solution


def _windows_moments(
    data: Any, sequence_length: int, features: int, outputs: int, most_runs: int = 16
) -> tuple[torch.Tensor, torch.Tensor, int] | None:
    """AᵀA and Aᵀy (float64) of the windows of ``data`` flattened with a column of ones (A), and their count.

    For :class:`rnnkit.data.Windows` whose starts form a few runs of consecutive rows (shift 1),
    else None (the caller sums them batch by batch). Windows that start on consecutive rows share
    their rows: block (i, j) of XᵀX (input steps i and j, F × F) sums x[u]ᵀ x[u + (j − i)·r] over
    the rows u = s + i·r of the window starts s, so the blocks of one lag are sums over ranges of
    rows that slide by r rows from one step to the next. Each lag costs one (F × N) · (N × F)
    product and the rows that enter and leave the range: on the demo's 34,903 windows of 120 × 19
    about 3 GFLOP, against 363 for XᵀX over the flattened windows (11 s on one thread here).
    """
    # fewer windows than about two lengths: the rows entering and leaving cost more than the windows
    if not isinstance(data, Windows) or data.return_sequences or len(data) < 2 * sequence_length:
        return None
    T, F, r = sequence_length, features, data.sampling_rate
    if data.sequence_length != T or data.data.shape[1] != F:
        return None
    starts = data.start_rows
    breaks = torch.nonzero(torch.diff(starts) != 1).flatten() + 1
    if len(breaks) >= most_runs:
        return None
    y = data.y.reshape(len(data), -1).double()
    if y.shape[1] != outputs:
        return None
    rows = data.data.double()
    gram = torch.zeros(T * F + 1, T * F + 1, dtype=torch.float64)
    xty = torch.zeros(T * F + 1, outputs, dtype=torch.float64)
    blocks = gram[: T * F, : T * F].view(T, F, T, F)

    def moved(top: int, count: int, shift: int) -> torch.Tensor:
        """Cumulative sums of x[u]ᵀ x[u + shift] over the r rows from top + k·r, k < count."""
        u = rows[top : top + count * r].reshape(count, r, F)
        v = rows[top + shift : top + shift + count * r].reshape(count, r, F)
        return torch.einsum("krf,krg->kfg", u, v).cumsum(0)

    edges = [0, *breaks.tolist(), len(starts)]
    for lo, hi in zip(edges[:-1], edges[1:]):
        first, N = int(starts[lo]), hi - lo  # windows starting at rows first … first + N − 1
        for i in range(T):  # step i of every window: rows first + i·r … first + i·r + N − 1
            step = rows[first + i * r : first + i * r + N]
            xty[i * F : (i + 1) * F] += step.T @ y[lo:hi]
            gram[T * F, i * F : (i + 1) * F] += step.sum(0)
        xty[T * F] += y[lo:hi].sum(0)
        for lag in range(T):
            L, shift = T - lag, lag * r  # L blocks (i, i + lag), i = 0 … L − 1
            sums = (rows[first : first + N].T @ rows[first + shift : first + shift + N]).expand(L, F, F).clone()
            if L > 1:  # from block i − 1 to i the range of rows moves down by r: r rows leave, r enter
                sums[1:] += moved(first + N, L - 1, shift) - moved(first, L - 1, shift)
            upper = torch.diagonal(blocks, offset=lag, dim1=0, dim2=2)  # (F, F, L): block (i, i + lag)
            upper += sums.permute(1, 2, 0)
            if lag:
                lower = torch.diagonal(blocks, offset=-lag, dim1=0, dim2=2)  # block (i + lag, i)
                lower += sums.permute(2, 1, 0)
    gram[: T * F, T * F] = gram[T * F, : T * F]
    gram[T * F, T * F] = len(data)
    return gram, xty, len(data)


class LinearBaseline(nn.Module):
    """Linear regression on the flattened window, fit in closed form (least squares or ridge).

    ``ŷ = W · flatten(x) + b``, with ``W`` and ``b`` from the normal equations
    ``(XᵀX + ridge·I) w = Xᵀy`` (the bias is not penalised), accumulated batch by batch in
    float64 so that memory stays O(features²) however many windows there are.

    Args:
        sequence_length: rows per window, T.
        features: columns per row.
        outputs: values per target (default 1).
        ridge: the L2 penalty, >= 0 (default 0: ordinary least squares).

    Shapes: ``x (batch, T, features)`` → ``(batch, outputs)``.

    Example:
        >>> lin = LinearBaseline(24, 14).fit((x_train, y_train))  # doctest: +SKIP
    """

    def __init__(self, sequence_length: int, features: int, outputs: int = 1, ridge: float = 0.0) -> None:
        super().__init__()
        for name, value in (("sequence_length", sequence_length), ("features", features), ("outputs", outputs)):
            check_positive_int(name, value)
        if not isinstance(ridge, (int, float)) or isinstance(ridge, bool) or not ridge >= 0:
            raise RnnkitError(f"ridge must be a number >= 0, got {ridge!r}")
        self.sequence_length, self.features, self.outputs, self.ridge = sequence_length, features, outputs, float(ridge)
        self.linear = nn.Linear(sequence_length * features, outputs)

    def fit(self, data: Any, batch_size: int = 4096) -> LinearBaseline:
        """Fit on ``(x, y)`` tensors, indexable data or batches; returns ``self``."""
        d = self.sequence_length * self.features
        # windows that overlap (shift 1): the sums from the rows' lagged products (rnnkit.data.Windows)
        moments = _windows_moments(data, self.sequence_length, self.features, self.outputs)
        if moments is not None:
            gram, xty, n = moments
        else:
            gram = torch.zeros(d + 1, d + 1, dtype=torch.float64)
            xty = torch.zeros(d + 1, self.outputs, dtype=torch.float64)
            n = 0
            for x, y in iter_batches(as_data(data), batch_size):
                if tuple(x.shape[1:]) != (self.sequence_length, self.features):
                    raise RnnkitError(
                        f"LinearBaseline expects windows (batch, {self.sequence_length}, {self.features}), "
                        f"got {tuple(x.shape)}"
                    )
                # (batch, T·F + 1): the flattened window and a constant column for the bias.
                a = torch.cat([x.reshape(x.shape[0], d).double(), torch.ones(x.shape[0], 1, dtype=torch.float64)], 1)
                gram.addmm_(a.T, a)  # in place: no (d + 1)² temporary per batch
                xty.addmm_(a.T, y.reshape(y.shape[0], -1).double())
                n += x.shape[0]
        if n == 0:
            raise RnnkitError("LinearBaseline.fit needs at least one window, got none")
        penalty = torch.full((d + 1,), self.ridge, dtype=torch.float64)
        penalty[-1] = 0.0
        w = _solve_normal_equations(gram + torch.diag(penalty), xty)  # (T·F + 1, outputs)
        with torch.no_grad():
            self.linear.weight.copy_(w[:-1].T.float())
            self.linear.bias.copy_(w[-1].float())
        return self

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.linear(x.reshape(x.shape[0], -1))

    def get_config(self) -> dict[str, Any]:
        return {
            "sequence_length": self.sequence_length,
            "features": self.features,
            "outputs": self.outputs,
            "ridge": self.ridge,
        }


def naive_dense(sequence_length: int, features: int, units: int = 12, outputs: int = 1) -> nn.Sequential:
    """The course's "naive" fully connected network: flatten → Dense(units, relu) → Dense(outputs).

    Parameters: ``(T·F)·units + units + units·outputs + outputs``; for the course's
    240 × 14 windows and 12 units, 40,345.

    Example:
        >>> sum(p.numel() for p in naive_dense(240, 14).parameters())
        40345
    """
    for name, value in (
        ("sequence_length", sequence_length),
        ("features", features),
        ("units", units),
        ("outputs", outputs),
    ):
        check_positive_int(name, value)
    return nn.Sequential(
        nn.Flatten(),
        nn.Linear(sequence_length * features, units),
        nn.ReLU(),
        nn.Linear(units, outputs),
    )


class ResidualTarget(Wrapper):
    """Predict the change from the last input value: ``ŷ = model(x) + x[:, T − 1, target_index]``.

    The wrapped model learns the change over the horizon; the wrapper adds the last value
    back, so the output is in the target's units and the loss and metrics are unchanged.
    Assumption: the target is scaled with the same statistics (mean and standard deviation)
    as the input column ``target_index`` — true when the target is that feature later in
    time and one standardizer scales both. With an untrained (near-zero) model the
    wrapper starts at persistence. :class:`StepResidualTarget` is the
    per-step version: it adds the input value of every step instead of the last one.

    Args:
        model: any ``nn.Module`` from windows to ``(batch, len(target_index))``.
        target_index: the input column holding the target variable.

    Example:
        >>> m = ResidualTarget(naive_dense(24, 14), target_index=1)  # doctest: +SKIP
    """

    fits = "target"  # what the model's output must match, for the error message

    def __init__(self, model: nn.Module, target_index: int | Sequence[int]) -> None:
        super().__init__(model)
        self.target_index = _target_indices(target_index)

    def added(self, x: torch.Tensor) -> torch.Tensor:
        """The input values added to the model's change: the last step's, (batch, targets)."""
        return x[:, -1, self.target_index]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        name = type(self).__name__
        _check_window(x, self.target_index, name)
        change = self.model(x)
        now = self.added(x)
        if change.shape != now.shape:
            raise RnnkitError(
                f"{name}: model output {tuple(change.shape)} does not fit the {self.fits} {tuple(now.shape)}"
            )
        return change + now

    def get_config(self) -> dict[str, Any]:
        return {"target_index": self.target_index, "model": self.inner_config()}


# --- forecasts of several steps: the next K rows (``(batch, K, 1)``), or a value at every input
# --- step (``(batch, T, targets)``, many-to-many) -------------------------------------------------


class RepeatLastPeriod(nn.Module):
    """Baseline "repeat the last day": step k predicts the value ``period`` rows before it.

    For windows whose targets are the ``target_length`` rows right after the last input
    (``horizon=1``), step k (0-based) is predicted by input row ``T − period + (k mod period)``
    of the target column(s). ``period=24`` on hourly rows repeats the last day; ``period=1``
    repeats the last value (persistence). No parameters.

    Args:
        target_index: position(s) of the target column(s) among the features.
        period: rows per period (>= 1), at most the sequence length.
        target_length: forecast steps K (>= 1).

    Shapes: x ``(batch, T, features)`` → ``(batch, target_length, len(target_index))``.

    Example:
        >>> RepeatLastPeriod(0, period=2, target_length=3)(torch.arange(4.0).view(1, 4, 1)).flatten().tolist()
        [2.0, 3.0, 2.0]
    """

    def __init__(self, target_index: int | Sequence[int], period: int, target_length: int) -> None:
        super().__init__()
        # a bool (an int to isinstance) is refused with the message below
        items = [target_index] if isinstance(target_index, (int, np.integer)) else list(target_index)
        if not items or any(isinstance(i, bool) or not isinstance(i, (int, np.integer)) or i < 0 for i in items):
            raise RnnkitError(f"target_index must be column positions >= 0, got {target_index!r}")
        self.target_index = [int(i) for i in items]
        self.period = check_positive_int("period", period)
        self.target_length = check_positive_int("target_length", target_length)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        length = x.shape[1]
        if length < self.period:
            raise RnnkitError(f"windows must hold at least period={self.period} rows, got {length}")
        rows = length - self.period + torch.arange(self.target_length, device=x.device) % self.period
        return x[:, rows][:, :, self.target_index]


class RepeatLastDay(nn.Module):
    """Baseline "repeat the last day": step k is the value ``period`` rows (or a multiple) before its target.

    For targets that lie ``horizon`` window rows after the last input and one row apart,
    step k's target is at offset ``j = horizon + k``; the latest row of the window at the
    same phase of the period is ``T − period + (j − 1) mod period``. With ``horizon = 1``
    this is :class:`RepeatLastPeriod` (which it runs, for
    ``horizon − 1 + target_length`` steps, keeping the last ``target_length``).

    Args:
        target_index: the column of the target among the features.
        period: window rows per day (>= 1), at most the window length.
        target_length: forecast steps K (>= 1).
        horizon: window rows from the last input to the first target (>= 1, default 1).

    Shapes: ``x (batch, T, features)`` → ``(batch, target_length, 1)``.

    Example:
        >>> x = torch.arange(4.0).view(1, 4, 1)   # a "day" of 2 rows: rows 2 and 3 are the last day
        >>> RepeatLastDay(0, period=2, target_length=3, horizon=2)(x).flatten().tolist()
        [3.0, 2.0, 3.0]
    """

    def __init__(self, target_index: int, period: int, target_length: int, horizon: int = 1) -> None:
        super().__init__()
        check_positive_int("horizon", horizon)
        self.horizon = horizon
        self.target_length = target_length
        self.repeat = RepeatLastPeriod(target_index, period, horizon - 1 + target_length)

    @property
    def period(self) -> int:
        return self.repeat.period

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.repeat(x)[:, self.horizon - 1 :]

    def get_config(self) -> dict[str, Any]:
        return {
            "target_index": self.repeat.target_index[0],
            "period": self.period,
            "target_length": self.target_length,
            "horizon": self.horizon,
        }


class MeanDailyCurve(nn.Module):
    """Baseline "the mean daily curve": the training mean of the target at each phase of a clock.

    The phase of a row comes from its (sin, cos) clock columns: bin
    ``floor(period · atan2(sin, cos) / 2π + 0.25) mod period`` (whole hours of the day for
    ``period=24`` on a day clock; the 0.25 keeps rows at whole bins clear of rounding noise).
    Step k after the last input row is predicted by the mean of bin ``last + 1 + k``; with
    ``anchored=True`` by the last value plus the mean change between the two bins,
    ``value_last + mean[last + 1 + k] − mean[last]``.

    Args:
        target_index: position of the target column among the features.
        sin_index, cos_index: positions of the clock columns (unscaled sin/cos).
        target_length: forecast steps K (>= 1).
        period: bins per clock cycle (default 24).
        anchored: shift the curve to start at the last value (default False).

    Shapes: x ``(batch, T, features)`` → ``(batch, target_length, 1)``. Call :meth:`fit` first.

    Example::

        curve = MeanDailyCurve(0, 5, 6, target_length=24).fit(train_rows)   # (rows, features)
    """

    curve: torch.Tensor  # buffer (period,): the mean target per bin, NaN before fit

    def __init__(
        self,
        target_index: int,
        sin_index: int,
        cos_index: int,
        target_length: int,
        period: int = 24,
        anchored: bool = False,
    ) -> None:
        super().__init__()
        for name, value in (("target_index", target_index), ("sin_index", sin_index), ("cos_index", cos_index)):
            if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 0:
                raise RnnkitError(f"{name} must be a column position >= 0, got {value!r}")
        self.target_index, self.sin_index, self.cos_index = int(target_index), int(sin_index), int(cos_index)
        self.target_length = check_positive_int("target_length", target_length)
        self.period = check_positive_int("period", period)
        self.anchored = bool(anchored)
        self.register_buffer("curve", torch.full((self.period,), float("nan")))

    def phase_bin(self, rows: torch.Tensor) -> torch.Tensor:
        """The bin (int64) of each row ``(..., features)``."""
        angle = torch.atan2(rows[..., self.sin_index], rows[..., self.cos_index]) % (2 * math.pi)
        return torch.floor(angle / (2 * math.pi) * self.period + 0.25).long() % self.period

    def fit(self, rows: Any) -> MeanDailyCurve:
        """Mean target per bin from ``rows`` ``(rows, features)`` (the training part); returns self."""
        rows = torch.as_tensor(np.asarray(rows), dtype=torch.float64)
        bins = self.phase_bin(rows)
        counts = torch.bincount(bins, minlength=self.period)
        if bool((counts == 0).any()):
            raise RnnkitError(
                f"rows must fill every one of the {self.period} bins, got empty bins {torch.nonzero(counts == 0).flatten().tolist()}"
            )
        sums = torch.zeros(self.period, dtype=torch.float64).index_add_(0, bins, rows[:, self.target_index])
        self.curve = (sums / counts).to(self.curve.dtype)
        return self

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if bool(self.curve.isnan().any()):
            raise RnnkitError("MeanDailyCurve must be fitted before use: call fit(rows)")
        now = self.phase_bin(x[:, -1])  # (batch,)
        ahead = (
            now[:, None] + 1 + torch.arange(self.target_length, device=x.device)
        ) % self.period  # (batch, target_length)
        curve = self.curve.to(x.dtype)
        out = curve[ahead]
        if self.anchored:
            out = out - curve[now][:, None] + x[:, -1, self.target_index, None]
        return out[..., None]


class MultiStepResidualTarget(ResidualTarget):
    """Learn the change from the last input at every forecast step: ``ŷ_k = x[:, T − 1, target] + change_k``.

    The multi-step version of :class:`ResidualTarget` (same assumption: the
    target is scaled like the input column it is read from); the last value is added to each
    of the K outputs. An untrained, near-zero model starts at persistence.

    Args:
        model: a module from ``(batch, T, features)`` to ``(batch, *output_shape)``.
        target_index: the input column holding the target variable.
        output_shape: the model's output per example, ``(K,)`` or ``(K, 1)``.

    Shapes: ``x (batch, T, features)`` → ``(batch, *output_shape)``.

    Example:
        >>> class Change(nn.Module):
        ...     def forward(self, x): return torch.tensor([[1.0, 2.0]])
        >>> MultiStepResidualTarget(Change(), 0, (2,))(torch.tensor([[[5.0], [7.0]]])).tolist()
        [[8.0, 9.0]]
    """

    fits = "multi-step target"

    def __init__(self, model: nn.Module, target_index: int | Sequence[int], output_shape: Sequence[int]) -> None:
        super().__init__(model, target_index)
        shape = tuple(output_shape) if isinstance(output_shape, (list, tuple)) else ()
        if (
            len(shape) not in (1, 2)
            or not all(isinstance(s, int) and not isinstance(s, bool) and s >= 1 for s in shape)
            or (len(shape) == 2 and shape[1] != len(self.target_index))
        ):
            raise RnnkitError(
                f"output_shape must be (steps,) or (steps, targets) with positive sizes, got {output_shape!r}"
            )
        self.output_shape = shape

    def added(self, x: torch.Tensor) -> torch.Tensor:
        """The last input value, repeated at every step: ``(batch, *output_shape)``."""
        last = x[:, -1, self.target_index]  # (batch, targets)
        if len(self.output_shape) == 1:  # (K,): one target column, its value at every step
            return last[:, :1].expand(x.shape[0], self.output_shape[0])
        return last[:, None, :].expand(x.shape[0], *self.output_shape)

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), "output_shape": list(self.output_shape)}


class StepPersistence(nn.Module):
    """Per-step persistence: the target column at every input step, ``ŷ[:, t] = x[:, t, target_index]``.

    Step t's target lies ``horizon`` rows after row t, so this is "no change over the horizon".

    Args:
        target_index: the column (or columns) of the window holding the target variable.

    Shapes: ``x (batch, T, features)`` → ``(batch, T, len(target_index))``.

    Example:
        >>> StepPersistence(0)(torch.tensor([[[1.0], [2.0], [3.0]]])).flatten().tolist()
        [1.0, 2.0, 3.0]
    """

    def __init__(self, target_index: int | Sequence[int]) -> None:
        super().__init__()
        self.target_index = _target_indices(target_index)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        _check_window(x, self.target_index, "StepPersistence")
        return x[:, :, self.target_index]

    def get_config(self) -> dict[str, Any]:
        return {"target_index": self.target_index}


class StepMean(MeanBaseline):
    """The training targets' mean (over windows and steps) at every step.

    The per-step version of :class:`MeanBaseline` (same ``value`` and checks).

    Args:
        value: a number or a 1-D tensor (one value per target column).

    Shapes: ``x (batch, T, features)`` → ``(batch, T, len(value))``.

    Example:
        >>> StepMean.fit(torch.tensor([[[1.0], [3.0]]]))(torch.zeros(1, 3, 2)).flatten().tolist()
        [2.0, 2.0, 2.0]
    """

    @classmethod
    def fit(cls, y: torch.Tensor) -> StepMean:
        """The mean of per-step training targets ``y (windows, T, targets)``."""
        if y.dim() != 3 or y.numel() == 0:
            raise RnnkitError(f"StepMean.fit needs per-step targets (windows, T, targets), got shape {tuple(y.shape)}")
        return cls(y.double().mean(dim=(0, 1)).float())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.value.to(x.dtype).expand(x.shape[0], x.shape[1], -1)


class StepResidualTarget(ResidualTarget):
    """Learn the change at every step: ``ŷ[:, t] = model(x)[:, t] + x[:, t, target_index]``.

    The per-step version of :class:`ResidualTarget` (same assumption: the
    target is scaled like the input column it is read from); only the values added back
    differ. An untrained, near-zero model starts at :class:`StepPersistence`.

    Args:
        model: a module from ``(batch, T, features)`` to ``(batch, T, len(target_index))``.
        target_index: the input column holding the target variable.

    Example:
        >>> m = StepResidualTarget(Sequential(GRU(8, return_sequences=True), Dense(1), input_shape=(48, 3)), 1)  # doctest: +SKIP
    """

    fits = "per-step target"

    def added(self, x: torch.Tensor) -> torch.Tensor:
        """The input values added to the model's change: every step's, (batch, T, targets)."""
        return x[:, :, self.target_index]


# --- classification baselines: they output one score per class (1 for the chosen class, else 0) ---


def _one_hot(labels: torch.Tensor, classes: int, dtype: torch.dtype) -> torch.Tensor:
    return torch.nn.functional.one_hot(labels.long(), classes).to(dtype)  # (batch, classes)


class SameAsNow(nn.Module):
    """Classify a window by the label of its last input row ("is it raining now?": then it will).

    With ``threshold`` the label is ``x[:, T − 1, target_index] > threshold`` (threshold in the
    same scaled units as ``x``: map it with the scaler's own formula, so that a value equal
    to the threshold in data units stays equal after scaling); without, the target column
    holds integer labels and the label is ``round(x · scale + offset)``, clamped to the classes.
    The output is ``(batch, classes)`` scores, 1 for the chosen class and 0 for the others,
    so that the metric code scores it like a model's logits (argmax).

    Args:
        target_index: the column of the target among the features.
        classes: number of classes (default 2).
        threshold: the threshold in scaled units (default None: integer labels).
        scale, offset: data units = scaled · scale + offset (integer labels only; default 1, 0).

    Example:
        >>> SameAsNow(0, threshold=0.5)(torch.tensor([[[0.0], [0.9]], [[1.0], [0.2]]]))
        tensor([[0., 1.],
                [1., 0.]])
    """

    def __init__(
        self,
        target_index: int,
        classes: int = 2,
        threshold: float | None = None,
        scale: float = 1.0,
        offset: float = 0.0,
    ) -> None:
        super().__init__()
        self.target_index = _target_indices(target_index)
        if not isinstance(classes, int) or isinstance(classes, bool) or classes < 2:
            raise RnnkitError(f"classes must be an integer >= 2, got {classes!r}")
        if threshold is not None and classes != 2:
            raise RnnkitError(f"classes must be 2 with a threshold, got {classes}")
        self.classes, self.threshold, self.scale, self.offset = classes, threshold, float(scale), float(offset)

    def labels(self, x: torch.Tensor) -> torch.Tensor:
        """The label of each window's last input row, ``(batch,)`` int64."""
        _check_window(x, self.target_index, "SameAsNow")
        last = x[:, -1, self.target_index[0]]
        if self.threshold is not None:
            return (last > torch.tensor(self.threshold, dtype=last.dtype)).long()
        return (last.double() * self.scale + self.offset).round().clamp(0, self.classes - 1).long()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return _one_hot(self.labels(x), self.classes, x.dtype)

    def get_config(self) -> dict[str, Any]:
        return {
            "target_index": self.target_index[0],
            "classes": self.classes,
            "threshold": self.threshold,
            "scale": self.scale,
            "offset": self.offset,
        }


class MajorityClass(nn.Module):
    """Always the same class, the commonest among the training labels ("it never rains").

    Example:
        >>> MajorityClass.fit(torch.tensor([0, 0, 1]), classes=2)(torch.zeros(2, 4, 3))
        tensor([[1., 0.],
                [1., 0.]])
    """

    label: torch.Tensor  # buffer, 0-dim int64

    def __init__(self, label: int, classes: int = 2) -> None:
        super().__init__()
        if not isinstance(classes, int) or isinstance(classes, bool) or classes < 2:
            raise RnnkitError(f"classes must be an integer >= 2, got {classes!r}")
        if not isinstance(label, int) or isinstance(label, bool) or not 0 <= label < classes:
            raise RnnkitError(f"label must be an integer in [0, {classes}), got {label!r}")
        self.classes = classes
        self.register_buffer("label", torch.tensor(label))

    @classmethod
    def fit(cls, labels: Any, classes: int = 2) -> MajorityClass:
        """The commonest of ``labels`` (ties: the smaller label)."""
        y = torch.as_tensor(labels).reshape(-1).long()
        if y.numel() == 0:
            raise RnnkitError("MajorityClass.fit needs at least one label, got none")
        return cls(int(torch.bincount(y, minlength=classes).argmax()), classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return _one_hot(self.label.expand(x.shape[0]), self.classes, x.dtype)

    def get_config(self) -> dict[str, Any]:
        return {"label": int(self.label), "classes": self.classes}
