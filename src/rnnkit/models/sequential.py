"""``Sequential``: a stack of rnnkit layers, each fed the previous one's output.

Shapes propagate through ``compute_output_shape``, so with ``input_shape`` every layer is
built at construction with the right input width (each layer's input width is the previous
layer's output width); without it, at the first call. Counts, weights and the summary
follow Keras.
"""

from __future__ import annotations

import inspect
import re
from typing import Any, Sequence, cast

import numpy as np
import torch
from torch import nn

from rnnkit.errors import RnnkitError
from rnnkit.layers import deserialize, serialize
from rnnkit.layers.base import Layer
from rnnkit.layers.core import Dense
from rnnkit.training.keras_api import KerasModel

Shape = tuple[int | None, ...]


def _check_input_shape(input_shape: Any) -> Shape:
    """``(sequence_length, features)`` (sequence_length may be None), or one entry
    (``(features,)`` for a dense network, ``(sequence_length,)`` for token ids)."""
    rule = "input_shape must be (sequence_length, features) with positive integers (sequence_length may be None)"
    if not isinstance(input_shape, (tuple, list)) or len(input_shape) not in (1, 2):
        raise RnnkitError(f"{rule}, got {input_shape!r}")
    shape: list[int | None] = []
    for i, d in enumerate(input_shape):
        if d is None and i == 0 and len(input_shape) == 2:
            shape.append(None)
        elif isinstance(d, (int, np.integer)) and not isinstance(d, bool) and d > 0:
            shape.append(int(d))
        else:
            raise RnnkitError(f"{rule}, got {input_shape!r}")
    return tuple(shape)


def _snake_case(name: str) -> str:
    # SimpleRNN -> simple_rnn, GRU -> gru, Dense -> dense (Keras's default layer names)
    name = re.sub(r"([A-Z]+)([A-Z][a-z])", r"\1_\2", name)
    return re.sub(r"([a-z0-9])([A-Z])", r"\1_\2", name).lower()


def _format_shape(shape: Any) -> str:
    """``(120, 32)`` -> ``(None, 120, 32)``: Keras prints the batch axis as None."""
    if isinstance(shape, list):
        return ", ".join(_format_shape(s) for s in shape)
    return "(" + ", ".join(str(d) for d in (None, *shape)) + ")"


def _takes_mask(layer: nn.Module) -> bool:
    return "mask" in inspect.signature(layer.forward).parameters


def _next_mask(
    layer: nn.Module, x: torch.Tensor, output: torch.Tensor, mask: torch.Tensor | None
) -> torch.Tensor | None:
    """The mask after ``layer``: its ``compute_mask(x, mask)`` when it has one; otherwise the
    mask goes on while the output keeps the (batch, time) axes (Dense, Dropout per step)."""
    compute_mask = getattr(layer, "compute_mask", None)
    if compute_mask is not None:
        return compute_mask(x, mask)
    if mask is not None and output.dim() >= 3 and output.shape[:2] == mask.shape:
        return mask
    return None


def _is_single_shape(shape: Any) -> bool:
    return isinstance(shape, tuple) and all(d is None or isinstance(d, int) for d in shape)


