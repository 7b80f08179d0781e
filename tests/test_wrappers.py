"""Properties of the frame wrappers over random frames, sizes and ranges."""

from __future__ import annotations

import cv2
import gymnasium as gym
import numpy as np
import pytest
from frame_env import FrameEnv
from gymnasium.spaces import Box, Discrete
from hypothesis import given, settings
from hypothesis import strategies as st

from gan_envs.wrappers import (
    ByteScaler,
    ChannelFirst,
    FlickerFilter,
    ResizeFrame,
    ScaleFloat,
    VectorChannelFirst,
    VectorFlickerFilter,
    VectorResizeFrame,
    VectorScaleFloat,
)

SETTINGS = settings(max_examples=60, deadline=None)


def random_frames(seed: int, shape: tuple[int, ...], n: int = 3) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    return [rng.integers(0, 256, shape, dtype=np.uint8) for _ in range(n)]


frame_shapes = st.tuples(st.integers(1, 60), st.integers(1, 60)).flatmap(
    lambda hw: st.sampled_from([hw, hw + (1,), hw + (3,), hw + (4,)])
)
sizes = st.one_of(st.integers(1, 70), st.tuples(st.integers(1, 70), st.integers(1, 70)),
                  st.lists(st.integers(1, 70), min_size=2, max_size=2))


# --------------------------------------------------------------------------- ResizeFrame
@SETTINGS
@given(shape=frame_shapes, size=sizes, seed=st.integers(0, 2**31))
def test_resize_matches_opencv_and_space(shape, size, seed):
    frames = random_frames(seed, shape)
    env = ResizeFrame(FrameEnv(frames), size=size)
    h, w = (size, size) if isinstance(size, int) else tuple(size)
    assert env.observation_space.shape == (h, w) + shape[2:]
    assert env.observation_space.dtype == np.uint8
    obs, _ = env.reset()
    for frame in frames[1:] + [None]:
        expected = cv2.resize(frames[0] if frame is None else frame, (w, h),
                              interpolation=cv2.INTER_AREA)
        if obs.ndim == 3 and expected.ndim == 2:
            expected = expected[:, :, None]
        assert obs in env.observation_space
        if frame is not None:
            obs, *_ = env.step(0)
            np.testing.assert_array_equal(obs, expected)


def test_resize_on_real_atari_frames_equals_opencv():
    env = gym.make("ALE/Breakout-v5")
    wrapped = ResizeFrame(env, 64)
    obs, _ = wrapped.reset(seed=0)
    for _ in range(30):
        obs, *_ = wrapped.step(wrapped.action_space.sample())
        raw = env.unwrapped.ale.getScreenRGB()
        np.testing.assert_array_equal(obs, cv2.resize(raw, (64, 64), interpolation=cv2.INTER_AREA))
    wrapped.close()


@pytest.mark.parametrize(
    "space, size, error, match",
    [
        (Discrete(3), 64, TypeError, "requires a Box"),
        (Box(0, 1, (10, 10, 3), np.float32), 64, TypeError, "requires uint8"),
        (Box(0, 255, (10,), np.uint8), 64, ValueError, "rank 2 or rank 3"),
        (Box(0, 255, (10, 10, 3, 2), np.uint8), 64, ValueError, "rank 2 or rank 3"),
        (Box(0, 255, (10, 10, 3), np.uint8), 0, ValueError, "must be positive"),
        (Box(0, 255, (10, 10, 3), np.uint8), (8, -1), ValueError, "must be positive"),
        (Box(0, 255, (10, 10, 3), np.uint8), "64", TypeError, "int or a"),
        (Box(0, 255, (10, 10, 3), np.uint8), (8, 8, 8), TypeError, "int or a"),
        (Box(0, 255, (10, 10, 3), np.uint8), 6.5, TypeError, "int or a"),
        (Box(0, 255, (10, 10, 3), np.uint8), True, TypeError, "int or a"),
    ],
)
def test_resize_bad_inputs(space, size, error, match):
    env = _SpaceEnv(space)
    with pytest.raises(error, match=match):
        ResizeFrame(env, size=size)


class _SpaceEnv(gym.Env):
    """An environment that only declares a space (for construction-time checks)."""

    def __init__(self, space: gym.Space):
        self.observation_space = space
        self.action_space = Discrete(2)


# --------------------------------------------------------------------------- ChannelFirst
@SETTINGS
@given(shape=frame_shapes, seed=st.integers(0, 2**31),
       dtype=st.sampled_from([np.uint8, np.float32]))
