"""The compiled whole-sequence CPU kernel, and ``use_kernel``, the switch that chooses it.

The recurrent layers run SimpleRNN (tanh, relu), GRU (either ``reset_after``) and LSTM through
one C++ kernel (``csrc/rnn_kernel.cpp``) that does the forward and the backward pass of the
whole sequence on a CPU: float32 and float64, initial and stateful states, ``go_backwards``,
per-sample and per-batch recurrent dropout, masks (padding). It is compiled with ``torch.utils.cpp_extension`` at its first use (one
line on stderr while it builds, about half a minute) and cached in PyTorch's extensions
folder (``TORCH_EXTENSIONS_DIR``, by default ``~/.cache/torch_extensions``); later processes
load it in a fraction of a second. The cached build is named by a hash of its source, its
flags, the CPU (it is compiled for the CPU it runs on), PyTorch's and Python's versions, so a
build is never loaded where it was not made for. ``RNNKIT_KERNEL_ISA`` (generic, sse4, avx,
avx2, avx512, native: the default) compiles it for an instruction-set level instead of this CPU,
each level its own cached build, so that every level a CPU can run is built, tested and measured
on it; the register tiles' shapes follow the level's vector width and register count.
``rnnkit doctor`` shows the build, its level and tiles, and auto's verdicts.

Which path runs: ``use_kernel(mode)`` or the environment variable ``RNNKIT_KERNEL`` (the call
wins), with mode
- ``"auto"`` (default): the faster of the kernel and the PyTorch path, by measurement. The
  first call of a shape class (layer and cell, dtype, training or inference, batch, steps, units
  and features each rounded to a power of two, thread count, which PyTorch path would run) times
  both paths on the call's own input (up to its first 256 steps, a fresh copy of the layer, the
  random number generators left as they were), a few tenths of a second at most, and the verdict is cached
  beside the build (``auto.json`` in ``build_folder()``), so later processes reuse it;
  ``rnnkit doctor`` lists the verdicts with their measured ratios. Where the kernel cannot be
  built (no C++ compiler, a failed build) one line on stderr says why, and the PyTorch path runs;
- ``"compiled"``: the kernel, and an error where it cannot be built (for debugging);
- ``"torch"``: PyTorch's own operators and the step loop only.

Example::

    import rnnkit as rk
    rk.layers.use_kernel("torch")             # from now on
    with rk.layers.use_kernel("compiled"):    # inside the block only
        y = rk.layers.GRU(32)(torch.randn(8, 20, 7))
"""

from __future__ import annotations

import gc
import hashlib
import importlib.util
import json
import math
import os
import platform
import shutil
import sys
import time
from pathlib import Path
from types import ModuleType
from typing import Any

import torch

from rnnkit.errors import RnnkitError

MODES = ("auto", "compiled", "torch")
ENVIRONMENT_VARIABLE = "RNNKIT_KERNEL"
SOURCE = Path(__file__).with_name("csrc") / "rnn_kernel.cpp"
# -O3 and an instruction-set level (``RNNKIT_KERNEL_ISA``, below); the exp in the source
# vectorises without -ffast-math, whose finite-math-only part breaks inf/nan handling.
# -fno-trapping-math (as PyTorch is built) lets the gate maths' selects vectorise without
# AVX-512's masks: without it every level below AVX-512 ran the gate maths one value at a time.
CFLAGS = ["-O3", "-fopenmp", "-fno-math-errno", "-fno-trapping-math"]
LDFLAGS = ["-fopenmp"]

