"""Windows: from a series to (examples, sequence_length, features), as views on one tensor."""

from __future__ import annotations

import numpy as np
import torch

from rnnkit.data._series import Series, as_series, check_int_at_least, column_indices
from rnnkit.errors import RnnkitError


class Windows:
    """Training examples cut from one series, held as index arithmetic on one float32 tensor.

    Built by :func:`make_windows`. Memory stays O(rows): ``x`` and ``y`` are strided views on
    the data tensor whenever the window starts form one arithmetic progression (one segment)
    and the target columns are contiguous; otherwise they are gathered on access. The trainer
    uses :meth:`batch`, which gathers only the windows asked for.

    Attributes:
        x: ``(examples, sequence_length, features)``.
        y: ``(examples, n_targets)``; ``(examples, target_length, n_targets)`` when
            ``target_length > 1``; ``(examples, sequence_length, n_targets)`` with
            ``return_sequences=True``.
        start_rows: ``(examples,)`` int64, the first input row of each window.
        last_rows: ``(examples,)`` int64, the final input row of each window.
        target_rows: the target rows, with the leading shape of ``y`` (``(examples,)`` for one target step).
        feature_names, target_names: column names (``"0"``, ``"1"``, ... for arrays); with
            ``known_future`` the feature names end with the known-future columns (``"Day sin @ target"``).
        target_index: positions of the target columns among the features (for persistence baselines).
        known_future: the names of the columns whose future values the windows carry (empty: none).
    """

    def __init__(
        self,
        series: Series,
        start_rows: torch.Tensor,
        *,
        sequence_length: int,
        shift: int,
        sampling_rate: int,
        horizon: int,
        target_length: int,
        target_index: list[int],
        return_sequences: bool,
        known_future: list[str] | None = None,
    ) -> None:
        self.data = series.values
        self.known_future = list(known_future or [])
        self.feature_names = list(series.names)
        self.target_index = list(target_index)
        self.target_names = [series.names[i] for i in target_index]
        self.segments = list(series.segments)
        self.start_rows = start_rows
        self.sequence_length = sequence_length
        self.shift = shift
        self.sampling_rate = sampling_rate
        self.horizon = horizon
        self.target_length = target_length
        self.return_sequences = return_sequences
        r = sampling_rate
        self._input_offsets = torch.arange(sequence_length) * r
        if return_sequences:
            self._target_offsets = self._input_offsets + horizon
        else:
            self._target_offsets = (sequence_length - 1) * r + horizon + torch.arange(target_length) * r
        # One arithmetic progression of starts lets x and y be as_strided views.
        n = len(start_rows)
        steps = torch.diff(start_rows)
        if n <= 1 or bool((steps == steps[0]).all()):
            self._progression = (int(start_rows[0]) if n else 0, int(steps[0]) if n > 1 else 0)
        else:
            self._progression = None

    def __len__(self) -> int:
        return len(self.start_rows)

    @property
    def last_rows(self) -> torch.Tensor:
        return self.start_rows + (self.sequence_length - 1) * self.sampling_rate

    @property
    def target_rows(self) -> torch.Tensor:
        rows = self.start_rows[:, None] + self._target_offsets[None, :]
        return rows[:, 0] if self._one_target_step else rows

    @property
    def _one_target_step(self) -> bool:
        return not self.return_sequences and self.target_length == 1

    def _take(self, offsets: torch.Tensor, cols: list[int]) -> torch.Tensor:
        """``(examples, len(offsets), len(cols))``: a strided view when possible, else a gather."""
        n_feat = self.data.shape[1]
        k = len(offsets)
        step_in = int(offsets[1] - offsets[0]) if k > 1 else 0
        contiguous_cols = cols == list(range(cols[0], cols[0] + len(cols)))
        if self._progression is not None and contiguous_cols:
            first, step = self._progression
            return self.data.as_strided(
                (len(self), k, len(cols)),
                (step * n_feat, step_in * n_feat, 1),
                self.data.storage_offset() + (first + int(offsets[0])) * n_feat + cols[0],
            )
        return self._gather(self.start_rows, offsets)[:, :, cols]

    @property
    def x(self) -> torch.Tensor:
        return self._take(self._input_offsets, list(range(self.data.shape[1])))

    @property
    def y(self) -> torch.Tensor:
        y = self._take(self._target_offsets, self.target_index)
        return y[:, 0] if self._one_target_step else y

    def batch(self, indices) -> tuple[torch.Tensor, torch.Tensor]:
        """Gather the windows ``indices`` (ints, array, tensor or slice) as new ``(x, y)`` tensors.

        Shapes: ``x`` is ``(batch, sequence_length, features)``; ``y`` as :attr:`y` with ``batch`` first.
        """
        starts = self.start_rows[indices] if isinstance(indices, slice) else self.start_rows[torch.as_tensor(indices)]
        starts = starts.reshape(-1)
        x = self._gather(starts, self._input_offsets)
        y = self._gather(starts, self._target_offsets)[:, :, self.target_index]
        return x, (y[:, 0] if self._one_target_step else y)

    def _gather(self, starts: torch.Tensor, offsets: torch.Tensor) -> torch.Tensor:
        """Rows ``starts[i] + offsets`` of the data, ``(len(starts), len(offsets), columns)``.

        The offsets are evenly spaced, so the data is viewed as one window per possible start row
        and the windows asked for are copied whole (``index_select``): 5-10 times faster than
        indexing with a (batch, steps) tensor of row numbers (0.1 against 0.6 ms for 256 windows of
        120 x 19), which the demo did for every batch of every epoch.
        """
        data, k = self.data, len(offsets)
        first, step = int(offsets[0]), int(offsets[1] - offsets[0]) if k > 1 else 0
        possible = data.shape[0] - first - (k - 1) * step  # start rows whose k rows all lie in the data
        if not data.is_contiguous() or possible <= 0:
            return data[starts[:, None] + offsets[None, :]]
        columns = data.shape[1]
        view = data.as_strided(
            (possible, k, columns), (columns, step * columns, 1), data.storage_offset() + first * columns
        )
        return view.index_select(0, starts)

    def rows(self, i: int) -> tuple[list[int], list[int]]:
        """The input rows and target rows of window ``i`` (for inspection and plots)."""
        if not -len(self) <= i < len(self):
            raise RnnkitError(f"window index must be in [{-len(self)}, {len(self)}), got {i}")
        s = int(self.start_rows[i])
        return (s + self._input_offsets).tolist(), (s + self._target_offsets).tolist()

    def __repr__(self) -> str:
        lines = [
            f"Windows({len(self)} examples, sequence_length={self.sequence_length}, shift={self.shift}, "
            f"sampling_rate={self.sampling_rate}, horizon={self.horizon}, target_length={self.target_length}, "
            f"return_sequences={self.return_sequences}, features={len(self.feature_names)}, "
            f"targets={self.target_names})"
        ]
        picks = sorted({0, 1, len(self) - 1} & set(range(len(self))))
        for i in picks:
            inputs, targets = self.rows(i)
            shown = _span(inputs, self.sampling_rate)
            lines.append(f"  window {i}: inputs rows {shown}, target rows {_span(targets, self.sampling_rate)}")
        return "\n".join(lines)


