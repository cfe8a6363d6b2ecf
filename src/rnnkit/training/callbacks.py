"""Early stopping (with the best epoch's weights) and a plateau learning-rate schedule.

Both watch one number per epoch — the validation loss, or the training loss when there is
no validation data — and keep their state as plain JSON-serialisable values (the best
weights apart), so that a checkpoint can store them without pickle.

They are also Keras's callbacks: ``model.fit(..., callbacks=[EarlyStopping(monitor="val_loss",
patience=3, restore_best_weights=True)])`` (:mod:`rnnkit.training.keras_api`) reads their settings
into the Trainer's (``early_stopping_patience``, ``restore_best``, ``lr_plateau_patience``,
``lr_factor``), and the Trainer runs its own copies: one training loop.
"""

from __future__ import annotations

import math
from typing import Any

import torch
from torch import nn

from rnnkit.errors import RnnkitError

MONITORED = ("val_loss", "loss")


def _check_patience(name: str, value: int | None) -> None:
    if value is not None and (not isinstance(value, int) or isinstance(value, bool) or value < 1):
        raise RnnkitError(f"{name} must be None or an integer >= 1, got {value!r}")


def _check_monitor(monitor: str) -> str:
    # The Trainer watches val_loss when there is validation data, else loss: nothing else to watch
    if monitor not in MONITORED:
        raise RnnkitError(f"monitor must be 'val_loss' or 'loss' (the Trainer watches one of them), got {monitor!r}")
    return monitor


class BestTracker:
    """Remember the best (lowest) monitored value, its epoch and, optionally, the model's weights then.

    Args:
        keep_weights: copy the model's ``state_dict`` each time the value improves.
        min_delta: an improvement must be larger than this (default 0: any decrease).

    Example:
        >>> best = BestTracker(keep_weights=False)
        >>> best.update(0.5, epoch=0, model=None), best.update(0.7, epoch=1, model=None)
        (True, False)
    """

    def __init__(self, keep_weights: bool = True, min_delta: float = 0.0) -> None:
        self.keep_weights = keep_weights
        self.min_delta = min_delta
        self.value = math.inf
        self.epoch: int | None = None
        self.weights: dict[str, torch.Tensor] | None = None

    def update(self, value: float, epoch: int, model: nn.Module | None) -> bool:
        """Record ``value`` for ``epoch``; returns whether it is a new best."""
        if not value < self.value - self.min_delta:
            return False
        self.value, self.epoch = float(value), epoch
        if self.keep_weights and model is not None:
            self.weights = {k: v.detach().clone() for k, v in model.state_dict().items()}
        return True

    def restore(self, model: nn.Module) -> bool:
        """Load the best weights into ``model``; returns whether there were any."""
        if self.weights is None:
            return False
        model.load_state_dict(self.weights)
        return True

    def state(self) -> dict[str, Any]:
        return {"value": self.value, "epoch": self.epoch}

    def load_state(self, state: dict[str, Any], weights: dict[str, torch.Tensor] | None) -> None:
        self.value, self.epoch = float(state["value"]), state["epoch"]
        self.weights = weights