# The instruction-set level the kernel is compiled for: ``RNNKIT_KERNEL_ISA``, default "native"
# (the CPU it runs on). Each level is its own cached build, so every level this CPU can run
# can be built and measured on it (a newer CPU runs an older level's code). On x86-64:
# generic (SSE2, any x86-64), sse4 (x86-64-v2), avx (AVX, with FMA and F16C where the CPU has
# them: the cloud VMs that hide AVX2), avx2 (x86-64-v3: AVX2 + FMA), avx512 (x86-64-v4:
# AVX-512 F/BW/CD/DQ/VL). On aarch64: generic (NEON, any ARMv8) and native.
ISA_VARIABLE = "RNNKIT_KERNEL_ISA"
ISA_LEVELS = ("generic", "sse4", "avx", "avx2", "avx512", "native")
# level: (compiler flags, CPU flags (/proc/cpuinfo) the level needs)
_X86_LEVELS: dict[str, tuple[list[str], tuple[str, ...]]] = {
    "generic": (["-march=x86-64", "-mtune=generic"], ()),
    "sse4": (["-march=x86-64-v2", "-mtune=generic"], ("ssse3", "sse4_1", "sse4_2", "popcnt")),
    "avx": (["-march=x86-64-v2", "-mtune=generic", "-mavx"], ("ssse3", "sse4_1", "sse4_2", "popcnt", "avx")),
    "avx2": (["-march=x86-64-v3", "-mtune=generic"], ("avx", "avx2", "fma", "bmi1", "bmi2", "f16c", "movbe")),
    "avx512": (
        ["-march=x86-64-v4", "-mtune=generic", "-mprefer-vector-width=512"],
        ("avx2", "fma", "avx512f", "avx512bw", "avx512cd", "avx512dq", "avx512vl"),
    ),  # fmt: skip
    "native": (["-march=native", "-mprefer-vector-width=512"], ()),
}
_ARM_LEVELS: dict[str, tuple[list[str], tuple[str, ...]]] = {
    "generic": (["-march=armv8-a"], ()),
    "native": (["-mcpu=native"], ()),
}

KINDS = {"rnn_tanh": 0, "rnn_relu": 1, "gru": 2, "lstm": 3, "gru_reset_before": 4}

_mode: str | None = None  # set by use_kernel; None: the environment variable, else "auto"
_extension: ModuleType | None = None
_failure: str | None = None  # why the kernel could not be loaded in this process


def _check_mode(mode: object, argument: str) -> str:
    if mode not in MODES:
        raise RnnkitError(f"{argument} must be one of {list(MODES)}, got {mode!r}")
    return str(mode)


class use_kernel:
    """Choose the recurrent layers' CPU path: ``"auto"`` (default), ``"compiled"`` or ``"torch"``.

    A plain call sets the mode from then on; used as a context manager it sets the mode for
    the block and puts the previous one back. Overrides ``RNNKIT_KERNEL``. See the module
    docstring for what each mode does.

    Example::

        with use_kernel("torch"):
            y = GRU(4)(torch.randn(2, 3, 5))   # PyTorch's fused operator
    """

    def __init__(self, mode: str) -> None:
        global _mode
        mode = _check_mode(mode, "use_kernel mode")
        self.previous = _mode
        _mode = mode

    def __enter__(self) -> "use_kernel":
        return self

    def __exit__(self, *exc: Any) -> None:
        global _mode
        _mode = self.previous


def kernel_mode() -> str:
    """The mode in force: ``use_kernel``'s, else ``RNNKIT_KERNEL``'s, else ``"auto"``."""
    if _mode is not None:
        return _mode
    return _check_mode(os.environ.get(ENVIRONMENT_VARIABLE, "auto") or "auto", ENVIRONMENT_VARIABLE)


def _notice(message: str) -> None:
    print(f"rnnkit: {message}", file=sys.stderr, flush=True)


def _cpu_key() -> str:
    """The CPU's model and instruction-set flags: a build with -march=native runs only there."""
    try:
        lines = Path("/proc/cpuinfo").read_text().splitlines()
        wanted = [
            line for line in lines if line.split(":")[0].strip() in ("vendor_id", "model name", "flags", "Features")
        ]
        seen: list[str] = []
        for line in wanted:
            if line not in seen:
                seen.append(line)
        return "\n".join(seen)
    except OSError:
        return f"{platform.machine()} {platform.processor()}"


