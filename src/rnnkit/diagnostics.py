"""Diagnostics: how much each input step moves the loss (the vanishing-gradient picture).

The course explains why LSTM and GRU beat the simple RNN on long dependencies: the
gradient that reaches an early step of a simple RNN is a product of one Jacobian per later
step, and it shrinks geometrically. :func:`gradient_flow` measures it, step by step, for any
model that takes ``(batch, time, features)``; :func:`gradient_picture` draws the three
recurrent layers side by side on the same data.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Union

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from rnnkit.errors import RnnkitError

LossArg = Union[str, Callable[[torch.Tensor, torch.Tensor], torch.Tensor]]
GRADIENT_LOSSES = ("mse", "mae", "cross_entropy")
RECURRENT_LAYERS = ("SimpleRNN", "LSTM", "GRU")


# --- the gradient per step ----------------------------------------------------------------------


def _output_tensor(out: Any) -> torch.Tensor:
    # A layer with return_state gives (output, *states): the output comes first.
    if isinstance(out, (tuple, list)):
        out = out[0]
    if not isinstance(out, torch.Tensor) or not out.is_floating_point():
        raise RnnkitError(f"model must return a floating-point tensor, got {type(out).__name__}")
    return out


def _per_example_sum(values: torch.Tensor) -> torch.Tensor:
    # (batch, ...) -> scalar: each example's mean, summed over the batch.
    return values.reshape(values.shape[0], -1).mean(dim=1).sum()


def _scalar_loss(out: torch.Tensor, y: torch.Tensor | None, loss: LossArg) -> torch.Tensor:
    """Σ over examples of each example's own loss, so that ∂L/∂x[b] = ∂loss_b/∂x[b]."""
    if y is None:
        # No target: each example's scalar is the sum of its last output step (its only output
        # for a many-to-one model); the last step is the one the vanishing picture looks back from.
        last = out[:, -1] if out.dim() == 3 else out
        return last.sum()
    if callable(loss):
        value = loss(out, y)
        if not isinstance(value, torch.Tensor):
            raise RnnkitError(f"loss must return a tensor, got {type(value).__name__}")
        return value.sum()
    if loss == "cross_entropy":
        if out.dim() < 2 or y.shape != out.shape[:-1]:
            raise RnnkitError(
                f"y must hold one class index per logit vector for cross_entropy: shape {tuple(out.shape[:-1])}, "
                f"got {tuple(y.shape)}"
            )
        logits = out.movedim(-1, 1) if out.dim() > 2 else out  # class axis second, as F.cross_entropy wants
        return _per_example_sum(F.cross_entropy(logits, y.long(), reduction="none"))
    target = y.to(out.dtype)
    if target.shape != out.shape:
        if target.shape[:1] != out.shape[:1] or target.numel() != out.numel():
            raise RnnkitError(f"y must have the model output's shape {tuple(out.shape)}, got {tuple(target.shape)}")
        target = target.reshape(out.shape)
    error = out - target
    return _per_example_sum(error.square() if loss == "mse" else error.abs())


__all__ = [
    "GradientPicture",
    "config_windows",
    "describe_gradients",
    "gradient_flow",
    "gradient_picture",
    "long_dependency_task",
    "set_remember_bias",
]


