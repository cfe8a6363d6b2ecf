"""rnnkit: recurrent neural networks for sequence modelling, with Keras semantics on PyTorch.

``import rnnkit as rk`` reaches the public API: the floors as modules (``rk.layers``, ``rk.data``,
``rk.datasets``, ``rk.training``, ``rk.baselines``, ``rk.tasks``, ...), the model class
``rk.Sequential``, the run functions (``rk.load_config``, ``rk.run_experiment``,
``rk.evaluate_run``, ``rk.predict_file``), and the saved models and runs read back
(``rk.load_model``, ``rk.load_run``). Names that start with ``_`` are private.
"""

import os
import sys
from typing import TYPE_CHECKING

from rnnkit._lazy import lazy_names as _lazy_names

# OpenMP threads that wait sleep instead of spinning, unless the user chose (issue 18, part 4). A
# spinning thread uses up its core's share, so when another process needs that core the thread is
# descheduled for whole time slices and every parallel region waits for it: on a 2-core machine
# with a busy loop on the other core, 2 threads trained GRU(32) at 0.28x the speed of 1, and at
# 1.50x with passive waiting (benchmarks/bench_load.py). OpenMP reads the setting when torch loads.
if not os.environ.get("OMP_WAIT_POLICY"):
    os.environ["OMP_WAIT_POLICY"] = "PASSIVE"
_WAIT_POLICY_BEFORE_TORCH = "torch" not in sys.modules  # else torch's OpenMP kept the setting it loaded with

# The public names load on first use (PEP 562), so that ``rnnkit --version`` and ``--help`` start
# without torch, pandas or matplotlib (issue 20, part 6: under 0.5 s instead of 3-4 s).
_MODULES = {"baselines", "config", "data", "datasets", "diagnostics", "export", "layers", "models", "tasks", "training"}
_NAMES = {
    "load_config": "rnnkit.tasks",
    "evaluate_run": "rnnkit.experiment",
    "predict_file": "rnnkit.experiment",
    "run_experiment": "rnnkit.experiment",
    "regularizers": "rnnkit.layers",
    "Sequential": "rnnkit.models",
    "load_model": "rnnkit.saving",
    "load_run": "rnnkit.saving",
}

if TYPE_CHECKING:
    from rnnkit import baselines, config, data, datasets, diagnostics, export, layers, models, tasks, training
    from rnnkit.experiment import evaluate_run, predict_file, run_experiment
    from rnnkit.layers import regularizers
    from rnnkit.models import Sequential
    from rnnkit.saving import load_model, load_run
    from rnnkit.tasks import load_config


__getattr__, __dir__ = _lazy_names("rnnkit", _NAMES, globals(), frozenset(_MODULES))

__version__ = "0.1.0"

__all__ = [
    "Sequential",
    "__version__",
    "baselines",
    "config",
    "data",
    "datasets",
    "diagnostics",
    "evaluate_run",
    "export",
    "layers",
    "load_config",
    "load_model",
    "load_run",
    "models",
    "predict_file",
    "regularizers",
    "run_experiment",
    "tasks",
    "training",
]
