"""RolloutWriter: append episodes to a rollout file, crash-safely (see docs/dataset-format.md).

How a killed writer loses no committed episode:

1. The file is built under a temporary name (arrays, table, journal, metadata) and closed,
   then reopened there by the writer (2.) and locked, and only then linked into place:
   ``path`` either does not exist or is a complete empty dataset its writer already holds.
2. The writer opens it in HDF5's SWMR mode (single writer, multiple readers). HDF5 orders its
   metadata writes so that the file is consistent between any two of its ``write`` calls.
3. Every episode starts on a chunk boundary and its chunks are written whole, so a chunk that
   holds committed data is never written again.
4. An episode commits in two flushes: its data and its journal record first, then its row in
   the ``episodes`` table with ``committed = 1``; then the journal's head moves to the record.
   Readers trust only committed rows, so a kill loses at most the episode being written.
5. ``resume=True`` on a killed file copies the committed chunks byte for byte into a fresh file
   that atomically replaces it (the HDF5 "open for write" flag cannot be cleared otherwise);
   a cleanly closed file is simply reopened (one whose table fails its checksum is copied).
   Writers of one folder check that a file is free and take it (open it, or put a copy or a new
   file in its place) under a lock on the folder, so two resumers or overwriters of one file
   cannot both take it; a copy goes into place only if the file is still the killed one it was
   copied from.
6. A kill inside a ``write`` can tear one of the metadata blocks HDF5 rewrites in place (its
   chunk indexes, its object headers), which also describe committed chunks; the reader then
   refuses the file, and ``resume=True`` finds the committed chunks through the commit journal
   (:mod:`gan_envs.datasets.journal`) instead of HDF5's index.
"""
from __future__ import annotations

import contextlib
import math
import os
import shlex
import sys
import zlib
from collections.abc import Iterator, Mapping, Sequence
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import gymnasium as gym
import h5py
import numpy as np

from gan_envs._text import short_repr
from gan_envs.datasets import _h5
from gan_envs.datasets.arguments import json_friendly, whole_number
from gan_envs.datasets.chunks import ChunkEncoder
from gan_envs.datasets.errors import (
    CorruptDatasetError,
    DatasetError,
    DatasetInUseError,
    DatasetValueError,
    DatasetVersionError,
    DatasetWriteError,
)
from gan_envs.datasets.format import (
    EPISODE_DTYPE,
    FORMAT_NAME,
    FORMAT_VERSION,
    align_up,
    check_format,
    check_values,
    committed_rows,
    create_layout,
    library_versions,
    read_metadata,
    space_from_json,
    space_storage,
    space_to_dict,
    write_metadata,
)
from gan_envs.datasets.journal import (
    LOG_NAME,
    USERBLOCK_SIZE,
    Journal,
    Locations,
    chain_problem,
    chunk_locations,
    create_log,
    episode_ranges,
    max_steps,
    read_head,
    read_records,
)
from gan_envs.outputs import is_out_of_space

__all__ = ["RolloutWriter"]

COMPRESSIONS = (None, "gzip", "lzf")
#: The most rows a chunk may hold (HDF5 also caps a chunk at 4 GiB).
MAX_CHUNK_FRAMES = 65_536
#: Seeds are stored as int64.
MAX_SEED = 2**63 - 1
_DIRECT_CHUNK_BYTES = 16384


class _Column:
    """One time array: buffers a chunk of rows and writes whole chunks only."""

    def __init__(self, dataset: h5py.Dataset, chunk: int) -> None:
        self.ds = dataset
        self.chunk = chunk
        self.row_shape: tuple[int, ...] = dataset.shape[1:]
        self.extent = dataset.shape[0]  # rows allocated in the file (h5py's shape is slow)
        self.buf = np.zeros((chunk, *self.row_shape), dtype=dataset.dtype)
        self.fill = 0
        self.start = 0  # physical row of buf[0]
        # frames: compress in Python, outside the GIL; small columns: HDF5's own C path is cheaper
        large = self.buf.nbytes >= _DIRECT_CHUNK_BYTES
        self.encoder = ChunkEncoder.for_dataset(dataset) if large else None

    def begin(self, start: int) -> None:
        self.start, self.fill = start, 0

    def append(self, row: Any) -> None:
        self.buf[self.fill] = row
        self.fill += 1
        if self.fill == self.chunk:
            self._write(self.buf)

    def extend(self, rows: np.ndarray) -> None:
        """Write many rows at once, zero-padded to whole chunks (the buffer must be empty).

        Frames go chunk by chunk straight from ``rows``; only the partial last chunk is copied.
        Small columns are padded and written in one call (per-call overhead dominates there).
        """
        whole = len(rows) // self.chunk * self.chunk
        if self.encoder is not None and whole:
            self._write(rows[:whole])
            rows = rows[whole:]
        if len(rows):
            padded = np.zeros((align_up(len(rows), self.chunk), *self.row_shape),
                              dtype=self.buf.dtype)
            padded[:len(rows)] = rows
            self._write(padded)

    def finish(self) -> None:
        """Write the partly filled last chunk, zero-padded to a whole chunk."""
        if self.fill:
            self.buf[self.fill:] = 0
            self._write(self.buf)

    def _write(self, rows: np.ndarray) -> None:
        # h5py's low-level calls: ~10x less overhead than ds.resize and ds[a:b] = rows
        end = self.start + len(rows)
        if self.extent < end:
            self.ds.id.set_extent((end, *self.row_shape))
            self.extent = end
        tail = (0,) * len(self.row_shape)
        if self.encoder is None:
            file_space = self.ds.id.get_space()
            file_space.select_hyperslab((self.start, *tail), rows.shape)
            rows = np.ascontiguousarray(rows, dtype=self.buf.dtype)
            self.ds.id.write(h5py.h5s.create_simple(rows.shape), file_space, rows)
        else:  # whole aligned chunks, compressed outside HDF5 (and outside the GIL)
            for first in range(0, len(rows), self.chunk):
                self.ds.id.write_direct_chunk(
                    (self.start + first, *tail),
                    self.encoder.encode(rows[first:first + self.chunk]))
        self.start, self.fill = end, 0


