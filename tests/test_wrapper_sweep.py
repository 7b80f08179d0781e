"""Session sweep of wrapper, registration, RecordRollouts and torch-adapter inputs: each test
failed before its fix (ALE options waved through or refused in ale-py's words, vector seeds and
action dtypes, flags taken by truthiness, lazy checks, NumPy errors reaching the user)."""

from __future__ import annotations

import math

import gymnasium as gym
import numpy as np
import pytest
import torch
from frame_env import FrameEnv
from gymnasium.envs.registration import EnvSpec
from gymnasium.spaces import Box, Discrete
from hypothesis import given, settings
from hypothesis import strategies as st

import gan_envs  # noqa: F401 - registers GanAtari
from gan_envs.datasets import DatasetError, RecordRollouts, RolloutWriter
from gan_envs.datasets.torch import ChunkBatchSampler, FrameDataset, frame_loader
from gan_envs.wrappers import ChannelFirst, FlickerFilter, ResizeFrame, ScaleFloat

ID = "GanAtari/Pong-v0"


# --------------------------------------------------------------------------- ALE options
@pytest.mark.parametrize("kwargs, error, match", [
    ({"repeat_action_probability": 1.5}, ValueError, "repeat_action_probability must be a "
                                                      r"number in \[0, 1\]"),
    ({"repeat_action_probability": -1}, ValueError, "repeat_action_probability"),
    ({"repeat_action_probability": math.nan}, ValueError, "repeat_action_probability"),
    ({"repeat_action_probability": "0.1"}, ValueError, "repeat_action_probability"),
    ({"full_action_space": "no"}, TypeError, "full_action_space must be True or False"),
    ({"max_num_frames_per_episode": 0}, ValueError, r"None for no limit\) must be >= 1"),
    ({"max_num_frames_per_episode": 1.5}, ValueError, "max_num_frames_per_episode"),
    ({"sound_obs": True}, ValueError, "GanAtari sound_obs=True makes Dict observations"),
    ({"frameskip": 0}, ValueError, "GanAtari frameskip must be a whole number >= 1"),
    ({"frameskip": (5, 2)}, ValueError, "1 <= low < high"),
    ({"render_mode": "rgb"}, ValueError, "GanAtari render_mode must be None, 'rgb_array'"),
    ({"sise": 32}, TypeError, "unknown keyword argument 'sise'; did you mean size"),
])
@pytest.mark.parametrize("vector", [False, True])
def test_gan_atari_refuses_bad_ale_options_in_one_line(kwargs, error, match, vector):
    with pytest.raises(error, match=match) as caught:
        if vector:
            gym.make_vec(ID, num_envs=2, **kwargs)
        else:
            gym.make(ID, **kwargs)
    assert "\n" not in str(caught.value)


@pytest.mark.parametrize("num_threads", [-3, 1.5])
def test_make_vec_refuses_a_bad_num_threads(num_threads):
    with pytest.raises(ValueError, match="GanAtari num_threads") as caught:
        gym.make_vec(ID, num_envs=2, num_threads=num_threads)
    assert "\n" not in str(caught.value)  # ale-py's binding error spans lines


@pytest.mark.parametrize("name, value, listed", [("mode", 99, "[0, 1]"),
                                                 ("difficulty", 7, "[0, 1, 2, 3]")])
def test_a_mode_or_difficulty_the_game_lacks_lists_the_ones_it_has(name, value, listed):
    for make in (lambda: gym.make(ID, **{name: value}),
                 lambda: gym.make_vec(ID, num_envs=2, **{name: value})):
        with pytest.raises(ValueError, match=rf"GanAtari {name} {value} is not one of pong's") as e:
            make()
        assert listed in str(e.value)


def test_a_frameskip_pair_survives_the_json_round_trip():
    env = gym.make(ID, frameskip=(2, 5), flicker=None)
    again = gym.make(EnvSpec.from_json(env.spec.to_json()))  # JSON turns the pair into a list
    assert again.unwrapped._frameskip == (2, 5)
    envs = gym.make_vec(ID, num_envs=2, frameskip=[2, 5])
    assert envs.reset(seed=0)[0].shape == (2, 3, 64, 64)
    for e in (env, again, envs):
        e.close()


