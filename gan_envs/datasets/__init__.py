"""Rollout datasets: one documented HDF5 file per dataset (``docs/dataset-format.md``).

* :class:`RolloutWriter` - append episodes crash-safely (a SIGKILL loses at most the open one)
* :class:`RolloutReader` - episodes, frames, chunk-aware random batches and windows
* :class:`RecordRollouts` - a Gymnasium wrapper that records every step through the writer
* :func:`verify` - check checksums, shapes and the episode table; name the first bad episode
* :mod:`gan_envs.datasets.torch` - PyTorch datasets and samplers (the only module importing torch)
"""

from __future__ import annotations

from gan_envs.datasets.errors import (
    CorruptDatasetError,
    DatasetError,
    DatasetInUseError,
    DatasetValueError,
    DatasetVersionError,
    DatasetWriteError,
)
from gan_envs.datasets.format import FORMAT_NAME, FORMAT_VERSION
from gan_envs.datasets.reader import RolloutReader
from gan_envs.datasets.record import RecordRollouts
from gan_envs.datasets.sampling import ChunkIndex, WindowIndex
from gan_envs.datasets.verify import VerifyReport, verify
from gan_envs.datasets.writer import RolloutWriter

__all__ = [
    "FORMAT_NAME",
    "FORMAT_VERSION",
    "ChunkIndex",
    "CorruptDatasetError",
    "DatasetError",
    "DatasetInUseError",
    "DatasetValueError",
    "DatasetVersionError",
    "DatasetWriteError",
    "RecordRollouts",
    "RolloutReader",
    "RolloutWriter",
    "VerifyReport",
    "WindowIndex",
    "verify",
]
