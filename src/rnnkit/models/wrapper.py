"""A model around one inner model: what the trainer and the saved config ask of it passes through."""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from rnnkit.training.keras_api import KerasModel


class Wrapper(KerasModel):
    """Base of the models that wrap one ``self.model`` (a residual target, a series embedding).

    The inner model's L1/L2 penalty (``regularization_loss``), its stateful reset (``reset_states``)
    and its saved architecture (:meth:`inner_config`) pass through, so a wrapped network trains,
    resets and saves like the network itself.

    Example:
        >>> w = Wrapper(torch.nn.Linear(3, 1))   # an inner model with no penalty, state or config
        >>> float(w.regularization_loss()), w.inner_config()
        (0.0, None)
    """

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model

    def regularization_loss(self) -> torch.Tensor:
        fn = getattr(self.model, "regularization_loss", None)
        return fn() if callable(fn) else torch.zeros(())

    def reset_states(self) -> None:
        fn = getattr(self.model, "reset_states", None)
        if callable(fn):
            fn()

    def inner_config(self) -> dict[str, Any] | None:
        """The inner model's ``get_config()``, or None when it has none."""
        fn = getattr(self.model, "get_config", None)
        return fn() if callable(fn) else None
