"""Data-parallel training under ``torchrun``: one global batch split across ranks, the same run as one process.

``torchrun --nproc-per-node N -m rnnkit train CONFIG`` starts N processes; each reads the same
config and data, and :func:`init_from_env` joins them into one process group (gloo on CPUs, NCCL
when every rank has a GPU). The :class:`~rnnkit.training.Trainer` then runs every epoch as one
process would, with the work of each batch shared:

- the shuffling generator is seeded alike on every rank, so every rank draws the same permutation
  and cuts the same global batches of ``batch_size`` windows; rank r takes the r-th contiguous
  piece of each (:func:`piece`, ``torch.tensor_split``'s cut: sizes differ by one at most). This
  is *not* ``DistributedSampler``'s cut, which gives every rank ``batch_size`` windows of its own
  (a global batch N times larger, another run);
- each rank's loss is its piece's mean loss times ``n_r · N / n`` (``n_r`` of the batch's ``n``
  windows), so the gradient that ``DistributedDataParallel`` averages over the ranks is the
  gradient of the whole batch's mean loss: the one-process gradient, to float rounding;
- a stateful model's batches are cut the same way: rank r keeps the rows of its piece, which are
  its own streams (row b of batch k+1 continues row b of batch k on the same rank);
- validation sums (loss, absolute and squared errors, counts) are summed over the ranks, so every
  rank sees the same ``val_loss`` and early stopping, the learning-rate schedule and the best
  epoch are decided alike everywhere;
- only rank 0 writes (the run folder, checkpoints, logs); a checkpoint holds no rank count, so a
  run resumes on any number of ranks.

Example (one process: rank 0 of 1, a batch of 5 is one piece):
    >>> world()
    (0, 1)
    >>> piece(5, 0, 2), piece(5, 1, 2)
    (slice(0, 3, None), slice(3, 5, None))
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from datetime import timedelta
from typing import Any, TypeVar

import torch
import torch.distributed as dist

from rnnkit.errors import RnnkitError

T = TypeVar("T")


def active() -> bool:
    """Whether this process is one of several ranks of a process group."""
    return dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1


def world() -> tuple[int, int]:
    """``(rank, world_size)``: ``(0, 1)`` outside a process group."""
    if not active():
        return 0, 1
    return dist.get_rank(), dist.get_world_size()


def is_main() -> bool:
    """Whether this process writes files and logs (rank 0, or the only process)."""
    return world()[0] == 0


def backend_for(device: str) -> str:
    """The process group's backend for ranks that train on ``device``: NCCL for GPUs, gloo for CPUs.

    Example:
        >>> backend_for("cpu"), backend_for("auto") == ("nccl" if torch.cuda.is_available() else "gloo")
        ('gloo', True)
    """
    return "nccl" if device != "cpu" and torch.cuda.is_available() else "gloo"


def init_from_env(timeout_s: float = 1800.0, device: str = "auto") -> bool:
    """Join the process group that ``torchrun`` describes in the environment; True when there is one.

    ``WORLD_SIZE`` > 1 (set by torchrun) starts NCCL when the ranks train on GPUs (``device`` is
    ``"cuda"``, or ``"auto"`` with CUDA present; each rank takes GPU ``LOCAL_RANK``), else gloo. Threads: torchrun
    sets ``OMP_NUM_THREADS=1`` per rank unless the user set it; when it is unset, each rank takes an
    equal share of this machine's cores (``cpus // LOCAL_WORLD_SIZE``), so the ranks of one machine
    do not fight over the cores (the compiled kernel runs on torch's intra-op threads).
    """
    size = int(os.environ.get("WORLD_SIZE", "1"))
    if size <= 1 or (dist.is_available() and dist.is_initialized()):
        return active()
    if not dist.is_available():
        raise RnnkitError("WORLD_SIZE > 1 but this torch build has no torch.distributed")
    if not os.environ.get("OMP_NUM_THREADS"):
        local = max(1, int(os.environ.get("LOCAL_WORLD_SIZE", "1")))
        torch.set_num_threads(max(1, (os.cpu_count() or 1) // local))
    backend = backend_for(device)
    dist.init_process_group(backend, timeout=timedelta(seconds=timeout_s))
    if backend == "nccl":
        torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", "0")))
    return True


def finish() -> None:
    """Leave the process group (after a barrier, so rank 0's last files are written before any rank exits)."""
    if active():
        import gc

        gc.collect()  # DDP reducers left in reference cycles go before their process group does
        dist.barrier()
        dist.destroy_process_group()


def parallel(model: torch.nn.Module) -> torch.nn.Module:
    """``DistributedDataParallel(model)`` that never syncs buffers during training (a stateful layer's states
    are its rank's own streams); torch >= 2.12 names that ``forward_sync_buffers=False``, older ones
    ``broadcast_buffers=False`` (now deprecated)."""
    import inspect

    from torch.nn.parallel import DistributedDataParallel

    if "forward_sync_buffers" in inspect.signature(DistributedDataParallel.__init__).parameters:
        return DistributedDataParallel(model, forward_sync_buffers=False)
    return DistributedDataParallel(model, broadcast_buffers=False)


def piece(n: int, rank: int, size: int) -> slice:
    """Rank ``rank``'s contiguous piece of a batch of ``n`` rows: the first ``n % size`` pieces hold one more.

    Example:
        >>> [piece(10, r, 4) for r in range(4)]
        [slice(0, 3, None), slice(3, 6, None), slice(6, 8, None), slice(8, 10, None)]
    """
    base, extra = divmod(n, size)
    start = rank * base + min(rank, extra)
    return slice(start, start + base + (1 if rank < extra else 0))


def all_sum(values: list[float] | torch.Tensor) -> torch.Tensor:
    """Element-wise sum over the ranks, in float64 (the values themselves outside a process group)."""
    t = torch.as_tensor(values, dtype=torch.float64).clone()
    if active():
        if dist.get_backend() == "nccl":  # NCCL reduces GPU tensors only
            on_gpu = t.to(torch.device("cuda", torch.cuda.current_device()))
            dist.all_reduce(on_gpu)
            return on_gpu.cpu()
        dist.all_reduce(t)
    return t


def on_main(fn: Callable[[], T]) -> T | None:
    """Run ``fn`` on rank 0 only; the others wait for it and raise its error too, as one line.

    Returns ``fn()`` on rank 0 and None on the others. An exception on rank 0 is re-raised there;
    the other ranks raise a :class:`RnnkitError` that names it (so no rank waits forever on a rank
    that stopped).
    """
    if not active():
        return fn()
    result: Any = None
    error: list[Any] = [None]
    if dist.get_rank() == 0:
        try:
            result = fn()
        except BaseException as e:  # told to the others before it goes on
            error = [f"rank 0: {e}"]
            dist.broadcast_object_list(error, src=0)
            raise
    dist.broadcast_object_list(error, src=0)
    if error[0] is not None:
        raise RnnkitError(str(error[0]))
    return result


class Pieces:
    """The batches of an epoch as rank ``rank`` of ``size`` sees them: its piece of each global batch.

    The global batches are :func:`~rnnkit.training.batches.iter_batches`'s (the same permutation
    from the same generator state); indexable data gather only the piece's windows, a sequence of
    batches (stateful streams) is cut by rows, so each rank keeps its own streams. Iterating yields
    the piece's ``(x, y)``; :attr:`batch_rows` is then the size of the global batch it came from.
    """

    def __init__(
        self,
        data: Any,
        batch_size: int,
        rank: int,
        size: int,
        *,
        shuffle: bool = False,
        generator: torch.Generator | None = None,
        drop_last: bool = False,
    ) -> None:
        self.data, self.batch_size, self.rank, self.size = data, batch_size, rank, size
        self.shuffle, self.generator, self.drop_last = shuffle, generator, drop_last
        self.batch_rows = 0

    def __iter__(self) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        from rnnkit.training.batches import BatchSequence, as_data, batch_indices

        data = as_data(self.data)
        if isinstance(data, BatchSequence):
            for x, y in data:
                self.batch_rows = int(x.shape[0])
                cut = piece(self.batch_rows, self.rank, self.size)
                yield x[cut], y[cut]
            return
        for indices in batch_indices(
            len(data), self.batch_size, shuffle=self.shuffle, generator=self.generator, drop_last=self.drop_last
        ):
            self.batch_rows = len(indices)
            yield data.batch(indices[piece(len(indices), self.rank, self.size)])