def test_channel_first_is_the_inverse_of_moveaxis(shape, seed, dtype):
    frames = [f.astype(dtype) for f in random_frames(seed, shape)]
    env = ChannelFirst(FrameEnv(frames))
    obs, _ = env.reset()
    expected_shape = (1,) + shape if len(shape) == 2 else (shape[2],) + shape[:2]
    assert env.observation_space.shape == expected_shape
    assert obs.dtype == dtype and obs.flags.c_contiguous
    assert obs in env.observation_space
    back = np.moveaxis(obs, 0, -1)
    np.testing.assert_array_equal(back[..., 0] if len(shape) == 2 else back, frames[0])


def test_channel_first_bad_inputs():
    with pytest.raises(TypeError, match="ChannelFirst requires a Box"):
        ChannelFirst(_SpaceEnv(Discrete(2)))
    with pytest.raises(ValueError, match="ChannelFirst requires rank 2 or rank 3"):
        ChannelFirst(_SpaceEnv(Box(0, 255, (4,), np.uint8)))


# --------------------------------------------------------------------------- ScaleFloat
bounds = st.tuples(
    st.floats(-1e3, 1e3, allow_nan=False, width=32), st.floats(-1e3, 1e3, allow_nan=False, width=32)
).filter(lambda b: b[0] < b[1] and np.float32(b[1]) - np.float32(b[0]) > 1e-3)


@SETTINGS
@given(bounds=bounds, shape=frame_shapes, seed=st.integers(0, 2**31))
def test_scale_float_is_monotone_bounded_and_hits_both_ends(bounds, shape, seed):
    low, high = bounds
    frames = random_frames(seed, shape)
    env = ScaleFloat(FrameEnv(frames), low=low, high=high)
    assert env.observation_space.dtype == np.float32
    obs, _ = env.reset()
    assert obs.dtype == np.float32 and obs in env.observation_space
    values = env.scaler(np.arange(256, dtype=np.uint8))
    assert values[0] == np.float32(low) and values[255] == np.float32(high)
    assert np.all(np.diff(values) >= 0)
    np.testing.assert_array_equal(obs, values[frames[0]])  # the table is the definition
    np.testing.assert_allclose(values, low + np.arange(256) * (high - low) / 255,
                               rtol=1e-5, atol=1e-5 * max(abs(low), abs(high)))


def test_scale_float_default_is_minus_one_to_one():
    scaler = ByteScaler(-1.0, 1.0)
    assert scaler.table[0] == -1.0 and scaler.table[255] == 1.0
    assert abs(scaler.table[128] - (128 / 127.5 - 1)) < 1e-6


@pytest.mark.parametrize(
    "low, high, error, match",
    [(1.0, 0.0, ValueError, "low < high"), (0.0, float("nan"), ValueError, "finite"),
     (0.0, float("inf"), ValueError, "finite"), ("a", 1.0, TypeError, "numbers")],
)
def test_scale_float_bad_bounds(low, high, error, match):
    with pytest.raises(error, match=match):
        ScaleFloat(_SpaceEnv(Box(0, 255, (4, 4), np.uint8)), low=low, high=high)


def test_scale_float_refuses_float_frames():
    with pytest.raises(TypeError, match="ScaleFloat requires uint8"):
        ScaleFloat(_SpaceEnv(Box(0, 1, (4, 4), np.float32)))


# --------------------------------------------------------------------------- FlickerFilter
def blank_or_not(seed: int, pattern: list[bool], shape=(6, 5, 3)) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    frames = []
    for blank in pattern:
        frame = np.zeros(shape, dtype=np.uint8)
        if not blank:
            frame = rng.integers(1, 256, shape, dtype=np.uint8)
        frames.append(frame)
    return frames


patterns = st.lists(st.booleans(), min_size=2, max_size=40)


@SETTINGS
@given(pattern=patterns, seed=st.integers(0, 2**31), scaled=st.booleans())
def test_hold_never_emits_a_blank_frame_once_one_was_seen(pattern, seed, scaled):
    frames = blank_or_not(seed, pattern)
    env = FrameEnv(frames, length=len(frames) - 1)
    if scaled:
        env = ScaleFloat(env)
    env = FlickerFilter(env, mode="hold")
    obs, info = env.reset()
    seen_good = not pattern[0]
    assert info["blank_frame"] == pattern[0]
    last_good = obs if seen_good else None
    for t in range(1, len(frames)):
        obs, reward, terminated, truncated, info = env.step(0)
        assert info["blank_frame"] == pattern[t]
        assert obs in env.observation_space
        if pattern[t] and last_good is not None:
            np.testing.assert_array_equal(obs, last_good)
        if not pattern[t]:
            last_good = obs
        if last_good is not None:
            assert not env.is_blank(obs)
    assert env.frames_seen == len(frames)
    assert env.blank_frames == sum(pattern)


