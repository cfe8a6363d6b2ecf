"""Core layers with Keras semantics: ``Dense``, ``Dropout``, ``Embedding``, ``Flatten``.

``Dense`` acts on the last axis, so it works on ``(batch, features)`` and, per time step,
on ``(batch, time, features)``. Weights are held in Keras's layout (``kernel (in, units)``)
so that ``get_weights()`` / ``set_weights()`` exchange arrays with Keras unchanged.
"""

from __future__ import annotations

import math
from typing import Any, Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from rnnkit.errors import RnnkitError, check_bool, check_positive_int
from rnnkit.layers import activations, regularizers
from rnnkit.layers.base import Layer, parameter

Shape = tuple[int | None, ...]


def _check_weights(
    layer: Layer, weights: Sequence[Any], expected: list[tuple[str, tuple[int, ...]]]
) -> list[np.ndarray]:
    """Check a ``set_weights`` argument against ``[(name, shape), ...]``; returns float arrays."""
    cls = type(layer).__name__
    if len(weights) != len(expected):
        names = ", ".join(f"{name} {shape}" for name, shape in expected)
        raise RnnkitError(f"{cls}.set_weights expects {len(expected)} arrays ({names}), got {len(weights)}")
    arrays = []
    for w, (name, shape) in zip(weights, expected):
        a = np.asarray(w)
        if a.shape != shape:
            raise RnnkitError(f"{cls}.set_weights: {name} must have shape {shape}, got {a.shape}")
        arrays.append(a)
    return arrays


def _copy_into(param: nn.Parameter, array: np.ndarray) -> None:
    with torch.no_grad():
        param.copy_(torch.as_tensor(array, dtype=param.dtype, device=param.device))


