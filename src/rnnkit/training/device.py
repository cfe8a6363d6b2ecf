"""Where training runs and in which precision: ``[training] device`` and ``precision``.

- ``device = "auto"`` (the default) trains on CUDA where torch sees a GPU and on the CPU elsewhere;
  ``"cpu"`` and ``"cuda"`` ask for one of them (``"cuda"`` without a GPU is bad input, one line).
- ``precision = "fp32"`` (the default), ``"bf16"`` or ``"fp16"``: the forward pass runs under
  :func:`torch.autocast` in that type, the loss and the weights stay float32; ``"fp16"`` scales the
  loss with a :class:`torch.amp.GradScaler` (float16's range is too short for small gradients) and
  needs CUDA. bfloat16 has float32's range and needs no scaler; CPU autocast supports it.

The model moves to the device once, at the start of ``fit``; each batch is gathered by index on the
host and, for a GPU, copied through pinned (page-locked) memory without blocking the host.
"""

from __future__ import annotations

import contextlib
from typing import Any

import torch

from rnnkit.errors import RnnkitError

DEVICES = ("auto", "cpu", "cuda")
PRECISIONS = ("fp32", "bf16", "fp16")
_AUTOCAST = {"bf16": torch.bfloat16, "fp16": torch.float16}


def resolve_device(name: str) -> torch.device:
    """The torch device that ``device = name`` trains on: ``auto`` is CUDA where present, else the CPU.

    Under torchrun each rank's GPU is the one :func:`rnnkit.training.distributed.init_from_env` set
    (``LOCAL_RANK``), which is ``torch.cuda.current_device()``.

    Example:
        >>> resolve_device("cpu")
        device(type='cpu')
        >>> resolve_device("auto") == (torch.device("cuda", torch.cuda.current_device()) if torch.cuda.is_available()
        ...                            else torch.device("cpu"))
        True
    """
    if name not in DEVICES:
        raise RnnkitError(f"device must be one of {', '.join(DEVICES)}, got {name!r}")
    if name == "cpu" or (name == "auto" and not torch.cuda.is_available()):
        return torch.device("cpu")
    if not torch.cuda.is_available():
        raise RnnkitError(
            "device = 'cuda' but torch sees no CUDA GPU on this machine (torch.cuda.is_available() is "
            "False); use device = 'auto' or 'cpu'"
        )
    return torch.device("cuda", torch.cuda.current_device())


def check_precision(precision: str, device: torch.device) -> str:
    """``precision`` when ``device`` can train in it, else a :class:`RnnkitError` that says what to use.

    Example:
        >>> check_precision("bf16", torch.device("cpu"))
        'bf16'
        >>> check_precision("fp16", torch.device("cpu"))
        Traceback (most recent call last):
        ...
        rnnkit.errors.RnnkitError: precision = 'fp16' needs device = 'cuda' (float16 autocast and its gradient scaler are CUDA's); on a CPU use 'bf16' or 'fp32'
    """
    if precision not in PRECISIONS:
        raise RnnkitError(f"precision must be one of {', '.join(PRECISIONS)}, got {precision!r}")
    if precision == "fp16" and device.type != "cuda":
        raise RnnkitError(
            "precision = 'fp16' needs device = 'cuda' (float16 autocast and its gradient scaler are "
            "CUDA's); on a CPU use 'bf16' or 'fp32'"
        )
    if precision == "bf16" and device.type == "cuda" and not torch.cuda.is_bf16_supported():
        raise RnnkitError(f"precision = 'bf16' but {torch.cuda.get_device_name(device)} has no bfloat16; use 'fp16'")
    return precision


def autocast(device: torch.device, precision: str) -> contextlib.AbstractContextManager[Any]:
    """The forward pass's context: :func:`torch.autocast` in bf16/fp16, nothing for fp32.

    Example:
        >>> with autocast(torch.device("cpu"), "bf16"):
        ...     (torch.ones(2, 3) @ torch.ones(3, 1)).dtype
        torch.bfloat16
    """
    if precision == "fp32":
        return contextlib.nullcontext()
    return torch.autocast(device.type, dtype=_AUTOCAST[precision])


def grad_scaler(device: torch.device, precision: str) -> torch.amp.GradScaler | None:
    """A :class:`torch.amp.GradScaler` for fp16 (losses scaled up so that small gradients stay above
    float16's smallest number, steps with inf/NaN gradients skipped), None otherwise."""
    return torch.amp.GradScaler(device.type) if precision == "fp16" else None


def to_device(t: torch.Tensor, device: torch.device) -> torch.Tensor:
    """``t`` on ``device``; a host tensor bound for a GPU goes through pinned memory, without blocking.

    Example:
        >>> to_device(torch.ones(2), torch.device("cpu")).tolist()
        [1.0, 1.0]
    """
    if t.device == device:
        return t
    if device.type == "cuda" and t.device.type == "cpu":
        return t.pin_memory().to(device, non_blocking=True)
    return t.to(device)
