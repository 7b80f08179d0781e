"""RecordRollouts records real environments step for step and commits only whole episodes."""

from __future__ import annotations

import json

import ale_py
import cv2
import gymnasium as gym
import numpy as np
import pytest
from gymnasium.spaces import Box

from gan_envs.datasets import RecordRollouts, RolloutReader

gym.register_envs(ale_py)


class Frames64(gym.ObservationWrapper):
    """64x64 channel-first uint8 frames (cv2 INTER_AREA), flagging dark frames as blank."""

    def __init__(self, env):
        super().__init__(env)
        self.observation_space = Box(0, 255, (3, 64, 64), np.uint8)

    def observation(self, obs):
        return cv2.resize(obs, (64, 64), interpolation=cv2.INTER_AREA).transpose(2, 0, 1)

    def reset(self, **kwargs):
        obs, info = super().reset(**kwargs)
        return obs, {**info, "blank_frame": bool(obs.mean() < 1)}

    def step(self, action):
        obs, reward, terminated, truncated, info = super().step(action)
        return obs, reward, terminated, truncated, {**info, "blank_frame": bool(obs.mean() < 1)}


def _play(env, steps, seed):
    """Random actions; returns what the env produced, split into episodes."""
    env.action_space.seed(seed)
    episodes, obs = [], None
    for _ in range(steps):
        if obs is None:
            obs, info = env.reset(seed=seed + len(episodes))
            ep = {"observations": [obs], "actions": [], "rewards": [], "ends": [],
                  "blank": [info.get("blank_frame", False)]}
        action = env.action_space.sample()
        obs, reward, terminated, truncated, info = env.step(action)
        for key, value in (("actions", action), ("rewards", reward), ("observations", obs),
                           ("ends", (terminated, truncated)),
                           ("blank", info.get("blank_frame", False))):
            ep[key].append(value)
        if terminated or truncated:
            episodes.append(ep)
            obs = None
    env.close()  # the unfinished episode is discarded
    return episodes


@pytest.mark.parametrize(("make", "steps"), [
    (lambda: gym.make("CartPole-v1"), 300),
    (lambda: gym.make("Pendulum-v1", max_episode_steps=40), 130),
    (lambda: Frames64(gym.make("ALE/Breakout-v5", max_episode_steps=60)), 200),
])
def test_records_every_step_of_real_envs(tmp_path, make, steps):
    path = tmp_path / "rec.h5"
    env = RecordRollouts(make(), path, policy="random")
    episodes = _play(env, steps, seed=3)
    assert episodes
    with RolloutReader(path) as reader:
        assert reader.num_episodes == len(episodes)  # the cut-off last episode is not there
        assert reader.observation_space == env.observation_space
        assert reader.action_space == env.action_space
        for k, want in enumerate(episodes):
            got = reader.episode(k)
            np.testing.assert_array_equal(got["observations"], np.stack(want["observations"]))
            np.testing.assert_array_equal(got["actions"], np.stack(want["actions"]))
            np.testing.assert_allclose(got["rewards"], np.float32(want["rewards"]))
            assert (got["terminations"][-1], got["truncations"][-1]) == want["ends"][-1]
            assert reader.episode_info(k)["seed"] == 3 + k
            if reader.has_blank_frame:
                np.testing.assert_array_equal(got["blank_frame"], want["blank"])
        spec = env.spec.id if env.spec is not None else None
        assert reader.env_ids == [spec]
        stored = reader.metadata["env_specs"][spec]
        assert stored is None or json.loads(stored)["id"] == spec
        assert reader.metadata["policy"] == "random"
        assert reader.has_blank_frame == isinstance(env.env, Frames64)


def test_reset_mid_episode_discards_it_and_close_commits_nothing_partial(tmp_path):
    path = tmp_path / "cut.h5"
    env = RecordRollouts(gym.make("CartPole-v1"), path)
    env.reset(seed=0)
    env.step(0)
    env.reset(seed=1)
    for _ in range(3):
        env.step(1)
    assert env.num_episodes == 0
    env.close()
    with RolloutReader(path) as reader:
        assert reader.num_episodes == 0
    with pytest.raises(FileExistsError, match="overwrite=True"):
        RecordRollouts(gym.make("CartPole-v1"), path)
    env = RecordRollouts(gym.make("CartPole-v1"), path, resume=True, blank_frames=False)
    env.reset(seed=2)
    while not any(env.step(0)[2:4]):
        pass
    env.close()
    with RolloutReader(path) as reader:
        assert reader.num_episodes == 1 and reader.episode_info(0)["seed"] == 2