class _Episode:
    """Bookkeeping of the episode being appended (not yet committed)."""

    def __init__(self, env_index: int, seed: int) -> None:
        self.env_index, self.seed = env_index, seed
        self.steps = 0
        self.total = 0.0
        self.terminated = self.truncated = False


def _is_out_of_space(err: BaseException) -> bool:
    """Whether ``err`` is a write that failed for want of space (a full disk, a size limit)."""
    return is_out_of_space(err) or any(  # HDF5 reports it in RuntimeError text
        text in str(err) for text in ("No space left", "File too large"))


def check_writer_options(
    path: Path, *, compression: str | None = "gzip", chunk_frames: Any = 16,
    compression_level: Any = 2, seed: Any = None, policy: Any = "", command: Any = None,
    metadata: Any = None,
) -> dict[str, Any]:
    """The writer's plain arguments checked (a one-line DatasetError naming ``path``) and made
    plain Python values (NumPy numbers too), as :class:`RolloutWriter` and, at construction,
    :class:`~gan_envs.datasets.record.RecordRollouts` need them.

    Example:
        >>> check_writer_options(Path("d.h5"), seed=np.int64(3))["seed"]
        3
    """
    check_compression(path, compression)
    if seed is not None:
        seed = whole_number(seed, f"{path}: seed", high=MAX_SEED)
    for text, name in ((policy, "policy"), (command, "command")):
        if not (text is None and name == "command") and not isinstance(text, str):
            raise DatasetError(f"{path}: {name} must be a string, got {text!r}")
        if isinstance(text, str) and "\x00" in text:  # HDF5 keeps its strings NUL-terminated
            raise DatasetError(f"{path}: {name} must not contain NUL characters, got "
                               f"{short_repr(text, 60)}")
        if isinstance(text, str) and _storable(text) != text:
            raise DatasetError(f"{path}: {name} must be text UTF-8 can encode (no lone "
                               f"surrogates), got {short_repr(text, 60)}")
    if metadata is not None and not isinstance(metadata, Mapping):
        raise DatasetError(f"{path}: metadata must be a dict, got {short_repr(metadata, 60)}")
    return dict(
        chunk_frames=whole_number(chunk_frames, f"{path}: chunk_frames", low=1,
                                  high=MAX_CHUNK_FRAMES),
        compression_level=whole_number(compression_level, f"{path}: compression_level",
                                       high=9),
        seed=seed, policy=str(policy),  # numpy's str_ too: h5py cannot store its '<U' dtype
        command=None if command is None else str(command),
        metadata=json_friendly(dict(metadata or {}), f"{path}: metadata"))


#: the stored array a per-step argument's value goes to (DatasetValueError.array)
_ARRAY_OF = {"observation": "observations", "action": "actions", "reward": "rewards",
             "terminated": "terminations", "truncated": "truncations", "blank": "blank_frame"}


