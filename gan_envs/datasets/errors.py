"""Exceptions of :mod:`gan_envs.datasets`; each message is one line that names the file and the fix.

* :class:`DatasetError` - base class (a :class:`ValueError`), so callers can catch one type
* :class:`DatasetVersionError` - the file's major ``format_version`` is unknown to this gan-envs
* :class:`CorruptDatasetError` - truncated file, failed checksum, inconsistent episode table (its
  ``hint`` attribute holds the advice that ends the message, ``""`` where there is none)
* :class:`DatasetInUseError` - another process holds the file (a live writer or open readers)
* :class:`DatasetWriteError` - writing failed (disk full, file size limit); committed episodes stay
* :class:`DatasetValueError` - a value given to the writer does not fit the file (its ``array``
  attribute names which: ``"observations"``, ``"actions"``, ``"rewards"``, ...)
"""

from __future__ import annotations

__all__ = [
    "CorruptDatasetError",
    "DatasetError",
    "DatasetInUseError",
    "DatasetValueError",
    "DatasetVersionError",
    "DatasetWriteError",
]


class DatasetError(ValueError):
    """A rollout file or a value written to it is unusable; the message says which and why."""


class DatasetVersionError(DatasetError):
    """The file's ``format_version`` has a major version this gan-envs does not understand."""


class CorruptDatasetError(DatasetError):
    """The file is truncated or damaged (a checksum failed, the episode table disagrees).

    ``hint`` is the advice the message ends with (which tool recovers or locates what), kept
    apart so that a caller doing what it advises can report the damage without it.

    Example:
        >>> err = CorruptDatasetError("a.h5: cannot read episode 3", hint="run verify()")
        >>> str(err), err.hint
        ('a.h5: cannot read episode 3; the file is damaged, run verify()', 'run verify()')
        >>> str(CorruptDatasetError("a.h5: bad table"))
        'a.h5: bad table'
    """

    def __init__(self, message: str, *, hint: str = "") -> None:
        self.hint = hint
        super().__init__(f"{message}; the file is damaged, {hint}" if hint else message)


class DatasetInUseError(DatasetError):
    """Another process has the file open (a writer, or readers while a writer wants it)."""


class DatasetWriteError(DatasetError):
    """Writing to the file failed (for example the disk is full); committed episodes are intact."""


class DatasetValueError(DatasetError):
    """A value given to the writer does not fit the file: outside its space, a non-finite or
    too large reward, a flag that is not True/False. Nothing of the episode was written.

    ``array`` names the array the value was for (``"observations"``, ``"actions"``,
    ``"rewards"``, ``"terminations"``, ``"truncations"``, ``"blank_frame"``), so a caller can
    tell whose doing it was: the environment's observations and rewards, or a policy's actions.

    Example:
        >>> error = DatasetValueError("f.h5: rewards[3] is NaN", "rewards")
        >>> error.array, isinstance(error, DatasetError)
        ('rewards', True)
    """

    def __init__(self, message: str, array: str) -> None:
        super().__init__(message)
        self.array = array

    def __reduce__(self) -> tuple[type, tuple[str, str]]:  # picklable across processes
        return (type(self), (str(self), self.array))
