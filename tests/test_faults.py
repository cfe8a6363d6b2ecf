"""Faults (issue 13): kill -9 at random moments of a training run, then --resume; a full disk mid-write.

The kill test runs one worker process that has imported rnnkit; for each trial it forks a child
that trains a tiny two-model run, and the test kills the child with SIGKILL after a seeded random
delay (anywhere from reading the data to writing the report). After every kill each file in the
run folder must read back whole; then the run is resumed (``resume=True``; started afresh when the
kill came before the run's identity was written) and every model's weights must equal, bit for
bit, those of an uninterrupted run, and its metrics too (but the seconds).
"""

from __future__ import annotations

import errno
import json
import os
import resource
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from helpers import tiny_config, write_jena_csv
from rnnkit.io import read_safetensors

TRIALS = 20
SEED = 13

WORKER = textwrap.dedent("""
    import json, os, sys
    import torch
    from rnnkit.tasks import parse_config
    from rnnkit.experiment import run_experiment

    config = parse_config(json.loads(sys.argv[1]))
    torch.set_num_threads(1)  # one thread: no OpenMP pool in this process, so forking it is safe
    # A first run here imports and loads everything (optimizers, kernels, matplotlib), so that the
    # forked children start warm and the reference run's time is that of every trial.
    run_experiment(config, sys.argv[2], progress=False, log=lambda s: None)
    print("warm", flush=True)
    for line in sys.stdin:
        folder, resume = line.split()
        pid = os.fork()
        if pid == 0:
            torch.set_num_threads(1)
            sys.stdout = open(os.devnull, "w")
            try:
                run_experiment(config, folder, resume=resume == "1", progress=False, log=lambda s: None)
                code = 0
            except BaseException as e:
                sys.stderr.write(f"{type(e).__name__}: {e}\\n")
                code = 3
            os._exit(code)
        print(pid, flush=True)
        _, status = os.waitpid(pid, 0)
        print(status, flush=True)
""")


class Worker:
    def __init__(self, config: dict, scratch: Path) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-c", WORKER, json.dumps(config), str(scratch)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        assert self.proc.stdout.readline().strip() == "warm"

    def run(self, folder: Path, resume: bool = False, kill_after: float | None = None) -> tuple[int, float]:
        """Run (or resume) into ``folder``; with ``kill_after`` SIGKILL the child then. (wait status, seconds)"""
        self.proc.stdin.write(f"{folder} {int(resume)}\n")
        self.proc.stdin.flush()
        start = time.perf_counter()
        pid = int(self.proc.stdout.readline())
        if kill_after is not None:
            time.sleep(kill_after)
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        status = int(self.proc.stdout.readline())
        return status, time.perf_counter() - start

    def close(self) -> None:
        self.proc.stdin.close()
        self.proc.wait(timeout=30)
        self.proc.stdout.close()


def readable(folder: Path) -> list[str]:
    """Read back every file of a run folder; return the torn temp files left by a killed write."""
    torn = []
    for path in sorted(p for p in folder.rglob("*") if p.is_file()):
        if path.name.endswith(".tmp") and path.name.startswith("."):
            torn.append(path.name)  # an atomic write's temp file: the real file is untouched
        elif path.name == ".lock":
            continue
        elif path.suffix == ".json":
            json.loads(path.read_text(encoding="utf-8"))
        elif path.suffix == ".safetensors":
            read_safetensors(path)
        elif path.suffix == ".csv":
            pd.read_csv(path)
        elif path.suffix == ".png":
            data = path.read_bytes()
            assert data.startswith(b"\x89PNG") and data.endswith(b"IEND\xaeB`\x82"), path
        elif path.suffix == ".html":
            assert path.read_text(encoding="utf-8").rstrip().endswith("</html>"), path
        else:
            raise AssertionError(f"unexpected file {path}")
    return torn


def weights(folder: Path) -> dict[str, dict[str, torch.Tensor]]:
    return {p.parent.name: read_safetensors(p)[0] for p in sorted((folder / "models").glob("*/model.safetensors"))}


def metrics_without_seconds(folder: Path) -> dict:
    metrics = json.loads((folder / "metrics.json").read_text())
    for result in metrics["models"].values():
        result.pop("train_seconds", None)
    return metrics


@pytest.fixture(scope="module")
def config(tmp_path_factory):
    csv = write_jena_csv(tmp_path_factory.mktemp("data") / "hourly.csv", days=8)
    config = tiny_config(
        csv,
        training={"epochs": 4, "batch_size": 32, "seed": 0},
        models=[
            {"name": "GRU(4)", "layers": [{"type": "GRU", "units": 4}, {"type": "Dense", "units": 1}]},
            {"name": "LSTM(3)", "layers": [{"type": "LSTM", "units": 3}, {"type": "Dense", "units": 1}]},
        ],
    )
    return {**config, "output": {"report": False}}


