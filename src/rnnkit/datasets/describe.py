"""What a data file holds: rows, period, sampling step, columns with units, gaps, error codes."""

from __future__ import annotations

import gzip
import re
import zipfile
import zlib
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from rnnkit.datasets._files import decode_text
from rnnkit.datasets.jena import ERROR_CODE, TIME_COLUMN, jena_climate
from rnnkit.datasets.sunspots import sunspots
from rnnkit.errors import RnnkitError

MAX_LISTED = 10  # segments and gaps listed in the text; the report holds them all


def _first_line(path: Path) -> str:
    if path.is_dir():
        raise RnnkitError(f"{path} is a folder: name the data file(s) in it")
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such file")
    try:
        if path.suffix == ".gz":
            with gzip.open(path, "rb") as f:
                line = f.readline(4096)
        elif path.suffix == ".zip":
            with zipfile.ZipFile(path) as z, z.open(z.namelist()[0]) as f:
                line = f.readline(4096)
        else:
            with open(path, "rb") as f:
                line = f.readline(4096)
    except (OSError, EOFError, zlib.error, zipfile.BadZipFile, IndexError) as e:
        if isinstance(e, PermissionError | IsADirectoryError):
            raise
        raise RnnkitError(f"{path}: corrupt or truncated compressed file, or not one ({e})") from None
    if not line.strip():
        raise RnnkitError(f"{path}: the file is empty (or its first line is)")
    return decode_text(line)


def kind_of(path: str | Path) -> str:
    """``"jena"`` (a ``Date Time`` CSV) or ``"sunspots"`` (SILSO's ``;`` format), from the first line."""
    line = _first_line(Path(path))
    if TIME_COLUMN in line:
        return "jena"
    if line.count(";") == 6:
        return "sunspots"
    raise RnnkitError(f"{path}: neither a Jena climate CSV (no {TIME_COLUMN!r} header) nor SILSO's sunspot file")


def load(paths, *, clean: bool = True) -> pd.DataFrame:
    """Load one kind of data file(s), detected from the content, with every column kept.

    Jena files go through :func:`jena_climate` (``columns="all"``), a SILSO file through :func:`sunspots`.
    """
    paths = [Path(p) for p in ([paths] if isinstance(paths, str | Path) else paths)]
    if not paths:
        raise RnnkitError("paths must name at least one file, got none")
    kinds = {kind_of(p) for p in paths}
    if len(kinds) > 1:
        raise RnnkitError(f"the files mix Jena climate and sunspot data: {[str(p) for p in paths]}")
    if kinds == {"sunspots"}:
        if len(paths) > 1:
            raise RnnkitError(f"give one sunspot file at a time, got {len(paths)}")
        return sunspots(paths[0])
    return jena_climate(paths, columns="all", clean=clean)


@dataclass
class DataReport:
    """A description of loaded data; ``str(report)`` is the text that ``rnnkit data`` prints."""

    files: list[str]
    rows: int
    first: str
    last: str
    step: str
    columns: list[tuple[str, str]]
    segments: list[tuple[str, str, int]]
    gaps: list[tuple[str, str]]
    error_codes: dict[str, int] = field(default_factory=dict)
    missing: dict[str, int] = field(default_factory=dict)
    duplicates_removed: int = 0

    def __str__(self) -> str:
        lines = [
            f"files: {', '.join(self.files)}",
            f"rows: {self.rows:,}",
            f"period: {self.first} to {self.last}",
            f"sampling step: {self.step}",
            f"columns ({len(self.columns)}):",
        ]
        lines += [f"  {name}" + (f" [{unit}]" if unit else "") for name, unit in self.columns]
        lines.append(f"segments: {len(self.segments)}")
        lines += [f"  {a} to {b} ({n:,} rows)" for a, b, n in self.segments[:MAX_LISTED]]
        if len(self.segments) > MAX_LISTED:
            lines.append(f"  ... and {len(self.segments) - MAX_LISTED} more")
        lines.append(f"gaps: {len(self.gaps)}")
        lines += [f"  after {a}, next row {b}" for a, b in self.gaps[:MAX_LISTED]]
        if len(self.gaps) > MAX_LISTED:
            lines.append(f"  ... and {len(self.gaps) - MAX_LISTED} more")
        lines.append("error codes (-9999): " + _counts(self.error_codes))
        lines.append("missing values: " + _counts(self.missing))
        lines.append(f"duplicate timestamps removed: {self.duplicates_removed}")
        return "\n".join(lines)


def _counts(d: dict[str, int]) -> str:
    return ", ".join(f"{k} {v}" for k, v in d.items()) if d else "none"


def _split_unit(column: str) -> tuple[str, str]:
    m = re.fullmatch(r"(.*?)\s*\((.*)\)", column)
    return (m.group(1), m.group(2)) if m else (column, "")


def _step(index: pd.DatetimeIndex) -> str:
    if len(index) < 2:
        return "n/a (one row)"
    steps = np.diff(index.as_unit("ns").asi8)
    values, counts = np.unique(steps, return_counts=True)
    modal = pd.Timedelta(int(values[np.argmax(counts)]))
    if pd.Timedelta(days=28) <= modal <= pd.Timedelta(days=31):
        return "1 month"
    minutes = modal.total_seconds() / 60
    return f"{minutes:g} min" if minutes < 120 else str(modal)


def describe(paths) -> DataReport:
    """Describe data file(s): rows, period, sampling step, columns and units, gaps, error codes.

    Args:
        paths: one file or a list of files of one kind (Jena climate CSVs, or SILSO's file).

    Returns:
        :class:`DataReport`; the counts of -9999 codes and missing values are those of the raw
        files (before cleaning).

    Example:
        >>> print(describe(["mpi_roof_2024.csv.gz", "mpi_roof_2025.csv.gz"]))  # doctest: +SKIP
    """
    df = load(paths, clean=False)
    report = df.attrs.get("report", {})
    error_codes = report.get("error_codes", {c: int(n) for c, n in (df == ERROR_CODE).sum().items() if n})
    return DataReport(
        files=list(report.get("files", [])),
        rows=len(df),
        first=str(df.index[0]),
        last=str(df.index[-1]),
        step=_step(df.index),
        columns=[_split_unit(c) for c in df.columns],
        segments=list(df.attrs.get("segments", [])),
        gaps=list(df.attrs.get("gaps", [])),
        error_codes=error_codes,
        missing=report.get("missing", {c: int(n) for c, n in df.isna().sum().items() if n}),
        duplicates_removed=int(report.get("duplicates_removed", 0)),
    )
