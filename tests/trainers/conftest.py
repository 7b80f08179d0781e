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


@pytest.fixture
def two_games():
    """``two_games(grey)``: 80 labelled 32x32 frames. Game 0: 40 black ones with a white spot;
    game 1: ``grey`` grey-100 ones and ``40 - grey`` purple (112, 0, 92) ones, a dark spot."""

    def make(grey: int = 20, seed: int = 0) -> ArrayFrameSource:
        rng = np.random.default_rng(seed)
        env = np.repeat([0, 1], 40)
        colour = np.zeros((80, 3), np.uint8)
        colour[40:40 + grey], colour[40 + grey:] = (100, 100, 100), (112, 0, 92)
        frames = np.broadcast_to(colour[:, :, None, None], (80, 3, 32, 32)).copy()
        spots = rng.integers(0, 32, (80, 2))
        frames[np.arange(80), :, spots[:, 0], spots[:, 1]] = \
            np.where(env == 0, 255, 20)[:, None]
        return ArrayFrameSource(frames, env, ["black", "grey-or-purple"])

    return make


@pytest.fixture(scope="session")
def pong():
    """Three short episodes of random Pong play, 64x64 uint8 (the world-model tests' data)."""
    from gan_envs.trainers.sequences import collect_random_episodes

    return collect_random_episodes("GanAtari/Pong-v0", episodes=3, max_steps=24, seed=0)


@pytest.fixture(scope="module")
def v_and_m(tmp_path_factory, pong):
    """A world-model run with V and M trained (tiny, 4 batches each); copy it to change it."""
    from wm_tiny import tiny

    from gan_envs.trainers.world_model import train_world_model

    run = tmp_path_factory.mktemp("wm_vm")
    train_world_model(tiny(), pong, run, stage="vae")
    train_world_model(tiny(), pong, run, stage="mdrnn")
    return run
