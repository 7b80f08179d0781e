"""Checks of the writer's and reader's arguments: one-line errors at the call that passed them."""

from __future__ import annotations

import json
from typing import Any

import numpy as np

from gan_envs._numbers import whole_number as _whole_number
from gan_envs._text import short_repr
from gan_envs.datasets.errors import DatasetError

__all__ = ["whole_number", "json_friendly"]


def whole_number(value: Any, what: str, *, low: int = 0, high: int | None = None,
                 error: type[Exception] = DatasetError) -> int:
    """:func:`gan_envs._numbers.whole_number` raising :class:`DatasetError` by default.

    Example:
        >>> whole_number(2.5, "n")
        Traceback (most recent call last):
        ...
        gan_envs.datasets.errors.DatasetError: n must be a whole number, got 2.5
    """
    return _whole_number(value, what, low=low, high=high, error=error)


def json_friendly(value: Any, what: str) -> Any:
    """``value`` as plain JSON data (numpy numbers and arrays become Python numbers and lists),
    or a DatasetError naming ``what``: metadata is stored as JSON text.

    Example:
        >>> import numpy as np
        >>> json_friendly({"lr": np.float32(0.5), "sizes": np.arange(2)}, "metadata")
        {'lr': 0.5, 'sizes': [0, 1]}
        >>> json_friendly({np.int64(0): "noop"}, "metadata")  # keys become strings, as int keys do
        {'0': 'noop'}
    """
    def plain(obj: Any) -> Any:
        if isinstance(obj, (np.generic, np.ndarray)):
            return obj.tolist()
        raise TypeError(f"{type(obj).__name__} {short_repr(obj, 60)}")

    def plain_keys(obj: Any) -> Any:  # json turns int keys into strings, but not numpy's ints
        if isinstance(obj, dict):
            return {(k.item() if isinstance(k, np.generic) else k): plain_keys(v)
                    for k, v in obj.items()}
        if isinstance(obj, (list, tuple)):
            return [plain_keys(v) for v in obj]
        return obj

    try:
        return json.loads(json.dumps(plain_keys(value), default=plain, allow_nan=False))
    except (TypeError, ValueError) as err:
        held = str(err) if isinstance(err, TypeError) else "NaN or infinity"
        if held.startswith("keys must be"):  # json's own wording: say what it is about
            held = f"a key that is not a str, int, float, bool or None ({held})"
        raise DatasetError(f"{what} must be JSON data (str, numbers, lists, dicts; no NaN or "
                           f"infinity), it holds {held}") from None
