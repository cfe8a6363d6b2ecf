"""Text files for generation: a corpus to train on, and prompts (one a line) for ``rnnkit predict``."""

from __future__ import annotations

from pathlib import Path

from rnnkit.datasets._files import read_text
from rnnkit.errors import RnnkitError


def read_prompts(path: str | Path) -> list[str]:
    """The prompts of a text file (plain or compressed), one a line; empty lines are left out.

    Example:
        >>> read_prompts("prompts.txt")  # doctest: +SKIP
        ['monday. the ', 'at noon']
    """
    text = _read(path, "prompts file")
    prompts = [line for line in text.splitlines() if line.strip()]
    if not prompts:
        raise RnnkitError(f"{path}: no prompt in the file (one prompt a line)")
    return prompts


def read_corpus(path: str | Path) -> str:
    """The whole text of a corpus file (plain or compressed; UTF-8, else latin-1), newlines as ``\\n``.

    Example:
        >>> read_corpus("diary.txt")[:12]  # doctest: +SKIP
        'monday. the '
    """
    return _read(path, "text file").replace("\r\n", "\n").replace("\r", "\n")


def _read(path: str | Path, what: str) -> str:
    """``read_text(path)``, with a missing or unreadable file as one line naming ``what`` it is."""
    try:
        return read_text(path)
    except FileNotFoundError:
        raise RnnkitError(f"{what} not found: {path}") from None
    except (IsADirectoryError, PermissionError) as e:
        raise RnnkitError(f"cannot read the {what} {path}: {e.strerror}") from None