def isa_level() -> str:
    """The instruction-set level the kernel is built for: ``RNNKIT_KERNEL_ISA``, default "native"."""
    level = os.environ.get(ISA_VARIABLE, "native") or "native"
    if level not in ISA_LEVELS:
        raise RnnkitError(f"{ISA_VARIABLE} must be one of {list(ISA_LEVELS)}, got {level!r}")
    return level


def _cpu_flags() -> set[str]:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.split(":")[0].strip() in ("flags", "Features"):
                return set(line.split(":", 1)[1].split())
    except OSError:
        pass
    return set()


def isa_flags(level: str | None = None) -> list[str]:
    """The compiler flags of an instruction-set level; an error where this CPU cannot run it."""
    level = isa_level() if level is None else level
    machine = platform.machine().lower()
    levels = _ARM_LEVELS if machine in ("aarch64", "arm64") else _X86_LEVELS
    if level not in levels:
        raise RuntimeError(f"{ISA_VARIABLE}={level} is not a level of this {machine} CPU (levels: {', '.join(levels)})")
    flags, needed = levels[level]
    cpu = _cpu_flags()
    missing = [flag for flag in needed if flag not in cpu]
    if missing:
        raise RuntimeError(f"{ISA_VARIABLE}={level}: this CPU lacks {', '.join(missing)}, so it cannot run that build")
    flags = list(flags)
    if level == "avx":  # FMA and F16C come with AVX on every CPU since 2013, but not on Sandy/Ivy Bridge
        flags += [f"-m{flag}" for flag in ("fma", "f16c") if flag in cpu]
    return flags


def compile_flags() -> list[str]:
    """All the compiler flags of the build in force (``CFLAGS`` and the level's)."""
    return CFLAGS + isa_flags()


def build_name() -> str:
    """The cached build's name: a hash of the source, flags, level, CPU and versions."""
    digest = hashlib.sha256()
    for part in (SOURCE.read_bytes(), " ".join(compile_flags() + LDFLAGS).encode(), _cpu_key().encode(),
                 torch.__version__.encode(), sys.version.encode()):  # fmt: skip
        digest.update(part)
        digest.update(b"\0")
    return f"rnnkit_kernel_{isa_level()}_{digest.hexdigest()[:16]}"


def build_folder() -> Path:
    """The folder of the build in force (in PyTorch's extensions folder); it need not exist yet."""
    from torch.utils import cpp_extension

    return Path(cpp_extension._get_build_directory(build_name(), verbose=False))


def _compiler() -> str | None:
    return shutil.which(os.environ.get("CXX", "c++"))


def _build() -> ModuleType:
    from torch.utils import cpp_extension

    if platform.system() != "Linux":
        raise RuntimeError(f"the kernel is built on Linux only, this is {platform.system()}")
    name = build_name()
    # ninja comes with rnnkit (pip package), next to this Python, which need not be on PATH
    path = os.environ.get("PATH", "")
    folders = [os.path.dirname(sys.executable)]
    try:
        import ninja

        folders.append(ninja.BIN_DIR)
    except (ImportError, AttributeError):
        pass
    os.environ["PATH"] = os.pathsep.join(folders + [path])
    try:
        folder = build_folder()
        library = folder / f"{name}.so"
        if library.exists() and not (folder / "lock").exists():
            # The name fixes source, flags, CPU and versions, so a finished build is the right one:
            # import it without ninja, which would rebuild whenever the source's path or mtime
            # differs (another checkout of the same source).
            start = time.perf_counter()
            spec = importlib.util.spec_from_file_location(name, library)
            module = importlib.util.module_from_spec(spec)
            spec.loader.exec_module(module)
            load_seconds["warm"] = time.perf_counter() - start
            return module
        if _compiler() is None:
            raise RuntimeError(f"no C++ compiler ({os.environ.get('CXX', 'c++')}) on PATH")
        cold = not library.exists()
        if cold:
            _notice(f"compiling the CPU kernel once (about half a minute), cached in {folder.parent}")
        start = time.perf_counter()
        # copies: cpp_extension.load appends its own flags to the lists it is given
        module = cpp_extension.load(
            name, [str(SOURCE)], extra_cflags=compile_flags(), extra_ldflags=list(LDFLAGS), verbose=False
        )
        load_seconds[("cold" if cold else "warm")] = time.perf_counter() - start
        return module
    finally:
        os.environ["PATH"] = path


