"""The Jena climate data (MPI-BGC roof weather station): benchmark file and station exports."""

from __future__ import annotations

import io
import zipfile
from pathlib import Path

import numpy as np
import pandas as pd

from rnnkit.data._series import segments
from rnnkit.datasets import _files
from rnnkit.errors import RnnkitError

JENA_URL = "https://storage.googleapis.com/tensorflow/tf-keras-datasets/jena_climate_2009_2016.csv.zip"
JENA_FILE = "jena_climate_2009_2016.csv"
JENA_ROWS = 420_551
STATION_PATTERN = "mpi_roof*.csv*"
TIME_COLUMN = "Date Time"
TIME_FORMAT = "%d.%m.%Y %H:%M:%S"
# The 14 weather columns of the benchmark file, in its order.
BENCHMARK_COLUMNS = [
    "p (mbar)",
    "T (degC)",
    "Tpot (K)",
    "Tdew (degC)",
    "rh (%)",
    "VPmax (mbar)",
    "VPact (mbar)",
    "VPdef (mbar)",
    "sh (g/kg)",
    "H2OC (mmol/mol)",
    "rho (g/m**3)",
    "wv (m/s)",
    "max. wv (m/s)",
    "wd (deg)",
]
WIND_SPEEDS = ["wv (m/s)", "max. wv (m/s)"]
WIND_DIRECTION = "wd (deg)"
ERROR_CODE = -9999.0
DERIVED = ("wind", "time")
# The record that ships inside the package: the benchmark at every 6th row (hourly), 2009-2016.
EMBEDDED_JENA = Path(__file__).resolve().parent / "data" / "jena_climate_2009_2016_hourly.csv.gz"
EMBEDDED_ROWS = 70_092
NATIVE_STEP = pd.Timedelta(minutes=10)  # the station's own sampling: `step` counts these rows
SOURCES = ("auto", "record")
HOWS = ("every", "mean", "position")
DAY_S = 24 * 60 * 60
YEAR_S = 365.2425 * DAY_S


def read_jena_file(path: str | Path) -> pd.DataFrame:
    """Read one Jena file as it is (benchmark ``.csv``/``.zip`` or station export ``.csv``/``.gz``).

    Returns every column, numeric, indexed by the parsed ``Date Time``, rows in file order.
    """
    path = Path(path)
    text = _files.read_text(path)  # one decoding rule (BOM, UTF-8, latin-1); corrupt compression named
    text = _files.without_cut_last_row(text, path)  # a last row cut short: dropped, with a warning
    try:
        df = pd.read_csv(io.StringIO(text), skipinitialspace=True)
    except (pd.errors.ParserError, pd.errors.EmptyDataError, ValueError) as e:
        raise RnnkitError(f"{path}: cannot read it as a Jena climate CSV ({_first_line_of(e)})") from None
    df.columns = [str(c).strip() for c in df.columns]
    if TIME_COLUMN not in df.columns:
        raise RnnkitError(f"{path}: no {TIME_COLUMN!r} column; found {list(df.columns)[:6]}")
    if df.empty:
        raise RnnkitError(f"{path}: no data rows (the file holds a header only)")
    stamps = df.pop(TIME_COLUMN).astype(str).str.strip()
    index = pd.to_datetime(stamps, format=TIME_FORMAT, errors="coerce")
    if index.isna().any():
        row = int(np.flatnonzero(index.isna().to_numpy())[0])
        raise RnnkitError(
            f"{path}: {TIME_COLUMN!r} must be dd.mm.yyyy HH:MM:SS; data row {row + 1} holds {stamps.iloc[row]!r}"
        )
    for col in df.columns:
        if not pd.api.types.is_numeric_dtype(df[col]):
            bad = pd.to_numeric(df[col], errors="coerce").isna() & df[col].notna()
            row = int(np.flatnonzero(bad.to_numpy())[0]) if bad.any() else 0
            raise RnnkitError(f"{path}: column {col!r} is not numeric (row {row}: {df[col].iloc[row]!r})")
    df.index = pd.DatetimeIndex(index, name=TIME_COLUMN)
    return df.astype(np.float64)


def _first_line_of(e: BaseException) -> str:
    return (str(e).strip().splitlines() or [type(e).__name__])[0]


def sampling_step(index: pd.DatetimeIndex) -> pd.Timedelta | None:
    """The modal step between consecutive timestamps (None with fewer than 3 rows)."""
    if len(index) < 3:
        return None
    steps = np.diff(index.sort_values().as_unit("ns").asi8)
    steps = steps[steps > 0]
    if not len(steps):
        return None
    values, counts = np.unique(steps, return_counts=True)
    return pd.Timedelta(int(values[np.argmax(counts)]), unit="ns")


