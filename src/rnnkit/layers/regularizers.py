"""Weight regularisers, as in Keras: ``l1(l)``, ``l2(l)``, ``l1_l2(l1, l2)``.

A regulariser maps a weight tensor to a scalar penalty that the trainer adds to the loss:
``l1``: l·Σ|w|; ``l2``: l·Σw² (Keras's convention: no factor 1/2).

Example::

    reg = rk.regularizers.l2(1e-3)
    penalty = reg(layer.kernel)      # 1e-3 * (kernel ** 2).sum()
"""

from __future__ import annotations

import math
from typing import Any

import torch

from rnnkit.errors import RnnkitError


class Regularizer:
    """l1·Σ|w| + l2·Σw²."""

    def __init__(self, l1: float = 0.0, l2: float = 0.0) -> None:
        for name, value in (("l1", l1), ("l2", l2)):
            if not isinstance(value, (int, float)) or isinstance(value, bool) or not math.isfinite(value) or value < 0:
                raise RnnkitError(f"{name} must be a finite number >= 0, got {value!r}")
        self.l1 = float(l1)
        self.l2 = float(l2)

    def __call__(self, weight: torch.Tensor) -> torch.Tensor:
        penalty = weight.new_zeros(())
        if self.l1:
            penalty = penalty + self.l1 * weight.abs().sum()
        if self.l2:
            penalty = penalty + self.l2 * weight.square().sum()
        return penalty

    def get_config(self) -> dict[str, float]:
        return {"l1": self.l1, "l2": self.l2}

    def __repr__(self) -> str:
        return f"Regularizer(l1={self.l1:g}, l2={self.l2:g})"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Regularizer) and (self.l1, self.l2) == (other.l1, other.l2)


def l1(l: float = 0.01) -> Regularizer:  # noqa: E741 - Keras's argument name
    """L1 penalty l·Σ|w| (Keras default l = 0.01)."""
    return Regularizer(l1=l)


def l2(l: float = 0.01) -> Regularizer:  # noqa: E741
    """L2 penalty l·Σw² (Keras default l = 0.01)."""
    return Regularizer(l2=l)


def l1_l2(l1: float = 0.01, l2: float = 0.01) -> Regularizer:
    """Both penalties: l1·Σ|w| + l2·Σw² (Keras defaults 0.01 each)."""
    return Regularizer(l1=l1, l2=l2)


def get(spec: Any, argument: str = "regularizer") -> Regularizer | None:
    """Resolve a regulariser argument: None, a Regularizer, or a config dict ``{"l1": .., "l2": ..}``."""
    if spec is None or isinstance(spec, Regularizer):
        return spec
    if isinstance(spec, dict):
        unknown = set(spec) - {"l1", "l2"}
        if unknown:
            raise RnnkitError(f"{argument}: unknown regulariser keys {sorted(unknown)}, expected 'l1' and/or 'l2'")
        return Regularizer(**spec)
    raise RnnkitError(f"{argument} must be None, rk.regularizers.l1/l2/l1_l2(...) or a dict, got {spec!r}")


def serialize(reg: Regularizer | None) -> dict[str, float] | None:
    return None if reg is None else reg.get_config()
