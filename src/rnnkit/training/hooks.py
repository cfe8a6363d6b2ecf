"""Hooks of the training loop: what runs beside the training itself (progress, checkpoints).

:meth:`rnnkit.training.Trainer.fit` calls, on each hook in order::

    hook.on_fit_start(loop)                      # once, before the first epoch (or the resumed one)
    batches = hook.wrap_batches(batches, loop)   # each epoch: e.g. a progress bar around the batches
    hook.on_epoch_end(loop, record)              # each epoch: record = {"epoch", "loss", "val_loss", "lr", "seconds"}
    hook.on_fit_end(loop)                        # once, after the last epoch (before the best weights return)

``loop`` (:class:`Loop`) holds the model, the optimizer and the loop's state. Progress output
is chosen by :func:`progress_hook`: a line per epoch when the stream is not a terminal (a log
file, CI), plus a line every ``interval`` seconds within a long epoch (batch k/n, the running
loss, the time so far), a tqdm bar in a terminal, ``tqdm.auto`` in a Jupyter notebook.
"""

from __future__ import annotations

import math
import sys
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import IO, Any

from rnnkit.errors import RnnkitError


@dataclass
class Loop:
    """What a hook may read of the running loop (``epoch`` counts from 1; ``epochs`` is the last one)."""

    trainer: Any
    model: Any
    optimizer: Any
    epochs: int
    start_epoch: int = 0  # epochs already done (a resumed run)
    epoch: int = 0
    n_batches: int | None = None
    state: dict[str, Any] = field(default_factory=dict)  # best, stopper, plateau, shuffler, history
    # the epoch so far, kept by the trainer: examples seen and the sum of their losses (a tensor on the
    # device, read only when a line is written: no host synchronisation per batch)
    examples: int = 0
    loss_sum: Any = None


class Hook:
    """A hook of the training loop; every method does nothing unless overridden."""

    def on_fit_start(self, loop: Loop) -> None:
        """Before the first epoch."""

    def wrap_batches(self, batches: Iterable, loop: Loop) -> Iterable:
        """The batches of one epoch, e.g. wrapped in a progress bar."""
        return batches

    def on_epoch_end(self, loop: Loop, record: dict[str, Any]) -> None:
        """After an epoch, with its record (``loss``, ``val_loss`` when validated, ``seconds``, ...)."""

    def on_fit_end(self, loop: Loop) -> None:
        """After the last epoch."""


def duration(seconds: float) -> str:
    """``"42 s"``, ``"3 min 05 s"``, ``"1 h 02 min"``.

    Example:
        >>> duration(42.4), duration(185), duration(3720)
        ('42 s', '3 min 05 s', '1 h 02 min')
    """
    s = int(round(seconds))
    if s < 60:
        return f"{s} s"
    if s < 3600:
        return f"{s // 60} min {s % 60:02d} s"
    return f"{s // 3600} h {s % 3600 // 60:02d} min"


def epoch_line(
    loop: Loop,
    record: dict[str, Any],
    describe: Callable[[dict[str, Any]], str] | None = None,
    seconds: list[float] | None = None,
) -> str:
    """``"epoch 3/20: loss 0.2130, val_loss 0.2500, val MAE 1.93 degC; 4.1 s, ETA 1 min 10 s"``.

    ``describe(record)`` adds the task's reading (e.g. the validation MAE in data units); the ETA
    is the mean epoch time so far times the epochs left (an upper bound with early stopping).

    Example:
        >>> print(epoch_line(Loop(None, None, None, epochs=4, epoch=2), {"loss": 0.5, "val_loss": 0.25, "seconds": 2.0},
        ...                  seconds=[2.0, 2.0]))
        epoch 2/4: loss 0.5, val_loss 0.25; 2.0 s, ETA 4 s
    """
    text = f"epoch {loop.epoch}/{loop.epochs}: loss {record['loss']:.4g}"
    if "val_loss" in record:
        text += f", val_loss {record['val_loss']:.4g}"
    extra = describe(record) if describe is not None else ""
    if extra:
        text += f", {extra}"
    times = seconds or [record.get("seconds", 0.0)]
    left = loop.epochs - loop.epoch
    text += f"; {record.get('seconds', 0.0):.1f} s"
    if left > 0:
        text += f", ETA {duration(sum(times) / len(times) * left)}"
    return text


