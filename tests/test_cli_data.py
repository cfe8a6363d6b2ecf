"""rnnkit data: the description of real files, the plot, and bad input as one line with exit code 2."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from rnnkit.cli import main


@pytest.fixture
def data_dir() -> Path:
    env = os.environ.get("RNNKIT_DATA_DIR")
    folder = Path(env) if env else Path(__file__).resolve().parents[1] / ".." / "shared" / "data"
    if not (folder / "mpi_roof_2024-06-09_2024-10-20.csv.gz").is_file():
        pytest.skip(f"real data files not found in {folder} (set RNNKIT_DATA_DIR)")
    return folder


def test_describes_two_exports(data_dir, capsys, tmp_path):
    png = tmp_path / "series.png"
    rc = main(
        [
            "data",
            str(data_dir / "mpi_roof_2024-06-09_2024-10-20.csv.gz"),
            str(data_dir / "mpi_roof_2025-01-01_2025-04-27.csv.gz"),
            "--plot",
            str(png),
        ]
    )
    out = capsys.readouterr().out
    assert rc == 0
    assert "rows: 35,935" in out
    assert "period: 2024-06-09 11:40:00 to 2025-04-27 16:30:00" in out
    assert "sampling step: 10 min" in out
    assert "  T [degC]" in out and "columns (21):" in out
    assert "segments: 2" in out and "after 2024-10-20 08:10:00, next row 2025-01-01 00:10:00" in out
    assert "error codes (-9999): max. PAR (µmol/m²/s) 18" in out
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and not list(tmp_path.glob("*.tmp*"))


def test_describes_sunspots(data_dir, capsys):
    assert main(["data", str(data_dir / "SN_m_tot_V2.0.csv")]) == 0
    out = capsys.readouterr().out
    assert "rows: 3,243" in out and "sampling step: 1 month" in out and "gaps: 0" in out


def test_bad_path_is_one_line_and_exit_2(capsys, tmp_path):
    assert main(["data", str(tmp_path / "nope.csv")]) == 2
    err = capsys.readouterr().err
    assert err.strip() == f"rnnkit: error: {tmp_path / 'nope.csv'}: no such file"


def test_not_a_data_file_is_one_line_and_exit_2(capsys, tmp_path):
    p = tmp_path / "notes.txt"
    p.write_text("hello\n")
    assert main(["data", str(p)]) == 2
    assert capsys.readouterr().err.count("\n") == 1


def test_subprocess_exit_code(tmp_path):
    proc = subprocess.run(
        [sys.executable, "-m", "rnnkit.cli", "data", str(tmp_path / "missing.csv")],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 2
    assert proc.stderr.strip().endswith("missing.csv: no such file") and "Traceback" not in proc.stderr
    assert proc.stderr.count("\n") == 1
