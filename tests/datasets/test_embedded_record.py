"""The 2009-2016 Jena record that ships inside the package: its bytes, what the loader makes of it,
the order in which files are found, and Chollet's persistence numbers on it."""

from __future__ import annotations

import gzip
import hashlib
import json

import numpy as np
import pandas as pd
import pytest

from rnnkit.datasets import jena_climate
from rnnkit.datasets.jena import BENCHMARK_COLUMNS, EMBEDDED_JENA, EMBEDDED_ROWS
from rnnkit.errors import RnnkitError

GZ_SHA256 = "dc5292bda9f85dd33c5e08237da86ee42c6e777c72691a61175acbe9cdeea02b"
CSV_SHA256 = "9d4006838ada2050bda3f7bbed4d51de6a8389eca87d228cea4b9d06be16976e"


def test_the_embedded_file_is_the_published_one():
    raw = EMBEDDED_JENA.read_bytes()
    assert hashlib.sha256(raw).hexdigest() == GZ_SHA256
    text = gzip.decompress(raw)
    assert hashlib.sha256(text).hexdigest() == CSV_SHA256
    lines = text.decode("ascii").splitlines()
    assert lines[0].split(",") == ["Date Time", *BENCHMARK_COLUMNS]
    assert len(lines) - 1 == EMBEDDED_ROWS == 70_092
    assert lines[1].startswith("01.01.2009 00:10:00,996.52,-8.02,") and lines[-1].startswith("31.12.2016 23:20:00,")
    info = json.loads(EMBEDDED_JENA.with_name("jena_climate_2009_2016_hourly.json").read_text(encoding="utf-8"))
    assert (info["sha256_gz"], info["sha256_csv"], info["rows"]) == (GZ_SHA256, CSV_SHA256, EMBEDDED_ROWS)


def test_loader_on_the_embedded_file_duplicates_error_codes_gaps_segments():
    raw = pd.read_csv(EMBEDDED_JENA)
    assert (raw["wv (m/s)"] == -9999).sum() == 3 and (raw["max. wv (m/s)"] == -9999).sum() == 4
    df = jena_climate(EMBEDDED_JENA)
    report = df.attrs["report"]
    assert report["rows_read"] == 70_092 and report["duplicates_removed"] == 24 and report["rows_out_of_order"] == 2
    assert len(df) == 70_092 - 24 and df.index.is_monotonic_increasing and df.index.is_unique
    assert report["error_codes"] == {"wv (m/s)": 3, "max. wv (m/s)": 4}
    assert report["wind_error_codes_set_to_0"] == {"wv (m/s)": 3, "max. wv (m/s)": 4}
    assert (df.to_numpy() == -9999).sum() == 0 and df["wv (m/s)"].min() == 0.0
    assert (df["T (degC)"].min(), df["T (degC)"].max()) == (-23.01, 37.13)
    # The original's own holes and its day of half-hourly stamps (2014-03-20/21) split the record.
    assert len(df.attrs["segments"]) == 67 and sum(s[2] for s in df.attrs["segments"]) == len(df)
    assert ("2014-09-24 16:20:00", "2014-09-25 09:10:00") in df.attrs["gaps"]
    assert ("2016-10-25 10:10:00", "2016-10-28 13:20:00") in df.attrs["gaps"]
    assert df.attrs["resolution"] == df.attrs["file_resolution"] == "1 h"
    assert df.attrs["embedded"] is True
    # By position (the course's and Chollet's reading): every row as the file holds it.
    rows = jena_climate(EMBEDDED_JENA, how="position")
    assert len(rows) == 70_092 and rows.attrs["report"]["duplicates_kept"] == 24
    assert np.array_equal(rows["T (degC)"].to_numpy(), raw["T (degC)"].to_numpy())


def test_step_counts_ten_minute_rows_on_the_hourly_record():
    hourly = jena_climate(EMBEDDED_JENA, step=6, how="position")
    assert len(hourly) == 70_092 and hourly.attrs["resolution"] == "1 h"
    weekly = jena_climate(EMBEDDED_JENA, step=1008, how="position")  # the course's every 1,008th row
    assert len(weekly) == 418 and weekly.attrs["resolution"] == "7 days"
    assert weekly.index[1] - weekly.index[0] == pd.Timedelta(days=7)
    assert weekly["T (degC)"].iloc[2] == hourly["T (degC)"].iloc[336]
    with pytest.raises(RnnkitError, match="step 4 .* every 1 h: use a multiple of 6"):
        jena_climate(EMBEDDED_JENA, step=4)


def test_no_path_no_data_dir_no_cache_no_network_reads_the_embedded_record(nothing_local):
    df = jena_climate()
    assert df.attrs["files"] == [str(EMBEDDED_JENA)] and df.attrs["embedded"] is True
    assert len(df) == 70_068 and df.attrs["resolution"] == "1 h"
    with pytest.raises(RnnkitError, match="network is unreachable"):  # a download only on request
        jena_climate(download=True)


def test_a_ten_minute_benchmark_file_is_preferred_to_the_embedded_record(nothing_local, monkeypatch):
    folder = nothing_local / "data"
    folder.mkdir()
    with gzip.open(EMBEDDED_JENA, "rt", encoding="ascii") as f:
        lines = f.read().splitlines()[:50]
    # Ten-minute stamps on the first rows: enough to tell which file was read.
    stamps = pd.date_range("2009-01-01 00:10", periods=49, freq="10min").strftime("%d.%m.%Y %H:%M:%S")
    body = [f"{t},{line.split(',', 1)[1]}" for t, line in zip(stamps, lines[1:])]
    (folder / "jena_climate_2009_2016.csv").write_text("\n".join([lines[0], *body]) + "\n", encoding="ascii")
    (folder / "mpi_roof_2024.csv").write_text("not read\n", encoding="ascii")
    monkeypatch.setenv("RNNKIT_DATA_DIR", str(folder))
    df = jena_climate(source="record", step=6)
    assert df.attrs["files"] == [str(folder / "jena_climate_2009_2016.csv")] and not df.attrs["embedded"]
    assert df.attrs["file_resolution"] == "10 min" and df.attrs["resolution"] == "1 h" and len(df) == 9


def test_source_record_skips_the_station_exports(nothing_local, monkeypatch):
    folder = nothing_local / "exports"
    folder.mkdir()
    (folder / "mpi_roof_2024.csv").write_text("not read\n", encoding="ascii")
    monkeypatch.setenv("RNNKIT_DATA_DIR", str(folder))
    assert jena_climate(source="record", step=1008).attrs["embedded"] is True
    with pytest.raises(RnnkitError):  # "auto" finds the (broken) export first
        jena_climate()


def _persistence(series: np.ndarray, lo: int, hi: int, length: int = 120, ahead: int = 24) -> float:
    last = np.arange(lo + length - 1, hi - ahead)
    return float(np.abs(series[last + ahead] - series[last]).mean())


def test_persistence_on_chollets_split_gives_the_books_numbers():
    """Chollet's 50/25/25 rows, 120 hourly steps, 24 h ahead: 2.44 validation, 2.62 test (by hand)."""
    t = jena_climate(EMBEDDED_JENA, how="position")["T (degC)"].to_numpy()
    n = len(t)
    a, b = n // 2, n // 2 + n // 4
    assert _persistence(t, a, b) == pytest.approx(2.4406, abs=5e-4)
    assert _persistence(t, b, n) == pytest.approx(2.6185, abs=5e-4)
    assert round(_persistence(t, a, b), 2) == 2.44 and round(_persistence(t, b, n), 2) == 2.62
