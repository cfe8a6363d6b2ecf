"""Multi-step regression through the config: the next K rows from one window (``windows.target_length``).

With ``make_windows(..., target_length=K)`` window i holds inputs ``x (T, features)`` and the
targets of K rows: step k (0-based) is row ``last + horizon + k · sampling_rate``, so
``y (examples, K, 1)``. A model given as layers is the *direct* forecaster of
:class:`rnnkit.forecasting.DirectForecaster`: a recurrent encoder then ``Dense(K)``, every
step at once; its output is ``(K,)`` or ``(K, 1)`` per example (:func:`check_output`).

Baselines are models with the same output, scored by the same metric code:

- persistence: the last value repeated K times (``RepeatLastPeriod(period=1)``);
- :class:`RepeatLastDay`: each step's value at the same time of day on the latest day the
  window holds ("repeat the last day");
- mean: the training mean of each step (``MeanBaseline`` fit on ``y``, one value per step);
- linear: ``LinearBaseline`` with K outputs.

:class:`MultiStepResidualTarget` learns the change from the last input at every step,
``prediction_k = last value + change_k``. :func:`multistep_scores` gives the MAE of each step.

Example::

    w = make_windows(series, 120, horizon=1, target_length=24, targets="T (degC)")
    net = Sequential(GRU(32), Dense(24), input_shape=(120, 7))
    model = MultiStepResidualTarget(net, target_index=0, output_shape=(24,))
    multistep_scores(model, w, scale=8.4, offset=9.4)["mae_by_step"]   # 24 floats
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from torch import nn

from rnnkit.baselines import ResidualTarget
from rnnkit.errors import RnnkitError
from rnnkit.forecasting import RepeatLastPeriod, forecast_scores
from rnnkit.training import predict


def check_output(shape: Sequence[int], steps: int, where: str) -> tuple[int, ...]:
    """The model output per example, ``(K,)`` or ``(K, 1)``, or a one-line error naming the key.

    Example:
        >>> check_output((24,), 24, "model 'GRU'")
        (24,)
    """
    out = tuple(int(s) for s in shape)
    if out not in ((steps,), (steps, 1)):
        raise RnnkitError(f"{where} outputs shape {out} per example; windows.target_length = {steps} needs "
                          f"({steps},) or ({steps}, 1), a value per forecast step: end with Dense({steps})")
    return out


class MultiStepResidualTarget(ResidualTarget):
    """Learn the change from the last input at every forecast step: ``ŷ_k = x[:, T − 1, target] + change_k``.

    The multi-step version of :class:`rnnkit.baselines.ResidualTarget` (same assumption: the
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
        if len(shape) not in (1, 2) or not all(isinstance(s, int) and not isinstance(s, bool) and s >= 1 for s in shape) \
                or (len(shape) == 2 and shape[1] != len(self.target_index)):
            raise RnnkitError(f"output_shape must be (steps,) or (steps, targets) with positive sizes, got {output_shape!r}")
        self.output_shape = shape

    def added(self, x: torch.Tensor) -> torch.Tensor:
        """The last input value, repeated at every step: ``(batch, *output_shape)``."""
        last = x[:, -1, self.target_index]  # (batch, targets)
        if len(self.output_shape) == 1:  # (K,): one target column, its value at every step
            return last[:, :1].expand(x.shape[0], self.output_shape[0])
        return last[:, None, :].expand(x.shape[0], *self.output_shape)

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), "output_shape": list(self.output_shape)}


class RepeatLastDay(nn.Module):
    """Baseline "repeat the last day": step k is the value ``period`` rows (or a multiple) before its target.

    For targets that lie ``horizon`` window rows after the last input and one row apart,
    step k's target is at offset ``j = horizon + k``; the latest row of the window at the
    same phase of the period is ``T − period + (j − 1) mod period``. With ``horizon = 1``
    this is :class:`rnnkit.forecasting.RepeatLastPeriod` (which it runs, for
    ``horizon − 1 + steps`` steps, keeping the last ``steps``).

    Args:
        target_index: the column of the target among the features.
        period: window rows per day (>= 1), at most the window length.
        steps: forecast steps K (>= 1).
        horizon: window rows from the last input to the first target (>= 1, default 1).

    Shapes: ``x (batch, T, features)`` → ``(batch, steps, 1)``.

    Example:
        >>> x = torch.arange(4.0).view(1, 4, 1)   # a "day" of 2 rows: rows 2 and 3 are the last day
        >>> RepeatLastDay(0, period=2, steps=3, horizon=2)(x).flatten().tolist()
        [3.0, 2.0, 3.0]
    """

    def __init__(self, target_index: int, period: int, steps: int, horizon: int = 1) -> None:
        super().__init__()
        if isinstance(horizon, bool) or not isinstance(horizon, int) or horizon < 1:
            raise RnnkitError(f"horizon must be a positive integer, got {horizon!r}")
        self.horizon = horizon
        self.steps = steps
        self.repeat = RepeatLastPeriod(target_index, period, horizon - 1 + steps)

    @property
    def period(self) -> int:
        return self.repeat.period

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.repeat(x)[:, self.horizon - 1:]

    def get_config(self) -> dict[str, Any]:
        return {"target_index": self.repeat.target_index[0], "period": self.period, "steps": self.steps,
                "horizon": self.horizon}


def persistence(target_index: int, steps: int) -> nn.Module:
    """The last input value repeated ``steps`` times: ``(batch, steps, 1)``."""
    return RepeatLastPeriod(target_index, 1, steps)


def multistep_scores(model: nn.Module, data: Any, *, scale: float, offset: float,
                     batch_size: int = 1024) -> dict[str, Any]:
    """MAE and RMSE (data units) over all steps, and the MAE of each step.

    Args:
        model: a multi-step model or baseline, output ``(batch, K)`` or ``(batch, K, 1)``.
        data: windows with ``target_length = K`` (``batch``/``__len__`` and ``y (examples, K, 1)``).
        scale, offset: data units = scaled · scale + offset.

    Returns:
        ``{"mae", "rmse", "mae_by_step": [K floats]}``.
    """
    prediction = predict(model, data, batch_size)
    s = forecast_scores(data.y, prediction, scale=scale, offset=offset)
    return {"mae": s["mae"], "rmse": s["rmse"], "mae_by_step": s["mae_per_step"]}
