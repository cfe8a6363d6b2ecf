"""Fast start (issue 20, part 6): the command line's --version and --help import no heavy library.

The times themselves are measured by benchmarks/bench_startup.py, not asserted here.
"""

import subprocess
import sys

import pytest

HEAVY = ("torch", "pandas", "matplotlib", "optuna")

PROBE = """
import sys
from rnnkit.cli import main
code = main({args!r})
print("LOADED", *[m for m in {heavy!r} if m in sys.modules])
sys.exit(code)
"""


@pytest.mark.parametrize("args", [["--version"], ["--help"]])
def test_version_and_help_do_not_import_torch(args):
    done = subprocess.run(
        [sys.executable, "-c", PROBE.format(args=args, heavy=HEAVY)], capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr
    loaded = [line for line in done.stdout.splitlines() if line.startswith("LOADED")]
    assert loaded == ["LOADED"], f"rnnkit {args[0]} imported {loaded}"


def test_public_names_still_load_on_use():
    done = subprocess.run(
        [
            sys.executable,
            "-c",
            "import sys, rnnkit as rk; assert 'torch' not in sys.modules; "
            "print(rk.Sequential.__name__, rk.layers.GRU.__name__, rk.load_run.__name__, "
            "'torch' in sys.modules, 'Sequential' in dir(rk))",
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["Sequential", "GRU", "load_run", "True", "True"]
