"""``auto`` against the faster of its two paths, over a grid of shapes, on 1 thread.

For each cell (layer, units, batch, features, training or inference) on input (batch, 60,
features) float32, three things are timed, alternating, best of ``--repeats``:
- the compiled kernel (``use_kernel("compiled")``),
- rnnkit's PyTorch path (``use_kernel("torch")``: PyTorch's fused operator),
- ``auto``, which measures the two at the cell's first call and runs the faster (a fresh,
  in-memory verdict cache: the cached verdicts of earlier runs are neither read nor written).
Training is forward + backward of the layer (sum of its output); inference is a forward pass
under ``torch.no_grad()``. Printed per cell: the times, "kernel/torch" (how many times faster
the kernel is than the PyTorch path), auto's choice, and "auto/best": auto's speed over the
speed of the faster path (goal ≥ 0.97 in every cell). The last lines count the cells and give
the lowest auto/best.

    python benchmarks/bench_grid.py [--isa LEVEL|all] [--layers GRU,LSTM] [--units 8,32,64,128,256]
        [--batch 1,32,256] [--features 1,14,64] [--repeats 5]
    python benchmarks/bench_grid.py --isa LEVEL --recheck EARLIER_OUTPUT --repeats 9

``--recheck`` measures again, at ``--repeats``, only the cells of an earlier run's output whose
auto/best was under 0.97 (on a shared machine a few runs of 3 repeats are noisy: the faster
path's best is the lower of two noisy bests, auto's one), and prints the earlier and the new value.
"""

from __future__ import annotations

import argparse
import gc
import os
import subprocess
import sys
import time
import warnings

import torch

from rnnkit.layers import kernel, use_kernel
from rnnkit.layers.recurrent import RECURRENT_LAYERS
from rnnkit.training.trainer import denormals_flushed

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from levels import level_environment, reexec_at_level, runnable_levels  # noqa: E402

STEPS = 60


def best_of(call, repeats: int, inner: int) -> float:
    """Best seconds per call over ``repeats`` measurements of ``inner`` calls (CPU time, 1 thread).

    Python's garbage collector is off while they run, as in ``timeit``: a training call makes
    autograd's objects, and a collection falling into one path's measurement would count against
    that path."""
    best = float("inf")
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        for _ in range(repeats):
            start = time.process_time()
            for _ in range(inner):
                call()
            best = min(best, (time.process_time() - start) / inner)
    finally:
        if was_enabled:
            gc.enable()
    return best


def cell(layer_name: str, units: int, batch: int, features: int, training: bool, repeats: int) -> dict:
    generator = torch.Generator().manual_seed(units * 1000 + batch * 10 + features)
    layer = RECURRENT_LAYERS[layer_name](units, input_size=features)
    x = torch.randn(batch, STEPS, features, generator=generator)

    def call() -> None:
        if training:
            layer(x).sum().backward()
        else:
            with torch.no_grad():
                layer(x)

    with use_kernel("auto"):
        call()  # the first call of the class: auto measures here
    modes = ("compiled", "torch", "auto")
    for mode in modes:  # warm-up
        with use_kernel(mode):
            call()
    with use_kernel("compiled"):
        start = time.process_time()
        call()
        once = time.process_time() - start
    # about 20 ms a measurement in every cell (at most 50 calls left a 25 µs call at 1.25 ms)
    inner = max(1, min(1000, int(0.02 / max(once, 1e-6))))
    times = {mode: float("inf") for mode in modes}
    for i in range(repeats):
        # PyTorch's path last in every round, the kernel and auto in turn first. In the order
        # (kernel, torch, auto), (auto, torch, kernel) auto was timed right after PyTorch's path in
        # 2 of 3 rounds, and where auto ran the kernel it came out under the kernel in 19-21 cells
        # of a level, over it in 8-12; in this order, 12 under and 8 over (Intel Xeon, avx)
        for mode in ("compiled", "auto", "torch") if i % 2 == 0 else ("auto", "compiled", "torch"):
            with use_kernel(mode):
                call()  # one call untimed, so that the path's own memory is in the caches again
                times[mode] = min(times[mode], best_of(call, 1, inner))
    key = next(k for k in kernel.auto_verdicts() if k.startswith(f"{layer_name}/") and f"units~{kernel._bucket(units)} " in k
               and f"batch~{kernel._bucket(batch)} " in k and f"features~{kernel._bucket(features)} " in k
               and ("training" if training else "inference") in k)  # fmt: skip
    best = min(times["compiled"], times["torch"])
    return {
        "kernel": times["compiled"], "torch": times["torch"], "auto": times["auto"],
        "choice": kernel.auto_verdicts()[key]["path"], "auto_vs_best": best / times["auto"],
    }  # fmt: skip


