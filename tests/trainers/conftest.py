"""Shared fixtures: small real Atari frames (Breakout + Pong, 32x32) and a tiny trained run."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from gan_envs.trainers.data import ArrayFrameSource, EnvFrameSource
from gan_envs.trainers.gan import GanConfig, train_gan

# The small networks every training test uses: the real architecture, narrower.
TINY = dict(width=32, batch_size=8, latent_dim=16, n_samples=16)


@pytest.fixture
def tiny() -> dict:
    """GanConfig arguments for the real architectures at test size."""
    return dict(TINY)


@pytest.fixture(autouse=True)
def _one_thread():
    """Keep the shared CPU cores free and the arithmetic reproducible."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="session")
def atari32() -> ArrayFrameSource:
    """600 frames of random play, labelled by game: Breakout (0) and Pong (1)."""
    source = EnvFrameSource(["ALE/Breakout-v5", "ALE/Pong-v5"], size=32, seed=0)
    frames, env_index = source.sample_frames_with_env(600, np.random.default_rng(0))
    source.close()
    return ArrayFrameSource(frames, env_index, source.env_ids)


@pytest.fixture(scope="session")
def tiny_run(tmp_path_factory, atari32):
    """A run directory trained for a few iterations with the fast recipe (EMA present)."""
    run_dir = tmp_path_factory.mktemp("tiny_run")
    torch.set_num_threads(1)
    train_gan(GanConfig(iterations=4, sample_every=2, **TINY), atari32, run_dir)
    return run_dir