def gradient_flow(
    model: nn.Module,
    x: torch.Tensor,
    y: torch.Tensor | None = None,
    loss: LossArg = "mse",
    *,
    reduction: str = "mean",
) -> torch.Tensor:
    """‖∂loss/∂x_t‖ for every input step t: how strongly each step of the window moves the loss.

    One forward and one backward pass, with gradients taken with respect to the inputs only
    (the parameters' ``.grad`` are left untouched). The model runs in evaluation mode (no
    dropout) and is put back in its former mode afterwards.

    Definition: with ``loss_b`` the loss of example b alone, g[b, t] = ‖∂loss_b/∂x[b, t, :]‖₂
    (the Euclidean norm over the features of step t). The backward pass runs on
    L = Σ_b loss_b: examples do not interact in a recurrent model, so ∂L/∂x[b] = ∂loss_b/∂x[b],
    and the result does not depend on the batch size.

    Args:
        model: any module mapping ``(batch, time, features)`` to outputs ``(batch, k)`` or
            ``(batch, time, k)`` (a tuple from ``return_state`` is fine: its first entry is used).
        x: inputs ``(batch, time, features)``, floating point.
        y: targets. ``None`` (default): loss_b is the sum of example b's last output step
            (its only output for a many-to-one model), so g measures how the final output
            depends on each step.
        loss: ``"mse"`` (default) or ``"mae"`` (loss_b = the mean over example b's output
            values), ``"cross_entropy"`` (logits ``(batch, classes)`` or ``(batch, time, classes)``,
            ``y`` class indices; loss_b = the mean over its positions), or a callable
            ``loss(output, y) -> tensor`` whose values are summed (return per-example losses
            ``(batch,)``; a batch mean scales every g by 1/batch).
        reduction: ``"mean"`` (default): the mean over the batch, shape ``(time,)``;
            ``"none"``: ``(batch, time)``.

    Returns:
        A float tensor ``(time,)`` (or ``(batch, time)``), detached.

    Example:
        >>> model = Sequential(layers.SimpleRNN(8), layers.Dense(1), input_shape=(100, 1))
        >>> g = gradient_flow(model, torch.randn(32, 100, 1))
        >>> float(g[0] / g[-1])  # how much of the gradient reaches step 1  # doctest: +SKIP
    """
    if not isinstance(model, nn.Module):
        raise RnnkitError(f"model must be a torch.nn.Module, got {type(model).__name__}")
    if not isinstance(x, torch.Tensor) or x.dim() != 3 or not x.is_floating_point():
        shape = tuple(x.shape) if isinstance(x, torch.Tensor) else type(x).__name__
        raise RnnkitError(f"x must be a floating-point tensor (batch, time, features), got {shape}")
    if x.shape[0] == 0 or x.shape[1] == 0:
        raise RnnkitError(f"x must hold at least one example and one step, got shape {tuple(x.shape)}")
    if not callable(loss) and loss not in GRADIENT_LOSSES:
        raise RnnkitError(f"loss must be one of {', '.join(GRADIENT_LOSSES)} or a callable, got {loss!r}")
    if reduction not in ("mean", "none"):
        raise RnnkitError(f"reduction must be 'mean' or 'none', got {reduction!r}")
    if y is not None and not isinstance(y, torch.Tensor):
        y = torch.as_tensor(np.asarray(y))
    if y is not None and y.shape[0] != x.shape[0]:
        raise RnnkitError(f"y must have one entry per example of x ({x.shape[0]}), got {y.shape[0]}")

    inputs = x.detach().clone().requires_grad_(True)
    was_training = model.training
    model.eval()
    try:
        with torch.enable_grad():
            total = _scalar_loss(_output_tensor(model(inputs)), y, loss)
            if total.dim() != 0:
                raise RnnkitError(f"loss must reduce to a scalar, got shape {tuple(total.shape)}")
            (grad,) = torch.autograd.grad(total, inputs, allow_unused=True)
    finally:
        model.train(was_training)
    if grad is None:  # the output does not depend on x at all
        grad = torch.zeros_like(inputs)
    per_step = grad.norm(dim=2)  # (batch, time)
    return (per_step.mean(dim=0) if reduction == "mean" else per_step).detach()


# --- the picture: SimpleRNN, LSTM and GRU on the same data --------------------------------------