class EarlyStopping:
    """Stop when the monitored value has not improved for ``patience`` epochs (Keras's rule).

    Args:
        patience: epochs without improvement before stopping (>= 1; default 1, which stops as
            Keras's default 0 does: at the first epoch without improvement).
        min_delta: an improvement must exceed this (default 0).
        monitor: as a ``fit`` callback, ``"val_loss"`` (default) or ``"loss"``: the value the
            Trainer watches (``val_loss`` with validation data, else ``loss``).
        restore_best_weights: as a ``fit`` callback, end with the best epoch's weights (default
            False, Keras's: the last epoch's).

    Example:
        >>> stop = EarlyStopping(patience=1)
        >>> [stop.update(v) for v in (1.0, 0.9, 0.95)]
        [False, False, True]
    """

    def __init__(
        self,
        patience: int = 1,
        min_delta: float = 0.0,
        *,
        monitor: str = "val_loss",
        restore_best_weights: bool = False,
    ) -> None:
        _check_patience("early_stopping_patience", patience)
        if not isinstance(restore_best_weights, bool):
            raise RnnkitError(f"restore_best_weights must be True or False, got {restore_best_weights!r}")
        self.monitor = _check_monitor(monitor)
        self.restore_best_weights = restore_best_weights
        self.patience = patience
        self.min_delta = min_delta
        self.best = math.inf
        self.wait = 0
        self.stopped = False

    def update(self, value: float) -> bool:
        """Record one epoch's value; returns ``True`` when training should stop."""
        if value < self.best - self.min_delta:
            self.best, self.wait = float(value), 0
        else:
            self.wait += 1
            if self.wait >= self.patience:
                self.stopped = True
        return self.stopped

    def state(self) -> dict[str, Any]:
        return {"best": self.best, "wait": self.wait, "stopped": self.stopped}

    def load_state(self, state: dict[str, Any]) -> None:
        self.best, self.wait, self.stopped = float(state["best"]), int(state["wait"]), bool(state["stopped"])


class ReduceLROnPlateau:
    """Multiply the learning rate by ``factor`` after ``patience`` epochs without improvement.

    Args:
        optimizer: its every parameter group's ``lr`` is scaled; ``None`` (default) for a ``fit``
            callback, which the Trainer binds to its optimizer (``lr_plateau_patience``, ``lr_factor``).
        patience: epochs without improvement before a reduction (>= 1; default 10, Keras's).
        factor: the multiplier, in (0, 1) (default 0.5, the Trainer's ``lr_factor``; Keras's is 0.1).
        min_lr: the learning rate never goes below this (default 0).
        monitor: as a ``fit`` callback, ``"val_loss"`` (default) or ``"loss"`` (see :class:`EarlyStopping`).

    Example:
        >>> opt = torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=1.0)
        >>> plateau = ReduceLROnPlateau(opt, patience=1, factor=0.5)
        >>> [plateau.step(v) or opt.param_groups[0]["lr"] for v in (1.0, 1.0, 0.5)]
        [1.0, 0.5, 0.5]
    """

    def __init__(
        self,
        optimizer: torch.optim.Optimizer | None = None,
        patience: int = 10,
        factor: float = 0.5,
        min_lr: float = 0.0,
        *,
        monitor: str = "val_loss",
    ) -> None:
        _check_patience("lr_plateau_patience", patience)
        self.monitor = _check_monitor(monitor)
        if not (isinstance(factor, (int, float)) and 0.0 < factor < 1.0):
            raise RnnkitError(f"lr_factor must be in (0, 1), got {factor!r}")
        if not (isinstance(min_lr, (int, float)) and min_lr >= 0):
            raise RnnkitError(f"min_lr must be >= 0, got {min_lr!r}")
        self.optimizer = optimizer
        self.patience, self.factor, self.min_lr = patience, float(factor), float(min_lr)
        self.best = math.inf
        self.wait = 0

    def step(self, value: float) -> None:
        """Record one epoch's value and reduce the learning rate when the plateau is long enough."""
        if self.optimizer is None:
            raise RnnkitError("ReduceLROnPlateau.step needs an optimizer: pass it, or give the callback to model.fit")
        if value < self.best:
            self.best, self.wait = float(value), 0
            return
        self.wait += 1
        if self.wait >= self.patience:
            for group in self.optimizer.param_groups:
                group["lr"] = max(group["lr"] * self.factor, self.min_lr)
            self.wait = 0

    def state(self) -> dict[str, Any]:
        return {"best": self.best, "wait": self.wait}

    def load_state(self, state: dict[str, Any]) -> None:
        self.best, self.wait = float(state["best"]), int(state["wait"])
