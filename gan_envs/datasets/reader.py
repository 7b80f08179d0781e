"""RolloutReader: read-only, chunk-aware random access to a rollout file, also while it grows."""

from __future__ import annotations

import contextlib
import os
import sys
import threading
from collections import OrderedDict
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import h5py
import numpy as np

from gan_envs.datasets import _h5
from gan_envs.datasets.arguments import whole_number
from gan_envs.datasets.errors import CorruptDatasetError, DatasetError, DatasetVersionError
from gan_envs.datasets.format import (
    OBSERVATION_ARRAYS,
    STEP_ARRAYS,
    check_format,
    committed_rows,
    read_metadata,
)
from gan_envs.datasets.integrity import (
    check_datasets,
    check_storage,
    first_problem_message,
    metadata_fields,
    table_problems,
)
from gan_envs.datasets.journal import read_head
from gan_envs.datasets.sampling import ChunkIndex, WindowIndex, generator

__all__ = ["RolloutReader"]

#: The datasets a reader opens (a format 1.1 file also has the writer's ``commit_log``).
_ARRAYS = frozenset((*OBSERVATION_ARRAYS, *STEP_ARRAYS, "episodes"))

DEFAULT_CACHE_BYTES = 256 * 2**20
# a damaged read's advice
LOCATE_HINT = "`gan-envs verify FILE` (gan_envs.datasets.verify()) locates the bad episodes"
_RESUME = ("RolloutWriter(path, resume=True), or the `gan-envs collect` command again with "
           "--resume, ")
# a closed file whose episode table does not read (a flipped bit fails its checksum): its advice
TABLE_HINT = _RESUME + "rebuilds the table from the commit journal"
# a killed writer's file that cannot be read: its advice (collect() acts on it)
RECOVER_HINT = _RESUME + "recovers the committed episodes of a killed writer's file"
RngLike = np.random.Generator | int | None


class NotAnIndexError(IndexError, TypeError):
    """A frame number, episode number or window start that is not a whole number.

    An IndexError (what numpy raises for ``array[1.5]``, and what the reader documents for an
    index it refuses) that is also a TypeError (what Python's lists raise, and what the reader
    raised for them before), so code catching either keeps working.
    """


class _ChunkCache:
    """Least-recently-used decoded chunks, bounded in bytes; safe to share between threads
    (two threads that decode the same chunk store it once)."""

    def __init__(self, max_bytes: int) -> None:
        self.max_bytes = max_bytes
        self.bytes = 0
        self._items: OrderedDict[tuple[str, int], np.ndarray] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, key: tuple[str, int]) -> np.ndarray | None:
        with self._lock:
            item = self._items.get(key)
            if item is not None:
                self._items.move_to_end(key)
            return item

    def put(self, key: tuple[str, int], value: np.ndarray) -> None:
        if value.nbytes > self.max_bytes:
            return
        with self._lock:
            old = self._items.pop(key, None)  # decoded meanwhile by another thread
            if old is not None:
                self.bytes -= old.nbytes
            self._items[key] = value
            self.bytes += value.nbytes
            while self.bytes > self.max_bytes:
                _, evicted = self._items.popitem(last=False)
                self.bytes -= evicted.nbytes


