"""Batches for training and evaluation, gathered by index from whole tensors (DESIGN §7).

Three kinds of data are accepted everywhere a trainer, a metric or a baseline takes data:

- a pair of tensors ``(x, y)`` with the examples on the first axis;
- an *indexable* object with ``__len__`` and ``batch(indices) -> (x, y)`` (e.g. the
  windows of :func:`rnnkit.data.make_windows`, which gather windows from one series
  tensor without copying every window); ``indices`` is a 1-D ``torch.long`` tensor;
- an ordered, re-iterable *sequence of batches* ``[(x0, y0), (x1, y1), ...]`` (a list, or
  an object whose ``__iter__`` starts over each time, such as stateful stream batches):
  used as given, in order, never shuffled; ``batch_size`` does not apply.

There is no per-sample ``Dataset``/``DataLoader``: one index tensor per batch.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import Any

import torch

from rnnkit.data.windows import Windows
from rnnkit.errors import RnnkitError

Batch = tuple[torch.Tensor, torch.Tensor]


class TensorPair:
    """Indexable view of ``(x, y)`` tensors: ``batch(idx)`` returns ``(x[idx], y[idx])``."""

    def __init__(self, x: torch.Tensor, y: torch.Tensor, name: str = "data") -> None:
        if not isinstance(x, torch.Tensor) or not isinstance(y, torch.Tensor):
            raise RnnkitError(f"{name} must be a pair of tensors (x, y), got ({type(x).__name__}, {type(y).__name__})")
        if x.shape[0] != y.shape[0]:
            raise RnnkitError(
                f"{name} x and y must have the same number of examples, got {x.shape[0]} and {y.shape[0]}"
            )
        self.x, self.y = x, y

    def __len__(self) -> int:
        return int(self.x.shape[0])

    def batch(self, indices: torch.Tensor) -> Batch:
        return self.x[indices], self.y[indices]


class BatchSequence:
    """An ordered, re-iterable sequence of ``(x, y)`` batches, used as given."""

    def __init__(self, batches: Iterable[Any], name: str = "data") -> None:
        self.batches = batches
        self.name = name

    def __iter__(self) -> Iterator[Batch]:
        for i, item in enumerate(self.batches):
            if not (
                isinstance(item, (tuple, list)) and len(item) == 2 and all(isinstance(t, torch.Tensor) for t in item)
            ):
                raise RnnkitError(f"{self.name} batch {i} must be a pair of tensors (x, y), got {type(item).__name__}")
            yield item[0], item[1]

    def __len__(self) -> int:
        if hasattr(self.batches, "__len__"):
            return len(self.batches)  # type: ignore[arg-type]
        return sum(1 for _ in self.batches)

    def num_examples(self) -> int:
        return sum(int(x.shape[0]) for x, _ in self)


def as_data(data: Any, name: str = "data") -> TensorPair | BatchSequence | Any:
    """Classify ``data`` as tensors, an indexable object or a batch sequence (see the module docstring)."""
    if isinstance(data, tuple) and len(data) == 2 and all(isinstance(t, torch.Tensor) for t in data):
        return TensorPair(data[0], data[1], name)
    if callable(getattr(data, "batch", None)) and hasattr(data, "__len__"):
        return data
    if isinstance(data, (list, tuple)) or (hasattr(data, "__iter__") and iter(data) is not data):
        return BatchSequence(data, name)
    if hasattr(data, "__iter__"):
        raise RnnkitError(
            f"{name} must be re-iterable (every epoch starts over), got a one-shot iterator {type(data).__name__}; pass a list"
        )
    raise RnnkitError(
        f"{name} must be a pair of tensors (x, y), an object with __len__ and batch(indices), "
        f"or a sequence of (x, y) batches, got {type(data).__name__}"
    )


def iter_batches(
    data: Any,
    batch_size: int,
    *,
    shuffle: bool = False,
    generator: torch.Generator | None = None,
    drop_last: bool = False,
) -> Iterator[Batch]:
    """Yield ``(x, y)`` batches from data classified by :func:`as_data`.

    Args:
        data: tensors, an indexable object or a batch sequence.
        batch_size: examples per batch (ignored for a batch sequence).
        shuffle: draw a permutation with ``generator`` (indexable data only).
        generator: the ``torch.Generator`` that makes shuffling repeatable.
        drop_last: leave out a last, smaller batch (stateful training needs a constant batch size).

    Example:
        >>> xs, ys = torch.arange(5.0)[:, None], torch.arange(5.0)
        >>> [b[1].tolist() for b in iter_batches((xs, ys), 2)]
        [[0.0, 1.0], [2.0, 3.0], [4.0]]
    """
    data = as_data(data)
    if isinstance(data, BatchSequence):
        if shuffle:
            raise RnnkitError("shuffle must be False for a sequence of batches (their order is given), got True")
        yield from data
        return
    for indices in batch_indices(len(data), batch_size, shuffle=shuffle, generator=generator, drop_last=drop_last):
        yield data.batch(indices)


def batch_indices(
    n: int, batch_size: int, *, shuffle: bool = False, generator: torch.Generator | None = None, drop_last: bool = False
) -> Iterator[torch.Tensor]:
    """The example indices of each batch of an epoch over ``n`` examples (one permutation drawn when shuffling).

    Example:
        >>> [b.tolist() for b in batch_indices(5, 2)]
        [[0, 1], [2, 3], [4]]
    """
    order = torch.randperm(n, generator=generator) if shuffle else torch.arange(n)
    stop = n - n % batch_size if drop_last else n
    for start in range(0, stop, batch_size):
        yield order[start : start + batch_size]


def check_finite(data: Any, split: str, batch_size: int = 4096) -> None:
    """Raise a :class:`RnnkitError` naming ``split`` and the first window whose inputs or
    target hold NaN or an infinity (one pass over the data, in order, without shuffling).

    Example:
        >>> x = torch.zeros(5, 3, 1); x[3, 1, 0] = float("nan")
        >>> check_finite((x, torch.zeros(5, 1)), "val")
        Traceback (most recent call last):
        ...
        rnnkit.errors.RnnkitError: val inputs hold NaN or inf: first in window 3 (step 1, feature 0); clean the data (or set check_finite = false to train anyway)
    """
    if isinstance(data, Windows) and bool(torch.isfinite(data.data).all()):
        return  # every window is cut from these rows: each row checked once, not once per window that holds it
    seen = 0
    for x, y in iter_batches(data, batch_size):
        for part, t in (("inputs", x), ("targets", y)):
            if t.is_floating_point() and not bool(torch.isfinite(t).all()):
                where = torch.nonzero(~torch.isfinite(t))[0].tolist()
                detail = ""
                if t.dim() == 3 and part == "inputs":
                    detail = f" (step {where[1]}, feature {where[2]})"
                raise RnnkitError(
                    f"{split} {part} hold NaN or inf: first in window {seen + where[0]}{detail}; "
                    "clean the data (or set check_finite = false to train anyway)"
                )
        seen += x.shape[0]


def count_examples(data: Any) -> int:
    """Number of examples in data classified by :func:`as_data`."""
    data = as_data(data)
    if isinstance(data, BatchSequence):
        return data.num_examples()
    return len(data)
