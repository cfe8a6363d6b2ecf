"""TensorBoard event files of a fit: one scalar per ``history.csv`` column per epoch, weight histograms.

:class:`TensorBoardHook` writes them while the fit runs (a hook of the training loop, flushed
each epoch: a running ``tensorboard --logdir`` shows the curves grow); ``write_history`` writes
them afterwards from a finished fit's history (a run's model read back).

``write_history(history, folder, model)`` writes, for every epoch record of a
:class:`~rnnkit.training.trainer.History`, the scalars ``loss``, ``val_loss``, ``lr`` and
``seconds`` (the columns of ``history.csv``, same names, step = epoch), and with ``model`` a
histogram of each weight after training. ``tensorboard --logdir RUN/tensorboard`` then shows
one curve per model of a run, and several runs side by side. The files are written with
PyTorch's ``SummaryWriter`` (the ``tensorboard`` package: ``pip install 'rnnkit[tensorboard]'``).

Example::

    history = Trainer(epochs=5).fit(model, train, val)
    write_history(history, "runs/demo/tensorboard/gru_32", model)
"""

from __future__ import annotations

import math
import shutil
import time
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from torch import nn

from rnnkit.errors import RnnkitError
from rnnkit.training.hooks import Hook, Loop

# history.csv's columns that are not values over epochs
NOT_SCALARS = ("epoch",)


def _writer(folder: Path) -> Any:
    try:
        from torch.utils.tensorboard import SummaryWriter
    except ImportError:  # an optional extra
        raise RnnkitError(
            "TensorBoard logs need the 'tensorboard' package: pip install 'rnnkit[tensorboard]' "
            "(or set [output] tensorboard = false)"
        ) from None
    return SummaryWriter(log_dir=str(folder))


def _add_record(writer: Any, record: dict[str, Any], walltime: float) -> None:
    """One epoch's scalars: every number of the record but ``epoch``, at step = epoch."""
    for key, value in record.items():
        if key in NOT_SCALARS or not isinstance(value, (int, float)) or isinstance(value, bool):
            continue
        if math.isfinite(value):
            writer.add_scalar(key, float(value), int(record["epoch"]), walltime=walltime)


def write_history(history: Any, folder: str | Path, model: nn.Module | None = None) -> Path:
    """Write ``history``'s epoch records (and ``model``'s weight histograms) as a fresh event file in ``folder``.

    Args:
        history: a ``History`` or a list of epoch records ``{"epoch": 1, "loss": ..., ...}``.
        folder: the event folder; event files already in it are replaced (a resumed run writes it again).
        model: default None: also a histogram of each of its parameters, at the last epoch.

    Returns:
        ``folder``.
    """
    records: Iterable[dict[str, Any]] = getattr(history, "epochs", history)
    records = list(records)
    target = Path(folder)
    if target.is_dir():
        shutil.rmtree(target)
    target.mkdir(parents=True, exist_ok=True)
    writer = _writer(target)
    try:
        # wall time: the end of each epoch, counted back from now by the epochs' own seconds
        elapsed = sum(float(r.get("seconds", 0.0)) for r in records)
        clock = time.time() - elapsed
        for record in records:
            clock += float(record.get("seconds", 0.0))
            _add_record(writer, record, clock)
        if model is not None and records:
            last = int(records[-1]["epoch"])
            for name, p in model.named_parameters():
                writer.add_histogram(f"weights/{name}", p.detach().cpu().float(), last)
    finally:
        writer.close()
    return target


def read_scalars(folder: str | Path) -> dict[str, list[tuple[int, float]]]:
    """The scalars of the event files in ``folder``, read with TensorBoard's own reader: tag -> [(step, value)]."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    events = EventAccumulator(str(folder), size_guidance={"scalars": 0, "histograms": 0})
    events.Reload()
    return {tag: [(e.step, e.value) for e in events.Scalars(tag)] for tag in events.Tags()["scalars"]}


class TensorBoardHook(Hook):
    """Write each epoch's record to TensorBoard as the fit runs (``Trainer(hooks=[TensorBoardHook(folder)])``).

    The same scalars as :func:`write_history`, flushed after every epoch so that a running
    ``tensorboard --logdir`` shows the curves grow; at the end, a histogram of each weight. A
    resumed fit writes the folder again, from the epochs its checkpoint holds.

    Args:
        folder: the event folder (event files already in it are replaced).
    """

    def __init__(self, folder: str | Path) -> None:
        self.folder = Path(folder)
        self._writer: Any = None

    def on_fit_start(self, loop: Loop) -> None:
        if self.folder.is_dir():
            shutil.rmtree(self.folder)
        self.folder.mkdir(parents=True, exist_ok=True)
        self._writer = _writer(self.folder)
        history = loop.state.get("history")
        for record in getattr(history, "epochs", None) or []:  # the epochs a resumed fit already has
            _add_record(self._writer, record, time.time())
        self._writer.flush()

    def on_epoch_end(self, loop: Loop, record: dict[str, Any]) -> None:
        _add_record(self._writer, record, time.time())
        self._writer.flush()

    def on_fit_end(self, loop: Loop) -> None:
        if loop.epoch:
            for name, p in loop.model.named_parameters():
                self._writer.add_histogram(f"weights/{name}", p.detach().cpu().float(), loop.epoch)
        self._writer.close()
