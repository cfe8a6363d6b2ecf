"""Batches for stateful RNNs: batch_size contiguous streams walked in step."""

from __future__ import annotations

import torch

from rnnkit.data._series import as_series, check_int_at_least, column_indices
from rnnkit.errors import RnnkitError


class StreamBatches:
    """Consecutive chunks of ``batch_size`` parallel streams, for stateful training.

    The usable rows (those that have a target ``horizon`` rows later) are cut into
    ``batch_size`` streams of ``stream_length`` rows; stream b holds rows
    ``b·stream_length … (b+1)·stream_length − 1``. Batch k holds, in its row b, rows
    ``b·stream_length + k·sequence_length + j`` (j = 0 … sequence_length − 1), so row b of
    batch k+1 continues row b of batch k and a stateful layer's carried state stays valid.
    Rows at the end of a stream that fill no whole chunk are left out.

    Iterating yields ``(x, y)`` in order (never shuffle): ``x`` is
    ``(batch_size, sequence_length, features)``; ``y`` is ``(batch_size, n_targets)`` for
    many-to-one (target of the chunk's last row) or ``(batch_size, sequence_length, n_targets)``
    with ``return_sequences=True``. ``rows`` is ``(batches, batch_size, sequence_length)`` and
    ``target_rows`` matches ``y``'s leading shape, for inspection.
    """

    def __init__(
        self,
        values: torch.Tensor,
        stream_length: int,
        n_batches: int,
        batch_size: int,
        sequence_length: int,
        horizon: int,
        target_index: list[int],
        return_sequences: bool,
    ) -> None:
        self.data = values
        self.stream_length = stream_length
        self.batch_size = batch_size
        self.sequence_length = sequence_length
        self.horizon = horizon
        self.target_index = target_index
        self.return_sequences = return_sequences
        self._n = n_batches

    def __len__(self) -> int:
        return self._n

    @property
    def rows(self) -> torch.Tensor:
        k = torch.arange(self._n)[:, None, None] * self.sequence_length
        b = torch.arange(self.batch_size)[None, :, None] * self.stream_length
        j = torch.arange(self.sequence_length)[None, None, :]
        return k + b + j

    @property
    def target_rows(self) -> torch.Tensor:
        rows = self.rows + self.horizon
        return rows if self.return_sequences else rows[:, :, -1]

    def __getitem__(self, k: int) -> tuple[torch.Tensor, torch.Tensor]:
        if not -self._n <= k < self._n:
            raise IndexError(f"batch index must be in [{-self._n}, {self._n}), got {k}")
        k %= self._n
        n_feat = self.data.shape[1]
        # (batch_size, sequence_length, features) view: stream b starts b·stream_length rows later.
        x = self.data.as_strided(
            (self.batch_size, self.sequence_length, n_feat),
            (self.stream_length * n_feat, n_feat, 1),
            self.data.storage_offset() + k * self.sequence_length * n_feat,
        )
        y_rows = self.rows[k] + self.horizon
        y = self.data[y_rows][:, :, self.target_index]
        return x, (y if self.return_sequences else y[:, -1])

    def __iter__(self):
        for k in range(self._n):
            yield self[k]


def stream_batches(
    data,
    batch_size: int,
    sequence_length: int,
    *,
    horizon: int = 1,
    targets=None,
    return_sequences: bool = False,
) -> StreamBatches:
    """Cut one contiguous series into ``batch_size`` streams for stateful training (TBPTT).

    Args:
        data: ``(rows, features)`` array, tensor or DataFrame, one contiguous segment (a
            DataFrame whose timestamps have gaps is refused: make one stream set per segment).
        batch_size: parallel streams (>= 1); a stateful model's batch size.
        sequence_length: rows per chunk (>= 1): the truncated back-propagation length.
        horizon: rows from an input row to its target (>= 0). Default 1.
        targets: target columns (None: all; a name or index; or a list of them).
        return_sequences: a target for every row of the chunk (many-to-many). Default False.

    Returns:
        :class:`StreamBatches`, iterable of ``(x, y)``.

    Example (10 rows, 2 streams, chunks of 2, horizon 1: usable rows 0–8, streams of 4)::

        >>> s = stream_batches(np.arange(10.0), 2, 2)
        >>> s.rows.tolist()     # batch 1 row b continues batch 0 row b
        [[[0, 1], [4, 5]], [[2, 3], [6, 7]]]
        >>> s.target_rows.tolist()
        [[2, 6], [4, 8]]
    """
    batch_size = check_int_at_least("batch_size", batch_size, 1)
    sequence_length = check_int_at_least("sequence_length", sequence_length, 1)
    horizon = check_int_at_least("horizon", horizon, 0)
    if not isinstance(return_sequences, bool):
        raise RnnkitError(f"return_sequences must be True or False, got {return_sequences!r}")
    series = as_series(data)
    if len(series.segments) != 1:
        raise RnnkitError(
            f"data has {len(series.segments)} contiguous segments (gaps in its timestamps); "
            "stateful streams must not cross a gap: call stream_batches per segment"
        )
    target_index = column_indices(series, targets)
    usable = len(series.values) - horizon
    stream_length = usable // batch_size
    n_batches = stream_length // sequence_length
    if n_batches < 1:
        raise RnnkitError(
            f"sequence_length {sequence_length} is too long for the data: {len(series.values)} rows with "
            f"horizon {horizon} give {batch_size} streams of {max(stream_length, 0)} rows, fewer than one chunk"
        )
    return StreamBatches(
        series.values, stream_length, n_batches, batch_size, sequence_length, horizon, target_index, return_sequences
    )
