"""A tiny environment that plays back given frames (a stand-in for a game)."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
from gymnasium.spaces import Box, Discrete


class FrameEnv(gym.Env):
    """Plays back ``frames`` (cycling); reward = step index; terminates after ``length`` steps.

    A stand-in for a game, used to feed chosen frames to the wrappers.
    """

    metadata = {"render_modes": []}

    def __init__(self, frames, length: int | None = None, low=0, high=255):
        self.frames = [np.asarray(f) for f in frames]
        first = self.frames[0]
        self.observation_space = Box(low=low, high=high, shape=first.shape, dtype=first.dtype)
        self.action_space = Discrete(2)
        self.length = length if length is not None else len(self.frames) - 1
        self.t = 0

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        self.t = 0
        return self.frames[0].copy(), {}

    def step(self, action):
        self.t += 1
        frame = self.frames[self.t % len(self.frames)].copy()
        return frame, float(self.t), self.t >= self.length, False, {}