def _span(rows: list[int], step: int) -> str:
    if len(rows) == 1:
        return str(rows[0])
    suffix = "" if step == 1 else f" every {step}"
    return f"{rows[0]}-{rows[-1]}{suffix}"


def make_windows(
    data,
    sequence_length: int,
    *,
    shift: int = 1,
    sampling_rate: int = 1,
    horizon: int = 1,
    target_length: int = 1,
    targets=None,
    return_sequences: bool = False,
    known_future=None,
) -> Windows:
    """Cut a series into windows of ``sequence_length`` input rows and their targets.

    Window i starts at row ``i * shift``; its inputs are rows ``start + j * sampling_rate``,
    j = 0 … sequence_length − 1; ``last`` is its final input row. Its target is row
    ``last + horizon`` (then ``target_length`` rows from there, every ``sampling_rate`` rows).
    With ``return_sequences=True`` every input row t has the target row ``t + horizon``.
    ``shift = sequence_length`` is the course's reshape approach (non-overlapping windows);
    the course's "target shift" k is ``horizon = k + 1``; Chollet's Jena setup is
    ``sampling_rate=6, sequence_length=120, horizon=144``. As many windows as fit are made,
    and no window spans a gap in a DataFrame's timestamps or the boundary between segments.

    Known-future inputs (``known_future``): columns whose values are known in advance (the calendar
    of the target time, a planned value). Input row t of a window then also carries their values at
    row ``t + horizon`` (and, for ``target_length = K``, at ``t + horizon + k * sampling_rate``,
    k = 0 … K−1), appended after the features: at the window's last row these are the values at its
    target rows. Every other column is read at input rows only, never past the window's last row;
    a target column cannot be declared known (it is what is forecast).

    Args:
        data: ``(rows, features)`` or ``(rows,)`` numpy array or torch tensor, a pandas
            DataFrame (a DatetimeIndex with gaps gives several segments), or a list of those
            (each one a segment). Stored once as a float32 tensor.
        sequence_length: input rows per window (>= 1).
        shift: rows between the starts of consecutive windows (>= 1). Default 1.
        sampling_rate: rows between consecutive inputs of a window (>= 1). Default 1.
        horizon: rows from the last input to the target (>= 0; 0 tags the last input itself). Default 1.
        target_length: target steps per window (>= 1). Default 1.
        targets: target columns: None (every column), a name or index, or a list of them.
        return_sequences: a target for every input step (many-to-many). Default False.
        known_future: columns known in advance (names or indices, as ``targets``). Default None.

    Returns:
        :class:`Windows` with ``x`` ``(examples, sequence_length, features)`` and ``y``; with
        ``known_future`` of C columns, ``x`` is ``(examples, sequence_length, features + C * K)``
        (K = ``target_length``, 1 with ``return_sequences``).

    Example (the course slide: 14 rows, sequence length 7, shift 2, target shift 1)::

        >>> w = make_windows(np.arange(14.0), 7, shift=2, horizon=2)
        >>> w
        Windows(3 examples, sequence_length=7, shift=2, ...)
          window 0: inputs rows 0-6, target rows 8
          window 1: inputs rows 2-8, target rows 10
          window 2: inputs rows 4-10, target rows 12

    Example (known future: column 1 of row 3 + 2 = 5 rides on row 3, the last input):
        >>> data = np.stack([np.arange(8.0), 100 + np.arange(8.0)], 1)
        >>> make_windows(data, 4, horizon=2, targets=0, known_future=[1]).x[0, :, 2].tolist()
        [102.0, 103.0, 104.0, 105.0]
    """
    sequence_length = check_int_at_least("sequence_length", sequence_length, 1)
    shift = check_int_at_least("shift", shift, 1)
    sampling_rate = check_int_at_least("sampling_rate", sampling_rate, 1)
    horizon = check_int_at_least("horizon", horizon, 0)
    target_length = check_int_at_least("target_length", target_length, 1)
    if not isinstance(return_sequences, bool):
        raise RnnkitError(f"return_sequences must be True or False, got {return_sequences!r}")
    if return_sequences and target_length != 1:
        raise RnnkitError(
            f"target_length must be 1 with return_sequences=True (one target per input step), got {target_length}"
        )
    series = as_series(data)
    target_index = column_indices(series, targets)
    no_known = known_future is None or (isinstance(known_future, list | tuple) and not known_future)
    known_index = [] if no_known else column_indices(series, known_future, "known_future")
    leaked = [series.names[i] for i in known_index if i in target_index]
    if leaked:
        raise RnnkitError(
            f"known_future must not hold a target column (it is what is forecast, not known in advance), got {leaked}"
        )

    last_offset = (sequence_length - 1) * sampling_rate
    # Rows a window needs from its start to its final target row, inclusive.
    span = last_offset + horizon + (0 if return_sequences else (target_length - 1) * sampling_rate) + 1
    starts = [np.arange(a, b - span + 1, shift) for a, b in series.segments if b - a >= span]
    if not starts:
        longest = max(b - a for a, b in series.segments)
        raise RnnkitError(
            f"sequence_length {sequence_length} is too long for the data: with sampling_rate {sampling_rate}, "
            f"horizon {horizon} and target_length {target_length} a window needs {span} rows, "
            f"but the longest contiguous segment has {longest} rows"
        )
    start_rows = torch.from_numpy(np.concatenate(starts).astype(np.int64))
    known_names = [series.names[i] for i in known_index]
    if known_index:
        steps = 1 if return_sequences else target_length
        series = with_known_future(series, known_index, [horizon + k * sampling_rate for k in range(steps)])
    return Windows(
        series,
        start_rows,
        sequence_length=sequence_length,
        shift=shift,
        sampling_rate=sampling_rate,
        horizon=horizon,
        target_length=target_length,
        target_index=target_index,
        return_sequences=return_sequences,
        known_future=known_names,
    )


def with_known_future(series: Series, known_index: list[int], leads: list[int]) -> Series:
    """``series`` with the columns ``known_index`` appended once per lead: row t gets their row ``t + lead``.

    Shifted within each segment, so a value never comes from another segment. The last ``lead``
    rows of a segment have no such row and hold 0; a window never reads them (its last input lies
    at least ``horizon + (K - 1) * sampling_rate`` rows before its segment's end). Memory: O(rows).
    """
    values = series.values
    rows = values.shape[0]
    shifted = torch.zeros(rows, len(known_index) * len(leads), dtype=values.dtype)  # (rows, C * K)
    known = values[:, known_index]
    for a, b in series.segments:
        for k, lead in enumerate(leads):
            if b - a > lead:
                shifted[a : b - lead, k * len(known_index) : (k + 1) * len(known_index)] = known[a + lead : b]
    suffix = [" @ target"] if len(leads) == 1 else [f" @ target step {k + 1}" for k in range(len(leads))]
    names = [series.names[i] + end for end in suffix for i in known_index]
    return Series(
        values=torch.cat([values, shifted], 1).contiguous(),
        names=[*series.names, *names],
        segments=list(series.segments),
    )
