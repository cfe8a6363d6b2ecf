"""Many series from Parquet, read by row group, held on disk: memory grows with the index, not the data.

A *long* table holds one row per series and time: a series-id column, a time column and value
columns (a file, or a folder of files read in name order; a file without the id column is one
series named by its file name: one file per series). :func:`read_parquet_series` reads it twice
with pyarrow one row group at a time (its wanted columns only), in record batches of ``batch_rows`` rows:

1. id and time only: each series' row count, and the step between its rows (the modal step
   is its clock; a row after any other step starts a new segment, as for a DataFrame in
   :func:`rnnkit.data.make_windows`); times must increase within a series;
2. the values: each row is written, as float64, to its place in a *spill file* (one series
   after the other, in time order), an unlinked temporary file that the operating system
   removes even after ``kill -9``.

Memory then holds the index (per series: rows, segments; per part: the segments' first windows)
and the one batch being read, never the table. :class:`SeriesStore` reads any rows back with
``os.pread``. The series keep the order in which their ids first appear.

Example::

    store = read_parquet_series("stations.parquet", id_column="station", time_column="time",
                                columns=["T (degC)", "p (mbar)"])
    store.rows(0, 0, 24)        # series 0's first 24 rows, (24, 2) float64
"""

from __future__ import annotations

import os
import tempfile
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from rnnkit.errors import RnnkitError

BATCH_ROWS = 65_536  # rows per record batch read from the Parquet file


def _pyarrow():
    try:
        import pyarrow.parquet as pq
    except ImportError:  # pragma: no cover - a dependency of rnnkit
        raise RnnkitError("reading Parquet needs pyarrow: pip install pyarrow") from None
    return pq


def parquet_files(path: str | os.PathLike[str] | list) -> list[Path]:
    """The Parquet files of a file, a folder (its ``*.parquet`` files, in name order) or a list of them."""
    items = list(path) if isinstance(path, list | tuple) else [path]
    files: list[Path] = []
    for item in items:
        p = Path(item)
        if p.is_dir():
            found = sorted(q for q in p.iterdir() if q.suffix == ".parquet" and q.is_file())
            if not found:
                raise RnnkitError(f"{p}: a folder with no .parquet file")
            files += found
        elif p.is_file():
            files.append(p)
        else:
            raise FileNotFoundError(2, "No such file or directory", str(p))
    if not files:
        raise RnnkitError("no Parquet file given")
    return files


@dataclass
class SeriesStore:
    """Many series' rows on disk (float64, a spill file) plus their index in memory.

    Attributes:
        ids: each series' id, as text, in the order of first appearance.
        columns: the value columns, in the order of the spill file's rows.
        lengths: ``(series,)`` int64, rows of each series.
        offsets: ``(series + 1,)`` int64, first row of each series in the spill file.
        segments: per series, its contiguous row ranges ``(start, stop)`` (local rows): no window spans two.
        steps: per series, its modal time step (int64: nanoseconds for timestamps).
        time_unit: ``"ns"`` for timestamp columns, else ``""`` (numbers).
        first_times: ``(series,)`` int64, each series' first time.
        files: the Parquet files read.
    """

    ids: list[str]
    columns: list[str]
    lengths: np.ndarray
    offsets: np.ndarray
    segments: list[list[tuple[int, int]]]
    steps: np.ndarray
    time_unit: str
    first_times: np.ndarray
    files: list[str]
    _fd: int = field(default=-1, repr=False)

    def __len__(self) -> int:
        return len(self.ids)

    @property
    def n_rows(self) -> int:
        return int(self.offsets[-1])

    def rows(self, series: int, start: int, stop: int) -> np.ndarray:
        """Rows ``start`` to ``stop`` (local, half-open) of ``series``: ``(stop - start, columns)`` float64."""
        width = len(self.columns) * 8
        begin = int(self.offsets[series]) + start
        data = os.pread(self._fd, (stop - start) * width, begin * width)
        return np.frombuffer(data, dtype=np.float64).reshape(stop - start, len(self.columns))

    def spans(self, starts: np.ndarray, length: int) -> np.ndarray:
        """``length`` rows from each global row in ``starts``: ``(len(starts), length, columns)`` float64."""
        width = len(self.columns) * 8
        out = np.empty((len(starts), length, len(self.columns)), dtype=np.float64)
        for i, s in enumerate(starts.tolist()):
            out[i] = np.frombuffer(os.pread(self._fd, length * width, s * width), dtype=np.float64).reshape(
                length, len(self.columns)
            )
        return out

    def close(self) -> None:
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1

    def __del__(self) -> None:
        self.close()


