"""Wrapper and GanAtari inputs a Gymnasium user may pass: refused in one line when built, or
handled; held frames are the wrapper's own copies."""

from __future__ import annotations

import cv2
import gymnasium as gym
import numpy as np
import pytest
from frame_env import FrameEnv
from gymnasium.spaces import Box, Discrete
from gymnasium.vector import AutoresetMode, SyncVectorEnv
from hypothesis import given, settings
from hypothesis import strategies as st

import gan_envs  # noqa: F401 - registers GanAtari
from gan_envs.wrappers import ChannelFirst, FlickerFilter, ResizeFrame, VectorFlickerFilter

GOOD, BLANK = np.full((4, 4, 3), 200, np.uint8), np.zeros((4, 4, 3), np.uint8)


class _ReusingEnv(FrameEnv):
    """Hands out one buffer, rewritten every step (as SyncVectorEnv(copy=False) does)."""

    def __init__(self, frames, **kwargs):
        super().__init__(frames, **kwargs)
        self.buffer = np.zeros_like(self.frames[0])

    def reset(self, *, seed=None, options=None):
        frame, info = super().reset(seed=seed, options=options)
        self.buffer[...] = frame
        return self.buffer, info

    def step(self, action):
        frame, *rest = super().step(action)
        self.buffer[...] = frame
        return (self.buffer, *rest)


@settings(max_examples=30, deadline=None)
@given(pattern=st.lists(st.booleans(), min_size=2, max_size=12), reuse=st.booleans(),
       scribble=st.booleans())
def test_a_held_frame_is_the_last_good_frame_whatever_happens_to_the_arrays(pattern, reuse,
                                                                            scribble):
    """Frames k (good) or 0 (blank): hold returns the last good value even when the env reuses
    its buffer or the caller writes into what it got."""
    frames = [np.full((4, 4), 0 if blank else k + 1, np.uint8) for k, blank in enumerate(pattern)]
    env = FlickerFilter((_ReusingEnv if reuse else FrameEnv)(frames, length=10**6), mode="hold")
    obs, _ = env.reset()
    last = None
    for k in range(len(pattern)):
        if k:
            obs, *_ = env.step(0)
        last = k + 1 if not pattern[k] else last
        assert obs[0, 0] == (last if last is not None else 0)
        if scribble:
            obs[...] = 77  # what torch.from_numpy(obs).mul_(...) would do


def test_vector_hold_survives_a_reused_batch_array_and_a_scribbling_caller():
    vec = VectorFlickerFilter(SyncVectorEnv([lambda: FrameEnv([GOOD, BLANK, BLANK])] * 2,
                                            copy=False))
    obs, _ = vec.reset()
    obs[...] = 7
    obs, *_ = vec.step(np.zeros(2, np.int64))
    np.testing.assert_array_equal(obs, np.stack([GOOD, GOOD]))


def test_a_partial_reset_restarts_holding_only_where_it_resets():
    envs = SyncVectorEnv([lambda: FrameEnv([GOOD, BLANK], length=10**6)] * 2,
                         autoreset_mode=AutoresetMode.DISABLED)
    vec = VectorFlickerFilter(envs)
    vec.reset()
    obs, *_ = vec.step(np.zeros(2, np.int64))  # both blank: held
    np.testing.assert_array_equal(obs, np.stack([GOOD, GOOD]))
    seen = vec.frames_seen
    obs, info = vec.reset(options={"reset_mask": np.array([False, True])})
    np.testing.assert_array_equal(obs, np.stack([GOOD, GOOD]))  # env 0 still holds
    assert vec.frames_seen == seen + 1


@pytest.mark.parametrize(("wrapper", "shape"), [
    (ResizeFrame, (4, 84, 84)), (ResizeFrame, (3, 64, 64)), (ChannelFirst, (4, 84, 84))])
def test_channels_or_stacked_frames_first_are_refused(wrapper, shape):
    env = FrameEnv([np.zeros(shape, np.uint8)])
    with pytest.raises(ValueError, match=r"looks like channels or stacked frames first"):
        wrapper(env)


@pytest.mark.parametrize("channels", [5, 6, 12])
def test_resize_of_more_than_four_channels_matches_opencv_per_channel(channels):
    frame = np.random.default_rng(channels).integers(0, 256, (60, 40, channels), np.uint8)
    env = ResizeFrame(FrameEnv([frame]), size=(24, 18))  # the OpenCV path (not a 1/odd ratio)
    obs, _ = env.reset()
    expected = np.stack([cv2.resize(frame[:, :, c], (18, 24), interpolation=cv2.INTER_AREA)
                         for c in range(channels)], axis=2)
    np.testing.assert_array_equal(obs, expected)
    assert obs in env.observation_space


class _LyingEnv(FrameEnv):
    def reset(self, *, seed=None, options=None):
        frame, info = super().reset(seed=seed, options=options)
        return np.zeros((50, 40, 3), np.uint8), info