# A run of this many consecutive steps of one other size, and at least MIXED_SHARE of the file's rows,
# is a block sampled at another rate. (The 2009-2016 hourly record holds one run of 61 half-hour
# steps in 70,067: a quirk of the record, kept, and shown as its own segments.)
MIXED_RUN = 3
MIXED_SHARE = 0.1


def _check_steps_within(index: pd.DatetimeIndex, path: Path) -> None:
    # Gaps are irregular; a run of equal steps that differ from the file's own is a block sampled
    # at another rate (an hourly export pasted after a 10-minute one), which would interleave silently.
    modal = sampling_step(index)
    if modal is None:
        return
    steps = np.diff(index.sort_values().unique().as_unit("ns").asi8)
    other = steps != modal.value
    run = 0
    for i, (is_other, step) in enumerate(zip(other, steps, strict=True)):
        run = run + 1 if is_other and i > 0 and steps[i - 1] == step else (1 if is_other else 0)
        if run >= max(MIXED_RUN, MIXED_SHARE * len(steps)):
            raise RnnkitError(
                f"{path}: rows at two sampling steps: {modal} for most, {pd.Timedelta(int(step), unit='ns')} "
                f"from {index.sort_values().unique()[i + 1 - run]} on; resample the file to one step first"
            )


def check_one_step(frames: list[pd.DataFrame], paths: list[Path]) -> None:
    """Refuse files whose sampling steps differ (an hourly and a 10-minute export joined would
    interleave silently); name each file's step."""
    for frame, path in zip(frames, paths, strict=True):
        _check_steps_within(frame.index, path)
    steps = [sampling_step(f.index) for f in frames]
    known = {s for s in steps if s is not None}
    if len(known) > 1:
        listed = ", ".join(f"{p.name}: {s}" for p, s in zip(paths, steps, strict=True) if s is not None)
        raise RnnkitError(
            f"the data files have different sampling steps ({listed}); load files of one step "
            f"together (resample the finer ones first, e.g. jena_climate(path, step=6) for "
            f"10-minute rows to hourly)"
        )


