"""The commit journal: a record of every committed episode that does not depend on HDF5's index.

Why it exists. As the arrays grow, HDF5 rewrites some of its metadata in place: each dataset's
object header (its extent) and the blocks of its chunk index (the file offset of every chunk).
Those blocks also describe committed chunks. A process killed while one of those writes crosses a
4 KiB page boundary leaves the block torn, half new and half old; its checksum then fails and
HDF5 can no longer find chunks that were committed long ago. (The kernel copies a write into the
page cache one page at a time and checks for a fatal signal between pages, so only a write that
spans pages can be torn. In a crash-state replay of a format 1.0 writer, 64 of the 2,427 states
a kill could leave lost committed episodes this way: docs/dataset-format.md, *Crash safety*.)

What the journal stores (format 1.1; 1.2 adds the inline chunks):

* one **record** per committed episode, written once as one zlib-compressed chunk of the
  ``commit_log`` dataset and never rewritten: the episode's table row, the file offset, stored
  size, filter mask and CRC32 of each of its chunks in every array, the array layout, and the
  address of the previous record (the records form a chain), with a CRC32 of its own. A chunk
  with fewer than 8 non-zero stored bytes (the flags of an uncompressed file) is kept in the
  record itself instead, as its non-zero bytes, with offset 0 (format 1.2: such records start
  ``GEJREC02``; a record without inline chunks is still ``GEJREC01``, as in 1.1, and a 1.1
  file resumed by this version keeps getting those);
* the **head**, the newest record's address, in the file's 512-byte user block, which HDF5 never
  touches: two slots (at bytes 0 and 256) written alternately, each 36 bytes with the episode
  count and a CRC32. A write this small inside one page is never torn by a killed process;
  if the newest head's chain cannot be read, the older slot's is used.

Recovery (:func:`read_records`) needs only the head, the records and the chunks' raw bytes: it
reads them with plain file reads and copies each chunk's stored bytes into a fresh file.
"""

from __future__ import annotations

import contextlib
import json
import os
import struct
import zlib
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO

import h5py
import numpy as np

from gan_envs.datasets.errors import CorruptDatasetError
from gan_envs.datasets.format import EPISODE_DTYPE, OBSERVATION_ARRAYS, align_up

__all__ = [
    "CHUNK_DTYPE",
    "INLINE_DTYPE",
    "LOG_CHUNK",
    "LOG_NAME",
    "USERBLOCK_SIZE",
    "Head",
    "Journal",
    "Record",
    "chain_problem",
    "create_log",
    "chunk_locations",
    "episode_ranges",
    "max_steps",
    "read_head",
    "read_heads",
    "read_records",
    "write_head",
]

LOG_NAME = "commit_log"
#: Bytes the user block reserves at the start of the file (HDF5's smallest).
USERBLOCK_SIZE = 512
#: Logical size of one record's chunk; a record is stored compressed, so this is only a cap
#: (it bounds an episode's length: :func:`max_steps`).
LOG_CHUNK = 1 << 24

_HEAD = struct.Struct("<8sQQQ")  # magic, episodes, record offset, record size; then a CRC32
_HEAD_MAGIC = b"GEJHEAD1"
_SLOT_OFFSETS = (0, 256)
_RECORD_MAGIC = b"GEJREC02"
_RECORD_MAGICS = (b"GEJREC01", _RECORD_MAGIC)  # 1.1's records have no inline chunks
_HEADER_ROOM = 4096  # bytes of a record besides its chunk tables, with room to spare
#: One chunk of an episode: its first row, where its stored bytes are, and their CRC32.
CHUNK_DTYPE = np.dtype([("row", "<i8"), ("offset", "<u8"), ("size", "<u4"), ("mask", "<u4"),
                        ("crc", "<u4")])
#: One non-zero byte of a chunk kept in its record (offset 0): the chunk's index in its array's
#: table, the byte's position in the chunk, its value.
INLINE_DTYPE = np.dtype([("chunk", "<u4"), ("pos", "<u4"), ("value", "u1")])
#: Non-zero bytes a chunk needs to be looked for by its bytes (not taken for an unwritten gap);
#: a chunk with fewer is kept in its record.
_DISTINCT_BYTES = 8



