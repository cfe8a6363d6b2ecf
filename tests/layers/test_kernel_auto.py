"""The kernel's instruction-set levels (RNNKIT_KERNEL_ISA) and ``auto``'s choice by measurement.

The parity tests of every level run from ``make test``, which runs tests/layers/test_kernel.py
once per level this CPU can run (``python -m rnnkit.doctor levels``).
"""

from __future__ import annotations

import json
import subprocess
import sys
import time

import pytest
import torch

from rnnkit.errors import RnnkitError
from rnnkit.layers import kernel, use_kernel
from rnnkit.layers.recurrent import GRU, LSTM, SimpleRNN

pytestmark = pytest.mark.skipif(
    not kernel.compiler_available(), reason="no C++ compiler on PATH: the compiled kernel cannot be built here"
)


def test_a_level_is_checked_and_named_in_the_build(monkeypatch):
    monkeypatch.setenv(kernel.ISA_VARIABLE, "avx9000")
    with pytest.raises(
        RnnkitError,
        match=r"RNNKIT_KERNEL_ISA must be one of \['generic', 'sse4', 'avx', 'avx2', 'avx512', 'native'\], got 'avx9000'",
    ):
        kernel.isa_level()
    names = {}
    for level in ("generic", "native"):
        monkeypatch.setenv(kernel.ISA_VARIABLE, level)
        names[level] = kernel.build_name()
        assert names[level].startswith(f"rnnkit_kernel_{level}_")
    assert names["generic"] != names["native"]
    monkeypatch.delenv(kernel.ISA_VARIABLE)
    assert kernel.isa_level() == "native" and kernel.build_name() == names["native"]


def test_a_level_the_cpu_cannot_run_is_refused_with_the_missing_flags(monkeypatch):
    if kernel.platform.machine().lower() not in ("x86_64", "amd64"):
        pytest.skip("the x86 levels")
    monkeypatch.setattr(kernel, "_cpu_flags", lambda: {"sse2", "ssse3", "sse4_1", "sse4_2", "popcnt", "avx"})
    assert "-mavx" in kernel.isa_flags("avx") and "-mfma" not in kernel.isa_flags("avx")  # Sandy Bridge: no FMA
    with pytest.raises(
        RuntimeError,
        match=r"^RNNKIT_KERNEL_ISA=avx2: this CPU lacks avx2, fma, bmi1, bmi2, f16c, movbe, "
        r"so it cannot run that build$",
    ):
        kernel.isa_flags("avx2")
    monkeypatch.setattr(kernel, "_cpu_flags", lambda: {"ssse3", "sse4_1", "sse4_2", "popcnt", "avx", "fma", "f16c"})
    assert kernel.isa_flags("avx")[-2:] == ["-mfma", "-mf16c"]


def test_levels_lists_what_this_cpu_runs():
    done = subprocess.run([sys.executable, "-m", "rnnkit.doctor", "levels"], capture_output=True, text=True, check=True)
    levels = done.stdout.split()
    assert levels[0] == "generic" and levels[-1] == "native"
    flags = kernel._cpu_flags()
    assert ("avx2" in levels) == ({"avx2", "fma", "bmi2"} <= flags)
    assert ("avx512" in levels) == ({"avx512f", "avx512bw", "avx512vl"} <= flags)


@pytest.fixture
def verdicts(monkeypatch, tmp_path):
    """auto's cache in a temporary folder, empty; the kernel's calls counted."""
    monkeypatch.setattr(kernel, "build_folder", lambda: tmp_path)
    monkeypatch.setattr(kernel, "_verdicts", None)
    calls = []
    original = kernel.run
    monkeypatch.setattr(kernel, "run", lambda *a: calls.append(a[0]) or original(*a))
    with use_kernel("auto"):
        yield tmp_path, calls


