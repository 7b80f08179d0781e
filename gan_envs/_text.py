"""Text helpers shared by the library's one-line error messages."""

from __future__ import annotations

__all__ = ["first_line"]


def first_line(error: BaseException, empty: str = "no message") -> str:
    """The first line of an exception's text, or ``empty`` when it has none (an empty file's
    ``EOFError``, say).

    Example:
        >>> first_line(ValueError("bad value\\nmore detail")), first_line(EOFError(), "cut short")
        ('bad value', 'cut short')
    """
    lines = str(error).strip().splitlines()
    return lines[0] if lines else empty
