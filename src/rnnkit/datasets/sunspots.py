"""SILSO's monthly mean total sunspot number (the course's "sunspots" series)."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pandas as pd

from rnnkit.data._series import segments
from rnnkit.datasets import _files
from rnnkit.errors import RnnkitError

SILSO_URL = "https://www.sidc.be/SILSO/DATA/SN_m_tot_V2.0.csv"
SILSO_FILE = "SN_m_tot_V2.0.csv"
# year; month; decimal date; monthly mean; std (-1: n/a); observations (-1: n/a); definitive (1) / provisional (0)
FIELDS = ["year", "month", "decimal_date", "sunspots", "std", "observations", "definitive"]


def read_silso_file(path: str | Path) -> pd.DataFrame:
    """Read a SILSO monthly file (``;``-separated, no header, space-padded) with all 7 fields.

    A last row cut short is dropped with a warning naming the file and line (:func:`_files.without_cut_last_row`).
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such file")
    text = _files.without_cut_last_row(_files.read_text(path), path, sep=";", header=False)
    try:
        raw = pd.read_csv(io.StringIO(text), sep=";", header=None, skipinitialspace=True)
    except (pd.errors.ParserError, pd.errors.EmptyDataError) as e:
        raise RnnkitError(f"{path}: cannot read it as SILSO's monthly sunspot file ({e})") from None
    if raw.shape[1] != len(FIELDS) or not all(pd.api.types.is_numeric_dtype(t) for t in raw.dtypes):
        raise RnnkitError(
            f"{path}: expected SILSO's monthly format ({len(FIELDS)} numeric ';'-separated fields: "
            f"{', '.join(FIELDS)}), got {raw.shape[1]} fields"
        )
    raw.columns = FIELDS
    try:
        index = pd.to_datetime(pd.DataFrame({"year": raw["year"], "month": raw["month"], "day": 1}))
    except ValueError as e:
        raise RnnkitError(f"{path}: bad year/month ({e})") from None
    raw.index = pd.DatetimeIndex(index, name="Date")
    return raw.drop(columns=["year", "month"])


def _verify(path: Path) -> None:
    df = read_silso_file(path)
    if df.index[0] != pd.Timestamp("1749-01-01"):
        raise RnnkitError(f"downloaded {SILSO_FILE} starts at {df.index[0]:%Y-%m}, expected 1749-01")


def sunspots(path: str | Path | None = None) -> pd.DataFrame:
    """Monthly mean total sunspot number from SILSO, as a one-column DataFrame.

    Where the file comes from: ``path``; else ``SN_m_tot_V2.0.csv`` in ``RNNKIT_DATA_DIR``,
    then ``~/.cache/rnnkit``; else a download from SILSO (the live file grows each month,
    so it is checked by structure, not by a fixed checksum). The course's copy runs from
    1749-01 to 2019-03 (3,243 rows). Data: SILSO, Royal Observatory of Belgium, Brussels
    (CC BY-NC 4.0).

    Args:
        path: the file, or None to search as above.

    Returns:
        DataFrame indexed by the first day of each month (``"Date"``), column ``"sunspots"``;
        ``attrs["segments"]`` as for :func:`jena_climate`.

    Example:
        >>> s = sunspots()                      # doctest: +SKIP
        >>> float(s["sunspots"].iloc[0])        # January 1749  # doctest: +SKIP
        96.7
    """
    if path is None:
        path = _files.resolve([SILSO_FILE], SILSO_URL, _verify, download_as=SILSO_FILE)[0]
    df = read_silso_file(path)[["sunspots"]]
    steps = np.diff(df.index.year * 12 + df.index.month)
    if (steps <= 0).any():
        row = int(np.flatnonzero(steps <= 0)[0]) + 1
        raise RnnkitError(f"{path}: months out of order or duplicated at row {row} ({df.index[row]:%Y-%m})")
    segs = segments(df)
    df.attrs["segments"] = [(f"{df.index[a]:%Y-%m}", f"{df.index[b - 1]:%Y-%m}", b - a) for a, b in segs]
    df.attrs["gaps"] = [(f"{df.index[b - 1]:%Y-%m}", f"{df.index[b]:%Y-%m}") for _, b in segs[:-1]]
    df.attrs["report"] = {"files": [str(path)], "rows_read": len(df)}
    return df
