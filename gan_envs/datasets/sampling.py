"""Index arithmetic for random access: frames grouped by chunk, windows inside episodes.

Pure NumPy (no file access), shared by :class:`~gan_envs.datasets.RolloutReader` and the torch
adapters. The randomness guarantees of :meth:`ChunkIndex.sample` are stated in
``docs/dataset-format.md`` ("Random access").
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from gan_envs._text import short_repr
from gan_envs.datasets.arguments import whole_number
from gan_envs.datasets.errors import DatasetError

__all__ = ["ChunkIndex", "WindowIndex", "default_chunks_per_batch", "generator"]

#: Samples per chunk a batch aims for: 256 frames come from 16 chunks by default.
SAMPLES_PER_CHUNK = 16


def default_chunks_per_batch(n: int) -> int:
    """How many chunks a batch of ``n`` frames draws from by default."""
    return max(1, math.ceil(n / SAMPLES_PER_CHUNK))


def generator(rng: Any, what: str = "rng") -> np.random.Generator:
    """``np.random.default_rng(rng)``, or a one-line DatasetError naming ``what``.

    Takes what numpy takes (None, a whole number >= 0 or a sequence of them, a SeedSequence,
    BitGenerator or Generator) except a bool, which numpy would read as the seed 0 or 1.

    Example:
        >>> int(generator(0).integers(10)) == int(np.random.default_rng(0).integers(10))
        True
        >>> generator(-1)  # doctest: +ELLIPSIS
        Traceback (most recent call last):
        ...
        gan_envs.datasets.errors.DatasetError: rng must be None, a seed (...) or ..., got -1
    """
    if not isinstance(rng, (bool, np.bool_)):
        try:
            return np.random.default_rng(rng)
        except (TypeError, ValueError):
            pass
    raise DatasetError(f"{what} must be None, a seed (a whole number >= 0) or a numpy "
                       f"Generator, got {short_repr(rng, 60)}")


@dataclass(frozen=True)
class ChunkIndex:
    """The frames that pass a filter, grouped by the chunk that stores them.

    ``frames`` holds logical frame indices (sorted), ``physical`` the matching rows of the
    ``observations`` array, and ``starts`` the position in ``frames`` where each chunk's group
    begins (one extra entry at the end).
    """

    frames: np.ndarray
    physical: np.ndarray
    starts: np.ndarray

    @classmethod
    def build(cls, frames: np.ndarray, physical: np.ndarray, chunk_frames: int) -> ChunkIndex:
        chunks = physical // chunk_frames
        bounds = np.flatnonzero(np.diff(chunks)) + 1
        starts = np.concatenate([[0], bounds, [len(frames)]]).astype(np.int64)
        return cls(np.asarray(frames, np.int64), np.asarray(physical, np.int64), starts)

    def __len__(self) -> int:
        return len(self.frames)

    @property
    def num_chunks(self) -> int:
        return len(self.starts) - 1

    def sample(self, n: int, rng: np.random.Generator, chunks_per_batch: int | None = None
               ) -> np.ndarray:
        """``n`` positions into :attr:`frames`: marginally uniform, from few chunks.

        Draws ``chunks_per_batch`` chunk slots with probability proportional to their number of
        frames, gives each sample a slot uniformly, and picks frames inside a chunk uniformly
        without replacement (with replacement only past the chunk's size). Each sample is
        uniform over all frames; the batch comes back shuffled. ``n = 0`` gives no positions,
        also from an empty index.
        """
        n = whole_number(n, "the number of frames to sample")
        k = (default_chunks_per_batch(n) if chunks_per_batch is None
             else whole_number(chunks_per_batch, "chunks_per_batch", low=1))
        if len(self) == 0:
            if n == 0:
                return np.empty(0, np.int64)
            raise DatasetError("no frames to sample (the file is empty or the filters exclude "
                               "every frame)")
        slots = np.searchsorted(self.starts, rng.integers(len(self), size=k), side="right") - 1
        groups, counts = np.unique(slots[rng.integers(k, size=n)], return_counts=True)
        out = np.empty(n, np.int64)
        pos = 0
        for group, m in zip(groups.tolist(), counts.tolist(), strict=True):
            first, size = int(self.starts[group]), int(self.starts[group + 1] - self.starts[group])
            picks = rng.choice(size, m, replace=False) if m <= size else rng.integers(size, size=m)
            out[pos:pos + m] = first + picks
            pos += m
        rng.shuffle(out)
        return out


@dataclass(frozen=True)
class WindowIndex:
    """Every window of ``length`` steps that fits inside one episode, numbered 0..len-1."""

    length: int
    episodes: np.ndarray
    cumulative: np.ndarray

    @classmethod
    def build(cls, lengths: np.ndarray, selected: np.ndarray, length: int) -> WindowIndex:
        if length < 1:
            raise DatasetError(f"window length must be >= 1 step, got {length}")
        episodes = np.flatnonzero(selected & (lengths >= length))
        counts = lengths[episodes] - length + 1
        return cls(length, episodes, np.concatenate([[0], np.cumsum(counts)]).astype(np.int64))

    def __len__(self) -> int:
        return int(self.cumulative[-1])

    def locate(self, i: int) -> tuple[int, int]:
        """(episode, first step) of window ``i``."""
        if not 0 <= i < len(self):
            raise IndexError(f"window {i} out of range for {len(self)} windows")
        k = int(np.searchsorted(self.cumulative, i, side="right") - 1)
        return int(self.episodes[k]), int(i - self.cumulative[k])
