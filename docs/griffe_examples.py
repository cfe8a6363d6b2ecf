"""A griffe extension for the API reference: rnnkit's docstrings head their doctests ``Example:``.

Griffe's Google parser reads ``Examples:`` as examples (``>>>`` lines and their output as code) but
``Example:`` as an admonition of prose, where an output such as ``[0.5, 0.4]`` reads as a Markdown
link. The docstrings stay as they are (pytest runs them as doctests); the reference reads them as
examples.
"""

from __future__ import annotations

import re
from typing import Any

import griffe

_HEADING = re.compile(r"^(\s*)Example:\s*$", re.MULTILINE)


class ExampleSections(griffe.Extension):
    """Rename each ``Example:`` section heading to ``Examples:`` before the docstring is parsed."""

    def on_instance(self, *, obj: griffe.Object, **kwargs: Any) -> None:
        if obj.docstring is not None:
            obj.docstring.value = _HEADING.sub(r"\1Examples:", obj.docstring.value)