class Dense(Layer):
    """Fully connected layer on the last axis: ``o = activation(h W + b)``.

    Parameters: ``in·units + units`` (``in·units`` without bias), as Keras counts them.

    Args:
        units: output width k (> 0).
        activation: a Keras activation name (``"relu"``, ``"tanh"``, ...); None is linear.
        use_bias: add the bias b (default True).
        kernel_regularizer: penalty on W, e.g. ``rk.regularizers.l2(1e-3)`` (default None).
        bias_regularizer: penalty on b (default None).
        input_size: input width; left out, it is inferred at the first call.

    Shapes: input ``(..., in)``, output ``(..., units)``; weights ``kernel (in, units)``
    (glorot-uniform) and ``bias (units,)`` (zeros), Keras's layout.

    Example::

        dense = Dense(1, input_size=16)
        y = dense(torch.randn(8, 16))          # (8, 1)
        dense.count_params()                   # 17
    """

    def __init__(
        self,
        units: int,
        activation: str | None = None,
        use_bias: bool = True,
        kernel_regularizer: Any = None,
        bias_regularizer: Any = None,
        input_size: int | None = None,
    ) -> None:
        super().__init__()
        self.units = check_positive_int("units", units)
        self.activation_name = activation
        self.activation = activations.get(activation, "activation")
        self.use_bias = check_bool("use_bias", use_bias)
        self.kernel_regularizer = regularizers.get(kernel_regularizer, "kernel_regularizer")
        self.bias_regularizer = regularizers.get(bias_regularizer, "bias_regularizer")
        self.input_size: int | None = None
        self.kernel: nn.Parameter | None = None
        self.bias: nn.Parameter | None = None
        if input_size is not None:
            self.build((check_positive_int("input_size", input_size),))

    def build(self, input_shape: Shape) -> None:
        if len(input_shape) < 1 or input_shape[-1] is None:
            raise RnnkitError(
                f"Dense needs a known number of input features on the last axis, got input shape {input_shape}"
            )
        m = check_positive_int("Dense input features", input_shape[-1])
        self.input_size = m
        self.kernel = nn.Parameter(torch.empty(m, self.units))
        # glorot-uniform: U(±sqrt(6 / (fan_in + fan_out))), symmetric in the two fans
        nn.init.xavier_uniform_(self.kernel)
        self.bias = nn.Parameter(torch.zeros(self.units)) if self.use_bias else None
        self.built = True

    def compute_output_shape(self, input_shape: Shape) -> Shape:
        return tuple(input_shape[:-1]) + (self.units,)

    def _weight_dtype(self) -> torch.dtype | None:
        return self.kernel.dtype if self.built else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.dim() < 2:
            raise RnnkitError(f"Dense expects inputs of shape (batch, ..., features), got shape {tuple(x.shape)}")
        self.maybe_build(x)
        kernel, bias = parameter(self, "kernel"), parameter(self, "bias")
        if x.dtype != kernel.dtype:
            x = self.cast_input(x)
        if x.shape[-1] != self.input_size:
            raise RnnkitError(
                f"Dense was built for {self.input_size} input features, got {x.shape[-1]} (input shape {tuple(x.shape)})"
            )
        if x.dim() == 2 and bias is not None:
            # F.linear's own call for a 2-D input with a bias (the same values), without its two
            # transposes: 1.5 µs against 2.7 µs at batch 1
            y = torch.addmm(bias, x, kernel)
        else:  # F.linear wants (out, in); the transpose is a view, addmm reads it without a copy
            y = F.linear(x, kernel.t(), bias)
        activation = self.activation
        return y if activation is activations.linear_function else activation(y)

    def param_formula(self) -> str:
        if not self.built:
            return "?"
        product = f"{self.input_size}·{self.units}"
        return f"{product} + {self.units}" if self.use_bias else product

    def get_config(self) -> dict[str, Any]:
        return {
            "units": self.units,
            "activation": self.activation_name,
            "use_bias": self.use_bias,
            "kernel_regularizer": regularizers.serialize(self.kernel_regularizer),
            "bias_regularizer": regularizers.serialize(self.bias_regularizer),
            "input_size": self.input_size,
        }

    def _expected_weights(self) -> list[tuple[str, tuple[int, ...]]]:
        expected: list[tuple[str, tuple[int, ...]]] = [("kernel", (self.input_size, self.units))]
        if self.use_bias:
            expected.append(("bias", (self.units,)))
        return expected

    def get_weights(self) -> list[np.ndarray]:
        if not self.built:
            return []
        return [p.detach().cpu().numpy().copy() for p in (self.kernel, self.bias) if p is not None]

    def set_weights(self, weights: Sequence[Any]) -> None:
        if not self.built:
            raise RnnkitError("Dense.set_weights needs a built layer: pass input_size or call the layer once")
        arrays = _check_weights(self, weights, self._expected_weights())
        _copy_into(self.kernel, arrays[0])
        if self.use_bias:
            _copy_into(self.bias, arrays[1])

    def regularization_loss(self) -> torch.Tensor:
        terms = []
        if self.built and self.kernel_regularizer is not None:
            terms.append(self.kernel_regularizer(self.kernel))
        if self.built and self.use_bias and self.bias_regularizer is not None:
            terms.append(self.bias_regularizer(self.bias))
        if not terms:
            return torch.zeros((), device=self.kernel.device if self.built else None)
        return torch.stack(terms).sum()

    def extra_repr(self) -> str:
        return f"units={self.units}, activation={self.activation_name!r}, input_size={self.input_size}"


class Dropout(Layer):
    """Inverted dropout, as Keras: in training, zero each value with probability ``rate``
    and scale the rest by ``1 / (1 - rate)``; in eval mode, the identity.

    Args:
        rate: probability of dropping a value, in [0, 1).

    Shapes: output = input, any shape.

    Example::

        drop = Dropout(0.5)
        drop.train(); y = drop(torch.ones(4, 10))   # entries 0.0 or 2.0
        drop.eval();  y = drop(torch.ones(4, 10))   # all 1.0
    """

    def __init__(self, rate: float) -> None:
        super().__init__()
        if (
            isinstance(rate, bool)
            or not isinstance(rate, (int, float, np.floating, np.integer))
            or not math.isfinite(rate)
            or not 0.0 <= rate < 1.0
        ):
            raise RnnkitError(f"rate must be in [0, 1), got {rate!r}")
        self.rate = float(rate)
        self.built = True

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.training or self.rate == 0.0:
            return x
        return F.dropout(x, p=self.rate, training=True)

    def param_formula(self) -> str:
        return "0"

    def get_config(self) -> dict[str, Any]:
        return {"rate": self.rate}

    def extra_repr(self) -> str:
        return f"rate={self.rate}"