def jena_climate(
    path_or_paths=None,
    *,
    columns="benchmark",
    clean: bool = True,
    derived=False,
    step: int = 1,
    how: str = "every",
    source: str = "auto",
    download: bool = False,
) -> pd.DataFrame:
    """Load the Jena climate weather data as a DataFrame indexed by ``Date Time``.

    Files: the benchmark ``jena_climate_2009_2016.csv`` (or ``.zip``), or the station's
    half-year exports ``mpi_roof*.csv`` (``.gz`` too; latin-1 header, quoted names,
    space-padded numbers, 22 columns). Several files are joined, sorted by time and
    de-duplicated (first occurrence kept); gaps split the series into segments.
    With no path: in ``RNNKIT_DATA_DIR``, then ``~/.cache/rnnkit``, the 10-minute benchmark file
    if present, else every ``mpi_roof*.csv*`` there (``source="auto"`` only); else, with
    ``download=True``, the benchmark zip from the Keras address (checked: one CSV, 15 columns,
    420,551 rows); else the record embedded in the package (:data:`EMBEDDED_JENA`: the benchmark
    at every 6th row, hourly: 70,092 rows in the file, 70,068 after its 24 duplicated
    timestamps are dropped), offline. ``df.attrs["files"]`` and
    ``df.attrs["resolution"]`` say which file(s) and which resolution were used.

    Cleaning policy (``clean=True``): the station's error code -9999 in the wind speeds
    (``wv``, ``max. wv``) becomes 0.0, as in the TensorFlow tutorial (calm, the commonest
    reading); -9999 in any other column, and empty fields, become NaN and are then
    interpolated linearly in time. Counts per column go to ``df.attrs["report"]``. No -9999
    survives. ``clean=False`` keeps the raw values (for inspection only).

    Args:
        path_or_paths: a file, a folder, a list of files, or None (see above).
        columns: ``"benchmark"`` (the 14 benchmark columns the files have, default),
            ``"all"`` (every column), or a list of names.
        clean: apply the -9999/NaN policy. Default True.
        derived: False, True (all), or a list of ``"wind"`` (wv, max. wv, wd replaced by
            ``Wx``, ``Wy``, ``max Wx``, ``max Wy``) and ``"time"`` (``Day sin``, ``Day cos``,
            ``Year sin``, ``Year cos``).
        step: keep one row per ``step`` ten-minute rows within each segment (>= 1). Default 1.
            Counted in the station's 10-minute rows whatever the file: on the hourly embedded record
            ``step=6`` keeps every row and ``step=1008`` every 168th (weekly); a step that is not a
            whole number of the file's rows is refused; ``step=1`` keeps every row of any file.
        how: ``"every"`` (every step-th row, restarting at each gap), ``"position"`` (the rows
            as the file holds them, duplicated timestamps and gaps included, and every step-th by
            position: exactly the course's ``seq(1, n, step)`` and Chollet's ``[::step]``; the
            index is then not sorted and ``attrs["segments"]`` is the whole series) or ``"mean"`` (the mean of each block
            of ``step`` rows, stamped with the block's last time; a direction column is averaged
            as a vector).
        source: ``"auto"`` (default: any Jena file found, see above) or ``"record"`` (the 2009-2016
            benchmark record only: the 10-minute file where present, else the embedded hourly
            one; never the station exports). Used only when no path is given.
        download: with no path and no file found, download the 10-minute benchmark instead of
            reading the embedded record. Default False.

    Returns:
        DataFrame with a DatetimeIndex named ``"Date Time"``; ``attrs["segments"]`` lists
        ``(first, last, rows)`` of each contiguous segment, ``attrs["gaps"]`` the gaps and
        ``attrs["report"]`` what loading found and changed, ``attrs["files"]`` the files read,
        ``attrs["resolution"]`` the time step of the rows returned (e.g. ``"1 h"``) and
        ``attrs["file_resolution"]`` that of the files.

    Example:
        >>> df = jena_climate(derived=["wind", "time"], step=6)   # doctest: +SKIP
        >>> df.attrs["segments"]   # (first, last, rows) per segment: depends on the file found  # doctest: +SKIP
    """
    if isinstance(step, bool) or not isinstance(step, int | np.integer) or step < 1:
        raise RnnkitError(f"step must be a positive integer, got {step!r}")
    if how not in HOWS:
        raise RnnkitError(f"how must be one of {list(HOWS)}, got {how!r}")
    if source not in SOURCES:
        raise RnnkitError(f"source must be one of {list(SOURCES)}, got {source!r}")
    if not isinstance(download, bool):
        raise RnnkitError(f"download must be True or False, got {download!r}")
    wanted = _derived_set(derived)
    paths = _jena_paths(path_or_paths, source=source, download=download)

    frames = [read_jena_file(p) for p in paths]
    check_one_step(frames, paths)
    common = [c for c in frames[0].columns if all(c in f.columns for f in frames[1:])]
    report: dict = {
        "files": [str(p) for p in paths],
        "rows_read": int(sum(len(f) for f in frames)),
        "columns_not_in_every_file": sorted({c for f in frames for c in f.columns} - set(common)),
    }
    df = pd.concat([f[common] for f in frames]) if len(frames) > 1 else frames[0]
    df = df[_select_columns(df, columns, paths)]
    if how == "position":  # the file's rows as they are, as the course's and Chollet's code read them
        times = df.index.as_unit("ns").asi8
        report["rows_out_of_order"] = int((np.diff(times) < 0).sum())
        report["duplicates_kept"] = int(df.index.duplicated().sum())
    else:
        df = _sort_dedup(df, report)
    report["error_codes"] = {c: int(n) for c, n in (df == ERROR_CODE).sum().items() if n}
    report["missing"] = {c: int(n) for c, n in df.isna().sum().items() if n}
    if clean:
        df = _clean(df, report)
    if "wind" in wanted:
        df = _wind_vectors(df)
    file_step = _file_step(df)
    rows = _rows_per_step(step, file_step, paths)
    report["file_resolution"] = _duration(file_step)
    report["step_in_file_rows"] = rows
    if rows > 1:
        df = df.iloc[::rows] if how == "position" else _resample(df, rows, how)
    if "time" in wanted:
        df = _time_signals(df)
    df.index.name = TIME_COLUMN
    _annotate(df, report, by_position=how == "position")
    df.attrs["files"] = report["files"]
    df.attrs["file_resolution"] = report["file_resolution"]
    df.attrs["resolution"] = _duration(file_step * rows) if file_step is not None else "unknown"
    df.attrs["embedded"] = [str(p) for p in paths] == [str(EMBEDDED_JENA)]
    return df


def _file_step(df: pd.DataFrame) -> pd.Timedelta | None:
    """The commonest time step between rows (None for fewer than two rows)."""
    if len(df) < 2:
        return None
    steps = pd.Series(np.diff(df.index.as_unit("ns").asi8))
    return pd.Timedelta(int(steps.mode().iloc[0]), unit="ns")


