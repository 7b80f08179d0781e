"""Opening rollout files with h5py: for reading (clean, live or crashed), for SWMR writing, locks.

A writer keeps its file in HDF5's SWMR mode, so a file whose writer is alive or was killed is
still flagged "open for write"; a plain ``h5py.File(path, "r")`` refuses such a file, a SWMR
read (``swmr=True``) opens it as it is. :func:`open_for_read` tries the plain open first (it
detects truncation cheaply) and falls back to a SWMR read.
"""

from __future__ import annotations

import contextlib
import ctypes
import difflib
import functools
import os
import re
import time
from collections.abc import Iterator
from pathlib import Path

import h5py
from h5py import h5f, h5p

from gan_envs.datasets.errors import CorruptDatasetError, DatasetError, DatasetInUseError

try:  # POSIX advisory locks; elsewhere a writer relies on HDF5's own checks only
    import fcntl
except ImportError:  # pragma: no cover - Windows
    fcntl = None  # type: ignore[assignment]

__all__ = [
    "TRUNCATED_TEXT",
    "check_regular_file",
    "NeedsRecovery",
    "ProcessLock",
    "FOLDER_LOCK_TIMEOUT",
    "folder_lock",
    "file_identity",
    "check_exists",
    "open_error",
    "reason",
    "open_for_read",
    "open_for_swmr_write",
]

#: A SWMR reader retries a metadata read whose checksum fails, sleeping 2**attempt ns between
#: tries; HDF5's default of 100 tries makes a damaged file hang "forever". 24 tries ~ 17 ms.
SWMR_READ_ATTEMPTS = 24


#: How the error for a file shorter than HDF5 expects begins (after the path).
TRUNCATED_TEXT = "the file is truncated"


def check_regular_file(path: Path) -> None:
    """Raise DatasetError for an existing ``path`` that is a folder, a pipe, a socket or a device
    (HDF5 would wait forever on a named pipe with no writer)."""
    if path.is_dir():
        raise DatasetError(f"{path} is a folder; pass the path of a rollout .h5 file")
    if path.exists() and not path.is_file():
        raise DatasetError(f"{path} is not a regular file (a pipe, socket or device); pass the "
                           "path of a rollout .h5 file (copy a stream to a file first)")


def check_exists(path: Path) -> None:
    """Raise FileNotFoundError (with a close match from the same folder) unless ``path`` exists."""
    if path.exists():
        check_regular_file(path)
        return
    folder = path.parent if str(path.parent) else Path(".")
    names = [p.name for p in folder.iterdir()] if folder.is_dir() else []
    close = difflib.get_close_matches(path.name, names, n=1, cutoff=0.6)
    hint = f" (did you mean {folder / close[0]}?)" if close else ""
    raise FileNotFoundError(f"{path} does not exist{hint}")


def open_error(path: Path, err: Exception) -> DatasetError | PermissionError:
    """Translate an HDF5 open failure into a one-line error that names the file and the fix."""
    text = str(err)
    if "signature not found" in text:
        return DatasetError(f"{path}: not an HDF5 file; pass a rollout file written by gan-envs")
    match = re.search(r"eof = (\d+).*stored_eof = (\d+)", text)
    if "truncated file" in text and match:
        have, want = (int(g) for g in match.groups())
        with contextlib.suppress(OSError):  # HDF5's eof can be short of the real size
            have = os.stat(path).st_size
        return CorruptDatasetError(f"{path}: {TRUNCATED_TEXT} ({have:,} of {want:,} bytes); "
                                   "copy it again from its source")
    if "unable to lock file" in text:
        return DatasetInUseError(f"{path}: another process holds a lock on it (a writer, or "
                                 "readers while this is a writer); close that process first")
    if "errno = 13" in text or "Permission denied" in text:
        return PermissionError(f"{path}: permission denied; make the file readable (and "
                               "writable to append to it) or pass another file")
    return CorruptDatasetError(f"{path}: cannot open it ({reason(err)}); the file is damaged, "
                               "run gan_envs.datasets.verify on it")


def reason(err: BaseException) -> str:
    """The innermost cause HDF5 gives for a failure, on one line: the system's error message of
    a failed write or read (``File too large``), else the last parenthesised part of its text."""
    text = str(err)
    found = (re.search(r"error message = '([^']*)'", text)
             or re.search(r"\(([^()]*)\)\s*$", text))
    return " ".join((found.group(1) if found else text or type(err).__name__).split())


