"""Chronological splits: the past trains, the future validates and tests."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import torch

from rnnkit.errors import RnnkitError


def split(data, fractions=(0.7, 0.2, 0.1), *, dates=None) -> tuple:
    """Split a series in time order into consecutive parts (train, validation, test, ...).

    Make windows within each part (``make_windows(part, ...)``) so that no input or target of a
    training window lies in a later part. Part sizes are ``int(fraction * rows)`` for all parts
    but the last, which takes the rest (Chollet's convention).

    Args:
        data: numpy array, torch tensor or DataFrame, rows in time order.
        fractions: positive fractions summing to 1, at least two. Default ``(0.7, 0.2, 0.1)``.
        dates: instead of fractions, increasing boundaries for a DataFrame with a DatetimeIndex;
            part k holds the rows with ``dates[k-1] <= time < dates[k]``.

    Returns:
        A tuple of parts of the input's type (slices: views for arrays and tensors).

    Example:
        >>> train, val, test = split(np.arange(10), (0.7, 0.2, 0.1))
        >>> train, val, test
        (array([0, 1, 2, 3, 4, 5, 6]), array([7, 8]), array([9]))
    """
    if not isinstance(data, np.ndarray | torch.Tensor | pd.DataFrame | pd.Series):
        raise RnnkitError(f"data must be a numpy array, torch tensor or DataFrame, got {type(data).__name__}")
    n = len(data)
    if dates is not None:
        bounds = _date_bounds(data, dates)
    else:
        bounds = _fraction_bounds(n, fractions)
    parts = []
    for k, (a, b) in enumerate(zip(bounds[:-1], bounds[1:], strict=True)):
        if b <= a:
            raise RnnkitError(f"split part {k} is empty (rows {a}..{b} of {n}); use fewer parts or other boundaries")
        parts.append(data.iloc[a:b] if isinstance(data, pd.DataFrame | pd.Series) else data[a:b])
    return tuple(parts)


def _fraction_bounds(n: int, fractions) -> list[int]:
    try:
        fr = [float(f) for f in fractions]
    except (TypeError, ValueError):
        raise RnnkitError(f"fractions must be a sequence of numbers, got {fractions!r}") from None
    if len(fr) < 2:
        raise RnnkitError(f"fractions must have at least two parts, got {fractions!r}")
    if any(not math.isfinite(f) or f <= 0 for f in fr):
        raise RnnkitError(f"fractions must all be positive, got {fractions!r}")
    if abs(sum(fr) - 1.0) > 1e-6:
        raise RnnkitError(f"fractions must sum to 1, got {fractions!r} (sum {sum(fr):.6g})")
    # Small epsilon so that 0.29 * 100 counts 29 rows, not 28.
    sizes = [int(f * n + 1e-9) for f in fr[:-1]]
    return [0, *np.cumsum(sizes).tolist(), n]


def _date_bounds(data, dates) -> list[int]:
    if not isinstance(data, pd.DataFrame | pd.Series) or not isinstance(data.index, pd.DatetimeIndex):
        raise RnnkitError("dates needs a DataFrame with a DatetimeIndex; give fractions for arrays and tensors")
    try:
        stamps = pd.DatetimeIndex([pd.Timestamp(d) for d in dates])
    except (TypeError, ValueError) as e:
        raise RnnkitError(f"dates must be timestamps, got {dates!r} ({e})") from None
    if len(stamps) < 1:
        raise RnnkitError(f"dates must hold at least one boundary, got {dates!r}")
    if not stamps.is_monotonic_increasing or stamps.has_duplicates:
        raise RnnkitError(f"dates must increase strictly, got {list(dates)!r}")
    if data.index.tz is not None and stamps.tz is None:
        stamps = stamps.tz_localize(data.index.tz)
    cuts = data.index.searchsorted(stamps, side="left").tolist()
    return [0, *cuts, len(data)]


def split_per_segment(
    frame: pd.DataFrame, fractions=(0.7, 0.2, 0.1), min_rows: int = 1
) -> tuple[list[pd.DataFrame], ...]:
    """Split every contiguous segment of a DataFrame in time, so each part sees every segment.

    A series with gaps (say a summer export and a winter export) split as a whole would train
    on one season and test on another; split per segment, each part holds a piece of each.

    Args:
        frame: a DataFrame with a DatetimeIndex (its gaps define the segments, see ``segments``).
        fractions: as for :func:`split`, applied to each segment.
        min_rows: segments shorter than this are left out (pass the rows one window spans: a
            shorter segment holds no window in any part, and often cannot be split at all).

    Returns:
        One list of frames per part, each list holding that part's piece of every segment in
        time order (pass a list to ``make_windows``: each piece is a segment of its own).

    Example:
        >>> times = pd.date_range("2024-01-01", periods=10, freq="h").append(
        ...     pd.date_range("2024-06-01", periods=20, freq="h"))           # two segments, 10 and 20 rows
        >>> train, val, test = split_per_segment(pd.DataFrame({"T": np.arange(30.0)}, index=times), (0.6, 0.2, 0.2))
        >>> [len(p) for p in train], [len(p) for p in test]               # one piece per segment
        ([6, 12], [2, 4])
        >>> train, val, test = split_per_segment(pd.DataFrame({"T": np.arange(30.0)}, index=times), (0.6, 0.2, 0.2),
        ...                                      min_rows=15)                # the 10-row segment is left out
        >>> [len(p) for p in train], [len(p) for p in test]
        ([12], [4])
    """
    from rnnkit.data._series import segments

    parts: list[list[pd.DataFrame]] = [[] for _ in fractions]
    for a, b in segments(frame):
        if b - a < min_rows:
            continue
        chunk = frame.iloc[a:b]
        try:
            pieces = split(chunk, fractions)
        except ValueError as e:
            raise RnnkitError(
                f"cannot split the segment {chunk.index[0]} to {chunk.index[-1]} "
                f"({len(chunk)} rows) by {list(fractions)}: {e}"
            ) from None
        for part, piece in zip(parts, pieces):
            part.append(piece)
    return tuple(parts)