@dataclass(frozen=True)
class Head:
    """The newest record: ``episodes`` records exist, the last at ``offset`` (``size`` bytes)."""

    episodes: int
    offset: int
    size: int


@dataclass
class Record:
    """One committed episode as the journal saw it."""

    episode: int
    row: np.void
    chunks: dict[str, np.ndarray]  # array name -> CHUNK_DTYPE rows
    layout: dict[str, Any]
    previous: tuple[int, int] | None
    inline: dict[str, np.ndarray] = field(default_factory=dict)  # name -> INLINE_DTYPE rows

    def stored_chunks(self, name: str, file: BinaryIO) -> Iterator[tuple[int, bytes, int, int]]:
        """``(first row, stored bytes, filter mask, recorded CRC32)`` of each of ``name``'s
        chunks: read from ``file`` at their offsets, or rebuilt from the record (offset 0)."""
        inline = self.inline.get(name, np.zeros(0, INLINE_DTYPE))
        inline = inline[np.argsort(inline["chunk"], kind="stable")]
        for index, (first, offset, size, mask, crc) in enumerate(self.chunks[name].tolist()):
            if offset == 0:
                lo, hi = np.searchsorted(inline["chunk"], [index, index + 1])
                mine = inline[lo:hi]
                if len(mine) and int(mine["pos"].max()) >= size:
                    yield first, b"", mask, crc  # fails the caller's length check
                    continue
                data = np.zeros(size, np.uint8)
                data[mine["pos"]] = mine["value"]
                yield first, data.tobytes(), mask, crc
            else:
                file.seek(offset)
                yield first, file.read(size), mask, crc


def create_log(h5file: Any) -> None:
    """Create the empty ``commit_log`` dataset (one chunk per record, stored compressed)."""
    h5file.create_dataset(LOG_NAME, shape=(0,), maxshape=(None,), dtype=np.uint8,
                          chunks=(LOG_CHUNK,), compression="gzip")


def episode_ranges(row: np.void | np.ndarray, names: list[str], chunk_frames: int
                   ) -> dict[str, tuple[int, int]]:
    """Rows ``[start, end)`` each array's chunks cover for one episode's table row."""
    n = int(row["length"])
    obs, step = int(row["obs_offset"]), int(row["step_offset"])
    out = {}
    for name in names:
        start, rows = (obs, n + 1) if name in OBSERVATION_ARRAYS else (step, n)
        out[name] = (start, start + align_up(rows, chunk_frames))
    return out


def max_steps(chunk_frames: int, arrays: int) -> int:
    """The longest episode whose record fits in a ``commit_log`` chunk (``arrays`` time arrays).

    Each chunk takes one CHUNK_DTYPE row, and at most ``_DISTINCT_BYTES - 1`` inline bytes.

    Example:
        >>> max_steps(16, 5)  # the default chunks: far beyond any Atari episode (27,000 steps)
        589807
    """
    per_chunk = CHUNK_DTYPE.itemsize + (_DISTINCT_BYTES - 1) * INLINE_DTYPE.itemsize
    chunks = (LOG_CHUNK - _HEADER_ROOM) // per_chunk // arrays
    return (chunks - 1) * chunk_frames - 1


# ---------------------------------------------------------------------------------------------
# The head
# ---------------------------------------------------------------------------------------------
def _pack_head(head: Head) -> bytes:
    body = _HEAD.pack(_HEAD_MAGIC, head.episodes, head.offset, head.size)
    return body + struct.pack("<I", zlib.crc32(body))


def _unpack_head(raw: bytes) -> Head | None:
    body, crc = raw[:_HEAD.size], raw[_HEAD.size:_HEAD.size + 4]
    if len(crc) < 4 or struct.unpack("<I", crc)[0] != zlib.crc32(body):
        return None
    magic, episodes, offset, size = _HEAD.unpack(body)
    return Head(episodes, offset, size) if magic == _HEAD_MAGIC else None


def read_heads(path: str | os.PathLike[str]) -> list[Head]:
    """The valid head slots of a file, newest first (none before its first commit)."""
    with open(path, "rb") as f:
        block = f.read(USERBLOCK_SIZE)
    heads = [h for h in (_unpack_head(block[o:o + _HEAD.size + 4]) for o in _SLOT_OFFSETS)
             if h is not None]
    return sorted(heads, key=lambda h: h.episodes, reverse=True)