def _time_values(array) -> tuple[np.ndarray, str]:
    """An Arrow time column as int64 (nanoseconds for timestamps and dates) and its unit."""
    import pyarrow as pa

    t = array.type
    if pa.types.is_timestamp(t) or pa.types.is_date(t):
        if pa.types.is_date(t):
            array = array.cast(pa.timestamp("ns"))
        elif t.tz is not None:
            array = array.cast(pa.timestamp(t.unit))
        ns = array.cast(pa.timestamp("ns")).cast(pa.int64())
        return ns.to_numpy(zero_copy_only=False), "ns"
    if pa.types.is_integer(t):
        return array.cast(pa.int64()).to_numpy(zero_copy_only=False), ""
    if pa.types.is_floating(t):
        values = array.to_numpy(zero_copy_only=False)
        if not np.all(values == np.round(values)):
            raise RnnkitError(f"the time column holds fractional numbers ({t}); give whole numbers or timestamps")
        return values.astype(np.int64), ""
    raise RnnkitError(f"the time column must hold timestamps, dates or whole numbers, got {t}")


def _batches(files: list[Path], columns: list[str], id_column: str, batch_rows: int):
    """``(file, ids (object array), record batch)`` of every file, ``batch_rows`` rows at a time."""
    pq = _pyarrow()
    for f in files:
        pf = _open(pq, f)
        names = pf.schema_arrow.names
        has_id = id_column in names
        missing = [c for c in columns if c not in names and c != id_column]
        if missing:
            raise RnnkitError(f"{f}: no column {missing[0]!r}; its columns are {names}")
        wanted = [c for c in dict.fromkeys(([id_column] if has_id else []) + columns)]
        # One row group at a time: pyarrow's iter_batches reads ahead without bound when the reader is
        # slower than the disk (measured: +400 MiB over 19.5 million rows), so memory would follow the data.
        for group in range(pf.num_row_groups):
            for batch in pf.read_row_group(group, columns=wanted, use_threads=False).to_batches(
                max_chunksize=batch_rows
            ):
                yield f, _ids(f, batch, id_column, has_id), batch


def _open(pq, f: Path):
    """``pq.ParquetFile(f)``; an empty, cut or non-Parquet file is bad input that names the file."""
    import pyarrow as pa

    if f.stat().st_size == 0:
        raise RnnkitError(f"{f}: the file is empty (0 bytes), not a Parquet file")
    try:
        return pq.ParquetFile(f)
    except (pa.ArrowInvalid, pa.ArrowIOError, OSError) as e:
        if isinstance(e, (FileNotFoundError, PermissionError, IsADirectoryError)):
            raise
        reason = (str(e).strip().splitlines() or [type(e).__name__])[0]
        raise RnnkitError(f"{f}: not a readable Parquet file ({reason}); the file is corrupt or cut short") from None


def _ids(f: Path, batch, id_column: str, has_id: bool) -> np.ndarray:
    """The series id of each row of a record batch (the file's name when it has no id column), as objects."""
    if not has_id:
        return np.full(batch.num_rows, f.stem, dtype=object)
    ids = batch.column(id_column)
    if ids.null_count:
        raise RnnkitError(f"{f}: the id column {id_column!r} holds empty values")
    return np.asarray(ids.cast("string").to_numpy(zero_copy_only=False), dtype=object)


