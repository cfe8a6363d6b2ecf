"""Two threads against one while another process holds a core (issue 18, "threads under load").

On a machine whose other core is busy (a compile, a browser, another user's job), a second
thread can make training slower than one thread: a thread that waits at every step for a
partner whose core is taken waits for the scheduler. rnnkit's kernel hands chunks of rows to
its threads from a shared counter, so a thread on a busy core takes fewer of them.

This benchmark trains GRU(32) and LSTM(32) + a linear head (forward + backward + Adam, MSE) on
(256, 120, 14) float32, as ``bench_layers.py`` does, on the first two CPUs of this process's
affinity, with rnnkit's default path (``auto``), the compiled kernel and rnnkit's PyTorch path:

- "as found": nothing started by the benchmark (whatever else runs on the machine still does);
- "loaded": a busy loop (``while True: pass``, its own process) pinned to the second CPU.

In each condition 1 and 2 threads are measured alternately, ``--repeats`` times, by the wall
clock (CPU time would add the threads up); printed: the median examples/s of each, and "2/1",
the 2-thread speed over the 1-thread speed (goal under load: ≥ 0.95, never slower). Then
"rnnkit's choice": the thread count that ``rnnkit demo``, ``train`` and ``backtest`` take when
nobody chose (``rnnkit.training.threads.chosen_threads``: one per CPU that other processes leave
idle, 1 on the PyTorch path with passive waits), sampled in the measuring process just before
each case, in that condition (under "loaded" with the busy loop running); its speed, measured in
the same alternation (the 1- or 2-thread column itself when it picks 1 or 2), and "choice/1",
its speed over the 1-thread speed. Under a spinning wait policy the process's own idle OpenMP
threads may still spin while it samples, and count as busy.

    python benchmarks/bench_load.py [--repeats 5] [--steps 3] [--isa LEVEL]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
import warnings

import torch

from rnnkit.layers import use_kernel
from rnnkit.layers.recurrent import GRU, LSTM
from rnnkit.training.threads import chosen_threads
from rnnkit.training.trainer import denormals_flushed

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from bench_layers import BATCH, FEATURES, TIME, RnnkitModel, make_step  # noqa: E402
from levels import reexec_at_level  # noqa: E402

PATHS = {"auto": "auto", "kernel": "compiled", "torch path": "torch"}


def busy_loop(cpu: int) -> subprocess.Popen:
    """A process that spins on ``cpu`` until killed."""
    code = f"import os; os.sched_setaffinity(0, {{{cpu}}})\nwhile True: pass"
    return subprocess.Popen([sys.executable, "-c", code])


def examples_per_second(step, steps: int) -> float:
    start = time.perf_counter()
    for _ in range(steps):
        step()
    return steps * BATCH / (time.perf_counter() - start)


def measure(layer_class, mode: str, repeats: int, steps: int, counts: tuple[int, ...] = (1, 2)) -> dict[int, float]:
    """Median examples/s at each thread count of ``counts``, measured alternately."""
    torch.manual_seed(0)
    x, y = torch.randn(BATCH, TIME, FEATURES), torch.randn(BATCH, 1)
    model = RnnkitModel(layer_class(32, input_size=FEATURES), 32)
    step = make_step(model, x, y)
    speeds: dict[int, list[float]] = {threads: [] for threads in counts}
    with use_kernel(mode), denormals_flushed():
        for threads in counts:  # warm-up, and auto's measurement at each thread count
            torch.set_num_threads(threads)
            step()
        for i in range(repeats):
            for threads in counts if i % 2 == 0 else counts[::-1]:
                torch.set_num_threads(threads)
                speeds[threads].append(examples_per_second(step, steps))
    return {threads: statistics.median(values) for threads, values in speeds.items()}


def child(args: argparse.Namespace) -> None:
    """Measure every case under this process's OpenMP wait policy; print one JSON line each."""
    warnings.filterwarnings("ignore")
    for name, layer_class in (("GRU(32)", GRU), ("LSTM(32)", LSTM)):
        for label, mode in PATHS.items():
            with use_kernel(mode):
                choice, _ = chosen_threads()  # the load now, as the commands sample it before training
            speed = measure(layer_class, mode, args.repeats, args.steps, tuple(sorted({1, 2, choice})))
            row = {"case": f"{name} {label}", "1": speed[1], "2": speed[2], "choice": choice, "chosen": speed[choice]}
            print(json.dumps(row), flush=True)