class Embedding(Layer):
    """Lookup table from integer token ids to dense vectors (Keras ``Embedding``).

    Parameters: ``input_dim·output_dim``.

    Args:
        input_dim: vocabulary size; ids must lie in [0, input_dim).
        output_dim: vector width.
        embeddings_regularizer: penalty on the table (default None).
        mask_zero: default False; True: id 0 is padding, and ``compute_mask(x)`` gives the
            mask ``x != 0`` (batch, time) that ``Sequential`` passes to the following
            recurrent layers, so padded steps change nothing (Keras's ``mask_zero``).

    Shapes: input ``(batch, time)`` integer ids, output ``(batch, time, output_dim)``;
    weight ``embeddings (input_dim, output_dim)``, initialised U(-0.05, 0.05) like Keras.

    Example::

        emb = Embedding(1000, 16)
        v = emb(torch.tensor([[3, 14, 15]]))   # (1, 3, 16)
    """

    def __init__(
        self, input_dim: int, output_dim: int, embeddings_regularizer: Any = None, mask_zero: bool = False
    ) -> None:
        super().__init__()
        self.mask_zero = check_bool("mask_zero", mask_zero)
        self.input_dim = check_positive_int("input_dim", input_dim)
        self.output_dim = check_positive_int("output_dim", output_dim)
        self.embeddings_regularizer = regularizers.get(embeddings_regularizer, "embeddings_regularizer")
        self.embeddings = nn.Parameter(torch.empty(self.input_dim, self.output_dim))
        nn.init.uniform_(self.embeddings, -0.05, 0.05)
        # the table does not depend on the input's shape, so the layer is built from the start
        self.built = True

    def compute_output_shape(self, input_shape: Shape) -> Shape:
        return tuple(input_shape) + (self.output_dim,)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.dtype.is_floating_point or x.dtype.is_complex or x.dtype == torch.bool:
            raise RnnkitError(f"Embedding inputs must be integer token ids, got dtype {x.dtype}")
        if x.numel():
            low, high = int(x.min()), int(x.max())
            if low < 0 or high >= self.input_dim:
                raise RnnkitError(
                    f"Embedding inputs must be ids in [0, {self.input_dim}) (input_dim), got values in [{low}, {high}]"
                )
        return F.embedding(x, self.embeddings)

    def compute_mask(self, x: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor | None:
        """``x != 0`` (batch, time) bool with mask_zero, else None."""
        return (x != 0) if self.mask_zero else None

    def param_formula(self) -> str:
        return f"{self.input_dim}·{self.output_dim}"

    def get_config(self) -> dict[str, Any]:
        return {
            "input_dim": self.input_dim,
            "output_dim": self.output_dim,
            "embeddings_regularizer": regularizers.serialize(self.embeddings_regularizer),
            "mask_zero": self.mask_zero,
        }

    def get_weights(self) -> list[np.ndarray]:
        return [self.embeddings.detach().cpu().numpy().copy()]

    def set_weights(self, weights: Sequence[Any]) -> None:
        (table,) = _check_weights(self, weights, [("embeddings", (self.input_dim, self.output_dim))])
        _copy_into(self.embeddings, table)

    def regularization_loss(self) -> torch.Tensor:
        if self.embeddings_regularizer is None:
            return torch.zeros((), device=self.embeddings.device)
        return self.embeddings_regularizer(self.embeddings)

    def extra_repr(self) -> str:
        return f"input_dim={self.input_dim}, output_dim={self.output_dim}"


class Flatten(Layer):
    """Flatten every axis after the batch axis: ``(batch, d1, d2, ...) -> (batch, d1·d2·...)``.

    The course's naive baseline flattens a window of (sequence_length, features) into one
    vector for a dense network. No parameters.

    Example::

        Flatten()(torch.zeros(32, 240, 14)).shape   # (32, 3360)
    """

    def __init__(self) -> None:
        super().__init__()
        self.built = True

    def compute_output_shape(self, input_shape: Shape) -> Shape:
        if any(d is None for d in input_shape):
            return (None,)
        return (math.prod(input_shape),)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.dim() < 2:
            raise RnnkitError(f"Flatten expects inputs of shape (batch, ...), got shape {tuple(x.shape)}")
        return x.reshape(x.shape[0], -1)

    def param_formula(self) -> str:
        return "0"
