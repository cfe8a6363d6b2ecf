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

import gzip
import hashlib
import os
import re
import tempfile
import warnings
import urllib.request
import zipfile
import zlib
from collections.abc import Callable, Sequence
from pathlib import Path

from rnnkit.errors import RnnkitError, RnnkitWarning

ENV_VAR = "RNNKIT_DATA_DIR"
DOWNLOAD_TIMEOUT_S = 60


def data_dir() -> Path | None:
    """The folder named by ``RNNKIT_DATA_DIR``, or None when unset or empty."""
    value = os.environ.get(ENV_VAR, "").strip()
    return Path(value).expanduser() if value else None


def cache_dir() -> Path:
    """rnnkit's download cache, ``~/.cache/rnnkit``."""
    return Path.home() / ".cache" / "rnnkit"


def find_in(folder: Path, names: Sequence[str], patterns: Sequence[str] = ()) -> list[Path]:
    """The first of ``names`` present in ``folder``, else every file matching ``patterns`` (sorted)."""
    if not folder.is_dir():
        return []
    for name in names:
        if (folder / name).is_file():
            return [folder / name]
    return sorted({p for pattern in patterns for p in folder.glob(pattern) if p.is_file()})


def decode_text(raw: bytes) -> str:
    """Bytes of a text file as text, by one rule for every file: a byte-order mark decides (UTF-8,
    UTF-16); else UTF-8 when the bytes are valid UTF-8; else latin-1 (which the station's own
    exports use). So a UTF-8 export, an Excel "CSV UTF-8" one (with a mark) and a latin-1 one
    give the same column names: ``SWDR (W/m²)`` each time, never ``W/mÂ²``.

    Example:
        >>> decode_text("m²".encode("utf-8")) == decode_text("m²".encode("latin-1")) == "m²"
        True
        >>> decode_text(b"\\xef\\xbb\\xbfDate Time")
        'Date Time'
    """
    if raw.startswith(b"\xef\xbb\xbf"):
        raw = raw[3:]
    elif raw.startswith((b"\xff\xfe", b"\xfe\xff")):
        try:
            return raw.decode("utf-16")
        except UnicodeDecodeError:
            pass
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        return raw.decode("latin-1")


def read_text(path: str | Path) -> str:
    """The text of a data file, plain or compressed (gzip or a zip holding one file, told by content).

    Corrupt or truncated compression, a zip with several files and an empty file are each one
    :class:`RnnkitError` naming the file and the problem; the decoding is :func:`decode_text`'s.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(2, "no such file", str(path))
    with open(path, "rb") as f:
        magic = f.read(4)
    try:
        if magic[:2] == b"\x1f\x8b":
            with gzip.open(path, "rb") as f:
                raw = f.read()
        elif magic == b"PK\x03\x04":
            with zipfile.ZipFile(path) as z:
                names = [n for n in z.namelist() if not n.endswith("/") and "__MACOSX" not in n]
                if len(names) != 1:
                    raise RnnkitError(f"{path}: a zip data file must hold one file, it holds {len(names)}: {names[:5]}")
                raw = z.read(names[0])
        elif path.suffix.lower() in (".gz", ".zip"):
            raise RnnkitError(f"{path}: not a {path.suffix.lower()[1:]} file (its first bytes are {magic!r})")
        else:
            raw = path.read_bytes()
    except (OSError, EOFError, zlib.error, zipfile.BadZipFile, NotImplementedError) as e:
        if isinstance(e, (FileNotFoundError, PermissionError, IsADirectoryError)):
            raise
        kind = "zlib" if isinstance(e, zlib.error) else type(e).__name__
        raise RnnkitError(f"{path}: corrupt or truncated compressed file ({kind}: {e})") from None
    if not raw.strip():
        raise RnnkitError(f"{path}: the file is empty")
    return decode_text(raw)


NUMBER = re.compile(r"[-+]?(\d+(\.\d+)?|\.\d+)([eE][-+]?\d+)?")  # a whole number: no "75.", "-", "1e"


def without_cut_last_row(text: str, path: Path, *, sep: str = ",", header: bool = True) -> str:
    """``text`` less its last row where that row was cut short (a download cut, a logger still writing),
    with a :class:`RnnkitWarning` naming the file and the line; a damaged row elsewhere is refused.

    The first line (the header, or with ``header=False`` the first row) sets the number of fields.
    The last row is cut when it has fewer fields (``...,  87.2`` would be read as 87.2 and the
    missing fields as NaN), or when the file ends in it without a line end and its last field is
    not a whole number: empty (read as NaN), ``-``, ``75.`` or ``1e``, or narrower than that field in
    every other row where the column has one width (the station pads its numbers: ``  433.00`` cut
    to ``  43``). A cut that leaves a whole number in a column of varying width (``152.3`` cut to
    ``15``) cannot be told from a file without a final line end, and is read. A row with fewer
    fields before the last is refused: the file is damaged, not merely cut.

    Example (a whole last row without a line end is kept; ``"3,2."`` would be dropped, with a warning):
        >>> without_cut_last_row("a,b\\n1,2.5\\n3,2.25", Path("x.csv"))
        'a,b\\n1,2.5\\n3,2.25'
    """
    lines = text.splitlines()
    numbered = [(i + 1, line) for i, line in enumerate(lines) if line.strip()]  # 1-based lines; blank ones skipped
    if len(numbered) < 2:
        return text
    fields = numbered[0][1].count(sep)  # the header's; names and numbers hold no separator
    first = "the header" if header else "the first row"
    rows = numbered[1:] if header else numbered
    short = [(n, line) for n, line in rows if line.count(sep) < fields]
    n, line = numbered[-1]
    if short:
        if short[0][0] != n:
            n, line = short[0]
            raise RnnkitError(
                f"{path}: line {n} has {line.count(sep) + 1} fields, {first} {fields + 1}: "
                f"{line[:60]!r}; the file is damaged"
            )
        why = f"has {line.count(sep) + 1} of {first}'s {fields + 1} fields"
    elif text.endswith(("\n", "\r")):
        return text
    else:
        value = line.rpartition(sep)[2]
        widths = {len(other.rpartition(sep)[2]) for _, other in rows[:-1]}
        narrower = len(widths) == 1 and len(value) < widths.pop()
        if NUMBER.fullmatch(value.strip()) and not narrower:
            return text
        shown = repr(value.strip()) if value.strip() else "an empty field"
        why = f"ends without a line end in {shown}, a number cut short"
    warnings.warn(
        f"{path}: line {n}, the last row, {why} (the file was cut short?): dropped, not read as data",
        RnnkitWarning,
        stacklevel=3,
    )
    return "\n".join(lines[: n - 1]) + "\n"


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
    names: Sequence[str],
    url: str,
    verify: Callable[[Path], None],
    *,
    download_as: str,
    patterns: Sequence[str] = (),
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
