"""Losses by Keras name: ``mse``, ``mae``, ``huber``, ``cross_entropy``.

A loss maps ``(prediction, target)`` to the mean over the batch. Regression losses want
the prediction and the target to hold the same number of values per example; a target of
shape ``(batch,)`` is laid out like a ``(batch, 1)`` prediction (never broadcast to
``(batch, batch)``, the classic silent bug). ``cross_entropy`` takes logits
``(batch, classes)`` (or ``(batch, time, classes)``) and integer class targets
``(batch,)`` (or ``(batch, time)``), like Keras's sparse categorical cross-entropy with
``from_logits=True``.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F

from rnnkit.errors import RnnkitError

LossFn = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]

LOSSES = ("mse", "mae", "huber", "cross_entropy")
_ALIASES = {
    "mean_squared_error": "mse",
    "mean_absolute_error": "mae",
    "crossentropy": "cross_entropy",
    "cross-entropy": "cross_entropy",
    "sparse_categorical_crossentropy": "cross_entropy",
}


def match_target(prediction: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Lay ``target`` out like ``prediction`` when both hold the same values per example.

    Raises:
        RnnkitError: the shapes differ in the number of examples or values per example.
    """
    if target.shape == prediction.shape:
        return target
    if target.shape[:1] == prediction.shape[:1] and target.numel() == prediction.numel():
        return target.reshape(prediction.shape)
    raise RnnkitError(
        f"model output shape {tuple(prediction.shape)} does not fit target shape {tuple(target.shape)}"
    )


def mse(prediction: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Mean squared error: mean((prediction − target)²)."""
    target = match_target(prediction, target).to(prediction.dtype)
    return F.mse_loss(prediction, target)


def mae(prediction: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Mean absolute error: mean(|prediction − target|)."""
    target = match_target(prediction, target).to(prediction.dtype)
    return F.l1_loss(prediction, target)


def huber(prediction: torch.Tensor, target: torch.Tensor, delta: float = 1.0) -> torch.Tensor:
    """Huber loss (Keras's): ½e² where |e| ≤ delta, delta·(|e| − ½delta) beyond; mean over values."""
    target = match_target(prediction, target).to(prediction.dtype)
    return F.huber_loss(prediction, target, delta=delta)


def cross_entropy(logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Sparse categorical cross-entropy from logits.

    Shapes: logits ``(batch, classes)`` with target ``(batch,)``; or logits
    ``(batch, time, classes)`` with target ``(batch, time)``. A trailing target axis of size
    1 is dropped. Targets are class indices in ``[0, classes)``.
    """
    if target.dim() == logits.dim() and target.shape[-1] == 1:
        target = target.squeeze(-1)
    if target.shape != logits.shape[:-1]:
        raise RnnkitError(
            f"cross_entropy needs logits (..., classes) and integer targets (...), "
            f"got logits {tuple(logits.shape)} and targets {tuple(target.shape)}"
        )
    if target.is_floating_point():
        if not torch.equal(target, target.round()):
            raise RnnkitError("cross_entropy targets must be class indices (integers), got fractional values")
    # cross_entropy wants the class axis second: (batch, classes, time) for sequences.
    if logits.dim() > 2:
        logits = logits.movedim(-1, 1)
    return F.cross_entropy(logits, target.long())


_BY_NAME: dict[str, LossFn] = {"mse": mse, "mae": mae, "huber": huber, "cross_entropy": cross_entropy}


def canonical_loss_name(name: str) -> str:
    """The canonical name of a loss, accepting Keras's long names; validates."""
    if not isinstance(name, str):
        raise ValueError(f"loss must be one of {', '.join(LOSSES)}, got {name!r}")
    key = name.strip().lower()
    key = _ALIASES.get(key, key)
    if key not in _BY_NAME:
        raise ValueError(f"loss must be one of {', '.join(LOSSES)}, got {name!r}")
    return key


def get_loss(name: str) -> LossFn:
    """The loss function called ``name`` (``mse``, ``mae``, ``huber``, ``cross_entropy``; Keras long names too).

    Example:
        >>> get_loss("mae")(torch.tensor([1.0, 3.0]), torch.tensor([2.0, 2.0]))
        tensor(1.)
    """
    return _BY_NAME[canonical_loss_name(name)]