def test_frames_other_than_the_space_declares_are_named():
    env = ResizeFrame(_LyingEnv([np.zeros((60, 40, 3), np.uint8)]), size=16)
    with pytest.raises(ValueError, match=r"made for uint8 frames of \(60, 40\) pixels, got "
                                         r"uint8 \(50, 40, 3\)"):
        env.reset()


@pytest.mark.parametrize(("kwargs", "error", "match"), [
    ({"scale": ("a", "b")}, TypeError, "GanAtari scale low and high must be numbers"),
    ({"scale": (None, 1)}, TypeError, "GanAtari scale low and high must be numbers"),
    ({"scale": (-3e38, 3e38)}, ValueError, "span more than float32 holds"),
    ({"size": 0}, ValueError, "^GanAtari size must be positive"),
    ({"size": 100_000}, ValueError, "at most 8192 pixels a side"),
    ({"flicker_threshold": -1}, ValueError, "GanAtari flicker_threshold is on the 0-255"),
    ({"flicker_max_skip": -5}, ValueError, "GanAtari flicker_max_skip must be"),
    ({"flicker_max_skip": "x"}, TypeError, "GanAtari flicker_max_skip must be an int"),
])
@pytest.mark.parametrize("vector", [False, True])
def test_gan_atari_keywords_are_named_alike_by_make_and_make_vec(kwargs, error, match, vector):
    with pytest.raises(error, match=match):
        if vector:
            gym.make_vec("GanAtari/Pong-v0", num_envs=1, **kwargs)
        else:
            gym.make("GanAtari/Pong-v0", **kwargs)


@pytest.mark.parametrize("num_envs", [0, -1, 2.0, True])
def test_make_vec_refuses_a_bad_num_envs(num_envs):
    # ale-py's own vector env crashes the process on 0 (a segmentation fault)
    with pytest.raises(ValueError, match="GanAtari num_envs must be a whole number >= 1"):
        gym.make_vec("GanAtari/Pong-v0", num_envs=num_envs)


def test_fast_vector_env_takes_lists_and_refuses_out_of_range_actions():
    envs = gym.make_vec("GanAtari/Pong-v0", num_envs=2, flicker=None, scale=None)
    try:
        first, _ = envs.reset(seed=[3, 4])  # ale-py takes an int or an array only
        again, _ = envs.reset(seed=np.array([3, 4]))
        np.testing.assert_array_equal(first, again)
        obs, *_ = envs.step([0, 1])  # ale-py asserts on a list
        assert obs.shape == (2, 3, 64, 64)
        for bad in (np.array([0, 99]), np.array([0, -1]), [0.5, 1.0], [0, 1, 2]):
            with pytest.raises(ValueError, match=r"actions must be 2 whole numbers in \[0, 6\)"):
                envs.step(bad)  # ale-py waits forever on an out-of-range action
        obs, *_ = envs.step(np.array([1, 1]))
        assert obs.shape == (2, 3, 64, 64)
    finally:
        envs.close()


def test_discrete_frames_are_still_refused():
    with pytest.raises(TypeError, match="requires a Box"):
        ResizeFrame(FrameEnv([np.zeros((4, 4), np.uint8)]).__class__.__new__(_Discrete))


class _Discrete(gym.Env):
    observation_space = Discrete(3)
    action_space = Discrete(2)


def test_box_of_wrong_dtype_message_is_one_line():
    env = FrameEnv([np.zeros((4, 4, 3), np.float32)])
    with pytest.raises(TypeError) as err:
        ResizeFrame(env)
    assert "\n" not in str(err.value) and isinstance(env.observation_space, Box)


def test_vector_flicker_filter_names_a_single_env_and_bounds_fit_one_line():
    with pytest.raises(TypeError, match="wraps a gymnasium.vector.VectorEnv, got FrameEnv"):
        VectorFlickerFilter(FrameEnv([GOOD]))
    frames = [np.arange(16, dtype=np.float32).reshape(4, 4)]
    uneven = FrameEnv(frames, low=np.zeros((4, 4), np.float32),
                      high=np.arange(1, 17, dtype=np.float32).reshape(4, 4))
    with pytest.raises(ValueError) as err:
        FlickerFilter(uneven)
    assert "with bounds 0 to 16" in str(err.value) and "\n" not in str(err.value)


@pytest.mark.parametrize(("frame", "size", "match"), [
    (np.zeros((8, 8, 3), np.float32), 4, r"^VectorResizeFrame requires uint8 frames"),
    (np.zeros((4, 84, 84), np.uint8), 4, r"^VectorResizeFrame takes \(H, W, C\) frames"),
    (np.zeros((8, 8, 3), np.uint8), 0, r"^VectorResizeFrame size"),
])
def test_vector_resize_errors_name_the_vector_wrapper(frame, size, match):
    """VectorResizeFrame's space and size errors said ResizeFrame (its per-env worker)."""
    from gan_envs.wrappers import VectorResizeFrame

    with pytest.raises((TypeError, ValueError), match=match):
        VectorResizeFrame(SyncVectorEnv([lambda: FrameEnv([frame])]), size)
