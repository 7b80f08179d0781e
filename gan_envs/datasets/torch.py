"""PyTorch adapters for rollout files; the only module of :mod:`gan_envs.datasets` importing torch.

* :class:`FrameDataset` - single frames as float tensors in [-1, 1] or [0, 1]
* :class:`ChunkBatchSampler` - batches of frame positions drawn chunk by chunk (fast reads)
* :func:`frame_loader` - a DataLoader that combines the two
* :class:`WindowDataset` - windows of consecutive steps inside one episode (world models)

Each process opens its own file handle the first time it reads (DataLoader workers included);
an h5py handle is never shared across ``fork``. ``dataset.close()`` (or ``with dataset:``)
closes this process's handle, so that a writer may resume the file; a later read opens it again.
"""

from __future__ import annotations

import contextlib
import difflib
import inspect
import math
import multiprocessing.context
import os
from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import Any, TypeVar

import numpy as np
import torch
from gymnasium import spaces
from torch.utils.data import DataLoader, Dataset, Sampler

from gan_envs._numbers import flag, is_real
from gan_envs.datasets.arguments import whole_number
from gan_envs.datasets.errors import DatasetError
from gan_envs.datasets.reader import DEFAULT_CACHE_BYTES, RolloutReader
from gan_envs.datasets.sampling import ChunkIndex

__all__ = ["ChunkBatchSampler", "FrameDataset", "WindowDataset", "frame_loader"]

_Self = TypeVar("_Self", bound="_PerProcessReader")


def _value_range(value_range: Any, path: str) -> tuple[float, float]:
    """``value_range`` as two floats, or a one-line DatasetError: a pair of finite real numbers
    with low < high (not the characters of a string such as ``"01"``, not bools)."""
    items = value_range.tolist() if isinstance(value_range, (np.ndarray, torch.Tensor)) else (
        value_range if isinstance(value_range, (tuple, list)) else None)
    if (isinstance(items, (list, tuple)) and len(items) == 2 and all(is_real(v) for v in items)
            and math.isfinite(items[0]) and math.isfinite(items[1])
            and float(items[0]) < float(items[1])):
        return float(items[0]), float(items[1])
    raise DatasetError(f"{path}: value_range must be (low, high), finite numbers with "
                       f"low < high, such as (-1, 1) or (0, 1); got {value_range!r}")




class _PerProcessReader:
    """Opens a RolloutReader lazily, once per process; never pickles or inherits one.

    :meth:`close` (or leaving a ``with`` block) closes this process's reader; the next read
    opens a new one, as a DataLoader worker's first read does.
    """

    def __init__(self, path: str | os.PathLike[str], value_range: tuple[float, float],
                 reader_options: dict[str, Any]) -> None:
        self.path = os.fspath(path)
        self.value_range = _value_range(value_range, self.path)
        reader_options["in_memory"] = flag(reader_options["in_memory"],
                                            f"{self.path}: in_memory", error=TypeError)
        reader_options["cache_bytes"] = whole_number(reader_options["cache_bytes"],
                                                     f"{self.path}: cache_bytes")
        self._reader_options = reader_options
        self._reader: RolloutReader | None = None
        self._pid = -1

    @property
    def reader(self) -> RolloutReader:
        """This process's reader, opened on first use (again after :meth:`close`)."""
        if self._reader is None or self._pid != os.getpid():
            self._reader = RolloutReader(self.path, **self._reader_options)
            self._pid = os.getpid()
        return self._reader

    def close(self) -> None:
        """Close this process's file handle (so that a writer may resume the file); calling it
        again does nothing. A later read opens the file again. DataLoader workers hold their
        own handles, closed when the workers exit (at the end of an epoch, or when a loader
        with ``persistent_workers`` is deleted)."""
        reader, pid = self._reader, self._pid
        self._reader, self._pid = None, -1
        if reader is not None and pid == os.getpid():  # never a handle inherited by fork
            reader.close()

    def __enter__(self: _Self) -> _Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def to_float(self, array: np.ndarray) -> torch.Tensor:
        """uint8 images scaled into ``value_range``; other dtypes as float32, unscaled."""
        tensor = torch.from_numpy(np.ascontiguousarray(array))
        if array.dtype != np.uint8:
            return tensor.float()
        low, high = self.value_range
        return tensor.float().mul_((high - low) / 255.0).add_(low)

    def __getstate__(self) -> dict[str, Any]:
        state = self.__dict__.copy()
        state["_reader"], state["_pid"] = None, -1
        return state