# --------------------------------------------------------------------------- make_vec options
def test_make_vec_max_episode_steps_truncates_like_gym_make():
    steps = 3
    single = gym.make(ID, max_episode_steps=steps, repeat_action_probability=0.0)
    # the fast path; AtariEnv() got an unexpected keyword 'max_episode_steps' before
    envs = gym.make_vec(ID, num_envs=2, max_episode_steps=steps, repeat_action_probability=0.0)
    single.reset(seed=0)
    envs.reset(seed=0)
    for _ in range(steps + 2):
        one = single.step(0)
        if one[2] or one[3]:
            single.reset()
        batch = envs.step([0, 0])
        assert batch[3].tolist() == [one[3]] * 2
    single.close()
    envs.close()


def test_make_vec_takes_no_frame_limit_like_gym_make():
    envs = gym.make_vec(ID, num_envs=2, max_num_frames_per_episode=None)  # a TypeError before
    envs.reset(seed=0)
    assert not envs.step([0, 0])[3].any()
    envs.close()


@pytest.mark.parametrize("mode", ["SameStep", "Disabled", gym.vector.AutoresetMode.NEXT_STEP])
def test_make_vec_takes_gymnasiums_autoreset_mode(mode):
    envs = gym.make_vec(ID, num_envs=2, autoreset_mode=mode)
    assert envs.metadata["autoreset_mode"] == gym.vector.AutoresetMode(mode)
    envs.reset(seed=0)
    assert envs.step([0, 1])[0].shape == (2, 3, 64, 64)
    envs.close()
    with pytest.raises(ValueError, match="GanAtari autoreset_mode must be one of"):
        gym.make_vec(ID, num_envs=2, autoreset_mode="Later")


@pytest.fixture(scope="module")
def fast_envs():
    envs = gym.make_vec(ID, num_envs=2, repeat_action_probability=0.0, flicker=None, scale=None)
    yield envs
    envs.close()


@pytest.mark.parametrize("seed", [-1, 1.5, 2**40, [1, 2, 3], [0, -5], True])
def test_fast_vector_env_refuses_bad_seeds_in_one_line(fast_envs, seed):
    # ale-py took -1 silently (unseeded) and raised multi-line binding errors for the rest
    with pytest.raises(ValueError, match="GanAtari vector env: .*seed") as caught:
        fast_envs.reset(seed=seed)
    assert "\n" not in str(caught.value)


@settings(max_examples=8, deadline=None)
@given(st.integers(0, 2**31 - 2))
def test_an_int_seed_seeds_consecutive_envs(fast_envs, seed):
    first, _ = fast_envs.reset(seed=seed)
    again, _ = fast_envs.reset(seed=[seed, None])  # None: that env unseeded (ale-py's -1)
    np.testing.assert_array_equal(first[0], again[0])
    pair, _ = fast_envs.reset(seed=np.array([seed, seed + 1]))
    np.testing.assert_array_equal(first, pair)


@pytest.mark.parametrize("dtype", [np.int8, np.uint8, np.int16, np.uint32, np.uint64])
def test_fast_vector_env_takes_actions_of_any_integer_dtype(fast_envs, dtype):
    fast_envs.reset(seed=0)
    obs, *_ = fast_envs.step(np.array([1, 2], dtype=dtype))  # an empty AssertionError before
    assert obs.shape == (2, 3, 64, 64)


# --------------------------------------------------------------------------- wrappers
@pytest.mark.parametrize("wrapper", [ResizeFrame, ChannelFirst, ScaleFloat, FlickerFilter])
def test_frames_of_zero_pixels_are_refused_by_name(wrapper):
    # FlickerFilter: "zero-size array to reduction operation minimum"; ResizeFrame named
    # AreaResizer; ChannelFirst and ScaleFloat took them
    env = FrameEnv([np.zeros((0, 12, 3), np.uint8)])
    with pytest.raises(ValueError, match=f"^{wrapper.__name__} requires frames of at least one "
                                         "pixel, got shape \\(0, 12, 3\\)"):
        wrapper(env)


# --------------------------------------------------------------------------- RecordRollouts
@pytest.fixture
def cartpole():
    env = gym.make("CartPole-v1")
    yield env
    env.close()


def test_record_rollouts_overwrite_takes_only_a_bool(tmp_path, cartpole):
    path = tmp_path / "kept.h5"
    with RolloutWriter(path, cartpole.observation_space, cartpole.action_space) as writer:
        writer.add_episode(np.zeros((3, 4), np.float32), [0, 1], [1.0, 1.0])
    with pytest.raises(TypeError, match="overwrite must be True or False, got 'no'"):
        RecordRollouts(cartpole, path, overwrite="no", blank_frames=False)  # replaced it before
    from gan_envs.datasets import RolloutReader
    with RolloutReader(path) as reader:
        assert reader.num_episodes == 1


