"""The training settings shared by the Trainer and the config (``[training]``): one object, one set of defaults."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field


class TrainingConfig(BaseModel):
    """The training settings: ``[training]`` of a config and the defaults of :class:`rnnkit.training.Trainer`.

    One object, one set of defaults: the Trainer's keyword arguments default to these fields, and a
    config's ``[training]`` table is this model (``Trainer.from_config(settings)`` builds one from it).
    """

    model_config = ConfigDict(extra="forbid", strict=True, allow_inf_nan=False)  # inf/NaN named at the key

    optimizer: Literal["adam", "rmsprop", "sgd"] = "adam"
    learning_rate: float = Field(1e-3, gt=0)
    weight_decay: float = Field(0.0, ge=0)
    # cross_entropy: task = "classification"/"tagging" only; pinball: task = "quantile" only (set there by default)
    loss: Literal["mse", "mae", "huber", "cross_entropy", "pinball"] = "mae"
    batch_size: int = Field(32, ge=1)
    epochs: int = Field(20, ge=1)
    shuffle: bool | None = None  # None: shuffle unless stateful
    clip_grad_norm: float | None = Field(None, gt=0)
    early_stopping_patience: int | None = Field(None, ge=1)
    restore_best: bool = True
    lr_plateau_patience: int | None = Field(None, ge=1)
    lr_factor: float = Field(0.5, gt=0, lt=1)  # the learning rate's factor on a plateau
    stateful: bool = False  # contiguous streams, no shuffling, states carried across batches
    seed: int = 0
    flush_denormal: bool = True  # flush denormal floats to zero during fit (x86 slows 2-3x on them)
    check_finite: bool = True  # NaN/inf in inputs, targets or a loss stops training, naming split and window
    # where fit runs (auto: CUDA where present, else the CPU) and the forward pass's type (rnnkit.training.device)
    device: Literal["auto", "cpu", "cuda"] = "auto"
    precision: Literal["fp32", "bf16", "fp16"] = "fp32"


def default(name: str):
    """The default of the setting ``name`` (what ``Trainer`` uses when it is not given).

    Example:
        >>> default("loss"), default("epochs")
        ('mae', 20)
    """
    return TrainingConfig.model_fields[name].default