@functools.cache
def _hdf5_library() -> ctypes.CDLL | None:
    """The libhdf5 h5py runs on (found in this process's memory map), or None."""
    with contextlib.suppress(OSError):
        with open("/proc/self/maps") as maps:
            for line in maps:
                name = os.path.basename(line.split()[-1])
                is_core = name.startswith("libhdf5") and not name.startswith("libhdf5_hl")
                if is_core and ".so" in name:
                    return ctypes.CDLL(line.split()[-1])
    return None


def _set_fapl(fapl: h5p.PropFAID, setter_name: str, argtype: type, value: int) -> None:
    """Set a file-access property h5py does not wrap (best effort: needs the libhdf5 symbol)."""
    lib = _hdf5_library()
    setter = getattr(lib, setter_name, None) if lib else None
    if setter is not None:
        setter.argtypes = [ctypes.c_int64, argtype]
        setter(fapl.id, value)


def _limit_read_attempts(fapl: h5p.PropFAID) -> None:
    """Cap SWMR metadata read retries."""
    _set_fapl(fapl, "H5Pset_metadata_read_attempts", ctypes.c_uint, SWMR_READ_ATTEMPTS)


def _no_small_data_blocks(fapl: h5p.PropFAID) -> None:
    """Allocate every raw chunk at the end of the file instead of packing small ones into 2 KiB
    blocks reserved earlier, so that an episode's chunks lie in the bytes written since it began
    (where the commit journal looks for them)."""
    _set_fapl(fapl, "H5Pset_small_data_block_size", ctypes.c_uint64, 0)


def _latest_fapl() -> h5p.PropFAID:
    fapl = h5p.create(h5p.FILE_ACCESS)
    fapl.set_libver_bounds(h5f.LIBVER_LATEST, h5f.LIBVER_LATEST)
    return fapl


def open_for_read(path: Path) -> tuple[h5py.File, DatasetError | None]:
    """Open read-only: plainly when the file is closed cleanly, else as a SWMR reader.

    Also returns, for a file shorter than its superblock says, the "truncated" error to raise
    if reading it fails: a writer stopped by a full disk leaves such a file with every committed
    episode inside it, and a SWMR reader (which skips the length check) reads them.
    """
    check_exists(path)
    truncated = None
    try:
        return h5py.File(path, "r"), None
    except OSError as err:
        if "truncated file" in str(err):
            truncated = open_error(path, err)
        elif "already open for write" not in str(err):
            raise open_error(path, err) from None
    fapl = _latest_fapl()
    _limit_read_attempts(fapl)
    try:
        fid = h5f.open(os.fsencode(path), h5f.ACC_RDONLY | h5f.ACC_SWMR_READ, fapl=fapl)
    except OSError as err:
        raise (truncated or open_error(path, err)) from None
    return h5py.File(fid), truncated


class NeedsRecovery(Exception):
    """The file still carries a killed writer's "open" flag, or is shorter than its superblock
    says (a write failed on a full disk); its committed episodes are copied to a fresh file."""


def open_for_swmr_write(path: Path) -> h5py.File:
    """Open an existing, cleanly closed file for appending in SWMR mode from the first byte.

    Raises :class:`NeedsRecovery` for a killed writer's file or one cut short by a full disk.
    """
    fapl = _latest_fapl()
    # Write-through chunks (no raw-data chunk cache): the writer only writes whole chunks, and a
    # dataset holding dirty chunks that cannot be written (disk full) crashes HDF5 at exit.
    mdc, _, _, w0 = fapl.get_cache()
    fapl.set_cache(mdc, 0, 0, w0)
    _no_small_data_blocks(fapl)
    try:
        fid = h5f.open(os.fsencode(path), h5f.ACC_RDWR | h5f.ACC_SWMR_WRITE, fapl=fapl)
    except OSError as err:
        if "already open for write" in str(err) or "truncated file" in str(err):
            raise NeedsRecovery(str(path)) from None
        raise open_error(path, err) from None
    return h5py.File(fid)


