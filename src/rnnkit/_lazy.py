"""Names of a package that load on first use (PEP 562), shared by ``rnnkit``, ``rnnkit.data`` and
``rnnkit.training``, so that the commands that need no torch (``--version``, ``data``) start fast."""

from __future__ import annotations

import importlib
from collections.abc import Callable
from typing import Any


def lazy_names(package: str, names: dict[str, str], namespace: dict[str, Any],
               modules: frozenset[str] = frozenset()) -> tuple[Callable[[str], Any], Callable[[], list[str]]]:  # fmt: skip
    """(``__getattr__``, ``__dir__``) for ``package``: ``names`` maps a name to the module that holds it,
    ``modules`` are submodules reached as attributes; a loaded value is kept in ``namespace``."""

    def __getattr__(name: str) -> Any:
        if name in modules:
            value = importlib.import_module(f"{package}.{name}")
        elif name in names:
            value = getattr(importlib.import_module(names[name]), name)
        else:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        namespace[name] = value
        return value

    def __dir__() -> list[str]:
        return sorted(set(namespace) | set(modules) | set(names))

    return __getattr__, __dir__