def _rows_per_step(step: int, file_step: pd.Timedelta | None, paths: list[Path]) -> int:
    """``step`` ten-minute rows as a number of the file's rows (files coarser than 10 minutes)."""
    if step == 1 or file_step is None or file_step <= NATIVE_STEP:
        return step
    ratio = file_step / NATIVE_STEP
    if not float(ratio).is_integer() or step % int(ratio):
        names = ", ".join(p.name for p in paths)
        raise RnnkitError(
            f"step {step} (in 10-minute rows) is not a whole number of the rows of {names}, "
            f"which come every {_duration(file_step)}: use a multiple of {ratio:g}"
        )
    return step // int(ratio)


def _duration(delta: pd.Timedelta | None) -> str:
    """``"10 min"``, ``"1 h"``, ``"7 days"``: a time step as a reader would write it."""
    if delta is None:
        return "unknown"
    if delta % pd.Timedelta(days=1) == pd.Timedelta(0):
        days = delta // pd.Timedelta(days=1)
        return f"{days} day" + ("s" if days > 1 else "")
    if delta % pd.Timedelta(hours=1) == pd.Timedelta(0):
        return f"{delta // pd.Timedelta(hours=1)} h"
    return f"{delta / pd.Timedelta(minutes=1):g} min"


def describe_source(df: pd.DataFrame) -> str:
    """One line naming the file(s) read and the resolution, e.g. for a run's console and description."""
    files = df.attrs.get("files") or []
    names = ", ".join(Path(f).name for f in files) or "unknown"
    what = " (the 2009-2016 record embedded in rnnkit, every 6th 10-minute row)" if df.attrs.get("embedded") else ""
    return (
        f"file: {names}{what}; file resolution {df.attrs.get('file_resolution', 'unknown')}, "
        f"rows used every {df.attrs.get('resolution', 'unknown')}"
    )


def _derived_set(derived) -> set[str]:
    if derived is False or derived is None:
        return set()
    if derived is True:
        return set(DERIVED)
    items = [derived] if isinstance(derived, str) else list(derived)
    unknown = [d for d in items if d not in DERIVED]
    if unknown:
        raise RnnkitError(f"derived must be True, False or a list from {list(DERIVED)}, got {derived!r}")
    return set(items)


def _jena_paths(path_or_paths, *, source: str = "auto", download: bool = False) -> list[Path]:
    if path_or_paths is None:
        return _files.resolve(
            [JENA_FILE, JENA_FILE + ".zip"],
            JENA_URL,
            _verify_benchmark_zip,
            download_as=JENA_FILE + ".zip",
            patterns=[STATION_PATTERN] if source == "auto" else [],
            fallback=None if download else EMBEDDED_JENA,
        )
    items = [path_or_paths] if isinstance(path_or_paths, str | Path) else list(path_or_paths)
    if not items:
        raise RnnkitError("path_or_paths must name at least one file, got an empty list")
    paths: list[Path] = []
    for item in map(Path, items):
        if item.is_dir():
            found = _files.find_in(item, [JENA_FILE, JENA_FILE + ".zip"], [STATION_PATTERN])
            if not found:
                raise FileNotFoundError(f"{item}: no {JENA_FILE}(.zip) or {STATION_PATTERN} file in this folder")
            paths += found
        elif item.is_file():
            paths.append(item)
        else:
            raise FileNotFoundError(f"{item}: no such file or folder")
    return paths


def _verify_benchmark_zip(path: Path) -> None:
    """A downloaded benchmark zip must hold one CSV with the 15 benchmark columns and 420,551 rows."""
    try:
        with zipfile.ZipFile(path) as z:
            names = [n for n in z.namelist() if n.endswith(".csv") and "__MACOSX" not in n]
            if len(names) != 1:
                raise RnnkitError(f"downloaded {JENA_FILE}.zip holds {names}, expected one CSV")
            with z.open(names[0]) as f:
                header = f.readline().decode("latin-1").strip().replace('"', "").split(",")
                rows = sum(1 for line in f if line.strip())
    except zipfile.BadZipFile as e:
        raise RnnkitError(f"downloaded {JENA_FILE}.zip is not a zip file ({e})") from None
    if header != [TIME_COLUMN, *BENCHMARK_COLUMNS] or rows != JENA_ROWS:
        raise RnnkitError(
            f"downloaded {JENA_FILE}.zip has {len(header)} columns and {rows} rows, expected 15 and {JENA_ROWS}"
        )


