"""Data-parallel training (rnnkit.training.distributed): 2 gloo ranks under torchrun give the one-process run."""

import os
import subprocess
import sys
import textwrap

import pytest
import torch

from rnnkit.io import read_safetensors
from rnnkit.training.distributed import piece

# One script for both runs: under torchrun (2 ranks) and as a plain process (1 rank). Each rank writes its
# final weights and history; uneven pieces on purpose: 251 training windows, batch 10, so the last batch has
# 1 row and rank 1 an empty piece.
SCRIPT = textwrap.dedent("""
    import json, os, sys
    import torch
    import rnnkit as rk
    from rnnkit.data import make_windows, stream_batches
    from rnnkit.io import tensors_to_bytes
    from rnnkit.training import Trainer
    from rnnkit.training.distributed import finish, init_from_env, world

    init_from_env()
    rank, ranks = world()
    out, stateful = sys.argv[1], sys.argv[2] == "stateful"
    g = torch.Generator().manual_seed(0)
    series = torch.cumsum(torch.randn(259, 3, generator=g), 0) * 0.1
    torch.manual_seed(1)
    layer = dict(return_sequences=False)
    if stateful:
        model = rk.Sequential(rk.layers.GRU(6, stateful=True), rk.layers.Dense(1), input_shape=(5, 3))
        train = stream_batches(series[:200].numpy(), 4, 5, targets=0)
        val = stream_batches(series[200:].numpy(), 4, 5, targets=0)
    else:
        model = rk.Sequential(rk.layers.GRU(6), rk.layers.Dense(1), input_shape=(8, 3))
        w = make_windows(series, 8, targets=0)
        train, val = w, make_windows(series[:60] * 0.5, 8, targets=0)
    from rnnkit.training.hooks import Hook

    class Rows(Hook):  # the training rows this rank computed on
        seen = 0

        def wrap_batches(self, batches, loop):
            for x, y in batches:
                Rows.seen += x.shape[0]
                yield x, y

    trainer = Trainer(epochs=2, batch_size=10 if not stateful else 4, loss="mse", learning_rate=0.01,
                      progress=False, stateful=stateful, shuffle=None, hooks=[Rows()])
    history = trainer.fit(model, train, val)
    history.epochs.append({"rows_seen": Rows.seen})
    open(os.path.join(out, f"rank{rank}_of{ranks}.safetensors"), "wb").write(tensors_to_bytes({k: v.contiguous() for k, v in model.state_dict().items()}))
    with open(os.path.join(out, f"rank{rank}_of{ranks}.json"), "w") as f:
        json.dump(history.epochs, f)
    finish()
""")


def _run(tmp_path, mode: str, ranks: int) -> None:
    script = tmp_path / "fit.py"
    script.write_text(SCRIPT)
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    if ranks == 1:
        cmd = [sys.executable, str(script), str(tmp_path), mode]
    else:
        cmd = [
            sys.executable,
            "-m",
            "torch.distributed.run",
            "--standalone",
            f"--nproc-per-node={ranks}",
            str(script),
            str(tmp_path),
            mode,
        ]
    done = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-3000:]


def _weights(tmp_path, rank: int, ranks: int) -> dict[str, torch.Tensor]:
    return read_safetensors(tmp_path / f"rank{rank}_of{ranks}.safetensors")[0]


@pytest.mark.parametrize("mode", ["windows", "stateful"])
def test_two_gloo_ranks_train_as_one_process(tmp_path, mode):
    import json

    _run(tmp_path, mode, 1)
    _run(tmp_path, mode, 2)
    one, a, b = _weights(tmp_path, 0, 1), _weights(tmp_path, 0, 2), _weights(tmp_path, 1, 2)
    assert one.keys() == a.keys()
    for k in one:
        assert torch.equal(a[k], b[k]), k  # every rank holds the same weights, bit for bit
        assert (one[k] - a[k]).abs().max() <= 1e-6, (k, (one[k] - a[k]).abs().max())
    h1 = json.loads((tmp_path / "rank0_of1.json").read_text())
    h2 = json.loads((tmp_path / "rank0_of2.json").read_text())
    h2b = json.loads((tmp_path / "rank1_of2.json").read_text())
    seen = [h[-1].pop("rows_seen") for h in (h1, h2, h2b)]
    h1, h2, h2b = h1[:-1], h2[:-1], h2b[:-1]
    assert seen[1] + seen[2] == seen[0] and abs(seen[1] - seen[2]) <= 2 * 2  # each rank half of every batch
    for e1, e2, e2b in zip(h1, h2, h2b, strict=True):
        assert e2["val_loss"] == e2b["val_loss"] and e2["loss"] == e2b["loss"]  # reduced: the same on every rank
        assert e1["loss"] == pytest.approx(e2["loss"], rel=1e-5)
        assert e1["val_loss"] == pytest.approx(e2["val_loss"], rel=1e-5)


def test_piece_is_contiguous_and_covers_the_batch():
    for n in range(0, 12):
        for ranks in (1, 2, 3, 4):
            pieces = [piece(n, r, ranks) for r in range(ranks)]
            rows = [i for p in pieces for i in range(n)[p]]
            assert rows == list(range(n))
            sizes = [p.stop - p.start for p in pieces]
            assert max(sizes) - min(sizes) <= 1
