"""A run folder belongs to one run: its identity, the lock that keeps out a second writer.

``run.json`` is the first file a run writes: ``run_id`` (new for every fresh run) and
``config_hash`` (SHA-256 of the resolved config, canonical JSON). Then:

- a fresh run goes only into a folder that is missing or empty; a folder that holds another
  run (or anything else) is refused, unless ``overwrite=True``, which first removes the old
  run's files (never the files of a folder that is not an rnnkit run);
- ``resume=True`` continues only the run whose identity the folder holds, with the same
  config hash; anything else is refused;
- ``.lock`` is held with ``fcntl.flock`` for as long as the run writes, and records the
  holder's pid and host. A second writer fails at once, naming them. The operating system
  drops the lock when its process dies, even by ``kill -9``, so a stale lock file is taken
  over safely: whoever gets the ``flock`` owns the folder, whatever the file says.

Example::

    identity = claim("runs/a", config.to_dict())      # writes runs/a/run.json, holds runs/a/.lock
    ...                                                # the run writes its files
    release("runs/a")                                  # at the end (or at process exit)
"""

from __future__ import annotations

import atexit
import hashlib
import json
import os
import shutil
import socket
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rnnkit.errors import RnnkitError
from rnnkit.io import read_json, write_json_atomic

try:
    import fcntl
except ImportError:  # Windows: no flock; the lock file is then advisory only (pid and host checked)
    fcntl = None

RUN_FILE = "run.json"
LOCK_FILE = ".lock"
RUN_FORMAT = "rnnkit-run"


@dataclass(frozen=True)
class RunIdentity:
    """Who a run folder belongs to."""

    run_id: str
    config_hash: str
    name: str
    created: str

    def to_dict(self) -> dict[str, Any]:
        return {
            "format": RUN_FORMAT,
            "run_id": self.run_id,
            "config_hash": self.config_hash,
            "name": self.name,
            "created": self.created,
        }


def config_hash(config: dict[str, Any]) -> str:
    """SHA-256 (hex, first 16 digits) of a resolved config as canonical JSON (sorted keys).

    Example:
        >>> config_hash({"b": 1, "a": [1.5, "x"]}) == config_hash({"a": [1.5, "x"], "b": 1})
        True
    """
    text = json.dumps(config, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=True)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:16]


def read_identity(folder: str | Path) -> RunIdentity | None:
    """The identity a run folder holds (None when it has no ``run.json``)."""
    path = Path(folder) / RUN_FILE
    if not path.is_file():
        return None
    raw = read_json(path, "run identity")
    try:
        if raw.get("format") != RUN_FORMAT:
            raise KeyError("format")
        return RunIdentity(
            str(raw["run_id"]), str(raw["config_hash"]), str(raw.get("name", "")), str(raw.get("created", ""))
        )
    except KeyError as e:
        raise RnnkitError(f"{path}: not an rnnkit run identity (no {e.args[0]!r})") from None


# --- the lock ------------------------------------------------------------------------------------
_held: dict[str, tuple[int, RunIdentity | None]] = {}  # resolved folder -> (lock fd, identity)


def _holder(lock: Path) -> str:
    try:
        info = json.loads(lock.read_text(encoding="utf-8"))
        return f"pid {info['pid']} on host {info['host']} since {info['since']}"
    except (OSError, ValueError, KeyError, TypeError):
        return "another process"


def pid_alive(pid: int) -> bool:
    """Whether process ``pid`` runs (a zombie, ended but not yet reaped by its parent, does not)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:  # no /proc (macOS): the signal said it exists
        return True
    return stat.rpartition(")")[2].split()[0] != "Z"


def _acquire(folder: Path) -> tuple[int, str | None]:
    """Hold ``folder/.lock``; returns its fd and, when a dead process had left it, who that was."""
    lock = folder / LOCK_FILE
    for _ in range(10):
        fd = os.open(lock, os.O_RDWR | os.O_CREAT, 0o666)
        if fcntl is not None:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError:
                os.close(fd)
                raise RnnkitError(
                    f"{folder}: in use by another rnnkit run ({_holder(lock)}); wait for it to end, "
                    "or choose another --output"
                ) from None
        try:
            same = os.fstat(fd).st_ino == os.stat(lock).st_ino
        except FileNotFoundError:
            same = False
        if not same:  # the holder removed the file between our open and our flock: try again
            os.close(fd)
            continue
        previous = os.read(fd, 4096).decode("utf-8", "replace")
        stale = None
        if previous.strip():
            try:
                info = json.loads(previous)
                pid, host = int(info["pid"]), str(info["host"])
            except (ValueError, KeyError, TypeError):
                pid, host = -1, ""
            if fcntl is None and host == socket.gethostname() and pid != os.getpid() and pid_alive(pid):
                os.close(fd)
                raise RnnkitError(
                    f"{folder}: in use by another rnnkit run ({_holder(lock)}); wait for it to end, "
                    "or choose another --output"
                )
            stale = f"pid {pid} on host {host}" if pid >= 0 else "an unreadable lock"
        record = json.dumps(
            {"pid": os.getpid(), "host": socket.gethostname(), "since": time.strftime("%Y-%m-%dT%H:%M:%S")}
        ).encode("utf-8")
        os.lseek(fd, 0, os.SEEK_SET)
        os.ftruncate(fd, 0)
        os.write(fd, record)
        os.fsync(fd)
        return fd, stale
    raise RnnkitError(f"{folder}: could not take the lock {lock} (it keeps changing)")


def release(folder: str | Path) -> None:
    """Let go of a run folder claimed by this process (no-op when not held)."""
    key = str(Path(folder).resolve())
    held = _held.pop(key, None)
    if held is None:
        return
    fd, _ = held
    try:
        Path(key, LOCK_FILE).unlink(missing_ok=True)  # unlink while still locked: see _acquire's inode check
    finally:
        os.close(fd)  # closing drops the flock


@atexit.register
def _release_all() -> None:
    for key in list(_held):
        release(key)


def holds(folder: str | Path) -> bool:
    """Whether this process holds ``folder``'s lock."""
    return str(Path(folder).resolve()) in _held