def run_child(policy: str, args: argparse.Namespace) -> dict[str, dict[str, float]]:
    environment = dict(os.environ)
    environment.pop("OMP_WAIT_POLICY", None)
    environment.pop("GOMP_SPINCOUNT", None)
    if policy.startswith("spin="):  # GNU OpenMP: spin this many times (about 10 ns each), then sleep
        environment["GOMP_SPINCOUNT"] = policy.removeprefix("spin=")
    elif policy != "default":
        environment["OMP_WAIT_POLICY"] = policy
    command = [sys.executable, __file__, "--child", "--repeats", str(args.repeats), "--steps", str(args.steps)]
    output = subprocess.run(command, env=environment, capture_output=True, text=True, check=True).stdout
    rows = [json.loads(line) for line in output.splitlines() if line.startswith("{")]
    return {row["case"]: row for row in rows}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--steps", type=int, default=3, help="training steps per measurement")
    parser.add_argument("--isa", default=None, help="instruction-set level (benchmarks/levels.py)")
    parser.add_argument("--policies", default="default,passive",
                        help="OpenMP wait policies to compare, each in its own process (default = as the process "
                             "starts: rnnkit sets passive unless OMP_WAIT_POLICY is set)")  # fmt: skip
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args)
        return
    reexec_at_level(args.isa)
    cpus = sorted(os.sched_getaffinity(0))
    if len(cpus) < 2:
        sys.exit(f"bench_load needs two CPUs; this process may run on {len(cpus)}")
    first, second = cpus[:2]
    os.sched_setaffinity(0, {first, second})
    policies = args.policies.split(",")
    print(f"CPUs {first} and {second}; input ({BATCH}, {TIME}, {FEATURES}) float32, forward + backward + Adam, "
          f"wall clock, median of {args.repeats}; load average {os.getloadavg()[0]:.2f} at the start")  # fmt: skip
    print(f"{'case':<22}{'condition':<10}{'wait policy':<13}{'1 thread ex/s':>15}{'2 threads ex/s':>16}{'2/1':>7}"
          + "rnnkit's choice".rjust(17) + f"{'its ex/s':>10}{'choice/1':>10}")  # fmt: skip
    lowest: dict[str, float] = {}
    lowest_choice: dict[str, float] = {}
    for condition in ("as found", "loaded"):
        spinner = busy_loop(second) if condition == "loaded" else None
        try:
            results = {policy: run_child(policy, args) for policy in policies}
        finally:
            if spinner:
                spinner.kill()
                spinner.wait()
        for case in results[policies[0]]:
            for policy in policies:
                row = results[policy][case]
                ratio, chosen = row["2"] / row["1"], row["chosen"] / row["1"]
                if condition == "loaded":
                    lowest[policy] = min(lowest.get(policy, ratio), ratio)
                    lowest_choice[policy] = min(lowest_choice.get(policy, chosen), chosen)
                threads = f"{row['choice']} thread{'s' if row['choice'] > 1 else ''}"
                print(f"{case:<22}{condition:<10}{policy:<13}{row['1']:>15,.0f}{row['2']:>16,.0f}{ratio:>7.2f}"
                      f"{threads:>17}{row['chosen']:>10,.0f}{chosen:>10.2f}", flush=True)  # fmt: skip
    for policy in policies:
        print(f"lowest 2/1 under load, wait policy {policy}: {lowest[policy]:.2f} (goal >= 0.95); "
              f"rnnkit's choice over 1 thread: {lowest_choice[policy]:.2f}")  # fmt: skip
    print(f"load average {os.getloadavg()[0]:.2f} at the end")


if __name__ == "__main__":
    main()
