"""Prompts for text generation: a text file, one prompt a line (``rnnkit predict`` on a generation run)."""

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
    try:
        text = read_text(path)
    except FileNotFoundError:
        raise RnnkitError(f"prompts file not found: {path}") from None
    except (IsADirectoryError, PermissionError) as e:
        raise RnnkitError(f"cannot read the prompts file {path}: {e.strerror}") from None
    prompts = [line for line in text.splitlines() if line.strip()]
    if not prompts:
        raise RnnkitError(f"{path}: no prompt in the file (one prompt a line)")
    return prompts
