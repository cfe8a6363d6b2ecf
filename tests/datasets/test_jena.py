"""jena_climate: the real station files, the benchmark format, -9999 policy, derived features, resolution."""

from __future__ import annotations

import gzip
import re
import urllib.error
import zipfile

import numpy as np
import pandas as pd
import pytest

from rnnkit.datasets import _files, jena_climate, segments
from rnnkit.datasets.jena import BENCHMARK_COLUMNS, JENA_URL
from rnnkit.errors import RnnkitError

F1 = "jena_climate_2009-01-01_2009-01-28_12cols.csv.gz"
F2 = "mpi_roof_2024-06-09_2024-10-20.csv.gz"
F3 = "mpi_roof_2025-01-01_2025-04-27.csv.gz"


@pytest.mark.parametrize(
    ("name", "rows", "n_columns", "first", "last"),
    [
        (F1, 4_000, 11, "2009-01-01 00:10", "2009-01-28 18:40"),
        (F2, 19_132, 14, "2024-06-09 11:40", "2024-10-20 08:10"),
        (F3, 16_803, 14, "2025-01-01 00:10", "2025-04-27 16:30"),
    ],
)
def test_reads_each_real_file(data_dir, name, rows, n_columns, first, last):
    df = jena_climate(data_dir / name)
    assert len(df) == rows and df.shape[1] == n_columns
    assert list(df.columns) == BENCHMARK_COLUMNS[:n_columns]
    assert df.index.name == "Date Time"
    assert df.index[0] == pd.Timestamp(first) and df.index[-1] == pd.Timestamp(last)
    assert set(np.diff(df.index.as_unit("s").asi8).tolist()) == {600}
    assert df.attrs["segments"] == [(str(df.index[0]), str(df.index[-1]), rows)] and df.attrs["gaps"] == []


def test_first_row_matches_the_published_benchmark(data_dir):
    row = jena_climate(data_dir / F1).iloc[0]
    assert row.tolist() == [996.52, -8.02, 265.4, -8.9, 93.3, 3.33, 3.11, 0.22, 1.94, 3.12, 1307.75]


def test_two_station_exports_join_as_two_segments_with_the_gap_reported(data_dir):
    df = jena_climate([data_dir / F3, data_dir / F2], columns="all")  # order given does not matter
    assert len(df) == 19_132 + 16_803 and df.shape[1] == 21
    assert df.index.is_monotonic_increasing
    assert segments(df) == [(0, 19_132), (19_132, 35_935)]
    assert df.attrs["gaps"] == [("2024-10-20 08:10:00", "2025-01-01 00:10:00")]
    report = df.attrs["report"]
    assert report["error_codes"] == {"max. PAR (µmol/m²/s)": 18}
    assert (df.to_numpy() == -9999).sum() == 0  # no error code survives cleaning
    assert report["interpolated"] == {"max. PAR (µmol/m²/s)": 18}
    raw = jena_climate([data_dir / F2, data_dir / F3], columns="all", clean=False)
    assert (raw["max. PAR (µmol/m²/s)"] == -9999).sum() == 18


def test_duplicates_across_files_are_removed(data_dir):
    df = jena_climate([data_dir / F2, data_dir / F2])
    assert len(df) == 19_132 and df.attrs["report"]["duplicates_removed"] == 19_132


def _benchmark_lines(data_dir, n=300):
    """The first n real rows in the original benchmark format, with wind columns appended."""
    with gzip.open(data_dir / F1, "rt", encoding="latin-1") as f:
        rows = f.read().splitlines()[1 : n + 1]
    header = ",".join(f'"{c}"' for c in ["Date Time", *BENCHMARK_COLUMNS])
    lines = [header]
    for i, row in enumerate(rows):
        wv = "-9999.00" if i == 4 else f"{1 + (i % 7) * 0.25:.2f}"
        maxwv = "-9999.00" if i == 5 else f"{2 + (i % 5) * 0.5:.2f}"
        wd = f"{(i * 37) % 360:.1f}"
        lines.append(f"{row},{wv},{maxwv},{wd}")
    fields = lines[8].split(",")
    fields[4] = "-9999.00"  # Tdew of data row 7: an error code outside the wind columns
    lines[8] = ",".join(fields)
    return lines


def test_benchmark_format_csv_and_zip(tmp_path, data_dir):
    lines = _benchmark_lines(data_dir)
    csv = tmp_path / "jena_climate_2009_2016.csv"
    csv.write_text("\n".join(lines) + "\n", encoding="latin-1")
    with zipfile.ZipFile(tmp_path / "jena_climate_2009_2016.csv.zip", "w", zipfile.ZIP_DEFLATED) as z:
        z.write(csv, "jena_climate_2009_2016.csv")
    from_csv = jena_climate(csv)
    from_zip = jena_climate(tmp_path / "jena_climate_2009_2016.csv.zip")
    pd.testing.assert_frame_equal(from_csv, from_zip)
    assert list(from_csv.columns) == BENCHMARK_COLUMNS and len(from_csv) == 300
    # policy: -9999 in wind speeds → 0.0; elsewhere → interpolated in time
    assert from_csv["wv (m/s)"].iloc[4] == 0.0 and from_csv["max. wv (m/s)"].iloc[5] == 0.0
    raw = jena_climate(csv, clean=False)
    assert raw.attrs["report"]["error_codes"] == {"Tdew (degC)": 1, "wv (m/s)": 1, "max. wv (m/s)": 1}
    assert raw["Tdew (degC)"].iloc[7] == -9999
    expected = (raw["Tdew (degC)"].iloc[6] + raw["Tdew (degC)"].iloc[8]) / 2  # linear in time, equal steps
    assert from_csv["Tdew (degC)"].iloc[7] == pytest.approx(expected)
    assert from_csv.attrs["report"]["interpolated"] == {"Tdew (degC)": 1}
    assert (from_csv.to_numpy() == -9999).sum() == 0