def read_head(path: str | os.PathLike[str]) -> Head | None:
    """The newest valid head of a file, or None when it has no journal entry yet."""
    heads = read_heads(path)
    return heads[0] if heads else None


def write_head(fd: int, head: Head, *, fsync: bool = False, both: bool = False) -> None:
    """Write ``head`` into its slot (alternating by episode count) with one small ``pwrite``;
    ``both``: into both slots (a head that moves back must replace the newer one)."""
    for slot in (_SLOT_OFFSETS if both else (_SLOT_OFFSETS[head.episodes % 2],)):
        os.pwrite(fd, _pack_head(head), slot)
    if fsync:
        os.fsync(fd)


# ---------------------------------------------------------------------------------------------
# Records
# ---------------------------------------------------------------------------------------------
def _encode(record: Record) -> bytes:
    header = json.dumps({
        "episode": record.episode,
        "previous": record.previous,
        "layout": record.layout,
        "chunks": [[name, len(table)] for name, table in record.chunks.items()],
        "inline": [[name, len(table)] for name, table in record.inline.items()],
    }).encode()
    kept_inline = any((t["offset"] == 0).any() for t in record.chunks.values())
    magic = _RECORD_MAGIC if kept_inline else _RECORD_MAGICS[0]
    parts = [magic, struct.pack("<I", len(header)), header,
             np.asarray(record.row, dtype=EPISODE_DTYPE).tobytes()]
    parts += [np.ascontiguousarray(t, dtype=CHUNK_DTYPE).tobytes() for t in record.chunks.values()]
    parts += [np.ascontiguousarray(t, dtype=INLINE_DTYPE).tobytes()
              for t in record.inline.values()]
    body = b"".join(parts)
    return zlib.compress(body + struct.pack("<I", zlib.crc32(body)), 1)


def _decode(stored: bytes, where: str) -> Record:
    try:
        raw = zlib.decompress(stored)
    except zlib.error:
        raise CorruptDatasetError(f"{where}: unreadable (not zlib data)") from None
    body, crc = raw[:-4], raw[-4:]
    if raw[:8] not in _RECORD_MAGICS or struct.unpack("<I", crc)[0] != zlib.crc32(body):
        raise CorruptDatasetError(f"{where}: bad magic or checksum")
    (size,) = struct.unpack_from("<I", body, 8)
    header = json.loads(body[12:12 + size])
    at = 12 + size
    row = np.frombuffer(body, EPISODE_DTYPE, 1, at)[0]
    at += EPISODE_DTYPE.itemsize
    chunks = {}
    for name, count in header["chunks"]:
        chunks[name] = np.frombuffer(body, CHUNK_DTYPE, count, at).copy()
        at += count * CHUNK_DTYPE.itemsize
    inline = {}
    for name, count in header.get("inline", []):
        inline[name] = np.frombuffer(body, INLINE_DTYPE, count, at).copy()
        at += count * INLINE_DTYPE.itemsize
    previous = tuple(header["previous"]) if header["previous"] else None
    return Record(header["episode"], row, chunks, header["layout"], previous,  # type: ignore[arg-type]
                  inline)


def read_records(path: str | os.PathLike[str]) -> list[Record]:
    """Every journaled episode of a file, oldest first, read without HDF5 (plain file reads).

    Raises:
        CorruptDatasetError: the file has no journal (format 1.0) or a record is damaged.
    """
    path = Path(path)
    heads = read_heads(path)
    if not heads:
        raise CorruptDatasetError(f"{path}: no commit journal to recover from (a format 1.0 "
                                  "file, or no episode was committed)")
    errors = []
    for head in heads:  # the newest first; the older slot if the newest's chain is damaged
        try:
            return _walk(path, head)
        except CorruptDatasetError as err:
            errors.append(err)
    raise errors[0]


def chain_problem(path: str | os.PathLike[str]) -> str | None:
    """Why the chain of records from the newest head does not read back to the first record
    (a recovery after a kill would stop at the damaged one), or None: it reads, or nothing is
    journaled yet. A head behind or ahead of the table is not a problem (a resume syncs it).
    ``verify`` reports it; a resume journals every episode again."""
    path = Path(path)
    heads = read_heads(path)  # once: a live writer may move them meanwhile
    if not heads:
        return None
    try:
        _walk(path, heads[0])
    except CorruptDatasetError as err:
        return str(err).removeprefix(f"{path}: ")
    return None


