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

from collections.abc import Callable, Sequence

import torch
import torch.nn.functional as F

from rnnkit.errors import RnnkitError

LossFn = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]

LOSSES = ("mse", "mae", "huber", "cross_entropy", "pinball")
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
    raise RnnkitError(f"model output shape {tuple(prediction.shape)} does not fit target shape {tuple(target.shape)}")


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


IGNORE_INDEX = -100


def cross_entropy(
    logits: torch.Tensor, target: torch.Tensor, class_weight: Sequence[float] | torch.Tensor | None = None
) -> torch.Tensor:
    """Sparse categorical cross-entropy from logits.

    Shapes: logits ``(batch, classes)`` with target ``(batch,)``; or logits
    ``(batch, time, classes)`` with target ``(batch, time)``. A trailing target axis of size
    1 is dropped. Targets are class indices in ``[0, classes)``; ``IGNORE_INDEX`` (-100, PyTorch's
    convention) marks padded steps, which carry no loss and do not count in the mean.

    ``class_weight`` (``classes`` numbers, default None) weighs each example's loss by the
    weight of its true class, then takes the plain mean over examples, as Keras's
    ``class_weight`` does: ``mean_i(w[y_i] · (−log softmax(z_i)[y_i]))``. (PyTorch's own
    ``weight=`` divides by ``Σ w[y_i]`` instead.)

    Example:
        >>> cross_entropy(torch.zeros(2, 2), torch.tensor([0, 1]), class_weight=[1.0, 3.0])  # (1 + 3) / 2 · log 2
        tensor(1.3863)
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
    if class_weight is None:
        return F.cross_entropy(logits, target.long())
    weight = check_class_weight(class_weight, logits.shape[1]).to(device=logits.device, dtype=logits.dtype)
    target = target.long()
    real = target != IGNORE_INDEX  # padded steps of a tagged sequence carry no loss
    per_example = F.cross_entropy(logits, target, reduction="none")  # 0 at ignored steps
    return (per_example * weight[target.clamp(min=0)] * real).sum() / real.sum().clamp(min=1)


def check_class_weight(class_weight: Sequence[float] | torch.Tensor, classes: int | None = None) -> torch.Tensor:
    """``class_weight`` as a float64 tensor ``(classes,)``, checked: finite, >= 0, not all 0.

    Raises:
        ValueError: naming ``class_weight``, the rule and the value received.
    """
    try:
        weight = torch.as_tensor(class_weight, dtype=torch.float64).detach().cpu()
    except (TypeError, ValueError, RuntimeError):
        raise RnnkitError(f"class_weight must be a list of numbers, one per class, got {class_weight!r}") from None
    if weight.dim() != 1 or weight.numel() < 2:
        raise RnnkitError(f"class_weight must be a list of at least 2 numbers, one per class, got {class_weight!r}")
    if not bool(torch.isfinite(weight).all()) or bool((weight < 0).any()) or not bool((weight > 0).any()):
        raise RnnkitError(f"class_weight must hold finite numbers >= 0, not all 0, got {weight.tolist()}")
    if classes is not None and weight.numel() != classes:
        raise RnnkitError(f"class_weight must hold one number per class ({classes} classes), got {weight.numel()}")
    return weight


def balanced_class_weight(labels: Sequence[int] | torch.Tensor, classes: int) -> torch.Tensor:
    """Weights ``n / (classes · n_c)`` per class c (float64, ``(classes,)``): every class weighs as much in total.

    A class absent from ``labels`` gets weight 0 (there is nothing to weigh).

    Example:
        >>> balanced_class_weight([0, 0, 0, 1], 2)
        tensor([0.6667, 2.0000], dtype=torch.float64)
    """
    if not isinstance(classes, int) or isinstance(classes, bool) or classes < 2:
        raise RnnkitError(f"classes must be an integer >= 2, got {classes!r}")
    y = torch.as_tensor(labels).reshape(-1).long()
    if y.numel() == 0:
        raise RnnkitError("labels must hold at least one label, got none")
    if int(y.min()) < 0 or int(y.max()) >= classes:
        raise RnnkitError(f"labels must be in [0, {classes}), got values from {int(y.min())} to {int(y.max())}")
    counts = torch.bincount(y, minlength=classes).double()
    return torch.where(counts > 0, y.numel() / (classes * counts.clamp(min=1)), torch.zeros_like(counts))


def pinball(
    prediction: torch.Tensor, target: torch.Tensor, quantiles: Sequence[float] | torch.Tensor = (0.5,)
) -> torch.Tensor:
    """Pinball (quantile) loss over Q levels: mean of max(q·e, (q − 1)·e), e = target − prediction.

    Minimised by the q-quantile of the target's distribution: below it an error costs q, above
    it 1 − q. At q = 0.5 it is half the MAE.

    Shapes: ``prediction (batch, Q)``, ``target (batch, 1)`` or ``(batch,)``; ``quantiles`` Q levels in (0, 1).

    Example:
        >>> pinball(torch.tensor([[1.0, 2.0, 3.0]]), torch.tensor([[2.5]]), [0.1, 0.5, 0.9])  # e = 1.5, 0.5, -0.5
        tensor(0.1500)
    """
    q = torch.as_tensor(quantiles, dtype=prediction.dtype, device=prediction.device)
    if prediction.dim() != 2 or prediction.shape[1] != q.numel():
        raise RnnkitError(
            f"pinball needs predictions (batch, {q.numel()}) for {q.numel()} quantiles, got {tuple(prediction.shape)}"
        )
    error = target.reshape(-1, 1).to(prediction.dtype) - prediction  # (batch, Q)
    return torch.maximum(q * error, (q - 1) * error).mean()


def check_quantiles(quantiles: Sequence[float] | torch.Tensor) -> list[float]:
    """Quantile levels, checked: a non-empty increasing list of numbers in (0, 1).

    Example:
        >>> check_quantiles([0.1, 0.5, 0.9])
        [0.1, 0.5, 0.9]
    """
    values = [float(q) for q in quantiles] if not isinstance(quantiles, (str, bytes)) else []
    if not values or any(not 0 < q < 1 for q in values) or any(b <= a for a, b in zip(values, values[1:])):
        raise RnnkitError(
            f"quantiles must be increasing levels in (0, 1), got {list(quantiles) if values else quantiles!r}"
        )
    return values


_BY_NAME: dict[str, LossFn] = {
    "mse": mse,
    "mae": mae,
    "huber": huber,
    "cross_entropy": cross_entropy,
    "pinball": pinball,
}


def canonical_loss_name(name: str) -> str:
    """The canonical name of a loss, accepting Keras's long names; validates."""
    if not isinstance(name, str):
        raise RnnkitError(f"loss must be one of {', '.join(LOSSES)}, got {name!r}")
    key = name.strip().lower()
    key = _ALIASES.get(key, key)
    if key not in _BY_NAME:
        raise RnnkitError(f"loss must be one of {', '.join(LOSSES)}, got {name!r}")
    return key


def get_loss(name: str) -> LossFn:
    """The loss function called ``name`` (``mse``, ``mae``, ``huber``, ``cross_entropy``; Keras long names too).

    Example:
        >>> get_loss("mae")(torch.tensor([1.0, 3.0]), torch.tensor([2.0, 2.0]))
        tensor(1.)
    """
    return _BY_NAME[canonical_loss_name(name)]
