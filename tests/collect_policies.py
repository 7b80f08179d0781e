"""Policies importable as ``collect_policies:...`` by collection tests (tests/ is on sys.path)."""

from __future__ import annotations

import os

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


def out_of_range(observations, infos):
    """A bad policy: action 77, which no Atari game has (ALE's vector env hangs on it)."""
    return np.full(len(observations), 77, dtype=np.int64)


def raises(observations, infos):
    """A bad policy: it fails."""
    raise RuntimeError("the policy's own bug\nwith a second line")


def needs_no_env():
    """Not a policy: a factory call with the env fails."""
    return 0


def interrupted_if_asked(observations, infos):
    """Ctrl-C as the first step is taken while $INTERRUPT_POLICY is set; action 0 otherwise."""
    if os.environ.get("INTERRUPT_POLICY"):
        raise KeyboardInterrupt
    return np.zeros(len(observations), dtype=np.int64)


class ReusedArray:
    """A policy factory that refills one array every call (allowed: the actions are copied)."""

    made: list[ReusedArray] = []  # the instances, for the test to read what they sent

    def __init__(self, envs, seed=None):
        self.actions = np.zeros(envs.num_envs, dtype=np.int64)
        self.rng = np.random.default_rng(seed)
        self.sent: list[np.ndarray] = []
        ReusedArray.made.append(self)

    def __call__(self, observations, infos):
        self.actions[:] = self.rng.integers(0, 2, len(self.actions))
        self.sent.append(self.actions.copy())
        return self.actions


def pole_heuristic(observations, infos):
    """The classic CartPole rule, as bools (not valid actions until cast)."""
    return observations[:, 2] > 0


def zero_with_optional_infos(observations, infos=None):
    """A policy whose infos parameter has a default (was taken for a factory)."""
    return np.zeros(len(observations), dtype=np.int64)


def factory_with_other_second_parameter(envs, deterministic=False, seed=None):
    """A factory with another optional parameter before seed (taken for a policy in session
    24 until the review)."""
    return always_zero


def factory_of_any_arguments(*args):
    """A factory taking *args: it is taken for a policy."""
    return always_zero


def interrupted_while_built(envs, seed=None):
    """A factory that is interrupted (Ctrl-C) while it builds its policy: before the writer
    has touched the output file."""
    raise KeyboardInterrupt


_CALLS = {"fails_late": 0}


def fails_late(observations, infos):
    """A bad policy that fails after 300 calls, once the progress bar is up."""
    _CALLS["fails_late"] += 1
    if _CALLS["fails_late"] > 300:
        raise RuntimeError("the policy failed late")
    return np.zeros(len(observations), dtype=np.int64)
