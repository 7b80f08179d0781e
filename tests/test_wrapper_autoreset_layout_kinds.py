"""VectorFlickerFilter under same-step autoreset (as FlickerFilter inside each env), C-ordered
scaled frames on the make_vec fast path, and the single-env and vector wrappers naming each
other when given the wrong kind of env."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest
from frame_env import FrameEnv
from gymnasium.vector import AutoresetMode, SyncVectorEnv
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

BRIGHT = np.full((4, 4, 3), 200, np.uint8)
BLANK = np.zeros((4, 4, 3), np.uint8)


# --------------------------------------------------------------------------- same-step autoreset
def _frames(pattern: list[bool]) -> list[np.ndarray]:
    """Frames from a blank pattern; each bright frame is distinct, so a held frame is named."""
    return [BLANK if blank else np.full((4, 4, 3), 100 + i, np.uint8)
            for i, blank in enumerate(pattern)]


@settings(max_examples=40, deadline=None)
@given(
    patterns=st.lists(st.lists(st.booleans(), min_size=2, max_size=7), min_size=1, max_size=3),
    lengths=st.lists(st.integers(1, 5), min_size=3, max_size=3),
    mode=st.sampled_from(["hold", "flag"]),
    actions=st.integers(1, 14),
)
def test_same_step_vector_filter_matches_a_filter_inside_each_env(patterns, lengths, mode,
                                                                 actions):
    """final_obs, final_info["blank_frame"], observations and counters agree with
    FlickerFilter inside each sub-environment (what make_vec's SameStep fallback builds)."""
    makers = [lambda p=p, n=n: FrameEnv(_frames(p), length=n)
              for p, n in zip(patterns, lengths, strict=False)]
    inside = SyncVectorEnv([lambda m=m: FlickerFilter(m(), mode=mode) for m in makers],
                           autoreset_mode=AutoresetMode.SAME_STEP)
    outside = VectorFlickerFilter(SyncVectorEnv(makers, autoreset_mode=AutoresetMode.SAME_STEP),
                                  mode=mode)
    expected, _ = inside.reset(seed=0)
    got, _ = outside.reset(seed=0)
    np.testing.assert_array_equal(got, expected)
    zeros = np.zeros(len(makers), np.int64)
    for _ in range(actions):
        expected, _, _, _, want = inside.step(zeros)
        got, _, _, _, have = outside.step(zeros)
        np.testing.assert_array_equal(got, expected)
        np.testing.assert_array_equal(have["blank_frame"], want["blank_frame"])
        assert ("final_obs" in have) == ("final_obs" in want)
        if "final_obs" in want:
            np.testing.assert_array_equal(have["_final_obs"], want["_final_obs"])
            for i in np.flatnonzero(want["_final_obs"]):
                np.testing.assert_array_equal(have["final_obs"][i], want["final_obs"][i])
            for key in ("blank_frame", "_blank_frame"):
                np.testing.assert_array_equal(have["final_info"][key], want["final_info"][key])
    for counter in ("frames_seen", "blank_frames"):
        assert getattr(outside, counter) == sum(env.get_wrapper_attr(counter)
                                                for env in inside.envs)


def test_same_step_final_obs_is_held_and_the_envs_array_is_left_alone():
    envs = SyncVectorEnv([lambda: FrameEnv([BRIGHT, BRIGHT, BLANK], length=2)],
                         autoreset_mode=AutoresetMode.SAME_STEP)
    vec = VectorFlickerFilter(envs, mode="hold")
    vec.reset(seed=0)
    vec.step(np.zeros(1, np.int64))
    raw = {}
    step = envs.step

    def spy(actions):
        result = step(actions)
        raw.setdefault("final_obs", result[4].get("final_obs"))
        return result

    envs.step = spy
    _, _, terminated, _, infos = vec.step(np.zeros(1, np.int64))
    assert terminated[0]
    np.testing.assert_array_equal(infos["final_obs"][0], BRIGHT)  # the blank last frame, held
    assert infos["final_info"]["blank_frame"][0] and infos["final_info"]["_blank_frame"][0]
    assert (vec.frames_seen, vec.blank_frames) == (4, 1)
    np.testing.assert_array_equal(raw["final_obs"][0], BLANK)  # the env's own array unchanged
    infos["final_obs"][0][...] = 9  # a caller scribbling on it does not reach the held frame
    obs, *_ = vec.step(np.zeros(1, np.int64))
    np.testing.assert_array_equal(obs[0], BRIGHT)


# --------------------------------------------------------------------------- C-ordered frames
@settings(max_examples=40, deadline=None)
@given(
    shape=st.lists(st.integers(1, 6), min_size=1, max_size=4),
    seed=st.integers(0, 2**32 - 1),
    bounds=st.sampled_from([(-1.0, 1.0), (0.0, 1.0), (-3.5, 250.0)]),
)
def test_byte_scaler_returns_c_order_for_any_layout(shape, seed, bounds):
    frames = np.random.default_rng(seed).integers(0, 256, shape, np.uint8)
    scaler = ByteScaler(*bounds)
    view = frames.transpose(np.random.default_rng(seed).permutation(frames.ndim))[..., ::-1]
    out = scaler(view)
    assert out.flags.c_contiguous and out.dtype == np.float32
    np.testing.assert_array_equal(out, scaler.table[np.ascontiguousarray(view)])


def test_vector_scale_float_lays_a_transposed_batch_out_in_c_order():
    frames = [np.random.default_rng(i).integers(0, 256, (6, 5, 3), np.uint8) for i in range(3)]
    envs = SyncVectorEnv([lambda: FrameEnv(frames)] * 2)
    vec = VectorScaleFloat(VectorChannelFirst(envs, copy=False))
    obs, _ = vec.reset(seed=0)
    assert obs.shape == (2, 3, 6, 5) and obs.flags.c_contiguous
    single = ScaleFloat(ChannelFirst(FrameEnv(frames)))
    np.testing.assert_array_equal(obs[0], single.reset(seed=0)[0])


def test_hold_keeps_the_layout_of_a_transposed_batch_when_it_replaces_a_frame():
    envs = SyncVectorEnv([lambda: FrameEnv([BRIGHT, BLANK, BRIGHT], length=10**6)] * 2)
    vec = VectorFlickerFilter(VectorChannelFirst(envs, copy=False), mode="hold")
    first, _ = vec.reset(seed=0)
    replaced, *_ = vec.step(np.zeros(2, np.int64))  # blank: held frames, a new batch
    np.testing.assert_array_equal(replaced, first)
    assert replaced.strides == first.strides


def test_fast_path_float_frames_are_c_ordered_and_equal_the_sync_paths():
    kwargs = dict(num_envs=2, repeat_action_probability=0.0)
    fast = gym.make_vec("GanAtari/Breakout-v0", **kwargs)
    sync = gym.make_vec("GanAtari/Breakout-v0", vectorization_mode="sync", **kwargs)
    assert not isinstance(fast.unwrapped, SyncVectorEnv)
    assert isinstance(sync.unwrapped, SyncVectorEnv)
    got, _ = fast.reset(seed=3)
    expected, _ = sync.reset(seed=3)
    rng = np.random.default_rng(0)
    for step in range(25):
        assert got.flags.c_contiguous and got.dtype == np.float32, step
        np.testing.assert_array_equal(got, expected)
        actions = rng.integers(0, 4, 2)
        got, *_ = fast.step(actions)
        expected, *_ = sync.step(actions)
    fast.close()
    sync.close()


# --------------------------------------------------------------------------- the wrong kind of env
SINGLE_TO_VECTOR = [(ResizeFrame, "VectorResizeFrame"), (ChannelFirst, "VectorChannelFirst"),
                    (ScaleFloat, "VectorScaleFloat"), (FlickerFilter, "VectorFlickerFilter")]


@pytest.mark.parametrize(("wrapper", "vector_name"), SINGLE_TO_VECTOR)
@pytest.mark.parametrize("shape", [(210, 160, 3), (64, 64)])
def test_a_single_env_wrapper_given_a_vector_env_names_the_vector_version(wrapper, vector_name,
                                                                          shape):
    envs = SyncVectorEnv([lambda: FrameEnv([np.zeros(shape, np.uint8)])] * 2)
    with pytest.raises(TypeError) as err:
        wrapper(envs)
    message = str(err.value)
    assert message.startswith(f"{wrapper.__name__} wraps a single gymnasium.Env, got the vector "
                              "env SyncVectorEnv: use ")
    assert f"use {vector_name} for a vector env" in message and "\n" not in message


def test_flicker_filter_on_a_vector_env_says_where_skip_goes():
    envs = SyncVectorEnv([lambda: FrameEnv([BRIGHT])] * 2)
    with pytest.raises(TypeError, match=r"for 'skip', put FlickerFilter inside each env"):
        FlickerFilter(envs, mode="skip")


@pytest.mark.parametrize(("wrapper", "single_name"), [
    (VectorResizeFrame, "ResizeFrame"), (VectorChannelFirst, "ChannelFirst"),
    (VectorScaleFloat, "ScaleFloat"), (VectorFlickerFilter, "FlickerFilter")])
def test_a_vector_wrapper_given_a_single_env_names_the_single_version(wrapper, single_name):
    with pytest.raises(TypeError) as err:
        wrapper(FrameEnv([BRIGHT]))
    message = str(err.value)
    assert message == (f"{wrapper.__name__} wraps a gymnasium.vector.VectorEnv, got FrameEnv: "
                       f"use {single_name} for a single env")
