"""Windows over many series whose rows stay on disk: split in time per series, scaled per series or globally.

The rows come from a store (``rows(series, start, stop)``, ``spans(global_starts, length)``,
``segments``, ``lengths``, ``offsets``, ``columns``: :class:`rnnkit.datasets.parquet.SeriesStore`).
Each series is split in time by the same fractions as :func:`rnnkit.data.split` splits one series
(``int(fraction * rows)`` for all parts but the last); each part of each series is cut into
windows with :func:`rnnkit.data.make_windows`'s rules, within the series' contiguous segments, so
no window crosses two series, a gap or a split boundary. :class:`SeriesWindows` holds only the
segments' first windows; ``batch(indices)`` reads and scales just the windows asked for.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from rnnkit.errors import RnnkitError

CHUNK_ROWS = 65_536  # rows read at a time when the scaling statistics are fit


def part_bounds(n: int, fractions) -> list[int]:
    """Row bounds of the parts of a series of ``n`` rows: ``int(f · n)`` rows each, the last takes the rest.

    Example:
        >>> part_bounds(10, (0.7, 0.2, 0.1))
        [0, 7, 9, 10]
    """
    bounds = [0]
    for f in list(fractions)[:-1]:
        bounds.append(bounds[-1] + int(f * n))
    return bounds + [n]


@dataclass
class SeriesScaler:
    """z = (x − mean) / std per column, fit on the training rows: one row of statistics per series, or one for all.

    ``mean`` and ``std`` are ``(series, columns)`` (``per_series``) or ``(1, columns)`` (global);
    ``std`` is the population standard deviation, as :class:`rnnkit.data.Standardizer`'s.
    """

    mean: np.ndarray
    std: np.ndarray
    columns: list[str]
    per_series: bool

    def stats(self, series: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """``(mean, std)`` of each series in ``series``: ``(len(series), columns)``."""
        k = series if self.per_series else np.zeros_like(series)
        return self.mean[k], self.std[k]

    def to_dict(self) -> dict[str, Any]:
        return {
            "per_series": self.per_series,
            "columns": self.columns,
            "mean": self.mean.tolist(),
            "std": self.std.tolist(),
        }

    @classmethod
    def fit(cls, store, parts: np.ndarray, per_series: bool, ids: list[str] | None = None) -> SeriesScaler:
        """Fit on rows ``parts[s, 0]`` to ``parts[s, 1]`` of each series ``s`` (its training part).

        Chunks are merged with Chan's formula (each chunk's own mean and squared deviations), so the
        statistics match numpy's on the rows loaded whole to float rounding.
        """
        n_series, width = len(store.lengths), len(store.columns)
        count = np.zeros(n_series)
        mean = np.zeros((n_series, width))
        m2 = np.zeros((n_series, width))
        for s in range(n_series):
            a, b = int(parts[s, 0]), int(parts[s, 1])
            for start in range(a, b, CHUNK_ROWS):
                rows = store.rows(s, start, min(b, start + CHUNK_ROWS))
                c_n, c_mean = len(rows), rows.mean(axis=0)
                c_m2 = ((rows - c_mean) ** 2).sum(axis=0)
                total = count[s] + c_n
                delta = c_mean - mean[s]
                mean[s] += delta * c_n / total
                m2[s] += c_m2 + delta**2 * count[s] * c_n / total
                count[s] = total
        if not per_series:
            total = count.sum()
            g_mean = (mean * count[:, None]).sum(axis=0) / total
            g_m2 = (m2 + count[:, None] * (mean - g_mean) ** 2).sum(axis=0)
            mean, m2, count = g_mean[None], g_m2[None], np.array([total])
        std = np.sqrt(m2 / count[:, None])
        zero = np.argwhere(std == 0)
        if len(zero):
            s, c = (int(v) for v in zero[0])
            where = f"series {ids[s]!r}" if per_series and ids else "the training rows"
            raise RnnkitError(
                f"column {store.columns[c]!r} is constant (std 0) in {where}: it cannot be scaled "
                + ("(scaling = 'global' pools every series)" if per_series else "; drop it")
            )
        return cls(mean, std, list(store.columns), per_series)


class SeriesWindows:
    """The windows of one part (train, val or test) of every series of a store, gathered on demand.

    ``batch(indices)`` returns ``(x, y)`` float32, scaled: ``x`` ``(batch, sequence_length, features)``
    (``with_series``: one more last column, the window's series index, unscaled), ``y`` ``(batch, targets)``; :meth:`locate` gives each window's series and first row. Windows are
    ordered by series (in the store's order), then by time.
    """

    def __init__(
        self,
        store,
        scaler: SeriesScaler,
        ranges: np.ndarray,
        *,
        sequence_length: int,
        shift: int = 1,
        sampling_rate: int = 1,
        horizon: int = 1,
        target_index: list[int],
        part: str = "data",
        with_series: bool = False,
    ) -> None:
        self.store, self.scaler = store, scaler
        self.with_series = with_series  # x gets one more column: the window's series index (for an id embedding)
        self.sequence_length, self.shift, self.sampling_rate, self.horizon = (
            sequence_length,
            shift,
            sampling_rate,
            horizon,
        )
        self.target_index = list(target_index)
        self.span = (sequence_length - 1) * sampling_rate + horizon + 1  # rows from a window's start to its target
        seg_series, seg_start, seg_count = [], [], []
        for s, (a, b) in enumerate(np.asarray(ranges).tolist()):
            for lo, hi in store.segments[s]:
                lo, hi = max(lo, a), min(hi, b)  # the segment's rows inside this part
                if hi - lo >= self.span:
                    seg_series.append(s)
                    seg_start.append(lo)
                    seg_count.append((hi - lo - self.span) // shift + 1)
        if not seg_count:
            raise RnnkitError(
                f"the {part} part of the series yields no window: a window needs {self.span} rows "
                "without a gap (sequence_length, sampling_rate and horizon); the series are too short"
            )
        self.seg_series = np.asarray(seg_series, dtype=np.int64)
        self.seg_start = np.asarray(seg_start, dtype=np.int64)  # local row within the series
        self.first = np.concatenate(([0], np.cumsum(seg_count))).astype(np.int64)  # first window of each segment
        self._inputs = np.arange(sequence_length) * sampling_rate
        self._target = (sequence_length - 1) * sampling_rate + horizon

    def __len__(self) -> int:
        return int(self.first[-1])

    def locate(self, indices) -> tuple[np.ndarray, np.ndarray]:
        """``(series, start row within the series)`` of each window in ``indices``."""
        idx = np.asarray(torch.as_tensor(indices).reshape(-1), dtype=np.int64)
        if len(idx) and (idx.min() < 0 or idx.max() >= len(self)):
            raise RnnkitError(f"window index out of range [0, {len(self)})")
        k = np.searchsorted(self.first, idx, side="right") - 1
        return self.seg_series[k], self.seg_start[k] + (idx - self.first[k]) * self.shift

    def _scaled_spans(self, indices) -> tuple[np.ndarray, np.ndarray]:
        series, starts = self.locate(indices)
        rows = self.store.spans(self.store.offsets[series] + starts, self.span)  # (batch, span, columns)
        mean, std = self.scaler.stats(series)
        return (rows - mean[:, None, :]) / std[:, None, :], series

    def batch(self, indices) -> tuple[torch.Tensor, torch.Tensor]:
        rows, series = self._scaled_spans(indices)
        x = rows[:, self._inputs, :]
        if self.with_series:
            x = np.concatenate([x, np.broadcast_to(series[:, None, None], (len(x), x.shape[1], 1))], axis=2)
        y = rows[:, self._target, :][:, self.target_index]
        return torch.from_numpy(x.astype(np.float32)), torch.from_numpy(y.astype(np.float32))

    def series_of(self, indices) -> np.ndarray:
        """The series (its position in the store) of each window in ``indices``."""
        return self.locate(indices)[0]