@pytest.mark.parametrize("kwargs, error, match", [
    ({"overwrite": True, "resume": True}, DatasetError, "not both"),
    ({"blank_frames": "yes"}, TypeError, "blank_frames must be True, False or None"),
    ({"policy": 3}, TypeError, "policy must be a string"),
    ({"blank_key": 3}, TypeError, "blank_key must be a string"),
    ({"chunk_frames": 0}, DatasetError, r"chunk_frames must be in \[1, 65536\]"),
    ({"seed": "x"}, DatasetError, "seed must be a whole number"),
    ({"compression_level": 12}, DatasetError, "compression_level"),
    ({"fsync": "yes"}, TypeError, "fsync must be True or False"),
    ({"metadata": [1]}, DatasetError, "metadata must be a dict"),
])
def test_record_rollouts_refuses_bad_arguments_at_construction(tmp_path, cartpole, kwargs,
                                                               error, match):
    # blank_frames=None opens the writer at the first reset(): these passed construction before
    with pytest.raises(error, match=match):
        RecordRollouts(cartpole, tmp_path / "new.h5", **kwargs)
    assert not (tmp_path / "new.h5").exists()


@pytest.mark.parametrize("path", [b"/tmp/x.h5", 3])
def test_record_rollouts_path_type(tmp_path, cartpole, path):
    with pytest.raises(TypeError, match="RecordRollouts path must be a str or pathlib.Path"):
        RecordRollouts(cartpole, path)


def test_record_rollouts_spec_stays_json_with_numpy_options(tmp_path, cartpole):
    env = RecordRollouts(cartpole, tmp_path / "np.h5", seed=np.int64(7),
                         metadata={"lr": np.float32(0.5)})
    spec = EnvSpec.from_json(env.spec.to_json())  # "int64 is not JSON serializable" before
    assert spec.additional_wrappers[-1].kwargs["metadata"] == {"lr": 0.5}
    rebuilt = gym.make(spec)
    assert isinstance(rebuilt, RecordRollouts)
    rebuilt.close()
    env.close()


# --------------------------------------------------------------------------- torch adapters
@pytest.fixture(scope="module")
def frames_file(tmp_path_factory):
    path = tmp_path_factory.mktemp("sweep") / "frames.h5"
    with RolloutWriter(path, Box(0, 255, (3, 4, 4), np.uint8), Discrete(2), chunk_frames=8) as w:
        for n in (10, 5):
            obs = np.zeros((n + 1, 3, 4, 4), np.uint8)
            obs[:, 0, 0, 0] = np.arange(n + 1) * 20
            w.add_episode(obs, [0] * n, [0.0] * n)
    return path


@pytest.mark.parametrize("value_range", [(0, math.inf), (-math.inf, 1), (0, 1, 2), None, "ab"])
def test_frame_dataset_value_range_must_be_a_finite_pair(frames_file, value_range):
    with pytest.raises(DatasetError, match="value_range must be \\(low, high\\), finite"):
        FrameDataset(frames_file, value_range=value_range)


@settings(max_examples=40, deadline=None)
@given(position=st.one_of(st.integers(-40, 40), st.floats(-20, 20), st.text(max_size=2)))
def test_frame_dataset_positions_are_whole_numbers_in_range(frames_file, position):
    data = FrameDataset(frames_file)
    n = len(data)
    if isinstance(position, int) and -n <= position < n:
        expected = data.__getitems__([position % n])[0]
        assert torch.equal(data[position], expected)
    else:  # 1.5 read frame 1 before; 'a' and n gave NumPy's words
        with pytest.raises(IndexError, match="frame position"):
            data[position]


@pytest.mark.parametrize("kwargs, match", [({"chunks_per_batch": 1.5}, "chunks_per_batch"),
                                           ({"chunks_per_batch": 0}, "chunks_per_batch"),
                                           ({"seed": -1}, "seed must be >= 0"),
                                           ({"seed": "a"}, "seed must be a whole number")])
def test_chunk_batch_sampler_checks_arguments_when_built(frames_file, kwargs, match):
    with pytest.raises(DatasetError, match=match):
        ChunkBatchSampler(FrameDataset(frames_file), 4, **kwargs)  # at iteration, or never


def test_frame_loader_num_workers_must_be_whole(frames_file):
    with pytest.raises(DatasetError, match="num_workers must be a whole number"):
        frame_loader(frames_file, 4, num_workers=1.5)
