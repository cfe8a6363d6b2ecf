"""``Bidirectional``: run a recurrent layer forwards and a copy of it backwards, as Keras does."""

from __future__ import annotations

import warnings
from typing import Any

import numpy as np
import torch

from rnnkit.errors import RnnkitError
from rnnkit.layers.base import Layer
from rnnkit.layers.recurrent import GRU, LSTM, RNN, SimpleRNN

MERGE_MODES = ("concat", "sum", "mul", "ave", None)
RECURRENT_LAYERS: dict[str, type[RNN]] = {"SimpleRNN": SimpleRNN, "LSTM": LSTM, "GRU": GRU}


def _resolve_layer(layer: Any) -> RNN:
    if isinstance(layer, RNN):
        return layer
    if isinstance(layer, dict) and layer.get("class_name") in RECURRENT_LAYERS:
        return RECURRENT_LAYERS[layer["class_name"]](**layer.get("config", {}))
    raise RnnkitError(
        f"layer must be a SimpleRNN, LSTM or GRU layer (or its {{'class_name', 'config'}} dict), got {layer!r}"
    )


class Bidirectional(Layer):
    """Bidirectional wrapper for a recurrent layer, as Keras's ``Bidirectional``.

    The forward layer is ``layer`` itself; the backward layer is a fresh copy built from
    ``layer.get_config()`` with ``go_backwards`` flipped (its own weights). With
    ``return_sequences`` the backward outputs are reversed back into time order, then merged.

    Args:
        layer: a ``SimpleRNN``, ``LSTM`` or ``GRU`` (or its config dict ``{"class_name", "config"}``).
        merge_mode: ``"concat"`` (default, last axis 2n), ``"sum"``, ``"mul"``, ``"ave"``, or None
            (return the two outputs separately).

    Returns: the merged output ((batch, time, 2n) for concat with return_sequences, else
    (batch, 2n)); merge_mode None gives (forward output, backward output). With the layer's
    ``return_state``: the output(s), then the forward states, then the backward states.
    ``initial_state``: forward states followed by backward states.

    ``mask`` (batch, time) bool, True for real steps: both directions skip the padded steps,
    so the backward direction starts at each row's last real step (it sees the padding of a
    right-padded row first and carries its state through it unchanged). With
    ``return_sequences`` the outputs at padded steps are zeros, as Keras forces
    ``zero_output_for_mask`` on the wrapped layers.

    Parameters: 2 × the layer's; ``get_weights()`` gives the forward weights, then the backward.

    Example::

        layer = Bidirectional(LSTM(32, input_size=7))
        layer.count_params()                    # 10240
        y = layer(torch.randn(8, 20, 7))        # (8, 64)
    """

    def __init__(self, layer: Any, merge_mode: str | None = "concat") -> None:
        super().__init__()
        if merge_mode not in MERGE_MODES:
            raise RnnkitError(f"merge_mode must be one of {list(MERGE_MODES)}, got {merge_mode!r}")
        self.merge_mode = merge_mode
        self.forward_layer = _resolve_layer(layer)
        config = self.forward_layer.get_config()
        config["go_backwards"] = not config["go_backwards"]
        with warnings.catch_warnings():
            # the forward layer already warned about its own settings
            warnings.simplefilter("ignore", UserWarning)
            self.backward_layer = type(self.forward_layer)(**config)
        self.built = self.forward_layer.built

    @property
    def return_sequences(self) -> bool:
        return self.forward_layer.return_sequences

    @property
    def return_state(self) -> bool:
        return self.forward_layer.return_state

    @property
    def stateful(self) -> bool:
        return self.forward_layer.stateful

    @property
    def input_size(self) -> int | None:
        return self.forward_layer.input_size

    def build(self, input_shape: tuple[int | None, ...]) -> None:
        for layer in (self.forward_layer, self.backward_layer):
            if not layer.built:
                layer.build(input_shape)
        self.built = True

    def compute_output_shape(self, input_shape: tuple[int | None, ...]) -> Any:
        shape = self.forward_layer.compute_output_shape(input_shape)
        states: list[tuple[int, ...]] = []
        if self.return_state:
            shape, states = shape[0], list(shape[1:])
        if self.merge_mode == "concat":
            outputs = [shape[:-1] + (2 * shape[-1],)]
        elif self.merge_mode is None:
            outputs = [shape, shape]
        else:
            outputs = [shape]
        if not self.return_state and len(outputs) == 1:
            return outputs[0]
        return outputs + states + states

    def count_params(self) -> int:
        return self.forward_layer.count_params() + self.backward_layer.count_params()

    def param_formula(self) -> str:
        return f"2 × ({self.forward_layer.param_formula()})"

    def get_config(self) -> dict[str, Any]:
        layer = {"class_name": type(self.forward_layer).__name__, "config": self.forward_layer.get_config()}
        return {"layer": layer, "merge_mode": self.merge_mode}

    def get_weights(self) -> list[np.ndarray]:
        """The forward layer's Keras arrays, then the backward layer's."""
        return self.forward_layer.get_weights() + self.backward_layer.get_weights()

    def set_weights(self, weights: list[np.ndarray]) -> None:
        if len(weights) % 2:
            raise RnnkitError(
                f"weights must hold the forward then the backward arrays (an even count), got {len(weights)}"
            )
        half = len(weights) // 2
        self.forward_layer.set_weights(weights[:half])
        self.backward_layer.set_weights(weights[half:])
        self.built = True

    def regularization_loss(self) -> torch.Tensor:
        return self.forward_layer.regularization_loss() + self.backward_layer.regularization_loss()

    def reset_states(self) -> None:
        self.forward_layer.reset_states()
        self.backward_layer.reset_states()

    def compute_mask(self, x: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor | None:
        """The mask for the next layer: the input's mask with return_sequences, else None (Keras)."""
        return mask if self.return_sequences else None

    def forward(self, x: torch.Tensor, initial_state: Any = None, mask: torch.Tensor | None = None) -> Any:
        """Run both directions over x (batch, time, features) and merge; see the class docstring."""
        if x.dim() != 3:
            raise RnnkitError(f"input must be 3-D (batch, time, features), got shape {tuple(x.shape)}")
        forward_state = backward_state = None
        if initial_state is not None:
            initial_state = list(initial_state)
            half = len(initial_state) // 2
            forward_state, backward_state = initial_state[:half], initial_state[half:]
        y = self.forward_layer(x, initial_state=forward_state, mask=mask)
        y_rev = self.backward_layer(x, initial_state=backward_state, mask=mask)
        self.built = True
        states: tuple[torch.Tensor, ...] = ()
        if self.return_state:
            states = tuple(y[1:]) + tuple(y_rev[1:])
            y, y_rev = y[0], y_rev[0]
        if self.return_sequences:
            y_rev = y_rev.flip(1)  # back into time order
            if mask is not None:
                real = mask.to(y.device).unsqueeze(-1)  # (batch, time, 1)
                y, y_rev = torch.where(real, y, torch.zeros_like(y)), torch.where(real, y_rev, torch.zeros_like(y_rev))
        if self.merge_mode == "concat":
            output: Any = (torch.cat([y, y_rev], dim=-1),)
        elif self.merge_mode == "sum":
            output = (y + y_rev,)
        elif self.merge_mode == "ave":
            output = ((y + y_rev) / 2,)
        elif self.merge_mode == "mul":
            output = (y * y_rev,)
        else:
            output = (y, y_rev)
        if not self.return_state and len(output) == 1:
            return output[0]
        return output + states

    def extra_repr(self) -> str:
        return f"merge_mode={self.merge_mode!r}"