def long_dependency_task(examples: int, steps: int = 100, *, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """Sequences whose label is decided by their first step alone; every later step is noise.

    Feature 0 is N(0, 1) noise at every step; the label is 1 where the first step's value is
    positive, else 0. Feature 1 marks the first step (1 there, 0 elsewhere), so a gated
    layer can learn to write at that step and to hold its state through the noise after it.

    Args:
        examples: number of sequences (>= 1).
        steps: sequence length (>= 2, default 100).
        seed: seed of the generator (default 0); the same seed gives the same data.

    Returns:
        ``x`` float32 ``(examples, steps, 2)`` and ``y`` int64 ``(examples,)``.

    Example:
        >>> x, y = long_dependency_task(4, 100)
        >>> bool(((x[:, 0, 0] > 0).long() == y).all())
        True
    """
    for name, value, low in (("examples", examples, 1), ("steps", steps, 2)):
        if not isinstance(value, int) or isinstance(value, bool) or value < low:
            raise RnnkitError(f"{name} must be an integer >= {low}, got {value!r}")
    g = torch.Generator().manual_seed(seed)
    x = torch.zeros(examples, steps, 2)
    x[:, :, 0] = torch.randn(examples, steps, generator=g)
    x[:, 0, 1] = 1.0
    y = (x[:, 0, 0] > 0).long()
    return x, y


def set_remember_bias(layer: nn.Module, bias: float) -> None:
    """Start a gated layer out remembering: set the bias of the LSTM forget gate or GRU update gate.

    Keras's initial biases make the gates forget fast: the LSTM keeps σ(1) ≈ 0.73 of its cell
    per step and the GRU σ(0) = 0.5 of its state, so after 99 steps 0.73⁹⁹ ≈ 3e-14 and
    0.5⁹⁹ ≈ 2e-30 of what step 1 wrote is left, and no gradient from step 1 reaches the weights.
    A bias b keeps σ(b) per step (b = 4: 0.98, 0.98⁹⁹ ≈ 0.17). This is the idea of the "chrono"
    initialisation (Tallec & Ollivier, 2018) with one constant. A SimpleRNN has no gate: it is
    left as it is.

    Args:
        layer: an ``rnnkit.layers`` LSTM, GRU or SimpleRNN, built (give ``input_size`` or call it once).
        bias: the gate bias (e.g. 4.0).

    Example:
        >>> lstm = layers.LSTM(16, input_size=2)
        >>> set_remember_bias(lstm, 4.0)
    """
    from rnnkit import layers as rl

    if not isinstance(bias, (int, float)) or isinstance(bias, bool) or not math.isfinite(bias):
        raise RnnkitError(f"bias must be a finite number, got {bias!r}")
    if isinstance(layer, rl.SimpleRNN):
        return
    if not isinstance(layer, (rl.LSTM, rl.GRU)):
        raise RnnkitError(f"layer must be an rnnkit SimpleRNN, LSTM or GRU, got {type(layer).__name__}")
    weights = layer.get_weights()
    if not weights or len(weights) < 3:
        raise RnnkitError(f"layer must be built and use a bias (use_bias=True), got {len(weights)} weight arrays")
    n = layer.units
    b = np.array(weights[2], copy=True)
    if isinstance(layer, rl.LSTM):
        b[n : 2 * n] = bias  # Keras gate order i, f, c, o: the forget gate's slice
    elif b.ndim == 2:
        b[0, :n] = bias  # reset_after: (2, 3n), input bias row first; gate order z, r, h
    else:
        b[:n] = bias
    layer.set_weights([*weights[:2], b, *weights[3:]])


@dataclass
class GradientPicture:
    """The result of :func:`gradient_picture`: one gradient curve per recurrent layer.

    Attributes:
        curves: ``{layer name: array (time,)}``, ‖∂loss/∂x_t‖ averaged over the examples.
        scores: ``{layer name: accuracy (classification) or MSE (regression)}`` on held-out data.
        score_name: ``"accuracy"`` or ``"mse"``.
        train_epochs: epochs each model was trained for (0: at initialisation).
        reading: one line that says what the curves show.
    """

    curves: dict[str, np.ndarray]
    scores: dict[str, float]
    score_name: str
    train_epochs: int
    reading: str = ""
    steps: int = field(init=False)

    def __post_init__(self) -> None:
        self.steps = len(next(iter(self.curves.values()))) if self.curves else 0

    def ratios(self) -> dict[str, float]:
        """‖∂L/∂x_1‖ / ‖∂L/∂x_T‖ per layer: the share of the last step's gradient that reaches step 1."""
        return {name: _ratio(c) for name, c in self.curves.items()}

    def relative(self) -> dict[str, np.ndarray]:
        """Each curve divided by its value at the last step (1 at t = T), for one common scale."""
        return {name: c / c[-1] if c[-1] > 0 else c for name, c in self.curves.items()}


def _ratio(curve: np.ndarray) -> float:
    return float(curve[0] / curve[-1]) if curve[-1] > 0 else math.inf


def describe_gradients(
    ratios: dict[str, float], steps: int, scores: dict[str, float] | None = None, score_name: str = "accuracy"
) -> str:
    """The one-line reading of a gradient picture.

    Example:
        >>> describe_gradients({"SimpleRNN": 1e-6, "LSTM": 10.0}, 100)
        '‖∂L/∂x_1‖ / ‖∂L/∂x_100‖: SimpleRNN 1e-06, LSTM 1e+01: the gradient from step 1 is 1e+07 times weaker in SimpleRNN than in LSTM: SimpleRNN barely learns from the early steps'
    """
    parts = ", ".join(f"{name} {r:.0e}" for name, r in ratios.items())
    if scores:
        shown = ", ".join(
            f"{name} {100 * s:.0f}%" if score_name == "accuracy" else f"{name} {s:.3g}" for name, s in scores.items()
        )
        parts += f" ({score_name} {shown})"
    line = f"‖∂L/∂x_1‖ / ‖∂L/∂x_{steps}‖: {parts}"
    finite = {n: r for n, r in ratios.items() if math.isfinite(r)}
    if len(finite) < 2:
        return line
    weakest = min(finite, key=finite.__getitem__)
    strongest = max(finite, key=finite.__getitem__)
    factor = finite[strongest] / finite[weakest] if finite[weakest] > 0 else math.inf
    if factor >= 100:
        return (
            f"{line}: the gradient from step 1 is {factor:.0e} times weaker in {weakest} than in {strongest}: "
            f"{weakest} barely learns from the early steps"
        )
    return f"{line}: the gradient reaches step 1 alike in all of them (within a factor {factor:.0f})"


def config_windows(
    config: Any, paths: list[str] | None = None, examples: int = 1024
) -> tuple[torch.Tensor, torch.Tensor]:
    """Up to ``examples`` training windows of an experiment config, evenly spread: ``(x, y)``.

    ``x`` is ``(examples, sequence_length, features)`` (scaled as in a run), ``y`` ``(examples, 1)``.
    """
    from rnnkit.tasks.series import load_frame, prepare

    if not isinstance(examples, int) or isinstance(examples, bool) or examples < 2:
        raise RnnkitError(f"examples must be an integer >= 2, got {examples!r}")
    windows = prepare(config, load_frame(config, paths)).windows["train"]
    n = len(windows)
    index = torch.linspace(0, n - 1, min(n, examples)).round().long().unique()
    x, y = windows.batch(index)
    return x.float(), y.float().reshape(len(index), -1)


def gradient_picture(
    x: torch.Tensor | None = None,
    y: torch.Tensor | None = None,
    *,
    steps: int = 100,
    examples: int = 1024,
    units: int = 32,
    train_epochs: int = 20,
    learning_rate: float = 5e-3,
    remember_bias: float | None = 4.0,
    seed: int = 0,
    layers: tuple[str, ...] = RECURRENT_LAYERS,
) -> GradientPicture:
    """SimpleRNN, LSTM and GRU of equal ``units`` on the same data: their gradient per input step.

    Each model is ``layer(units) → Dense``, trained for ``train_epochs`` (Adam, gradient norm
    clipped to 1, the best epoch on held-out data restored), then :func:`gradient_flow` is
    measured on held-out examples.

    Args:
        x, y: the data. ``None`` (default): :func:`long_dependency_task` with ``examples``
            sequences of ``steps`` steps (classification, cross-entropy; 2 logits). Given:
            regression (MSE, ``Dense(y.shape[-1])``); the last 20% of the examples are held out.
        steps: sequence length of the synthetic task (default 100).
        examples: training sequences of the synthetic task (default 1024).
        units: units of each recurrent layer (default 32).
        train_epochs: epochs of training (default 20; 0 measures the models at initialisation).
        learning_rate: Adam's learning rate (default 5e-3).
        remember_bias: the LSTM forget-gate and GRU update-gate bias at the start
            (:func:`set_remember_bias`, default 4.0); ``None`` keeps Keras's initial biases,
            with which neither gated layer learns the 100-step task in a brief training.
        seed: seeds the data, the weights and the training (default 0).
        layers: which layers to compare (default all three).

    Returns:
        A :class:`GradientPicture` with the curves, held-out scores and the one-line reading.

    Example:
        >>> picture = gradient_picture(steps=100, train_epochs=20)  # doctest: +SKIP
        >>> print(picture.reading)  # doctest: +SKIP
    """
    from rnnkit import layers as rl
    from rnnkit.models import Sequential
    from rnnkit.training import Trainer, accuracy

    for name, value, low in (("units", units, 1), ("train_epochs", train_epochs, 0), ("seed", seed, 0)):
        if not isinstance(value, int) or isinstance(value, bool) or value < low:
            raise RnnkitError(f"{name} must be an integer >= {low}, got {value!r}")
    unknown = [n for n in layers if n not in RECURRENT_LAYERS]
    if not layers or unknown:
        raise RnnkitError(f"layers must name some of {', '.join(RECURRENT_LAYERS)}, got {list(layers)}")
    if (x is None) != (y is None):
        raise RnnkitError("x and y must be given together (or neither, for the synthetic task)")
    if x is None:
        classification = True
        x_train, y_train = long_dependency_task(examples, steps, seed=seed)
        x_held, y_held = long_dependency_task(512, steps, seed=seed + 1)
    else:
        classification = False
        if not isinstance(x, torch.Tensor) or x.dim() != 3 or len(x) < 5:
            raise RnnkitError(
                f"x must be a tensor (examples >= 5, time, features), got {getattr(x, 'shape', type(x).__name__)}"
            )
        y = torch.as_tensor(y).float().reshape(len(y), -1)
        if len(y) != len(x):
            raise RnnkitError(f"y must have one row per example of x ({len(x)}), got {len(y)}")
        cut = int(len(x) * 0.8)
        x_train, y_train, x_held, y_held = x[:cut].float(), y[:cut], x[cut:].float(), y[cut:]
    outputs = 2 if classification else y_train.shape[1]
    loss = "cross_entropy" if classification else "mse"

    curves: dict[str, np.ndarray] = {}
    scores: dict[str, float] = {}
    for name in layers:
        torch.manual_seed(seed)
        layer = getattr(rl, name)(units, input_size=x_train.shape[2])
        if remember_bias is not None:
            set_remember_bias(layer, remember_bias)
        model = Sequential(layer, rl.Dense(outputs), input_shape=tuple(x_train.shape[1:]))
        if train_epochs > 0:
            Trainer(
                loss=loss,
                epochs=train_epochs,
                batch_size=32,
                learning_rate=learning_rate,
                clip_grad_norm=1.0,
                seed=seed,
                progress=False,
                device="cpu",
            ).fit(model, (x_train, y_train), (x_held, y_held))  # the picture is read on the host
        model.eval()
        with torch.no_grad():
            out = model(x_held)
        scores[name] = accuracy(y_held, out) if classification else float(F.mse_loss(out, y_held))
        curves[name] = gradient_flow(model, x_held, y_held, loss).numpy()
    picture = GradientPicture(curves, scores, "accuracy" if classification else "mse", train_epochs)
    picture.reading = describe_gradients(picture.ratios(), picture.steps, scores, picture.score_name)
    return picture
