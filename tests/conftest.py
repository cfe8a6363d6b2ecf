import os
import urllib.error

os.environ.setdefault("KERAS_BACKEND", "torch")

import numpy as np
import pytest
import torch


def pytest_sessionstart(session):
    # Build (or load) rnnkit's compiled CPU kernel before any test captures output, so that its
    # one line on stderr (compiling once; or why PyTorch's path runs) never lands in a test's stderr.
    from rnnkit.layers import kernel

    if kernel.kernel_mode() != "torch":
        kernel.extension()


@pytest.fixture
def seed():
    """Seed torch and numpy; returns a numpy Generator for test data."""
    torch.manual_seed(0)
    np.random.seed(0)
    return np.random.default_rng(0)


@pytest.fixture(autouse=True)
def _single_thread(monkeypatch):
    # Two threads on this shared 2-core machine are noisy and gain nothing for small tests. The
    # commands' own default (one thread per idle CPU) stands back when OMP_NUM_THREADS is set, so
    # they keep this one thread too; tests of that default remove it (tests/training/test_threads.py).
    torch.set_num_threads(1)
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    yield


def _offline(url, dest, timeout=0):
    raise urllib.error.URLError("network is unreachable")


@pytest.fixture
def nothing_local(monkeypatch, tmp_path):
    """No RNNKIT_DATA_DIR, an empty cache and no network: only the embedded record is left."""
    from rnnkit.datasets import _files

    monkeypatch.delenv("RNNKIT_DATA_DIR", raising=False)
    monkeypatch.setattr(_files, "cache_dir", lambda: tmp_path / "cache")
    monkeypatch.setattr(_files, "fetch", _offline)
    return tmp_path
