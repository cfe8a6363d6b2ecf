"""Keras's model API on the one Trainer: ``compile``, ``fit``, ``evaluate``, ``predict``, ``save``.

The course's students write Keras::

    model.compile(optimizer="adam", loss="mae", metrics=["mae"])
    history = model.fit(x_train, y_train, epochs=40, batch_size=32, validation_data=(x_val, y_val),
                        callbacks=[EarlyStopping(monitor="val_loss", patience=3, restore_best_weights=True)])
    model.evaluate(x_test, y_test)            # [loss, mae]
    model.predict(x_test)                     # numpy, (examples, 1)
    model.save("gru")                         # gru.safetensors + gru.json
    model = rk.load_model("gru")              # compiled again with the same settings

and every rnnkit model takes it as written (``rk.Sequential`` and the other model classes inherit
:class:`KerasModel`). It is a thin face: ``compile`` stores a
:class:`rnnkit.training.settings.TrainingConfig` (the settings, and defaults, of :class:`Trainer`
and of a config's ``[training]``), ``fit`` builds a :class:`Trainer` from it and calls
``Trainer.fit``: one training loop, one set of defaults. Where rnnkit's defaults differ from
Keras's, rnnkit's hold (listed in :meth:`KerasModel.fit`).

``compile`` is Keras's, not PyTorch's ``nn.Module.compile`` (which wraps the module's forward
with ``torch.compile`` in place): the course's code calls ``model.compile(optimizer=..., loss=...)``,
and Keras 3 on the torch backend makes the same choice. ``torch.compile(model)`` (the function)
still compiles an rnnkit model; only the method means Keras's compile.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import torch
from torch import nn

from rnnkit.errors import RnnkitError
from rnnkit.training.batches import as_data
from rnnkit.training.callbacks import EarlyStopping, ReduceLROnPlateau
from rnnkit.training.hooks import EpochLines, Hook, Loop
from rnnkit.training.losses import canonical_loss_name
from rnnkit.training.settings import TrainingConfig, default
from rnnkit.training.trainer import OPTIMIZERS, History, Trainer

# Keras's metric names -> the Trainer.evaluate score they read
METRICS = {
    "mae": "mae",
    "mean_absolute_error": "mae",
    "mse": "mse",
    "mean_squared_error": "mse",
    "rmse": "rmse",
    "root_mean_squared_error": "rmse",
    "accuracy": "accuracy",
    "acc": "accuracy",
}


def _tensor(values: Any, name: str) -> torch.Tensor:
    """An array as a CPU tensor: floats as float32 (Keras's floatx), integers as int64 (token ids, labels)."""
    if isinstance(values, torch.Tensor):
        t = values.detach()
    else:
        try:
            t = torch.as_tensor(np.asarray(values))
        except (TypeError, ValueError, RuntimeError) as e:
            raise RnnkitError(f"{name} must be an array of numbers, got {type(values).__name__} ({e})") from None
    if t.is_floating_point() or t.dtype == torch.bool:
        return t.to(torch.float32)
    if t.is_complex():
        raise RnnkitError(f"{name} must hold real numbers, got {t.dtype}")
    return t.to(torch.int64)


def _is_array(value: Any) -> bool:
    return isinstance(value, (np.ndarray, torch.Tensor))


def as_fit_data(x: Any, y: Any = None, name: str = "x") -> Any:
    """Keras's inputs as the Trainer's data: arrays ``x`` and ``y``, a pair ``(x, y)``, windows, or batches.

    ``x`` with ``y``: numpy arrays or tensors, examples first. ``x`` alone: the windows of
    :func:`rnnkit.data.make_windows` (or any object with ``__len__`` and ``batch``), an ordered
    re-iterable sequence of ``(x, y)`` batches (a list, a ``torch.utils.data.DataLoader``), or a
    pair ``(x, y)`` of arrays (as Keras's ``validation_data``).

    Example:
        >>> as_fit_data(np.zeros((4, 3, 2)), np.zeros(4)).x.dtype
        torch.float32
    """
    if y is not None:
        if not (_is_array(x) or isinstance(x, list)) or not (_is_array(y) or isinstance(y, list)):
            raise RnnkitError(
                f"{name} and y must be arrays when y is given, got {type(x).__name__} and {type(y).__name__}"
            )
        return as_data((_tensor(x, name), _tensor(y, "y")), name)
    if _is_array(x):
        raise RnnkitError(f"{name} is an array without targets: pass y too (fit(x, y)), or windows that hold both")
    if isinstance(x, (tuple, list)) and len(x) == 2 and all(_is_array(v) for v in x):
        return as_data((_tensor(x[0], f"{name}[0]"), _tensor(x[1], f"{name}[1]")), name)
    if isinstance(x, (tuple, list)) and len(x) == 3 and all(_is_array(v) for v in x):
        raise RnnkitError(f"{name}: sample weights (x, y, sample_weight) are not supported, got a triple")
    return as_data(x, name)


def _split_off(data: Any, fraction: Any) -> tuple[Any, Any]:
    """Keras's ``validation_split``: the last ``fraction`` of the examples, before any shuffling."""
    if not isinstance(fraction, (int, float)) or isinstance(fraction, bool) or not 0 <= fraction < 1:
        raise RnnkitError(f"validation_split must be in [0, 1), got {fraction!r}")
    if not fraction:
        return data, None
    if not hasattr(data, "x") or not hasattr(data, "y"):
        raise RnnkitError("validation_split needs x and y as arrays; pass validation_data for windows or batches")
    n = len(data)
    cut = int(math.floor(n * (1.0 - fraction)))  # Keras's split point
    if cut == 0 or cut == n:
        raise RnnkitError(f"validation_split={fraction} of {n} examples leaves an empty part")
    return as_data((data.x[:cut], data.y[:cut]), "x"), as_data((data.x[cut:], data.y[cut:]), "validation_split")


def _check_metrics(metrics: Any, loss: str) -> list[str]:
    if metrics is None:
        return []
    if isinstance(metrics, str) or not isinstance(metrics, (list, tuple)):
        raise RnnkitError(f"metrics must be a list of names such as ['mae'], got {metrics!r}")
    for m in metrics:
        if m not in METRICS:
            raise RnnkitError(f"metrics: {m!r} is not one of {', '.join(METRICS)}")
        reads = METRICS[m]
        if loss == "pinball" or (reads == "accuracy") != (loss == "cross_entropy"):
            raise RnnkitError(
                f"metrics: {m!r} does not go with loss={loss!r} "
                "(accuracy goes with cross_entropy, mae/mse/rmse with the regression losses)"
            )
    if len(set(metrics)) != len(metrics):
        raise RnnkitError(f"metrics names each metric once, got {list(metrics)}")
    return list(metrics)


def _scores(trainer: Trainer, model: nn.Module, data: Any) -> dict[str, float]:
    scores = trainer.evaluate(model, data)
    if "rmse" in scores:
        scores["mse"] = scores["rmse"] ** 2
    return scores


class _EpochMetrics(Hook):
    """After each epoch, the compiled metrics on the training data (``mae``) and on the validation data
    (``val_mae``), added to the epoch's record (and so to the History)."""

    def __init__(self, metrics: Sequence[str], train: Any, val: Any) -> None:
        self.metrics, self.train, self.val = list(metrics), train, val

    def on_epoch_end(self, loop: Loop, record: dict[str, Any]) -> None:
        for prefix, data in (("", self.train), ("val_", self.val)):
            if data is None:
                continue
            scores = _scores(loop.trainer, loop.model, data)
            for m in self.metrics:
                record[prefix + m] = scores[METRICS[m]]


def _class_weights(class_weight: Any) -> list[float] | None:
    """Keras's ``{class: weight}`` as one weight per class 0 … max (a class left out weighs 1)."""
    if not isinstance(class_weight, dict):
        return class_weight
    if not all(isinstance(k, (int, np.integer)) and not isinstance(k, bool) and k >= 0 for k in class_weight):
        raise RnnkitError(f"class_weight keys must be class indices >= 0, got {sorted(class_weight, key=str)}")
    return [float(class_weight.get(c, 1.0)) for c in range(max(class_weight) + 1)] if class_weight else None


def _describe(metrics: Sequence[str], validated: bool):
    """``record -> "mae 0.41, val_mae 0.47"``: the metrics' part of a line per epoch (None without metrics)."""
    if not metrics:
        return None
    names = [*metrics, *(f"val_{m}" for m in metrics if validated)]
    return lambda record: ", ".join(f"{n} {record[n]:.4g}" for n in names if n in record)


def _verbose(verbose: Any) -> bool | None:
    if verbose == "auto":
        return None
    if verbose in (0, 1, 2) and not isinstance(verbose, bool):
        return {0: False, 1: True, 2: False}[verbose]
    raise RnnkitError(f"verbose must be 'auto', 0, 1 or 2, got {verbose!r}")


@dataclass
class Compiled:
    """What ``compile`` keeps: the Trainer's settings, the metrics' names and the pinball loss's levels."""

    training: TrainingConfig = field(default_factory=TrainingConfig)
    metrics: list[str] = field(default_factory=list)
    quantiles: list[float] | None = None

    def to_dict(self) -> dict[str, Any]:
        return {"training": self.training.model_dump(), "metrics": self.metrics, "quantiles": self.quantiles}


class KerasModel(nn.Module):
    """The base of rnnkit's models: Keras's ``compile`` / ``fit`` / ``evaluate`` / ``predict`` / ``save``.

    A model is trained by :class:`rnnkit.training.Trainer`, built from the settings that ``compile``
    stores; a model never compiled trains with the defaults (Adam 1e-3, MAE, batch 32, 20 epochs).
    ``rk.load_model(path)`` reads a saved model back. Note: ``compile`` is Keras's meaning; for
    PyTorch's, call the function ``torch.compile(model)``.

    Example::

        model = rk.Sequential(rk.layers.SimpleRNN(12), rk.layers.Dense(1), input_shape=(40, 14))
        model.compile(optimizer="adam", loss="mae")
        history = model.fit(x_train, y_train, epochs=40, validation_data=(x_val, y_val))
        history.history["val_loss"][-1], model.evaluate(x_test, y_test)
    """

    def _compiled(self) -> Compiled:
        """What ``compile`` kept; the defaults when the model was never compiled."""
        return getattr(self, "_keras_compiled", None) or Compiled()

    def compile(
        self,
        optimizer: str = default("optimizer"),
        loss: str = default("loss"),
        metrics: Sequence[str] | None = None,
        *,
        quantiles: Sequence[float] | None = None,
        **settings: Any,
    ) -> None:  # Keras's compile, not torch.compile
        """Keep the training settings for ``fit``, ``evaluate`` and ``predict`` (Keras's ``compile``).

        Args:
            optimizer: ``"adam"`` (default), ``"rmsprop"`` or ``"sgd"``; its rate is ``learning_rate=``
                (Keras's ``optimizer=keras.optimizers.Adam(learning_rate=1e-4)`` is
                ``optimizer="adam", learning_rate=1e-4``).
            loss: ``"mae"`` (default), ``"mse"``, ``"huber"``, ``"cross_entropy"`` (Keras's
                ``"sparse_categorical_crossentropy"``), ``"pinball"``; Keras's long names too.
            metrics: names among ``mae``, ``mse``, ``rmse`` (regression) or ``accuracy``
                (``cross_entropy``), each recorded per epoch in the History (``mae``, ``val_mae``)
                and returned by ``evaluate`` after the loss.
            quantiles: with ``loss="pinball"`` (and only with it), the levels of the model's outputs.
            **settings: any other field of :class:`rnnkit.training.settings.TrainingConfig`
                (``learning_rate``, ``batch_size``, ``epochs``, ``clip_grad_norm``, ``seed``,
                ``stateful``, ``restore_best``, ...), with its default when left out.

        Not PyTorch's ``nn.Module.compile``: use ``torch.compile(model)`` for that.
        """
        if not isinstance(optimizer, str) or optimizer.lower() not in OPTIMIZERS:
            raise RnnkitError(
                f"optimizer must be one of {', '.join(OPTIMIZERS)} (with learning_rate= for its rate), "
                f"got {optimizer!r}"
            )
        loss = canonical_loss_name(loss)
        unknown = sorted(set(settings) - set(TrainingConfig.model_fields))
        if unknown:
            raise RnnkitError(
                f"compile: unknown settings {unknown}; the settings are {sorted(TrainingConfig.model_fields)}"
            )
        config = TrainingConfig.model_validate({**settings, "optimizer": optimizer.lower(), "loss": loss})
        compiled = Compiled(config, _check_metrics(metrics, loss), None if quantiles is None else list(quantiles))
        Trainer.from_config(config, quantiles=compiled.quantiles, progress=False)  # the Trainer's own checks, now
        self._keras_compiled = compiled

    def _trainer(self, **overrides: Any) -> Trainer:
        compiled = self._compiled()
        settings = {
            **compiled.training.model_dump(),
            **{k: v for k, v in overrides.pop("settings", {}).items() if v is not None},
        }
        return Trainer.from_config(TrainingConfig.model_validate(settings), quantiles=compiled.quantiles, **overrides)

    def fit(
        self,
        x: Any = None,
        y: Any = None,
        batch_size: int | None = None,
        epochs: int | None = None,
        verbose: Any = "auto",
        callbacks: Sequence[Any] | None = None,
        validation_split: float = 0.0,
        validation_data: Any = None,
        shuffle: bool | None = None,
        class_weight: dict[int, float] | Sequence[float] | None = None,
    ) -> History:
        """Train the model (Keras's ``fit``); returns the :class:`History` (``history.history["val_loss"]``).

        Args:
            x, y: arrays (numpy or torch, examples first); or ``x`` alone: windows
                (:func:`rnnkit.data.make_windows`), a list of ``(x, y)`` batches or a ``DataLoader``.
            batch_size, epochs, shuffle: ``None`` (default): the compiled settings (32, 20, shuffled
                unless stateful). Keras's ``fit`` runs 1 epoch by default.
            verbose: ``"auto"`` (a bar on a terminal or in a notebook, else a line per epoch), 0
                (nothing), 1 (a bar), 2 (a line per epoch).
            callbacks: :class:`rnnkit.training.EarlyStopping` and
                :class:`rnnkit.training.ReduceLROnPlateau` (their settings become the Trainer's),
                and :class:`rnnkit.training.hooks.Hook` objects (run by the loop).
            validation_split: with arrays, the last fraction of the examples validates (Keras's rule).
            validation_data: ``(x_val, y_val)`` arrays, or windows or batches.
            class_weight: with ``loss="cross_entropy"``, ``{class: weight}`` (Keras's; a class left out
                weighs 1) or one weight per class; it weights ``val_loss`` too (the Trainer's rule).

        Where rnnkit differs from Keras: with validation data and no EarlyStopping callback, the
        model ends with the weights of its best validation epoch (``restore_best=True``; compile
        with ``restore_best=False`` for Keras's last epoch); each ``fit`` starts a fresh optimizer
        and seeds the random generators with the compiled ``seed`` (default 0), so a run repeats;
        the metrics on the training data are measured after each epoch in inference mode (Keras
        averages them over the epoch's batches while training).
        """
        train = as_fit_data(x, y)
        if validation_data is not None and validation_split:
            raise RnnkitError("give validation_data or validation_split, not both")
        train, val = _split_off(train, validation_split)
        if validation_data is not None:
            val = as_fit_data(validation_data, name="validation_data")
        settings: dict[str, Any] = {"batch_size": batch_size, "epochs": epochs, "shuffle": shuffle}
        hooks: list[Hook] = []
        seen: set[type] = set()
        for cb in callbacks or ():
            if isinstance(cb, Hook):
                hooks.append(cb)
                continue
            if not isinstance(cb, (EarlyStopping, ReduceLROnPlateau)):
                raise RnnkitError(
                    "callbacks must be rk.training.EarlyStopping, rk.training.ReduceLROnPlateau or "
                    f"rk.training.hooks.Hook objects, got {type(cb).__name__}"
                )
            if type(cb) in seen:
                raise RnnkitError(f"callbacks holds two {type(cb).__name__}; give one")
            seen.add(type(cb))
            watched = "val_loss" if val is not None else "loss"
            if cb.monitor != watched:
                raise RnnkitError(
                    f"{type(cb).__name__}(monitor={cb.monitor!r}): the Trainer watches {watched!r} "
                    f"({'with' if val is not None else 'without'} validation data)"
                )
            if isinstance(cb, EarlyStopping):
                if cb.min_delta:
                    raise RnnkitError(
                        f"EarlyStopping(min_delta={cb.min_delta}): fit's Trainer counts any decrease as an "
                        "improvement; min_delta must be 0"
                    )
                settings.update(early_stopping_patience=cb.patience, restore_best=cb.restore_best_weights)
            else:
                if cb.min_lr:
                    raise RnnkitError(
                        f"ReduceLROnPlateau(min_lr={cb.min_lr}): fit's Trainer has no floor on the "
                        "learning rate; min_lr must be 0"
                    )
                settings.update(lr_plateau_patience=cb.patience, lr_factor=cb.factor)
        metrics = self._compiled().metrics
        progress = _verbose(verbose)
        # the metrics join the epoch's record first, so that a line per epoch (verbose=2) shows them
        hooks = (
            ([_EpochMetrics(metrics, train, val)] if metrics else [])
            + ([EpochLines(None, _describe(metrics, val is not None))] if verbose == 2 else [])
            + hooks
        )
        trainer = self._trainer(
            settings=settings, progress=progress, hooks=hooks, class_weight=_class_weights(class_weight)
        )
        return trainer.fit(self, train, val)

    def evaluate(
        self,
        x: Any = None,
        y: Any = None,
        batch_size: int | None = None,
        verbose: Any = "auto",
        return_dict: bool = False,
    ) -> float | list[float] | dict[str, float]:
        """The loss (no regularisation terms) and the compiled metrics on ``x, y`` (Keras's ``evaluate``).

        Returns:
            The loss alone when no metrics were compiled, else ``[loss, metric, ...]`` in the
            compiled order; ``return_dict=True``: ``{"loss": ..., "mae": ...}``.
        """
        _verbose(verbose)
        data = as_fit_data(x, y)
        trainer = self._trainer(settings={"batch_size": batch_size}, progress=False)
        scores = _scores(trainer, self, data)
        metrics = self._compiled().metrics
        result = {"loss": scores["loss"], **{m: scores[METRICS[m]] for m in metrics}}
        if return_dict:
            return result
        return result["loss"] if not metrics else list(result.values())

    def predict(self, x: Any, batch_size: int | None = None, verbose: Any = "auto") -> np.ndarray:
        """The model's outputs for ``x`` (an array, windows or batches) as a numpy array, in inference mode."""
        _verbose(verbose)
        data = (_tensor(x, "x"), torch.zeros(len(x), 0)) if _is_array(x) else as_fit_data(x)
        trainer = self._trainer(settings={"batch_size": batch_size}, progress=False)
        return trainer.predict(self, data).numpy()

    def save(self, filepath: str | Path) -> None:
        """Write ``<filepath>.safetensors`` (the weights) and ``<filepath>.json`` (the architecture and
        the compiled settings), the format of a run's model files; ``rk.load_model(filepath)`` reads them.

        Keras writes one ``.keras`` zip; rnnkit writes safetensors and JSON, which never run code when read.
        """
        from rnnkit.io import save_model

        path = Path(filepath)
        if path.suffix in (".keras", ".h5", ".pt", ".pth", ".pkl"):
            raise RnnkitError(
                f"save writes <stem>.safetensors and <stem>.json; give a stem such as 'model' "
                f"(or 'model.safetensors'), got {str(filepath)!r}"
            )
        unbuilt = [type(m).__name__ for m in self.modules() if getattr(m, "built", True) is False]
        if unbuilt:
            raise RnnkitError(
                f"save needs every weight: layers {unbuilt} are not built yet (give input_shape or call the model once)"
            )
        path.parent.mkdir(parents=True, exist_ok=True)
        compiled = getattr(self, "_keras_compiled", None)
        save_model(self, path, metadata={"compile": compiled.to_dict()} if compiled is not None else None)
