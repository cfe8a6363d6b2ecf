import os
from pathlib import Path

import pytest


@pytest.fixture
def data_dir() -> Path:
    """The real data files (RNNKIT_DATA_DIR, else ../shared/data beside the repository)."""
    env = os.environ.get("RNNKIT_DATA_DIR")
    folder = Path(env) if env else Path(__file__).resolve().parents[2] / ".." / "shared" / "data"
    if not (folder / "mpi_roof_2025-01-01_2025-04-27.csv.gz").is_file():
        pytest.skip(f"real data files not found in {folder} (set RNNKIT_DATA_DIR)")
    return folder