load_seconds: dict[str, float] = {}  # how long the build ("cold") or the cached load ("warm") took


def extension() -> ModuleType | None:
    """The compiled kernel, built at the first call; None where it cannot be (after one notice).

    In ``"compiled"`` mode a kernel that cannot be built is an error instead.
    """
    global _extension, _failure
    if _extension is None and _failure is None:
        try:
            _extension = _build()
        except Exception as error:  # no compiler, a failed build: the PyTorch path runs
            lines = str(error).strip().splitlines() or [type(error).__name__]
            _failure = lines[-1] if len(lines) == 1 else f"{lines[0]} ..."
            if kernel_mode() != "compiled":
                _notice(f"the compiled CPU kernel is not available ({_failure}); using PyTorch's operators")
    if _extension is None and kernel_mode() == "compiled":
        raise RuntimeError(f"use_kernel('compiled'): the CPU kernel could not be built: {_failure}")
    return _extension


# --- auto: the faster path by measurement ------------------------------------------------------
AUTO_FILE = "auto.json"
_verdicts: dict[str, dict[str, Any]] | None = None


def _bucket(value: int) -> int:
    """value rounded to the nearest power of two (in log scale): 200 -> 256, 120 -> 128, 1 -> 1."""
    return 1 << max(0, round(math.log2(max(int(value), 1))))


MEASURE_STEPS = 256
"""``auto`` times both paths on at most this many of a call's steps."""


def auto_key(layer: str, cell: str, dtype: torch.dtype, backward: bool, batch: int, steps: int, units: int,
             features: int, alternative: str) -> str:  # fmt: skip
    """The shape class of a call, under which ``auto``'s verdict is cached.

    The steps count too (rounded, and capped at ``MEASURE_STEPS``): past a few tens of steps the
    batch's whole input projection leaves the caches, and a verdict measured on 32 steps was
    wrong at 60 (LSTM(128), batch 256, inference: the kernel 1.3x faster on 32 steps, 0.5x on 60).
    """
    phase = "training" if backward else "inference"
    return (f"{layer}/{cell} {str(dtype).replace('torch.', '')} {phase} batch~{_bucket(batch)} "
            f"steps~{_bucket(min(steps, MEASURE_STEPS))} units~{_bucket(units)} features~{_bucket(features)} "
            f"threads={torch.get_num_threads()} vs {alternative}")  # fmt: skip


def _verdicts_path() -> Path:
    return build_folder() / AUTO_FILE


def auto_verdicts() -> dict[str, dict[str, Any]]:
    """``auto``'s cached verdicts for the build in force: shape class -> path, times, speed-up."""
    global _verdicts
    if _verdicts is None:
        try:
            loaded = json.loads(_verdicts_path().read_text())
            _verdicts = loaded if isinstance(loaded, dict) else {}
        except (OSError, ValueError):
            _verdicts = {}
    return _verdicts


def _save_verdict(key: str, verdict: dict[str, Any]) -> None:
    """Add one verdict to the file (merged with what other processes wrote; atomic replace)."""
    path = _verdicts_path()
    try:
        try:
            on_disk = json.loads(path.read_text())
            on_disk = on_disk if isinstance(on_disk, dict) else {}
        except (OSError, ValueError):
            on_disk = {}
        on_disk[key] = verdict
        temporary = path.with_name(f"{AUTO_FILE}.{os.getpid()}.tmp")
        temporary.write_text(json.dumps(on_disk, indent=1, sort_keys=True))
        os.replace(temporary, path)
    except OSError:  # a read-only cache: the verdict holds for this process only
        pass


