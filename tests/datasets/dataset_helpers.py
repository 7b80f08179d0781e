"""Shared helpers of the dataset tests: deterministic episodes and a subprocess writer."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
from gymnasium.spaces import Box, Discrete

FRAME_SPACE = Box(0, 255, (3, 16, 16), np.uint8)
ACTION_SPACE = Discrete(4)
CHILD = Path(__file__).with_name("writer_child.py")


def make_episode(k: int, max_length: int = 70) -> dict[str, np.ndarray]:
    """Episode ``k`` of the test streams: the same content for the same ``k``, noisy frames."""
    rng = np.random.default_rng(k)
    n = int(rng.integers(1, max_length))
    return {
        "observations": rng.integers(0, 256, (n + 1, *FRAME_SPACE.shape), dtype=np.uint8),
        "actions": rng.integers(0, 4, n),
        "rewards": rng.normal(size=n).astype(np.float32),
        "terminations": np.arange(n) == n - 1,
        "truncations": np.zeros(n, bool),
    }


def assert_episode_equal(got: dict[str, np.ndarray], want: dict[str, np.ndarray]) -> None:
    for name, array in want.items():
        np.testing.assert_array_equal(got[name], array, err_msg=name)


def write_noise_file(path: Path, episodes: int) -> Path:
    """Write episodes ``0 .. episodes - 1`` of the test streams to a new file (chunk 8)."""
    from gan_envs.datasets import RolloutWriter

    with RolloutWriter(path, FRAME_SPACE, ACTION_SPACE, env_ids=["Noise-v0"],
                       chunk_frames=8) as writer:
        for k in range(episodes):
            ep = make_episode(k)
            writer.add_episode(ep["observations"], ep["actions"], ep["rewards"],
                               ep["terminations"], seed=k)
    return path


def start_child(path: Path, *args: str) -> subprocess.Popen:
    """Run writer_child.py on ``path``; it prints one line per committed episode."""
    return subprocess.Popen([sys.executable, str(CHILD), str(path), *args],
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
