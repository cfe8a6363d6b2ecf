"""Start-up time of the command line: ``rnnkit --help``, ``--version``, ``summary`` and ``data``.

Each command runs in a fresh interpreter ``--repeats`` times; the best wall time is printed
(the least disturbed run), with the median beside it, and the best time to the command's first
line of output (its work done, for ``summary``, which prints once at the end). The two differ by
the interpreter's exit: with torch loaded, finalising it takes about 0.3 s on this machine. The
goal (issue 20): ``--help`` and ``--version`` under 0.5 s, and every command's own work started
within 1.5 s.

    python benchmarks/bench_startup.py [--repeats 5]

``summary`` reads a config of the repository; ``data`` reads the embedded record (the file
itself takes a while to parse, so its time is start-up plus the work).
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
EMBEDDED = ROOT / "src" / "rnnkit" / "datasets" / "data" / "jena_climate_2009_2016_hourly.csv.gz"

COMMANDS = {
    "--version": ["--version"],
    "--help": ["--help"],
    "summary": ["summary", str(ROOT / "configs" / "course_04a.toml"), "--features", "14"],
    "data": ["data", str(EMBEDDED)],
}


def time_command(args: list[str], repeats: int) -> tuple[list[float], list[float]]:
    """Wall times to the exit and to the first line of stdout, ``repeats`` fresh interpreters."""
    times, first = [], []
    for _ in range(repeats):
        start = time.perf_counter()
        process = subprocess.Popen(
            [sys.executable, "-m", "rnnkit", *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
        )
        process.stdout.readline()
        first.append(time.perf_counter() - start)
        _, err = process.communicate()
        times.append(time.perf_counter() - start)
        if process.returncode != 0:
            raise SystemExit(f"rnnkit {' '.join(args)} exited {process.returncode}: {err.strip()}")
    return times, first


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--only", nargs="*", default=None, help="Commands to time (default: all).")
    options = parser.parse_args()
    for name, args in COMMANDS.items():
        if options.only and name not in options.only:
            continue
        times, first = time_command(args, options.repeats)
        print(
            f"rnnkit {name:<10} best {min(times):6.3f} s   median {statistics.median(times):6.3f} s   "
            f"first output {min(first):6.3f} s   ({options.repeats} runs)"
        )


if __name__ == "__main__":
    main()
