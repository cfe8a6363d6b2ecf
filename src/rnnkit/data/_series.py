"""Turn the accepted data types into one float32 tensor plus column names and segments.

Shared by windowing and stream batching. Data only: no file I/O.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass

from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from rnnkit.errors import RnnkitError

if TYPE_CHECKING:
    import torch


@dataclass(frozen=True)
class Series:
    """One series as a contiguous ``(rows, features)`` float32 tensor.

    ``segments`` lists half-open row ranges ``(start, stop)`` that are contiguous in time;
    a window never crosses from one to the next.
    """

    values: torch.Tensor
    names: list[str]
    segments: list[tuple[int, int]]


def segments(data: pd.DataFrame | pd.DatetimeIndex) -> list[tuple[int, int]]:
    """Contiguous row ranges of a time-indexed series, split wherever the step is not the modal one.

    Args:
        data: a DataFrame with a DatetimeIndex, or the index itself. Any other index is one segment.

    Returns:
        Half-open row ranges ``[(start, stop), ...]`` covering every row in order.

    Example:
        >>> idx = pd.to_datetime(["2024-01-01 00:00", "2024-01-01 00:10", "2024-01-01 00:20",
        ...                       "2024-01-02 00:00", "2024-01-02 00:10"])
        >>> segments(idx)
        [(0, 3), (3, 5)]
    """
    index = data.index if isinstance(data, pd.DataFrame | pd.Series) else data
    n = len(index)
    if not isinstance(index, pd.DatetimeIndex) or n < 3:
        return [(0, n)] if n else []
    check_time_order(index)
    steps = np.diff(index.as_unit("ns").asi8)
    values, counts = np.unique(steps, return_counts=True)
    modal = values[np.argmax(counts)]
    day_ns = 86_400 * 10**9
    if 28 * day_ns <= modal <= 31 * day_ns:
        # Monthly data: calendar months differ in length, so count the step in months.
        months = np.asarray(index.year * 12 + index.month)
        same_day = (np.asarray(index.day)[1:] == np.asarray(index.day)[:-1]) & (
            np.asarray(index.time)[1:] == np.asarray(index.time)[:-1]
        )
        steps = np.where(same_day, np.diff(months), 0)
        modal = 1
    # A row starts a new segment when the step into it is not the modal step (a gap or a jitter).
    breaks = (np.flatnonzero(steps != modal) + 1).tolist()
    bounds = [0, *breaks, n]
    return list(zip(bounds[:-1], bounds[1:], strict=True))


def check_time_order(index: pd.DatetimeIndex) -> None:
    """Raise ValueError when timestamps repeat or go backwards, naming the first offending row."""
    steps = np.diff(index.as_unit("ns").asi8)
    bad = np.flatnonzero(steps <= 0)
    if bad.size:
        i = int(bad[0]) + 1
        kind = "duplicated" if steps[bad[0]] == 0 else "out of order"
        raise RnnkitError(
            f"data: timestamps must increase strictly, but row {i} ({index[i]}) is {kind} "
            f"after row {i - 1} ({index[i - 1]}); sort and de-duplicate first"
        )


def _to_numpy(part, what: str) -> tuple[np.ndarray, list[str] | None, pd.Index | None]:
    if isinstance(part, pd.DataFrame):
        non_numeric = [str(c) for c, t in part.dtypes.items() if not pd.api.types.is_numeric_dtype(t)]
        if non_numeric:
            raise RnnkitError(f"{what}: every column must be numeric, got non-numeric {non_numeric}")
        return part.to_numpy(dtype=np.float32), [str(c) for c in part.columns], part.index
    if isinstance(part, pd.Series):
        return part.to_numpy(dtype=np.float32)[:, None], [str(part.name)], part.index
    torch = sys.modules.get("torch")  # a tensor can only come from a loaded torch: reading files needs none
    if torch is not None and isinstance(part, torch.Tensor):
        arr = part.detach().cpu()
        arr = arr.numpy() if arr.dtype == torch.float32 else arr.to(torch.float32).numpy()
    elif isinstance(part, np.ndarray):
        arr = part
    else:
        raise RnnkitError(
            f"{what} must be a numpy array, torch tensor, pandas DataFrame or a list of them, got {type(part).__name__}"
        )
    if arr.ndim == 1:
        arr = arr[:, None]
    if arr.ndim != 2:
        raise RnnkitError(f"{what} must have shape (rows,) or (rows, features), got shape {tuple(arr.shape)}")
    if not np.issubdtype(arr.dtype, np.number) and arr.dtype != np.bool_:
        raise RnnkitError(f"{what} must be numeric, got dtype {arr.dtype}")
    return np.ascontiguousarray(arr, dtype=np.float32), None, None


def as_series(data, what: str = "data") -> Series:
    """Convert ``data`` (array, tensor, DataFrame, or a list of them as segments) to a :class:`Series`.

    Raises ValueError on NaN/inf values, on timestamps out of order or duplicated, on mixed
    column names between segments, and on empty data.
    """
    parts = list(data) if isinstance(data, list | tuple) else [data]
    if not parts:
        raise RnnkitError(f"{what} must hold at least one row, got an empty list")
    arrays: list[np.ndarray] = []
    names, segs, offset = None, [], 0
    for k, part in enumerate(parts):
        label = what if len(parts) == 1 else f"{what}[{k}]"
        arr, part_names, index = _to_numpy(part, label)
        if names is None:
            names = part_names
        elif part_names is not None and part_names != names:
            raise RnnkitError(f"{label}: columns {part_names} differ from the first segment's {names}")
        if arrays and arr.shape[1] != arrays[0].shape[1]:
            raise RnnkitError(f"{label}: {arr.shape[1]} features, but the first segment has {arrays[0].shape[1]}")
        finite = np.isfinite(arr)
        if not finite.all():
            rows = np.flatnonzero(~finite.all(axis=1))
            raise RnnkitError(
                f"{label}: {rows.size} rows hold NaN or inf values (first rows {rows[:5].tolist()}); "
                "clean or interpolate them first"
            )
        local = segments(index) if index is not None else [(0, len(arr))]
        segs += [(offset + a, offset + b) for a, b in local if b > a]
        arrays.append(arr)
        offset += len(arr)
    if offset == 0:
        raise RnnkitError(f"{what} must hold at least one row, got 0 rows")
    joined = arrays[0] if len(arrays) == 1 else np.concatenate(arrays)
    if not joined.flags.writeable:
        # torch cannot share a read-only buffer without a warning; copy once.
        joined = joined.copy()
    import torch

    values = torch.from_numpy(joined)
    if names is None:
        names = [str(i) for i in range(values.shape[1])]
    return Series(values=values.contiguous(), names=names, segments=segs)


def column_indices(series: Series, columns, what: str = "targets") -> list[int]:
    """Column positions for ``columns`` (None: all; a name or index; or a list of them)."""
    if columns is None:
        return list(range(len(series.names)))
    items = [columns] if isinstance(columns, str | int | np.integer) else list(columns)
    if not items:
        raise RnnkitError(f"{what} must name at least one column, got an empty list")
    out = []
    for c in items:
        if isinstance(c, str):
            if c not in series.names:
                raise RnnkitError(f"{what}: column {c!r} is not in the data; columns are {series.names}")
            out.append(series.names.index(c))
        elif isinstance(c, int | np.integer) and not isinstance(c, bool):
            if not -len(series.names) <= c < len(series.names):
                raise RnnkitError(f"{what}: column index {c} is out of range for {len(series.names)} features")
            out.append(int(c) % len(series.names))
        else:
            raise RnnkitError(f"{what} must be column names or indices, got {c!r}")
    return out


def check_int_at_least(name: str, value, minimum: int) -> int:
    """Return ``value`` if it is an int >= minimum, else raise ValueError naming it."""
    if isinstance(value, bool) or not isinstance(value, int | np.integer):
        raise RnnkitError(f"{name} must be an integer, got {value!r}")
    if value < minimum:
        rule = "positive (>= 1)" if minimum == 1 else f">= {minimum}"
        raise RnnkitError(f"{name} must be {rule}, got {value}")
    return int(value)
