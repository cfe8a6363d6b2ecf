"""Bad input, and the checks that find it where it enters.

:class:`RnnkitError` is the one exception type for bad input: a file, a config, an argument
or data that rnnkit cannot use. Its message names the thing to fix (the argument, the rule,
the value received). The command line reports it as one line with exit code 2; anything
else that escapes a command is a bug (exit code 1, the traceback written to a file).

It subclasses ``ValueError`` so that ``except ValueError`` in user code keeps working.

The ``check_*`` helpers validate an argument at entry and never clamp or coerce::

    >>> check_bool("go_backwards", True)
    True
    >>> check_bool("go_backwards", "false")
    Traceback (most recent call last):
    ...
    rnnkit.errors.RnnkitError: go_backwards must be True or False, got 'false' (str; no truthy strings or numbers)
    >>> check_number("dropout", 1.5, low=0.0, high=1.0, high_open=True)
    Traceback (most recent call last):
    ...
    rnnkit.errors.RnnkitError: dropout must be in [0.0, 1.0), got 1.5
"""

from __future__ import annotations

import math
import numbers
from typing import Any


class RnnkitError(ValueError):
    """Bad input: a file, a config or data that rnnkit cannot use. The message names the problem."""


class Interrupted(Exception):
    """Ctrl-C, after rnnkit kept what was done: the message says what was kept and how to go on.

    The command line prints it as one line, ``rnnkit: interrupted: ...``, and exits with 130. Not a
    KeyboardInterrupt: click would turn that into its bare "Aborted!", and the message would be lost.
    """


class RnnkitWarning(UserWarning):
    """Input that rnnkit can use after a stated change (e.g. a truncated last row dropped); the command
    line prints it as one line, ``rnnkit: warning: ...``."""


def check_bool(name: str, value: Any) -> bool:
    """``value`` when it is a bool (numpy's too); else a :class:`RnnkitError` (no truthy strings or ints)."""
    if isinstance(value, bool):
        return value
    if type(value).__name__ == "bool_":  # numpy.bool_, without importing numpy here
        return bool(value)
    raise RnnkitError(
        f"{name} must be True or False, got {value!r} ({type(value).__name__}; no truthy strings or numbers)"
    )


def check_int(name: str, value: Any, *, low: int | None = None, high: int | None = None) -> int:
    """``value`` as an int when it is a whole number in ``[low, high]``; bools and floats are refused."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise RnnkitError(f"{name} must be an integer, got {value!r} ({type(value).__name__})")
    value = int(value)
    if (low is not None and value < low) or (high is not None and value > high):
        lo = "-inf" if low is None else low
        hi = "inf" if high is None else high
        raise RnnkitError(f"{name} must be in [{lo}, {hi}], got {value}")
    return value


def check_positive_int(name: str, value: Any) -> int:
    """``value`` as an int when it is a whole number >= 1 (numpy's too); bools and floats are refused.

    >>> check_positive_int("units", 0)
    Traceback (most recent call last):
    ...
    rnnkit.errors.RnnkitError: units must be a positive integer, got 0
    """
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < 1:
        raise RnnkitError(f"{name} must be a positive integer, got {value!r}")
    return int(value)


def check_number(
    name: str,
    value: Any,
    *,
    low: float | None = None,
    high: float | None = None,
    low_open: bool = False,
    high_open: bool = False,
) -> float:
    """``value`` as a float when it is a finite real number in the interval; bools and NaN are refused."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise RnnkitError(f"{name} must be a number, got {value!r} ({type(value).__name__})")
    value = float(value)
    below = low is not None and (value <= low if low_open else value < low)
    above = high is not None and (value >= high if high_open else value > high)
    if not math.isfinite(value) or below or above:
        lo = "(-inf" if low is None else ("(" if low_open else "[") + repr(float(low))
        hi = "inf)" if high is None else repr(float(high)) + (")" if high_open else "]")
        raise RnnkitError(f"{name} must be in {lo}, {hi}, got {value!r}")
    return value
