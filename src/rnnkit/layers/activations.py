"""Activations by Keras name: ``get("tanh")`` returns the function.

Recurrent layers use the names to decide whether PyTorch's fused kernels apply
(they hard-code tanh/sigmoid, and tanh or relu for SimpleRNN).
"""

from __future__ import annotations

from typing import Callable

import torch
import torch.nn.functional as F

from rnnkit.errors import RnnkitError

Activation = Callable[[torch.Tensor], torch.Tensor]


def _hard_sigmoid(x: torch.Tensor) -> torch.Tensor:
    # Keras 3: relu6(x + 3) / 6
    return F.relu6(x + 3.0) / 6.0


def _linear(x: torch.Tensor) -> torch.Tensor:
    return x


linear_function = _linear  # the identity, which layers may skip calling


ACTIVATIONS: dict[str, Activation] = {
    "tanh": torch.tanh,
    "sigmoid": torch.sigmoid,
    "relu": torch.relu,
    "linear": _linear,
    "hard_sigmoid": _hard_sigmoid,
    "elu": F.elu,
    "selu": F.selu,
    "gelu": F.gelu,
    "softsign": F.softsign,
    "softplus": F.softplus,
    "silu": F.silu,
    "swish": F.silu,
}


def get(name: str | None, argument: str = "activation") -> Activation:
    """The activation called ``name`` (None means linear); unknown names are a ValueError."""
    if name is None:
        return _linear
    if not isinstance(name, str) or name not in ACTIVATIONS:
        raise RnnkitError(f"{argument} must be one of {sorted(ACTIVATIONS)}, got {name!r}")
    return ACTIVATIONS[name]