def batch_line(loop: Loop, done: int, elapsed: float) -> str:
    """``"epoch 2/5: batch 130/400 (32%), loss 0.213 so far; 12 s, epoch ETA 25 s"``: a long epoch's progress.

    ``done`` batches are finished after ``elapsed`` seconds; the loss is the mean over the examples
    seen this epoch (``loop.loss_sum / loop.examples``).

    Example:
        >>> import torch
        >>> loop = Loop(None, None, None, epochs=5, epoch=2, n_batches=400, examples=4160, loss_sum=torch.tensor(886.08))
        >>> batch_line(loop, 130, 12.0)
        'epoch 2/5: batch 130/400 (32%), loss 0.213 so far; 12 s, epoch ETA 25 s'
    """
    n = loop.n_batches
    text = f"epoch {loop.epoch}/{loop.epochs}: batch {done}" + (f"/{n} ({100 * done // n}%)" if n else "")
    if loop.loss_sum is not None and loop.examples:
        text += f", loss {float(loop.loss_sum) / loop.examples:.4g} so far"
    text += f"; {duration(elapsed)}"
    if n and done:
        text += f", epoch ETA {duration(elapsed / done * (n - done))}"
    return text


class EpochLines(Hook):
    """A line per epoch on ``stream``: loss, validation loss, the task's reading, time, ETA (for logs and CI).

    Within an epoch, a line every ``interval`` seconds (:func:`batch_line`), so that a long epoch
    shows it is alive off a terminal; an epoch shorter than ``interval`` prints only its own line.
    """

    def __init__(
        self,
        stream: IO[str] | None = None,
        describe: Callable[[dict[str, Any]], str] | None = None,
        interval: float = 10.0,
    ) -> None:
        if isinstance(interval, bool) or not isinstance(interval, (int, float)) or not 0 < interval < math.inf:
            raise RnnkitError(f"progress interval must be a finite number of seconds > 0, got {interval!r}")
        self.stream = stream
        self.describe = describe
        self.interval = float(interval)
        self.seconds: list[float] = []

    def wrap_batches(self, batches: Iterable, loop: Loop) -> Iterable:
        start = last = time.perf_counter()
        for done, batch in enumerate(batches):  # asked for batch `done`: the `done` before it are finished
            now = time.perf_counter()
            if done and now - last >= self.interval:
                stream = self.stream or sys.stderr
                stream.write(batch_line(loop, done, now - start) + "\n")
                stream.flush()
                last = now
            yield batch

    def on_epoch_end(self, loop: Loop, record: dict[str, Any]) -> None:
        self.seconds.append(float(record.get("seconds", 0.0)))
        stream = self.stream or sys.stderr
        stream.write(epoch_line(loop, record, self.describe, self.seconds) + "\n")
        stream.flush()


class ProgressBar(EpochLines):
    """A tqdm bar over each epoch's batches (``tqdm.auto`` in a notebook), then the epoch's line."""

    def __init__(
        self,
        stream: IO[str] | None = None,
        describe: Callable[[dict[str, Any]], str] | None = None,
        notebook: bool = False,
    ) -> None:
        super().__init__(stream, describe)
        self.notebook = notebook

    def wrap_batches(self, batches: Iterable, loop: Loop) -> Iterable:
        if self.notebook:
            from tqdm.auto import tqdm
        else:
            from tqdm import tqdm
        return tqdm(
            batches,
            total=loop.n_batches,
            desc=f"epoch {loop.epoch}/{loop.epochs}",
            file=self.stream or sys.stderr,
            leave=False,
        )


def in_notebook() -> bool:
    """Whether the code runs in a Jupyter kernel (IPython's ZMQ shell)."""
    ipython = sys.modules.get("IPython")
    shell = ipython.get_ipython() if ipython is not None and hasattr(ipython, "get_ipython") else None
    return type(shell).__name__ == "ZMQInteractiveShell"


def progress_hook(
    progress: bool | None,
    stream: IO[str] | None = None,
    describe: Callable[[dict[str, Any]], str] | None = None,
    interval: float = 10.0,
) -> Hook | None:
    """The progress output for where the code runs.

    Args:
        progress: ``False``: none. ``True``: a bar (a line per epoch after it). ``None`` (auto):
            ``tqdm.auto`` in a notebook, a bar on a terminal, else a line per epoch.
        stream: where it goes (default ``sys.stderr``).
        describe: ``record -> str``, the task's reading of an epoch (e.g. the validation MAE in data units).
        interval: off a terminal, seconds between the progress lines within an epoch (default 10).
    """
    if progress is False:
        return None
    if in_notebook():
        return ProgressBar(stream, describe, notebook=True)
    isatty = getattr(stream or sys.stderr, "isatty", None)
    if progress or (callable(isatty) and isatty()):
        return ProgressBar(stream, describe)
    return EpochLines(stream, describe, interval)


class Checkpointing(Hook):
    """Write the trainer's checkpoint after every epoch (``fit(..., resume=True)`` continues from it); under
    torchrun only rank 0 writes."""

    def on_epoch_end(self, loop: Loop, record: dict[str, Any]) -> None:
        from rnnkit.training.distributed import is_main

        if not is_main():  # rank 0 alone writes; every rank holds the same state
            return
        s = loop.state
        loop.trainer._save_checkpoint(
            loop.model, loop.optimizer, s["best"], s["stopper"], s["plateau"], s["shuffler"], s["history"], loop.epoch
        )
