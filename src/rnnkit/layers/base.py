"""The protocol that every rnnkit layer follows.

A layer is a ``torch.nn.Module`` on ``(batch, time, features)`` (or ``(batch, features)``)
that may be built lazily: when ``input_size`` is left out, the weights are created at the
first call (or by ``Sequential`` from ``input_shape``), like Keras's ``build``.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from torch import nn

from rnnkit.errors import RnnkitError


def parameter(module: nn.Module, name: str) -> Any:
    """``getattr(module, name)`` for a parameter (None where it is None), read from nn.Module's dict
    of parameters when it is there: ``nn.Module.__getattr__`` costs half a microsecond a look-up,
    and a batch-1 inference call of a recurrent layer and a Dense made seven. A parametrised weight
    (``torch.nn.utils.parametrize``) is not in that dict; ``getattr`` finds it."""
    value = module._parameters.get(name)
    return getattr(module, name) if value is None else value


class Layer(nn.Module):
    """Base class: lazy build, parameter count, Keras weights, regularisation, config."""

    def __init__(self) -> None:
        super().__init__()
        self.built = False

    # --- building -----------------------------------------------------------------------
    def build(self, input_shape: tuple[int | None, ...]) -> None:
        """Create the weights for inputs of ``input_shape`` (leading batch axis left out)."""
        self.built = True

    def maybe_build(self, x: torch.Tensor) -> None:
        if not self.built:
            self.build(tuple(x.shape[1:]))
            self.to(device=x.device)

    def cast_input(self, x: torch.Tensor) -> torch.Tensor:
        """``x`` in the dtype of the layer's weights, as Keras casts inputs to a layer's dtype
        (float64 data into a float32 model is converted, not a PyTorch dtype error); an input that
        is not floating point (token ids, bools) is refused with one line."""
        if not isinstance(x, torch.Tensor):
            raise RnnkitError(f"{type(self).__name__} input must be a torch.Tensor, got {type(x).__name__}")
        if not x.is_floating_point():
            raise RnnkitError(
                f"{type(self).__name__} input must be floating point, got {x.dtype}"
                " (token ids go through an Embedding layer first)"
            )
        dtype = self._weight_dtype()
        return x if dtype is None or x.dtype == dtype else x.to(dtype)

    def _weight_dtype(self) -> torch.dtype | None:
        """The dtype of the layer's weights (None without weights); layers override it with a
        direct look-up, since ``parameters()`` walks the module tree on every call."""
        weight = next(iter(self.parameters()), None)
        return None if weight is None else weight.dtype

    def compute_output_shape(self, input_shape: tuple[int | None, ...]) -> Any:
        """Output shape (without the batch axis) for an input of ``input_shape``."""
        return input_shape

    # --- counting and describing ----------------------------------------------------------
    def count_params(self) -> int:
        return sum(p.numel() for p in self.parameters())

    def param_formula(self) -> str:
        """The parameter count as a formula with the numbers filled in, e.g. ``16·14 + 16·16 + 16``."""
        return str(self.count_params())

    def get_config(self) -> dict[str, Any]:
        """Constructor arguments, JSON-serialisable, so that ``type(self)(**config)`` rebuilds the layer."""
        return {}

    # --- weights in Keras's layout ---------------------------------------------------------
    def get_weights(self) -> list[np.ndarray]:
        return []

    def set_weights(self, weights: list[np.ndarray]) -> None:
        if weights:
            raise RnnkitError(f"{type(self).__name__} has no weights, got {len(weights)} arrays")

    # --- regularisation and state ----------------------------------------------------------
    def regularization_loss(self) -> torch.Tensor:
        return torch.zeros(())

    def reset_states(self) -> None:
        """Clear carried state (stateful recurrent layers); a no-op elsewhere."""
