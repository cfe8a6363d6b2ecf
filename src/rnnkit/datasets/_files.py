"""Where data files come from: explicit path, RNNKIT_DATA_DIR, the cache, then a download.

The only module of rnnkit that touches the network. Downloads use urllib with a timeout,
land in a temporary file next to their destination, are checked, then moved into place.

Checksums: the official files are not pinned by a published sha256 (SILSO's monthly file
grows every month; Keras publishes no hash for the Jena zip), so a download is accepted when
its content has the expected structure (checked by the caller's ``verify``), and its sha256 is
then written beside it (``NAME.sha256``). Every later use of the cached copy is checked
against that sidecar, so a truncated or altered cache file is caught, not read.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
import urllib.request
from collections.abc import Callable
from pathlib import Path

from rnnkit.errors import RnnkitError

ENV_VAR = "RNNKIT_DATA_DIR"
DOWNLOAD_TIMEOUT_S = 60


def data_dir() -> Path | None:
    """The folder named by ``RNNKIT_DATA_DIR``, or None when unset or empty."""
    value = os.environ.get(ENV_VAR, "").strip()
    return Path(value).expanduser() if value else None


def cache_dir() -> Path:
    """rnnkit's download cache, ``~/.cache/rnnkit``."""
    return Path.home() / ".cache" / "rnnkit"


def find_in(folder: Path, names: list[str], patterns: list[str] = ()) -> list[Path]:
    """The first of ``names`` present in ``folder``, else every file matching ``patterns`` (sorted)."""
    if not folder.is_dir():
        return []
    for name in names:
        if (folder / name).is_file():
            return [folder / name]
    return sorted({p for pattern in patterns for p in folder.glob(pattern) if p.is_file()})


def sha256_of(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def check_sidecar(path: Path) -> None:
    """Raise RnnkitError when ``path`` has a ``.sha256`` sidecar that its content does not match."""
    sidecar = path.with_name(path.name + ".sha256")
    if sidecar.is_file():
        expected = sidecar.read_text().split()[0]
        if sha256_of(path) != expected:
            raise RnnkitError(f"{path}: sha256 differs from {sidecar.name}; the cached file is damaged, delete it")


def fetch(url: str, dest: Path, timeout: float = DOWNLOAD_TIMEOUT_S) -> None:
    """Download ``url`` to ``dest`` (tests replace this function to simulate being offline)."""
    with urllib.request.urlopen(url, timeout=timeout) as response, open(dest, "wb") as out:
        while block := response.read(1 << 20):
            out.write(block)


def download(url: str, dest: Path, verify: Callable[[Path], None]) -> Path:
    """Download ``url`` to ``dest`` atomically; ``verify(tmp_path)`` raises if the content is wrong."""
    dest.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(dir=dest.parent, prefix=dest.name + ".", suffix=".part")
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        fetch(url, tmp)
        verify(tmp)
        digest = sha256_of(tmp)
        os.replace(tmp, dest)
        dest.with_name(dest.name + ".sha256").write_text(f"{digest}  {dest.name}\n")
    finally:
        tmp.unlink(missing_ok=True)
    return dest


def resolve(
    names: list[str],
    url: str,
    verify: Callable[[Path], None],
    *,
    download_as: str,
    patterns: list[str] = (),
    fallback: Path | None = None,
) -> list[Path]:
    """Find a data file: ``RNNKIT_DATA_DIR``, then the cache, then ``fallback`` (a file shipped with
    the package) when given, else download ``url`` into the cache.

    ``names`` are the accepted file names in order of preference, ``patterns`` globs used when
    no name is present (e.g. the station's ``mpi_roof*.csv*`` exports), ``download_as`` the
    cache file a download becomes. Offline with no file: one RnnkitError naming
    ``RNNKIT_DATA_DIR``, the file and the official address.
    """
    env = data_dir()
    for folder in [f for f in (env, cache_dir()) if f is not None]:
        found = find_in(folder, list(names), list(patterns))
        if found:
            for p in found:
                check_sidecar(p)
            return found
    if fallback is not None:
        return [fallback]
    try:
        return [download(url, cache_dir() / download_as, verify)]
    except OSError as e:  # URLError, timeouts, refused connections, unwritable cache
        where = f"now {env}" if env is not None else "not set"
        raise RnnkitError(
            f"{download_as} not found and the download from {url} failed ({getattr(e, 'reason', e)}); "
            f"put the file in the folder named by {ENV_VAR} ({where}) or in {cache_dir()}, or pass its path"
        ) from None
