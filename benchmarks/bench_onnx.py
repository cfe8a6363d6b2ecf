"""ONNX export: the parity table (model kind × max |onnxruntime − rnnkit|) and inference speed.

Parity: each kind with Keras's initialisation and every bias random (normal(0, 0.5); zero
biases would hide a wrong bias or gate order), on random windows (batch 7, 120 steps, 14
features) and, when the hourly Jena record is found (``RNNKIT_DATA_DIR``), on 256 scaled real
120-hour windows. (With *every* weight normal(0, 0.5) a SimpleRNN(32) is chaotic over 120 steps:
float32 rounding alone then moves its output by ~1e-2, whichever runtime; the tests hold the
fully random case to 1e-5 over 30 steps.)

Speed: inference (no gradient) of GRU(32) + Dense(1) and LSTM(32) + Dense(1) on
(batch, 120, 14) windows, batch 1 and 256, one thread (``torch.set_num_threads(1)`` and
onnxruntime's ``intra_op_num_threads = 1``). rnnkit and onnxruntime are timed alternately within
each repeat; printed: the median time per call of each and the ratio rnnkit / onnxruntime
(> 1: onnxruntime is faster), with its min–max over the repeats.

    python benchmarks/bench_onnx.py [--repeats 7]
"""

from __future__ import annotations

import argparse
import os
import statistics
import time
from pathlib import Path

import numpy as np
import onnxruntime as ort
import torch

import rnnkit as rk
from rnnkit import baselines as bl
from rnnkit.export import to_model_proto, torch_kernel
from rnnkit.layers import GRU, LSTM, Bidirectional, Dense, SimpleRNN

T, F = 120, 14


def kinds(target: int) -> dict[str, torch.nn.Module]:
    def seq(*layers):
        return rk.Sequential(*layers, input_shape=(T, F))

    return {
        "SimpleRNN(32)": seq(SimpleRNN(32), Dense(1)),
        "LSTM(32)": seq(LSTM(32), Dense(1)),
        "GRU(32) reset_after=True": seq(GRU(32), Dense(1)),
        "GRU(32) reset_after=False": seq(GRU(32, reset_after=False), Dense(1)),
        "Bidirectional(LSTM(16))": seq(Bidirectional(LSTM(16)), Dense(1)),
        "stacked GRU(32, seq) + LSTM(32)": seq(GRU(32, return_sequences=True), LSTM(32), Dense(1)),
        "ResidualTarget(GRU(32))": bl.ResidualTarget(seq(GRU(32), Dense(1)), target),
    }


def session(model: torch.nn.Module) -> ort.InferenceSession:
    options = ort.SessionOptions()
    options.intra_op_num_threads = options.inter_op_num_threads = 1
    return ort.InferenceSession(
        to_model_proto(model, F).SerializeToString(), options, providers=["CPUExecutionProvider"]
    )


def difference(model: torch.nn.Module, s: ort.InferenceSession, x: torch.Tensor) -> float:
    with torch.no_grad(), torch_kernel():
        want = model(x).numpy()
    return float(np.abs(s.run(None, {"x": x.numpy()})[0] - want).max())


def real_windows() -> tuple[torch.Tensor, int] | None:
    folder = Path(os.environ.get("RNNKIT_DATA_DIR", Path(__file__).resolve().parents[2] / "shared" / "data"))
    path = folder / "jena_climate_2009_2016_hourly.csv.gz"
    if not path.is_file():
        return None
    frame = rk.datasets.jena_climate([str(path)]).iloc[:3000]
    scaled = rk.data.Standardizer().fit(frame).transform(frame)
    w = rk.data.make_windows(scaled, T, shift=7, horizon=24, targets="T (degC)")
    return w.x[:256].float(), list(frame.columns).index("T (degC)")


def timed(fn, calls: int) -> float:
    """CPU seconds per call of this process (one thread: the time other processes hold the core is left out)."""
    started = time.process_time()
    for _ in range(calls):
        fn()
    return (time.process_time() - started) / calls


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=7)
    args = parser.parse_args()
    torch.set_num_threads(1)
    torch.manual_seed(0)
    real = real_windows()
    target = real[1] if real else 1
    print("parity: max |onnxruntime - rnnkit| (Keras initialisation, biases normal(0, 0.5))")
    print(f"{'model':<34} {'random (7, 120, 14)':>20} {'real (256, 120, 14)':>20}")
    for name, model in kinds(target).items():
        with torch.no_grad():
            for pname, p in model.named_parameters():
                if "bias" in pname:
                    p.normal_(0.0, 0.5)
        model.eval()
        s = session(model)
        random_diff = difference(model, s, torch.randn(7, T, F))
        real_diff = "-" if real is None else f"{difference(model, s, real[0]):.2e}"
        print(f"{name:<34} {random_diff:>20.2e} {real_diff:>20}")

    print("\ninference, one thread: median CPU time per call; ratio = rnnkit / onnxruntime (min-max over repeats)")
    print("rnnkit 'auto': its default kernel (compiled where built); 'torch': PyTorch's own kernels")
    from contextlib import nullcontext

    for name in ("GRU(32) reset_after=True", "LSTM(32)"):
        model = kinds(target)[name].eval()
        s = session(model)
        for batch in (1, 256):
            x = torch.randn(batch, T, F)
            feed = {"x": x.numpy()}
            calls = 200 if batch == 1 else 5
            modes = {"auto": nullcontext, "torch": torch_kernel}

            def run_rnnkit(mode, model=model, x=x, modes=modes):
                def call():
                    with torch.no_grad(), modes[mode]():
                        model(x)

                return call

            def run_ort(s=s, feed=feed):
                s.run(None, feed)

            fns = {"auto": run_rnnkit("auto"), "torch": run_rnnkit("torch")}
            for fn in (*fns.values(), run_ort):
                fn()  # warm-up (and any kernel build)
            times = {k: [] for k in (*fns, "ort")}
            for _ in range(args.repeats):
                for k, fn in fns.items():
                    times[k].append(timed(fn, calls))
                times["ort"].append(timed(run_ort, calls))
            t_ort = statistics.median(times["ort"])
            parts = []
            for k in fns:
                ratios = [a / b for a, b in zip(times[k], times["ort"])]
                parts.append(
                    f"rnnkit {k} {statistics.median(times[k]) * 1e3:7.3f} ms, ratio "
                    f"{statistics.median(ratios):5.2f} ({min(ratios):.2f}-{max(ratios):.2f})"
                )
            print(f"{name:<26} batch {batch:>3}: onnxruntime {t_ort * 1e3:7.3f} ms; " + "; ".join(parts))


if __name__ == "__main__":
    main()