@SETTINGS
@given(pattern=patterns, seed=st.integers(0, 2**31), max_skip=st.integers(1, 10))
def test_skip_sums_rewards_and_stops_at_termination(pattern, seed, max_skip):
    frames = blank_or_not(seed, pattern)
    length = len(frames) - 1
    env = FlickerFilter(FrameEnv(frames, length=length), mode="skip", max_skip=max_skip)
    env.reset()
    t = 0
    while True:
        obs, reward, terminated, truncated, info = env.step(0)
        start, t = t, t + 1 + info["skipped_steps"]
        assert reward == sum(range(start + 1, t + 1))  # FrameEnv's reward is the step index
        assert info["skipped_steps"] <= max_skip
        assert info["blank_frame"] == pattern[t]
        if info["blank_frame"]:  # only when the budget ran out or the episode ended
            assert info["skipped_steps"] == max_skip or terminated
        assert all(pattern[start + 1:t])  # every skipped frame was blank
        if terminated:
            assert t == length
            break
        assert t < length


@SETTINGS
@given(pattern=patterns, seed=st.integers(0, 2**31))
def test_flag_passes_frames_through(pattern, seed):
    frames = blank_or_not(seed, pattern)
    env = FlickerFilter(FrameEnv(frames), mode="flag")
    obs, info = env.reset()
    np.testing.assert_array_equal(obs, frames[0])
    for t in range(1, len(frames)):
        obs, _, _, _, info = env.step(0)
        np.testing.assert_array_equal(obs, frames[t])
        assert info["blank_frame"] == pattern[t]


def test_threshold_is_on_the_0_255_scale_for_float_frames_too():
    dim = np.full((4, 4, 3), 0, dtype=np.uint8)
    dim[0, 0, 0] = 5  # mean 5/48 = 0.104 on the 0-255 scale
    for threshold, blank in [(0.1, False), (0.11, True)]:
        raw = FlickerFilter(FrameEnv([dim, dim]), threshold=threshold, mode="flag")
        scaled = FlickerFilter(ScaleFloat(FrameEnv([dim, dim])), threshold=threshold, mode="flag")
        assert raw.reset()[1]["blank_frame"] == blank
        assert scaled.reset()[1]["blank_frame"] == blank


@pytest.mark.parametrize(
    "kwargs, error, match",
    [({"mode": "blink"}, ValueError, "mode must be one of"),
     ({"threshold": -1}, ValueError, "0-255 scale"),
     ({"threshold": 300}, ValueError, "0-255 scale"),
     ({"threshold": "x"}, TypeError, "number"),
     ({"max_skip": 0}, ValueError, "max_skip must be >= 1"),
     ({"max_skip": 2.5}, TypeError, "max_skip must be an int")],
)
def test_flicker_bad_arguments(kwargs, error, match):
    with pytest.raises(error, match=match):
        FlickerFilter(_SpaceEnv(Box(0, 255, (4, 4), np.uint8)), **kwargs)


def test_flicker_bad_spaces():
    with pytest.raises(TypeError, match="FlickerFilter requires a Box"):
        FlickerFilter(_SpaceEnv(Discrete(3)))
    with pytest.raises(ValueError, match="finite, uniform bounds"):
        FlickerFilter(_SpaceEnv(Box(-np.inf, np.inf, (4, 4), np.float32)))
    with pytest.raises(TypeError, match="uint8 or float"):
        FlickerFilter(_SpaceEnv(Box(0, 10, (4, 4), np.int32)))


# --------------------------------------------------------------------------- vector versions
def vector_of(frames_per_env: list[list[np.ndarray]]) -> gym.vector.SyncVectorEnv:
    return gym.vector.SyncVectorEnv([lambda f=f: FrameEnv(f) for f in frames_per_env])