def read_parquet_series(
    path,
    *,
    id_column: str,
    time_column: str,
    columns: list[str],
    batch_rows: int = BATCH_ROWS,
    spill_dir: str | os.PathLike[str] | None = None,
) -> SeriesStore:
    """Read many series from Parquet into a :class:`SeriesStore` (see the module docstring).

    Args:
        path: a ``.parquet`` file, a folder of them, or a list of files.
        id_column: the series-id column (a file without it is one series, named by the file).
        time_column: timestamps, dates or whole numbers, increasing within each series.
        columns: the value columns (numbers; no NaN).
        batch_rows: rows per record batch read (default 65,536).
        spill_dir: where the spill file lies while it is open (default: the system's temporary folder).
    """
    files = parquet_files(path)
    if not columns:
        raise RnnkitError("give at least one value column")
    # pass 1: ids and times -> rows per series, its step counts, time order
    order: dict[str, int] = {}
    lengths: list[int] = []
    last: list[int] = []
    first: list[int] = []
    step_counts: list[Counter] = []
    unit = None
    for f, ids, batch in _batches(files, [time_column], id_column, batch_rows):
        times, u = _time_values(batch.column(time_column))
        if batch.column(time_column).null_count:
            raise RnnkitError(f"{f}: the time column {time_column!r} holds empty values")
        if unit is None:
            unit = u
        elif u != unit:
            raise RnnkitError(
                f"{f}: the time column holds {'timestamps' if u else 'numbers'}, the first file's "
                f"{'timestamps' if unit else 'numbers'}"
            )
        for sid, rows in _groups(ids):
            k = order.setdefault(sid, len(order))
            t = times[rows]
            if k == len(lengths):
                lengths.append(0)
                last.append(int(t[0]) - 1)
                first.append(int(t[0]))
                step_counts.append(Counter())
            before = np.concatenate(([last[k]], t)) if lengths[k] else t
            steps = np.diff(before)
            if steps.size and steps.min() <= 0:
                i = int(np.argmax(steps <= 0))
                if sid == f.stem and id_column not in _pyarrow().ParquetFile(f).schema_arrow.names:
                    # most likely the id column under another name, not one file per series
                    raise RnnkitError(
                        f"{f}: no id column {id_column!r} (data.id_column); its columns are "
                        f"{_pyarrow().ParquetFile(f).schema_arrow.names}. Read as one series "
                        f"(a file without the id column is one), its times repeat ({int(before[i + 1])} "
                        f"follows {int(before[i])}): name the id column in id_column"
                    )
                raise RnnkitError(
                    f"{f}: series {sid!r}: times must increase within a series, but {int(before[i + 1])} "
                    f"follows {int(before[i])}; sort the table by id and time"
                )
            values, counts = np.unique(steps, return_counts=True)
            step_counts[k].update(dict(zip(values.tolist(), counts.tolist())))
            lengths[k] += len(t)
            last[k] = int(t[-1])
    if not order:
        raise RnnkitError(f"{files[0]}: no rows")
    n_series = len(order)
    lens = np.asarray(lengths, dtype=np.int64)
    offsets = np.concatenate(([0], np.cumsum(lens))).astype(np.int64)
    modal = np.array([c.most_common(1)[0][0] if c else 1 for c in step_counts], dtype=np.int64)

    # pass 2: values -> the spill file; breaks where the step into a row is not the series' own
    spill = tempfile.TemporaryFile(dir=spill_dir)
    fd = os.dup(spill.fileno())
    spill.close()  # the dup keeps the unlinked file open
    written = np.zeros(n_series, dtype=np.int64)
    prev = np.zeros(n_series, dtype=np.int64)
    breaks: list[list[int]] = [[0] for _ in range(n_series)]
    width = len(columns) * 8
    for f, ids, batch in _batches(files, [time_column, *columns], id_column, batch_rows):
        times, _ = _time_values(batch.column(time_column))
        values = np.empty((batch.num_rows, len(columns)), dtype=np.float64)
        for j, c in enumerate(columns):
            col = batch.column(c)
            if col.null_count:
                raise RnnkitError(f"{f}: column {c!r} holds empty values; fill them first")
            try:
                values[:, j] = col.to_numpy(zero_copy_only=False).astype(np.float64)
            except (TypeError, ValueError):
                raise RnnkitError(f"{f}: column {c!r} must hold numbers, got {col.type}") from None
        bad = ~np.isfinite(values)
        if bad.any():
            c = columns[int(np.argmax(bad.any(axis=0)))]
            raise RnnkitError(f"{f}: column {c!r} holds NaN or inf; clean it first")
        for sid, rows in _groups(ids):
            k = order[sid]
            t = times[rows]
            steps = np.diff(np.concatenate(([prev[k]], t))) if written[k] else np.concatenate(([modal[k]], np.diff(t)))
            at = np.flatnonzero(steps != modal[k]) + written[k]
            breaks[k] += [int(a) for a in at if a > 0]
            os.pwrite(fd, np.ascontiguousarray(values[rows]).tobytes(), int(offsets[k] + written[k]) * width)
            written[k] += len(t)
            prev[k] = int(t[-1])
    segs = [list(zip(b, b[1:] + [int(n)])) for b, n in zip(breaks, lens.tolist())]
    return SeriesStore(
        ids=list(order),
        columns=list(columns),
        lengths=lens,
        offsets=offsets,
        segments=segs,
        steps=modal,
        time_unit=unit or "",
        first_times=np.asarray(first, dtype=np.int64),
        files=[str(f) for f in files],
        _fd=fd,
    )


def _groups(ids: np.ndarray):
    """``(id, row positions)`` of each id in a batch, in the order of first appearance, rows in order."""
    if len(ids) and (ids[0] == ids).all():  # the common case: a batch inside one series
        yield ids[0], np.arange(len(ids))
        return
    uniques, first_at, inverse = np.unique(ids, return_index=True, return_inverse=True)
    for u in np.argsort(first_at, kind="stable"):
        yield uniques[u], np.flatnonzero(inverse == u)
