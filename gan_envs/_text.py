"""Text helpers shared by the library's one-line error messages."""

from __future__ import annotations

__all__ = ["counted", "first_line", "short_repr"]


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


def short_repr(value: object, limit: int = 80) -> str:
    """``repr(value)``, cut to ``limit`` characters with an ellipsis when longer.

    Example:
        >>> short_repr([1, 2, 3]), short_repr("x" * 100, limit=10)
        ('[1, 2, 3]', "'xxxxxxxx…")
    """
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 1] + "…"
