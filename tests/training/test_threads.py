"""The thread count from the load (rnnkit.training.threads): the CPUs other processes leave idle, and who wins."""

from __future__ import annotations

import os
import subprocess
import sys
import time

import pytest
import torch

from rnnkit.layers import use_kernel
from rnnkit.training import threads as threads_module
from rnnkit.training.threads import chosen_threads, idle_cpus, threads_for_load, use_threads_for_load


def fake_stat(monkeypatch, busy: dict[int, float]) -> None:
    """CPUs ``busy`` (cpu -> the share other processes kept busy) as this process's affinity and /proc/stat."""
    samples = iter([{cpu: (0, 0) for cpu in busy}, {cpu: (round(100 * b), 100) for cpu, b in busy.items()}])
    monkeypatch.setattr(threads_module.os, "sched_getaffinity", lambda pid: set(busy))
    monkeypatch.setattr(threads_module, "_cpu_times", lambda cpus: next(samples))


@pytest.fixture
def no_choice(monkeypatch):
    """Nobody chose: no OMP_NUM_THREADS (the suite's conftest sets 1), not under torchrun; torch's count restored."""
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    monkeypatch.delenv("WORLD_SIZE", raising=False)
    before = torch.get_num_threads()
    yield
    torch.set_num_threads(before)


@pytest.mark.parametrize(
    ("busy", "threads", "idle"),
    [
        ({0: 0.0, 1: 0.0}, 2, 2.0),  # a quiet machine: every CPU
        ({0: 1.0, 1: 0.0}, 1, 1.0),  # the other core held by a busy loop
        ({0: 0.2, 1: 0.0}, 2, 1.8),
        ({0: 0.3, 1: 0.0}, 1, 1.7),  # 0.25 of a CPU short of 2: one thread
        ({0: 1.0, 1: 1.0}, 1, 0.0),  # never fewer than one
        ({0: 0.0, 1: 0.0, 2: 0.0, 3: 0.5}, 3, 3.5),
    ],
)
def test_threads_for_load_counts_the_cpus_other_processes_leave_idle(monkeypatch, busy, threads, idle):
    fake_stat(monkeypatch, busy)
    cpus = len(busy)
    s = "s" if threads > 1 else ""
    assert threads_for_load(0) == (
        threads,
        f"{threads} thread{s} ({idle:.1f} of the {cpus} CPUs this process may use were idle)",
    )


def test_where_the_load_cannot_be_read_one_thread(monkeypatch):
    def unreadable(cpus):
        raise OSError("no /proc/stat")

    monkeypatch.setattr(threads_module, "_cpu_times", unreadable)
    assert threads_for_load(0) == (1, "one thread (the CPUs' load cannot be read here)")


def test_use_threads_for_load_sets_torchs_count_unless_the_user_or_torchrun_chose(monkeypatch, no_choice):
    fake_stat(monkeypatch, {0: 1.0, 1: 0.0})
    torch.set_num_threads(2)
    assert use_threads_for_load() == "1 thread (1.0 of the 2 CPUs this process may use were idle)"
    assert torch.get_num_threads() == 1
    fake_stat(monkeypatch, {0: 0.0, 1: 0.0})
    assert use_threads_for_load() == "2 threads (2.0 of the 2 CPUs this process may use were idle)"
    assert torch.get_num_threads() == 2
    torch.set_num_threads(3)
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    assert use_threads_for_load() is None and torch.get_num_threads() == 3  # the user's choice stands
    monkeypatch.delenv("OMP_NUM_THREADS")
    monkeypatch.setenv("WORLD_SIZE", "2")
    assert use_threads_for_load() is None and torch.get_num_threads() == 3  # torchrun's per-rank count stands


def test_the_pytorch_path_with_passive_waits_trains_on_one_thread(monkeypatch, no_choice):
    # PyTorch's step loop opens a parallel region per time step: the demo took 469 s on 2 threads, 222 s on 1
    for policy, mode, threads in (
        ("PASSIVE", "torch", 1),
        ("passive", "torch", 1),
        ("ACTIVE", "torch", 2),
        ("PASSIVE", "compiled", 2),
    ):
        monkeypatch.setenv("OMP_WAIT_POLICY", policy)
        with use_kernel(mode):
            fake_stat(monkeypatch, {0: 0.0, 1: 0.0})
            assert chosen_threads()[0] == threads, (policy, mode)  # what benchmarks/bench_load.py measures
            fake_stat(monkeypatch, {0: 0.0, 1: 0.0})
            why = use_threads_for_load()
        assert torch.get_num_threads() == threads, (policy, mode)
        assert why.startswith("1 thread (the PyTorch path" if threads == 1 else "2 threads (2.0 of the 2 CPUs")


def test_a_cpu_that_another_process_keeps_busy_is_not_counted():
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