@pytest.mark.skipif(not hasattr(os, "fork"), reason="the kill -9 harness forks (POSIX only)")
def test_kill_9_at_random_moments_then_resume_gives_the_uninterrupted_weights(tmp_path, config):
    worker = Worker(config, tmp_path / "warm-up")
    try:
        status, seconds = worker.run(tmp_path / "reference")
        assert status == 0
        reference, expected = weights(tmp_path / "reference"), metrics_without_seconds(tmp_path / "reference")
        assert sorted(reference) == ["gru_4", "lstm_3"]
        rng = np.random.default_rng(SEED)
        outcome = {
            "kills": 0,
            "finished before the kill (not counted)": 0,
            "restarted (killed before run.json)": 0,
            "torn temp files swept": 0,
        }
        for attempt in range(2 * TRIALS):
            if outcome["kills"] == TRIALS:
                break
            delay = float(rng.uniform(0.0, 0.85)) * seconds  # the reference (the first fork) runs a little slower
            folder = tmp_path / f"trial{attempt}"
            status, _ = worker.run(folder, kill_after=delay)
            if status == 0:  # the run ended before the kill came: no fault injected
                outcome["finished before the kill (not counted)"] += 1
                continue
            assert os.WIFSIGNALED(status) and os.WTERMSIG(status) == signal.SIGKILL, status
            outcome["kills"] += 1
            outcome["torn temp files swept"] += len(readable(folder) if folder.is_dir() else [])
            resume = (folder / "run.json").is_file()
            if not resume:
                outcome["restarted (killed before run.json)"] += 1
            status, _ = worker.run(folder, resume=resume)
            assert status == 0, f"attempt {attempt}: resume after a kill at {delay:.3f} s failed"
            assert readable(folder) == []
            got = weights(folder)
            assert sorted(got) == sorted(reference)
            for model, tensors in reference.items():
                for name, tensor in tensors.items():
                    assert torch.equal(got[model][name], tensor), (
                        f"attempt {attempt} (kill at {delay:.3f} s): {model}.{name}"
                    )
            assert metrics_without_seconds(folder) == expected
        print(f"kill -9: {outcome}; uninterrupted run {seconds:.2f} s")
        assert outcome["kills"] == TRIALS, outcome
    finally:
        worker.close()


# --- a full disk mid-write ------------------------------------------------------------------------
# The file-size limit (RLIMIT_FSIZE) is set in a child process only: in pytest's own process it
# would also cap pytest's output, which CI writes to a log file far larger than the limit.
def run_with_file_size_limit(size: int, args: list[str], cwd: Path) -> subprocess.CompletedProcess:
    """Run `python ARGS` with files capped at SIZE bytes (SIGXFSZ ignored: a write fails with EFBIG)."""

    def limit() -> None:
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, (size, resource.getrlimit(resource.RLIMIT_FSIZE)[1]))

    return subprocess.run(
        [sys.executable, *args],
        cwd=cwd,
        preexec_fn=limit,
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, "RNNKIT_KERNEL": "torch"},
    )


FULL_DISK_CHECKPOINT = textwrap.dedent("""
    import sys, torch
    from rnnkit.training import Trainer
    torch.manual_seed(0)
    x, y = torch.randn(64, 6, 2), torch.randn(64, 1)
    model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(12, 1))
    try:
        Trainer(epochs=3, checkpoint_dir=sys.argv[1], progress=False).fit(model, (x, y), resume=True)
    except OSError as e:
        print(e.errno)
""")


def test_a_full_disk_while_checkpointing_leaves_the_previous_checkpoint_whole(tmp_path):
    from rnnkit.training import Trainer
    from rnnkit.training.checkpoint import CHECKPOINT_NAME, load_checkpoint

    torch.manual_seed(0)
    x, y = torch.randn(64, 6, 2), torch.randn(64, 1)
    model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(12, 1))
    folder = tmp_path / "ckpt"
    Trainer(epochs=1, checkpoint_dir=folder, progress=False).fit(model, (x, y))
    before = (folder / CHECKPOINT_NAME).read_bytes()
    # every later checkpoint is about as big: it cannot be written
    done = run_with_file_size_limit(len(before) // 2, ["-c", FULL_DISK_CHECKPOINT, str(folder)], tmp_path)
    assert done.returncode == 0 and done.stdout.strip() == str(errno.EFBIG), done.stderr
    assert (folder / CHECKPOINT_NAME).read_bytes() == before  # the previous checkpoint, whole
    assert sorted(p.name for p in folder.iterdir()) == [CHECKPOINT_NAME]  # no torn temp file left
    assert load_checkpoint(folder)[1]["epoch"] == 1


def test_a_full_disk_at_the_cli_is_one_line_exit_2_and_the_run_resumes(tmp_path, config):
    from rnnkit.cli import main
    from test_cli import toml_of

    path = tmp_path / "c.toml"
    path.write_text(toml_of({**config, "models": config["models"][:1]}))
    run = tmp_path / "run"
    # config.json, run.json fit in 3,000 bytes; a model's checkpoint (about 4 KB) does not
    done = run_with_file_size_limit(
        3000, ["-m", "rnnkit", "train", str(path), "--output", str(run), "--quiet"], tmp_path
    )
    err = done.stderr
    assert done.returncode == 2 and err.count("\n") == 1 and "Traceback" not in err, err
    assert "File too large" in err and "checkpoint.safetensors" in err and "--resume" in err, err
    assert readable(run) == []
    assert main(["train", "--resume", str(run), "--quiet"]) == 0
    assert json.loads((run / "models" / "gru_4" / "result.json").read_text())["epochs_run"] == 4
