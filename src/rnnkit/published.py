"""Published reference numbers that a config carries as data (``[published]``), printed beside rnnkit's.

A config that reproduces a published exercise names its source and, per published model, its MAE
(a number, or ``[low, high]`` where the source gives a range) and the row of rnnkit's table it is
compared with (``run_as``). The run's table then shows the published values in two more columns,
and lists the published rows that rnnkit does not run.
"""

from __future__ import annotations

import math
from typing import Any

PUBLISHED_VAL, PUBLISHED_TEST = "published val", "published test"


def format_value(value: float | list[float] | None) -> str:
    """``2.44``, ``3.40-3.50`` for a range, ``-`` when the source gives none."""
    if value is None:
        return "-"
    if isinstance(value, list | tuple):
        return f"{value[0]:.2f}-{value[1]:.2f}"
    return f"{value:.2f}"


def add_columns(rows: list[dict[str, Any]], published: dict[str, Any] | None) -> list[dict[str, Any]]:
    """The table ``rows`` (each with a ``"model"``) with the published val/test MAE beside the matching ones."""
    if not published:
        return rows
    by_name: dict[str, dict[str, Any]] = {}
    for ref in published["rows"]:
        if ref.get("run_as"):
            by_name.setdefault(ref["run_as"], ref)
    out = []
    for row in rows:
        ref = by_name.get(row["model"])
        out.append(
            {
                **row,
                PUBLISHED_VAL: format_value(ref["mae_val"]) if ref else "",
                PUBLISHED_TEST: format_value(ref["mae_test"]) if ref else "",
            }
        )
    return out


def notes(published: dict[str, Any] | None) -> list[str]:
    """Lines under the table: the source, what each compared row is called there, and the rows not run here."""
    if not published:
        return []
    lines = [f"published ({published['units']}): {published['source']}"]
    for ref in published["rows"]:
        where = f"rnnkit row {ref['run_as']!r}" if ref.get("run_as") else "not run here"
        note = f"; {ref['note']}" if ref.get("note") else ""
        if ref.get("source") and ref["source"] != published["source"]:  # a row from another source says which
            note += f"; source: {ref['source']}"
        lines.append(
            f"  {ref['model']}: val {format_value(ref['mae_val'])}, test {format_value(ref['mae_test'])} "
            f"({where}{note})"
        )
    return lines


def check_range(value: Any) -> Any:
    """A published MAE: a number > 0, or ``[low, high]`` with 0 < low <= high."""
    if value is None:
        return value
    if isinstance(value, list):
        if (
            len(value) != 2
            or not all(isinstance(v, int | float) and not isinstance(v, bool) for v in value)
            or not 0 < value[0] <= value[1]
            or not all(math.isfinite(v) for v in value)
        ):
            raise ValueError(f"must be a number or a range [low, high] with 0 < low <= high, got {value}")
        return [float(v) for v in value]
    if isinstance(value, int | float) and not isinstance(value, bool) and 0 < value < math.inf:
        return float(value)
    raise ValueError(f"must be a number > 0 or a range [low, high], got {value!r}")