class RolloutReader:
    """Read a rollout file: whole episodes, frames, random batches and windows.

    Opens clean files, files a live writer is appending to (call :meth:`refresh` to see newly
    committed episodes) and files whose writer was killed, all without a repair step. Frames are
    numbered 0..``num_frames``-1 in episode order (N + 1 per episode). Random batches read whole
    chunks and keep decoded chunks in a bounded LRU cache (``cache_bytes``); ``in_memory=True``
    loads every array into RAM instead.

    Example:
        >>> import numpy as np, os, tempfile
        >>> import gymnasium as gym
        >>> from gan_envs.datasets import RolloutReader, RolloutWriter
        >>> path = os.path.join(tempfile.mkdtemp(), "toy.h5")
        >>> space = gym.spaces.Box(0, 255, (3, 8, 8), np.uint8)
        >>> with RolloutWriter(path, space, gym.spaces.Discrete(4)) as writer:
        ...     for seed in range(3):
        ...         obs = np.full((11, 3, 8, 8), seed, np.uint8)
        ...         _ = writer.add_episode(obs, np.zeros(10, int), np.ones(10), seed=seed)
        >>> with RolloutReader(path) as reader:
        ...     print(reader.num_episodes, reader.num_steps, reader.num_frames)
        ...     batch = reader.sample_frames(256, rng=0)
        ...     windows = reader.sample_windows(4, length=5, rng=0)
        3 30 33
        >>> batch.shape, batch.dtype, windows["observations"].shape, windows["actions"].shape
        ((256, 3, 8, 8), dtype('uint8'), (4, 6, 3, 8, 8), (4, 5))

    Args:
        path: a file written by :class:`~gan_envs.datasets.RolloutWriter`.
        in_memory: load all arrays into RAM (fastest random access when they fit).
        cache_bytes: bound of the decoded-chunk cache used by random access.
        check_table: refuse a file whose episode table does not fit its arrays (an episode
            past their end, overlapping another, of length 0, of an unknown env). ``False``
            opens it anyway to inspect it (what :func:`~gan_envs.datasets.verify` does; see
            :meth:`table_problems`): reading a bad episode may then fail.

    Raises:
        FileNotFoundError: ``path`` does not exist (the message suggests a close name).
        DatasetError: not an HDF5 file or not a rollout file.
        DatasetVersionError: a ``format_version`` this gan-envs does not understand.
        CorruptDatasetError: a truncated or damaged file.
    """

    def __init__(self, path: str | os.PathLike[str], *, in_memory: bool = False,
                 cache_bytes: int = DEFAULT_CACHE_BYTES, check_table: bool = True) -> None:
        self.path = Path(path)
        self.check_table = check_table
        self._file: h5py.File | None = None
        cache_bytes = whole_number(cache_bytes, f"{self.path}: cache_bytes")
        self._options = {"in_memory": in_memory, "cache_bytes": cache_bytes,
                         "check_table": check_table}
        self._file, truncated = _h5.open_for_read(self.path)
        try:
            with self._reading("the metadata"):
                check_format(self._file.attrs, str(self.path))
                self.metadata: dict[str, Any] = read_metadata(self._file.attrs, str(self.path))
                (self.observation_space, self.action_space, self.env_ids,
                 self.chunk_frames) = metadata_fields(self.metadata, str(self.path))
                self._ds = {name: self._file[name] for name in self._file
                            if name in _ARRAYS}
                missing = [name for name in ("observations", *STEP_ARRAYS, "episodes")
                           if name not in self._ds]
                if missing:
                    raise CorruptDatasetError(
                        f"{self.path}: the file has no {', '.join(missing)} dataset (it was "
                        "changed by another program); copy it again from its source")
                check_datasets(self._ds, str(self.path))
                check_storage(self._ds, self.observation_space, self.action_space,
                              str(self.path))
            self.has_blank_frame = "blank_frame" in self._ds
            self.in_memory = in_memory
            self._cache = _ChunkCache(cache_bytes)
            self._ram: dict[str, np.ndarray] = {}
            self._load()
            if truncated is not None:
                self._check_within_file(truncated)
        except DatasetVersionError:
            self.close()
            raise
        except DatasetError:  # in a cut-short file, missing metadata is the cut's doing
            self.close()
            raise (truncated or sys.exc_info()[1]) from None
        except BaseException:
            self.close()
            raise

    # -----------------------------------------------------------------------------------------
    # Sizes and episodes
    # -----------------------------------------------------------------------------------------
    @property
    def num_episodes(self) -> int:
        """Committed episodes."""
        self._check_open()
        return len(self._table)

    @property
    def num_steps(self) -> int:
        """Steps (transitions) in all committed episodes."""
        self._check_open()
        return int(self._step_cum[-1])

    @property
    def num_frames(self) -> int:
        """Observations in all committed episodes (steps + one per episode)."""
        self._check_open()
        return int(self._frame_cum[-1])

    @property
    def compression(self) -> str | None:
        """The observations' codec (``"gzip"``, ``"lzf"``) or None when stored raw."""
        self._check_open()
        return self._ds["observations"].compression

    @property
    def episode_table(self) -> np.ndarray:
        """A copy of the committed rows of the ``episodes`` table (a structured array)."""
        self._check_open()
        return self._table.copy()

    def episode(self, i: int) -> dict[str, np.ndarray]:
        """All arrays of episode ``i``: observations (N + 1), actions, rewards, terminations,
        truncations (N each) and blank_frame (N + 1) when the file has it."""
        row = self._row(i)
        n, obs0, step0 = int(row["length"]), int(row["obs_offset"]), int(row["step_offset"])
        out = {"observations": self._rows("observations", obs0, obs0 + n + 1, i)}
        for name in ("actions", "rewards", "terminations", "truncations"):
            out[name] = self._rows(name, step0, step0 + n, i)
        if self.has_blank_frame:
            out["blank_frame"] = self._rows("blank_frame", obs0, obs0 + n + 1, i)
        return _typed(out)

    def episode_info(self, i: int) -> dict[str, Any]:
        """Episode ``i``'s table row as Python values (env_id is None when unknown)."""
        row = self._row(i)
        index = int(row["env_index"])
        return {
            "env_id": self.env_ids[index] if index >= 0 else None,
            "seed": int(row["seed"]) if row["seed"] >= 0 else None,
            "length": int(row["length"]),
            "return": float(row["return"]),
            "terminated": bool(row["terminated"]),
            "truncated": bool(row["truncated"]),
        }

    # -----------------------------------------------------------------------------------------
    # Frames
    # -----------------------------------------------------------------------------------------
    def frames(self, indices: int | Sequence[int] | np.ndarray) -> np.ndarray:
        """Observations at the given frame numbers (any order, repeats allowed), stacked; as
        with numpy, one frame number gives one frame, a negative one counts from the end
        (``-1`` is the last frame) and a boolean mask over all frames (such as
        ``~reader.blank_flags()``) gives the frames where it is True."""
        self._check_open()
        n = self.num_frames
        arr = np.asarray(indices)
        if arr.dtype == bool:
            if arr.shape != (n,):
                raise IndexError(f"{self.path}: a boolean mask needs one entry per frame "
                                 f"({n}), got shape {arr.shape}")
            arr = np.flatnonzero(arr)
        elif arr.size == 0:
            arr = arr.astype(np.int64)
        if arr.dtype.kind not in "iu" or arr.ndim > 1:
            error = IndexError if arr.ndim > 1 else NotAnIndexError
            raise error(f"{self.path}: frames() takes whole frame numbers (an int, a 1-D "
                        f"sequence or a boolean mask), got {arr.ndim}-D {arr.dtype} values")
        logical = arr.reshape(-1)
        if arr.dtype.kind == "u" and len(logical) and logical.max() >= n:
            bad = logical[logical >= n][0]  # before a cast that could wrap it into range
            raise IndexError(f"{self.path}: frame {bad} out of range {_span(n)}")
        logical = logical.astype(np.int64)
        if len(logical) and (logical.min() < -n or logical.max() >= n):
            bad = logical[(logical < -n) | (logical >= n)][0]
            raise IndexError(f"{self.path}: frame {bad} out of range {_span(n)}")
        logical = np.where(logical < 0, logical + n, logical)
        out = self._gather("observations", self._physical(logical))
        return out[0] if arr.ndim == 0 else out

    def frame_indices(self, *, env_ids: Sequence[str] | None = None,
                      exclude_blank: bool = False) -> np.ndarray:
        """Frame numbers that pass the filters, ascending."""
        self._check_open()
        keep = self._episode_mask(env_ids)[self._frame_episode()]
        if exclude_blank:
            keep &= ~self._blank_flags()
        return np.flatnonzero(keep)

    def frame_env_index(self) -> np.ndarray:
        """Per frame number, the index into ``env_ids`` of its episode's env (-1: unknown)."""
        self._check_open()
        return self._table["env_index"].astype(np.int64)[self._frame_episode()]

    def blank_flags(self) -> np.ndarray:
        """Per frame number, whether the frame is flagged blank (files with ``blank_frame``)."""
        self._check_open()
        return self._blank_flags().astype(bool)

    def chunk_index(self, *, env_ids: Sequence[str] | None = None,
                    exclude_blank: bool = False) -> ChunkIndex:
        """The frames that pass the filters, grouped by chunk (for chunk-aware samplers)."""
        self._check_open()
        key = (tuple(env_ids) if env_ids is not None else None, bool(exclude_blank))
        index = self._chunk_indices.get(key)
        if index is None:
            logical = self.frame_indices(env_ids=env_ids, exclude_blank=exclude_blank)
            index = ChunkIndex.build(logical, self._physical(logical), self.chunk_frames)
            self._chunk_indices[key] = index
        return index

    def sample_frames(self, n: int, rng: RngLike = None, *, env_ids: Sequence[str] | None = None,
                      exclude_blank: bool = False, chunks_per_batch: int | None = None
                      ) -> np.ndarray:
        """``n`` random observations, each uniform over the frames that pass the filters.

        A batch draws from ``chunks_per_batch`` chunks (default ``ceil(n / 16)``): fewer is
        faster, more is closer to independent draws. See docs/dataset-format.md.
        """
        self._check_open()
        n = whole_number(n, f"{self.path}: sample_frames(n)")
        if chunks_per_batch is not None:
            chunks_per_batch = whole_number(chunks_per_batch, f"{self.path}: chunks_per_batch",
                                            low=1)
        rng = generator(rng, f"{self.path}: rng")
        index = self.chunk_index(env_ids=env_ids, exclude_blank=exclude_blank)
        if n and len(index) == 0:
            raise DatasetError(self.no_frames(env_ids, exclude_blank))
        positions = index.sample(n, rng, chunks_per_batch)
        return self._gather("observations", index.physical[positions])

    def no_frames(self, env_ids: Sequence[str] | None = None, exclude_blank: bool = False) -> str:
        """Why no frame passes the filters, for sample_frames() or a frame dataset (the
        message of the error to raise)."""
        self._check_open()
        if self.num_frames == 0:
            return (f"{self.path}: no frames to sample (the file holds no committed episodes "
                    "yet); write episodes first (refresh() sees a live writer's new ones)")
        if isinstance(env_ids, str):
            env_ids = [env_ids]
        filters = [f"env_ids={list(env_ids)}"] if env_ids is not None else []
        filters += ["exclude_blank=True"] if exclude_blank else []
        return (f"{self.path}: no frames to sample ({' and '.join(filters)} exclude every "
                "frame); pass other filters")

    # -----------------------------------------------------------------------------------------
    # Windows
    # -----------------------------------------------------------------------------------------
    def window_index(self, length: int, *, env_ids: Sequence[str] | None = None) -> WindowIndex:
        """Every window of ``length`` steps inside one (filtered) episode."""
        self._check_open()
        length = whole_number(length, f"{self.path}: the window length", low=1)
        return WindowIndex.build(self._table["length"], self._episode_mask(env_ids), length)

    def read_window(self, episode: int, start: int, length: int) -> dict[str, np.ndarray]:
        """Steps ``start .. start+length-1`` of an episode: length + 1 observations, length of
        each step array."""
        row = self._row(episode)
        start = whole_number(start, f"{self.path}: start", low=-2**62, error=NotAnIndexError)
        length = whole_number(length, f"{self.path}: the window length", low=1)
        if not (0 <= start and start + length <= row["length"]):
            raise IndexError(f"{self.path}: window [{start}, {start + length}) does not fit "
                             f"episode {episode} of {int(row['length'])} steps")
        obs0, step0 = int(row["obs_offset"]) + start, int(row["step_offset"]) + start
        out = {"observations": self._range("observations", obs0, obs0 + length + 1)}
        for name in ("actions", "rewards", "terminations", "truncations"):
            out[name] = self._range(name, step0, step0 + length)
        return _typed(out)

    def sample_windows(self, n: int, length: int, rng: RngLike = None, *,
                       env_ids: Sequence[str] | None = None) -> dict[str, np.ndarray]:
        """``n`` windows of ``length`` steps, uniform over all windows that fit in an episode;
        a window never crosses an episode boundary. Arrays are stacked along a new axis 0."""
        self._check_open()
        n = whole_number(n, f"{self.path}: sample_windows(n)")
        rng = generator(rng, f"{self.path}: rng")
        index = self.window_index(length, env_ids=env_ids)
        if n == 0:  # also from a file or filter without windows, as sample_frames(0) does
            return {name: np.empty((0, length + (name in OBSERVATION_ARRAYS), *ds.shape[1:]),
                                   bool if name in _FLAGS else ds.dtype)
                    for name, ds in self._ds.items()
                    if name in ("observations", *STEP_ARRAYS)}
        if len(index) == 0:
            raise DatasetError(self.no_windows(length, env_ids))
        picks = rng.integers(len(index), size=n)
        windows = [self.read_window(*index.locate(int(i)), length) for i in picks]
        return {key: np.stack([w[key] for w in windows]) for key in windows[0]}

    def no_windows(self, length: int, env_ids: Sequence[str] | None = None) -> str:
        """Why no window of ``length`` steps fits (the message of the error to raise)."""
        self._check_open()
        lengths = self._table["length"][self._episode_mask(env_ids)]
        which = "" if env_ids is None else f" of {list(env_ids)}"
        if len(lengths) == 0:
            return f"{self.path}: no committed episodes{which} to take windows from"
        return (f"{self.path}: no episode{which} has {length} steps (the longest has "
                f"{int(lengths.max())}); pass a shorter length")

    # -----------------------------------------------------------------------------------------
    # Life cycle
    # -----------------------------------------------------------------------------------------
    def refresh(self) -> int:
        """See episodes a live writer committed since opening; returns how many are new."""
        self._check_open()
        before = self.num_episodes
        if self._file is not None and self._file.swmr_mode:
            with self._reading("the episode table"):
                for ds in self._ds.values():
                    ds.refresh()
            self._load()
        return self.num_episodes - before

    def close(self) -> None:
        if self._file is not None:
            with contextlib.suppress(Exception):
                self._file.close()
            self._file = None

    def __enter__(self) -> RolloutReader:
        self._check_open()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __reduce__(self) -> tuple[Any, tuple[str, dict[str, Any]]]:
        """Pickled (for another process, ``copy.copy``), a reader is its path and options: the
        copy opens the file again, read-only, and sees the episodes committed by then."""
        self._check_open()
        return _reopen, (str(self.path), dict(self._options))

    def __repr__(self) -> str:
        if self._file is None:
            return f"RolloutReader({str(self.path)!r}, closed)"
        return (f"RolloutReader({str(self.path)!r}, {self.num_episodes} episodes, "
                f"{self.num_frames} frames, env_ids={self.env_ids})")

    # -----------------------------------------------------------------------------------------
    # Internals
    # -----------------------------------------------------------------------------------------
    def _check_within_file(self, truncated: CorruptDatasetError) -> None:
        """Refuse a file cut short where it held committed data.

        A writer stopped by a full disk leaves a file shorter than HDF5 expects, missing only
        the episode being written (at most the last table row and chunks past the committed
        data); a SWMR reader reads such a file, and resuming repairs it. A copy cut short, or
        a disk error, can lose table rows of committed episodes, which would then read as
        zeros — as if the episodes had never been written. Chunk addresses tell the two apart,
        and so does the commit journal: its head, at the start of the file, counts the
        committed episodes, and a writer moves it only after the episode's row is in the file
        (a copy cut inside the last committed row read as one episode fewer, without a word).
        """
        head = read_head(self.path)  # None for format 1.0 (no journal) or before a commit
        if head is not None and head.episodes > len(self._table):
            raise truncated
        size = self.path.stat().st_size
        table = self._ds["episodes"]
        last_row = table.shape[0] - 1
        rows = self._table
        obs_end = int((rows["obs_offset"] + rows["length"] + 1).max()) if len(rows) else 0
        step_end = int((rows["step_offset"] + rows["length"]).max()) if len(rows) else 0
        with self._reading("the chunk index"):
            for name, ds in self._ds.items():
                if name == "episodes":
                    keep_before = last_row  # every row but the last must be in the file
                elif name in ("observations", "blank_frame"):
                    keep_before = obs_end
                else:
                    keep_before = step_end
                for i in range(ds.id.get_num_chunks()):
                    info = ds.id.get_chunk_info(i)
                    if (info.byte_offset is not None and info.chunk_offset[0] < keep_before
                            and info.byte_offset + info.size > size):
                        raise truncated

    def _load(self) -> None:
        """(Re)read the committed episode table and derived offsets; refuse a table that does
        not fit the arrays (:func:`~gan_envs.datasets.integrity.table_problems`)."""
        with self._reading("the episode table"):
            table = committed_rows(self._ds["episodes"][:])
            problems = self._problems_of(table)
            if problems and self._file is not None and self._file.swmr_mode:
                for name, ds in self._ds.items():  # a live writer's arrays grew meanwhile
                    if name != "episodes":
                        ds.refresh()
                problems = self._problems_of(table)
        if problems and self.check_table:  # refused: the reader keeps the table it had
            raise CorruptDatasetError(first_problem_message(str(self.path), problems))
        self._table = table
        lengths = self._table["length"].astype(np.int64)
        self._frame_cum = np.concatenate([[0], np.cumsum(lengths + 1)]).astype(np.int64)
        self._step_cum = np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64)
        self._obs_offset = self._table["obs_offset"].astype(np.int64)
        self._chunk_indices: dict[tuple[Any, bool], ChunkIndex] = {}
        self._blank_cache: np.ndarray | None = None
        if self.in_memory:
            with self._reading("the arrays"):
                self._ram = {name: ds[:] for name, ds in self._ds.items() if name != "episodes"}

    def table_problems(self) -> list[tuple[int, str]]:
        """Every committed episode whose table row does not fit the arrays (empty for a sound
        file); ``verify`` reports them all, opening refuses the file on the first."""
        self._check_open()
        return self._problems_of(self._table)

    def _problems_of(self, table: np.ndarray) -> list[tuple[int, str]]:
        extents = {name: int(ds.shape[0]) for name, ds in self._ds.items()}
        return table_problems(table, extents, self.chunk_frames, len(self.env_ids))

    @contextlib.contextmanager
    def _reading(self, what: str) -> Iterator[None]:
        """Turn h5py/HDF5 read failures into one-line CorruptDatasetErrors."""
        self._check_open()
        try:
            yield
        except (OSError, RuntimeError, KeyError) as err:
            hint = (RECOVER_HINT if self._file.swmr_mode
                    else TABLE_HINT if what == "the episode table" and "commit_log" in self._file
                    else LOCATE_HINT)  # (resume=True rebuilds a table that fails its checksum)
            raise CorruptDatasetError(f"{self.path}: cannot read {what} ({_h5.reason(err)})",
                                      hint=hint) from None

    def _check_open(self) -> None:
        if self._file is None:
            raise DatasetError(f"{self.path}: the reader is closed; open a new RolloutReader")

    def _row(self, i: int) -> np.void:
        self._check_open()
        i = whole_number(i, f"{self.path}: the episode number", low=-2**62,
                         error=NotAnIndexError)
        if not -self.num_episodes <= i < self.num_episodes:
            raise IndexError(f"{self.path}: episode {i} out of range ({self.num_episodes} "
                             "episodes)")
        return self._table[i]

    def _rows(self, name: str, start: int, end: int, episode: int) -> np.ndarray:
        """Rows [start, end) read sequentially (not through the cache)."""
        if self.in_memory:
            return self._ram[name][start:end].copy()
        with self._reading(f"{name} of episode {episode}"):
            return self._ds[name][start:end]

    def _chunk(self, name: str, chunk: int) -> np.ndarray:
        if self.in_memory:
            t = self.chunk_frames
            return self._ram[name][chunk * t:(chunk + 1) * t]
        key = (name, chunk)
        data = self._cache.get(key)
        if data is None:
            t = self.chunk_frames
            episode = self._episode_of(name, chunk * t)
            with self._reading(f"{name} of episode {episode} (rows {chunk * t}-{chunk * t + t})"):
                data = self._ds[name][chunk * t:(chunk + 1) * t]
            self._cache.put(key, data)
        return data

    def _range(self, name: str, start: int, end: int) -> np.ndarray:
        """Rows [start, end) assembled from cached chunks."""
        t = self.chunk_frames
        parts = [self._chunk(name, c)[max(start - c * t, 0):end - c * t]
                 for c in range(start // t, (end - 1) // t + 1)]
        return np.concatenate(parts) if len(parts) > 1 else parts[0].copy()

    def _gather(self, name: str, physical: np.ndarray) -> np.ndarray:
        """Rows at arbitrary physical indices: each needed chunk is decoded once."""
        if self.in_memory:
            return self._ram[name][physical]
        ds = self._ds[name]
        out = np.empty((len(physical), *ds.shape[1:]), dtype=ds.dtype)
        if len(physical) == 0:
            return out
        t = self.chunk_frames
        chunks = physical // t
        order = np.argsort(chunks, kind="stable")
        sorted_chunks = chunks[order]
        bounds = np.concatenate([[0], np.flatnonzero(np.diff(sorted_chunks)) + 1, [len(order)]])
        for a, b in zip(bounds[:-1].tolist(), bounds[1:].tolist(), strict=True):
            chunk = int(sorted_chunks[a])
            sel = order[a:b]
            out[sel] = self._chunk(name, chunk)[physical[sel] - chunk * t]
        return out

    def _physical(self, logical: np.ndarray) -> np.ndarray:
        episode = np.searchsorted(self._frame_cum, logical, side="right") - 1
        return self._obs_offset[episode] + logical - self._frame_cum[episode]

    def _frame_episode(self) -> np.ndarray:
        return np.repeat(np.arange(self.num_episodes), self._table["length"] + 1)

    def _episode_of(self, name: str, physical_row: int) -> int:
        offsets = self._obs_offset if name in OBSERVATION_ARRAYS else self._table["step_offset"]
        return int(np.searchsorted(offsets, physical_row, side="right") - 1)

    def _episode_mask(self, env_ids: Sequence[str] | None) -> np.ndarray:
        if env_ids is None:
            return np.ones(self.num_episodes, bool)
        if isinstance(env_ids, str):
            env_ids = [env_ids]
        unknown = [e for e in env_ids if e not in self.env_ids]
        if unknown:
            raise DatasetError(f"{self.path}: unknown env id {unknown[0]!r}; the file holds "
                               f"{self.env_ids}")
        wanted = [self.env_ids.index(e) for e in env_ids]
        return np.isin(self._table["env_index"], wanted)

    def _blank_flags(self) -> np.ndarray:
        """blank_frame per logical frame (read once per refresh)."""
        if not self.has_blank_frame:
            raise DatasetError(f"{self.path}: the file has no blank_frame flags (it was written "
                               "without blank_frames=True); pass exclude_blank=False")
        if self._blank_cache is None:
            physical = self._physical(np.arange(self.num_frames))
            if self.in_memory:
                flags = self._ram["blank_frame"]
            else:
                end = int(physical.max()) + 1 if len(physical) else 0
                with self._reading("blank_frame"):
                    flags = self._ds["blank_frame"][:end]
            self._blank_cache = flags[physical].astype(bool)
        return self._blank_cache


_FLAGS = ("terminations", "truncations", "blank_frame")


def _reopen(path: str, options: dict[str, Any]) -> RolloutReader:
    """Unpickle a :class:`RolloutReader`: open its file again with the same options."""
    return RolloutReader(path, **options)


def _span(n: int) -> str:
    """The frame numbers a file of ``n`` frames takes, for an out-of-range message."""
    return f"({-n}..{n - 1}, {n} frames)" if n else "(the file holds no frames)"


def _typed(arrays: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Flags come back as bool arrays (they are stored as uint8 0/1)."""
    for name in _FLAGS:
        if name in arrays:
            arrays[name] = arrays[name].astype(bool)
    return arrays


