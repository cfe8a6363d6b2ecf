"""Recurrent cells: one time step ``(x_t, state) -> (h_t, state)`` with Keras's maths.

A cell holds its weights in PyTorch's layout and gate order, so that the recurrent
layers (``rnnkit.layers.recurrent``) can hand them straight to PyTorch's fused kernels:

- ``weight_ih`` (G·n, m), ``weight_hh`` (G·n, n), ``bias`` (G·n,) (GRU ``reset_after``:
  ``bias_ih`` and ``bias_hh``, each (3n,)), with n = units, m = input features and
  G = 1 (SimpleRNN), 4 (LSTM: gates i, f, c, o) or 3 (GRU: PyTorch's r, z, n).

Keras's layout (``kernel`` (m, G·n), ``recurrent_kernel`` (n, G·n), GRU gates z, r, h)
is produced and read by ``keras_weights()`` / ``set_keras_weights()``.

A step is split in two so that a layer can project every time step's input with one
matmul before its loop: ``input_projection(x)`` gives W x + b for any leading shape, and
``step(xp_t, state, recurrent_kernel, recurrent_mask)`` does the rest. ``forward(x_t,
state)`` chains the two for a single raw step.
"""

from __future__ import annotations

import math
from typing import Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from rnnkit.errors import RnnkitError, check_bool, check_positive_int
from rnnkit.layers import activations

State = tuple[torch.Tensor, ...]


def glorot_uniform_(weight: torch.Tensor) -> torch.Tensor:
    """Keras's glorot-uniform on a PyTorch-layout (out, in) weight: U(±sqrt(6 / (in + out)))."""
    fan_out, fan_in = weight.shape
    limit = math.sqrt(6.0 / (fan_in + fan_out))
    with torch.no_grad():
        return weight.uniform_(-limit, limit)


class RecurrentCell(nn.Module):
    """Shared parts of the three cells: weights, their Keras layout, the input projection.

    Subclasses set ``gates`` (G) and ``keras_gate_order`` (the PyTorch gate block for each
    Keras gate block), and implement ``step``.
    """

    gates = 1
    keras_gate_order: tuple[int, ...] = (0,)

    def __init__(self, input_size: int, units: int, activation: str = "tanh", use_bias: bool = True) -> None:
        super().__init__()
        self.input_size = check_positive_int("input_size", input_size)
        self.units = check_positive_int("units", units)
        self.activation_name = activation
        self.activation = activations.get(activation, "activation")
        self.use_bias = check_bool("use_bias", use_bias)
        g, n, m = self.gates, self.units, self.input_size
        self.weight_ih = nn.Parameter(torch.empty(g * n, m))
        self.weight_hh = nn.Parameter(torch.empty(g * n, n))
        self.bias = nn.Parameter(torch.zeros(g * n)) if self.use_bias else None
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """Keras's defaults: glorot-uniform kernel, orthogonal recurrent kernel, zero bias."""
        glorot_uniform_(self.weight_ih)
        # (G·n, n) with orthonormal columns == Keras's (n, G·n) with orthonormal rows
        nn.init.orthogonal_(self.weight_hh)
        for name, p in self.named_parameters():
            if name.startswith("bias"):
                nn.init.zeros_(p)

    # --- state ------------------------------------------------------------------------------
    state_count = 1

    def zero_state(self, batch: int, like: torch.Tensor) -> State:
        """Zero state: a tuple of ``state_count`` tensors (batch, units)."""
        return tuple(like.new_zeros(batch, self.units) for _ in range(self.state_count))

    # --- one step ---------------------------------------------------------------------------
    def input_projection(self, x: torch.Tensor) -> torch.Tensor:
        """W x + b_input for x (..., m); returns (..., G·n)."""
        return F.linear(x, self.weight_ih, self.input_bias())

    def input_bias(self) -> torch.Tensor | None:
        return self.bias

    def step(
        self,
        xp_t: torch.Tensor,
        state: State,
        recurrent_kernel: torch.Tensor,
        recurrent_mask: torch.Tensor | None = None,
    ) -> tuple[torch.Tensor, State]:
        """One step from the projected input ``xp_t`` (batch, G·n).

        ``recurrent_kernel`` is ``weight_hh.t()`` (n, G·n), passed in so that a loop takes the
        transpose once; ``recurrent_mask`` (batch, n) or None multiplies h_{t-1} only where it
        enters the recurrent kernel, never the carried state.
        """
        raise NotImplementedError

    def forward(self, x_t: torch.Tensor, state: State | None = None) -> tuple[torch.Tensor, State]:
        """One raw step: x_t (batch, m), state tuple of (batch, n) -> (h_t, new state)."""
        if state is None:
            state = self.zero_state(x_t.shape[0], x_t)
        return self.step(self.input_projection(x_t), tuple(state), self.weight_hh.t())

    # --- Keras layout -----------------------------------------------------------------------
    def _to_keras_gates(self, w: torch.Tensor) -> np.ndarray:
        """PyTorch (G·n, ...) blocks -> Keras gate order, as numpy."""
        blocks = w.detach().cpu().numpy().reshape(self.gates, self.units, *w.shape[1:])
        return np.concatenate([blocks[k] for k in self.keras_gate_order], axis=0)

    def _from_keras_gates(self, w: np.ndarray) -> np.ndarray:
        blocks = w.reshape(self.gates, self.units, *w.shape[1:])
        out = np.empty_like(blocks)
        for keras_k, torch_k in enumerate(self.keras_gate_order):
            out[torch_k] = blocks[keras_k]
        return out.reshape(w.shape)

    def keras_shapes(self) -> list[tuple[int, ...]]:
        g, n, m = self.gates, self.units, self.input_size
        shapes: list[tuple[int, ...]] = [(m, g * n), (n, g * n)]
        if self.use_bias:
            shapes.append((g * n,))
        return shapes

    def keras_weights(self) -> list[np.ndarray]:
        """[kernel (m, G·n), recurrent_kernel (n, G·n), bias (G·n,)] in Keras's gate order."""
        weights = [self._to_keras_gates(self.weight_ih).T.copy(), self._to_keras_gates(self.weight_hh).T.copy()]
        if self.use_bias:
            weights.append(self._keras_bias())
        return weights

    def _keras_bias(self) -> np.ndarray:
        return self._to_keras_gates(self.bias)

    def set_keras_weights(self, weights: Sequence[np.ndarray]) -> None:
        """Load Keras's arrays (see ``keras_weights``); shapes are checked."""
        expected = self.keras_shapes()
        if len(weights) != len(expected):
            raise RnnkitError(f"weights must be {len(expected)} arrays {expected}, got {len(weights)}")
        arrays = [np.asarray(w) for w in weights]
        for i, (w, shape) in enumerate(zip(arrays, expected)):
            if tuple(w.shape) != shape:
                raise RnnkitError(f"weights[{i}] must have shape {shape}, got {tuple(w.shape)}")
        with torch.no_grad():
            self.weight_ih.copy_(torch.as_tensor(self._from_keras_gates(arrays[0].T)))
            self.weight_hh.copy_(torch.as_tensor(self._from_keras_gates(arrays[1].T)))
            if self.use_bias:
                self._set_keras_bias(arrays[2])

    def _set_keras_bias(self, bias: np.ndarray) -> None:
        self.bias.copy_(torch.as_tensor(self._from_keras_gates(bias)))

    def bias_parameters(self) -> list[nn.Parameter]:
        return [p for name, p in self.named_parameters() if name.startswith("bias")]


