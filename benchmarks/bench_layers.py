"""Training-step throughput of rnnkit's recurrent layers against hand-written PyTorch models.

Each case runs forward + backward + Adam step with an MSE loss on a linear head, on input
(256, 120, 14) float32, one thread (DESIGN §7). The rnnkit model and its reference are
measured alternately within every repeat, so slow phases of a shared machine hit both.
Printed: median examples/s, the ratio to the reference, and the min–max spread.

    python benchmarks/bench_layers.py [--repeats 5] [--steps 5] [--quick] [--flush-denormal]

References: ``nn.GRU``/``nn.LSTM``/``nn.RNN`` (batch_first) + ``nn.Linear`` for the layers
without dropout; rnnkit's GRU without dropout for the two recurrent-dropout modes.
"""

from __future__ import annotations

import argparse
import statistics
import time
import warnings
from typing import Callable

import torch
from torch import nn

from rnnkit.layers.recurrent import GRU, LSTM, SimpleRNN

BATCH, TIME, FEATURES = 256, 120, 14


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


def throughput(step: Callable[[], None], steps: int) -> float:
    """Examples per second over ``steps`` training steps (after one warm-up step)."""
    step()
    start = time.perf_counter()
    for _ in range(steps):
        step()
    return steps * BATCH / (time.perf_counter() - start)


def compare(name: str, candidate: nn.Module, reference: nn.Module, ref_name: str, x, y, repeats: int, steps: int) -> float:
    cand_step, ref_step = make_step(candidate, x, y), make_step(reference, x, y)
    cand, ref = [], []
    for _ in range(repeats):
        cand.append(throughput(cand_step, steps))
        ref.append(throughput(ref_step, steps))
    ratios = [c / r for c, r in zip(cand, ref)]
    c_med, r_med = statistics.median(cand), statistics.median(ref)
    print(
        f"{name:<34} {c_med:>9,.0f} ex/s  [{min(cand):,.0f}–{max(cand):,.0f}]   "
        f"{ref_name:<22} {r_med:>9,.0f} ex/s  [{min(ref):,.0f}–{max(ref):,.0f}]   "
        f"ratio {statistics.median(ratios):.2f} [{min(ratios):.2f}–{max(ratios):.2f}]"
    )
    return statistics.median(ratios)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5, help="measurements per model (default 5)")
    parser.add_argument("--steps", type=int, default=5, help="training steps per measurement (default 5)")
    parser.add_argument("--quick", action="store_true", help="3 repeats of 2 steps")
    parser.add_argument(
        "--flush-denormal",
        action="store_true",
        help="flush denormal floats to zero: with dropout, vanishing gradients turn denormal and x86 slows down",
    )
    args = parser.parse_args()
    if args.flush_denormal:
        torch.set_flush_denormal(True)
    repeats, steps = (3, 2) if args.quick else (args.repeats, args.steps)

    torch.set_num_threads(1)
    torch.manual_seed(0)
    x = torch.randn(BATCH, TIME, FEATURES)
    y = torch.randn(BATCH, 1)
    print(
        f"input {tuple(x.shape)} float32, 1 thread, torch {torch.__version__}, {repeats} repeats × {steps} steps, "
        f"flush denormals {'on' if args.flush_denormal else 'off'}"
    )

    cases = [
        ("rnnkit GRU(32)", RnnkitModel(GRU(32, input_size=FEATURES), 32),
         TorchReference(nn.GRU(FEATURES, 32, batch_first=True), 32), "nn.GRU(32)"),
        ("rnnkit LSTM(32)", RnnkitModel(LSTM(32, input_size=FEATURES), 32),
         TorchReference(nn.LSTM(FEATURES, 32, batch_first=True), 32), "nn.LSTM(32)"),
        ("rnnkit SimpleRNN(16)", RnnkitModel(SimpleRNN(16, input_size=FEATURES), 16),
         TorchReference(nn.RNN(FEATURES, 16, batch_first=True), 16), "nn.RNN(16)"),
    ]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for mode in ("batch", "sample"):
            cases.append((
                f"rnnkit GRU(32) rec.dropout {mode}",
                RnnkitModel(GRU(32, recurrent_dropout=0.25, recurrent_dropout_mode=mode, input_size=FEATURES), 32),
                RnnkitModel(GRU(32, input_size=FEATURES), 32),
                "rnnkit GRU(32)",
            ))
    for name, candidate, reference, ref_name in cases:
        compare(name, candidate, reference, ref_name, x, y, repeats, steps)


if __name__ == "__main__":
    main()