class RolloutWriter:
    """Append episodes to a rollout HDF5 file; a SIGKILL loses at most the unfinished episode.

    Observations are stored exactly as given (uint8 channel-first frames, or a vector state's
    own dtype); an episode of N steps has N + 1 observations. Append step by step
    (:meth:`begin_episode`, :meth:`add_step`, :meth:`commit_episode`) or whole episodes
    (:meth:`add_episode`). Every value is checked against the declared spaces first: a bad value
    raises and writes nothing. An episode becomes visible to readers only when committed.

    Example:
        >>> import tempfile, pathlib, numpy as np
        >>> from gymnasium.spaces import Box, Discrete
        >>> from gan_envs.datasets import RolloutWriter, RolloutReader
        >>> path = pathlib.Path(tempfile.mkdtemp()) / "rollouts.h5"
        >>> frames = Box(0, 255, (3, 8, 8), np.uint8)
        >>> with RolloutWriter(path, frames, Discrete(4), env_ids=["Toy-v0"]) as writer:
        ...     writer.begin_episode(frames.sample(), seed=7)
        ...     writer.add_step(2, 1.0, frames.sample(), terminated=True)
        ...     writer.commit_episode()
        0
        >>> with RolloutReader(path) as reader:
        ...     reader.num_episodes, reader.num_frames, reader.episode(0)["actions"].tolist()
        (1, 2, [2])

    Args:
        path: the file to create (or to append to with ``resume=True``).
        observation_space: Box, Discrete, MultiDiscrete or MultiBinary; taken from the file when
            resuming.
        action_space: likewise.
        env_ids: the environment ids episodes may come from (the only one is the default).
        env_specs: ``{env_id: EnvSpec.to_json()}`` where known.
        wrappers: wrapper parameters (JSON-friendly), stored as metadata.
        policy: a description of the policy that acted (``"random"``, a checkpoint path, ...).
        seed: the seed of the whole collection run.
        command: the command line that made the file (default: this process's ``sys.argv``).
        metadata: more JSON-friendly metadata of your own.
        blank_frames: store a ``blank_frame`` flag per observation.
        compression: ``"gzip"`` (default, chosen by benchmark), ``"lzf"`` or None; lossless only.
        compression_level: gzip level 0-9 (default 2: on Atari frames 20 % faster to write than
            level 3 at the same size, about 3x faster than level 6 for files ~25 % larger).
        chunk_frames: rows per chunk along time; every episode starts on a chunk boundary.
        overwrite: replace an existing file.
        resume: append to an existing file after its last committed episode. The file keeps
            its own spaces (given ones must match), chunking, compression, blank-frame flags
            (``blank_frames=True`` on a file without them is refused) and metadata: ``policy``,
            ``seed``, ``command``, ``metadata``, ``wrappers`` and ``env_specs`` are ignored.
        fsync: also ``fsync`` at each commit (survives power loss, not only a killed process).

    Raises:
        FileExistsError: ``path`` exists and neither ``overwrite`` nor ``resume`` is set.
        DatasetError: a bad argument, or a resumed file that does not match the arguments.
        DatasetInUseError: another process has the file open (resume or overwrite).
    """

    def __init__(
        self,
        path: str | os.PathLike[str],
        observation_space: gym.Space | None = None,
        action_space: gym.Space | None = None,
        *,
        env_ids: Sequence[str] = (),
        env_specs: Mapping[str, str | None] | None = None,
        wrappers: Any = None,
        policy: str = "",
        seed: int | None = None,
        command: str | None = None,
        metadata: Mapping[str, Any] | None = None,
        blank_frames: bool = False,
        compression: str | None = "gzip",
        compression_level: int = 2,
        chunk_frames: int = 16,
        overwrite: bool = False,
        resume: bool = False,
        fsync: bool = False,
    ) -> None:
        self.path = Path(path)
        if overwrite and resume:
            raise DatasetError(f"{self.path}: pass overwrite=True or resume=True, not both")
        checked = check_writer_options(
            self.path, compression=compression, chunk_frames=chunk_frames,
            compression_level=compression_level, seed=seed, policy=policy, command=command,
            metadata=metadata)
        chunk_frames, compression_level = checked["chunk_frames"], checked["compression_level"]
        seed, metadata = checked["seed"], checked["metadata"]
        policy, command = checked["policy"], checked["command"]
        env_ids = [env_ids] if isinstance(env_ids, str) else list(env_ids)
        if not all(isinstance(e, str) and e for e in env_ids):
            raise DatasetError(f"{self.path}: env_ids must be env id strings, got {env_ids!r}")
        env_ids = [str(e) for e in env_ids]  # numpy's str_ too
        if len(set(env_ids)) != len(env_ids):
            raise DatasetError(f"{self.path}: env_ids has duplicates: {env_ids}")
        env_specs = json_friendly(env_specs, f"{self.path}: env_specs")
        wrappers = json_friendly(wrappers, f"{self.path}: wrappers")
        self._fsync = fsync
        self._lock = _h5.ProcessLock(self.path)
        self._episode: _Episode | None = None
        self._broken: str | None = None
        self._file: h5py.File | None = None
        self._journal: Journal | None = None

        if self.path.is_symlink():
            raise DatasetError(f"{self.path} is a symbolic link; pass the file it points to "
                               f"({self.path.resolve()}) or another name")
        _h5.check_regular_file(self.path)
        if self.path.exists() and not (overwrite or resume):
            raise FileExistsError(f"{self.path} exists; pass overwrite=True to replace it or "
                                  "resume=True to append to it")
        if resume and self.path.exists():
            self._file = self._open_for_resume(observation_space, action_space, env_ids)
        else:
            if observation_space is None or action_space is None:
                raise DatasetError(f"{self.path}: observation_space and action_space are needed "
                                   "to create a new file")
            chunk_bytes = chunk_frames * _row_bytes(observation_space)
            if chunk_bytes >= 2**32:
                raise DatasetError(f"{self.path}: chunks of {chunk_frames} observations would "
                                   f"take {chunk_bytes / 2**30:.1f} GiB, over HDF5's 4 GiB; "
                                   "pass a smaller chunk_frames")
            check_folder(self.path)
            if overwrite:  # fail early; probed again when the new file takes its place
                with _h5.folder_lock(self.path):  # (a bare probe could make another
                    self._lock.probe_exclusive()  # writer's own open or lock fail)
            values = {
                "format": FORMAT_NAME,
                "format_version": FORMAT_VERSION,
                "chunk_frames": chunk_frames,
                "created": datetime.now(timezone.utc).isoformat(timespec="microseconds"),
                "command": _storable(shlex.join(sys.argv)) if command is None else command,
                "policy": policy,
                "seed": seed,
                "env_ids": env_ids,
                "env_specs": {env_id: (env_specs or {}).get(env_id) for env_id in env_ids},
                "observation_space": space_to_dict(observation_space),
                "action_space": space_to_dict(action_space),
                "wrappers": wrappers,
                "versions": library_versions(),
                "user_metadata": metadata,
            }
            self._file = self._create(values, observation_space, action_space,
                                      compression=compression,
                                      compression_level=compression_level,
                                      blank_frames=blank_frames, replace=overwrite)
        try:
            self._setup()
            if blank_frames and not self.blank_frames:  # resumed: the file decides
                raise DatasetError(f"{self.path} stores no blank_frame flags, so resuming "
                                   "with blank_frames=True would drop them; resume without it "
                                   "or write a new file")
        except BaseException:
            self.close()
            raise

    # -----------------------------------------------------------------------------------------
    # Opening
    # -----------------------------------------------------------------------------------------
    def _temp_path(self) -> Path:
        return self.path.with_name(f".{self.path.name}.{os.getpid()}.tmp")

    def _create(self, values: Mapping[str, Any], observation_space: gym.Space,
                action_space: gym.Space, *, replace: bool, **layout: Any) -> h5py.File:
        """Build the empty file under a temporary name, then open and publish it (see
        :meth:`_open_and_publish`)."""
        tmp = self._temp_path()
        try:
            try:
                with h5py.File(tmp, "w", libver="latest",
                               userblock_size=USERBLOCK_SIZE) as f:
                    create_layout(f, observation_space, action_space,
                                  chunk_frames=values["chunk_frames"], **layout)
                    create_log(f)
                    write_metadata(f, values)
                _allocate_userblock(tmp)
            except (OSError, RuntimeError) as err:
                if _is_out_of_space(err):
                    raise DatasetWriteError(
                        f"{self.path}: creating the file failed, the disk is full "
                        f"({_h5.reason(err)}); free space and run again"
                        " (nothing was written)") from None
                raise
            # under the folder lock even when linking (which never overwrites): an overwriter
            # checks the path and replaces it in one step only if no one links a file in
            # between, which would otherwise be unlinked under its new writer
            with _h5.folder_lock(self.path):
                if replace:
                    self._lock.probe_exclusive()
                return self._open_and_publish(tmp, replace=replace)
        finally:
            with contextlib.suppress(FileNotFoundError):
                tmp.unlink()

    def _open_and_publish(self, tmp: Path, *, replace: bool) -> h5py.File:
        """Open the finished temporary file as the SWMR writer and take the writer's shared
        lock on it, then give it its name: no other process can see the file before it is
        held. (Published first, a reader that opened it before the writer did made the
        writer's open fail: HDF5 wants an exclusive lock to open for writing.)"""
        f = _h5.open_for_swmr_write(tmp)
        try:
            self._lock.hold_shared(tmp)
            self._publish(tmp, replace=replace)
        except BaseException:
            self._lock.release()
            f.close()
            raise
        return f

    def _publish(self, tmp: Path, *, replace: bool) -> None:
        if replace:
            os.replace(tmp, self.path)
            return
        try:
            os.link(tmp, self.path)  # fails if the path appeared meanwhile: never overwrite
        except FileExistsError:
            raise FileExistsError(f"{self.path} was created by another process meanwhile; pass "
                                  "overwrite=True to replace it or resume=True to append to "
                                  "it") from None

    def _check_resumable(self) -> None:
        """Refuse, before anything is written, a file that resuming would change or misread:
        not a rollout file (HDF5 wrote a superblock into an empty file; another program's HDF5
        was called damaged), a newer format, or a copy cut short where it held committed
        episodes (recovery kept those before the cut and dropped the rest without a word). A
        killed writer's file, or one a full disk cut short, is left to recovery."""
        from gan_envs.datasets.reader import RolloutReader  # (the reader imports this module)

        try:
            RolloutReader(self.path, cache_bytes=0, check_table=False).close()
        except (CorruptDatasetError, DatasetInUseError) as err:
            if _h5.TRUNCATED_TEXT in str(err):  # the committed data the cut lost is gone
                raise CorruptDatasetError(f"{err}; resume=True would keep only the episodes "
                                          "before the cut") from None
        except DatasetVersionError:
            raise
        except DatasetError as err:  # not HDF5, not a rollout file
            raise DatasetError(f"{err}; resume=True appends only to such a file (overwrite=True "
                               "replaces it)") from None

    def _open_for_resume(self, observation_space: gym.Space | None,
                         action_space: gym.Space | None, env_ids: list[str]) -> h5py.File:
        self._check_resumable()
        # checked free, opened and locked in one step among writers: a second resumer that
        # came between HDF5's open and our lock would take the file for a killed writer's
        with _h5.folder_lock(self.path):
            self._lock.probe_exclusive()
            identity = _h5.file_identity(self.path)
            try:
                f: h5py.File | None = _h5.open_for_swmr_write(self.path)
            except _h5.NeedsRecovery:
                f = None
            else:
                try:
                    self._lock.hold_shared()
                except BaseException:
                    f.close()
                    raise
                if not _table_readable(f):  # a damaged table: copy it through the journal
                    f.close()
                    self._lock.release()
                    identity, f = _h5.file_identity(self.path), None
        if f is None:  # copy the committed part into a fresh file
            f = self._recover(identity)
        try:
            check_format(f.attrs, str(self.path))
            meta = read_metadata(f.attrs)
            for given, key in ((observation_space, "observation_space"),
                               (action_space, "action_space")):
                stored = space_from_json(meta[key])
                if given is not None and given != stored:
                    raise DatasetError(f"{self.path}: resume with {key} {given}, but the file "
                                       f"holds {stored}")
            unknown = [e for e in env_ids if e not in meta["env_ids"]]
            if unknown:
                raise DatasetError(f"{self.path}: resume=True cannot add env ids {unknown} (the "
                                   f"file holds {meta['env_ids']}); write a new file")
        except BaseException:
            f.close()
            self._lock.release()
            raise
        return f

    def _recover(self, identity: tuple[int, ...] | None) -> h5py.File:
        """Replace a killed writer's file (``identity``: :func:`_h5.file_identity`) by a clean copy
        of its committed episodes; return the copy opened for writing.

        The committed chunks are found through HDF5's chunk index; if that index or the episode
        table is damaged (a kill tore one of its blocks), through the commit journal instead.
        The copy takes the file's place only if the file is still the killed one and no one
        has it open: another resumer may have put its own copy there meanwhile (and be
        writing to it, or be done), and replacing that would lose its episodes.
        """
        tmp = self._temp_path()
        try:
            self._copy_committed(tmp)
            with _h5.folder_lock(self.path):
                if _h5.file_identity(self.path) != identity:
                    raise DatasetInUseError(
                        f"{self.path} was recovered or replaced by another process while this "
                        "one copied its committed episodes; resume again to append to it")
                self._lock.probe_exclusive()
                return self._open_and_publish(tmp, replace=True)
        finally:
            with contextlib.suppress(FileNotFoundError):
                tmp.unlink()

    def _copy_committed(self, tmp: Path) -> None:
        """Write the killed file's committed episodes into ``tmp`` (see :meth:`_recover`)."""
        src, _ = _h5.open_for_read(self.path)
        try:
            check_format(src.attrs, str(self.path))
            attrs = dict(src.attrs)
            try:
                self._rebuild(attrs, _IndexSource(src), tmp)
            except (OSError, RuntimeError, KeyError, ValueError) as err:
                self._check_space(err)
                if read_head(self.path) is None:
                    raise CorruptDatasetError(
                        f"{self.path}: cannot recover it: HDF5's index is damaged "
                        f"({_h5.reason(err)}) and the file has no commit journal head (format "
                        "1.0, or killed before its first commit); gan_envs.datasets.verify() "
                        "lists what is readable") from None
                try:
                    self._rebuild(attrs, _JournalSource(self.path, src), tmp)
                except (OSError, RuntimeError, KeyError, ValueError) as again:
                    self._check_space(again)
                    raise CorruptDatasetError(
                        f"{self.path}: cannot recover it: HDF5's index is damaged "
                        f"({_h5.reason(err)}) and so is its commit journal "
                        f"({_h5.reason(again)}); gan_envs.datasets.verify() lists what is "
                        "readable") from None
        finally:
            src.close()

    def _check_space(self, err: BaseException) -> None:
        """Raise DatasetWriteError if ``err`` is the recovered copy running out of space."""
        if _is_out_of_space(err):
            raise DatasetWriteError(f"{self.path}: recovering its committed episodes needs "
                                    f"space for a copy ({_h5.reason(err)}); free space and "
                                    "resume again (the file is unchanged)") from None

    def _rebuild(self, attrs: Mapping[str, Any], source: _IndexSource | _JournalSource,
                 tmp: Path) -> None:
        """Write ``source``'s committed episodes into a fresh file at ``tmp``."""
        rows, layout = source.rows, source.layout
        chunk = int(layout["chunk_frames"])
        with h5py.File(tmp, "w", libver="latest", userblock_size=USERBLOCK_SIZE) as dst:
            create_layout(
                dst,
                space_from_json(attrs["observation_space"]),
                space_from_json(attrs["action_space"]),
                chunk_frames=chunk, compression=layout["compression"],
                compression_level=layout["compression_level"],
                blank_frames=layout["blank_frames"],
            )
            create_log(dst)
            for key, value in attrs.items():
                dst.attrs[key] = value
            dst.attrs["format_version"] = FORMAT_VERSION  # it now has a commit journal
            names = [name for name in dst if name not in ("episodes", LOG_NAME)]
            for name in names:
                end = max((episode_ranges(row, [name], chunk)[name][1] for row in rows),
                          default=0)
                dst[name].resize(end, axis=0)
                zeros = (0,) * (dst[name].ndim - 1)
                for first, data, mask in source.chunks(name):
                    dst[name].id.write_direct_chunk((first, *zeros), data, mask)
            dst["episodes"].resize((len(rows),))
            dst["episodes"][:] = rows
            dst.flush()
            _allocate_userblock(tmp)
            journal = Journal(dst, tmp, layout)
            try:
                datasets = {name: dst[name] for name in names}
                located = {name: chunk_locations(ds) for name, ds in datasets.items()}
                for k, row in enumerate(rows):
                    journal.write_record(k, row, episode_ranges(row, names, chunk), datasets,
                                         located)
                    journal.publish()
            finally:
                journal.close()

    def _setup(self) -> None:
        f = self._file
        meta = read_metadata(f.attrs)
        self.observation_space = space_from_json(meta["observation_space"])
        self.action_space = space_from_json(meta["action_space"])
        self.env_ids: list[str] = list(meta["env_ids"])
        self.chunk_frames = int(meta["chunk_frames"])
        self.blank_frames = "blank_frame" in f
        rows = committed_rows(f["episodes"][:])
        self._num_episodes = len(rows)
        obs_end = int((rows["obs_offset"] + rows["length"] + 1).max()) if len(rows) else 0
        step_end = int((rows["step_offset"] + rows["length"]).max()) if len(rows) else 0
        self._obs_cursor = align_up(obs_end, self.chunk_frames)
        self._step_cursor = align_up(step_end, self.chunk_frames)
        names = ["observations", "actions", "rewards", "terminations", "truncations"]
        names += ["blank_frame"] if self.blank_frames else []
        self._cols = {name: _Column(f[name], self.chunk_frames) for name in names}
        self._table = f["episodes"]
        self._journal = None
        self._max_steps = sys.maxsize
        if LOG_NAME in f:
            self._max_steps = max_steps(self.chunk_frames, len(self._cols))
            # a 1.1 file gets 1.1 records (no inline chunks), which a 1.1 gan-envs can recover
            inline = str(f.attrs["format_version"]) != "1.1"
            self._journal = Journal(f, self.path, _layout_of(f), fsync=self._fsync,
                                    inline=inline)
            try:
                self._sync_journal(rows)
            except (OSError, RuntimeError, KeyError) as err:
                self.close()
                raise DatasetWriteError(f"{self.path}: cannot bring its commit journal up to "
                                        f"date ({_h5.reason(err)}); free space, or run "
                                        "gan_envs.datasets.verify() on it") from None

    def _sync_journal(self, rows: np.ndarray) -> None:
        """Make the journal hold exactly the committed episodes (after a commit cut short)."""
        assert self._journal is not None
        if self._journal.episodes and chain_problem(self.path) is not None:
            self._journal.rewind(0)  # a damaged record: journal every episode again
        if self._journal.episodes > len(rows):  # its newest records' rows are not committed
            self._journal.rewind(len(rows))
        if self._journal.episodes < len(rows):  # a commit stopped before the head moved
            located = {name: chunk_locations(c.ds) for name, c in self._cols.items()}
            for k in range(self._journal.episodes, len(rows)):
                self._journal_episode(k, rows[k], located)
                self._file.flush()
                self._journal.publish()

    # -----------------------------------------------------------------------------------------
    # Public API
    # -----------------------------------------------------------------------------------------
    @property
    def num_episodes(self) -> int:
        """Committed episodes in the file."""
        return self._num_episodes

    @property
    def in_episode(self) -> bool:
        """Whether an episode has begun and is not yet committed or discarded."""
        return self._episode is not None

    def begin_episode(self, observation: Any, *, env_id: str | None = None,
                      seed: int | None = None, blank: bool = False) -> None:
        """Start an episode with its first observation (the one ``env.reset`` returned)."""
        self._check_open()
        if self._episode is not None:
            raise DatasetError(f"{self.path}: an episode is in progress; call commit_episode() "
                               "or discard_episode() first")
        env_index = self._env_index(env_id)
        seed_value = self._seed(seed)
        obs = self._values(self.observation_space, observation, "observation", single=True)
        blank_flag = self._blank(blank)
        self._episode = _Episode(env_index, seed_value)
        self._begin_columns()
        with self._guard():
            self._append_obs(obs[0], blank_flag)

    def add_step(self, action: Any, reward: float, observation: Any, terminated: bool = False,
                 truncated: bool = False, *, blank: bool = False) -> None:
        """Append one step: the action taken, its reward and the observation that followed."""
        self._check_open()
        ep = self._episode
        if ep is None:
            raise DatasetError(f"{self.path}: no episode in progress; call "
                               "begin_episode(observation) first")
        if ep.terminated or ep.truncated:
            raise DatasetError(f"{self.path}: the episode ended at step {ep.steps}; call "
                               "commit_episode() before adding steps")
        if ep.steps >= self._max_steps:
            raise DatasetError(self._too_long(ep.steps + 1))
        act = self._values(self.action_space, action, "action", single=True)
        obs = self._values(self.observation_space, observation, "observation", single=True)
        rew = self._reward(reward)
        term, trunc = self._flag(terminated, "terminated"), self._flag(truncated, "truncated")
        blank_flag = self._blank(blank)
        with self._guard():
            cols = self._cols
            cols["actions"].append(act[0])
            cols["rewards"].append(rew)
            cols["terminations"].append(term)
            cols["truncations"].append(trunc)
            self._append_obs(obs[0], blank_flag)
        ep.steps += 1
        ep.total += float(np.float32(rew))
        ep.terminated, ep.truncated = bool(term), bool(trunc)

    def commit_episode(self) -> int:
        """Make the episode in progress visible to readers; returns its index."""
        self._check_open()
        ep = self._episode
        if ep is None:
            raise DatasetError(f"{self.path}: no episode in progress to commit")
        if ep.steps == 0:
            raise DatasetError(f"{self.path}: an episode needs at least one step; add_step() "
                               "before commit_episode(), or discard_episode()")
        return self._commit(ep)

    def discard_episode(self) -> None:
        """Drop the episode in progress; nothing of it becomes visible."""
        self._episode = None

    def add_episode(
        self,
        observations: Any,
        actions: Any,
        rewards: Any,
        terminations: Any = None,
        truncations: Any = None,
        *,
        env_id: str | None = None,
        seed: int | None = None,
        blank: Any = None,
    ) -> int:
        """Append and commit a whole episode (N + 1 observations, N steps); returns its index."""
        self._check_open()
        if self._episode is not None:
            raise DatasetError(f"{self.path}: an episode is in progress; call commit_episode() "
                               "or discard_episode() first")
        env_index, seed_value = self._env_index(env_id), self._seed(seed)
        if np.ndim(actions) == 0:
            raise DatasetError(f"{self.path}: actions must be a sequence with one action per "
                               f"step, got the single value {actions!r}")
        if len(actions) == 0:
            raise DatasetError(f"{self.path}: an episode needs at least one step, got no actions")
        acts = self._values(self.action_space, actions, "actions")
        n = len(acts)
        if n > self._max_steps:
            raise DatasetError(self._too_long(n))
        obs = self._values(self.observation_space, observations, "observations")
        rews = self._rewards(rewards)
        terms = self._flags(terminations, n, "terminations")
        truncs = self._flags(truncations, n, "truncations")
        blanks = self._blanks(blank, n + 1)
        for name, got, want in (("observations", len(obs), n + 1), ("rewards", len(rews), n)):
            if got != want:
                raise DatasetValueError(f"{self.path}: {name} has {got} rows, expected {want} "
                                        f"for an episode of {n} actions", name)
        ep = _Episode(env_index, seed_value)
        ep.steps, ep.total = n, float(rews.astype(np.float64).sum())
        ep.terminated, ep.truncated = bool(terms[-1]), bool(truncs[-1])
        self._begin_columns()
        with self._guard():
            for name, rows in (("observations", obs), ("actions", acts), ("rewards", rews),
                               ("terminations", terms), ("truncations", truncs),
                               ("blank_frame", blanks)):
                if name in self._cols:
                    self._cols[name].extend(rows)
        return self._commit(ep)

    def flush(self) -> None:
        """Flush HDF5's buffers (commits already flush; this is for the cautious)."""
        self._check_open()
        with self._guard():
            self._file.flush()

    def close(self) -> None:
        """Discard an uncommitted episode and close the file (cleanly: plain h5py opens it)."""
        self._episode = None
        if self._journal is not None:
            self._journal.close()
            self._journal = None
        if self._file is not None:
            try:
                if self._broken is None:
                    self._file.close()
                else:
                    with contextlib.suppress(Exception):
                        self._file.close()
            finally:
                self._file = None
                self._lock.release()

    def __enter__(self) -> RolloutWriter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        state = "closed" if self._file is None else f"{self._num_episodes} episodes"
        return f"RolloutWriter({str(self.path)!r}, {state})"

    # -----------------------------------------------------------------------------------------
    # Internals
    # -----------------------------------------------------------------------------------------
    def _check_open(self) -> None:
        if self._broken is not None:
            raise DatasetWriteError(self._broken)
        if self._file is None:
            raise DatasetError(f"{self.path}: the writer is closed; open a new "
                               "RolloutWriter(..., resume=True) to append more")

    @contextlib.contextmanager
    def _guard(self) -> Iterator[None]:
        """Turn an HDF5 write failure (disk full, size limit) into DatasetWriteError."""
        try:
            yield
        except (OSError, RuntimeError) as err:
            reason = _h5.reason(err)
            k = self._num_episodes
            kept = (f"episodes 0-{k - 1} are committed and intact" if k
                    else "no episode was committed")
            self._broken = (f"{self.path}: writing episode {k} failed ({reason}); {kept}; free "
                            "space and append with RolloutWriter(..., resume=True)")
            self._episode = None
            self._cols, self._table = {}, None  # drop dataset handles before the file: HDF5
            # cannot flush them now
            self.close()
            raise DatasetWriteError(self._broken) from err

    def _begin_columns(self) -> None:
        if self._journal is not None:
            self._journal.begin()
        for name, col in self._cols.items():
            col.begin(self._obs_cursor if name in ("observations", "blank_frame")
                      else self._step_cursor)

    def _append_obs(self, obs: np.ndarray, blank: int) -> None:
        self._cols["observations"].append(obs)
        if "blank_frame" in self._cols:
            self._cols["blank_frame"].append(blank)

    def _commit(self, ep: _Episode) -> int:
        k = self._num_episodes
        row = np.zeros((), dtype=EPISODE_DTYPE)
        row["obs_offset"], row["step_offset"] = self._obs_cursor, self._step_cursor
        row["length"], row["return"] = ep.steps, ep.total
        row["terminated"], row["truncated"] = ep.terminated, ep.truncated
        row["env_index"], row["seed"], row["committed"] = ep.env_index, ep.seed, 1
        with self._guard():
            for col in self._cols.values():
                col.finish()
            self._file.flush()  # 1. the episode's data ...
            self._sync()
            if self._journal is not None:  # ... its journal record (not yet reachable) ...
                self._journal_episode(k, row)
            self._table.id.set_extent((k + 1,))
            file_space = self._table.id.get_space()
            file_space.select_hyperslab((k,), (1,))
            self._table.id.write(h5py.h5s.create_simple((1,)), file_space, row.reshape(1))
            self._file.flush()  # 2. ... then its row: the commit record ...
            self._sync()
            if self._journal is not None:  # 3. ... and the journal's head (one small write)
                self._journal.publish()
        self._episode = None
        self._num_episodes = k + 1
        self._obs_cursor = self._cols["observations"].start
        self._step_cursor = self._cols["actions"].start
        return k

    def _too_long(self, steps: int) -> str:
        return (f"{self.path}: an episode of {steps} steps is longer than the commit journal "
                f"records with chunk_frames={self.chunk_frames} ({self._max_steps} steps); "
                "end it earlier (truncate) or write the file with a larger chunk_frames")

    def _journal_episode(self, k: int, row: np.void | np.ndarray,
                         located: Mapping[str, Locations] | None = None) -> None:
        assert self._journal is not None
        ranges = episode_ranges(row, list(self._cols), self.chunk_frames)
        self._journal.write_record(k, row, ranges, {n: c.ds for n, c in self._cols.items()},
                                   located)

    def _sync(self) -> None:
        if self._fsync:
            os.fsync(self._file.id.get_vfd_handle())

    def _env_index(self, env_id: str | None) -> int:
        if env_id is None:
            if len(self.env_ids) > 1:
                raise DatasetError(f"{self.path}: pass env_id=, the file holds several env ids "
                                   f"{self.env_ids}")
            return 0 if self.env_ids else -1
        if env_id not in self.env_ids:
            raise DatasetError(f"{self.path}: unknown env id {env_id!r}; declare it in "
                               f"RolloutWriter(env_ids=[...]) (the file holds {self.env_ids})")
        return self.env_ids.index(env_id)

    def _seed(self, seed: int | None) -> int:
        if seed is None:
            return -1
        return whole_number(seed, f"{self.path}: seed", high=MAX_SEED)

    def _values(self, space: gym.Space, values: Any, what: str, *, single: bool = False
                ) -> np.ndarray:
        try:
            return check_values(space, values, what, single=single)
        except DatasetError as err:
            raise DatasetValueError(f"{self.path}: {err}", _ARRAY_OF.get(what, what)) from None

    def _reward(self, reward: Any) -> np.float32:
        arr = np.asarray(reward)
        if arr.shape != () or arr.dtype.kind not in "biuf" or not math.isfinite(float(arr)):
            raise DatasetValueError(f"{self.path}: reward must be a finite real number, got "
                                    f"{reward!r}", "rewards")
        with np.errstate(over="ignore"):
            stored = np.float32(arr)
        if not math.isfinite(stored):
            raise DatasetValueError(f"{self.path}: reward {float(arr)!r} is too large for "
                                    "float32 (rewards are stored as float32); scale it down",
                                    "rewards")
        return stored

    def _rewards(self, rewards: Any) -> np.ndarray:
        arr = np.asarray(rewards)
        if arr.ndim != 1 or arr.dtype.kind not in "biuf" or not np.isfinite(arr).all():
            raise DatasetValueError(f"{self.path}: rewards must be a 1-D array of finite real "
                                    f"numbers, got shape {arr.shape} dtype {arr.dtype}",
                                    "rewards")
        with np.errstate(over="ignore"):
            stored = arr.astype(np.float32)
        if not np.isfinite(stored).all():
            i = int(np.argmin(np.isfinite(stored)))
            raise DatasetValueError(f"{self.path}: rewards[{i}] = {float(arr[i])!r} is too large "
                                    "for float32 (rewards are stored as float32); scale it down",
                                    "rewards")
        return stored

    def _flag(self, value: Any, what: str) -> np.uint8:
        arr = np.asarray(value)
        if arr.shape != () or arr.dtype.kind not in "biu" or arr not in (0, 1):
            raise DatasetValueError(f"{self.path}: {what} must be True or False, got {value!r}",
                                    _ARRAY_OF.get(what, what))
        return np.uint8(arr)

    def _flags(self, values: Any, n: int, what: str) -> np.ndarray:
        if values is None:
            return np.zeros(n, np.uint8)
        arr = np.asarray(values)
        if arr.shape != (n,) or arr.dtype.kind not in "biu" or not _zeros_and_ones(arr):
            raise DatasetValueError(f"{self.path}: {what} must be {n} True/False values, got "
                                    f"shape {arr.shape} dtype {arr.dtype}", what)
        if arr[:-1].any():
            raise DatasetValueError(f"{self.path}: {what}[{int(np.argmax(arr))}] is set before "
                                    "the last step; an episode ends at its first termination "
                                    "or truncation", what)
        return arr.astype(np.uint8)

    def _blank(self, blank: Any) -> np.uint8:
        flag = self._flag(blank, "blank")
        if flag and not self.blank_frames:
            raise DatasetError(f"{self.path}: this file stores no blank_frame flags; create it "
                               "with RolloutWriter(..., blank_frames=True)")
        return flag

    def _blanks(self, blank: Any, n: int) -> np.ndarray:
        if blank is None:
            return np.zeros(n, np.uint8)
        if not self.blank_frames:
            raise DatasetError(f"{self.path}: this file stores no blank_frame flags; create it "
                               "with RolloutWriter(..., blank_frames=True)")
        arr = np.asarray(blank)
        if arr.shape != (n,) or arr.dtype.kind not in "biu" or not _zeros_and_ones(arr):
            raise DatasetValueError(f"{self.path}: blank must be {n} True/False values (one per "
                                    f"observation), got shape {arr.shape}", "blank_frame")
        return arr.astype(np.uint8)


