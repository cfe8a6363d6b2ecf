import os

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
def _single_thread():
    # Two threads on this shared 2-core machine are noisy and gain nothing for small tests.
    torch.set_num_threads(1)
    yield
