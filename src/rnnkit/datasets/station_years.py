"""Real many-series data from the Jena station's files: one series per file and calendar year, as a long table.

The MPI-BGC roof station's record (2009-2016, every 6th ten-minute row: hourly, mostly at 10
minutes past the hour; where the original lost rows the clock shifts, and that is a gap) and its
half-year exports (2024, 2025; 10-minute rows, of which those at 10 minutes past the hour are
kept, so that every series is hourly on the same clock) become one long table: ``id`` (the year,
and the export's name when a year has several files), ``time``, and the measured columns that
every file has. Each series is a real year of one station: the same physics, other weather. The
files are read by :func:`rnnkit.datasets.jena_climate` (its cleaning policy: -9999 wind codes,
duplicated timestamps); nothing is generated.

Example::

    table = station_years_table()          # RNNKIT_DATA_DIR's record and exports
    write_parquet(table, "station_years.parquet")
"""

from __future__ import annotations

import os
from pathlib import Path

import pandas as pd

from rnnkit.datasets.jena import BENCHMARK_COLUMNS, jena_climate
from rnnkit.errors import RnnkitError

# the columns of the record that the exports share: the benchmark's 14 (the record has no rain or radiation)
COLUMNS = list(BENCHMARK_COLUMNS)


def station_files(folder: str | os.PathLike[str] | None = None) -> list[Path]:
    """The hourly 2009-2016 record and the ``mpi_roof_*`` exports in ``folder`` (default ``RNNKIT_DATA_DIR``)."""
    where = folder or os.environ.get("RNNKIT_DATA_DIR")
    if not where:
        raise RnnkitError("no folder of Jena files: give one or set RNNKIT_DATA_DIR")
    found = sorted(Path(where).glob("jena_climate_2009_2016*.csv*")) + sorted(Path(where).glob("mpi_roof_*.csv*"))
    if not found:
        raise RnnkitError(f"{where}: no jena_climate_2009_2016*.csv or mpi_roof_*.csv file")
    return found


def station_years_table(
    files: list[str | os.PathLike[str]] | None = None, columns: list[str] | None = None
) -> pd.DataFrame:
    """The long table: ``id``, ``time`` and ``columns`` (default :data:`COLUMNS`), one series per file and year.

    Rows of each series are hourly, in time order; the record's years are whole (2009 ... 2016),
    the exports' are their months.
    """
    columns = list(columns or COLUMNS)
    frames = []
    for path in files or station_files():
        frame = jena_climate(str(path), columns=columns)
        name = Path(path).name
        if name.startswith("mpi_roof"):  # 10-minute exports: hourly, on the record's clock (HH:10)
            frame = frame[frame.index.minute == 10]
        for year, rows in frame.groupby(frame.index.year):
            label = str(year) if name.startswith("jena_climate") else f"{year} export"
            frames.append(
                pd.DataFrame(
                    {"id": label, "time": rows.index.as_unit("ns"), **{c: rows[c].to_numpy() for c in columns}}
                )
            )
    return pd.concat(frames, ignore_index=True)


def write_parquet(table: pd.DataFrame, path: str | os.PathLike[str], row_group_size: int = 65_536) -> Path:
    """Write a long table as one Parquet file (row groups of ``row_group_size`` rows)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    path = Path(path)
    pq.write_table(pa.Table.from_pandas(table, preserve_index=False), path, row_group_size=row_group_size)
    return path
