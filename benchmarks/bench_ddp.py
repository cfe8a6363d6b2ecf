"""Data-parallel throughput: one process against N gloo ranks, and what the gradient all-reduce costs per step.

    python benchmarks/bench_ddp.py                                   # 1 process
    torchrun --standalone --nproc-per-node 2 benchmarks/bench_ddp.py # 2 ranks (prints on rank 0)

The step is the trainer's: a GRU(32) + Dense(1) on windows of (120, 14), global batch 256 split
across the ranks (each rank 256 / N rows), MAE loss, Adam; one thread per rank; rnnkit's compiled
kernel where it applies. Reported per step, as medians over the timed steps:

- ``step``: the whole DDP step (forward, backward with the all-reduce, optimizer);
- ``local``: the same step under ``DistributedDataParallel.no_sync()`` (no all-reduce);
- ``all-reduce``: ``step - local``, and a bare ``dist.all_reduce`` of the gradient's size.

Examples per second = 256 / step. With N ranks on N machines the step is about
local(256 / N) + all-reduce(N); the bare all-reduce timed here is the 2-rank cost on one host.
"""

from __future__ import annotations

import argparse
import os
import statistics
import time

import torch
import torch.distributed as dist

import rnnkit as rk
from rnnkit.layers import kernel
from rnnkit.training.distributed import finish, init_from_env, parallel, piece, world


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--steps", type=int, default=40)
    parser.add_argument("--batch", type=int, default=256)
    parser.add_argument("--units", type=int, default=32)
    a = parser.parse_args()
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    torch.set_num_threads(1)
    init_from_env()
    rank, ranks = world()
    torch.manual_seed(0)
    model = rk.Sequential(rk.layers.GRU(a.units), rk.layers.Dense(1), input_shape=(120, 14))
    net = model
    if ranks > 1:
        net = parallel(model)
    opt = torch.optim.Adam(model.parameters(), lr=1e-3, eps=1e-7)
    g = torch.Generator().manual_seed(1)
    x_all, y_all = torch.randn(a.batch, 120, 14, generator=g), torch.randn(a.batch, 1, generator=g)
    cut = piece(a.batch, rank, ranks)
    x, y = x_all[cut], y_all[cut]

    def step(sync: bool) -> float:
        t0 = time.perf_counter()
        opt.zero_grad(set_to_none=True)
        if ranks > 1 and not sync:
            with net.no_sync():
                loss = (net(x) - y).abs().mean() * (x.shape[0] * ranks / a.batch)
                loss.backward()
        else:
            loss = (net(x) - y).abs().mean() * (x.shape[0] * ranks / a.batch)
            loss.backward()
        opt.step()
        return time.perf_counter() - t0

    for _ in range(5):
        step(True)
    full = [step(True) for _ in range(a.steps)]
    local = [step(False) for _ in range(a.steps)] if ranks > 1 else full
    flat = torch.zeros(sum(p.numel() for p in model.parameters()))
    bare = []
    if ranks > 1:
        for _ in range(a.steps + 5):
            t0 = time.perf_counter()
            dist.all_reduce(flat)
            bare.append(time.perf_counter() - t0)
        bare = bare[5:]
    if rank == 0:
        med = statistics.median
        print(
            f"ranks {ranks}, global batch {a.batch} ({x.shape[0]} per rank), GRU({a.units}) on (120, 14), "
            f"{flat.numel():,} parameters, kernel {kernel.kernel_mode()} (compiled: {kernel.extension() is not None})"
        )
        print(
            f"step {med(full) * 1e3:.1f} ms -> {a.batch / med(full):,.0f} examples/s; local (no all-reduce) "
            f"{med(local) * 1e3:.1f} ms"
        )
        if ranks > 1:
            print(
                f"all-reduce in the step: {(med(full) - med(local)) * 1e3:.2f} ms; bare dist.all_reduce of "
                f"{flat.numel():,} floats: {med(bare) * 1e3:.2f} ms"
            )
    net = None  # DDP's reducer goes before its process group does (else gloo may abort at exit)
    finish()


if __name__ == "__main__":
    main()
