"""Output files the commands write (PNG, MP4, JSON): checked before the work, written whole.

- :func:`check_output_file` refuses, before any long work, a path with the wrong suffix, a
  folder, or a path under a file.
- :func:`write_bytes_atomically` writes under a temporary name and renames it into place, so a
  full disk leaves the old file (or none) instead of a cut one, with a one-line error.

Example:
    >>> check_output_file("report.txt", ".json", "reports")
    Traceback (most recent call last):
    ...
    ValueError: report.txt: reports are written as .json files; give the file a .json name
"""

from __future__ import annotations

import contextlib
import errno
import os
import secrets
from collections.abc import Callable
from pathlib import Path

__all__ = ["check_output_file", "is_out_of_space", "out_of_space_message",
           "temporary_sibling", "truncate_lines", "write_bytes_atomically"]

_OUT_OF_SPACE = (errno.ENOSPC, errno.EDQUOT, errno.EFBIG)


def check_output_file(path: str | os.PathLike[str], suffix: str, what: str) -> Path:
    """``path`` as a Path if a file ending in ``suffix`` can be written there.

    Raises:
        ValueError: the name does not end in ``suffix`` (``what`` names the kind of file).
        IsADirectoryError: ``path`` is a folder.
        NotADirectoryError: a parent of ``path`` is a file.
    """
    path = Path(path)
    if path.suffix.lower() != suffix:
        raise ValueError(f"{path}: {what} are written as {suffix} files; give the file a "
                         f"{suffix} name")
    if path.is_dir():
        raise IsADirectoryError(f"{path} is a folder; give a file name such as "
                                f"{path / ('out' + suffix)}")
    for parent in path.parents:
        if parent.exists():
            if not parent.is_dir():
                raise NotADirectoryError(f"{parent} is a file, not a folder; choose another "
                                         f"path than {path}")
            break
    return path


def is_out_of_space(error: BaseException) -> bool:
    """Whether ``error`` is a write that failed for want of space (a full disk, a quota, a
    file size limit)."""
    return isinstance(error, OSError) and error.errno in _OUT_OF_SPACE


def out_of_space_message(path: Path, error: OSError) -> str:
    """The one line for a write to ``path`` that failed with ``error``."""
    if is_out_of_space(error):
        return (f"{path}: the disk is full ({error.strerror}); free space and run again "
                "(nothing was written there)")
    return f"{path}: cannot write it ({error.strerror or error}); check the folder and the name"


def temporary_sibling(path: Path) -> Path:
    """A new empty hidden file beside ``path``, unique to this call (any thread or process),
    keeping its suffix (OpenCV picks the container from it); the caller removes it."""
    # not tempfile.mkstemp: its files are owner-only (0600), and the file renamed into place
    # keeps that; a file created 0666 gets the user's umask, as open() would give it
    for _ in range(100):
        name = path.parent / f".{secrets.token_hex(6)}.tmp{path.suffix}"
        try:
            fd = os.open(name, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
        except FileExistsError:
            continue
        os.close(fd)
        return name
    raise FileExistsError(errno.EEXIST, f"no free temporary name beside {path}")


def write_bytes_atomically(path: str | os.PathLike[str], data: bytes | memoryview) -> Path:
    """Write ``data`` to ``path`` through a temporary file renamed into place; create the
    parent folder when missing.

    Raises:
        OSError: one line naming ``path`` and the cause (a full disk says so).

    Example:
        >>> import tempfile
        >>> with tempfile.TemporaryDirectory() as d:
        ...     write_bytes_atomically(Path(d) / "new" / "a.json", b"{}").read_bytes()
        b'{}'
    """
    path = Path(path)
    tmp: Path | None = None
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = temporary_sibling(path)
        with open(tmp, "wb") as file:
            file.write(data)
        os.replace(tmp, path)
        tmp = None
    except OSError as error:
        raise _one_line_os_error(path, error) from None
    finally:  # also on Ctrl-C: no temporary file is left behind
        if tmp is not None:
            with contextlib.suppress(OSError):
                tmp.unlink()
    return path


def _one_line_os_error(path: Path, error: OSError) -> OSError:
    failure = OSError(out_of_space_message(path, error))  # str() is the message alone
    failure.errno = error.errno
    return failure


def truncate_lines(path: Path, keep: Callable[[bytes], bool]) -> None:
    """Cut the text file ``path`` before its first line that ``keep`` refuses, in place
    (truncating needs no space: a log trimmed back to a checkpoint on a full disk); a file
    that cannot be read or cut is left as it is.

    Example:
        >>> import tempfile
        >>> log = Path(tempfile.mkdtemp()) / "log.jsonl"
        >>> _ = log.write_bytes(b"1\\n2\\n3\\n")
        >>> truncate_lines(log, lambda line: int(line) <= 2)
        >>> log.read_bytes()
        b'1\\n2\\n'
    """
    try:
        data = path.read_bytes()
    except OSError:
        return
    offset = 0
    for line in data.splitlines(keepends=True):
        if not keep(line):
            break
        offset += len(line)
    if offset < len(data):
        with contextlib.suppress(OSError):
            os.truncate(path, offset)