def _select_columns(df: pd.DataFrame, columns, paths: list[Path]) -> list[str]:
    if columns == "benchmark":
        return [c for c in BENCHMARK_COLUMNS if c in df.columns]
    if columns == "all":
        return list(df.columns)
    if isinstance(columns, str) or not all(isinstance(c, str) for c in columns):
        raise RnnkitError(f"columns must be 'benchmark', 'all' or a list of column names, got {columns!r}")
    missing = [c for c in columns if c not in df.columns]
    if missing:
        names = ", ".join(p.name for p in paths)
        raise RnnkitError(f"columns (data.columns) {missing} are not in {names}; it has {list(df.columns)}")
    return list(columns)


def _sort_dedup(df: pd.DataFrame, report: dict) -> pd.DataFrame:
    report["rows_out_of_order"] = int((np.diff(df.index.as_unit("ns").asi8) < 0).sum())
    if report["rows_out_of_order"]:
        df = df.sort_index(kind="stable")
    dup = df.index.duplicated(keep="first")
    report["duplicates_removed"] = int(dup.sum())
    return df[~dup] if dup.any() else df


def _clean(df: pd.DataFrame, report: dict) -> pd.DataFrame:
    df = df.copy()
    for col in df.columns:
        codes = df[col] == ERROR_CODE
        if codes.any():
            df.loc[codes, col] = 0.0 if col in WIND_SPEEDS else np.nan
    nan_counts = df.isna().sum()
    if nan_counts.any():
        df = df.interpolate(method="time", limit_direction="both")
        still = [c for c in df.columns if df[c].isna().any()]
        if still:
            raise RnnkitError(f"columns {still} hold no valid value at all; cannot interpolate them")
    report["interpolated"] = {c: int(n) for c, n in nan_counts.items() if n}
    report["wind_error_codes_set_to_0"] = {c: n for c, n in report["error_codes"].items() if c in WIND_SPEEDS}
    return df


def _wind_vectors(df: pd.DataFrame) -> pd.DataFrame:
    need = [*WIND_SPEEDS, WIND_DIRECTION]
    missing = [c for c in need if c not in df.columns]
    if missing:
        raise RnnkitError(f"derived 'wind' needs columns {missing}, which the data does not have")
    rad = np.deg2rad(df[WIND_DIRECTION])
    out = df.drop(columns=need)
    out["Wx"], out["Wy"] = df["wv (m/s)"] * np.cos(rad), df["wv (m/s)"] * np.sin(rad)
    out["max Wx"], out["max Wy"] = df["max. wv (m/s)"] * np.cos(rad), df["max. wv (m/s)"] * np.sin(rad)
    return out


def _time_signals(df: pd.DataFrame) -> pd.DataFrame:
    seconds = df.index.as_unit("ns").asi8 / 1e9
    df = df.copy()
    df["Day sin"], df["Day cos"] = np.sin(2 * np.pi * seconds / DAY_S), np.cos(2 * np.pi * seconds / DAY_S)
    df["Year sin"], df["Year cos"] = np.sin(2 * np.pi * seconds / YEAR_S), np.cos(2 * np.pi * seconds / YEAR_S)
    return df


def _resample(df: pd.DataFrame, step: int, how: str) -> pd.DataFrame:
    parts = []
    for a, b in segments(df):
        seg = df.iloc[a:b]
        if how == "every":
            parts.append(seg.iloc[::step])
            continue
        m = len(seg) // step
        if m == 0:
            continue
        block = seg.to_numpy()[: m * step].reshape(m, step, -1)
        mean = pd.DataFrame(block.mean(axis=1), columns=seg.columns, index=seg.index[step - 1 : m * step : step])
        if WIND_DIRECTION in seg.columns:
            rad = np.deg2rad(block[:, :, list(seg.columns).index(WIND_DIRECTION)])
            mean[WIND_DIRECTION] = np.rad2deg(np.arctan2(np.sin(rad).mean(1), np.cos(rad).mean(1))) % 360
        parts.append(mean)
    if not parts:
        raise RnnkitError(f"step {step} is longer than every contiguous segment of the data")
    return pd.concat(parts)


def _annotate(df: pd.DataFrame, report: dict, by_position: bool = False) -> None:
    segs = [(0, len(df))] if by_position else segments(df)  # by position: one series, whatever the clock says
    df.attrs["segments"] = [(str(df.index[a]), str(df.index[b - 1]), b - a) for a, b in segs]
    df.attrs["gaps"] = [(str(df.index[b - 1]), str(df.index[b])) for (_, b) in segs[:-1]]
    df.attrs["report"] = report