def check_compression(path: Path, compression: Any) -> None:
    """A DatasetError unless ``compression`` is one the writer takes (lossless only)."""
    if compression not in COMPRESSIONS:
        raise DatasetError(f"{path}: compression must be one of {COMPRESSIONS} (lossless only), "
                           f"got {compression!r}")


def check_folder(path: Path) -> None:
    """A FileNotFoundError unless the folder a new file goes into exists."""
    if not path.parent.is_dir():
        raise FileNotFoundError(f"{path.parent} does not exist; create the folder for "
                                f"{path.name} first")


def _row_bytes(space: gym.Space) -> int:
    """Bytes of one stored row of ``space`` (0 for a space the format cannot store: the
    layout refuses it with its own message)."""
    try:
        shape, dtype = space_storage(space)
    except DatasetError:
        return 0
    return int(np.prod(shape, dtype=np.int64)) * dtype.itemsize


def _table_readable(f: h5py.File) -> bool:
    """Whether a cleanly closed file's episode table reads (a flipped bit fails its checksum;
    a resume then recovers the committed episodes through the commit journal)."""
    try:
        f["episodes"][:]
    except (OSError, RuntimeError):
        return False
    return True


def _storable(text: str) -> str:
    """``text`` as HDF5 can store it: a lone surrogate (an undecodable byte of ``sys.argv``)
    becomes its escape, ``\\udcff``."""
    return text.encode("utf-8", "backslashreplace").decode("utf-8")


