"""sunspots: SILSO's monthly file, resolution and the download cache's checksum sidecar."""

from __future__ import annotations

import re
import shutil
import urllib.error

import pandas as pd
import pytest

from rnnkit.data import make_windows
from rnnkit.datasets import _files, sunspots
from rnnkit.datasets.sunspots import SILSO_URL
from rnnkit.errors import RnnkitError, RnnkitWarning


def test_course_copy(data_dir):
    s = sunspots(data_dir / "SN_m_tot_V2.0.csv")
    assert len(s) == 3_243 and list(s.columns) == ["sunspots"]
    assert s.index[0] == pd.Timestamp("1749-01-01") and s.index[-1] == pd.Timestamp("2019-03-01")
    assert s["sunspots"].iloc[:3].tolist() == [96.7, 104.3, 116.7] and s["sunspots"].iloc[-1] == 9.5
    assert s.attrs["segments"] == [("1749-01", "2019-03", 3_243)]
    w = make_windows(s, 12)  # monthly steps of unequal length are still one segment
    assert len(w) == 3_243 - 12


def test_env_dir_then_download_to_cache_with_sidecar(monkeypatch, tmp_path, data_dir):
    monkeypatch.setenv("RNNKIT_DATA_DIR", str(data_dir))
    assert len(sunspots()) == 3_243
    monkeypatch.setenv("RNNKIT_DATA_DIR", str(tmp_path / "empty"))
    monkeypatch.setattr(_files, "cache_dir", lambda: tmp_path / "cache")
    calls = []

    def fake_fetch(url, dest, timeout=0):
        calls.append(url)
        shutil.copyfile(data_dir / "SN_m_tot_V2.0.csv", dest)

    monkeypatch.setattr(_files, "fetch", fake_fetch)
    assert len(sunspots()) == 3_243 and calls == [SILSO_URL]
    assert (
        (tmp_path / "cache" / "SN_m_tot_V2.0.csv.sha256")
        .read_text()
        .startswith("407fa462b2a10043362067253bdb92a5bde5a67891eb838cb255daac6ec71513")
    )
    assert len(sunspots()) == 3_243 and calls == [SILSO_URL]  # second call: from the cache
    with open(tmp_path / "cache" / "SN_m_tot_V2.0.csv", "a") as f:
        f.write("2019;04;2019.287;   0.0;  0.0;    0;0\n")
    with pytest.raises(RnnkitError, match="sha256 differs from SN_m_tot_V2.0.csv.sha256"):
        sunspots()


def test_offline_message(monkeypatch, tmp_path):
    monkeypatch.delenv("RNNKIT_DATA_DIR", raising=False)
    monkeypatch.setattr(_files, "cache_dir", lambda: tmp_path / "cache")

    def offline(url, dest, timeout=0):
        raise urllib.error.URLError("offline")

    monkeypatch.setattr(_files, "fetch", offline)
    with pytest.raises(RnnkitError, match=r"SN_m_tot_V2.0.csv not found .*RNNKIT_DATA_DIR \(not set\)") as e:
        sunspots()
    assert SILSO_URL in str(e.value)


def test_wrong_format(tmp_path):
    p = tmp_path / "x.csv"
    p.write_text("1749;01;1749.042;  96.7\n")
    with pytest.raises(RnnkitError, match="expected SILSO's monthly format"):
        sunspots(p)


@pytest.mark.parametrize(
    "tail,fields",
    [("   9", 4), ("   9.5;  1.1;  8", 6), ("   9.5;  1.1;  849;", 7)],
    ids=["9.5 cut to 9", "849 cut to 8, the flag gone", "cut after the last ';'"],
)
def test_a_cut_last_row_is_dropped_with_a_warning_naming_file_and_line(tmp_path, data_dir, tail, fields):
    """The course's copy cut in its last row (2019-03: ``   9.5;  1.1;  849;0``): before, ``   9`` was read as
    9 sunspots, and the missing fields as NaN, silently."""
    lines = (data_dir / "SN_m_tot_V2.0.csv").read_text().splitlines()
    assert lines[-1] == "2019;03;2019.204;   9.5;  1.1;  849;0"
    path = tmp_path / "SN_m_tot_V2.0.csv"
    path.write_text("\n".join([*lines[:-1], "2019;03;2019.204;" + tail]))
    why = (
        f"has {fields} of the first row's 7 fields"
        if fields < 7
        else "ends without a line end in an empty field, a number cut short"
    )
    with pytest.warns(RnnkitWarning, match=re.escape(f"{path}: line 3243, the last row, {why} (the file was cut")):
        s = sunspots(path)
    assert len(s) == 3_242 and s.index[-1] == pd.Timestamp("2019-02-01") and s["sunspots"].iloc[-1] == 0.8


def test_a_short_row_before_the_last_is_refused(tmp_path, data_dir):
    lines = (data_dir / "SN_m_tot_V2.0.csv").read_text().splitlines()
    lines[99] = "1757;04;1757.288;"
    path = tmp_path / "SN_m_tot_V2.0.csv"
    path.write_text("\n".join(lines) + "\n")
    with pytest.raises(RnnkitError, match=re.escape(f"{path}: line 100 has 4 fields, the first row 7: ")):
        sunspots(path)