class Sequential(KerasModel):
    """A linear stack of layers; ``forward`` runs them in order.

    Args:
        *layers: rnnkit layers (``rk.layers.GRU(32)``, ``rk.layers.Dense(1)``, ...).
        input_shape: ``(sequence_length, features)`` of one example, batch axis left out;
            sequence_length may be None. Given (or when the first layer has ``input_size``),
            every layer is built at once; otherwise at the first call. ``(features,)``
            suits a network of Dense layers, ``(sequence_length,)`` token ids for Embedding.

    Shapes: input ``(batch, *input_shape)``; output that of the last layer.

    Training, Keras's way (:class:`rnnkit.training.keras_api.KerasModel`): ``compile``, ``fit``,
    ``evaluate``, ``predict``, ``save``; ``rk.load_model`` reads a saved model back. ``compile`` is
    Keras's, not ``torch.compile`` (call that function for PyTorch's).

    Masks: a layer with ``compute_mask(x, mask)`` (``Embedding(..., mask_zero=True)``, the
    recurrent layers) sets the mask that the following layers whose ``forward`` takes
    ``mask`` receive; layers without it pass the mask on while their output keeps the
    (batch, time) axes. A recurrent layer without return_sequences ends the mask.

    Example::

        model = Sequential(SimpleRNN(16), Dense(1), input_shape=(120, 14))
        model.count_params()          # 513 = (16·14 + 16·16 + 16) + (16·1 + 1)
        print(model.summary())
    """

    def __init__(self, *layers: Layer, input_shape: Sequence[int | None] | None = None) -> None:
        super().__init__()
        self.layers = nn.ModuleList()
        self.input_shape: Shape | None = None if input_shape is None else _check_input_shape(input_shape)
        self.output_shapes: list[Any] = []
        for layer in layers:
            self._check_layer(layer)
            self.layers.append(layer)
        if self.input_shape is None and self.layers and self._layer_list()[0].built:
            self.input_shape = self._first_layer_input_shape(self._layer_list()[0])
        if self.input_shape is not None and self.layers:
            self.build(self.input_shape)

    # --- building -------------------------------------------------------------------------
    @staticmethod
    def _check_layer(layer: Any) -> None:
        if isinstance(layer, (list, tuple)):
            raise RnnkitError(
                f"Sequential takes the layers as separate arguments, Sequential(layer1, layer2, ...), got a {type(layer).__name__}"
            )
        if not isinstance(layer, Layer):
            raise RnnkitError(f"Sequential layers must be rnnkit layers (rk.layers.*), got {layer!r}")

    def _layer_list(self) -> list[Layer]:
        """``self.layers`` as rnnkit layers: ``nn.ModuleList`` is not generic (its items are typed
        ``nn.Module``), and every item passed :meth:`_check_layer` on its way in."""
        return cast("list[Layer]", list(self.layers))

    @staticmethod
    def _first_layer_input_shape(layer: Layer) -> Shape | None:
        """The input shape that a first layer built from ``input_size`` implies."""
        size = getattr(layer, "input_size", None)
        if size is None:
            return None
        # Dense takes (batch, features); the recurrent layers take (batch, time, features)
        return (size,) if isinstance(layer, Dense) else (None, size)

    @property
    def built(self) -> bool:
        return bool(self.layers) and len(self.output_shapes) == len(self.layers)

    def build(self, input_shape: Sequence[int | None]) -> None:
        """Build every layer by propagating ``input_shape`` (batch axis left out)."""
        shape: Any = tuple(input_shape)
        self.input_shape = shape
        self.output_shapes = []
        for i, layer in enumerate(self._layer_list()):
            shape = self._build_layer(i, layer, shape)
            self.output_shapes.append(shape)

    def _build_layer(self, index: int, layer: Layer, shape: Any) -> Any:
        name = type(layer).__name__
        if not _is_single_shape(shape):
            raise RnnkitError(
                f"layer {index} ({name}) follows a layer with several outputs {shape}; "
                "Sequential passes one tensor from layer to layer (use return_state=False)"
            )
        if layer.built:
            size = getattr(layer, "input_size", None)
            if size is not None and shape and shape[-1] is not None and size != shape[-1]:
                raise RnnkitError(
                    f"layer {index} ({name}) was built for {size} input features, but its input has {shape[-1]}"
                )
        else:
            layer.build(shape)
        return layer.compute_output_shape(shape)

    def add(self, layer: Layer) -> None:
        """Append ``layer``; in a built model it is built at once from the last output shape."""
        self._check_layer(layer)
        self.layers.append(layer)
        if len(self.layers) == 1 and self.input_shape is None and layer.built:
            self.input_shape = self._first_layer_input_shape(layer)
        if self.input_shape is None:
            return
        if len(self.output_shapes) == len(self.layers) - 1:
            previous = self.output_shapes[-1] if self.output_shapes else self.input_shape
            self.output_shapes.append(self._build_layer(len(self.layers) - 1, layer, previous))
            device = next((p.device for p in self.parameters()), None)
            if device is not None:
                layer.to(device)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        layers = self.layers  # one trip through nn.Module.__getattr__, not four (microseconds at batch 1)
        if not layers:
            raise RnnkitError("Sequential has no layers: pass them to Sequential(...) or add() them")
        if len(self.output_shapes) != len(layers):  # not built
            self.build(tuple(x.shape[1:]))
            self.to(device=x.device)
        mask = None
        for layer in layers:
            output = layer(x, mask=mask) if mask is not None and _takes_mask(layer) else layer(x)
            # on the class: a layer without compute_mask would cost a failed nn.Module.__getattr__
            if mask is not None or hasattr(type(layer), "compute_mask"):
                mask = _next_mask(layer, x, output, mask)
            x = output
        return x

    def _require_built(self, what: str) -> None:
        if not self.built:
            raise RnnkitError(
                f"{what} needs a built model: pass input_shape=(sequence_length, features) or call the model once"
            )

    # --- describing ---------------------------------------------------------------------------
    def layer_names(self) -> list[str]:
        """Keras-style names, numbered per kind: ``gru``, ``gru_1``, ``dense``."""
        seen: dict[str, int] = {}
        names = []
        for layer in self.layers:
            base = _snake_case(type(layer).__name__)
            k = seen.get(base, 0)
            seen[base] = k + 1
            names.append(base if k == 0 else f"{base}_{k}")
        return names

    def count_params(self) -> int:
        """Total parameters, counted as Keras counts them."""
        self._require_built("count_params")
        return sum(layer.count_params() for layer in self._layer_list())

    def summary(self) -> str:
        """A table: per layer its name, output shape, parameters and the formula with numbers.

        Example (SimpleRNN(16) → Dense(1) on (120, 14))::

            Input shape: (None, 120, 14)
            =================================================================
            Layer (type)            Output Shape  Param #  Formula
            =================================================================
            simple_rnn (SimpleRNN)  (None, 16)        496  16·14 + 16·16 + 16
            dense (Dense)           (None, 1)          17  16·1 + 1
            =================================================================
            Total params: 513
            Trainable params: 513
            Non-trainable params: 0
        """
        self._require_built("summary")
        header = ("Layer (type)", "Output Shape", "Param #", "Formula")
        rows = [
            (
                f"{name} ({type(layer).__name__})",
                _format_shape(shape),
                f"{layer.count_params():,}",
                layer.param_formula(),
            )
            for name, layer, shape in zip(self.layer_names(), self._layer_list(), self.output_shapes)
        ]
        widths = [max(len(r[i]) for r in [header, *rows]) for i in range(4)]

        def line(row: tuple[str, str, str, str]) -> str:
            name, shape, count, formula = row
            return "  ".join([name.ljust(widths[0]), shape.ljust(widths[1]), count.rjust(widths[2]), formula]).rstrip()

        rule_width = sum(widths) + 6
        total = self.count_params()
        trainable = sum(p.numel() for layer in self.layers for p in layer.parameters() if p.requires_grad)
        out = [
            f"Input shape: {_format_shape(self.input_shape)}",
            "=" * rule_width,
            line(header),
            "=" * rule_width,
            *(line(r) for r in rows),
            "=" * rule_width,
            f"Total params: {total:,}",
            f"Trainable params: {trainable:,}",
            f"Non-trainable params: {total - trainable:,}",
        ]
        return "\n".join(out)

    # --- regularisation and state ---------------------------------------------------------------
    def regularization_loss(self) -> torch.Tensor:
        """Sum of every layer's weight penalties, a 0-dim tensor (0 when none are set)."""
        device = next((p.device for p in self.parameters()), None)
        total = torch.zeros((), device=device)
        for layer in self._layer_list():
            total = total + layer.regularization_loss()
        return total

    def reset_states(self) -> None:
        """Clear the carried state of every stateful layer."""
        for layer in self._layer_list():
            layer.reset_states()

    # --- Keras weights ------------------------------------------------------------------------------
    def get_weights(self) -> list[np.ndarray]:
        """All layers' weights in Keras's layout and order (as ``keras_model.get_weights()``)."""
        self._require_built("get_weights")
        return [w for layer in self._layer_list() for w in layer.get_weights()]

    def set_weights(self, weights: Sequence[Any]) -> None:
        """Load ``weights`` in Keras's order, e.g. ``model.set_weights(keras_model.get_weights())``."""
        self._require_built("set_weights")
        weights = list(weights)
        current = [layer.get_weights() for layer in self._layer_list()]
        expected = sum(len(c) for c in current)
        if len(weights) != expected:
            per_layer = ", ".join(f"{name}: {len(c)}" for name, c in zip(self.layer_names(), current))
            raise RnnkitError(f"set_weights expects {expected} arrays ({per_layer}), got {len(weights)}")
        start = 0
        for name, layer, old in zip(self.layer_names(), self._layer_list(), current):
            chunk = weights[start : start + len(old)]
            for k, (w, o) in enumerate(zip(chunk, old)):
                shape = np.shape(w)
                if shape != o.shape:
                    raise RnnkitError(
                        f"set_weights: array {start + k} (layer {name}, weight {k}) must have shape {o.shape}, got {shape}"
                    )
            layer.set_weights(chunk)
            start += len(old)

    # --- config ------------------------------------------------------------------------------------
    def get_config(self) -> dict[str, Any]:
        """JSON-serialisable description: ``{"input_shape": [...] or None, "layers": [...]}``."""
        return {
            "input_shape": None if self.input_shape is None else list(self.input_shape),
            "layers": [serialize(layer) for layer in self._layer_list()],
        }

    @classmethod
    def from_config(cls, config: dict[str, Any]) -> Sequential:
        """Rebuild a model (fresh weights) from ``get_config()``'s output."""
        if not isinstance(config, dict) or "layers" not in config:
            raise RnnkitError(f"Sequential config must be a dict with 'layers' (and 'input_shape'), got {config!r}")
        unknown = set(config) - {"input_shape", "layers"}
        if unknown:
            raise RnnkitError(f"Sequential config: unknown keys {sorted(unknown)}, expected 'input_shape' and 'layers'")
        layers = [deserialize(d) for d in config["layers"]]
        input_shape = config.get("input_shape")
        return cls(*layers, input_shape=None if input_shape is None else tuple(input_shape))
