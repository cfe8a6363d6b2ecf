"""A trainer that knows nothing about the model: any ``nn.Module`` from ``x`` batches to predictions.

What it uses of the model, when present: ``regularization_loss()`` (added to the loss of
every batch) and ``reset_states()`` (called at the start of every epoch and before
evaluation when training is stateful). Everything else is plain PyTorch: an optimizer,
a loss by name, batches gathered by index (see :mod:`rnnkit.training.batches`).
"""

from __future__ import annotations

import contextlib
import functools
import math
import sys
from collections.abc import Iterable, Sequence
import time
from pathlib import Path
from typing import IO, Any, Iterator

import torch
from torch import nn

from rnnkit.errors import RnnkitError, check_bool, check_positive_int
from rnnkit.training import checkpoint as ckpt
from rnnkit.training import distributed
from rnnkit.training.batches import BatchSequence, as_data, check_finite, count_examples, iter_batches
from rnnkit.training.device import autocast, check_precision, grad_scaler, resolve_device, to_device
from rnnkit.training.callbacks import BestTracker, EarlyStopping, ReduceLROnPlateau
from rnnkit.training.settings import TrainingConfig, default
from rnnkit.training.hooks import Checkpointing, Hook, Loop, progress_hook
from rnnkit.training.inference import model_device, predict, reset_states
from rnnkit.training.losses import (
    canonical_loss_name,
    check_class_weight,
    check_quantiles,
    cross_entropy,
    get_loss,
    match_target,
    pinball,
)

OPTIMIZERS = ("adam", "rmsprop", "sgd")


class History:
    """Per-epoch records of a fit: ``epoch`` (1-based), ``loss``, ``val_loss``, ``lr``, ``seconds``.

    ``loss`` is the training objective averaged over the epoch's batches (data loss plus the
    model's regularisation terms, as Keras reports it); ``val_loss`` is the data loss on the
    validation data (no regularisation); ``lr`` the learning rate used during the epoch.

    Example:
        >>> h = History([{"epoch": 1, "loss": 0.5}, {"epoch": 2, "loss": 0.4}])
        >>> h["loss"]
        [0.5, 0.4]
    """

    def __init__(self, epochs: list[dict[str, Any]] | None = None) -> None:
        self.epochs: list[dict[str, Any]] = list(epochs or [])
        self.best_epoch: int | None = None  # 1-based epoch whose weights the model holds after restore
        self.stopped_early = False

    def append(self, record: dict[str, Any]) -> None:
        self.epochs.append(record)

    def __len__(self) -> int:
        return len(self.epochs)

    def __getitem__(self, key: str) -> list[Any]:
        return [e.get(key) for e in self.epochs]

    @property
    def history(self) -> dict[str, list[Any]]:
        """Keras's ``History.history``: every recorded key but ``epoch``, each a list over the epochs.

        Example:
            >>> History([{"epoch": 1, "loss": 0.5, "val_loss": 0.6}]).history
            {'loss': [0.5], 'val_loss': [0.6]}
        """
        keys = dict.fromkeys(k for e in self.epochs for k in e if k != "epoch")
        return {k: self[k] for k in keys}

    def to_frame(self):  # -> pandas.DataFrame (imported lazily: pandas is slow to import)
        """The history as a ``pandas.DataFrame`` with one row per epoch."""
        import pandas as pd

        return pd.DataFrame(self.epochs)

    def to_csv(self) -> str:
        """The history as CSV text (for ``history.csv``)."""
        return self.to_frame().to_csv(index=False)


def _default_stream() -> IO[str]:
    return sys.stderr


def flushing_denormals() -> bool:
    """Whether this thread's CPU flushes denormal floats to zero (PyTorch has no getter: probe it)."""
    tiny = torch.tensor([1e-310], dtype=torch.float64)  # a float64 denormal
    return bool((tiny * 1.0).item() == 0.0)


@contextlib.contextmanager
def denormals_flushed(enabled: bool = True) -> Iterator[None]:
    """Run a block with ``torch.set_flush_denormal(enabled)`` and put the previous setting back.

    Denormal floats (below 1.2e-38 in float32) arise when gradients fade over many time
    steps; x86 CPUs handle them up to a hundred times slower than normal numbers, and a
    recurrent training step with dropout can run 2–3× slower. Flushing them to zero changes
    no value by more than float32's resolution of any number that is not itself tiny.

    Example:
        >>> with denormals_flushed():
        ...     flushing_denormals()
        True
    """
    previous = flushing_denormals()
    torch.set_flush_denormal(enabled)
    try:
        yield
    finally:
        torch.set_flush_denormal(previous)


