"""``rnnkit doctor``: why a run is fast or slow here, in one command.

It prints the CPU and the instruction sets it offers, the compiled kernel's build (level,
flags, register tiles, cache folder, build or load time), the path that ``auto`` takes for
each shape class measured so far on this machine (with the measured speed-up of the kernel
over PyTorch's path), and torch's threads and BLAS. ``measure=True`` first measures a
standard set of shape classes (GRU, LSTM and SimpleRNN; batch 1, 32 and 256; 32 and 128 units;
training and inference), a few seconds, so that the table is complete before a first run.
``python -m rnnkit.doctor build`` (``make``'s set-up) builds the kernel and measures the demo's own
shape classes, so that the first ``rnnkit demo`` spends none of its time on either.

Example::

    rnnkit doctor            # what is known
    rnnkit doctor --measure  # measure the standard shape classes first
"""

from __future__ import annotations

import os
import platform
import re
import time
from pathlib import Path

import torch

from rnnkit.layers import kernel

# the CPU flags that matter to the kernel and to PyTorch, in order of age
ISA_FLAGS = ("sse4_2", "avx", "fma", "f16c", "avx2", "avx512f", "avx512bw", "avx512dq", "avx512vl", "avx512_bf16",
             "avx512_fp16", "amx_tile", "asimd", "sve", "sve2")  # fmt: skip
STANDARD_CLASSES = [(layer, units, batch) for layer in ("GRU", "LSTM", "SimpleRNN") for units in (32, 128)
                    for batch in (1, 32, 256)]  # fmt: skip


def cpu_lines() -> list[str]:
    """The CPU's model, its core count here, and the instruction sets of ``ISA_FLAGS`` it offers."""
    name = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.split(":")[0].strip() in ("model name", "Model", "Hardware"):
                name = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    flags = kernel._cpu_flags()
    usable = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    load = ", ".join(f"{v:.2f}" for v in os.getloadavg()) if hasattr(os, "getloadavg") else "unknown"
    offered = [f for f in ISA_FLAGS if f in flags]
    return [
        f"CPU: {name} ({platform.machine()}), {usable} cores usable by this process, load average {load}",
        f"  instruction sets: {' '.join(offered) or 'none of ' + ', '.join(ISA_FLAGS[:5])}",
        f"  kernel levels this CPU runs: {', '.join(runnable_levels())}",
    ]


def runnable_levels() -> list[str]:
    """The ``RNNKIT_KERNEL_ISA`` levels this CPU can run."""
    levels = []
    for level in kernel.ISA_LEVELS:
        try:
            kernel.isa_flags(level)
            levels.append(level)
        except RuntimeError:
            pass
    return levels


def build_lines() -> list[str]:
    """The kernel build in force: level, flags, tiles, cache folder, load or build time."""
    mode = kernel.kernel_mode()
    lines = [
        f"kernel mode: {mode} ({kernel.ENVIRONMENT_VARIABLE}={os.environ.get(kernel.ENVIRONMENT_VARIABLE, '') or 'unset'})"
    ]
    try:
        level, flags = kernel.isa_level(), kernel.compile_flags()
    except RuntimeError as error:
        return lines + [f"kernel build: {error}"]
    lines.append(f"kernel build: level {level} ({kernel.ISA_VARIABLE}), flags {' '.join(flags)}")
    if mode == "torch":
        return lines + ["  not loaded: PyTorch's path runs everywhere"]
    start = time.perf_counter()
    ext = kernel.extension()
    seconds = time.perf_counter() - start
    if ext is None:
        return lines + [f"  not available ({kernel._failure}): PyTorch's path runs everywhere"]
    how = "built now" if "cold" in kernel.load_seconds else "cached build loaded"
    lines.append(f"  folder: {kernel.build_folder()} ({how} in {seconds:.2f} s)")
    if hasattr(ext, "info"):
        info = ext.info()
        width = info["vector_bytes"] * 8
        lines.append(f"  vectors: {width}-bit, {info['vector_registers']} registers; register tiles (rows × vectors): "
                     f"{info['tile_rows_3']}×3, {info['tile_rows_2']}×2, {info['tile_rows_1']}×1; "
                     f"{info['rows_per_block']} rows a block")  # fmt: skip
        if info.get("a_broadcast_copy"):
            lines.append(
                "  products of 4 or more column groups: A broadcast into a copy first (SSE has no broadcast from memory)"
            )
    return lines


def measure_standard_classes() -> None:
    """Run one call of each standard shape class (training and inference) so that ``auto`` measures it."""
    from rnnkit.layers.recurrent import RECURRENT_LAYERS

    generator = torch.Generator().manual_seed(0)
    with torch.random.fork_rng(devices=[]):
        for name, units, batch in STANDARD_CLASSES:
            layer = RECURRENT_LAYERS[name](units, input_size=14)
            x = torch.randn(batch, 60, 14, generator=generator)
            layer(x).sum().backward()
            with torch.no_grad():
                layer(x)


# The demo's calls (``rnnkit demo``: 34,903 training windows of (120, 19) from the embedded record,
# batches of 256): training on full batches and on the epoch's last 87 windows; inference on the
# validation loss's batches of 256 (and the last 228) and on the scores' batches of 1024 (and 996).
# auto's classes round batch, steps and features to powers of two, so these four cover the rest.
DEMO_FEATURES = 19
DEMO_TRAINING_BATCHES = (256, 87)
DEMO_INFERENCE_BATCHES = (256, 1024)


