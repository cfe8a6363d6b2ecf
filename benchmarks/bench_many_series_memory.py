"""Memory of task = "many_series": a Parquet table many times the memory cap trains within the cap.

    RNNKIT_DATA_DIR=../shared/data python benchmarks/bench_many_series_memory.py [--copies 64] [--cap-mib 64]

Three child processes, each measured on its own:

1. ``write``: the station's real years (rnnkit.datasets.station_years, 14 columns) written ``--copies``
   times as distinct series (``"2009 #7"``...) into one Parquet file, one copy at a time;
2. ``whole``: what loading that table whole costs (``pyarrow.parquet.read_table``): the Arrow
   table's bytes and the process's resident memory after it, above its resident memory before;
3. ``train``: ``run_experiment`` on it (a GRU(8), one epoch, every window of every series, scored on
   validation and test, learning curves drawn). The cap counts resident memory: the process's
   high-water mark (``VmHWM``) at the end, minus its resident memory after importing torch,
   pyarrow, matplotlib and rnnkit (and one tiny GRU step). It is measured, not enforced:
   ``RLIMIT_AS`` cannot be used, since pyarrow's and glibc's allocators reserve address space
   far beyond what they touch (measured: +1.4 GiB of address space for +0.15 GiB resident).

Prints the numbers and the ratio data / cap.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def status(key: str) -> int:
    """A /proc/self/status value in bytes (VmRSS, VmHWM, VmSize)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(key + ":"):
            return int(line.split()[1]) * 1024
    raise KeyError(key)


def write(path: Path, copies: int) -> dict:
    import pyarrow as pa
    import pyarrow.parquet as pq

    from rnnkit.datasets.station_years import station_years_table

    table = station_years_table()
    base = pa.Table.from_pandas(table, preserve_index=False)
    with pq.ParquetWriter(path, base.schema) as writer:
        for k in range(copies):
            ids = pa.array([f"{i} #{k}" for i in table["id"]], type=base.schema.field("id").type)
            writer.write_table(base.set_column(0, "id", ids), row_group_size=65_536)
    meta = pq.read_metadata(path)
    return {
        "rows": meta.num_rows,
        "row_groups": meta.num_row_groups,
        "file_bytes": path.stat().st_size,
        "uncompressed_bytes": sum(meta.row_group(i).total_byte_size for i in range(meta.num_row_groups)),
        "series": copies * table["id"].nunique(),
    }


def whole(path: Path) -> dict:
    import pyarrow.parquet as pq

    before = status("VmRSS")
    table = pq.read_table(path)
    return {"arrow_bytes": table.nbytes, "rss_added": status("VmRSS") - before}


def train(path: Path, cap: int, out: Path) -> dict:
    import torch

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot  # noqa: F401  (every import before the baseline: the run draws its learning curves)

    import rnnkit.plots  # noqa: F401
    import rnnkit.tasks.many_series  # noqa: F401
    from rnnkit.config import parse_config
    from rnnkit.experiment import run_experiment
    import pyarrow.parquet  # noqa: F401

    torch.set_num_threads(1)
    config = parse_config(
        {
            "name": "memory",
            "task": "many_series",
            "data": {
                "dataset": "parquet",
                "paths": [str(path)],
                "id_column": "id",
                "time_column": "time",
                "target": "T (degC)",
                "features": ["T (degC)", "p (mbar)", "rh (%)", "sh (g/kg)"],
                "split": [0.7, 0.15, 0.15],
                "scaling": "series",
            },
            "windows": {"sequence_length": 24, "shift": 24, "horizon": 12},
            "training": {"epochs": 1, "batch_size": 256},
            "output": {"report": False},
            "models": [{"name": "GRU(8)", "layers": [{"type": "GRU", "units": 8}, {"type": "Dense", "units": 1}]}],
        }
    )
    # warm: one tiny forward/backward, so the baseline holds torch's own first-use buffers
    torch.nn.GRU(4, 8)(torch.zeros(2, 3, 4))[0].sum().backward()
    baseline_rss, baseline_vm = status("VmRSS"), status("VmSize")
    t0 = time.perf_counter()
    metrics = run_experiment(config, out, progress=False, log=lambda line: None)
    return {
        "seconds": time.perf_counter() - t0,
        "baseline_rss": baseline_rss,
        "baseline_vm": baseline_vm,
        "peak_rss_added": status("VmHWM") - baseline_rss,
        "vm_added": status("VmSize") - baseline_vm,
        "windows": metrics["windows"],
        "series": metrics["series"],
        "rows": metrics["rows"],
        "mae_val": {n: m["mae_val"] for n, m in metrics["models"].items()},
    }


def child(step: str, *args: str) -> dict:
    done = subprocess.run([sys.executable, __file__, "--step", step, *args], capture_output=True, text=True)
    if done.returncode != 0:
        raise SystemExit(f"{step} failed:\n{done.stderr[-3000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--copies", type=int, default=64)
    parser.add_argument("--cap-mib", type=int, default=64)
    parser.add_argument("--workdir", default=None)
    parser.add_argument("--step", default=None)
    parser.add_argument("--path", default=None)
    parser.add_argument("--out", default=None)
    a = parser.parse_args()
    cap = a.cap_mib * 2**20
    if a.step == "write":
        print(json.dumps(write(Path(a.path), a.copies)))
        return
    if a.step == "whole":
        print(json.dumps(whole(Path(a.path))))
        return
    if a.step == "train":
        print(json.dumps(train(Path(a.path), cap, Path(a.out))))
        return
    work = Path(a.workdir or tempfile.mkdtemp(prefix="rnnkit-memory-"))
    work.mkdir(parents=True, exist_ok=True)
    path = work / "big.parquet"
    written = child("write", "--path", str(path), "--copies", str(a.copies))
    loaded = child("whole", "--path", str(path))
    trained = child("train", "--path", str(path), "--cap-mib", str(a.cap_mib), "--out", str(work / "run"))
    mib = 2**20
    print(
        f"data: {written['rows']:,} rows, {written['series']:,} series, {written['row_groups']} row groups; "
        f"file {written['file_bytes'] / mib:.0f} MiB, uncompressed {written['uncompressed_bytes'] / mib:.0f} MiB"
    )
    print(
        f"loaded whole (pyarrow.read_table): Arrow table {loaded['arrow_bytes'] / mib:.0f} MiB, "
        f"resident memory +{loaded['rss_added'] / mib:.0f} MiB"
    )
    print(
        f"cap: {a.cap_mib} MiB of resident memory above the imports; data (Arrow table) / cap = "
        f"{loaded['arrow_bytes'] / cap:.1f}x"
    )
    peak = trained["peak_rss_added"]
    print(
        f"train (one epoch, {trained['windows']['train']:,} training windows, {trained['seconds']:.0f} s): resident "
        f"high-water mark +{peak / mib:.1f} MiB above the {trained['baseline_rss'] / mib:.0f} MiB after the imports: "
        + ("under the cap" if peak <= cap else "OVER THE CAP")
    )
    print(f"MAE val: {trained['mae_val']}")


if __name__ == "__main__":
    main()