class FrameDataset(Dataset, _PerProcessReader):
    """Frames of a rollout file as float tensors ``(C, H, W)`` in ``value_range``.

    ``dataset[i]`` is one frame; ``dataset.__getitems__(positions)`` (which DataLoader calls
    with a batch sampler) reads a whole batch chunk-aware. Pair it with
    :class:`ChunkBatchSampler` (or use :func:`frame_loader`) to keep the reader's speed.
    ``dataset.close()`` or ``with FrameDataset(path) as dataset:`` closes this process's file
    handle; a later read opens it again.

    Example:
        >>> import tempfile, pathlib, numpy as np
        >>> from gymnasium.spaces import Box, Discrete
        >>> from gan_envs.datasets import RolloutWriter
        >>> from gan_envs.datasets.torch import frame_loader
        >>> path = pathlib.Path(tempfile.mkdtemp()) / "frames.h5"
        >>> with RolloutWriter(path, Box(0, 255, (3, 8, 8), np.uint8), Discrete(2)) as w:
        ...     _ = w.add_episode(np.full((41, 3, 8, 8), 255, np.uint8), [0] * 40, [0.0] * 40)
        >>> loader = frame_loader(path, batch_size=16, num_batches=2, seed=0)
        >>> batches = list(loader)
        >>> [tuple(batch.shape) for batch in batches], float(batches[0].max())
        ([(16, 3, 8, 8), (16, 3, 8, 8)], 1.0)

    Args:
        path: a rollout file with uint8 image observations.
        value_range: ``(-1, 1)`` (default, for tanh generators) or ``(0, 1)``.
        exclude_blank: leave out frames flagged ``blank_frame``.
        env_ids: keep only frames of these environments.
        in_memory, cache_bytes: passed to :class:`~gan_envs.datasets.RolloutReader`.

    Raises:
        DatasetError: not a uint8 image file, a bad ``value_range`` or ``cache_bytes``, or no
            frame passes the filters (the message names the file and the filters).
        TypeError: ``exclude_blank`` or ``in_memory`` is not a bool.
    """

    def __init__(self, path: str | os.PathLike[str], *,
                 value_range: tuple[float, float] = (-1.0, 1.0), exclude_blank: bool = False,
                 env_ids: Sequence[str] | None = None, in_memory: bool = False,
                 cache_bytes: int = DEFAULT_CACHE_BYTES) -> None:
        _PerProcessReader.__init__(self, path, value_range,
                                   {"in_memory": in_memory, "cache_bytes": cache_bytes})
        exclude_blank = flag(exclude_blank, f"{self.path}: exclude_blank", error=TypeError)
        with RolloutReader(path, cache_bytes=0) as reader:
            space = reader.observation_space
            if not (isinstance(space, spaces.Box) and space.dtype == np.uint8):
                raise DatasetError(f"{self.path}: FrameDataset needs uint8 image observations, "
                                   f"the file holds {space}")
            self.chunk_index: ChunkIndex = reader.chunk_index(env_ids=env_ids,
                                                              exclude_blank=exclude_blank)
            if len(self.chunk_index) == 0:  # a loader over it would be empty, or fail later
                raise DatasetError(reader.no_frames(env_ids, exclude_blank))

    def __len__(self) -> int:
        return len(self.chunk_index)

    def __getitem__(self, position: int) -> torch.Tensor:
        return self.__getitems__([position])[0]

    def __getitems__(self, positions: Sequence[int]) -> _FrameBatch:
        logical = self.chunk_index.frames[self._positions(positions)]
        return _FrameBatch(self.to_float(self.reader.frames(logical)))

    def _positions(self, positions: Sequence[int]) -> np.ndarray:
        """``positions`` as int64 in ``[0, n)``; each must be a whole number in ``[-n, n)``
        (negatives count from the end), else a one-line IndexError.

        A 1-D integer array or tensor is checked at once; anything else one by one, since
        ``np.asarray`` would turn ``[True, 1]`` into ints, ``[-1, np.uint64(3)]`` into floats and
        ``[2**64]`` into objects (and ``astype(int64)`` would floor 1.5 to 1)."""
        n = len(self)
        if isinstance(positions, torch.Tensor):
            positions = positions.detach().cpu().numpy()
        elif isinstance(positions, (list, tuple)) and all(type(p) is int for p in positions):
            with contextlib.suppress(OverflowError):  # what samplers give: plain ints, fast
                positions = np.array(positions, np.int64)
        if isinstance(positions, np.ndarray) and positions.ndim == 1 and (
                positions.dtype.kind in "iu"):
            index = positions
            signed = index.dtype.kind == "i"  # compare uint64 as it is: a cast could wrap it
            bad = index[((index < -n) if signed else False) | (index >= n)]
            if bad.size:
                raise IndexError(f"a frame position must be in [{-n}, {n - 1}], got {bad[0]}")
            index = index.astype(np.int64, copy=False)
        elif isinstance(positions, Iterable) and not (isinstance(positions, np.ndarray)
                                                      and positions.ndim == 0):
            index = np.array([whole_number(p, "a frame position", low=-n, high=n - 1,
                                           error=IndexError) for p in positions], np.int64)
        else:
            raise IndexError(f"FrameDataset.__getitems__ takes a sequence of frame positions, "
                             f"got {positions!r}")
        return np.where(index < 0, index + n, index).astype(np.int64, copy=False)

    @staticmethod
    def collate(batch: Sequence[torch.Tensor]) -> torch.Tensor:
        """A collate_fn that hands back the batch ``__getitems__`` already stacked (no copy)."""
        return batch.stacked if isinstance(batch, _FrameBatch) else torch.stack(list(batch))


