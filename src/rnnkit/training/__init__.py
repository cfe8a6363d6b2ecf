"""Training: a model-agnostic Trainer, losses, metrics in data units, callbacks, checkpoints."""

from typing import TYPE_CHECKING

from rnnkit._lazy import lazy_names as _lazy_names

# The names load on first use (PEP 562): the config schema reads rnnkit.training.settings, which
# needs no torch, so that ``rnnkit data`` and a config's checks start without it (issue 20, part 6).
_NAMES = {
    "BestTracker": "rnnkit.training.callbacks",
    "EarlyStopping": "rnnkit.training.callbacks",
    "ReduceLROnPlateau": "rnnkit.training.callbacks",
    "predict": "rnnkit.training.inference",
    "KerasModel": "rnnkit.training.keras_api",
    "LOSSES": "rnnkit.training.losses",
    "get_loss": "rnnkit.training.losses",
    "accuracy": "rnnkit.training.metrics",
    "classification_metrics": "rnnkit.training.metrics",
    "confusion_matrix": "rnnkit.training.metrics",
    "mae": "rnnkit.training.metrics",
    "regression_metrics": "rnnkit.training.metrics",
    "rmse": "rnnkit.training.metrics",
    "score": "rnnkit.training.metrics",
    "skill": "rnnkit.training.metrics",
    "to_units": "rnnkit.training.metrics",
    "OPTIMIZERS": "rnnkit.training.trainer",
    "History": "rnnkit.training.trainer",
    "Trainer": "rnnkit.training.trainer",
}

if TYPE_CHECKING:
    from rnnkit.training.callbacks import BestTracker, EarlyStopping, ReduceLROnPlateau
    from rnnkit.training.inference import predict
    from rnnkit.training.keras_api import KerasModel
    from rnnkit.training.losses import LOSSES, get_loss
    from rnnkit.training.metrics import (
        accuracy,
        classification_metrics,
        confusion_matrix,
        mae,
        regression_metrics,
        rmse,
        score,
        skill,
        to_units,
    )
    from rnnkit.training.trainer import OPTIMIZERS, History, Trainer


__getattr__, __dir__ = _lazy_names("rnnkit.training", _NAMES, globals())

__all__ = [
    "LOSSES",
    "OPTIMIZERS",
    "BestTracker",
    "EarlyStopping",
    "History",
    "KerasModel",
    "ReduceLROnPlateau",
    "Trainer",
    "accuracy",
    "classification_metrics",
    "confusion_matrix",
    "get_loss",
    "mae",
    "predict",
    "regression_metrics",
    "rmse",
    "score",
    "skill",
    "to_units",
]
