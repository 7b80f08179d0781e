"""Policies importable as ``collect_policies:...`` by collection tests (tests/ is on sys.path)."""

from __future__ import annotations

import numpy as np


def always_zero(observations, infos):
    """A policy: action 0 in every sub-environment."""
    return np.zeros(len(observations), dtype=np.int64)


class CyclingPolicy:
    """A policy factory: built with the vector env, cycles through the actions."""

    def __init__(self, envs, seed=None):
        self.n = int(envs.single_action_space.n)
        self.t = 0

    def __call__(self, observations, infos):
        self.t += 1
        return np.full(len(observations), self.t % self.n, dtype=np.int64)