class _FrameBatch(list):
    """One batch as a list of frame views (what default collate expects) + the stacked tensor."""

    def __init__(self, stacked: torch.Tensor) -> None:
        super().__init__(stacked.unbind(0))
        self.stacked = stacked


class ChunkBatchSampler(Sampler[list[int]]):
    """Batches of positions into a :class:`FrameDataset`, drawn chunk by chunk.

    Every position in a batch is uniform over the dataset's frames; a batch comes from
    ``chunks_per_batch`` chunks (default ``ceil(batch_size / 16)``), which is what makes random
    reads fast. The same ``seed`` gives the same batches (a new sequence each epoch).

    Raises:
        TypeError: ``dataset`` is not a :class:`FrameDataset` (a ``Subset`` of one neither:
            choose frames with its ``env_ids`` and ``exclude_blank`` instead).
        DatasetError: a bad ``batch_size``, ``num_batches``, ``chunks_per_batch`` or ``seed``.
    """

    def __init__(self, dataset: FrameDataset, batch_size: int, *, num_batches: int | None = None,
                 chunks_per_batch: int | None = None, seed: int | None = None) -> None:
        if not isinstance(dataset, FrameDataset):
            hint = ("shuffle windows with DataLoader(dataset, shuffle=True)"
                    if isinstance(dataset, WindowDataset) else
                    "choose frames with FrameDataset's env_ids and exclude_blank")
            raise TypeError(f"ChunkBatchSampler takes a FrameDataset (it draws from its "
                            f"chunk_index), got {type(dataset).__name__}; {hint}")
        batch_size = whole_number(batch_size, "batch_size", low=1)
        self.index = dataset.chunk_index
        self.batch_size = batch_size
        self.num_batches = (math.ceil(len(self.index) / batch_size) if num_batches is None
                            else whole_number(num_batches, "num_batches"))
        self.chunks_per_batch = (None if chunks_per_batch is None
                                 else whole_number(chunks_per_batch, "chunks_per_batch", low=1))
        self.seed = None if seed is None else whole_number(seed, "seed")
        self._epoch = 0

    def __len__(self) -> int:
        return self.num_batches

    def __iter__(self) -> Iterator[list[int]]:
        seed = None if self.seed is None else [self.seed, self._epoch]
        self._epoch += 1
        rng = np.random.default_rng(seed)
        for _ in range(self.num_batches):
            yield self.index.sample(self.batch_size, rng, self.chunks_per_batch).tolist()


#: DataLoader options frame_loader sets itself.
_FIXED_OPTIONS = ("batch_sampler", "sampler", "shuffle", "drop_last", "collate_fn")


