"""Whole-number checks shared by the library (no heavy imports: the trainers use it too)."""

from __future__ import annotations

import numbers
import operator
from typing import Any

import numpy as np

__all__ = ["whole_number", "is_real"]


def is_real(value: Any) -> bool:
    """A real number, Python's or numpy's (``np.float32(0.5)``), but not a bool.

    Example:
        >>> is_real(np.float32(0.5)), is_real(True), is_real("1")
        (True, False, False)
    """
    return isinstance(value, numbers.Real) and not isinstance(value, (bool, np.bool_))


def whole_number(value: Any, what: str, *, low: int = 0, high: int | None = None,
                 error: type[Exception] = ValueError) -> int:
    """``value`` as a Python int if it is a whole number (an ``int``, a numpy integer, a 0-d
    integer tensor: anything ``operator.index`` takes, but not a bool) in ``[low, high]``;
    otherwise ``error`` naming ``what``.

    Example:
        >>> import numpy as np
        >>> whole_number(np.int64(16), "chunk_frames", low=1)
        16
        >>> whole_number(2.5, "n")
        Traceback (most recent call last):
        ...
        ValueError: n must be a whole number, got 2.5
    """
    boolean = isinstance(value, (bool, np.bool_)) or "bool" in str(getattr(value, "dtype", ""))
    try:
        number = None if boolean else operator.index(value)
    except TypeError:
        number = None
    if number is None:
        raise error(f"{what} must be a whole number, got {value!r}")
    if number < low or (high is not None and number > high):
        span = f">= {low}" if high is None else f"in [{low}, {high}]"
        raise error(f"{what} must be {span}, got {number}")
    return number


def flag(value: Any, what: str, *, error: type[Exception] = ValueError) -> bool:
    """``value`` as a Python bool if it is one (Python's or NumPy's), otherwise ``error``
    naming ``what``: a string such as ``"no"`` would otherwise count as True.

    Example:
        >>> import numpy as np
        >>> flag(np.bool_(True), "quick")
        True
        >>> flag("no", "quick")
        Traceback (most recent call last):
        ...
        ValueError: quick must be True or False, got 'no'
    """
    if isinstance(value, (bool, np.bool_)):
        return bool(value)
    raise error(f"{what} must be True or False, got {value!r}")
