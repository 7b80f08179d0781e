"""Torch adapters: correct batches with two DataLoader workers, each with its own file handle."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest
import torch
from gymnasium.spaces import Box, Discrete
from torch.utils.data import DataLoader

from gan_envs.datasets import DatasetError, RolloutWriter
from gan_envs.datasets.torch import ChunkBatchSampler, FrameDataset, WindowDataset, frame_loader


@pytest.fixture
def numbered(tmp_path):
    """uint8 frames whose first two pixels encode the frame number; 4 episodes."""
    path = tmp_path / "numbered.h5"
    frame = 0
    with RolloutWriter(path, Box(0, 255, (3, 4, 4), np.uint8), Discrete(3), chunk_frames=8,
                       env_ids=["A", "B"], blank_frames=True) as writer:
        for k, n in enumerate([40, 9, 60, 25]):
            ids = np.arange(frame, frame + n + 1)
            obs = np.zeros((n + 1, 3, 4, 4), np.uint8)
            obs[:, 0, 0, 0], obs[:, 0, 0, 1], obs[:, 1] = ids % 256, ids // 256, k
            writer.add_episode(obs, np.arange(n) % 3, np.arange(n, dtype=float),
                               env_id="AB"[k % 2], blank=ids % 4 == 0)
            frame += n + 1
    return path


def _ids(batch: torch.Tensor, value_range=(-1.0, 1.0)) -> np.ndarray:
    low, high = value_range
    raw = ((batch - low) * 255.0 / (high - low)).round().to(torch.int64).numpy()
    return raw[..., 0, 0, 0] + 256 * raw[..., 0, 0, 1]


def test_import_of_datasets_does_not_import_torch():
    code = "import sys, gan_envs.datasets; assert 'torch' not in sys.modules"
    subprocess.run([sys.executable, "-c", code], check=True)


def test_frame_loader_with_two_workers_matches_its_sampler(numbered):
    loader = frame_loader(numbered, batch_size=32, num_batches=12, num_workers=2, seed=5,
                          exclude_blank=True, env_ids=["A"])
    data = loader.dataset
    expected = list(ChunkBatchSampler(data, 32, num_batches=12, seed=5))
    batches = list(loader)
    assert len(batches) == 12
    for batch, positions in zip(batches, expected, strict=True):
        assert batch.dtype == torch.float32 and batch.shape == (32, 3, 4, 4)
        assert -1.0 <= float(batch.min()) and float(batch.max()) <= 1.0
        np.testing.assert_array_equal(_ids(batch), data.chunk_index.frames[positions])
    ids = np.concatenate([_ids(b) for b in batches])
    assert (ids % 4 != 0).all()  # blank frames excluded
    assert set(np.round(np.concatenate([b[:, 1, 0, 0] for b in batches]).tolist(), 3)) <= {
        round(-1.0, 3), round(-1.0 + 2 * 2 / 255, 3)}  # episodes 0 and 2 only (env A)


def test_frame_dataset_value_range_and_plain_indexing(numbered):
    data = FrameDataset(numbered, value_range=(0.0, 1.0))
    assert len(data) == 138
    assert _ids(data[77][None], (0.0, 1.0))[0] == 77
    assert 0.0 <= float(data[0].min()) and float(data[137].max()) <= 1.0
    loader = DataLoader(data, batch_size=16, shuffle=True, num_workers=2)
    seen = np.concatenate([_ids(b, (0.0, 1.0)) for b in loader])
    assert sorted(seen.tolist()) == list(range(138))
    with pytest.raises(DatasetError, match="value_range"):
        FrameDataset(numbered, value_range=(1.0, 0.0))


def test_window_dataset_with_two_workers(numbered):
    data = WindowDataset(numbered, length=8)
    assert len(data) == (40 - 7) + (9 - 7) + (60 - 7) + (25 - 7)
    loader = DataLoader(data, batch_size=16, shuffle=True, num_workers=2,
                        generator=torch.Generator().manual_seed(0))
    total = 0
    for batch in loader:
        obs = batch["observations"]
        assert obs.shape[1:] == (9, 3, 4, 4) and batch["actions"].shape[1:] == (8,)
        ids = _ids(obs)
        assert (np.diff(ids, axis=1) == 1).all()  # consecutive frames of one episode
        episode = obs[:, :, 1, 0, 0]
        assert torch.equal(episode, episode[:, :1].expand_as(episode))
        steps = batch["rewards"].to(torch.int64)
        assert torch.equal(batch["actions"], steps % 3)
        assert batch["terminations"].dtype == torch.bool
        total += len(obs)
    assert total == len(data)


def test_frame_dataset_needs_uint8_frames(tmp_path):
    path = tmp_path / "vec.h5"
    with RolloutWriter(path, Box(-1, 1, (4,)), Discrete(2)) as writer:
        writer.add_episode(np.zeros((3, 4), np.float32), [0, 1], [0.0, 0.0])
    with pytest.raises(DatasetError, match="needs uint8 image observations"):
        FrameDataset(path)
    window = WindowDataset(path, length=2)[0]
    assert window["observations"].dtype == torch.float32