def _walk(path: Path, head: Head) -> list[Record]:
    records: list[Record] = []
    where: tuple[int, int] | None = (head.offset, head.size)
    with open(path, "rb") as f:
        for expected in range(head.episodes - 1, -1, -1):
            if where is None:
                raise CorruptDatasetError(f"{path}: the commit journal ends before episode "
                                          f"{expected}")
            f.seek(where[0])
            record = _decode(f.read(where[1]), f"{path}: commit journal record of episode "
                                               f"{expected}")
            if record.episode != expected:
                raise CorruptDatasetError(f"{path}: the commit journal has episode "
                                          f"{record.episode} where {expected} belongs")
            records.append(record)
            where = record.previous
    return records[::-1]


#: How far before the end of file a record just written is looked for.
_SEARCH_BACK = 4096

Locations = dict[int, tuple[int, int, int]]  # first row -> (file offset, stored size, mask)


def _nonzero_bytes(index: int, data: bytes) -> np.ndarray:
    """The non-zero bytes of an array's chunk number ``index`` as INLINE_DTYPE rows."""
    stored = np.frombuffer(data, np.uint8)
    where = np.flatnonzero(stored)
    out = np.empty(len(where), INLINE_DTYPE)
    out["chunk"], out["pos"], out["value"] = index, where, stored[where]
    return out


def chunk_locations(ds: h5py.Dataset) -> Locations:
    """Where every chunk of ``ds`` is, from one walk over HDF5's chunk index."""
    out: Locations = {}

    def visit(info: Any) -> None:
        out[int(info.chunk_offset[0])] = (int(info.byte_offset), int(info.size),
                                          int(info.filter_mask))

    ds.id.chunk_iter(visit)
    return out