@settings(max_examples=25, deadline=None)
@given(seed=st.integers(0, 2**31), size=st.integers(1, 40), num_envs=st.integers(1, 3))
def test_vector_stack_equals_single_stack(seed, size, num_envs):
    per_env = [random_frames(seed + i, (30, 20, 3), n=4) for i in range(num_envs)]
    vec = VectorScaleFloat(VectorChannelFirst(VectorResizeFrame(vector_of(per_env), size)),
                           low=0.0, high=1.0)
    singles = [ScaleFloat(ChannelFirst(ResizeFrame(FrameEnv(f), size)), 0.0, 1.0)
               for f in per_env]
    assert vec.single_observation_space == singles[0].observation_space
    obs, _ = vec.reset()
    for _ in range(3):
        expected = np.stack([s.reset()[0] if _ == 0 else s.step(0)[0] for s in singles])
        if _ > 0:
            obs, *_ = vec.step(np.zeros(num_envs, dtype=np.int64))
        np.testing.assert_array_equal(obs, expected)
        assert obs in vec.observation_space


def test_vector_flicker_holds_per_env_and_flags():
    good = np.full((4, 4, 3), 200, dtype=np.uint8)
    blank = np.zeros((4, 4, 3), dtype=np.uint8)
    vec = VectorFlickerFilter(vector_of([[good, blank, blank, good], [blank, blank, good, blank]]))
    obs, info = vec.reset()
    assert info["blank_frame"].tolist() == [False, True]
    step = np.zeros(2, dtype=np.int64)
    obs, _, _, _, info = vec.step(step)
    assert info["blank_frame"].tolist() == [True, True]
    np.testing.assert_array_equal(obs[0], good)  # held
    np.testing.assert_array_equal(obs[1], blank)  # nothing to hold yet
    obs, _, _, _, info = vec.step(step)
    obs, _, _, _, info = vec.step(step)
    assert info["blank_frame"].tolist() == [False, True]
    np.testing.assert_array_equal(obs[1], good)
    assert vec.blank_frames == 5 and vec.frames_seen == 8


def test_vector_flicker_refuses_skip():
    with pytest.raises(ValueError, match="'skip' needs single environments"):
        VectorFlickerFilter(vector_of([[np.zeros((2, 2), np.uint8)] * 2]), mode="skip")


@SETTINGS
@given(seed=st.integers(0, 2**31), n=st.integers(1, 6), peak=st.integers(0, 255),
       threshold=st.floats(0.0, 254.0), scaled=st.booleans(), layout=st.booleans())
def test_blank_test_is_mean_at_most_threshold(seed, n, peak, threshold, scaled, layout):
    """The max pre-check never changes a decision: dim, blank and bright frames, any layout."""
    from gan_envs.wrappers import _BlankTest

    rng = np.random.default_rng(seed)
    frames = rng.integers(0, peak + 1, (n, 5, 6, 3), dtype=np.uint8)
    frames[rng.random(n) < 0.3] = 0
    mean255 = frames.reshape(n, -1).mean(axis=1)
    space = Box(0, 255, (5, 6, 3), np.uint8)
    if scaled:  # the same frames after ScaleFloat: [-1, 1] (negative pixels: no pre-check)
        frames = ByteScaler(-1.0, 1.0)(frames)
        space = Box(-1.0, 1.0, (5, 6, 3), np.float32)
    if layout:  # a transposed view, as VectorChannelFirst(copy=False) hands out
        frames = np.moveaxis(frames, -1, 1)
        space = Box(space.low.min(), space.high.max(), frames.shape[1:], space.dtype)
    test = _BlankTest(space, threshold, "test")
    want = mean255 <= threshold + 1e-4 * scaled
    close = np.abs(mean255 - threshold) < 1e-3  # float rounding at the boundary
    got = test.batch(frames)
    np.testing.assert_array_equal(got[~close], want[~close])
    assert [test(frame) for frame in frames] == got.tolist()


@pytest.mark.parametrize("channels", [None, 3])
def test_vector_channel_first_copy_or_view(channels):
    shape = (2, 4, 5) if channels is None else (2, 4, 5, channels)
    batch = np.random.default_rng(0).integers(0, 256, shape, dtype=np.uint8)
    envs = gym.vector.SyncVectorEnv([lambda: FrameEnv([batch[0]] * 3) for _ in range(2)])
    copied, viewed = VectorChannelFirst(envs), VectorChannelFirst(envs, copy=False)
    a, b = copied.observations(batch), viewed.observations(batch)
    np.testing.assert_array_equal(a, b)
    assert a.flags.c_contiguous and not np.shares_memory(a, batch)
    assert np.shares_memory(b, batch)
    assert a.shape == b.shape == (2, 1 if channels is None else channels, 4, 5)