def choose_kernel(key: str, measure: Any) -> bool:
    """``auto``: whether the kernel runs calls of this shape class; ``measure()`` -> (kernel s, torch s).

    Measured once per class and build; the verdict is cached (``auto_verdicts``).
    """
    verdicts = auto_verdicts()
    if key not in verdicts:
        kernel_seconds, torch_seconds = measure()
        verdict = {
            "path": "kernel" if kernel_seconds <= torch_seconds else "torch",
            "kernel_ms": round(1e3 * kernel_seconds, 3),
            "torch_ms": round(1e3 * torch_seconds, 3),
            "speedup": round(torch_seconds / kernel_seconds, 3) if kernel_seconds > 0 else None,
            "measured": time.strftime("%Y-%m-%dT%H:%M:%S"),
        }
        verdicts[key] = verdict
        _save_verdict(key, verdict)
        if sys.stderr.isatty():
            _notice(f"auto: {key}: the {'compiled kernel' if verdict['path'] == 'kernel' else 'PyTorch path'} "
                    f"(kernel {verdict['speedup']}x PyTorch's speed; `rnnkit doctor` lists every verdict)")  # fmt: skip
    return verdicts[key]["path"] == "kernel"


def time_paths(
    call: Any, repeats: int = 3, close: float = 1.15, extra: int = 6, budget: float = 0.05, most: int = 40
) -> tuple[float, float]:
    """(kernel seconds, PyTorch seconds): the best of ``repeats`` alternating runs of ``call()``.

    A close call (the two bests within ``close`` of each other) gets up to ``extra`` more rounds:
    there a single descheduled run would otherwise decide (the grid benchmark caught verdicts
    10-15% the wrong way at such shapes). A close call of well under a millisecond goes on until
    ``budget`` seconds are spent (at most ``most`` rounds): at 0.3 ms a call, 9 rounds still left
    near-ties 6% the wrong way (LSTM(128), batch 1, inference, at the AVX level).
    """
    best = {"compiled": math.inf, "torch": math.inf}
    # no garbage collection while timing (as timeit): one collection inside a sub-millisecond
    # run would decide the verdict
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        _time_rounds(call, best, repeats, close, extra, budget, most)
    finally:
        if was_enabled:
            gc.enable()
    return best["compiled"], best["torch"]


def _time_rounds(
    call: Any, best: dict[str, float], repeats: int, close: float, extra: int, budget: float, most: int
) -> None:
    spent = 0.0
    for i in range(most + 1):
        if i > repeats and max(best.values()) > close * min(best.values()):
            break
        if i > repeats + extra and spent >= budget:
            break
        for mode in ("compiled", "torch") if i % 2 == 0 else ("torch", "compiled"):
            with use_kernel(mode):
                start = time.perf_counter()
                call()
                seconds = time.perf_counter() - start
            if i > 0:  # the first round warms up (allocations, the first pass through each path)
                best[mode] = min(best[mode], seconds)
                spent += seconds


def compiler_available() -> bool:
    """Whether a C++ compiler is on PATH (tests skip the kernel's own tests where none is)."""
    return platform.system() == "Linux" and _compiler() is not None


def applies(x: torch.Tensor, *weights: torch.Tensor) -> bool:
    """Whether the kernel may run on x with these weights (mode, device, dtype); builds it if needed."""
    if kernel_mode() == "torch":
        return False
    if x.device.type != "cpu" or x.dtype not in (torch.float32, torch.float64) or x.shape[0] == 0 or x.shape[1] == 0:
        return False
    if any(w.device.type != "cpu" or w.dtype != x.dtype for w in weights):
        return False
    if torch.is_autocast_enabled("cpu"):
        return False
    return extension() is not None


