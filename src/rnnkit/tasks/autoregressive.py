"""``task = "autoregressive"``: the next K rows by a recurrent layer fed its own one-step predictions.

The model is :class:`rnnkit.models.forecasters.AutoregressiveForecaster`: one recurrent layer reads the
window, predicts the next row of every fed-back column (every feature that is not a clock column)
and reads that row as its next input, K times. So it trains on windows whose targets are all the
fed-back columns (the run's windows, cut again with those targets), free-running through its own
feedback; it is scored, like every multi-step model of :mod:`rnnkit.tasks.forecasters`, on the
target column's K steps against the same baselines.

Example config: ``configs/autoregressive.toml``.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from rnnkit.config import TrainingConfig
from rnnkit.models.forecasters import AutoregressiveForecaster
from rnnkit.tasks.forecasters import Forecaster
from rnnkit.tasks.series import part_windows


class TargetColumn(nn.Module):
    """The forecast of one fed-back column: ``(batch, K, fed-back) -> (batch, K, 1)``.

    Example:
        >>> class Two(nn.Module):
        ...     def forward(self, x): return torch.tensor([[[1.0, 2.0], [3.0, 4.0]]])
        >>> TargetColumn(Two(), 1)(torch.zeros(1, 3, 2)).tolist()
        [[[2.0], [4.0]]]
    """

    def __init__(self, model: nn.Module, column: int) -> None:
        super().__init__()
        self.model = model
        self.column = column

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model(x)[..., self.column : self.column + 1]


class Autoregressive(Forecaster):
    """``task = "autoregressive"``: :class:`AutoregressiveForecaster` models, scored on the target column."""

    name = "autoregressive"
    forecaster = AutoregressiveForecaster

    def make(self, layer: str, units: int, residual: bool) -> nn.Module:
        L, F = self.prepared.input_shape
        return AutoregressiveForecaster(
            F, self.prepared.target_length, units=units, layer=layer, clock=self.clock(), residual=residual
        )

    @property
    def fed_back(self) -> list[str]:
        """The columns the models predict and read back: every feature but the clock's."""
        clock = self.clock()
        known = set(clock.indices) if clock is not None else set()
        return [name for i, name in enumerate(self.prepared.features) if i not in known]

    def scored(self, model: nn.Module, target_index: int) -> nn.Module:
        """A forecaster's target column (the baselines forecast the target alone already)."""
        if isinstance(model, AutoregressiveForecaster):
            return TargetColumn(model, model.fed_back.index(target_index))
        return model

    def train_data(self, training: TrainingConfig) -> tuple[Any, Any]:
        """The run's windows with every fed-back column as targets: y ``(windows, K, fed-back)``."""
        parts, columns = self.prepared.parts, self.fed_back
        return part_windows(self.config, parts["train"], columns), part_windows(self.config, parts["val"], columns)

    def describe_epoch(self, training: TrainingConfig) -> Any:
        return None  # its val_loss is over every fed-back column, not the target's MAE

    @property
    def loss_name(self) -> str:
        return f"{self.config.training.loss} over the fed-back columns (scaled units)"

    def describe_model(self, model: nn.Module) -> str:
        assert isinstance(model, AutoregressiveForecaster)  # built by make()
        return (
            f"{model.layer}({model.units}) reads {model.features} features a row and feeds back "
            f"{len(model.fed_back)} ({', '.join(self.fed_back)}), {model.target_length} times"
            + (", each step the change from the row before" if model.residual else "")
        )

    def describe(self) -> str:
        return super().describe() + f"\nfed back and predicted every step: {', '.join(self.fed_back)}"


TASK = Autoregressive