def _unbuilt(model: nn.Module) -> list[str]:
    return [type(m).__name__ for m in model.modules() if getattr(m, "built", True) is False]


def _build_before_training(model: nn.Module, train: Any) -> None:
    """Build a lazily built model (e.g. ``Sequential`` without ``input_shape``) from the first batch.

    An optimizer made from ``model.parameters()`` before the first call would silently leave
    out the weights that the first call creates.
    """
    if not _unbuilt(model):
        return
    build = getattr(model, "build", None)
    if callable(build):
        x, _ = next(iter(iter_batches(train, 1)))
        build(tuple(x.shape[1:]))
    missing = _unbuilt(model)
    if missing:
        raise RnnkitError(
            f"the model has layers without weights yet ({', '.join(missing)}): give the model input_shape "
            "(or the first layer input_size) so that every weight exists before training"
        )


class Trainer:
    """Fit, evaluate and predict with any ``nn.Module`` (models and baselines alike).

    Args:
        optimizer: ``"adam"``, ``"rmsprop"`` or ``"sgd"`` (Keras's epsilons: Adam eps=1e-7;
            RMSprop rho=0.9, eps=1e-7; SGD without momentum).
        learning_rate: > 0 (default 1e-3).
        weight_decay: decoupled weight decay as in Keras, ``w -= learning_rate · weight_decay · w``
            before each step, for every optimizer (default 0).
        loss: ``"mse"``, ``"mae"``, ``"huber"``, ``"cross_entropy"`` or ``"pinball"`` (default ``"mae"``).
        batch_size: examples per batch (default 32; ignored for data given as a batch sequence).
        epochs: number of epochs (default 20).

    Every default is :class:`rnnkit.training.settings.TrainingConfig`'s, the settings object of a
    config's ``[training]`` (:meth:`from_config` builds a Trainer from one).
        shuffle: shuffle the examples each epoch; ``None`` (default) means "yes, unless stateful".
        clip_grad_norm: clip the global gradient norm to this value (default ``None``: no clipping).
        early_stopping_patience: stop after this many epochs without improvement of the
            monitored loss (``val_loss`` when there is validation data, else ``loss``).
        restore_best: at the end of ``fit``, put back the weights of the epoch with the best
            monitored loss, whenever it is monitored (validation data or early stopping) (default True).
        lr_plateau_patience: multiply the learning rate by ``lr_factor`` after this many epochs
            without improvement (default ``None``: constant learning rate).
        lr_factor: in (0, 1) (default 0.5).
        seed: seeds the global torch generator (weights drawn later, dropout) and the shuffling
            generator at the start of ``fit``; a CPU run repeats bit for bit (default 0).
        progress: ``None`` (default): a tqdm bar when ``progress_stream`` is a terminal, ``tqdm.auto``
            in a notebook, else a line per epoch (loss, val_loss, ``describe_epoch``, time, ETA);
            ``True``: a bar anyway; ``False``: nothing (:func:`rnnkit.training.hooks.progress_hook`).
        stateful: no shuffling, batches in order and of constant size (a last smaller batch is
            dropped), ``model.reset_states()`` at each epoch start and before evaluation.
        checkpoint_dir: write ``checkpoint.safetensors`` there after every epoch; ``fit(...,
            resume=True)`` continues from it.
        progress_stream: where the progress output goes (default ``sys.stderr``).
        progress_interval: off a terminal, seconds between the progress lines within an epoch
            (batch k/n, the running loss, the time so far; default 10).
        describe_epoch: ``record -> str``, a reading added to each epoch's progress line, e.g. the
            validation MAE in data units (default ``None``).
        hooks: more :class:`rnnkit.training.hooks.Hook` objects run by the loop, after the progress
            output and before the checkpoint (default none).
        quantiles: with ``loss="pinball"`` (and only with it), the levels of the model's Q outputs,
            increasing in (0, 1), e.g. ``[0.1, 0.5, 0.9]`` (:func:`rnnkit.training.losses.pinball`).
        class_weight: with ``loss="cross_entropy"``, one weight per class: each example's loss is
            multiplied by its true class's weight (Keras's ``class_weight``; see
            :func:`rnnkit.training.losses.balanced_class_weight`), in training and in ``val_loss``,
            so early stopping and ``restore_best`` watch the objective that is trained (default ``None``).
        flush_denormal: during ``fit``, flush denormal floats (< 1.2e-38 in float32) to zero on the
            CPU (``torch.set_flush_denormal``), and put the caller's setting back at the end (default
            True). Gradients that fade through time turn denormal, and x86 CPUs slow down 2–3× on
            them; flushing changes results by less than float32's resolution. ``False`` runs ``fit``
            with flushing off. A resumed run must use the same setting.
        check_finite: before training, look for NaN or inf in the train and validation inputs and
            targets, and stop with a :class:`RnnkitError` naming the split and the first bad window;
            stop too when the training or validation loss becomes NaN or inf (default True).
            ``False`` trains on whatever comes.
        device: where ``fit`` trains: ``"auto"`` (default: CUDA where torch sees a GPU, else the CPU),
            ``"cpu"`` or ``"cuda"`` (an error without a GPU). ``fit`` moves the model there once and
            leaves it there; batches follow it, through pinned memory on a GPU. ``evaluate`` and
            ``predict`` run wherever the model is. A checkpoint resumes on any device.
        precision: the forward pass's type: ``"fp32"`` (default), ``"bf16"`` (CUDA or CPU) or ``"fp16"``
            (CUDA, with a gradient scaler), under ``torch.autocast``; the loss, the gradients' sums and
            the weights stay float32 (:mod:`rnnkit.training.device`).

    Example:
        >>> trainer = Trainer(epochs=5, early_stopping_patience=2)
        >>> history = trainer.fit(model, train=(x, y), val=(x_val, y_val))  # doctest: +SKIP
        >>> trainer.evaluate(model, (x_test, y_test))["mae"]  # doctest: +SKIP
    """

    def __init__(
        self,
        optimizer: str = default("optimizer"),
        learning_rate: float = default("learning_rate"),
        weight_decay: float = default("weight_decay"),
        loss: str = default("loss"),
        batch_size: int = default("batch_size"),
        epochs: int = default("epochs"),
        shuffle: bool | None = default("shuffle"),
        clip_grad_norm: float | None = default("clip_grad_norm"),
        early_stopping_patience: int | None = default("early_stopping_patience"),
        restore_best: bool = default("restore_best"),
        lr_plateau_patience: int | None = default("lr_plateau_patience"),
        lr_factor: float = default("lr_factor"),
        seed: int = default("seed"),
        progress: bool | None = None,
        stateful: bool = default("stateful"),
        checkpoint_dir: str | Path | None = None,
        progress_stream: IO[str] | None = None,
        progress_interval: float = 10.0,
        class_weight: Sequence[float] | torch.Tensor | None = None,
        flush_denormal: bool = default("flush_denormal"),
        check_finite: bool = default("check_finite"),
        describe_epoch: Any = None,
        hooks: Sequence[Hook] = (),
        quantiles: Sequence[float] | None = None,
        device: str = default("device"),
        precision: str = default("precision"),
    ) -> None:
        if not isinstance(optimizer, str) or optimizer.lower() not in OPTIMIZERS:
            raise RnnkitError(f"optimizer must be one of {', '.join(OPTIMIZERS)}, got {optimizer!r}")
        if (
            not isinstance(learning_rate, (int, float))
            or isinstance(learning_rate, bool)
            or not learning_rate > 0
            or not math.isfinite(learning_rate)
        ):
            raise RnnkitError(f"learning_rate must be a finite number > 0, got {learning_rate!r}")
        if (
            not isinstance(weight_decay, (int, float))
            or isinstance(weight_decay, bool)
            or not 0 <= weight_decay < math.inf
        ):
            raise RnnkitError(f"weight_decay must be a finite number >= 0, got {weight_decay!r}")
        check_positive_int("batch_size", batch_size)
        check_positive_int("epochs", epochs)
        if shuffle is not None and not isinstance(shuffle, bool):
            raise RnnkitError(f"shuffle must be True, False or None, got {shuffle!r}")
        if not isinstance(stateful, bool):
            raise RnnkitError(f"stateful must be True or False, got {stateful!r}")
        if stateful and shuffle:
            raise RnnkitError(
                "shuffle must be False or None when stateful=True (states carry across batches in order), got True"
            )
        if clip_grad_norm is not None and (
            not isinstance(clip_grad_norm, (int, float))
            or isinstance(clip_grad_norm, bool)
            or not 0 < clip_grad_norm < math.inf
        ):
            raise RnnkitError(f"clip_grad_norm must be None or a finite number > 0, got {clip_grad_norm!r}")
        for name, value in (
            ("early_stopping_patience", early_stopping_patience),
            ("lr_plateau_patience", lr_plateau_patience),
        ):
            if value is not None:
                check_positive_int(name, value)
        if not isinstance(lr_factor, (int, float)) or isinstance(lr_factor, bool) or not 0 < lr_factor < 1:
            raise RnnkitError(f"lr_factor must be in (0, 1), got {lr_factor!r}")
        if not isinstance(seed, int) or isinstance(seed, bool) or seed < 0:
            raise RnnkitError(f"seed must be an integer >= 0, got {seed!r}")
        if progress is not None and not isinstance(progress, bool):
            raise RnnkitError(f"progress must be True, False or None (auto), got {progress!r}")
        if (
            isinstance(progress_interval, bool)
            or not isinstance(progress_interval, (int, float))
            or not (0 < progress_interval < math.inf)
        ):
            raise RnnkitError(f"progress_interval must be a finite number of seconds > 0, got {progress_interval!r}")
        if not isinstance(restore_best, bool):
            raise RnnkitError(f"restore_best must be True or False, got {restore_best!r}")
        self.device = resolve_device(device)  # "cuda" without a GPU stops here, before any work
        self.precision = check_precision(precision, self.device)
        self._scaler: torch.amp.GradScaler | None = None  # fp16's, during fit
        self.optimizer = optimizer.lower()
        self.learning_rate = float(learning_rate)
        self.weight_decay = float(weight_decay)
        self.loss = canonical_loss_name(loss)
        self.batch_size = batch_size
        self.epochs = epochs
        self.shuffle = (not stateful) if shuffle is None else shuffle
        self.clip_grad_norm = None if clip_grad_norm is None else float(clip_grad_norm)
        self.early_stopping_patience = early_stopping_patience
        self.restore_best = restore_best
        self.lr_plateau_patience = lr_plateau_patience
        self.lr_factor = float(lr_factor)
        self.seed = seed
        self.progress = progress
        self.stateful = stateful
        self.checkpoint_dir = None if checkpoint_dir is None else Path(checkpoint_dir)
        self.progress_stream = progress_stream
        self.progress_interval = float(progress_interval)
        self.describe_epoch = describe_epoch
        if not all(isinstance(h, Hook) for h in hooks):
            raise RnnkitError(
                f"hooks must be rnnkit.training.hooks.Hook objects, got {[type(h).__name__ for h in hooks]}"
            )
        self.hooks = list(hooks)
        self._loss_fn = get_loss(self.loss)
        if not isinstance(flush_denormal, bool):
            raise RnnkitError(f"flush_denormal must be True or False, got {flush_denormal!r}")
        self.flush_denormal = flush_denormal
        self.check_finite = check_bool("check_finite", check_finite)
        self.class_weight: list[float] | None = None
        if class_weight is not None:
            if self.loss != "cross_entropy":
                raise RnnkitError(f"class_weight needs loss='cross_entropy', got loss={self.loss!r}")
            weight = check_class_weight(class_weight)
            self.class_weight = weight.tolist()
            self._loss_fn = functools.partial(cross_entropy, class_weight=weight)
        self.quantiles: list[float] | None = None
        if (quantiles is None) != (self.loss != "pinball"):
            raise RnnkitError(
                f"quantiles go with loss='pinball' and only with it, got loss={self.loss!r} and quantiles={quantiles!r}"
            )
        if quantiles is not None:
            self.quantiles = check_quantiles(quantiles)
            self._loss_fn = functools.partial(pinball, quantiles=self.quantiles)

    @classmethod
    def from_config(cls, settings: TrainingConfig, **runtime: Any) -> Trainer:
        """A Trainer from the settings object, plus run-time arguments (progress, checkpoint_dir, hooks, ...).

        Example:
            >>> Trainer.from_config(TrainingConfig(epochs=3), progress=False).epochs
            3
        """
        return cls(**settings.model_dump(), **runtime)

    # --- settings that a resumed run must share with the run it continues ---------------------
    def settings(self) -> dict[str, Any]:
        """The trainer's settings as JSON-serialisable values."""
        return {
            "optimizer": self.optimizer,
            "learning_rate": self.learning_rate,
            "weight_decay": self.weight_decay,
            "loss": self.loss,
            "batch_size": self.batch_size,
            "epochs": self.epochs,
            "shuffle": self.shuffle,
            "clip_grad_norm": self.clip_grad_norm,
            "early_stopping_patience": self.early_stopping_patience,
            "restore_best": self.restore_best,
            "lr_plateau_patience": self.lr_plateau_patience,
            "lr_factor": self.lr_factor,
            "seed": self.seed,
            "stateful": self.stateful,
            "class_weight": self.class_weight,
            **({"quantiles": self.quantiles} if self.quantiles is not None else {}),
            "flush_denormal": self.flush_denormal,
            # the device is not a setting of the run (a checkpoint resumes on any device); the precision is
            **({"precision": self.precision} if self.precision != "fp32" else {}),
        }

    def _make_optimizer(self, model: nn.Module) -> torch.optim.Optimizer:
        params = [p for p in model.parameters() if p.requires_grad]
        if not params:
            raise RnnkitError(f"{type(model).__name__} has no trainable parameters to fit")
        # weight_decay=0 here: decay is applied decoupled, Keras-style, in _step.
        if self.optimizer == "adam":
            return torch.optim.Adam(params, lr=self.learning_rate, eps=1e-7)
        if self.optimizer == "rmsprop":
            return torch.optim.RMSprop(params, lr=self.learning_rate, alpha=0.9, eps=1e-7)
        return torch.optim.SGD(params, lr=self.learning_rate)

    def _loop_hooks(self) -> list[Hook]:
        """Progress output, the caller's hooks, then the checkpoint (written once the epoch is complete)."""
        progress = progress_hook(self.progress, self.progress_stream, self.describe_epoch, self.progress_interval)
        return (
            ([progress] if progress is not None else [])
            + self.hooks
            + ([Checkpointing()] if self.checkpoint_dir is not None else [])
        )

    # --- the loss of one batch ------------------------------------------------------------------
    def _forward(self, model: nn.Module, x: torch.Tensor) -> torch.Tensor:
        """``model(x)`` in the trainer's precision; the output as float32 when autocast made it bf16/fp16."""
        if self.precision == "fp32":
            return model(x)
        with autocast(x.device, self.precision):
            out = model(x)
        return out.float() if out.is_floating_point() else out  # the loss in float32

    def _batch_loss(self, model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return self._loss_fn(self._forward(model, x), y)

    def _backward(self, loss: torch.Tensor) -> None:
        (self._scaler.scale(loss) if self._scaler is not None else loss).backward()

    @staticmethod
    def _regularization(model: nn.Module) -> torch.Tensor | None:
        fn = getattr(model, "regularization_loss", None)
        return fn() if callable(fn) else None

    # --- fit ------------------------------------------------------------------------------------
    def fit(self, model: nn.Module, train: Any, val: Any = None, *, resume: bool = False) -> History:
        """Train ``model`` on ``train``; returns the :class:`History`.

        Args:
            model: any ``nn.Module`` mapping ``x`` batches to predictions shaped like ``y``
                (regression) or to logits ``(batch, classes)`` (``cross_entropy``).
            train: ``(x, y)`` tensors (examples first), an object with ``__len__`` and
                ``batch(indices) -> (x, y)``, or an ordered re-iterable sequence of ``(x, y)`` batches.
            val: validation data in the same forms, or ``None``.
            resume: continue from ``checkpoint_dir/checkpoint.safetensors`` (weights, optimizer,
                schedules, random states, history); the run ends as an uninterrupted one would.

        Example:
            >>> history = Trainer(epochs=3).fit(torch.nn.Linear(4, 1), (torch.randn(64, 4), torch.randn(64, 1)))
            >>> len(history)
            3
        """
        with denormals_flushed(self.flush_denormal):
            return self._fit(model, train, val, resume)

    def _fit(self, model: nn.Module, train: Any, val: Any, resume: bool) -> History:
        train = as_data(train, "train")
        val = as_data(val, "val") if val is not None else None
        if resume and self.checkpoint_dir is None:
            raise RnnkitError("resume=True needs checkpoint_dir, got checkpoint_dir=None")
        if self.shuffle and isinstance(train, BatchSequence):
            raise RnnkitError(
                "shuffle must be False for train given as a sequence of batches (their order is given), got True"
            )
        n_train = count_examples(train)
        if n_train == 0:
            raise RnnkitError("train holds no examples")
        if self.stateful and not isinstance(train, BatchSequence) and n_train < self.batch_size:
            raise RnnkitError(f"stateful training needs at least batch_size={self.batch_size} examples, got {n_train}")
        if val is not None and count_examples(val) == 0:
            raise RnnkitError("val holds no examples")
        ranks = distributed.world()[1]
        if self.stateful and self.batch_size % ranks:  # each rank keeps batch_size / ranks streams
            raise RnnkitError(
                f"stateful training on {ranks} ranks needs a batch_size divisible by {ranks}, got {self.batch_size}"
            )
        if self.check_finite:  # NaN in, NaN loss out, "best epoch 3" and no word: stop here instead
            check_finite(train, "train")
            if val is not None:
                check_finite(val, "validation")

        torch.manual_seed(self.seed)
        _build_before_training(model, train)  # the optimizer must see every parameter
        device = self.device
        model.to(device)  # once: the optimizer's state is made on the device too
        self._scaler = grad_scaler(device, self.precision)
        shuffler = torch.Generator().manual_seed(self.seed)
        optimizer = self._make_optimizer(model)
        plateau = (
            ReduceLROnPlateau(optimizer, self.lr_plateau_patience, self.lr_factor) if self.lr_plateau_patience else None
        )
        stopper = EarlyStopping(self.early_stopping_patience) if self.early_stopping_patience else None
        monitored = val is not None or stopper is not None
        best = BestTracker(keep_weights=self.restore_best and monitored)
        history = History()
        start = 0
        if resume:
            start = self._resume(model, optimizer, best, stopper, plateau, shuffler, history)

        net = self._parallel(model)  # DistributedDataParallel under torchrun, else the model itself
        hooks = self._loop_hooks()
        loop = Loop(
            self,
            model,
            optimizer,
            self.epochs,
            start_epoch=start,
            n_batches=self._n_batches(train),
            state={"best": best, "stopper": stopper, "plateau": plateau, "shuffler": shuffler, "history": history},
        )
        for hook in hooks:
            hook.on_fit_start(loop)
        for epoch in range(start, self.epochs):
            if stopper is not None and stopper.stopped:
                break
            loop.epoch = epoch + 1
            t0 = time.perf_counter()
            lr = optimizer.param_groups[0]["lr"]
            loss = self._train_epoch(model, train, optimizer, shuffler, device, epoch, hooks, loop, net)
            record: dict[str, Any] = {"epoch": epoch + 1, "loss": loss}
            if val is not None:
                record["val_loss"] = self.evaluate(model, val)["loss"]
                if self.check_finite and not math.isfinite(record["val_loss"]):
                    raise RnnkitError(
                        f"the validation loss became {record['val_loss']} in epoch {epoch + 1}: "
                        "lower learning_rate or set clip_grad_norm (check_finite = false trains on)"
                    )
            record["lr"] = lr
            record["seconds"] = time.perf_counter() - t0
            history.append(record)
            value = record["val_loss"] if val is not None else loss
            if monitored:
                best.update(value, epoch + 1, model)
            if stopper is not None:
                stopper.update(value)
            if plateau is not None:
                plateau.step(value)
            for hook in hooks:
                hook.on_epoch_end(loop, record)
        for hook in hooks:
            hook.on_fit_end(loop)
        history.stopped_early = bool(stopper is not None and stopper.stopped)
        if self.restore_best and best.restore(model):
            history.best_epoch = best.epoch
        else:
            history.best_epoch = history.epochs[-1]["epoch"] if history.epochs else None
        return history

    def _train_epoch(
        self,
        model: nn.Module,
        train: Any,
        optimizer: torch.optim.Optimizer,
        shuffler: torch.Generator,
        device: torch.device,
        epoch: int,
        hooks: Sequence[Hook] = (),
        loop: Loop | None = None,
        net: nn.Module | None = None,
    ) -> float:
        net = model if net is None else net
        model.train()
        if self.stateful:
            reset_states(model)
        params = [p for g in optimizer.param_groups for p in g["params"]]
        rank, ranks = distributed.world()
        pieces = None
        if ranks > 1:  # this rank's piece of each global batch (rnnkit.training.distributed)
            pieces = distributed.Pieces(
                train, self.batch_size, rank, ranks, shuffle=self.shuffle, generator=shuffler, drop_last=self.stateful
            )
        batches: Iterable[Any] = (
            pieces
            if pieces is not None
            else iter_batches(train, self.batch_size, shuffle=self.shuffle, generator=shuffler, drop_last=self.stateful)
        )
        for hook in hooks:
            batches = hook.wrap_batches(batches, loop)
        # Sums stay on the device: no host synchronisation per batch.
        total = torch.zeros((), dtype=torch.float64, device=device)
        count = 0
        if loop is not None:  # the hooks' view of the epoch so far (the same tensor, summed in place)
            loop.loss_sum, loop.examples = total, 0
        for x, y in batches:
            x, y = to_device(x, device), to_device(y, device)
            optimizer.zero_grad(set_to_none=True)
            if pieces is None:
                loss = self._batch_loss(net, x, y)
                reg = self._regularization(model)
                if reg is not None:
                    loss = loss + reg.to(loss.device)
                self._backward(loss)
            else:
                loss = self._piece_backward(net, model, x, y, pieces.batch_rows, ranks)
            if self._scaler is not None:  # clipping and weight decay see the true gradients
                self._scaler.unscale_(optimizer)
            if self.clip_grad_norm is not None:
                torch.nn.utils.clip_grad_norm_(params, self.clip_grad_norm)
            if self.weight_decay:
                with torch.no_grad():
                    for group in optimizer.param_groups:
                        for p in group["params"]:
                            p.mul_(1.0 - group["lr"] * self.weight_decay)
            if self._scaler is not None:  # skips a step whose gradients hold inf/NaN, then adapts the scale
                self._scaler.step(optimizer)
                self._scaler.update()
            else:
                optimizer.step()
            total += loss.detach().double() * x.shape[0]
            count += x.shape[0]
            if loop is not None:
                loop.examples = count
        if pieces is not None:  # the epoch's mean over every rank's examples
            total, count = distributed.all_sum([float(total), count]).tolist()
            count = int(count)
        if count == 0:
            raise RnnkitError(
                f"epoch {epoch + 1} had no batches (batch_size={self.batch_size} with {count_examples(train)} examples)"
            )
        mean = float(total) / count
        if self.check_finite and not math.isfinite(mean):
            raise RnnkitError(
                f"the training loss became {mean} in epoch {epoch + 1}: lower learning_rate or set clip_grad_norm"
            )
        return mean

    def _parallel(self, model: nn.Module) -> nn.Module:
        """``DistributedDataParallel(model)`` in a process group of several ranks, else ``model``.

        Buffers are not broadcast: a stateful layer's states are each rank's own streams.
        """
        if not distributed.active():
            return model
        return distributed.parallel(model)

    def _piece_backward(
        self, net: nn.Module, model: nn.Module, x: torch.Tensor, y: torch.Tensor, batch_rows: int, ranks: int
    ) -> torch.Tensor:
        """Backward of this rank's piece (``x.shape[0]`` of the global batch's ``batch_rows`` rows).

        The piece's mean loss is weighted by ``n_r · ranks / batch_rows``: DDP averages the gradients
        over the ranks, which then gives the gradient of the whole batch's mean loss. Returns the
        piece's unweighted loss (plus regularisation), which the epoch's mean counts ``n_r`` times.
        """
        if x.shape[0]:
            loss = self._batch_loss(net, x, y)
        else:  # a last batch smaller than the ranks: zero gradients, but DDP still needs this rank's share
            loss = self._forward(net, x).sum() * 0.0
        weighted = loss * (x.shape[0] * ranks / batch_rows)
        reg = self._regularization(model)
        if reg is not None:  # the same on every rank: averaged, it stays itself
            reg = reg.to(loss.device)
            loss, weighted = loss + reg, weighted + reg
        self._backward(weighted)
        return loss

    def _n_batches(self, data: Any) -> int | None:
        if isinstance(data, BatchSequence):
            return len(data) if hasattr(data.batches, "__len__") else None
        n = len(data)
        return n // self.batch_size if self.stateful else math.ceil(n / self.batch_size)

    # --- checkpoints ------------------------------------------------------------------------------
    def _save_checkpoint(self, model, optimizer, best, stopper, plateau, shuffler, history, epoch) -> None:
        opt_tensors, opt_meta = ckpt.flatten_optimizer(optimizer)
        tensors = {**ckpt.with_prefix(model.state_dict(), "model."), **opt_tensors}
        if best.weights is not None:
            tensors.update(ckpt.with_prefix(best.weights, "best."))
        tensors["rng.torch"] = torch.get_rng_state()
        tensors["rng.shuffle"] = shuffler.get_state()
        if torch.cuda.is_available() and torch.cuda.is_initialized():
            for i, state in enumerate(torch.cuda.get_rng_state_all()):
                tensors[f"rng.cuda.{i}"] = state
        meta = {
            "epoch": epoch,
            "history": history.epochs,
            "optimizer": opt_meta,
            "best": best.state(),
            "early_stopping": stopper.state() if stopper is not None else None,
            "plateau": plateau.state() if plateau is not None else None,
            "settings": self.settings(),
            **({"grad_scaler": self._scaler.state_dict()} if self._scaler is not None else {}),
        }
        ckpt.save_checkpoint(self.checkpoint_dir, tensors, meta)

    def _resume(self, model, optimizer, best, stopper, plateau, shuffler, history) -> int:
        from rnnkit.io import load_state_into

        tensors, meta = ckpt.load_checkpoint(self.checkpoint_dir)
        saved = meta["settings"]
        # The epoch count may grow on resume; the rest must match or the run would not be the same run.
        now = self.settings()  # a key only one side has (precision "bf16", quantiles) differs too
        differ = [
            f"{k}: checkpoint {saved.get(k)!r}, now {now.get(k)!r}"
            for k in {**now, **saved}
            if k != "epochs" and saved.get(k) != now.get(k)
        ]
        if differ:
            raise RnnkitError("cannot resume with other trainer settings (" + "; ".join(differ) + ")")
        load_state_into(model, ckpt.strip_prefix(tensors, "model."), source=f"checkpoint in {self.checkpoint_dir}")
        ckpt.unflatten_optimizer(
            optimizer, {k: v for k, v in tensors.items() if k.startswith("optim.")}, meta["optimizer"]
        )
        best_weights = ckpt.strip_prefix(tensors, "best.") or None
        best.load_state(meta["best"], best_weights if best.keep_weights else None)
        if stopper is not None and meta["early_stopping"] is not None:
            stopper.load_state(meta["early_stopping"])
        if plateau is not None and meta["plateau"] is not None:
            plateau.load_state(meta["plateau"])
        if self._scaler is not None and meta.get("grad_scaler"):
            self._scaler.load_state_dict(meta["grad_scaler"])
        torch.set_rng_state(tensors["rng.torch"])
        shuffler.set_state(tensors["rng.shuffle"])
        cuda = sorted((k for k in tensors if k.startswith("rng.cuda.")), key=lambda k: int(k.rsplit(".", 1)[1]))
        if cuda and torch.cuda.is_available():
            torch.cuda.set_rng_state_all([tensors[k] for k in cuda])
        for record in meta["history"]:
            history.append(record)
        return int(meta["epoch"])

    # --- evaluate and predict ---------------------------------------------------------------------
    def evaluate(self, model: nn.Module, data: Any) -> dict[str, float]:
        """The data loss (no regularisation) on ``data``, plus ``mae``/``rmse`` (model units) or ``accuracy``.

        Args:
            model: any ``nn.Module``.
            data: ``(x, y)`` tensors, an indexable object or a batch sequence.

        Returns:
            ``{"loss", "mae", "rmse"}`` for regression losses, ``{"loss", "accuracy"}`` for ``cross_entropy``.

        Example:
            >>> Trainer(loss="mae").evaluate(torch.nn.Identity(), (torch.zeros(4, 1), torch.ones(4, 1)))["loss"]
            1.0
        """
        data = as_data(data, "data")
        device = model_device(model)
        was_training = model.training
        model.eval()
        if self.stateful:
            reset_states(model)
        loss_sum = torch.zeros((), dtype=torch.float64, device=device)
        abs_sum = torch.zeros_like(loss_sum)
        sq_sum = torch.zeros_like(loss_sum)
        correct = torch.zeros_like(loss_sum)
        n, n_values = 0, 0
        rank, ranks = distributed.world()
        batches = (
            distributed.Pieces(data, self.batch_size, rank, ranks, drop_last=self.stateful)
            if ranks > 1
            else iter_batches(data, self.batch_size, drop_last=self.stateful)
        )
        try:
            with torch.no_grad():
                for x, y in batches:
                    if not x.shape[0]:  # a piece of a batch smaller than the ranks
                        continue
                    x, y = to_device(x, device), to_device(y, device)
                    out = self._forward(model, x)
                    loss_sum += self._loss_fn(out, y).double() * x.shape[0]
                    n += x.shape[0]
                    if self.loss == "pinball":  # Q quantiles per target: only the loss is defined
                        continue
                    if self.loss == "cross_entropy":
                        correct += (out.argmax(-1) == y.reshape(out.shape[:-1]).long()).double().sum()
                        n_values += out.shape[:-1].numel()
                    else:
                        err = (out - match_target(out, y)).double()
                        abs_sum += err.abs().sum()
                        sq_sum += (err**2).sum()
                        n_values += err.numel()
        finally:
            model.train(was_training)
        if ranks > 1:  # every rank's sums: the same result everywhere, so every rank decides alike
            sums = distributed.all_sum([float(loss_sum), float(abs_sum), float(sq_sum), float(correct), n, n_values])
            loss_sum, abs_sum, sq_sum, correct = sums[:4]
            n, n_values = int(sums[4]), int(sums[5])
        if n == 0:
            raise RnnkitError(f"no batch to evaluate (batch_size={self.batch_size}, stateful={self.stateful})")
        result = {"loss": float(loss_sum) / n}
        if self.loss == "pinball":
            return result
        if self.loss == "cross_entropy":
            result["accuracy"] = float(correct) / n_values
        else:
            result["mae"] = float(abs_sum) / n_values
            result["rmse"] = math.sqrt(float(sq_sum) / n_values)
        return result

    def predict(self, model: nn.Module, x: Any, batch_size: int | None = None) -> torch.Tensor:
        """Predictions of ``model`` for ``x`` (a tensor, ``(x, y)``, indexable data or batches), on the CPU.

        Example:
            >>> Trainer().predict(torch.nn.Linear(2, 1), torch.zeros(5, 2)).shape
            torch.Size([5, 1])
        """
        return predict(model, x, batch_size or self.batch_size, stateful=self.stateful)