def frame_loader(path: str | os.PathLike[str], batch_size: int, *, num_batches: int | None = None,
                 seed: int | None = None, chunks_per_batch: int | None = None,
                 num_workers: int = 0, pin_memory: bool = False,
                 timeout: float = 0, worker_init_fn: Callable[[int], None] | None = None,
                 multiprocessing_context: str | multiprocessing.context.BaseContext | None = None,
                 prefetch_factor: int | None = None, persistent_workers: bool | None = None,
                 **dataset_options: Any) -> DataLoader:
    """A DataLoader of float frame batches: FrameDataset + ChunkBatchSampler + no extra copy.

    ``batch_size``, ``num_batches``, ``seed`` and ``chunks_per_batch`` go to
    :class:`ChunkBatchSampler`; ``num_workers``, ``pin_memory``, ``timeout``,
    ``worker_init_fn``, ``multiprocessing_context``, ``prefetch_factor`` and
    ``persistent_workers`` (default: True when there are workers) to the DataLoader; the other
    keywords (``value_range``, ``exclude_blank``, ``env_ids``, ``in_memory``, ``cache_bytes``)
    to :class:`FrameDataset`. ``loader.dataset.close()`` closes the file in this process.

    Raises:
        TypeError: an option none of the three takes, or one frame_loader sets itself.
    """
    dataset_keywords = [name for name in inspect.signature(FrameDataset).parameters
                        if name != "path"]
    unknown = [name for name in dataset_options if name not in dataset_keywords]
    if unknown:
        name = unknown[0]
        if name in _FIXED_OPTIONS:
            raise TypeError(f"frame_loader sets the DataLoader's {name} itself (ChunkBatchSampler "
                            "draws the batches); for your own, build a DataLoader over "
                            "FrameDataset(path)")
        own = [p for p in inspect.signature(frame_loader).parameters
               if p not in ("path", "dataset_options")]
        allowed = (*own, *dataset_keywords)
        close = difflib.get_close_matches(name, allowed, n=1)
        hint = f"did you mean {close[0]}? " if close else ""
        raise TypeError(f"frame_loader got an unknown option {name!r}; {hint}it takes "
                        f"{', '.join(allowed)}")
    num_workers = whole_number(num_workers, "num_workers")
    if persistent_workers is None:
        persistent_workers = num_workers > 0
    dataset = FrameDataset(path, **dataset_options)
    sampler = ChunkBatchSampler(dataset, batch_size, num_batches=num_batches, seed=seed,
                                chunks_per_batch=chunks_per_batch)
    return DataLoader(dataset, batch_sampler=sampler, num_workers=num_workers,
                      collate_fn=FrameDataset.collate, pin_memory=pin_memory, timeout=timeout,
                      worker_init_fn=worker_init_fn,
                      multiprocessing_context=multiprocessing_context,
                      prefetch_factor=prefetch_factor, persistent_workers=persistent_workers)


class WindowDataset(Dataset, _PerProcessReader):
    """Windows of ``length`` consecutive steps inside one episode, for world models.

    Item ``i`` is a dict: ``observations`` ``(length + 1, ...)`` float (uint8 images scaled into
    ``value_range``), ``actions`` ``(length, ...)``, ``rewards`` ``(length,)`` float32,
    ``terminations`` and ``truncations`` ``(length,)`` bool. Items enumerate every window that
    fits in an episode, so a shuffling sampler draws windows uniformly.
    ``dataset.close()`` or ``with WindowDataset(path, length) as dataset:`` closes this
    process's file handle; a later read opens it again.

    Example:
        >>> import tempfile, pathlib, numpy as np
        >>> from gymnasium.spaces import Box, Discrete
        >>> from torch.utils.data import DataLoader
        >>> from gan_envs.datasets import RolloutWriter
        >>> from gan_envs.datasets.torch import WindowDataset
        >>> path = pathlib.Path(tempfile.mkdtemp()) / "windows.h5"
        >>> with RolloutWriter(path, Box(0, 255, (3, 8, 8), np.uint8), Discrete(2)) as w:
        ...     _ = w.add_episode(np.zeros((11, 3, 8, 8), np.uint8), [1] * 10, [0.5] * 10)
        >>> data = WindowDataset(path, length=4)
        >>> len(data), {k: tuple(v.shape) for k, v in data[0].items()}["observations"]
        (7, (5, 3, 8, 8))
        >>> batch = next(iter(DataLoader(data, batch_size=3, shuffle=True)))
        >>> tuple(batch["actions"].shape), batch["rewards"].dtype
        ((3, 4), torch.float32)
    """

    def __init__(self, path: str | os.PathLike[str], length: int, *,
                 value_range: tuple[float, float] = (-1.0, 1.0),
                 env_ids: Sequence[str] | None = None, in_memory: bool = False,
                 cache_bytes: int = DEFAULT_CACHE_BYTES) -> None:
        _PerProcessReader.__init__(self, path, value_range,
                                   {"in_memory": in_memory, "cache_bytes": cache_bytes})
        self.length = whole_number(length, f"{self.path}: length", low=1)
        with RolloutReader(path, cache_bytes=0) as reader:
            self.window_index = reader.window_index(self.length, env_ids=env_ids)
            if len(self.window_index) == 0:  # a DataLoader over it would fail obscurely
                raise DatasetError(reader.no_windows(self.length, env_ids))

    def __len__(self) -> int:
        return len(self.window_index)

    def __getitem__(self, i: int) -> dict[str, torch.Tensor]:
        i = whole_number(i, "the window number", low=-len(self), high=len(self) - 1,
                         error=IndexError)
        episode, start = self.window_index.locate(i % len(self))
        window = self.reader.read_window(episode, start, self.length)
        out = {name: torch.from_numpy(np.ascontiguousarray(array))
               for name, array in window.items()}
        out["observations"] = self.to_float(window["observations"])
        return out
