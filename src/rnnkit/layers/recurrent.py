"""Recurrent layers with Keras semantics: ``SimpleRNN``, ``LSTM``, ``GRU``.

One base class, ``RNN``, owns the time loop, ``stateful``, ``go_backwards``, dropout and
the choice between rnnkit's compiled CPU kernel (``rnnkit.layers.kernel``), PyTorch's fused
kernels (``torch.rnn_tanh``/``rnn_relu``/``lstm``/``gru``, cuDNN on a GPU) and the step loop
over a cell (``rnnkit.layers.cells``). The three public layers only say which cell they use,
which fused operator fits, and how they count.

Compiled kernel (the default on a CPU, ``use_kernel``/``RNNKIT_KERNEL``): float32/float64 with
standard activations (SimpleRNN tanh or relu, GRU with either ``reset_after``, LSTM), with every
dropout mode, initial and stateful states, ``go_backwards`` and any mask. Otherwise (a GPU,
other activations or dtypes, autocast, ``use_kernel("torch")``) the paths below.

Fused path: standard activations (tanh, and sigmoid for the gates; SimpleRNN also relu),
GRU ``reset_after=True``, and no per-sample recurrent dropout. Input dropout is one mask
per sequence, so it is applied to x before the kernel; ``recurrent_dropout_mode="batch"``
draws one recurrent mask m for the whole batch and runs the kernel on U·diag(m).
The step loop is the reference; tests hold the two to the same numbers.

Masks (variable-length sequences), as Keras: ``layer(x, mask=m)`` with m (batch, time) bool,
True for a real step. At a masked step the state is carried over unchanged and the step's
output repeats the previous output (zeros before the first real step), so the final state
is the state after each row's last real step. Where every row's real steps form one
contiguous run (right padding, left padding, and right padding seen by ``go_backwards``),
each run is moved to the front of its row and a fused kernel runs:
- when the state is h alone (SimpleRNN, GRU; LSTM without return_state or stateful), the
  plain kernel on the whole batch, reading each row's final h off its outputs at its last
  real step (outputs before that step do not depend on what follows);
- when the LSTM's c is needed, on a GPU the kernel on a ``torch.nn.utils.rnn.PackedSequence``
  (cuDNN's own variable-length mode); on a CPU the step loop, because PyTorch's packed CPU
  kernels are slow to differentiate (GRU(32), (256, 120, 14), forward + backward: packed
  0.33 s, step loop 0.07 s, plain kernel 0.05 s).
Other masks (holes, rows without a real step) take the step loop.
"""

from __future__ import annotations

import math
import warnings
from typing import Any, cast

import numpy as np
import torch
from torch.nn.utils.rnn import PackedSequence, pack_padded_sequence, pad_packed_sequence

from rnnkit.errors import RnnkitError, check_bool, check_positive_int
from rnnkit.layers import activations, kernel, regularizers
from rnnkit.layers.base import Layer, parameter
from rnnkit.layers.cells import GRUCell, LSTMCell, RecurrentCell, SimpleRNNCell, State
from rnnkit.layers.gru_sequence import GRUSequenceWithRecurrentMask

RECURRENT_DROPOUT_MODES = ("sample", "batch")


def _check_rate(value: object, argument: str) -> float:
    if (
        isinstance(value, bool)
        or not isinstance(value, (int, float, np.floating, np.integer))
        or not math.isfinite(value)
        or not 0.0 <= value < 1.0
    ):
        raise RnnkitError(f"{argument} must be in [0, 1), got {value!r}")
    return float(value)


def _dropout_mask(shape: tuple[int, ...], rate: float, like: torch.Tensor) -> torch.Tensor:
    """Keep with probability 1 − rate, scaled by 1 / (1 − rate) (inverted dropout)."""
    return like.new_empty(shape).bernoulli_(1.0 - rate).div_(1.0 - rate)


def _check_mask(mask: Any, x: torch.Tensor) -> torch.Tensor | None:
    """Validate a (batch, time) bool mask for x (batch, time, features); None when all steps are real."""
    if mask is None:
        return None
    if not isinstance(mask, torch.Tensor) or mask.dtype != torch.bool:
        raise RnnkitError(f"mask must be a bool tensor (batch, time), True for real steps, got {mask!r:.80}")
    if tuple(mask.shape) != tuple(x.shape[:2]):
        raise RnnkitError(
            f"mask must have the input's (batch, time) shape {tuple(x.shape[:2])}, got {tuple(mask.shape)}"
        )
    mask = mask.to(x.device)
    return None if bool(mask.all()) else mask