def low_cells(path: str, goal: float = 0.97) -> list[tuple[str, float]]:
    """(cell name, auto/best) of an earlier output's cells under ``goal`` (a recheck's output too,
    whose lines end with "(was X)")."""
    cells = []
    for line in open(path, encoding="utf-8"):
        words = line.split("(was")[0].split()
        if len(words) >= 10 and words[0].split("(")[0] in RECURRENT_LAYERS and words[3] in ("train", "infer"):
            if float(words[9]) < goal:
                cells.append((" ".join(words[:4]), float(words[9])))
    return cells


def parse_cell(name: str) -> tuple[str, int, int, int, str]:
    """'GRU(32) b1 m14 train' -> ('GRU', 32, 1, 14, 'train')."""
    layer, batch, features, mode = name.split()
    layer_name, units = layer.rstrip(")").split("(")
    return layer_name, int(units), int(batch[1:]), int(features[1:]), mode


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--isa", default=None, help="instruction-set level, or 'all' (benchmarks/levels.py)")
    parser.add_argument("--layers", default="GRU,LSTM")
    parser.add_argument("--units", default="8,32,64,128,256")
    parser.add_argument("--batch", default="1,32,256")
    parser.add_argument("--features", default="1,14,64")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--recheck", default=None, help="an earlier output: measure its cells under 0.97 again")
    args = parser.parse_args()
    if args.isa == "all":
        rest = [a for a in sys.argv[1:] if a not in ("--isa", "all")]
        for level in runnable_levels():
            print(f"\n===== level {level} =====", flush=True)
            subprocess.run(
                [sys.executable, sys.argv[0], *rest, "--isa", level], env=level_environment(level), check=True
            )
        return
    reexec_at_level(args.isa)
    torch.set_num_threads(1)
    if kernel.extension() is None:
        raise SystemExit("the compiled kernel is not available here: nothing to compare")
    kernel._verdicts = {}  # fresh verdicts, kept in memory only
    kernel._save_verdict = lambda key, verdict: None
    print(f"level {kernel.isa_level()} (kernel flags {' '.join(kernel.isa_flags())}), PyTorch's CPU capability "
          f"{torch.backends.cpu.get_cpu_capability()}; input (batch, {STEPS}, features) float32, 1 thread, CPU time")  # fmt: skip
    print(
        f"{'cell':<40} {'kernel ms':>10} {'torch ms':>10} {'auto ms':>10} {'kernel/torch':>12} {'auto runs':>9} {'auto/best':>9}"
    )
    worst, count = float("inf"), 0
    with denormals_flushed(True), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        if args.recheck:
            for name, earlier in low_cells(args.recheck):
                layer_name, units, batch, features, mode = parse_cell(name)
                r = cell(layer_name, units, batch, features, mode == "train", args.repeats)
                print(f"{name:<40} {1e3 * r['kernel']:>10.3f} {1e3 * r['torch']:>10.3f} {1e3 * r['auto']:>10.3f} "
                      f"{r['torch'] / r['kernel']:>12.2f} {r['choice']:>9} {r['auto_vs_best']:>9.2f} (was {earlier:.2f})",
                      flush=True)  # fmt: skip
                worst, count = min(worst, r["auto_vs_best"]), count + 1
            print(f"{count} cells measured again at {args.repeats} repeats; lowest auto/best {worst:.2f}")
            return
        for layer_name in args.layers.split(","):
            for training in (True, False):
                for units in map(int, args.units.split(",")):
                    for batch in map(int, args.batch.split(",")):
                        for features in map(int, args.features.split(",")):
                            r = cell(layer_name, units, batch, features, training, args.repeats)
                            name = f"{layer_name}({units}) b{batch} m{features} {'train' if training else 'infer'}"
                            print(f"{name:<40} {1e3 * r['kernel']:>10.3f} {1e3 * r['torch']:>10.3f} {1e3 * r['auto']:>10.3f} "
                                  f"{r['torch'] / r['kernel']:>12.2f} {r['choice']:>9} {r['auto_vs_best']:>9.2f}", flush=True)  # fmt: skip
                            worst, count = min(worst, r["auto_vs_best"]), count + 1
    print(f"{count} cells; lowest auto/best {worst:.2f}")


if __name__ == "__main__":
    main()