def test_auto_runs_the_path_measured_faster_and_caches_the_verdict(verdicts, monkeypatch):
    folder, calls = verdicts
    measured = []
    times = {"fast kernel": (1.0, 2.0), "slow kernel": (2.0, 1.0)}
    which = ["fast kernel"]
    monkeypatch.setattr(kernel, "time_paths", lambda call: measured.append(which[0]) or times[which[0]])
    layer = GRU(8, input_size=3)
    x = torch.randn(4, 5, 3)
    layer(x)
    layer(x)
    assert calls == ["gru", "gru"] and measured == ["fast kernel"]  # measured once for the class
    saved = json.loads((folder / kernel.AUTO_FILE).read_text())
    ((key, verdict),) = saved.items()
    assert key == "GRU/gru float32 training batch~4 steps~4 units~8 features~4 threads=1 vs fused operator"
    assert verdict["path"] == "kernel" and verdict["speedup"] == 2.0 and verdict["kernel_ms"] == 1000.0
    which[0] = "slow kernel"
    layer(torch.randn(64, 5, 3))  # another batch class: measured, and PyTorch's path runs
    with torch.no_grad():
        layer(x)  # inference is its own class
    assert measured == ["fast kernel", "slow kernel", "slow kernel"] and calls == ["gru", "gru"]
    assert sorted(v["path"] for v in json.loads((folder / kernel.AUTO_FILE).read_text()).values()) == [
        "kernel",
        "torch",
        "torch",
    ]
    # a later process reads the file: nothing is measured again
    monkeypatch.setattr(kernel, "_verdicts", None)
    layer(x)
    assert len(measured) == 3 and calls == ["gru", "gru", "gru"]


def test_the_steps_are_part_of_the_shape_class_and_measured_in_full(verdicts, monkeypatch):
    """A verdict on 32 steps does not decide 60: the input projection of a long batch leaves the caches."""
    folder, _ = verdicts
    timed_steps = []

    def time_paths(call):
        def record(module, args):
            if isinstance(module, GRU):
                timed_steps.append(args[0].shape[1])

        handle = torch.nn.modules.module.register_module_forward_pre_hook(record)
        try:
            with use_kernel("torch"):  # as the real time_paths does: no measuring inside a measurement
                call()
        finally:
            handle.remove()
        return (1.0, 2.0)

    monkeypatch.setattr(kernel, "time_paths", time_paths)
    layer = GRU(8, input_size=3)
    for steps in (32, 60, 300, 1000):
        layer(torch.randn(2, steps, 3))
    keys = json.loads((folder / kernel.AUTO_FILE).read_text())
    assert sorted(k.split(" steps~")[1].split()[0] for k in keys) == ["256", "32", "64"]  # 300 and 1000 share the cap
    # the copy is timed on the call's own steps, up to the cap
    assert timed_steps == [32, 60, 256] and kernel.MEASURE_STEPS == 256


def test_auto_obeys_an_explicit_mode_and_never_measures_then(verdicts, monkeypatch):
    _, calls = verdicts
    monkeypatch.setattr(kernel, "time_paths", lambda call: pytest.fail("measured"))
    layer = LSTM(4, input_size=2)
    with use_kernel("compiled"):
        layer(torch.randn(3, 4, 2))
    with use_kernel("torch"):
        layer(torch.randn(3, 4, 2))
    assert calls == ["lstm"]


@pytest.mark.parametrize("cls", [GRU, LSTM, SimpleRNN])
def test_measuring_changes_no_result_and_no_state(verdicts, cls):
    _, calls = verdicts
    torch.manual_seed(3)
    layer = cls(6, stateful=True, dropout=0.2, recurrent_dropout=0.3, input_size=3)
    x = torch.randn(5, 7, 3)
    layer(x)  # builds, and draws masks
    states = [s.clone() for s in layer._states]
    rng = torch.random.get_rng_state()
    kernel._verdicts.clear()
    layer.eval()
    y = layer(x)  # the first inference call: measured now
    assert torch.equal(torch.random.get_rng_state(), rng)
    assert len(kernel.auto_verdicts()) == 1
    # the carried state went on from the state before the measurement, as without one
    layer2 = cls(6, stateful=True, input_size=3)
    layer2.load_state_dict(layer.state_dict())
    layer2.eval()
    layer2._states = tuple(states)
    (verdict,) = kernel.auto_verdicts().values()
    with use_kernel("compiled" if verdict["path"] == "kernel" else "torch"):
        expected = layer2(x)
    torch.testing.assert_close(y, expected, rtol=0, atol=0)


def test_a_real_measurement_times_both_paths(verdicts):
    layer = GRU(16, input_size=4)
    layer(torch.randn(32, 20, 4)).sum().backward()
    (verdict,) = kernel.auto_verdicts().values()
    assert verdict["kernel_ms"] > 0 and verdict["torch_ms"] > 0
    assert verdict["speedup"] == pytest.approx(verdict["torch_ms"] / verdict["kernel_ms"], rel=1e-2)
    assert verdict["path"] == ("kernel" if verdict["kernel_ms"] <= verdict["torch_ms"] else "torch")


