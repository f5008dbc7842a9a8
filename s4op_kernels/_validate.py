"""Argument validation shared by the package: one rule per kind of argument, one message format.

- A wrong *type* raises :class:`ArgumentTypeError`, which is a ``TypeError`` and also a ``ValueError`` (an
  argument of the wrong kind is an invalid value, and callers written against either keep working).
- A value of the right type out of range raises ``ValueError``.
- Messages name the function and the argument and say what was expected: ``allocate(H): expected an
  integer >= 1, got 0``.

``bool`` is never accepted where a number is expected (``True`` is an ``int`` in Python, and a flag passed
as a count is a bug); NumPy and torch integer scalars are accepted as integers (``operator.index``).
"""

from __future__ import annotations

import math
import numbers
import operator
from typing import Any, Optional


class ArgumentTypeError(TypeError, ValueError):
    """An argument of the wrong type."""


def _where(func: str, name: str) -> str:
    return f"{func}({name})" if func else name


def _range(minimum, maximum) -> str:
    if minimum is not None and maximum is not None:
        return f" in [{minimum}, {maximum}]"
    if minimum is not None:
        return f" >= {minimum}"
    if maximum is not None:
        return f" <= {maximum}"
    return ""


def check_int(value: Any, name: str, *, func: str = "", minimum: Optional[int] = None,
              maximum: Optional[int] = None) -> int:
    """``value`` as an ``int``, if it is an integer (not a bool) in ``[minimum, maximum]``."""
    expected = f"an integer{_range(minimum, maximum)}"
    if isinstance(value, bool):
        raise ArgumentTypeError(f"{_where(func, name)}: expected {expected}, got {value!r}")
    try:
        value = operator.index(value)
    except TypeError:
        raise ArgumentTypeError(f"{_where(func, name)}: expected {expected}, got {value!r}") from None
    if (minimum is not None and value < minimum) or (maximum is not None and value > maximum):
        raise ValueError(f"{_where(func, name)}: expected {expected}, got {value}")
    return value


def check_float(value: Any, name: str, *, func: str = "", minimum: Optional[float] = None,
                maximum: Optional[float] = None, min_open: bool = False, max_open: bool = False) -> float:
    """``value`` as a finite ``float`` (not a bool) within the bounds (open where ``*_open``)."""
    lo = "" if minimum is None else (f" > {minimum}" if min_open else f" >= {minimum}")
    hi = "" if maximum is None else (f" < {maximum}" if max_open else f" <= {maximum}")
    expected = f"a finite number{lo}{' and' if lo and hi else ''}{hi}"
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise ArgumentTypeError(f"{_where(func, name)}: expected {expected}, got {value!r}")
    value = float(value)
    bad = not math.isfinite(value)
    bad = bad or (minimum is not None and (value <= minimum if min_open else value < minimum))
    bad = bad or (maximum is not None and (value >= maximum if max_open else value > maximum))
    if bad:
        raise ValueError(f"{_where(func, name)}: expected {expected}, got {value!r}")
    return value
