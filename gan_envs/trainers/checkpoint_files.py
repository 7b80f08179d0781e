"""Why a checkpoint file cannot be read, in one line (the trainers' ``torch.load`` failures).

Example:
    >>> import tempfile, pathlib
    >>> path = pathlib.Path(tempfile.mkdtemp()) / "checkpoint.pt"
    >>> _ = path.write_bytes(b"\\x89HDF\\r\\n\\x1a\\n" + bytes(100))
    >>> unreadable_checkpoint(path, RuntimeError("Weights only load failed"))  # doctest: +ELLIPSIS
    '.../checkpoint.pt is an HDF5 file (a dataset?), not a torch checkpoint; pass the run ...'
"""

from __future__ import annotations

from pathlib import Path

from gan_envs._text import first_line

__all__ = ["unreadable_checkpoint"]

_ZIP = b"PK\x03\x04"  # torch.save writes zip archives
_HDF5 = b"\x89HDF\r\n\x1a\n"


def unreadable_checkpoint(path: Path, error: BaseException) -> str:
    """The message for ``torch.load(path)`` having raised ``error``: empty, another kind of
    file, or a torch file cut short, each with its fix."""
    try:
        size = path.stat().st_size
        with open(path, "rb") as file:
            head = file.read(1024)
    except OSError as cause:
        return f"{path} cannot be read ({cause.strerror or cause})"
    if size == 0:
        return (f"{path} is empty or cut short (0 bytes); copy it again, or train the run "
                "again")
    if not head.startswith(_ZIP):
        hdf5 = head.find(_HDF5)
        kind = ("an HDF5 file (a dataset?)" if hdf5 >= 0 and hdf5 % 512 == 0
                else "not a file torch.save wrote")
        return (f"{path} is {kind}, not a torch checkpoint; pass the run folder a "
                "`gan-envs train` run wrote")
    return (f"{path} is cut short or damaged ({size:,} bytes; torch: "
            f"{type(error).__name__}: {first_line(error, 'no message')}); copy it again, or "
            "train the run again")