class _Sequence(torch.autograd.Function):
    """The kernel's forward and backward over the whole sequence, for autograd."""

    @staticmethod
    def forward(ctx, ext, kind, reverse, x, h0, c0, w_ih, w_hh, b_ih, b_hh, mask, real):
        H, h_last, c_last, saved = ext.forward(kind, reverse, x, h0, c0, w_ih, w_hh, b_ih, b_hh, mask, real)
        ctx.ext, ctx.kind, ctx.reverse = ext, kind, reverse
        ctx.save_for_backward(x, h0, c0, w_ih, w_hh, b_ih, b_hh, mask, real, H, saved)
        ctx.set_materialize_grads(False)
        if kind == KINDS["lstm"]:
            return H, h_last, c_last
        return H, h_last

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, dH, dh_last, dc_last=None):
        x, h0, c0, w_ih, w_hh, b_ih, b_hh, mask, real, H, saved = ctx.saved_tensors
        empty = x.new_empty(0)
        dx, dh0, dc0, dw_ih, dw_hh, db_ih, db_hh = ctx.ext.backward(
            ctx.kind, ctx.reverse, ctx.needs_input_grad[3], x, h0, c0, w_ih, w_hh, b_ih, b_hh, mask, real, H, saved,
            empty if dH is None else dH, empty if dh_last is None else dh_last, empty if dc_last is None else dc_last,
        )  # fmt: skip
        return (
            None, None, None, dx, dh0, dc0 if ctx.kind == KINDS["lstm"] else None, dw_ih, dw_hh,
            db_ih if b_ih.numel() else None, db_hh if b_hh.numel() else None, None, None,
        )  # fmt: skip


_EMPTY = torch.empty(0)


def run(
    kind: str,
    reverse: bool,
    x: torch.Tensor,
    state: tuple[torch.Tensor, ...] | None,
    w_ih: torch.Tensor,
    w_hh: torch.Tensor,
    b_ih: torch.Tensor | None,
    b_hh: torch.Tensor | None,
    recurrent_mask: torch.Tensor | None,
    mask: torch.Tensor | None = None,
) -> tuple[torch.Tensor, tuple[torch.Tensor, ...]]:
    """Run the kernel: x (batch, time, m), state (h0,) or (h0, c0) each (batch, n).

    Weights in PyTorch's layout and gate order; b_hh only for GRU (reset_after); recurrent_mask
    (batch, n) multiplies h_{t-1} where it enters the recurrent kernel. ``reverse`` walks x
    from its last step. ``mask`` (batch, time) bool in x's order, False at padded steps, where
    the state is carried over unchanged. Returns (the state after every step (batch, time, n)
    in processing order, final state). ``state`` None: zeros (for inference the kernel makes
    them itself).
    """
    ext = extension()
    empty = _EMPTY  # "none" to the extension, which reads only its size (a fresh one per call cost a microsecond)
    train = torch.is_grad_enabled() and any(t.requires_grad for t in (x, w_ih, w_hh, b_ih, b_hh) if t is not None)
    if state is None and train:
        state = tuple(x.new_zeros(x.shape[0], w_hh.shape[1]) for _ in range(2 if kind == "lstm" else 1))
    h0 = empty if state is None else state[0]
    c0 = state[1] if kind == "lstm" and state is not None else empty
    arguments = (
        KINDS[kind], bool(reverse), x if x.is_contiguous() else x.contiguous(), h0, c0, w_ih, w_hh,
        empty if b_ih is None else b_ih, empty if b_hh is None else b_hh,
        empty if recurrent_mask is None else recurrent_mask, empty if mask is None else mask,
    )  # fmt: skip
    if train or (torch.is_grad_enabled() and any(t.requires_grad for t in (h0, c0))):
        outputs = _Sequence.apply(ext, *arguments)
        return outputs[0], tuple(outputs[1:])
    # nothing to differentiate (inference): the extension directly, without autograd's bookkeeping
    # (a third of a batch-1 call's time: GRU(32) on (1, 120, 14) took 137 µs, the kernel 34 µs)
    # (the values a backward pass needs are kept for two steps, not all: at batch 256 they are
    # megabytes, and writing them to memory was a large part of an inference call)
    H, h_last, c_last, _ = ext.infer(*arguments)
    return H, ((h_last, c_last) if kind == "lstm" else (h_last,))
