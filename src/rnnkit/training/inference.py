"""Prediction in batches without gradients, for any ``nn.Module`` (models and baselines alike)."""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from rnnkit.errors import RnnkitError
from rnnkit.training.batches import BatchSequence, as_data, iter_batches
from rnnkit.training.device import to_device


def model_device(model: nn.Module) -> torch.device:
    """The device of the model's first parameter or buffer; CPU for a model without any."""
    for p in model.parameters():
        return p.device
    for b in model.buffers():
        return b.device
    return torch.device("cpu")


def reset_states(model: nn.Module) -> None:
    """Call ``model.reset_states()`` when the model has it (stateful recurrent layers)."""
    fn = getattr(model, "reset_states", None)
    if callable(fn):
        fn()


def predict(model: nn.Module, data: Any, batch_size: int = 256, *, stateful: bool = False) -> torch.Tensor:
    """Run ``model`` over ``data`` in eval mode, without gradients, and concatenate the outputs.

    Args:
        model: any ``nn.Module`` taking ``x`` batches.
        data: a tensor ``x`` (examples first), a pair ``(x, y)``, an indexable object with
            ``batch(indices)``, or an ordered sequence of ``(x, y)`` batches.
        batch_size: examples per forward pass (default 256).
        stateful: reset the model's states first and keep the batches whole and in order
            (a last, smaller batch is dropped: stateful layers need a constant batch size).

    Returns:
        The outputs, concatenated along the first axis, on the CPU.

    Example:
        >>> predict(torch.nn.Linear(3, 1), torch.zeros(10, 3)).shape
        torch.Size([10, 1])
    """
    if not isinstance(batch_size, int) or isinstance(batch_size, bool) or batch_size < 1:
        raise RnnkitError(f"batch_size must be a positive integer, got {batch_size!r}")
    if isinstance(data, torch.Tensor):
        data = (data, torch.zeros(data.shape[0], 0))
    data = as_data(data)
    device = model_device(model)
    was_training = model.training
    model.eval()
    if stateful:
        reset_states(model)
    outputs = []
    try:
        with torch.no_grad():
            batches = data if isinstance(data, BatchSequence) else iter_batches(data, batch_size, drop_last=stateful)
            for x, _ in batches:
                outputs.append(model(to_device(x, device)).detach().cpu())  # through pinned memory to a GPU
    finally:
        model.train(was_training)
    if not outputs:
        raise RnnkitError("predict needs at least one full batch of data, got none")
    return torch.cat(outputs)