class Journal:
    """Appends a record per committed episode to an open file and moves the head after it.

    The caller's commit order: the episode's chunks (flushed), :meth:`write_record`, the table
    row, a flush, then :meth:`publish`. A kill before ``publish`` leaves the previous head,
    whose records are all on disk.

    Where a new chunk is: HDF5 answers that only by walking its whole chunk index
    (``get_chunk_info_by_coord`` takes time in proportion to the chunks in the file, which over
    a file is quadratic). So the journal reads the chunk's stored bytes (``read_direct_chunk``,
    one index lookup) and finds them in the bytes written since the episode began
    (:meth:`begin`; the writer allocates every raw chunk at the end of the file). Everything
    allocated there belongs to this episode and is never rewritten once it commits, and a
    chunk found twice (two chunks of equal content) holds the same bytes either way. Chunks
    with fewer than 8 non-zero bytes (uncompressed flags, which an unwritten gap of zeros or a
    stretch of HDF5's metadata could match) are kept in the record itself, as their non-zero
    bytes; chunks not found (one rewritten in place after a discarded episode) use HDF5's own
    answer. Each chunk's CRC32 is recorded, so a recovery copies only bytes it can check.
    """

    def __init__(self, h5file: h5py.File, path: Path, layout: Mapping[str, Any], *,
                 fsync: bool = False, inline: bool = True) -> None:
        self._log = h5file[LOG_NAME]
        self._inline = inline  # False: a 1.1 file's records, which ask HDF5 for every chunk
        self._layout = dict(layout)
        self._fsync = fsync
        self._fd = os.open(path, os.O_RDWR)
        self._path = path
        self._pending: Head | None = None
        self._searched_to = os.fstat(self._fd).st_size
        head = read_head(path)
        self._head = head if head is not None else Head(0, 0, 0)

    @property
    def episodes(self) -> int:
        """Episodes the published head covers."""
        return self._head.episodes

    def begin(self) -> None:
        """Mark where an episode's chunks start: the end of the file before its first write."""
        self._searched_to = os.fstat(self._fd).st_size

    def rewind(self, episodes: int) -> None:
        """Make the chain end at ``episodes`` (fewer than the head holds; to 0 when the chain
        cannot be read)."""
        self._head = Head(0, 0, 0)
        with contextlib.suppress(CorruptDatasetError):
            if episodes:
                following = read_records(self._path)[episodes]  # it points back at the new last
                self._head = Head(episodes, *following.previous)  # type: ignore[misc]
        write_head(self._fd, self._head, fsync=self._fsync, both=True)

    def write_record(self, episode: int, row: np.void | np.ndarray,
                     ranges: Mapping[str, tuple[int, int]], datasets: Mapping[str, h5py.Dataset],
                     located: Mapping[str, Locations] | None = None) -> None:
        """Write episode ``episode``'s record (its chunks must be written and flushed).

        ``located``: the chunks' places, already known (:func:`chunk_locations`).
        """
        if episode != self._head.episodes:
            raise ValueError(f"journal holds {self._head.episodes} episodes, got {episode}")
        end = os.fstat(self._fd).st_size
        low = self._searched_to
        region = os.pread(self._fd, end - low, low) if located is None else b""
        chunks, inline = {}, {}
        for name, (start, stop) in ranges.items():
            ds = datasets[name]
            tail = (0,) * (ds.ndim - 1)
            rows: list[tuple[int, int, int, int, int]] = []
            kept: list[np.ndarray] = []
            after = 0  # a dataset's new chunks are allocated in order
            for first in range(start, stop, ds.chunks[0]):
                mask, data = ds.id.read_direct_chunk((first, *tail))
                crc = zlib.crc32(data)
                distinct = len(data) - data.count(0) >= _DISTINCT_BYTES
                if not distinct and self._inline:  # kept in the record
                    kept.append(_nonzero_bytes(len(rows), data))
                    rows.append((first, 0, len(data), mask, crc))
                    continue
                if located is not None:
                    offset = self._checked(located[name][first][0], data)
                    rows.append((first, offset, len(data), mask, crc))
                    continue
                found = region.find(data, after) if region and distinct else -1
                found = region.find(data) if found < 0 and region and distinct else found
                if found >= 0:
                    rows.append((first, low + found, len(data), mask, crc))
                    after = found + len(data)
                else:
                    info = ds.id.get_chunk_info_by_coord((first, *tail))
                    rows.append((first, self._checked(info.byte_offset, data), len(data), mask,
                                 crc))
            chunks[name] = np.array(rows, CHUNK_DTYPE)
            if kept:
                inline[name] = np.concatenate(kept)
        previous = (self._head.offset, self._head.size) if self._head.episodes else None
        stored = _encode(Record(episode, np.asarray(row, EPISODE_DTYPE), chunks, self._layout,
                                previous, inline))
        coord = episode * LOG_CHUNK
        if self._log.id.get_space().shape[0] < coord + LOG_CHUNK:
            self._log.id.set_extent((coord + LOG_CHUNK,))
        self._log.id.write_direct_chunk((coord,), stored)
        self._pending = Head(episode + 1, *self._record_address(coord, stored, end))
        self._searched_to = end

    def _record_address(self, coord: int, stored: bytes, end: int) -> tuple[int, int]:
        """Where the record just written is: in the bytes past ``end`` (else HDF5's answer).

        A record is a zlib stream whatever the file's compression, so finding it is safe."""
        low = max(0, end - _SEARCH_BACK)
        tail = os.pread(self._fd, os.fstat(self._fd).st_size - low, low)
        found = tail.find(stored)
        if found >= 0:
            return low + found, len(stored)
        info = self._log.id.get_chunk_info_by_coord((coord,))
        return self._checked(info.byte_offset, stored), len(stored)

    def _checked(self, offset: int, data: bytes) -> int:
        """HDF5's address of ``data``, checked: HDF5 before 1.14.4 left out the user block."""
        for where in (int(offset), int(offset) + USERBLOCK_SIZE):
            if os.pread(self._fd, len(data), where) == data:
                return where
        raise RuntimeError(f"HDF5 reports a chunk at byte {offset} that is not there")

    def publish(self) -> None:
        """Point the head at the record written last (after its table row is flushed)."""
        if self._pending is not None:
            write_head(self._fd, self._pending, fsync=self._fsync)
            self._head, self._pending = self._pending, None

    def close(self) -> None:
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1
