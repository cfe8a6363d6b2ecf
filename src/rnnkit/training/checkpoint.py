"""Training checkpoints as one safetensors file: tensors plus JSON metadata, never pickle.

``checkpoint.safetensors`` holds, after an epoch:

- ``model.<name>``: the model's ``state_dict``;
- ``optim.<param index>.<name>``: the optimizer's per-parameter state tensors (Adam's
  moments and step, RMSprop's square average, SGD's momentum buffer);
- ``best.<name>``: the best epoch's weights (when they are kept);
- ``rng.torch``, ``rng.shuffle`` (and ``rng.cuda.<i>``): random generator states, so that
  dropout masks and the shuffling order continue exactly where they were;

and in its safetensors metadata, under ``rnnkit_checkpoint``, one JSON document: the epoch
number, the history, the optimizer's parameter groups and non-tensor state, the early
stopping and plateau states and the trainer's settings. One file, written atomically, so
a checkpoint is always whole: the one from the last finished epoch.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch

from rnnkit.errors import RnnkitError
from rnnkit.io import read_safetensors, tensors_to_bytes, write_bytes_atomic

CHECKPOINT_NAME = "checkpoint.safetensors"
_META_KEY = "rnnkit_checkpoint"
FORMAT_VERSION = 1


def _jsonable(value: Any) -> Any:
    if isinstance(value, tuple):
        return [_jsonable(v) for v in value]
    if isinstance(value, list):
        return [_jsonable(v) for v in value]
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (bool, int, float, str)) or value is None:
        return value
    raise RnnkitError(f"cannot store a {type(value).__name__} in a checkpoint's JSON: {value!r}")


def flatten_optimizer(optimizer: torch.optim.Optimizer) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """Split ``optimizer.state_dict()`` into tensors ``optim.<i>.<name>`` and JSON metadata."""
    sd = optimizer.state_dict()
    tensors: dict[str, torch.Tensor] = {}
    scalars: dict[str, dict[str, Any]] = {}
    for index, entry in sd["state"].items():
        for name, value in entry.items():
            if isinstance(value, torch.Tensor):
                tensors[f"optim.{index}.{name}"] = value
            else:
                scalars.setdefault(str(index), {})[name] = _jsonable(value)
    return tensors, {"param_groups": _jsonable(sd["param_groups"]), "scalars": scalars}


def unflatten_optimizer(
    optimizer: torch.optim.Optimizer, tensors: dict[str, torch.Tensor], meta: dict[str, Any]
) -> None:
    """Load the state split by :func:`flatten_optimizer` back into ``optimizer``."""
    state: dict[int, dict[str, Any]] = {}
    for key, value in tensors.items():
        if key.startswith("optim."):
            _, index, name = key.split(".", 2)
            state.setdefault(int(index), {})[name] = value
    for index, entry in meta["scalars"].items():
        state.setdefault(int(index), {}).update(entry)
    groups = meta["param_groups"]
    current = optimizer.param_groups
    if len(groups) != len(current):
        raise RnnkitError(f"checkpoint has {len(groups)} optimizer parameter groups, the optimizer has {len(current)}")
    # JSON turned tuples (Adam's betas) into lists: give them back the type the optimizer uses.
    for saved, now in zip(groups, current):
        for k, v in now.items():
            if isinstance(v, tuple) and isinstance(saved.get(k), list):
                saved[k] = tuple(saved[k])
    optimizer.load_state_dict({"state": state, "param_groups": groups})


def save_checkpoint(folder: str | Path, tensors: dict[str, torch.Tensor], meta: dict[str, Any]) -> Path:
    """Write ``folder/checkpoint.safetensors`` atomically with ``tensors`` and ``meta`` as JSON."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    meta = {"format_version": FORMAT_VERSION, **_jsonable(meta)}
    blob = tensors_to_bytes(tensors, metadata={_META_KEY: json.dumps(meta)})
    return write_bytes_atomic(folder / CHECKPOINT_NAME, blob)


def load_checkpoint(folder: str | Path) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """Read ``folder/checkpoint.safetensors``: returns ``(tensors, meta)``.

    Raises:
        RnnkitError: there is no checkpoint, or the file is not an rnnkit checkpoint.
    """
    path = Path(folder) / CHECKPOINT_NAME
    if not path.is_file():
        raise RnnkitError(f"no checkpoint to resume from: {str(path)!r} does not exist")
    tensors, metadata = read_safetensors(path)
    if _META_KEY not in metadata:
        raise RnnkitError(f"{str(path)!r} is a safetensors file but not an rnnkit checkpoint")
    meta = json.loads(metadata[_META_KEY])
    if meta.get("format_version") != FORMAT_VERSION:
        raise RnnkitError(
            f"{str(path)!r} has checkpoint format {meta.get('format_version')!r}, expected {FORMAT_VERSION}"
        )
    return tensors, meta


def with_prefix(tensors: dict[str, torch.Tensor], prefix: str) -> dict[str, torch.Tensor]:
    """``{prefix + name: tensor}``."""
    return {prefix + k: v for k, v in tensors.items()}


def strip_prefix(tensors: dict[str, torch.Tensor], prefix: str) -> dict[str, torch.Tensor]:
    """The tensors whose name starts with ``prefix``, with the prefix removed."""
    return {k[len(prefix) :]: v for k, v in tensors.items() if k.startswith(prefix)}