def _contiguous_runs(mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor] | None:
    """(start, length), each (batch,), when every row's True steps form one non-empty run; else None."""
    lengths = mask.sum(1)
    if bool((lengths == 0).any()):
        return None
    start = mask.int().argmax(1)  # the first True step of each row
    steps = torch.arange(mask.shape[1], device=mask.device)
    runs = (steps >= start[:, None]) & (steps < (start + lengths)[:, None])
    return (start, lengths) if torch.equal(runs, mask) else None


class RNN(Layer):
    """Base recurrent layer on (batch, time, features); see ``SimpleRNN``, ``LSTM``, ``GRU``.

    Subclasses set ``cell_class``, and implement ``_cell_options``, ``_fused_ok``, ``_fused``
    and ``param_formula``.
    """

    cell_class: type[RecurrentCell] = RecurrentCell
    fused_activations: tuple[str, ...] = ("tanh",)

    def __init__(
        self,
        units: int,
        activation: str = "tanh",
        use_bias: bool = True,
        return_sequences: bool = False,
        return_state: bool = False,
        go_backwards: bool = False,
        stateful: bool = False,
        dropout: float = 0.0,
        recurrent_dropout: float = 0.0,
        recurrent_dropout_mode: str = "sample",
        kernel_regularizer: Any = None,
        recurrent_regularizer: Any = None,
        bias_regularizer: Any = None,
        input_size: int | None = None,
    ) -> None:
        super().__init__()
        self.units = check_positive_int("units", units)
        activations.get(activation, "activation")  # validate the name now, not at build
        self.activation = activation
        self.use_bias = check_bool("use_bias", use_bias)  # no truthy strings: "false" is refused
        self.return_sequences = check_bool("return_sequences", return_sequences)
        self.return_state = check_bool("return_state", return_state)
        self.go_backwards = check_bool("go_backwards", go_backwards)
        self.stateful = check_bool("stateful", stateful)
        self.dropout = _check_rate(dropout, "dropout")
        self.recurrent_dropout = _check_rate(recurrent_dropout, "recurrent_dropout")
        if recurrent_dropout_mode not in RECURRENT_DROPOUT_MODES:
            raise RnnkitError(
                f"recurrent_dropout_mode must be one of {list(RECURRENT_DROPOUT_MODES)}, got {recurrent_dropout_mode!r}"
            )
        if recurrent_dropout_mode == "batch" and self.recurrent_dropout == 0.0:
            warnings.warn(
                "recurrent_dropout_mode='batch' does nothing when recurrent_dropout=0",
                UserWarning,
                stacklevel=2,
            )
        self.recurrent_dropout_mode = recurrent_dropout_mode
        self.kernel_regularizer = regularizers.get(kernel_regularizer, "kernel_regularizer")
        self.recurrent_regularizer = regularizers.get(recurrent_regularizer, "recurrent_regularizer")
        self.bias_regularizer = regularizers.get(bias_regularizer, "bias_regularizer")
        self.input_size = None if input_size is None else check_positive_int("input_size", input_size)
        self.cell: RecurrentCell | None = None
        self._states: State | None = None
        # Set True to run the step loop even where a fused kernel applies (tests, benchmarks).
        self._force_loop = False
        # Masked runs needing the LSTM's c: None packs on a GPU only; True/False forces (tests).
        self._pack_runs: bool | None = None
        self._auto_choices: dict[tuple, bool] = {}  # auto's verdicts for this layer's calls, by shape
        # The dropout masks drawn by the last training call (None when not drawn).
        self.last_dropout_mask: torch.Tensor | None = None
        self.last_recurrent_dropout_mask: torch.Tensor | None = None
        if self.input_size is not None:
            self.build((None, self.input_size))

    # --- building -----------------------------------------------------------------------------
    def _cell_options(self) -> dict[str, Any]:
        return {"activation": self.activation, "use_bias": self.use_bias}

    def build(self, input_shape: tuple[int | None, ...]) -> None:
        features = input_shape[-1]
        if self.input_size is not None and features != self.input_size:
            raise RnnkitError(f"input features must equal input_size={self.input_size}, got {features}")
        self.input_size = check_positive_int("input_size", features)
        self.cell = self.cell_class(self.input_size, self.units, **self._cell_options())
        self.built = True

    @property
    def state_count(self) -> int:
        return self.cell_class.state_count

    def compute_output_shape(self, input_shape: tuple[int | None, ...]) -> Any:
        """(time, units) with return_sequences else (units,); with return_state a list [output, (units,)...]."""
        output = (input_shape[0], self.units) if self.return_sequences else (self.units,)
        if self.return_state:
            return [output] + [(self.units,)] * self.state_count
        return output

    def compute_mask(self, x: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor | None:
        """The mask for the next layer: the input's mask with return_sequences, else None (Keras)."""
        return mask if self.return_sequences else None

    # --- counting, config, weights ------------------------------------------------------------
    def _require_input_size(self) -> int:
        if self.input_size is None:
            raise RnnkitError(f"{type(self).__name__} is not built: pass input_size or call it on an input first")
        return self.input_size

    def count_params(self) -> int:
        self._require_input_size()
        return sum(p.numel() for p in self.parameters())

    def get_config(self) -> dict[str, Any]:
        return {
            "units": self.units,
            "activation": self.activation,
            "use_bias": self.use_bias,
            "return_sequences": self.return_sequences,
            "return_state": self.return_state,
            "go_backwards": self.go_backwards,
            "stateful": self.stateful,
            "dropout": self.dropout,
            "recurrent_dropout": self.recurrent_dropout,
            "recurrent_dropout_mode": self.recurrent_dropout_mode,
            "kernel_regularizer": regularizers.serialize(self.kernel_regularizer),
            "recurrent_regularizer": regularizers.serialize(self.recurrent_regularizer),
            "bias_regularizer": regularizers.serialize(self.bias_regularizer),
            "input_size": self.input_size,
        }

    def get_weights(self) -> list[np.ndarray]:
        """Keras's arrays: kernel (m, G·n), recurrent_kernel (n, G·n), bias; [] before build."""
        return self.cell.keras_weights() if self.built else []

    def set_weights(self, weights: list[np.ndarray]) -> None:
        """Load Keras's arrays (e.g. ``keras_layer.get_weights()``); builds the layer if needed."""
        if not self.built:
            if not weights:
                raise RnnkitError(
                    f"weights must hold a kernel of shape (features, units·gates), got {len(weights)} arrays"
                )
            self.build((None, int(np.shape(weights[0])[0])))
        self.cell.set_keras_weights(weights)

    def regularization_loss(self) -> torch.Tensor:
        """kernel_regularizer(kernel) + recurrent_regularizer(recurrent kernel) + bias_regularizer(bias)."""
        total = torch.zeros(())
        if not self.built:
            return total
        cell = self.cell
        pairs = [(self.kernel_regularizer, [cell.weight_ih]), (self.recurrent_regularizer, [cell.weight_hh])]
        pairs.append((self.bias_regularizer, cell.bias_parameters()))
        for reg, weights in pairs:
            if reg is not None:
                for w in weights:
                    total = total + reg(w)
        return total

    def reset_states(self) -> None:
        """Forget the carried state: the next call of a stateful layer starts from zeros."""
        self._states = None

    # --- running ------------------------------------------------------------------------------
    @property
    def use_fused(self) -> bool:
        """Whether calls without per-sample recurrent dropout go to PyTorch's fused kernel."""
        return self.built and not self._force_loop and self._fused_ok()

    def _fused_ok(self) -> bool:
        return self.activation in self.fused_activations

    def _kernel_kind(self) -> str | None:
        """The compiled kernel's name for this layer's cell (``rnnkit.layers.kernel.KINDS``), or None."""
        return None

    def _kernel_biases(self, cell: Any = None) -> tuple[torch.Tensor | None, torch.Tensor | None]:
        """(input bias, recurrent bias) for the compiled kernel; the recurrent one for GRU only."""
        return (parameter(self.cell if cell is None else cell, "bias") if self.use_bias else None), None

    def _weight_dtype(self) -> torch.dtype | None:
        return self.cell.weight_ih.dtype if self.built else None

    def _kernel_applies(self, x: torch.Tensor, mask: torch.Tensor | None, weight: torch.Tensor) -> bool:
        """Whether the compiled kernel runs this call; in ``auto`` mode, the faster path by measurement.

        ``weight``: the cell's ``weight_ih``, which the caller has looked up already."""
        if not self.built or self._force_loop:
            return False
        mode = kernel.kernel_mode()
        if mode == "torch":
            return False
        backward = torch.is_grad_enabled() and weight.requires_grad
        # the layer remembers its decisions by everything they depend on: a call's overhead stays a
        # dict look-up (a batch-1 inference call is tens of microseconds)
        seen = (mode, id(kernel.auto_verdicts()) if mode == "auto" else None, x.shape, x.dtype, x.device,
                weight.dtype, weight.device, backward, self.training, mask is None, torch.get_num_threads(),
                torch.is_autocast_enabled("cpu"))  # fmt: skip
        choice = self._auto_choices.get(seen)
        if choice is None:
            choice = self._auto_choices[seen] = self._decide_kernel(x, mask, mode, backward)
        return choice

    def _decide_kernel(self, x: torch.Tensor, mask: torch.Tensor | None, mode: str, backward: bool) -> bool:
        """The first call of its kind: whether the kernel can run it, and in ``auto`` whether it is faster."""
        if self._kernel_kind() is None or not kernel.applies(x, *self.cell.parameters()):
            return False
        if mode != "auto":
            return True
        key = kernel.auto_key(type(self).__name__, str(self._kernel_kind()), x.dtype, backward, x.shape[0],
                              x.shape[1], self.units, x.shape[2], self._torch_path(mask))  # fmt: skip
        return kernel.choose_kernel(key, lambda: self._time_paths(x, mask, backward))

    def _torch_path(self, mask: torch.Tensor | None) -> str:
        """Which PyTorch path a call would take instead of the kernel (part of auto's shape class)."""
        if self.training and self.recurrent_dropout > 0 and self.recurrent_dropout_mode == "sample":
            return "step loop (per-sample recurrent dropout)"
        if mask is not None:
            return "masked paths"
        return "fused operator" if self.use_fused else "step loop"

    def _time_paths(self, x: torch.Tensor, mask: torch.Tensor | None, backward: bool) -> tuple[float, float]:
        """(kernel seconds, PyTorch seconds) of a copy of this layer on x's first steps (at most
        ``kernel.MEASURE_STEPS``).

        The copy has this layer's weights and options but no carried state; the random number
        generators are put back afterwards, so measuring changes no result.
        """
        steps = min(x.shape[1], kernel.MEASURE_STEPS)
        xs = x.detach()[:, :steps]
        ms = None if mask is None else mask[:, :steps]
        with torch.random.fork_rng(devices=[]):
            config = {**self.get_config(), "stateful": False, "input_size": self.input_size}
            copy = type(self)(**config).to(dtype=x.dtype)
            copy.maybe_build(xs)
            with torch.no_grad():
                for mine, theirs in zip(copy.cell.parameters(), self.cell.parameters()):
                    mine.copy_(theirs.detach())
            copy._force_loop, copy._pack_runs = self._force_loop, self._pack_runs
            copy.train(self.training)

            def call() -> None:
                with torch.set_grad_enabled(backward):
                    out = copy(xs, mask=ms)
                    if backward:
                        (out[0] if isinstance(out, tuple) else out).sum().backward()

            return kernel.time_paths(call)

    def _fused(
        self, x: torch.Tensor, state: State, weight_hh: torch.Tensor, batch_sizes: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, State]:
        """Run the fused operator on x (batch, time, m); returns (outputs (batch, time, n), state).

        With ``batch_sizes``, x is a ``PackedSequence``'s data (steps · rows, m) and the outputs
        come back packed the same way.
        """
        raise NotImplementedError

    def _run_op(
        self, op: Any, x: torch.Tensor, hx: Any, params: list[torch.Tensor], batch_sizes: torch.Tensor | None
    ) -> Any:
        """Call a fused operator (``torch.gru``, ...) on a padded batch or on packed data."""
        if batch_sizes is None:
            return op(x, hx, params, self.use_bias, 1, 0.0, self.training, False, True)
        return op(x, batch_sizes, hx, params, self.use_bias, 1, 0.0, self.training, False)

    def _state_is_h(self) -> bool:
        """Whether the final state that the caller sees is h alone (readable off the outputs)."""
        return self.state_count == 1 or not (self.return_state or self.stateful)

    def _runs_fit_fused(self, x: torch.Tensor) -> bool:
        """Whether ``_fused_runs`` serves a contiguous-run mask here (else the step loop)."""
        pack = x.is_cuda if self._pack_runs is None else self._pack_runs
        return self._state_is_h() or pack

    def _fused_runs(
        self, x: torch.Tensor, state: State, weight_hh: torch.Tensor, start: torch.Tensor, lengths: torch.Tensor
    ) -> tuple[torch.Tensor | None, State]:
        """The fused kernel on rows whose real steps are x[b, start_b : start_b + lengths_b].

        Each run is moved to the front of its row; the kernel runs on the whole batch (the
        state is h: read off the outputs) or on packed runs (the LSTM's c is needed). The
        outputs are laid back out with Keras's masked semantics: zeros before the run, the
        run's outputs, then its last output repeated. Returns ((batch, time, n) if
        return_sequences else None, final state; only h when the caller needs only h).
        """
        batch, time, features = x.shape
        steps = torch.arange(time, device=x.device)
        at_front = not bool(start.any())  # right padding, the common case: no moving, no gathers
        if at_front:
            x_front = x
        else:
            read = (start[:, None] + steps).clamp(max=time - 1)  # (batch, time): row b reads step start_b + t
            x_front = x.gather(1, read.unsqueeze(-1).expand(-1, -1, features))
        pack = x.is_cuda if self._pack_runs is None else self._pack_runs
        if self._state_is_h() and not pack:
            # past its run a row reads zeros (finite whatever the padding held); those outputs go unused
            in_run = (steps < lengths[:, None]).unsqueeze(-1)
            out_front, _ = self._fused(torch.where(in_run, x_front, torch.zeros_like(x_front)), state, weight_hh)
            last = out_front.gather(1, (lengths - 1).view(-1, 1, 1).expand(-1, 1, self.units)).squeeze(1)
            final: State = (last,)
        else:
            packed = pack_padded_sequence(x_front, lengths.cpu(), batch_first=True, enforce_sorted=False)
            hx = tuple(s.index_select(0, packed.sorted_indices) for s in state)
            data, final = self._fused(packed.data, hx, weight_hh, packed.batch_sizes)
            final = tuple(s.index_select(0, packed.unsorted_indices) for s in final)
            if self.return_sequences:
                out_front, _ = pad_packed_sequence(
                    PackedSequence(data, packed.batch_sizes, packed.sorted_indices, packed.unsorted_indices),
                    batch_first=True,
                    total_length=time,
                )  # (batch, time, n), the run first
        if not self.return_sequences:
            return None, final
        if at_front:
            last = out_front.gather(1, (lengths - 1).view(-1, 1, 1).expand(-1, 1, self.units))  # (batch, 1, n)
            return torch.where((steps < lengths[:, None]).unsqueeze(-1), out_front, last), final
        source = (steps - start[:, None]).clamp(min=0).minimum((lengths - 1)[:, None])
        out = out_front.gather(1, source.unsqueeze(-1).expand(-1, -1, self.units))
        started = (steps >= start[:, None]).unsqueeze(-1)
        return torch.where(started, out, torch.zeros_like(out)), final

    def _draw_masks(self, batch: int, like: torch.Tensor) -> tuple[torch.Tensor | None, torch.Tensor | None]:
        """(input mask (batch, m) or None, recurrent mask (batch, n) "sample" / (n,) "batch" or None)."""
        input_mask = recurrent_mask = None
        if self.dropout > 0:
            input_mask = _dropout_mask((batch, self.input_size), self.dropout, like)
        if self.recurrent_dropout > 0:
            shape = (self.units,) if self.recurrent_dropout_mode == "batch" else (batch, self.units)
            recurrent_mask = _dropout_mask(shape, self.recurrent_dropout, like)
        return input_mask, recurrent_mask

    def _initial_state(self, x: torch.Tensor, initial_state: Any) -> State:
        batch = x.shape[0]
        if initial_state is not None:
            states = (initial_state,) if isinstance(initial_state, torch.Tensor) else tuple(initial_state)
            if len(states) != self.state_count:
                raise RnnkitError(f"initial_state must hold {self.state_count} tensors, got {len(states)}")
            for s in states:
                if tuple(s.shape) != (batch, self.units):
                    raise RnnkitError(
                        f"initial_state tensors must have shape {(batch, self.units)}, got {tuple(s.shape)}"
                    )
            return tuple(s.to(dtype=x.dtype) for s in states)
        if self.stateful and self._states is not None:
            held = self._states[0].shape[0]
            if held != batch:
                raise RnnkitError(
                    f"stateful layer holds states for batch size {held}, got a batch of {batch}; "
                    "keep the batch size or call reset_states() first"
                )
            return self._states
        return self.cell.zero_state(batch, x)

    def _loop(
        self,
        x: torch.Tensor,
        state: State,
        weight_hh: torch.Tensor,
        recurrent_mask: torch.Tensor | None,
        mask: torch.Tensor | None = None,
    ) -> tuple[torch.Tensor | None, State]:
        """The reference step loop; returns ((batch, time, n) if return_sequences else None, final state).

        ``mask`` (batch, time) bool, in processing order: at a False step the state is kept and
        the output repeats the previous one (zeros before the first real step).
        """
        cell = self.cell
        # One matmul for every step's input, laid out time-major: (time, batch, G·n)
        xp = cell.input_projection(x.transpose(0, 1))
        recurrent_kernel = weight_hh.t()  # (n, G·n), transposed once
        outputs = []
        if mask is None:
            for xp_t in xp.unbind(0):
                h, state = cell.step(xp_t, state, recurrent_kernel, recurrent_mask)
                outputs.append(h)
        else:
            out = state[0].new_zeros(state[0].shape)
            for xp_t, m_t in zip(xp.unbind(0), mask.t().unsqueeze(-1).unbind(0)):  # m_t (batch, 1)
                h, new_state = cell.step(xp_t, state, recurrent_kernel, recurrent_mask)
                state = tuple(torch.where(m_t, new, old) for new, old in zip(new_state, state))
                out = torch.where(m_t, h, out)
                outputs.append(out)
        return (torch.stack(outputs, 1) if self.return_sequences else None), state

    def forward(self, x: torch.Tensor, initial_state: Any = None, mask: torch.Tensor | None = None) -> Any:
        """Run over x (batch, time, features).

        Returns the output ((batch, time, units) with return_sequences, else (batch, units));
        with return_state a tuple (output, h) (LSTM: (output, h, c)). ``initial_state``: a
        tensor (batch, units) or a tuple of them (LSTM: (h, c)); by default zeros, or the
        carried state of a stateful layer. ``mask``: (batch, time) bool, True for real steps
        (default None: all real); padded steps change nothing (see the module docstring), and
        the output without return_sequences is the output of each row's last real step.

        Example::

            x = torch.randn(2, 4, 3); mask = torch.tensor([[1, 1, 1, 1], [1, 1, 0, 0]]).bool()
            y = GRU(5)(x, mask=mask)    # y[1] == GRU on x[1:2, :2] alone (same weights)
        """
        if x.dim() != 3:
            raise RnnkitError(f"input must be 3-D (batch, time, features), got shape {tuple(x.shape)}")
        self.maybe_build(x)
        # a submodule and its parameters: each self.cell or cell.weight_ih is a trip through
        # nn.Module.__getattr__ (a batch-1 inference call is tens of microseconds, and such look-ups
        # were a fifth of the layer's own time), so each is looked up once, past it
        cell = cast(RecurrentCell, self._modules["cell"])
        weight_ih = parameter(cell, "weight_ih")
        if x.dtype != weight_ih.dtype:
            x = self.cast_input(x)
        if x.shape[-1] != self.input_size:
            raise RnnkitError(f"input features must equal input_size={self.input_size}, got {x.shape[-1]}")
        mask = _check_mask(mask, x)
        compiled = self._kernel_applies(x, mask, weight_ih)
        state: State | None
        if initial_state is None and (not self.stateful or self._states is None):
            # zeros; the kernel makes its own (None), the other paths need them as tensors
            state = None if compiled else cell.zero_state(x.shape[0], x)
        else:
            state = self._initial_state(x, initial_state)
        if self.go_backwards and not compiled:  # the kernel walks x (and mask) backwards itself
            x = x.flip(1)
            mask = None if mask is None else mask.flip(1)

        input_mask = recurrent_mask = None
        if self.training:
            input_mask, recurrent_mask = self._draw_masks(x.shape[0], x)
        # plain attributes: written past nn.Module.__setattr__, which costs microseconds a call
        self.__dict__["last_dropout_mask"], self.__dict__["last_recurrent_dropout_mask"] = input_mask, recurrent_mask
        if input_mask is not None:
            x = x * input_mask.unsqueeze(1)  # the same mask at every step
        weight_hh: torch.Tensor = parameter(cell, "weight_hh")
        if recurrent_mask is not None and recurrent_mask.dim() == 1:
            # (h ⊙ m) Uᵀ == h (U diag(m))ᵀ: scale the columns of weight_hh (G·n, n)
            weight_hh = weight_hh * recurrent_mask
            recurrent_mask = None

        runs = None if mask is None else _contiguous_runs(mask)
        if compiled:
            b_ih, b_hh = self._kernel_biases(cell)
            if mask is not None:  # padded steps are skipped; zeros keep their x out of Xᵀ·dG even when not finite
                x = torch.where(mask.unsqueeze(-1), x, torch.zeros_like(x))
            sequence, state = kernel.run(
                self._kernel_kind(), self.go_backwards, x, state, weight_ih, weight_hh, b_ih, b_hh,
                recurrent_mask, mask,
            )  # fmt: skip
            if not self.return_sequences:
                sequence = None
            elif mask is not None:
                # the kernel returns the state at every step; Keras outputs zeros before a row's first real step
                started = (mask.flip(1) if self.go_backwards else mask).cumsum(1) > 0
                sequence = torch.where(started.unsqueeze(-1), sequence, torch.zeros_like(sequence))
        else:
            assert state is not None  # the zeros are made above for every path but the kernel's
            if recurrent_mask is None and self.use_fused and mask is None:
                sequence, state = self._fused(x, state, weight_hh)  # (batch, time, units)
            elif recurrent_mask is None and self.use_fused and runs is not None and self._runs_fit_fused(x):
                sequence, state = self._fused_runs(x, state, weight_hh, *runs)
            else:
                sequence, state = self._loop(x, state, weight_hh, recurrent_mask, mask)

        if self.stateful:
            self._states = tuple(s.detach() for s in state)
        if self.return_sequences:
            output = sequence
        elif mask is None:
            output = state[0]
        else:
            # Keras: a row without a real step outputs zeros (its state stays the initial one)
            output = torch.where(mask.any(1, keepdim=True), state[0], torch.zeros_like(state[0]))
        if self.return_state:
            return (output, *state)
        return output

    def extra_repr(self) -> str:
        return f"units={self.units}, input_size={self.input_size}"


def _zeros_like_bias(cell: RecurrentCell) -> torch.Tensor:
    # PyTorch's kernels want a second bias; Keras has one: pass zeros (no gradient).
    return torch.zeros_like(cell.bias, requires_grad=False)


class SimpleRNN(RNN):
    """Fully connected recurrent layer, as Keras's ``SimpleRNN``: h_t = act(W x_t + U h_{t-1} + b).

    Args:
        units: n, positive.
        activation: default ``"tanh"`` (fused kernel for tanh and relu).
        use_bias: default True.
        return_sequences: default False: return h for every step (batch, time, n), else the last (batch, n).
        return_state: default False: also return the final state h.
        go_backwards: default False: process the reversed input; sequences come back in processing order.
        stateful: default False: start each call from the previous call's final state (detached).
        dropout: default 0: input dropout, one mask (batch, features) per sequence.
        recurrent_dropout: default 0: dropout on h_{t-1} before U, one mask per sequence.
        recurrent_dropout_mode: ``"sample"`` (default, a mask per sample, step loop) or ``"batch"``
            (one mask for the batch, fused kernel).
        kernel_regularizer, recurrent_regularizer, bias_regularizer: default None.
        input_size: default None (inferred at the first call).

    Parameters: n·m + n·n + n (Keras's count; no second bias).

    Example::

        layer = SimpleRNN(16, input_size=14)
        layer.count_params()                  # 496
        y = layer(torch.randn(32, 120, 14))   # (32, 16)
    """

    cell_class = SimpleRNNCell
    fused_activations = ("tanh", "relu")

    def count_params(self) -> int:
        n, m = self.units, self._require_input_size()
        return n * m + n * n + (n if self.use_bias else 0)

    def param_formula(self) -> str:
        n, m = self.units, self._require_input_size()
        return f"{n}·{m} + {n}·{n}" + (f" + {n}" if self.use_bias else "")

    def _kernel_kind(self):
        return {"tanh": "rnn_tanh", "relu": "rnn_relu"}.get(self.activation)

    def _fused(self, x, state, weight_hh, batch_sizes=None):
        cell = self.cell
        op = torch.rnn_tanh if self.activation == "tanh" else torch.rnn_relu
        params = [cell.weight_ih, weight_hh] + ([cell.bias, _zeros_like_bias(cell)] if self.use_bias else [])
        out, h = self._run_op(op, x, state[0].unsqueeze(0), params, batch_sizes)
        return out, (h[0],)


class LSTM(RNN):
    """Long short-term memory layer, as Keras's ``LSTM`` (gates i, f, c, o; one bias).

    Args: as ``SimpleRNN``, plus
        recurrent_activation: default ``"sigmoid"``.
        unit_forget_bias: default True (forget-gate bias initialised to 1).

    States: (h, c), each (batch, n). Parameters: 4(n·m + n·n + n).

    Example::

        layer = LSTM(32, input_size=7)
        layer.count_params()                          # 5120
        y, h, c = LSTM(32, return_state=True)(torch.randn(8, 20, 7))
    """

    cell_class = LSTMCell

    def __init__(self, units: int, recurrent_activation: str = "sigmoid", unit_forget_bias: bool = True, **kwargs: Any):
        activations.get(recurrent_activation, "recurrent_activation")
        self.recurrent_activation = recurrent_activation
        self.unit_forget_bias = check_bool("unit_forget_bias", unit_forget_bias)
        super().__init__(units, **kwargs)

    def _cell_options(self):
        return {
            **super()._cell_options(),
            "recurrent_activation": self.recurrent_activation,
            "unit_forget_bias": self.unit_forget_bias,
        }

    def _fused_ok(self):
        return self.activation == "tanh" and self.recurrent_activation == "sigmoid"

    def _kernel_kind(self):
        return "lstm" if self._fused_ok() else None

    def get_config(self):
        return {
            **super().get_config(),
            "recurrent_activation": self.recurrent_activation,
            "unit_forget_bias": self.unit_forget_bias,
        }

    def count_params(self) -> int:
        n, m = self.units, self._require_input_size()
        return 4 * (n * m + n * n + (n if self.use_bias else 0))

    def param_formula(self) -> str:
        n, m = self.units, self._require_input_size()
        return f"4·({n}·{m} + {n}·{n}" + (f" + {n})" if self.use_bias else ")")

    def _fused(self, x, state, weight_hh, batch_sizes=None):
        cell = self.cell
        params = [cell.weight_ih, weight_hh] + ([cell.bias, _zeros_like_bias(cell)] if self.use_bias else [])
        h0, c0 = (s.unsqueeze(0) for s in state)
        out, h, c = self._run_op(torch.lstm, x, (h0, c0), params, batch_sizes)
        return out, (h[0], c[0])


class GRU(RNN):
    """Gated recurrent unit layer, as Keras's ``GRU`` (gates z, r; candidate h̃).

    Args: as ``SimpleRNN``, plus
        recurrent_activation: default ``"sigmoid"``.
        reset_after: default True: h̃ = tanh(W_h x + b_h + r ⊙ (U_h h + b'_h)) with two biases
            (PyTorch's and cuDNN's form, fused kernel); False: h̃ = tanh(W_h x + U_h (r ⊙ h) + b),
            one bias (the compiled kernel on a CPU, else the step loop).

    Parameters: 3(n·m + n·n + 2n) with reset_after, else 3(n·m + n·n + n).

    Example::

        layer = GRU(32, input_size=7)
        layer.count_params()                  # 3936
        y = layer(torch.randn(8, 20, 7))      # (8, 32)
    """

    cell_class = GRUCell

    def __init__(self, units: int, recurrent_activation: str = "sigmoid", reset_after: bool = True, **kwargs: Any):
        activations.get(recurrent_activation, "recurrent_activation")
        self.recurrent_activation = recurrent_activation
        self.reset_after = check_bool("reset_after", reset_after)
        super().__init__(units, **kwargs)

    def _cell_options(self):
        return {
            **super()._cell_options(),
            "recurrent_activation": self.recurrent_activation,
            "reset_after": self.reset_after,
        }

    def _fused_ok(self):
        return self.reset_after and self.activation == "tanh" and self.recurrent_activation == "sigmoid"

    def _kernel_kind(self):
        if self.activation != "tanh" or self.recurrent_activation != "sigmoid":
            return None
        return "gru" if self.reset_after else "gru_reset_before"

    def _kernel_biases(self, cell=None):
        if not self.reset_after:
            return super()._kernel_biases(cell)
        if not self.use_bias:
            return None, None
        cell = self.cell if cell is None else cell
        return parameter(cell, "bias_ih"), parameter(cell, "bias_hh")

    def get_config(self):
        return {
            **super().get_config(),
            "recurrent_activation": self.recurrent_activation,
            "reset_after": self.reset_after,
        }

    def _bias_count(self) -> int:
        if not self.use_bias:
            return 0
        return 2 * self.units if self.reset_after else self.units

    def count_params(self) -> int:
        n, m = self.units, self._require_input_size()
        return 3 * (n * m + n * n + self._bias_count())

    def param_formula(self) -> str:
        n, m = self.units, self._require_input_size()
        bias = {0: "", n: f" + {n}", 2 * n: f" + 2·{n}"}[self._bias_count()]
        return f"3·({n}·{m} + {n}·{n}{bias})"

    def _loop(self, x, state, weight_hh, recurrent_mask, mask=None):
        if recurrent_mask is None or mask is not None or self._force_loop or not self._fused_ok():
            return super()._loop(x, state, weight_hh, recurrent_mask, mask)
        # per-sample recurrent dropout with standard activations: the hand-differentiated loop
        cell = self.cell
        xp = cell.input_projection(x.transpose(0, 1))  # (time, batch, 3n)
        bias_hh = cell.bias_hh if self.use_bias else None
        hs = GRUSequenceWithRecurrentMask.apply(xp, state[0], weight_hh.t(), bias_hh, recurrent_mask)
        return (hs.transpose(0, 1) if self.return_sequences else None), (hs[-1],)

    def _fused(self, x, state, weight_hh, batch_sizes=None):
        cell = self.cell
        params = [cell.weight_ih, weight_hh] + ([cell.bias_ih, cell.bias_hh] if self.use_bias else [])
        out, h = self._run_op(torch.gru, x, state[0].unsqueeze(0), params, batch_sizes)
        return out, (h[0],)


RECURRENT_LAYERS: dict[str, type[RNN]] = {"SimpleRNN": SimpleRNN, "LSTM": LSTM, "GRU": GRU}


def recurrent_layer_class(name: str) -> type[RNN]:
    """``SimpleRNN``, ``LSTM`` or ``GRU`` by name (the ``layer=`` argument of the model builders).

    Example:
        >>> recurrent_layer_class("GRU").__name__
        'GRU'
    """
    if name not in RECURRENT_LAYERS:
        raise RnnkitError(f"layer must be one of {list(RECURRENT_LAYERS)}, got {name!r}")
    return RECURRENT_LAYERS[name]
