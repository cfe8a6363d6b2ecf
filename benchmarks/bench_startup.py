"""Start-up time of the command line: ``rnnkit --help``, ``--version``, ``summary``, ``data`` and ``train``.

Each command runs in a fresh interpreter ``--repeats`` times; the best wall time is printed
(the least disturbed run), with the median beside it, and the best time to the command's first
line of output (its work done, for ``summary``, which prints once at the end). The two differ by
the interpreter's exit: with torch loaded, finalising it takes about 0.3 s on this machine. The
goal (issue 20): ``--help`` and ``--version`` under 0.5 s, and every command's own work started
within 1.5 s.

    python benchmarks/bench_startup.py [--repeats 5] [--only train]

``summary`` reads a config of the repository; ``data`` reads the embedded record (the file
itself takes a while to parse, so its time is start-up plus the work). ``train`` (course 04a on
the embedded record, into a temporary folder) is stopped once its first model starts training:
its first line (``run folder: ...``) is the start-up, and ``work`` the time to ``training ...``,
after the data were read, windowed and the baselines fitted; its ``best`` is that time too.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
EMBEDDED = ROOT / "src" / "rnnkit" / "datasets" / "data" / "jena_climate_2009_2016_hourly.csv.gz"

COMMANDS = {
    "--version": ["--version"],
    "--help": ["--help"],
    "summary": ["summary", str(ROOT / "configs" / "course_04a.toml"), "--features", "14"],
    "data": ["data", str(EMBEDDED)],
    "train": ["train", str(ROOT / "configs" / "course_04a.toml"), "--epochs", "1", "--output", "{tmp}/run"],
}
# commands stopped at the first line that starts so (their own work under way)
UNTIL = {"train": "training "}


def time_command(args: list[str], repeats: int, until: str | None = None) -> tuple[list[float], list[float]]:
    """Wall times to the exit (or to the first line starting with ``until``, where the command is
    stopped) and to the first line of stdout, ``repeats`` fresh interpreters."""
    times, first = [], []
    for _ in range(repeats):
        with tempfile.TemporaryDirectory() as tmp:
            argv = [a.replace("{tmp}", tmp) for a in args]
            start = time.perf_counter()
            process = subprocess.Popen(
                [sys.executable, "-m", "rnnkit", *argv], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
            )
            line = process.stdout.readline()
            first.append(time.perf_counter() - start)
            if until is not None:
                while line and not line.startswith(until):
                    line = process.stdout.readline()
                times.append(time.perf_counter() - start)
                process.kill()
                _, err = process.communicate()
                if not line:
                    raise SystemExit(f"rnnkit {' '.join(argv)} printed no line starting {until!r}: {err.strip()}")
                continue
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
        times, first = time_command(args, options.repeats, UNTIL.get(name))
        what = "work" if name in UNTIL else "best"
        print(
            f"rnnkit {name:<10} {what} {min(times):6.3f} s   median {statistics.median(times):6.3f} s   "
            f"first output {min(first):6.3f} s   ({options.repeats} runs)"
        )


if __name__ == "__main__":
    main()
