"""Training: a model-agnostic Trainer, losses, metrics in data units, callbacks, checkpoints."""

from rnnkit.training.callbacks import BestTracker, EarlyStopping, ReduceLROnPlateau
from rnnkit.training.inference import predict
from rnnkit.training.keras_api import KerasModel
from rnnkit.training.losses import LOSSES, get_loss
from rnnkit.training.metrics import accuracy, classification_metrics, confusion_matrix, mae, regression_metrics, rmse, score, skill, to_units
from rnnkit.training.trainer import OPTIMIZERS, History, Trainer

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