def _zeros_and_ones(arr: np.ndarray) -> bool:
    """Whether an integer or bool array holds only 0 and 1 (``np.isin`` is 10x slower)."""
    return arr.dtype == bool or bool(((arr == 0) | (arr == 1)).all())


def _allocate_userblock(path: Path) -> None:
    """Write the user block's zeros, so that moving the journal head never needs new space."""
    with open(path, "r+b") as f:
        f.write(bytes(USERBLOCK_SIZE))


def _layout_of(f: h5py.File) -> dict[str, Any]:
    """How a file's arrays are stored: what a rebuilt file must repeat."""
    obs = f["observations"]
    return {"chunk_frames": int(f.attrs["chunk_frames"]), "compression": obs.compression,
            "compression_level": obs.compression_opts, "blank_frames": "blank_frame" in f}


class _IndexSource:
    """A killed writer's committed episodes, found through HDF5's chunk index."""

    def __init__(self, src: h5py.File) -> None:
        self._src = src
        self.rows = committed_rows(src["episodes"][:])
        self.layout = _layout_of(src)

    def chunks(self, name: str) -> Iterator[tuple[int, bytes, int]]:
        """(first row, stored bytes, filter mask) of every committed chunk of array ``name``."""
        ds, chunk = self._src[name], int(self.layout["chunk_frames"])
        zeros = (0,) * (ds.ndim - 1)
        for row in self.rows:
            start, end = episode_ranges(row, [name], chunk)[name]
            for first in range(start, end, chunk):
                mask, data = ds.id.read_direct_chunk((first, *zeros))
                yield first, data, mask


class _JournalSource:
    """A killed writer's committed episodes, found through the commit journal (plain reads)."""

    def __init__(self, path: Path, src: h5py.File) -> None:
        self._path = path
        self._records = read_records(path)
        self.rows = np.array([r.row for r in self._records], dtype=EPISODE_DTYPE)
        self.layout = self._records[-1].layout if self._records else _layout_of(src)

    def chunks(self, name: str) -> Iterator[tuple[int, bytes, int]]:
        """Like :meth:`_IndexSource.chunks`; each chunk checked against its recorded CRC32."""
        with open(self._path, "rb") as f:
            for record in self._records:
                sizes = record.chunks[name]["size"].tolist()  # stored_chunks keeps this order
                for size, (first, data, mask, crc) in zip(sizes, record.stored_chunks(name, f),
                                                          strict=True):
                    if len(data) != size or zlib.crc32(data) != crc:
                        raise CorruptDatasetError(
                            f"{self._path}: cannot recover it: the {name} chunk at row {first} "
                            f"of episode {record.episode} does not match its commit journal "
                            "record; gan_envs.datasets.verify() lists what is readable")
                    yield first, data, mask