class SimpleRNNCell(RecurrentCell):
    """Elman step, as Keras's ``SimpleRNNCell``.

    h_t = act(W x_t + U h_{t-1} + b)

    Args:
        input_size: m, features of x_t.
        units: n, size of h.
        activation: Keras name, default ``"tanh"``.
        use_bias: default True.

    Shapes: x_t (batch, m), state ``(h,)`` with h (batch, n); returns (h_t, (h_t,)).

    Example::

        cell = SimpleRNNCell(14, 16)
        h, (h,) = cell(torch.randn(8, 14))
    """

    def step(self, xp_t, state, recurrent_kernel, recurrent_mask=None):
        (h,) = state
        h_in = h if recurrent_mask is None else h * recurrent_mask
        h = self.activation(torch.addmm(xp_t, h_in, recurrent_kernel))
        return h, (h,)


class LSTMCell(RecurrentCell):
    """LSTM step, as Keras's ``LSTMCell`` (gates i, f, c, o; one bias).

    i = σ(W_i x + U_i h + b_i), f = σ(W_f x + U_f h + b_f), o = σ(W_o x + U_o h + b_o),
    g = act(W_c x + U_c h + b_c), c_t = f ⊙ c_{t-1} + i ⊙ g, h_t = o ⊙ act(c_t)

    Args:
        input_size: m. units: n.
        activation: default ``"tanh"``; recurrent_activation: default ``"sigmoid"``.
        use_bias: default True. unit_forget_bias: default True (forget-gate bias starts at 1).

    Shapes: x_t (batch, m), state ``(h, c)`` each (batch, n); returns (h_t, (h_t, c_t)).

    Example::

        cell = LSTMCell(7, 32)
        h, (h, c) = cell(torch.randn(8, 7))
    """

    gates = 4
    keras_gate_order = (0, 1, 2, 3)  # PyTorch i, f, g, o == Keras i, f, c, o
    state_count = 2

    def __init__(
        self,
        input_size: int,
        units: int,
        activation: str = "tanh",
        recurrent_activation: str = "sigmoid",
        use_bias: bool = True,
        unit_forget_bias: bool = True,
    ) -> None:
        self.unit_forget_bias = check_bool("unit_forget_bias", unit_forget_bias)
        super().__init__(input_size, units, activation, use_bias)
        self.recurrent_activation_name = recurrent_activation
        self.recurrent_activation = activations.get(recurrent_activation, "recurrent_activation")

    def reset_parameters(self) -> None:
        super().reset_parameters()
        if self.bias is not None and self.unit_forget_bias:
            with torch.no_grad():
                self.bias[self.units : 2 * self.units] = 1.0

    def step(self, xp_t, state, recurrent_kernel, recurrent_mask=None):
        h, c = state
        h_in = h if recurrent_mask is None else h * recurrent_mask
        gates = torch.addmm(xp_t, h_in, recurrent_kernel)  # (batch, 4n)
        i, f, g, o = gates.chunk(4, 1)
        sig = self.recurrent_activation
        c = sig(f) * c + sig(i) * self.activation(g)
        h = sig(o) * self.activation(c)
        return h, (h, c)