def measure_demo_classes() -> int:
    """Run the demo's models once at each of its shape classes (training and inference), on the
    thread count the demo would choose now, so that ``auto`` measures them here and not in the
    first ``rnnkit demo`` (its 16 classes took seconds of it). Returns how many classes were new."""
    from rnnkit.config import build_layer
    from rnnkit.demo import demo_config
    from rnnkit.models import Sequential
    from rnnkit.training.threads import use_threads_for_load

    config = demo_config()
    steps = config.windows.sequence_length
    use_threads_for_load()
    before = len(kernel.auto_verdicts())
    generator = torch.Generator().manual_seed(0)
    with torch.random.fork_rng(devices=[]):
        for spec in config.models:
            model = Sequential(*[build_layer(layer) for layer in spec.layers], input_shape=(steps, DEMO_FEATURES))
            model.train()
            for batch in DEMO_TRAINING_BATCHES:
                model(torch.randn(batch, steps, DEMO_FEATURES, generator=generator)).sum().backward()
            model.eval()
            with torch.no_grad():
                for batch in DEMO_INFERENCE_BATCHES:
                    model(torch.randn(batch, steps, DEMO_FEATURES, generator=generator))
    return len(kernel.auto_verdicts()) - before


def verdict_lines() -> list[str]:
    """``auto``'s verdicts: one line per shape class measured on this machine and build."""
    if kernel.kernel_mode() == "torch" or kernel.extension() is None:
        return []
    verdicts = kernel.auto_verdicts()
    lines = [f"auto's verdicts ({len(verdicts)} shape classes, in {kernel.build_folder() / kernel.AUTO_FILE}):"]
    if not verdicts:
        lines.append("  none measured yet: each is measured at its first call (or run `rnnkit doctor --measure`)")
    width = max((len(k) for k in verdicts), default=0)
    for key in sorted(verdicts, key=_class_order):
        v = verdicts[key]
        lines.append(f"  {key:<{width}}  {v['path']:<6} kernel {v['kernel_ms']:>8.2f} ms, PyTorch {v['torch_ms']:>8.2f} ms "
                     f"({v['speedup']:.2f}x)")  # fmt: skip
    return lines


def _class_order(key: str) -> tuple:
    numbers = [int(n) for n in re.findall(r"~(\d+)", key)]
    return (key.split(" ")[0], "inference" in key, *numbers)


def torch_lines() -> list[str]:
    """torch's version, threads, CPU capability and BLAS."""
    config = torch.__config__.show()
    blas = re.search(r"BLAS_INFO=(\w+)", config)
    mkl = re.search(r"Math Kernel Library Version ([\w.\-]+)", config)
    onednn = re.search(r"MKL-DNN v([\d.]+)", config)
    blas_text = (blas.group(1) if blas else "unknown") + (f" {mkl.group(1)}" if mkl else "")
    return [
        f"torch {torch.__version__}: {torch.get_num_threads()} threads (interop {torch.get_num_interop_threads()}), "
        f"CPU capability {torch.backends.cpu.get_cpu_capability()}, BLAS {blas_text}"
        + (f", oneDNN {onednn.group(1)} (nn.LSTM runs on it)" if onednn else ""),
        wait_policy_line(),
    ]


def wait_policy_line() -> str:
    """How OpenMP's waiting threads wait: rnnkit makes them sleep unless the user chose (OMP_WAIT_POLICY)."""
    import rnnkit

    policy = os.environ.get("OMP_WAIT_POLICY", "")
    line = f"OpenMP wait policy: {policy or 'the library default (spinning)'} (OMP_WAIT_POLICY)"
    if not getattr(rnnkit, "_WAIT_POLICY_BEFORE_TORCH", True):
        line += "; torch was imported before rnnkit, so its OpenMP may keep the setting it loaded with"
    elif policy.upper() == "PASSIVE":
        line += ": waiting threads sleep, so a thread on a busy core does not stall the others"
    return line


def report(measure: bool = False) -> str:
    """The whole text of ``rnnkit doctor``."""
    lines = cpu_lines() + build_lines()
    if measure and kernel.kernel_mode() == "auto" and kernel.extension() is not None:
        measure_standard_classes()
    return "\n".join(lines + verdict_lines() + torch_lines())


if __name__ == "__main__":  # python -m rnnkit.doctor levels: the levels this CPU runs (make test uses it)
    import sys

    if sys.argv[1:] == ["levels"]:
        print(" ".join(runnable_levels()))
    elif sys.argv[1:] == ["build"]:
        # make's set-up: build (or load) the kernel, and measure auto's verdicts for the demo's calls,
        # now and not at a first run
        if kernel.kernel_mode() != "torch" and kernel.extension() is not None:
            print(f"rnnkit: CPU kernel ready ({kernel.isa_level()}): {kernel.build_folder()}")
            if kernel.kernel_mode() == "auto":
                start = time.perf_counter()
                try:
                    new = measure_demo_classes()
                except Exception as error:  # the set-up goes on: the first demo then measures them itself
                    print(f"rnnkit: auto's verdicts for the demo were not measured ({type(error).__name__}: {error})")
                    new = 0
                if new:
                    print(f"rnnkit: auto measured the demo's {new} new shape classes in {time.perf_counter() - start:.1f} s "
                          f"(`rnnkit doctor` lists the verdicts)")  # fmt: skip
    else:
        print(report(measure="--measure" in sys.argv[1:]))
