"""Training-step throughput of rnnkit's recurrent layers against hand-written PyTorch models.

Each case runs forward + backward + Adam step with an MSE loss on a linear head, on input
(256, 120, 14) float32, on 1 thread and then on 2 (DESIGN §7). A candidate and its reference
are measured alternately within every repeat, so slow phases of a shared machine hit both.
rnnkit's layers run the compiled CPU kernel (``rnnkit.layers.kernel``) unless
``RNNKIT_KERNEL=torch``; one row measures rnnkit's PyTorch path (``use_kernel("torch")``) too.

Printed per case: median examples/s of candidate and reference with their min–max spread
over the repeats, the median ratio (with its spread), and the share of the machine's matmul
rate that the candidate reaches. That rate is measured in the same run: a 2048 × 2048 float32
matmul on the same number of threads. A model's work per training step is counted as its
matmuls only:

    FLOPs per step ≈ 6 · B · T · G · n · (m + n)

(forward 2·B·T·G·n·(m + n) for the input and recurrent kernels, backward about twice that;
B batch, T steps, G gates (SimpleRNN 1, GRU 3, LSTM 4), n units, m features; gate
arithmetic, the head and the optimizer are left out). GRU(32) on (256, 120, 14): 814 MFLOP.

Denormal floats: gradients that fade through 120 steps turn denormal, and x86 CPUs slow down
2–3× on them. The Trainer flushes them during ``fit`` (``Trainer(flush_denormal=True)``), so
the benchmark does too by default; ``--no-flush-denormal`` measures both sides without it.

    python benchmarks/bench_layers.py [--repeats 5] [--steps 4] [--quick] [--threads 1,2]
        [--no-flush-denormal] [--clock cpu|wall] [--no-keras] [--cold-build] [--isa LEVEL|all]

``--isa LEVEL`` runs the whole benchmark at an instruction-set level (generic, sse4, avx, avx2,
avx512, native): rnnkit's kernel built for it and PyTorch's references held to it
(``benchmarks/levels.py``); ``--isa all`` runs it at every level this CPU can run, one after
the other, each in its own process.

Times are the process's CPU time on 1 thread by default (``--clock cpu``): with one thread
that equals elapsed time on an idle machine, and on a shared one it leaves out the time other
processes hold the core (not their effect on caches, so a ratio still varies from run to run).
With several threads CPU time would add the threads up, so they are timed by the wall clock.

References: ``nn.GRU``/``nn.LSTM``/``nn.RNN`` (batch_first) + ``nn.Linear`` for the layers
without dropout; rnnkit's layer without dropout for the two recurrent-dropout modes; Keras 3
(torch backend, where installed) ``GRU(32)`` + ``Dense(1)`` (``train_on_batch``) against
rnnkit's GRU. Also printed: the compiled kernel's load time in this process (a cached build
loads in well under a second) and, with ``--cold-build``, the time of a build from scratch
(into a temporary extensions folder, in a subprocess).
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
import warnings
from typing import Callable

import torch
from torch import nn

from rnnkit.layers import kernel, use_kernel
from rnnkit.layers.recurrent import GRU, LSTM, SimpleRNN
from rnnkit.training.trainer import denormals_flushed

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from levels import level_environment, reexec_at_level, runnable_levels  # noqa: E402

BATCH, TIME, FEATURES = 256, 120, 14
GATES = {"SimpleRNN": 1, "GRU": 3, "LSTM": 4}


class TorchReference(nn.Module):
    """nn.GRU / nn.LSTM / nn.RNN over (batch, time, features), then a linear head on the last step."""

    def __init__(self, rnn: nn.Module, units: int) -> None:
        super().__init__()
        self.rnn = rnn
        self.head = nn.Linear(units, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out, _ = self.rnn(x)
        return self.head(out[:, -1])


class RnnkitModel(nn.Module):
    """An rnnkit recurrent layer, then a linear head."""

    def __init__(self, layer: nn.Module, units: int) -> None:
        super().__init__()
        self.layer = layer
        self.head = nn.Linear(units, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.layer(x))


def step_flops(kind: str, units: int, features: int = FEATURES) -> float:
    """Matmul FLOPs of one training step: 6 · B · T · G · n · (m + n) (see the module docstring)."""
    return 6.0 * BATCH * TIME * GATES[kind] * units * (features + units)


def matmul_rate(size: int = 2048, repeats: int = 3) -> float:
    """The best float32 GFLOP/s of a (size × size) @ (size × size) matmul on this thread."""
    a, b = torch.randn(size, size), torch.randn(size, size)
    a @ b
    best = 0.0
    for _ in range(repeats):
        start = clock()
        a @ b
        best = max(best, 2.0 * size**3 / (clock() - start) / 1e9)
    return best


def make_step(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> Callable[[], None]:
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    loss_fn = nn.MSELoss()
    model.train()

    def step() -> None:
        optimizer.zero_grad(set_to_none=True)
        loss = loss_fn(model(x), y)
        loss.backward()
        optimizer.step()

    return step


def make_keras_step(x: torch.Tensor, y: torch.Tensor) -> Callable[[], None] | None:
    """Keras 3 GRU(32) + Dense(1) on the torch backend, one ``train_on_batch`` per step; None if absent."""
    if os.environ.get("KERAS_BACKEND", "torch") != "torch":
        return None
    os.environ["KERAS_BACKEND"] = "torch"
    try:
        import keras
    except ImportError:
        return None
    if keras.backend.backend() != "torch":
        return None
    model = keras.Sequential([keras.Input((TIME, FEATURES)), keras.layers.GRU(32), keras.layers.Dense(1)])
    model.compile(optimizer=keras.optimizers.Adam(1e-3), loss="mse")
    xs, ys = x.numpy(), y.numpy()

    def step() -> None:
        model.train_on_batch(xs, ys)

    return step


CLOCKS = {"cpu": time.process_time, "wall": time.perf_counter}
clock = CLOCKS["cpu"]


def throughput(step: Callable[[], None], steps: int) -> float:
    """Examples per second of ``clock`` over ``steps`` training steps."""
    start = clock()
    for _ in range(steps):
        step()
    return steps * BATCH / (clock() - start)


def compare(
    name: str,
    cand_step: Callable[[], None],
    ref_step: Callable[[], None],
    ref_name: str,
    repeats: int,
    steps: int,
    flops: float,
    rate: float,
) -> dict[str, float]:
    """Alternate candidate and reference ``repeats`` times; print and return the medians and the ratio."""
    for _ in range(2):  # warm-up: first calls allocate, and the first Adam steps fill its state
        cand_step()
        ref_step()
    cand, ref = [], []
    for i in range(repeats):
        # alternate who goes first, so that a slow phase does not always hit the same side
        order = ((cand, cand_step), (ref, ref_step)) if i % 2 == 0 else ((ref, ref_step), (cand, cand_step))
        for results, step in order:
            results.append(throughput(step, steps))
    ratios = [c / r for c, r in zip(cand, ref)]
    c_med, r_med, ratio = statistics.median(cand), statistics.median(ref), statistics.median(ratios)
    share = c_med / BATCH * flops / (rate * 1e9)
    print(
        f"{name:<30} {c_med:>8,.0f} [{min(cand):>6,.0f}–{max(cand):>6,.0f}]  "
        f"{ref_name:<17} {r_med:>8,.0f} [{min(ref):>6,.0f}–{max(ref):>6,.0f}]  "
        f"{ratio:>5.2f} [{min(ratios):.2f}–{max(ratios):.2f}]  {100 * share:>5.1f}%"
    )
    return {"candidate": c_med, "reference": r_med, "ratio": ratio, "share": share}


def cold_build_seconds() -> float:
    """Build the kernel from scratch in a subprocess, into a temporary extensions folder."""
    code = (
        "import time; from rnnkit.layers import kernel; t = time.perf_counter(); "
        "assert kernel.extension() is not None; print(time.perf_counter() - t)"
    )
    with tempfile.TemporaryDirectory() as folder:
        env = {**os.environ, "TORCH_EXTENSIONS_DIR": folder, "RNNKIT_KERNEL": "compiled"}
        done = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
    return float(done.stdout.split()[-1])


def kernel_line() -> str:
    """Which path rnnkit's layers take here, and the kernel's load time in this process."""
    if kernel.kernel_mode() == "torch":
        return "rnnkit layers: PyTorch path (RNNKIT_KERNEL=torch)"
    start = time.perf_counter()
    ext = kernel.extension()
    seconds = time.perf_counter() - start
    if ext is None:
        return "rnnkit layers: PyTorch path (the compiled kernel could not be built)"
    how = "built now" if "cold" in kernel.load_seconds else "cached build loaded"
    return f"rnnkit layers: compiled kernel ({how} in {seconds:.2f} s)"


def run_threads(
    threads: int, args: argparse.Namespace, repeats: int, steps: int, x: torch.Tensor, y: torch.Tensor
) -> None:
    global clock
    torch.set_num_threads(threads)
    clock = CLOCKS[args.clock if threads == 1 else "wall"]
    rate = matmul_rate()
    ext = kernel.extension() if kernel.kernel_mode() != "torch" else None
    peak = ext.peak_gflops(0.3) * threads if ext is not None and hasattr(ext, "peak_gflops") else None
    print(
        f"\n{threads} thread{'s' if threads > 1 else ''}, {'CPU' if clock is time.process_time else 'wall'} clock, "
        f"matmul {rate:.0f} GFLOP/s" + (f", the kernel's FMA peak at this level {peak:.0f} GFLOP/s" if peak else "")
    )
    if peak:  # the share column: of the level's FMA peak (PyTorch's matmul may run an older level's code)
        rate = peak
    print(
        f"{'candidate':<30} {'ex/s':>8} {'[min–max]':>15}  {'reference':<17} {'ex/s':>8} {'[min–max]':>15}  "
        f"{'ratio':>5} {'[min–max]':>11}  {'of peak' if peak else 'of matmul':>6}"
    )
    cases = (
        ("GRU", GRU, nn.GRU, 32),
        ("GRU", GRU, nn.GRU, 64),
        ("LSTM", LSTM, nn.LSTM, 32),
        ("SimpleRNN", SimpleRNN, nn.RNN, 16),
    )
    for kind, cls, ref_cls, units in cases:
        flops = step_flops(kind, units)
        plain = make_step(RnnkitModel(cls(units, input_size=FEATURES), units), x, y)
        reference = make_step(TorchReference(ref_cls(FEATURES, units, batch_first=True), units), x, y)
        compare(
            f"rnnkit {kind}({units})", plain, reference, f"nn.{ref_cls.__name__}({units})", repeats, steps, flops, rate
        )
        if threads > 1 or units == 64:
            continue
        for mode in ("batch", "sample"):
            layer = cls(units, recurrent_dropout=0.25, recurrent_dropout_mode=mode, input_size=FEATURES)
            dropped = make_step(RnnkitModel(layer, units), x, y)
            compare(f"  rec. dropout {mode}", dropped, plain, f"rnnkit {kind}", repeats, steps, flops, rate)
        if kind == "GRU" and units == 32 and kernel.kernel_mode() != "torch":
            torch_path = make_step(RnnkitModel(GRU(units, input_size=FEATURES), units), x, y)

            def torch_step(torch_path=torch_path) -> None:
                with use_kernel("torch"):
                    torch_path()

            compare("  rnnkit GRU, PyTorch path", torch_step, reference, "nn.GRU(32)", repeats, steps, flops, rate)
        if kind == "GRU" and units == 32 and args.keras:
            keras_step = make_keras_step(x, y)
            if keras_step is None:
                print("Keras 3 with the torch backend is not importable: skipped")
            else:
                compare("Keras GRU(32)", keras_step, plain, "rnnkit GRU(32)", repeats, max(1, steps // 2), flops, rate)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5, help="measurements per model (default 5)")
    parser.add_argument("--steps", type=int, default=4, help="training steps per measurement (default 4)")
    parser.add_argument("--quick", action="store_true", help="3 repeats of 2 steps")
    parser.add_argument("--threads", default="1,2", help="thread counts to measure, comma-separated (default 1,2)")
    parser.add_argument(
        "--no-flush-denormal",
        dest="flush_denormal",
        action="store_false",
        help="keep denormal floats (the Trainer flushes them by default; so does this benchmark)",
    )
    parser.add_argument(
        "--clock",
        choices=sorted(CLOCKS),
        default="cpu",
        help="on 1 thread: cpu (default), this process's CPU time, so that other people's work on a shared "
        "machine counts less; wall: elapsed time (several threads always use wall)",
    )
    parser.add_argument("--no-keras", dest="keras", action="store_false", help="leave out Keras 3 (torch backend)")
    parser.add_argument("--cold-build", action="store_true", help="also time a build of the kernel from scratch")
    parser.add_argument(
        "--isa", default=None, help="instruction-set level to run at, or 'all' (see benchmarks/levels.py)"
    )
    args = parser.parse_args()
    if args.isa == "all":
        argv, rest = sys.argv[1:], []
        while argv:  # the arguments without --isa all
            a = argv.pop(0)
            if a == "--isa":
                argv.pop(0)
            elif not a.startswith("--isa="):
                rest.append(a)
        for level in runnable_levels():
            print(f"\n===== level {level} =====", flush=True)
            subprocess.run(
                [sys.executable, sys.argv[0], *rest, "--isa", level], env=level_environment(level), check=True
            )
        return
    reexec_at_level(args.isa)
    repeats, steps = (3, 2) if args.quick else (args.repeats, args.steps)
    threads = [int(t) for t in args.threads.split(",")]

    torch.manual_seed(0)
    x = torch.randn(BATCH, TIME, FEATURES)
    y = torch.randn(BATCH, 1)
    print(
        f"input {tuple(x.shape)} float32, torch {torch.__version__}, {repeats} repeats × {steps} steps, "
        f"denormals {'flushed (as Trainer(flush_denormal=True))' if args.flush_denormal else 'kept'}"
    )
    print(kernel_line())
    print(
        f"level {kernel.isa_level()} (kernel flags {' '.join(kernel.isa_flags())}); PyTorch's CPU capability "
        f"{torch.backends.cpu.get_cpu_capability()}, MKL {os.environ.get('MKL_ENABLE_INSTRUCTIONS', 'its best')}, "
        f"oneDNN {os.environ.get('ONEDNN_MAX_CPU_ISA', 'its best')}"
    )
    if args.cold_build:
        print(f"kernel build from scratch: {cold_build_seconds():.1f} s")
    with denormals_flushed(args.flush_denormal), warnings.catch_warnings():
        warnings.simplefilter("ignore")  # "batch" mode warns for layers without recurrent dropout
        for count in threads:
            run_threads(count, args, repeats, steps, x, y)


if __name__ == "__main__":
    main()