class GRUCell(RecurrentCell):
    """GRU step, as Keras's ``GRUCell`` (update z, reset r, candidate h̃).

    z = σ(W_z x + b_z + U_z h + b'_z), r = σ(W_r x + b_r + U_r h + b'_r)
    reset_after=True:  h̃ = act(W_h x + b_h + r ⊙ (U_h h + b'_h))   (PyTorch's and cuDNN's form)
    reset_after=False: h̃ = act(W_h x + U_h (r ⊙ h) + b_h)          (one bias)
    h_t = z ⊙ h_{t-1} + (1 − z) ⊙ h̃

    Args:
        input_size: m. units: n.
        activation: default ``"tanh"``; recurrent_activation: default ``"sigmoid"``.
        use_bias: default True. reset_after: default True (input bias b and recurrent bias b').

    Shapes: x_t (batch, m), state ``(h,)`` with h (batch, n); returns (h_t, (h_t,)).
    Weights are stored in PyTorch's gate order r, z, n; Keras's is z, r, h.

    Example::

        cell = GRUCell(7, 32)
        h, (h,) = cell(torch.randn(8, 7))
    """

    gates = 3
    keras_gate_order = (1, 0, 2)  # Keras z, r, h <- PyTorch blocks z=1, r=0, n=2

    def __init__(
        self,
        input_size: int,
        units: int,
        activation: str = "tanh",
        recurrent_activation: str = "sigmoid",
        use_bias: bool = True,
        reset_after: bool = True,
    ) -> None:
        self.reset_after = check_bool("reset_after", reset_after)
        super().__init__(input_size, units, activation, use_bias)
        self.recurrent_activation_name = recurrent_activation
        self.recurrent_activation = activations.get(recurrent_activation, "recurrent_activation")
        if self.use_bias and self.reset_after:
            # Keras's (2, 3n) bias: row 0 goes with the kernel, row 1 with the recurrent kernel,
            # exactly PyTorch's b_ih and b_hh.
            del self.bias
            self.bias = None
            self.bias_ih = nn.Parameter(torch.zeros(3 * self.units))
            self.bias_hh = nn.Parameter(torch.zeros(3 * self.units))

    def input_bias(self):
        return self.bias_ih if (self.use_bias and self.reset_after) else self.bias

    def step(self, xp_t, state, recurrent_kernel, recurrent_mask=None):
        (h,) = state
        n = self.units
        h_in = h if recurrent_mask is None else h * recurrent_mask
        sig = self.recurrent_activation
        xp_rz, xp_n = xp_t.split([2 * n, n], 1)
        if self.reset_after:
            bias_hh = self.bias_hh_or_none()
            gh = torch.mm(h_in, recurrent_kernel) if bias_hh is None else torch.addmm(bias_hh, h_in, recurrent_kernel)
            gh_rz, gh_n = gh.split([2 * n, n], 1)
            r, z = sig(xp_rz + gh_rz).chunk(2, 1)
            cand = self.activation(xp_n + r * gh_n)
        else:
            u_rz, u_n = recurrent_kernel.split([2 * n, n], 1)
            r, z = sig(torch.addmm(xp_rz, h_in, u_rz)).chunk(2, 1)
            cand = self.activation(torch.addmm(xp_n, r * h_in, u_n))
        # z ⊙ h + (1 − z) ⊙ h̃ with the unmasked h
        h = cand + z * (h - cand)
        return h, (h,)

    def bias_hh_or_none(self) -> torch.Tensor | None:
        return self.bias_hh if (self.use_bias and self.reset_after) else None

    def keras_shapes(self):
        shapes = super().keras_shapes()
        if self.use_bias and self.reset_after:
            shapes[2] = (2, 3 * self.units)
        return shapes

    def _keras_bias(self):
        if self.reset_after:
            return np.stack([self._to_keras_gates(self.bias_ih), self._to_keras_gates(self.bias_hh)])
        return super()._keras_bias()

    def _set_keras_bias(self, bias):
        if self.reset_after:
            self.bias_ih.copy_(torch.as_tensor(self._from_keras_gates(bias[0])))
            self.bias_hh.copy_(torch.as_tensor(self._from_keras_gates(bias[1])))
        else:
            super()._set_keras_bias(bias)
