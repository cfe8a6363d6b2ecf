"""Many-to-many regression: a prediction for every input step (``windows.return_sequences``).

With ``make_windows(..., return_sequences=True)`` window i holds inputs ``x[:, t]`` for
t = 0 … T − 1 and a target for every step, ``y[:, t] = row(t + horizon)``: shapes
``x (batch, T, features)`` → ``y (batch, T, targets)``. A model keeps the time axis (its
last recurrent layer has ``return_sequences = true``, then ``Dense(1)`` applied per step).

The model must be *causal*: its output at step t may read inputs 0 … t only. Targets of the
early steps (row t + horizon ≤ T − 1) lie inside the window itself, so a layer that reads
the whole window (``Bidirectional``, ``Flatten``) would copy the answer instead of
forecasting it; :func:`check_causal` refuses them.

Baselines per step, scored by the same metric code as the models:

- :class:`StepPersistence`: ``ŷ_t = x_t[target]`` (the value at step t, ``horizon`` rows before its target);
- :class:`StepMean`: the training targets' mean, at every step;
- :class:`StepResidualTarget`: a model that learns the change, ``ŷ_t = x_t[target] + change_t``.

Example::

    w = make_windows(series, 48, horizon=24, targets="T (degC)", return_sequences=True)
    model = StepResidualTarget(Sequential(GRU(32, return_sequences=True), Dense(1), input_shape=(48, 14)), 1)
    score(model, w, persistence=StepPersistence(1), scale=8.4, offset=9.4)   # MAE over every step
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from torch import nn

from rnnkit.baselines import MeanBaseline, ResidualTarget, _check_window, _target_indices
from rnnkit.errors import RnnkitError
from rnnkit.training import predict
from rnnkit.training.metrics import regression_metrics

# Layers whose output at step t reads inputs after t (or the whole window).
NON_CAUSAL = ("Bidirectional", "Flatten")


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

    The per-step version of :class:`rnnkit.baselines.MeanBaseline` (same ``value`` and checks).

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

    The per-step version of :class:`rnnkit.baselines.ResidualTarget` (same assumption: the
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


def check_causal(layers: Sequence[dict[str, Any]], where: str) -> None:
    """Refuse layer specs whose output at step t would read inputs after t (see the module docstring)."""
    for spec in layers:
        if spec.get("type") in NON_CAUSAL:
            raise RnnkitError(
                f"{where}: a per-step forecast (windows.return_sequences = true) must read only inputs up to its "
                f"step, but {spec['type']} reads the whole window, which holds the targets of the earlier steps; "
                f"use forward recurrent layers"
            )


def last_step_scores(model: nn.Module, data: Any, *, scale: float, offset: float, batch_size: int = 1024) -> dict[str, float]:
    """MAE and RMSE of the last step only (data units): what a many-to-one model of the same horizon predicts.

    Args:
        model: a per-step model or baseline, output ``(batch, T, targets)``.
        data: per-step windows (``batch(indices)``/``__len__``, or ``(x, y)`` tensors with ``y (batch, T, targets)``).
        scale, offset: data units = scaled · scale + offset.
    """
    prediction = predict(model, data, batch_size)
    target = data.y if hasattr(data, "y") else data[1]
    if prediction.dim() != 3 or target.dim() != 3:
        raise RnnkitError(f"last_step_scores needs per-step outputs and targets (batch, T, targets), "
                          f"got {tuple(prediction.shape)} and {tuple(target.shape)}")
    return regression_metrics(target[:, -1], prediction[:, -1], scale=scale, offset=offset)
