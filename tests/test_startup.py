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


def test_data_reads_a_file_without_torch_and_the_config_schema_needs_none():
    from rnnkit.datasets.jena import EMBEDDED_JENA

    probe = PROBE.format(args=["data", str(EMBEDDED_JENA)], heavy=HEAVY)
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert "70,068" in done.stdout  # it did read the file (its rows once the duplicated stamps are dropped)
    assert [line for line in done.stdout.splitlines() if line.startswith("LOADED")] == ["LOADED pandas"]
    schema = subprocess.run(
        [
            sys.executable,
            "-c",
            "import sys, rnnkit.config, rnnkit.training.settings, rnnkit.datasets; print('torch' in sys.modules)",
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert schema.stdout.split() == ["False"], schema.stderr
