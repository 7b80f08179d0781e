"""Text helpers shared by the library's one-line error messages."""

from __future__ import annotations

__all__ = ["counted", "first_line"]


def first_line(error: BaseException, empty: str = "no message") -> str:
    """The first line of an exception's text, or ``empty`` when it has none (an empty file's
    ``EOFError``, say).

    Example:
        >>> first_line(ValueError("bad value\\nmore detail")), first_line(EOFError(), "cut short")
        ('bad value', 'cut short')
    """
    lines = str(error).strip().splitlines()
    return lines[0] if lines else empty


def counted(count: int, noun: str) -> str:
    """``count`` and ``noun``, plural unless the count is one.

    Example:
        >>> counted(1, "episode"), counted(3, "step"), counted(0, "frame")
        ('1 episode', '3 steps', '0 frames')
    """
    return f"{count} {noun}" if count == 1 else f"{count} {noun}s"