def test_derived_wind_vector_and_time_signals(tmp_path, data_dir):
    csv = tmp_path / "jena_climate_2009_2016.csv"
    csv.write_text("\n".join(_benchmark_lines(data_dir)) + "\n", encoding="latin-1")
    df = jena_climate(csv, derived=True)
    assert df.shape[1] == 19  # 14 − 3 wind columns + 4 vector components + 4 time signals
    raw = jena_climate(csv)
    rad = np.deg2rad(raw["wd (deg)"])
    np.testing.assert_allclose(df["Wx"], raw["wv (m/s)"] * np.cos(rad))
    np.testing.assert_allclose(df["max Wy"], raw["max. wv (m/s)"] * np.sin(rad))
    six = df.index.hour == 6
    np.testing.assert_allclose(df.loc[six & (df.index.minute == 0), "Day sin"], 1.0, atol=1e-9)
    np.testing.assert_allclose(df["Day sin"] ** 2 + df["Day cos"] ** 2, 1.0)


def test_resample_every_and_mean(data_dir):
    full = jena_climate(data_dir / F3)
    every = jena_climate(data_dir / F3, step=6)
    pd.testing.assert_frame_equal(every, full.iloc[::6], check_freq=False)
    mean = jena_climate(data_dir / F3, step=6, how="mean")
    assert len(mean) == 16_803 // 6
    assert mean.index[0] == full.index[5]  # a block is stamped with its last time
    assert mean["T (degC)"].iloc[0] == pytest.approx(full["T (degC)"].iloc[:6].mean())
    d = np.deg2rad(full["wd (deg)"].iloc[:6])
    assert mean["wd (deg)"].iloc[0] == pytest.approx(np.rad2deg(np.arctan2(np.sin(d).mean(), np.cos(d).mean())) % 360)


def test_default_resolution_uses_the_station_exports_in_rnnkit_data_dir(monkeypatch, tmp_path, data_dir):
    monkeypatch.setenv("RNNKIT_DATA_DIR", str(data_dir))
    monkeypatch.setattr(_files, "fetch", _offline)
    df = jena_climate()
    assert len(df) == 35_935 and len(df.attrs["segments"]) == 2


def _offline(url, dest, timeout=0):
    raise urllib.error.URLError("network is unreachable")


def test_offline_download_on_request_gives_one_clear_message(monkeypatch, tmp_path):
    monkeypatch.setenv("RNNKIT_DATA_DIR", str(tmp_path / "empty"))
    monkeypatch.setattr(_files, "cache_dir", lambda: tmp_path / "cache")
    monkeypatch.setattr(_files, "fetch", _offline)
    with pytest.raises(RnnkitError) as e:
        jena_climate(download=True)
    msg = str(e.value)
    assert "RNNKIT_DATA_DIR" in msg and JENA_URL in msg and "jena_climate_2009_2016.csv.zip" in msg
    assert "network is unreachable" in msg and "\n" not in msg


def test_a_download_with_the_wrong_content_is_rejected_and_not_kept(monkeypatch, tmp_path):
    monkeypatch.delenv("RNNKIT_DATA_DIR", raising=False)
    monkeypatch.setattr(_files, "cache_dir", lambda: tmp_path / "cache")

    def fake_fetch(url, dest, timeout=0):
        with zipfile.ZipFile(dest, "w") as z:
            z.writestr("jena_climate_2009_2016.csv", '"Date Time","p (mbar)"\n01.01.2009 00:10:00,996.52\n')

    monkeypatch.setattr(_files, "fetch", fake_fetch)
    with pytest.raises(RnnkitError, match=re.escape("has 2 columns and 1 rows, expected 15 and 420551")):
        jena_climate(download=True)
    assert list((tmp_path / "cache").iterdir()) == []


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"step": 0}, "step must be a positive integer, got 0"),
        ({"how": "median"}, "how must be one of ['every', 'mean', 'position'], got 'median'"),
        ({"source": "station"}, "source must be one of ['auto', 'record'], got 'station'"),
        (
            {"derived": ["wind", "moon"]},
            "derived must be True, False or a list from ['wind', 'time'], got ['wind', 'moon']",
        ),
        ({"columns": ["T (degC)", "X"]}, "columns (data.columns) ['X'] are not in "),
    ],
)
def test_invalid_arguments(data_dir, kwargs, message):
    with pytest.raises(ValueError, match=re.escape(message)):
        jena_climate(data_dir / F3, **kwargs)


def test_wind_features_need_wind_columns(data_dir):
    with pytest.raises(
        RnnkitError, match=re.escape("derived 'wind' needs columns ['wv (m/s)', 'max. wv (m/s)', 'wd (deg)']")
    ):
        jena_climate(data_dir / F1, derived=["wind"])


def test_bad_files(tmp_path):
    with pytest.raises(FileNotFoundError, match="no such file or folder"):
        jena_climate(tmp_path / "missing.csv")
    bad = tmp_path / "mpi_roof_bad.csv"
    bad.write_text("Date Time,T (degC)\n01.01.2025 00:10:00,1.0\n2025-01-01 00:20,2.0\n")
    with pytest.raises(RnnkitError, match="'Date Time' must be dd.mm.yyyy HH:MM:SS; data row"):
        jena_climate(bad)
    bad.write_text("time,T\n1,2\n")
    with pytest.raises(RnnkitError, match="no 'Date Time' column"):
        jena_climate(bad)
