"""Metrics in the data's own units (°C for the Jena temperature), shared by models and baselines.

Predictions and targets usually live in scaled units (standardised). The metrics take
either ``inverse`` — a callable mapping a tensor of scaled targets to data units, such as a
standardizer's inverse transform for the target column — or ``scale``/``offset`` with
``value = scaled · scale + offset``. Skill compares a model with persistence:
``skill = 1 − MAE_model / MAE_persistence`` (0: as good as persistence; > 0: better).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import torch
from torch import nn

from rnnkit.data.windows import Windows
from rnnkit.errors import RnnkitError
from rnnkit.training.batches import as_data, iter_batches
from rnnkit.training.inference import predict
from rnnkit.training.losses import match_target

Inverse = Callable[[torch.Tensor], Any]


def _tensor(values: Any, name: str) -> torch.Tensor:
    t = values if isinstance(values, torch.Tensor) else torch.as_tensor(np.asarray(values))
    return t.detach().cpu().to(torch.float64)


def to_units(values: Any, *, inverse: Inverse | None = None, scale: Any = None, offset: Any = 0.0) -> torch.Tensor:
    """Map scaled values to data units (float64): ``inverse(values)`` or ``values · scale + offset``.

    Example:
        >>> to_units(torch.tensor([0.0, 1.0]), scale=8.0, offset=9.5)
        tensor([ 9.5000, 17.5000], dtype=torch.float64)
    """
    if inverse is not None and scale is not None:
        raise RnnkitError("give either inverse or scale/offset, got both")
    t = _tensor(values, "values")
    if inverse is not None:
        return _tensor(inverse(t), "inverse(values)")
    if scale is not None:
        return t * _tensor(scale, "scale") + _tensor(offset, "offset")
    return t


def mae(y_true: Any, y_pred: Any) -> float:
    """Mean absolute error, mean(|y_pred − y_true|), as a float.

    Example:
        >>> mae([1.0, 2.0], [2.0, 4.0])
        1.5
    """
    t, p = _tensor(y_true, "y_true"), _tensor(y_pred, "y_pred")
    return float((p - match_target(p, t)).abs().mean())


def rmse(y_true: Any, y_pred: Any) -> float:
    """Root mean squared error, sqrt(mean((y_pred − y_true)²)), as a float.

    Example:
        >>> rmse([0.0, 0.0], [3.0, 4.0])
        3.5355339059327378
    """
    t, p = _tensor(y_true, "y_true"), _tensor(y_pred, "y_pred")
    return float(((p - match_target(p, t)) ** 2).mean().sqrt())


def skill(mae_model: float, mae_persistence: float) -> float:
    """Skill against persistence: ``1 − mae_model / mae_persistence``.

    Example:
        >>> round(skill(2.39, 2.62), 3)
        0.088
    """
    if not mae_persistence > 0:
        raise RnnkitError(f"mae_persistence must be > 0, got {mae_persistence}")
    return 1.0 - mae_model / mae_persistence


def accuracy(y_true: Any, y_pred: Any) -> float:
    """Share of correct class predictions. ``y_pred``: labels ``(n,)`` or logits ``(n, classes)``.

    Example:
        >>> accuracy([0, 1, 1], torch.tensor([[2.0, 0.0], [0.0, 1.0], [3.0, 1.0]]))
        0.6666666666666666
    """
    true, pred = _labels(y_true, y_pred)
    if true.numel() == 0:
        raise RnnkitError("accuracy needs at least one label, got none")
    return float((pred == true).double().mean())


def _labels(y_true: Any, y_pred: Any) -> tuple[torch.Tensor, torch.Tensor]:
    # Flat (n,) true labels and predicted labels; logits (..., classes) are reduced by argmax.
    true = (
        (y_true if isinstance(y_true, torch.Tensor) else torch.as_tensor(np.asarray(y_true))).detach().cpu().reshape(-1)
    )
    p = (y_pred if isinstance(y_pred, torch.Tensor) else torch.as_tensor(np.asarray(y_pred))).detach().cpu()
    pred = p.argmax(-1).reshape(-1) if p.dim() >= 2 and p.numel() != true.numel() else p.reshape(-1)
    if pred.numel() != true.numel():
        raise RnnkitError(
            f"y_true and y_pred must hold the same number of labels, got {true.numel()} and {pred.numel()}"
        )
    return true.long(), pred.long()


def confusion_matrix(y_true: Any, y_pred: Any, num_classes: int | None = None) -> torch.Tensor:
    """Counts ``(classes, classes)``: row = true class, column = predicted class.

    ``y_pred`` holds labels or logits (argmax taken on the last axis).

    Example:
        >>> confusion_matrix([0, 1, 1], [0, 0, 1])
        tensor([[1, 0],
                [1, 1]])
    """
    true, pred = _labels(y_true, y_pred)
    if num_classes is None:
        num_classes = int(max(true.max(), pred.max())) + 1 if true.numel() else 0
    if not isinstance(num_classes, int) or num_classes < 1:
        raise RnnkitError(f"num_classes must be a positive integer, got {num_classes!r}")
    if true.numel() and (min(true.min(), pred.min()) < 0 or max(true.max(), pred.max()) >= num_classes):
        raise RnnkitError(f"labels must be in [0, {num_classes}), got values outside it")
    return torch.bincount(true * num_classes + pred, minlength=num_classes * num_classes).reshape(
        num_classes, num_classes
    )


def classification_metrics(
    y_true: Any, y_pred: Any, num_classes: int | None = None, positive: int | None = 1
) -> dict[str, Any]:
    """Accuracy, balanced accuracy, precision/recall/F1 and the confusion matrix of class predictions.

    Args:
        y_true: true labels ``(n,)``.
        y_pred: predicted labels ``(n,)`` or logits/scores ``(n, classes)`` (argmax taken).
        num_classes: number of classes (default: the largest label seen + 1).
        positive: the class whose precision, recall and F1 are reported (default 1, "it rains");
            ``None``: their macro averages over the classes.

    Returns:
        ``accuracy``; ``balanced_accuracy`` (the mean recall over the classes present in
        ``y_true``); ``precision``, ``recall``, ``f1`` (0 where undefined: nothing predicted
        or nothing present); ``confusion_matrix`` as a list of lists (row = true class,
        column = predicted class); ``support`` (true examples per class).

    Example:
        >>> m = classification_metrics([0, 0, 0, 1, 1], [0, 0, 1, 1, 0])
        >>> m["accuracy"], m["balanced_accuracy"], m["precision"], m["recall"], m["f1"]
        (0.6, 0.5833333333333333, 0.5, 0.5, 0.5)
    """
    cm = confusion_matrix(y_true, y_pred, num_classes).double()
    k = cm.shape[0]
    if positive is not None and not (isinstance(positive, int) and 0 <= positive < k):
        raise RnnkitError(f"positive must be a class in [0, {k}) or None, got {positive!r}")
    n = float(cm.sum())
    if n == 0:
        raise RnnkitError("classification_metrics needs at least one label, got none")
    tp = cm.diagonal()
    support, predicted = cm.sum(1), cm.sum(0)
    # Undefined ratios (0 / 0) count as 0, as scikit-learn's zero_division=0 does.
    recall = torch.where(support > 0, tp / support.clamp(min=1), torch.zeros_like(tp))
    precision = torch.where(predicted > 0, tp / predicted.clamp(min=1), torch.zeros_like(tp))
    pr = precision + recall
    f1 = torch.where(pr > 0, 2 * precision * recall / pr.clamp(min=1e-300), torch.zeros_like(tp))
    pick = (lambda t: float(t[positive])) if positive is not None else (lambda t: float(t.mean()))
    return {
        "accuracy": float(tp.sum()) / n,
        "balanced_accuracy": float(recall[support > 0].mean()),
        "precision": pick(precision),
        "recall": pick(recall),
        "f1": pick(f1),
        "confusion_matrix": cm.long().tolist(),
        "support": support.long().tolist(),
    }


def regression_metrics(
    y_true: Any,
    y_pred: Any,
    *,
    persistence: Any = None,
    inverse: Inverse | None = None,
    scale: Any = None,
    offset: Any = 0.0,
) -> dict[str, float]:
    """MAE and RMSE in data units, and skill when persistence predictions are given.

    Args:
        y_true, y_pred: targets and predictions in scaled units, same number of values.
        persistence: persistence's predictions for the same targets (scaled units), or ``None``.
        inverse / scale / offset: how scaled values become data units (see :func:`to_units`).

    Returns:
        ``{"mae", "rmse"}`` plus ``"skill"`` when ``persistence`` is given.

    Example:
        >>> m = regression_metrics([0.0, 1.0], [0.5, 1.0], persistence=[1.0, 0.0], scale=2.0)
        >>> m["mae"], round(m["rmse"], 6), m["skill"]
        (0.5, 0.707107, 0.75)
    """
    units = {"inverse": inverse, "scale": scale, "offset": offset}
    t, p = to_units(y_true, **units), to_units(y_pred, **units)
    out = {"mae": mae(t, p), "rmse": rmse(t, p)}
    if persistence is not None:
        out["skill"] = skill(out["mae"], mae(t, to_units(persistence, **units)))
    return out


def targets_of(data: Any, batch_size: int = 4096) -> torch.Tensor:
    """All targets ``y`` of tensors, an indexable object or a batch sequence, concatenated."""
    d = as_data(data)
    if isinstance(d, Windows):  # the targets alone, without gathering every window's inputs
        return d.y.contiguous()
    return torch.cat([y for _, y in iter_batches(d, batch_size)])


def score(
    model: nn.Module,
    data: Any,
    *,
    persistence: nn.Module | None = None,
    inverse: Inverse | None = None,
    scale: Any = None,
    offset: Any = 0.0,
    batch_size: int = 256,
    stateful: bool = False,
) -> dict[str, float]:
    """Score a model (or a baseline: baselines are models) on ``data`` in data units.

    Args:
        model: any ``nn.Module`` from windows to scaled targets.
        data: ``(x, y)`` tensors, an indexable object or a batch sequence.
        persistence: the persistence model to compute skill against (or ``None``).
        inverse / scale / offset: how scaled values become data units.
        batch_size: examples per forward pass.
        stateful: keep batch order and size, resetting states first (stateful models).

    Returns:
        ``{"mae", "rmse"}`` (+ ``"skill"``), floats in data units.

    Example:
        >>> score(model, (x_test, y_test), persistence=Persistence(0), scale=8.4, offset=9.4)  # doctest: +SKIP
    """
    y_pred = predict(model, data, batch_size, stateful=stateful)
    y_true = (
        targets_of(data)
        if not stateful
        else torch.cat([y for _, y in iter_batches(as_data(data), batch_size, drop_last=True)])
    )
    pers = predict(persistence, data, batch_size, stateful=stateful) if persistence is not None else None
    return regression_metrics(y_true, y_pred, persistence=pers, inverse=inverse, scale=scale, offset=offset)


# --- forecasts of several steps ---------------------------------------------------------------


def forecast_scores(y_true: Any, y_pred: Any, *, scale: Any = None, offset: Any = 0.0) -> dict[str, Any]:
    """MAE and RMSE in data units, overall and per forecast step.

    Args:
        y_true, y_pred: ``(examples, steps)`` or ``(examples, steps, 1)``, in scaled units.
        scale, offset: data units are ``value · scale + offset`` (default: leave as given).

    Returns:
        ``{"mae": float, "rmse": float, "mae_by_step": [steps floats], "rmse_by_step": [...]}``.

    Example:
        >>> forecast_scores(torch.zeros(2, 2), torch.tensor([[1.0, 2.0], [1.0, 4.0]]))["mae_by_step"]
        [1.0, 3.0]
    """
    t = to_units(y_true, scale=scale, offset=offset)
    p = to_units(y_pred, scale=scale, offset=offset)
    if t.numel() != p.numel() or t.shape[:2] != p.shape[:2] or t.dim() < 2:
        raise RnnkitError(
            f"y_true and y_pred must both be (examples, steps[, 1]), got {tuple(t.shape)} and {tuple(p.shape)}"
        )
    t, p = t.reshape(t.shape[0], t.shape[1], -1), p.reshape(p.shape[0], p.shape[1], -1)
    steps = range(t.shape[1])
    return {
        "mae": mae(t, p),
        "rmse": rmse(t, p),
        "mae_by_step": [mae(t[:, k], p[:, k]) for k in steps],
        "rmse_by_step": [rmse(t[:, k], p[:, k]) for k in steps],
    }


def multistep_scores(
    model: nn.Module, data: Any, *, scale: float, offset: float, batch_size: int = 1024
) -> dict[str, Any]:
    """MAE and RMSE (data units) over all steps, and the MAE of each step.

    Args:
        model: a multi-step model or baseline, output ``(batch, K)`` or ``(batch, K, 1)``.
        data: windows with ``target_length = K`` (``batch``/``__len__`` and ``y (examples, K, 1)``).
        scale, offset: data units = scaled · scale + offset.

    Returns:
        ``{"mae", "rmse", "mae_by_step": [K floats]}``.
    """
    prediction = predict(model, data, batch_size)
    s = forecast_scores(data.y, prediction, scale=scale, offset=offset)
    return {"mae": s["mae"], "rmse": s["rmse"], "mae_by_step": s["mae_by_step"]}


def last_step_scores(
    model: nn.Module, data: Any, *, scale: float, offset: float, batch_size: int = 1024
) -> dict[str, float]:
    """MAE and RMSE of the last step only (data units): what a many-to-one model of the same horizon predicts.

    Args:
        model: a per-step model or baseline, output ``(batch, T, targets)``.
        data: per-step windows (``batch(indices)``/``__len__``, or ``(x, y)`` tensors with ``y (batch, T, targets)``).
        scale, offset: data units = scaled · scale + offset.
    """
    prediction = predict(model, data, batch_size)
    target = data.y if hasattr(data, "y") else data[1]
    if prediction.dim() != 3 or target.dim() != 3:
        raise RnnkitError(
            f"last_step_scores needs per-step outputs and targets (batch, T, targets), "
            f"got {tuple(prediction.shape)} and {tuple(target.shape)}"
        )
    return regression_metrics(target[:, -1], prediction[:, -1], scale=scale, offset=offset)
