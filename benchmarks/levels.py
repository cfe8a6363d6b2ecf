"""Run a benchmark as if on a CPU of an older instruction-set level (``--isa LEVEL``).

rnnkit's kernel is built for the level (``RNNKIT_KERNEL_ISA``), and PyTorch's references are
held to the same level: ATen's kernels (``ATEN_CPU_CAPABILITY``), MKL's BLAS
(``MKL_ENABLE_INSTRUCTIONS``) and oneDNN, which runs ``nn.LSTM`` (``ONEDNN_MAX_CPU_ISA``). A
newer CPU runs an older level's code, so every level up to this CPU's can be measured on it;
what cannot be emulated is the older CPU's own speed (its clock, caches and ports), which is
why the printed numbers are ratios against references measured in the same run, at the same
level. These variables are read when torch loads, so the benchmark starts again in a fresh
process with them set (``reexec_at_level``).

Note: MKL 2024 no longer has an AVX-only path: with ``MKL_ENABLE_INSTRUCTIONS=AVX`` it runs
its SSE4.2 code (it says so in one warning), so at the avx level PyTorch's matmuls are what
such a CPU gets from this torch build.
"""

from __future__ import annotations

import os
import sys

# level: (ATEN_CPU_CAPABILITY, MKL_ENABLE_INSTRUCTIONS, ONEDNN_MAX_CPU_ISA)
EMULATION = {
    "generic": ("default", "SSE4_2", "SSE41"),
    "sse4": ("default", "SSE4_2", "SSE41"),
    "avx": ("default", "AVX", "AVX"),
    "avx2": ("avx2", "AVX2", "AVX2"),
    "avx512": ("avx512", "AVX512", "AVX512_CORE"),
}
MARK = "RNNKIT_BENCH_LEVEL"


def level_environment(level: str) -> dict[str, str]:
    """The environment of a run at ``level`` (native: this CPU, nothing held back)."""
    env = {**os.environ, "RNNKIT_KERNEL_ISA": level, MARK: level}
    if level in EMULATION:
        aten, mkl, onednn = EMULATION[level]
        env.update(ATEN_CPU_CAPABILITY=aten, MKL_ENABLE_INSTRUCTIONS=mkl, ONEDNN_MAX_CPU_ISA=onednn)
    return env


def reexec_at_level(level: str | None) -> None:
    """Start this script again with ``level``'s environment, unless it already runs at it."""
    if level is None or os.environ.get(MARK) == level:
        return
    if "torch" in sys.modules and os.environ.get(MARK) is not None:
        raise SystemExit(f"already running at level {os.environ[MARK]}, asked for {level}")
    os.execve(sys.executable, [sys.executable, *sys.argv], level_environment(level))


def runnable_levels() -> list[str]:
    """The levels this CPU runs (rnnkit.doctor's list)."""
    from rnnkit.doctor import runnable_levels as levels

    return levels()