def test_doctor_prints_the_cpu_the_build_and_the_verdicts(verdicts):
    from rnnkit.doctor import report

    GRU(8, input_size=3)(torch.randn(2, 4, 3))
    text = report()
    assert "instruction sets:" in text and "kernel levels this CPU runs: generic" in text
    assert f"kernel build: level {kernel.isa_level()} (RNNKIT_KERNEL_ISA)" in text
    assert "auto's verdicts (1 shape classes" in text
    assert "GRU/gru float32 training batch~2 steps~4 units~8 features~4 threads=1 vs fused operator" in text
    assert f"torch {torch.__version__}: 1 threads" in text


def test_close_calls_get_more_rounds():
    """time_paths: a clear winner is decided in the first rounds, a close call gets the extra ones."""
    calls = []

    def sleeper(kernel_s, torch_s):
        def call():
            mode = kernel.kernel_mode()
            calls.append(mode)
            time.sleep(kernel_s if mode == "compiled" else torch_s)

        return call

    kernel_s, torch_s = kernel.time_paths(sleeper(0.001, 0.006), repeats=3, close=1.15, extra=6)
    assert len(calls) == 2 * (3 + 1)  # warm-up + 3 rounds, then stop: torch is 6x slower
    assert 0.001 <= kernel_s < torch_s
    calls.clear()
    kernel.time_paths(sleeper(0.004, 0.0041), repeats=3, close=1.15, extra=6)
    assert len(calls) == 2 * (3 + 6 + 1)  # 9 rounds of 8 ms: past the 50 ms budget
    assert calls.count("compiled") == calls.count("torch")


def test_a_close_call_of_microseconds_gets_rounds_until_the_budget_is_spent(monkeypatch):
    """A tie at 0.2 ms a call: rounds go on past ``extra`` until ``budget`` seconds of timed calls."""
    clock = [0.0]
    calls = []

    class FakeTime:  # a clock that only the calls move: no sleep jitter in the count
        @staticmethod
        def perf_counter():
            return clock[0]

    def call():
        calls.append(kernel.kernel_mode())
        clock[0] += 0.0002

    monkeypatch.setattr(kernel, "time", FakeTime)
    kernel.time_paths(call, repeats=3, close=1.15, extra=6, budget=0.01, most=40)
    rounds = len(calls) // 2 - 1  # less the warm-up round
    assert rounds == 25  # 25 rounds x 2 calls x 0.2 ms = the 10 ms budget
    calls.clear()
    kernel.time_paths(call, repeats=3, close=1.15, extra=6, budget=1.0, most=40)
    assert len(calls) // 2 - 1 == 40  # the budget not spent: at most `most` rounds


def test_the_setup_measures_the_demos_shape_classes(verdicts, monkeypatch):
    """`python -m rnnkit.doctor build` (make's set-up) runs the demo's models at its 16 shape classes, so
    that auto measures them there and not in the first `rnnkit demo`; a second run finds nothing new."""
    from rnnkit import doctor

    from rnnkit.training import threads as thread_choice

    timed = []
    monkeypatch.setattr(kernel, "time_paths", lambda call: timed.append(call) or (1e-3, 2e-3))
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    # the demo's own choice, one thread per idle CPU, fixed here: the test's own load must not move it
    monkeypatch.setattr(thread_choice, "chosen_threads", lambda: (2, "2 idle CPUs"))
    threads = torch.get_num_threads()
    try:
        assert doctor.measure_demo_classes() == 16 == len(timed)
        assert torch.get_num_threads() == 2
        assert doctor.measure_demo_classes() == 0 and len(timed) == 16
    finally:
        torch.set_num_threads(threads)
    keys = set(kernel.auto_verdicts())
    for layer, units in (("SimpleRNN/rnn_tanh", 16), ("LSTM/lstm", 16), ("GRU/gru", 16), ("GRU/gru", 64)):
        for phase, batch in (("training", 256), ("training", 64), ("inference", 256), ("inference", 1024)):
            assert (f"{layer} float32 {phase} batch~{batch} steps~128 units~{units} features~16 threads=2 "
                    "vs fused operator") in keys  # fmt: skip
    assert all(v["path"] == "kernel" for v in kernel.auto_verdicts().values())
