"""Files that rnnkit writes and reads: atomic writes, and model weights as safetensors.

Every file is written atomically: the bytes go to a temporary file in the same folder,
are flushed and fsync'ed, then ``os.replace`` puts them in place, so a reader (or a run
interrupted half-way) sees either the old file or the new one, never a torn one. The file
gets the mode any new file would (``0o666`` less the umask), not the temporary file's 0600.

A model is two files: ``<stem>.safetensors`` (the weights) and ``<stem>.json`` (what the
model is: its class, its ``get_config()`` when it has one, shapes, metadata). Weights are
read with safetensors only: loading a model file never runs code (no pickle, no
``torch.load``).
"""

from __future__ import annotations

import errno
import json
import os
import struct
import tempfile
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError
from safetensors.torch import load as _st_load
from safetensors.torch import save as _st_save
from torch import nn

from rnnkit.errors import RnnkitError

__all__ = [
    "write_bytes_atomic",
    "write_text_atomic",
    "write_json_atomic",
    "tensors_to_bytes",
    "tensors_from_bytes",
    "read_safetensors",
    "save_model",
    "load_weights",
    "read_model_json",
    "read_json",
]

MODEL_FORMAT = "rnnkit-model"
MODEL_FORMAT_VERSION = 1


# --- atomic writes ---------------------------------------------------------------------------
def write_bytes_atomic(path: str | os.PathLike[str], data: bytes) -> Path:
    """Write ``data`` to ``path`` atomically (temp file in the same folder, fsync, ``os.replace``).

    Args:
        path: destination file; its folder must exist.
        data: the bytes to write.

    Returns:
        The destination as a ``Path``.

    Example:
        >>> write_bytes_atomic("out/weights.bin", b"...")  # doctest: +SKIP
    """
    path = Path(path)
    folder = path.parent if str(path.parent) else Path(".")
    if not folder.is_dir():
        raise FileNotFoundError(f"folder {str(folder)!r} does not exist (writing {str(path)!r})")
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=folder)
    try:
        if hasattr(os, "fchmod"):  # mkstemp makes 0600; a file of the run is any file under the umask
            os.fchmod(fd, 0o666 & ~_umask())
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException as e:
        # Leave no half-written temp file behind, whatever interrupted us.
        Path(tmp).unlink(missing_ok=True)
        if isinstance(e, OSError) and e.filename is None and e.errno is not None:
            raise OSError(e.errno, e.strerror, str(path)) from None  # a full disk: name the file it hit
        raise
    _fsync_folder(folder)
    return path


def _umask() -> int:
    # Read without changing it where the system says it (Linux), else set-and-restore.
    try:
        with open("/proc/self/status", encoding="ascii") as f:
            for line in f:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError):
        pass
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def _fsync_folder(folder: Path) -> None:
    # Makes the rename itself durable; not possible on every platform (Windows), hence best effort.
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def write_text_atomic(path: str | os.PathLike[str], text: str, encoding: str = "utf-8") -> Path:
    """Write ``text`` to ``path`` atomically (see :func:`write_bytes_atomic`).

    Example:
        >>> write_text_atomic("out/history.csv", "epoch,loss\\n1,0.5\\n")  # doctest: +SKIP
    """
    return write_bytes_atomic(path, text.encode(encoding))


def write_json_atomic(path: str | os.PathLike[str], obj: Any, indent: int = 2) -> Path:
    """Write ``obj`` as JSON (UTF-8, sorted keys kept in insertion order, trailing newline) atomically.

    Example:
        >>> write_json_atomic("out/metrics.json", {"mae": 2.6})  # doctest: +SKIP
    """
    return write_text_atomic(path, json.dumps(obj, indent=indent, ensure_ascii=False) + "\n")


