"""How many threads to train on: the CPUs this process may use that nothing else is using.

Two threads of a recurrent step wait for each other at every time step, so a thread whose core
another process holds slows the other one down. ``threads_for_load`` counts the CPUs of this
process's affinity (``os.sched_getaffinity``) and subtracts what other processes keep busy,
sampled from ``/proc/stat`` over a fraction of a second; on a quiet machine that is every CPU,
on a loaded one fewer, and never less than one. Where ``/proc/stat`` cannot be read (not Linux),
one thread. ``use_threads_for_load`` makes that torch's thread count: the default of ``rnnkit demo``,
``train`` and ``backtest`` when the user chose none (``--threads``, ``OMP_NUM_THREADS``) and no
torchrun rank count applies.
"""

from __future__ import annotations

import os
import time


def _cpu_times(cpus: set[int]) -> dict[int, tuple[int, int]]:
    """cpu -> (busy jiffies, total jiffies) from /proc/stat, for the given CPUs."""
    times = {}
    with open("/proc/stat", encoding="ascii") as stat:
        for line in stat:
            name, *fields = line.split()
            if not name.startswith("cpu") or name == "cpu":
                continue
            cpu = int(name[3:])
            if cpu in cpus:
                values = [int(v) for v in fields[:8]]
                idle = values[3] + values[4]  # idle + iowait
                times[cpu] = (sum(values) - idle, sum(values))
    return times


def idle_cpus(sample: float = 0.25) -> tuple[float, int]:
    """(CPUs' worth left idle by other processes, CPUs this process may use), sampled over ``sample`` s.

    This process is asleep while it samples, so what it sees busy is other processes' work.
    """
    cpus = os.sched_getaffinity(0)
    before = _cpu_times(cpus)
    time.sleep(sample)
    after = _cpu_times(cpus)
    idle = 0.0
    for cpu, (busy, total) in after.items():
        elapsed = total - before.get(cpu, (0, 0))[1]
        if elapsed > 0:
            idle += 1.0 - min(1.0, max(0.0, (busy - before[cpu][0]) / elapsed))
    return idle, len(cpus)


def threads_for_load(sample: float = 0.25) -> tuple[int, str]:
    """(threads, why): one per CPU that other processes leave idle, at least 1."""
    try:
        idle, cpus = idle_cpus(sample)
    except (OSError, ValueError, AttributeError):
        return 1, "one thread (the CPUs' load cannot be read here)"
    threads = max(1, min(cpus, int(idle + 0.25)))
    return (
        threads,
        f"{threads} thread{'s' if threads > 1 else ''} ({idle:.1f} of the {cpus} CPUs this process may use were idle)",
    )


def chosen_threads() -> tuple[int, str]:
    """(threads, why) that rnnkit trains on when nobody chose: :func:`threads_for_load`'s, or 1 on PyTorch's
    own path (``RNNKIT_KERNEL=torch``) with passive OpenMP waits."""
    from rnnkit.layers.kernel import kernel_mode

    threads, why = threads_for_load()
    if threads > 1 and kernel_mode() == "torch" and os.environ.get("OMP_WAIT_POLICY", "").upper() == "PASSIVE":
        # PyTorch's step loop opens a parallel region per time step, and a passive wait wakes the other
        # thread each time: the demo on that path took 469 s on 2 threads and 222 s on 1 (2 cores, quiet)
        return 1, "1 thread (the PyTorch path, RNNKIT_KERNEL=torch, runs slower on 2 with passive waits)"
    return threads, why


def use_threads_for_load() -> str | None:
    """Set torch's thread count to :func:`chosen_threads`'s; returns the choice and why, for the console.

    None, and nothing set, when the user chose (``OMP_NUM_THREADS``) or under torchrun
    (``WORLD_SIZE`` > 1: each rank keeps its own share, ``distributed.init_from_env``).
    """
    if os.environ.get("OMP_NUM_THREADS") or int(os.environ.get("WORLD_SIZE", "1") or "1") > 1:
        return None
    import torch

    threads, why = chosen_threads()
    torch.set_num_threads(threads)
    return why
