"""PyTorch adapters for rollout files; the only module of :mod:`gan_envs.datasets` importing torch.

* :class:`FrameDataset` - single frames as float tensors in [-1, 1] or [0, 1]
* :class:`ChunkBatchSampler` - batches of frame positions drawn chunk by chunk (fast reads)
* :func:`frame_loader` - a DataLoader that combines the two
* :class:`WindowDataset` - windows of consecutive steps inside one episode (world models)

Each process opens its own file handle the first time it reads (DataLoader workers included);
an h5py handle is never shared across ``fork``.
"""

from __future__ import annotations

import math
import os
from collections.abc import Iterator, Sequence
from typing import Any

import numpy as np
import torch
from gymnasium import spaces
from torch.utils.data import DataLoader, Dataset, Sampler

from gan_envs.datasets.arguments import whole_number
from gan_envs.datasets.errors import DatasetError
from gan_envs.datasets.reader import DEFAULT_CACHE_BYTES, RolloutReader
from gan_envs.datasets.sampling import ChunkIndex

__all__ = ["ChunkBatchSampler", "FrameDataset", "WindowDataset", "frame_loader"]


class _PerProcessReader:
    """Opens a RolloutReader lazily, once per process; never pickles or inherits one."""

    def __init__(self, path: str | os.PathLike[str], value_range: tuple[float, float],
                 reader_options: dict[str, Any]) -> None:
        self.path = os.fspath(path)
        try:
            low, high = (float(v) for v in value_range)
        except (TypeError, ValueError):  # not a pair of numbers
            low = high = math.nan
        if not (math.isfinite(low) and math.isfinite(high) and low < high):
            raise DatasetError(f"{self.path}: value_range must be (low, high), finite numbers "
                               f"with low < high, got {value_range!r}")
        self.value_range = (low, high)
        reader_options["cache_bytes"] = whole_number(reader_options["cache_bytes"],
                                                     f"{self.path}: cache_bytes")
        self._reader_options = reader_options
        self._reader: RolloutReader | None = None
        self._pid = -1

    @property
    def reader(self) -> RolloutReader:
        if self._reader is None or self._pid != os.getpid():
            self._reader = RolloutReader(self.path, **self._reader_options)
            self._pid = os.getpid()
        return self._reader

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
    """

    def __init__(self, path: str | os.PathLike[str], *,
                 value_range: tuple[float, float] = (-1.0, 1.0), exclude_blank: bool = False,
                 env_ids: Sequence[str] | None = None, in_memory: bool = False,
                 cache_bytes: int = DEFAULT_CACHE_BYTES) -> None:
        _PerProcessReader.__init__(self, path, value_range,
                                   {"in_memory": in_memory, "cache_bytes": cache_bytes})
        with RolloutReader(path, cache_bytes=0) as reader:
            space = reader.observation_space
            if not (isinstance(space, spaces.Box) and space.dtype == np.uint8):
                raise DatasetError(f"{self.path}: FrameDataset needs uint8 image observations, "
                                   f"the file holds {space}")
            self.chunk_index: ChunkIndex = reader.chunk_index(env_ids=env_ids,
                                                              exclude_blank=exclude_blank)

    def __len__(self) -> int:
        return len(self.chunk_index)

    def __getitem__(self, position: int) -> torch.Tensor:
        return self.__getitems__([position])[0]

    def __getitems__(self, positions: Sequence[int]) -> _FrameBatch:
        index = np.asarray(positions)
        if index.dtype.kind not in "iu":  # np.asarray(..., int64) would floor 1.5 to 1
            index = np.array([whole_number(p, "a frame position", error=IndexError)
                              for p in positions], dtype=np.int64)
        n = len(self)
        if index.size and (index.min() < -n or index.max() >= n):
            bad = index[(index < -n) | (index >= n)][0]
            raise IndexError(f"frame position must be in [{-n}, {n - 1}], got {bad}")
        logical = self.chunk_index.frames[index.astype(np.int64, copy=False)]
        return _FrameBatch(self.to_float(self.reader.frames(logical)))

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
    """

    def __init__(self, dataset: FrameDataset, batch_size: int, *, num_batches: int | None = None,
                 chunks_per_batch: int | None = None, seed: int | None = None) -> None:
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


def frame_loader(path: str | os.PathLike[str], batch_size: int, *, num_batches: int | None = None,
                 num_workers: int = 0, seed: int | None = None,
                 chunks_per_batch: int | None = None, **dataset_options: Any) -> DataLoader:
    """A DataLoader of float frame batches: FrameDataset + ChunkBatchSampler + no extra copy."""
    num_workers = whole_number(num_workers, "num_workers")
    dataset = FrameDataset(path, **dataset_options)
    sampler = ChunkBatchSampler(dataset, batch_size, num_batches=num_batches, seed=seed,
                                chunks_per_batch=chunks_per_batch)
    return DataLoader(dataset, batch_sampler=sampler, num_workers=num_workers,
                      collate_fn=FrameDataset.collate,
                      persistent_workers=num_workers > 0)


class WindowDataset(Dataset, _PerProcessReader):
    """Windows of ``length`` consecutive steps inside one episode, for world models.

    Item ``i`` is a dict: ``observations`` ``(length + 1, ...)`` float (uint8 images scaled into
    ``value_range``), ``actions`` ``(length, ...)``, ``rewards`` ``(length,)`` float32,
    ``terminations`` and ``truncations`` ``(length,)`` bool. Items enumerate every window that
    fits in an episode, so a shuffling sampler draws windows uniformly.

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
