"""`rnnkit demo`: Chollet's protocol on the embedded record, whatever RNNKIT_DATA_DIR holds."""

from __future__ import annotations

import os
import time

import numpy as np
import pytest
import torch

from rnnkit.datasets.jena import EMBEDDED_JENA
from rnnkit.demo import demo_config, use_demo_threads
from rnnkit.layers import use_kernel
from rnnkit.tasks.regression import make_baselines
from rnnkit.tasks.series import load_frame, prepare
from rnnkit.training import predict


def test_the_demo_reads_the_record_even_with_station_exports_in_the_data_dir(monkeypatch, tmp_path):
    folder = tmp_path / "data"
    folder.mkdir()
    (folder / "mpi_roof_2024.csv").write_text("not read\n", encoding="ascii")  # as the Makefile's folder holds
    monkeypatch.setenv("RNNKIT_DATA_DIR", str(folder))
    config = demo_config()
    prepared = prepare(config, load_frame(config))
    assert prepared.frame.attrs["files"] == [str(EMBEDDED_JENA)] and len(prepared.frame) == 70_092
    assert (config.windows.sequence_length, config.windows.horizon, config.data.split) == (120, 24, [0.5, 0.25, 0.25])
    persistence = make_baselines(config, prepared)["persistence"]
    for part, book in (("val", 2.44), ("test", 2.62)):
        w = prepared.windows[part]
        mae = np.abs(prepared.to_units(predict(persistence, w.x, 4096)) - prepared.to_units(w.y)).mean()
        assert mae == pytest.approx(book, abs=0.01)
    published = {r.run_as: (r.mae_val, r.mae_test) for r in config.published.rows if r.run_as}
    assert published == {"persistence": (2.44, 2.62), "LSTM(16)": (None, 2.55)}
    names = [m.name for m in config.models]
    assert [n.split("(")[0] for n in names[:3]] == ["SimpleRNN", "LSTM", "GRU"] and names[3].startswith("recipe")


def test_the_demo_trains_on_the_idle_cpus_unless_the_user_chose(monkeypatch):
    from rnnkit.training import threads as threads_module

    before = torch.get_num_threads()
    try:
        monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
        monkeypatch.setattr(threads_module, "threads_for_load", lambda: (1, "1 thread (0.3 of the 2 CPUs ... idle)"))
        torch.set_num_threads(2)
        assert use_demo_threads().startswith("1 thread") and torch.get_num_threads() == 1
        monkeypatch.setattr(threads_module, "threads_for_load", lambda: (2, "2 threads"))
        assert use_demo_threads() == "2 threads" and torch.get_num_threads() == 2
        # PyTorch's own path with passive waits: 1 thread (measured 2x faster than 2 on the demo)
        monkeypatch.setenv("OMP_WAIT_POLICY", "PASSIVE")
        with use_kernel("torch"):
            assert use_demo_threads().startswith("1 thread (the PyTorch path") and torch.get_num_threads() == 1
        monkeypatch.setenv("OMP_WAIT_POLICY", "ACTIVE")
        with use_kernel("torch"):
            assert use_demo_threads() == "2 threads" and torch.get_num_threads() == 2
        monkeypatch.setenv("OMP_NUM_THREADS", "1")
        assert use_demo_threads() is None and torch.get_num_threads() == 2  # the user's choice stands
    finally:
        torch.set_num_threads(before)


def test_a_cpu_that_another_process_keeps_busy_is_not_counted():
    import subprocess
    import sys

    from rnnkit.training.threads import idle_cpus, threads_for_load

    cpus = sorted(os.sched_getaffinity(0))
    spinner = subprocess.Popen(
        [sys.executable, "-c", f"import os; os.sched_setaffinity(0, {{{cpus[0]}}})\nwhile True: pass"]
    )
    try:
        time.sleep(0.3)
        idle, count = idle_cpus(0.5)
        threads, why = threads_for_load(0.5)
    finally:
        spinner.kill()
        spinner.wait()
    assert count == len(cpus) and idle <= len(cpus) - 0.6  # whatever else runs only lowers it
    assert 1 <= threads <= max(1, len(cpus) - 1) and why.startswith(f"{threads} thread")