# --- claiming a folder for a run -----------------------------------------------------------------
def _make_folder(folder: Path) -> None:
    for parent in [folder, *folder.parents]:
        if parent.exists() and not parent.is_dir():
            what = "the run folder" if parent == folder else f"a folder above it ({parent})"
            raise RnnkitError(f"cannot use {folder} as a run folder: {what} is a file, not a folder")
        if parent.exists():
            break
    folder.mkdir(parents=True, exist_ok=True)


def _contents(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir() if p.name != LOCK_FILE)


def claim(
    folder: str | Path,
    config: dict[str, Any],
    *,
    resume: bool = False,
    overwrite: bool = False,
    log=None,
    saved: dict[str, Any] | None = None,
) -> RunIdentity:
    """Make ``folder`` this run's: take its lock, check or write its identity (see the module docstring).

    Args:
        folder: the run folder (made when missing).
        config: the resolved config as saved in ``config.json`` (its hash identifies the run).
        resume: continue the run the folder holds; refused when it holds none, or one of another config.
        overwrite: a folder that holds another run is emptied first (refused for a non-run folder).
        log: default None: where to say that a dead process's lock was taken over.
        saved: default None: when resuming, the run's config as its ``config.json`` holds it, where
            the caller has checked that it resolves to ``config``. A run written before a setting
            existed saved its config without that setting's default, so its hash is another: the
            run resumes when ``saved`` has the folder's hash, and ``run.json`` then takes ``config``'s
            (the same run id).

    Returns:
        The run's identity (the folder's own when resuming). A folder this process already holds
        (a run that failed half-way) is not locked again, but checked again all the same.

    Raises:
        RnnkitError: the folder is in use, holds another run, or is not a folder.
    """
    if resume and overwrite:
        raise RnnkitError("resume and overwrite exclude each other: --resume continues a run, --overwrite replaces it")
    folder = Path(folder)
    _make_folder(folder)
    key = str(folder.resolve())
    if key in _held:
        fd, stale = _held[key][0], None
    else:
        fd, stale = _acquire(folder)
        _held[key] = (fd, None)
    try:
        if stale and log is not None:
            log(f"{folder}: took over the lock left by {stale}, which is no longer running")
        identity = _check_or_write(folder, config, resume=resume, overwrite=overwrite, saved=saved)
    except BaseException:
        release(folder)
        raise
    _held[key] = (fd, identity)
    return identity


def _remove_torn_temp_files(folder: Path) -> None:
    # An atomic write killed half-way (kill -9, power) leaves its hidden temp file ".NAME.xxxx.tmp";
    # the real file is untouched. We hold the lock, so no writer of ours is using them.
    for path in folder.rglob(".*.tmp"):
        if path.is_file():
            path.unlink(missing_ok=True)


def _check_or_write(
    folder: Path, config: dict[str, Any], *, resume: bool, overwrite: bool, saved: dict[str, Any] | None = None
) -> RunIdentity:
    digest = config_hash(config)
    existing = read_identity(folder)
    if existing is not None:
        _remove_torn_temp_files(folder)
    else:  # a claim killed while writing run.json leaves only that file's torn temp copy: not another run
        for path in folder.glob(f".{RUN_FILE}.*.tmp"):
            path.unlink(missing_ok=True)
    if resume:
        if existing is None:
            raise RnnkitError(
                f"{folder}: nothing to resume: it holds no run identity ({RUN_FILE}); start the run "
                "with rnnkit train CONFIG --output FOLDER"
            )
        if existing.config_hash != digest and saved is not None and config_hash(saved) == existing.config_hash:
            # the same config, saved before a setting with a default existed: today's hash from now on
            existing = RunIdentity(existing.run_id, digest, existing.name, existing.created)
            write_json_atomic(folder / RUN_FILE, existing.to_dict())
        if existing.config_hash != digest:
            raise RnnkitError(
                f"{folder} holds run {existing.run_id} of another config (config hash "
                f"{existing.config_hash}, this config {digest}); --resume continues only that run"
            )
        return existing
    contents = _contents(folder)
    if contents:
        what = (
            f"run {existing.run_id} ({existing.name}, config hash {existing.config_hash})"
            if existing
            else f"{len(contents)} other file(s), e.g. {contents[0].name}"
        )
        if not overwrite:
            raise RnnkitError(
                f"{folder} already holds {what}; --resume continues that run, --overwrite replaces it, "
                "or choose another --output"
            )
        if existing is None and not (folder / "config.json").is_file():
            raise RnnkitError(
                f"{folder} is not an rnnkit run folder ({what}); --overwrite removes only a run's "
                "files: choose another --output"
            )
        for path in contents:
            if path.is_dir() and not path.is_symlink():
                shutil.rmtree(path)
            else:
                path.unlink()
    identity = RunIdentity(
        uuid.uuid4().hex[:12], digest, str(config.get("name", "")), time.strftime("%Y-%m-%dT%H:%M:%S")
    )
    write_json_atomic(folder / RUN_FILE, identity.to_dict())
    return identity