def read_json(path: str | os.PathLike[str], what: str = "file", *, kind: type = dict) -> Any:
    """Read a JSON file that rnnkit wrote; anything unreadable is one :class:`RnnkitError` naming the file.

    Args:
        path: the file.
        what: what the file is, for the message (``"run metrics"``).
        kind: the type the document must have at the top (default ``dict``).

    Raises:
        FileNotFoundError: the file does not exist.
        RnnkitError: not UTF-8, not JSON, nested too deeply, or not a ``kind`` at the top.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(errno.ENOENT, f"the {what} does not exist", str(path))
    try:
        document = json.loads(path.read_bytes().decode("utf-8"))
    except UnicodeDecodeError:
        raise RnnkitError(f"{path}: the {what} is not UTF-8 text (damaged? write it again)") from None
    except json.JSONDecodeError as e:
        raise RnnkitError(
            f"{path}: the {what} is not valid JSON ({e.msg} at line {e.lineno} column {e.colno})"
        ) from None
    except RecursionError:
        raise RnnkitError(f"{path}: the {what} is nested too deeply to be an rnnkit file") from None
    if not isinstance(document, kind):
        raise RnnkitError(
            f"{path}: the {what} must hold a JSON {'object' if kind is dict else kind.__name__}, "
            f"got {type(document).__name__}"
        )
    return document


# --- safetensors -------------------------------------------------------------------------------
def tensors_to_bytes(tensors: dict[str, torch.Tensor], metadata: dict[str, str] | None = None) -> bytes:
    """Serialise named tensors as safetensors bytes (copies to CPU, contiguous, unshared).

    Example:
        >>> blob = tensors_to_bytes({"w": torch.ones(2)})
        >>> tensors_from_bytes(blob)["w"]
        tensor([1., 1.])
    """
    # Clone: safetensors refuses tensors that share storage (tied weights, views of one buffer).
    flat = {k: v.detach().to("cpu").contiguous().clone() for k, v in tensors.items()}
    return _st_save(flat, metadata=metadata)


def tensors_from_bytes(data: bytes, source: str = "<bytes>") -> dict[str, torch.Tensor]:
    """Parse safetensors bytes into named CPU tensors; anything else is a :class:`RnnkitError`."""
    _check_safetensors_header(data[: 8 + 1], len(data), source)
    try:
        return _st_load(data)
    except (SafetensorError, ValueError, RuntimeError) as e:
        raise RnnkitError(f"not a safetensors file (corrupt or truncated): {source}: {e}") from None


def _check_safetensors_header(head: bytes, size: int, source: str) -> None:
    # Layout: 8-byte little-endian header length n, then n bytes of JSON starting with "{".
    if size < 9:
        raise RnnkitError(f"not a safetensors file (only {size} bytes): {source}")
    (n,) = struct.unpack("<Q", head[:8])
    if n > size - 8 or head[8:9] != b"{":
        raise RnnkitError(
            f"not a safetensors file: {source} (a model file must be safetensors; "
            "pickle and torch.save files are refused because loading them can run code)"
        )


def read_safetensors(path: str | os.PathLike[str]) -> tuple[dict[str, torch.Tensor], dict[str, str]]:
    """Read a safetensors file: returns ``(tensors, metadata)``; never unpickles anything.

    Raises:
        FileNotFoundError: the file does not exist.
        RnnkitError: the file is not a valid safetensors file.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"model file {str(path)!r} does not exist")
    data = path.read_bytes()
    tensors = tensors_from_bytes(data, source=str(path))
    (n,) = struct.unpack("<Q", data[:8])
    try:
        header = json.loads(data[8 : 8 + n].decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise RnnkitError(f"not a safetensors file (bad header): {path}: {e}") from None
    return tensors, dict(header.get("__metadata__") or {})


# --- models ----------------------------------------------------------------------------------
def _stem(path_stem: str | os.PathLike[str]) -> Path:
    p = Path(path_stem)
    return p.with_suffix("") if p.suffix in (".safetensors", ".json") else p


def save_model(
    model: nn.Module, path_stem: str | os.PathLike[str], metadata: dict[str, Any] | None = None
) -> tuple[Path, Path]:
    """Save ``model`` as ``<stem>.safetensors`` (weights) and ``<stem>.json`` (architecture), atomically.

    The JSON holds the model's class, ``model.get_config()`` when the model has it (else
    ``null``: the weights can still be loaded into a model built by other means), the name,
    shape and dtype of every tensor, the parameter count and ``metadata``.

    Args:
        model: any ``nn.Module``; its ``state_dict()`` is saved.
        path_stem: ``"runs/x/model"`` writes ``runs/x/model.safetensors`` and ``runs/x/model.json``
            (a ``.safetensors`` / ``.json`` suffix is dropped).
        metadata: extra JSON-serialisable facts (scaler, target, units, ...).

    Returns:
        ``(weights_path, json_path)``.

    Example:
        >>> save_model(torch.nn.Linear(3, 1), "out/model")  # doctest: +SKIP
    """
    stem = _stem(path_stem)
    state = model.state_dict()
    get_config = getattr(model, "get_config", None)
    config = get_config() if callable(get_config) else None
    description = {
        "format": MODEL_FORMAT,
        "format_version": MODEL_FORMAT_VERSION,
        "class": f"{type(model).__module__}.{type(model).__qualname__}",
        "config": config,
        "params": int(sum(p.numel() for p in model.parameters())),
        "tensors": {
            k: {"shape": list(v.shape), "dtype": str(v.dtype).removeprefix("torch.")} for k, v in state.items()
        },
        "metadata": metadata or {},
    }
    weights_path = write_bytes_atomic(
        stem.with_suffix(".safetensors"), tensors_to_bytes(dict(state), {"format": MODEL_FORMAT})
    )
    json_path = write_json_atomic(stem.with_suffix(".json"), description)
    return weights_path, json_path


def read_model_json(path_stem: str | os.PathLike[str]) -> dict[str, Any]:
    """Read ``<stem>.json`` written by :func:`save_model`; a missing or foreign file is a clear error."""
    path = _stem(path_stem).with_suffix(".json")
    if not path.is_file():
        raise FileNotFoundError(f"model description {str(path)!r} does not exist")
    try:
        description = json.loads(path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise RnnkitError(f"model description {str(path)!r} is not valid JSON: {e}") from None
    if not isinstance(description, dict) or description.get("format") != MODEL_FORMAT:
        raise RnnkitError(f"model description {str(path)!r} is not an rnnkit model description")
    return description


def load_weights(path: str | os.PathLike[str], model: nn.Module | None = None) -> dict[str, torch.Tensor]:
    """Read model weights from a safetensors file (never pickle); load them into ``model`` if given.

    Args:
        path: ``model.safetensors`` (or its stem ``model``).
        model: when given, the weights are loaded with ``strict=True``; missing or unexpected
            names and wrong shapes are a :class:`RnnkitError` that lists them.

    Returns:
        The named tensors (CPU).

    Example:
        >>> weights = load_weights("runs/x/model.safetensors", model)  # doctest: +SKIP
    """
    p = Path(path)
    if p.suffix != ".safetensors" and not p.is_file():
        p = _stem(p).with_suffix(".safetensors")
    tensors, _ = read_safetensors(p)
    if model is not None:
        load_state_into(model, tensors, source=str(p))
    return tensors


def load_state_into(model: nn.Module, tensors: dict[str, torch.Tensor], source: str = "weights") -> None:
    """``model.load_state_dict(tensors)`` with a one-line :class:`RnnkitError` when they do not fit."""
    own = model.state_dict()
    missing = sorted(set(own) - set(tensors))
    unexpected = sorted(set(tensors) - set(own))
    wrong = [
        f"{k} {tuple(tensors[k].shape)} != {tuple(own[k].shape)}"
        for k in own
        if k in tensors and tensors[k].shape != own[k].shape
    ]
    if missing or unexpected or wrong:
        parts = []
        if missing:
            parts.append(f"missing {missing[:5]}")
        if unexpected:
            parts.append(f"unexpected {unexpected[:5]}")
        if wrong:
            parts.append(f"wrong shapes {wrong[:5]}")
        raise RnnkitError(f"{source} do not fit the model {type(model).__name__}: " + "; ".join(parts))
    model.load_state_dict(tensors, strict=True)
