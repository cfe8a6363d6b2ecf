"""rnnkit: recurrent neural networks for sequence modelling, with Keras semantics on PyTorch.

``import rnnkit as rk`` reaches the public API: the floors as modules (``rk.layers``, ``rk.data``,
``rk.datasets``, ``rk.training``, ``rk.baselines``, ``rk.tasks``, ...), the model class
``rk.Sequential``, the run functions (``rk.load_config``, ``rk.run_experiment``,
``rk.evaluate_run``, ``rk.predict_file``), and the saved models and runs read back
(``rk.load_model``, ``rk.load_run``). Names that start with ``_`` are private.
"""

from rnnkit import baselines, config, data, datasets, diagnostics, export, layers, models, tasks, training
from rnnkit.tasks import load_config
from rnnkit.experiment import evaluate_run, predict_file, run_experiment
from rnnkit.layers import regularizers
from rnnkit.models import Sequential
from rnnkit.saving import load_model, load_run

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