class ProcessLock:
    """A POSIX ``flock`` on the rollout file itself, held through a separate descriptor.

    A writer holds a shared lock for its lifetime (HDF5's SWMR readers take shared locks too,
    so they still open the file); a new writer that wants to resume or overwrite first probes for
    an exclusive lock, which fails while any writer or reader has the file open.
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        self._fd: int | None = None

    def probe_exclusive(self) -> None:
        """Raise DatasetInUseError if any other process has the file open through HDF5."""
        if fcntl is None or not self.path.exists():
            return
        fd = os.open(self.path, os.O_RDONLY)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            raise DatasetInUseError(f"{self.path} is open in another process (a writer or a "
                                    "reader); close it there first") from None
        finally:
            os.close(fd)

    def hold_shared(self, file: Path | None = None) -> None:
        """Take the shared lock a live writer holds until :meth:`release`, on ``file`` (default:
        the path): a writer locks its new file under a temporary name before renaming it."""
        if fcntl is None:
            return
        self._fd = os.open(self.path if file is None else file, os.O_RDONLY)
        try:
            fcntl.flock(self._fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except OSError:
            self.release()
            raise DatasetInUseError(f"{self.path} is locked by another process; close it "
                                    "there first") from None

    def release(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None


#: Seconds a writer waits for another gan-envs writer to finish taking a file of the same
#: folder (a few milliseconds normally) before it gives up with DatasetInUseError.
FOLDER_LOCK_TIMEOUT = 30.0


@contextlib.contextmanager
def folder_lock(path: Path) -> Iterator[None]:
    """Hold an exclusive ``flock`` on ``path``'s folder: the short moment in which a writer
    checks that a file is free and makes it its own (opens it to resume, or puts a fresh copy
    in its place) is then one step for every other gan-envs writer of that folder.

    Without it, two writers that both found the file free could both go on: the second to
    replace the file would unlink the first's copy under it, and the first's later episodes
    would go to a file no one can reach. Readers do not take it. Best effort: where the
    folder cannot be locked (no ``fcntl``, an unreadable folder, a filesystem without
    ``flock``), the writer goes on with the per-file checks alone.
    """
    folder = path.parent if str(path.parent) else Path(".")
    fd = _open_folder(folder)
    if fd is not None:
        _HELD_FOLDER_LOCKS.add(fd)
    try:
        if fd is not None:
            _lock_folder(fd, path, folder, FOLDER_LOCK_TIMEOUT)
        yield
    finally:
        if fd is not None and fd in _HELD_FOLDER_LOCKS:  # a forked child closed it already
            _HELD_FOLDER_LOCKS.discard(fd)
            os.close(fd)  # closing the descriptor drops the lock


#: Descriptors of the folders whose lock this process holds now (see :func:`folder_lock`).
_HELD_FOLDER_LOCKS: set[int] = set()


def _drop_folder_locks_in_child() -> None:
    """After ``fork()``: close the child's copies of the folder-lock descriptors.

    A ``flock`` belongs to the open file, which a forked child shares; were the child to keep
    its copy (a worker forked by another thread in the lock's milliseconds), the lock would
    stay taken until the child exited and every other writer of the folder would wait for it.
    Closing the child's copy leaves the parent's lock as it was.
    """
    for fd in tuple(_HELD_FOLDER_LOCKS):
        _HELD_FOLDER_LOCKS.discard(fd)
        with contextlib.suppress(OSError):
            os.close(fd)


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_drop_folder_locks_in_child)


def _open_folder(folder: Path) -> int | None:
    """A descriptor of ``folder`` to lock, or None where folders cannot be locked."""
    if fcntl is None:
        return None
    try:
        return os.open(folder, os.O_RDONLY)
    except OSError:
        return None


def _lock_folder(fd: int, path: Path, folder: Path, timeout: float) -> None:
    """Take the exclusive ``flock`` on ``fd`` within ``timeout`` seconds (see
    :func:`folder_lock`); a filesystem without ``flock`` leaves it unlocked."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return
        except BlockingIOError:
            if time.monotonic() >= deadline:
                raise DatasetInUseError(
                    f"{path}: another process has held the gan-envs writers' lock on {folder} "
                    f"for over {timeout:g} s (a writer taking a file there, or a stopped one); "
                    f"end it (`lsof {folder}` finds it) or retry") from None
            time.sleep(0.005)
        except OSError:  # the filesystem has no flock: go on unlocked
            return


def file_identity(path: Path) -> tuple[int, ...] | None:
    """``(device, inode, size, mtime_ns)`` of the file at ``path`` (None if there is none): a
    writer that copies a killed file checks, before it puts the copy in place, that the file is
    still the one it copied and not another writer's copy (nor the killed file changed in place,
    nor a new file that got the freed inode number)."""
    try:
        st = os.stat(path)
    except FileNotFoundError:
        return None
    return st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns
