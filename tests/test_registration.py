"""GanAtari/<Game>-v0 ids: registration, identity with ALE v5, spec round trips, make_vec."""

from __future__ import annotations

import subprocess
import sys
import warnings

import cv2
import gymnasium as gym
import numpy as np
import pytest
from gymnasium.envs.registration import EnvSpec
from gymnasium.utils.env_checker import check_env

from gan_envs.registration import (
    UnknownEnvironmentError,
    gan_atari_ids,
    register_gan_atari_envs,
    resolve_env_id,
)
from gan_envs.wrappers import ByteScaler

GAMES = ["Breakout", "Pong", "AirRaid", "TicTacToe3D"]


def ale_v5_names() -> set[str]:
    return {s.name for s in gym.registry.values() if s.namespace == "ALE" and s.version == 5}


def test_one_id_per_ale_v5_game():
    ids = gan_atari_ids()
    assert {i.split("/")[1][: -len("-v0")] for i in ids} == ale_v5_names()
    assert len(ids) == len(ale_v5_names()) >= 100
    assert register_gan_atari_envs() and gan_atari_ids() == ids  # idempotent


@pytest.mark.parametrize("game", GAMES)
def test_default_stack(game):
    env = gym.make(f"GanAtari/{game}-v0")
    assert env.observation_space == gym.spaces.Box(-1.0, 1.0, (3, 64, 64), np.float32)
    layers, layer = [], env
    while layer is not layer.unwrapped:
        layers.append(type(layer).__name__)
        layer = layer.env
    assert layers[-4:] == ["FlickerFilter", "ScaleFloat", "ChannelFirst", "ResizeFrame"]
    assert env.spec.additional_wrappers == ()  # the id's keywords describe the stack
    assert env.unwrapped.spec.kwargs["repeat_action_probability"] == 0.25
    assert env.unwrapped.spec.kwargs["frameskip"] == 4
    obs, info = env.reset(seed=0)
    assert obs in env.observation_space and "blank_frame" in info
    for _ in range(20):
        obs, reward, terminated, truncated, info = env.step(env.action_space.sample())
        assert obs in env.observation_space
    env.close()


@pytest.mark.parametrize("game", ["Breakout", "AirRaid"])
def test_frames_equal_opencv_resize_of_ale_v5(game):
    """Same seed, same actions: our frames are exactly the scaled INTER_AREA of ALE v5's."""
    ours = gym.make(f"GanAtari/{game}-v0", flicker=None)
    raw = gym.make(f"ALE/{game}-v5")
    scale = ByteScaler(-1.0, 1.0)

    def expected(frame):
        return scale(cv2.resize(frame, (64, 64), interpolation=cv2.INTER_AREA).transpose(2, 0, 1))

    obs, _ = ours.reset(seed=7)
    raw_obs, _ = raw.reset(seed=7)
    np.testing.assert_array_equal(obs, expected(raw_obs))
    rng = np.random.default_rng(0)
    for _ in range(60):
        action = int(rng.integers(ours.action_space.n))
        obs, reward, terminated, truncated, _ = ours.step(action)
        raw_obs, raw_reward, raw_terminated, raw_truncated, _ = raw.step(action)
        np.testing.assert_array_equal(obs, expected(raw_obs))
        assert (reward, terminated, truncated) == (raw_reward, raw_terminated, raw_truncated)


def test_tictactoe3d_blanks_and_hold_removes_them():
    flagged = gym.make("GanAtari/TicTacToe3D-v0", flicker="flag")
    held = gym.make("GanAtari/TicTacToe3D-v0", flicker="hold")
    is_blank = held.get_wrapper_attr("is_blank")
    blank_flags = [flagged.reset(seed=0)[1]["blank_frame"]]
    obs, info = held.reset(seed=0)
    seen_good = not info["blank_frame"]
    rng = np.random.default_rng(0)
    for _ in range(300):
        action = int(rng.integers(flagged.action_space.n))
        _, _, terminated, truncated, info = flagged.step(action)
        blank_flags.append(info["blank_frame"])
        obs, _, _, _, held_info = held.step(action)
        assert held_info["blank_frame"] == info["blank_frame"]  # same game, same frames
        seen_good |= not held_info["blank_frame"]
        if seen_good:  # hold never emits a blank frame once a good one was seen
            assert not is_blank(obs)
        if terminated or truncated:
            break
    fraction = float(np.mean(blank_flags))
    assert 0.15 < fraction < 0.6, fraction  # ~25-38 % in ale-py 0.12
    assert held.get_wrapper_attr("blank_frames") == sum(blank_flags)
    assert held.get_wrapper_attr("frames_seen") == len(blank_flags)


@pytest.mark.parametrize(
    "kwargs",
    [{}, {"size": [32, 48], "scale": [0, 1], "flicker": "skip", "obs_type": "grayscale"},
     {"size": (48, 40), "scale": None, "flicker": None, "frameskip": 3,
      "repeat_action_probability": 0.0}],
)
def test_spec_round_trips_rebuild_identical_envs(kwargs):
    env = gym.make("GanAtari/Pong-v0", **kwargs)
    rebuilt = gym.make(env.spec)
    from_json = gym.make(EnvSpec.from_json(env.spec.to_json()))
    assert rebuilt.observation_space == env.observation_space == from_json.observation_space
    results = []
    for e in (env, rebuilt, from_json):
        e.action_space.seed(3)
        frames = [e.reset(seed=11)[0]]
        frames += [e.step(e.action_space.sample())[0] for _ in range(25)]
        results.append(np.stack(frames))
        e.close()
    np.testing.assert_array_equal(results[0], results[1])
    np.testing.assert_array_equal(results[0], results[2])


def test_a_made_env_spec_takes_changed_keywords_and_make_vec():
    env = gym.make("GanAtari/Pong-v0")
    small = gym.make(env.spec, size=32, flicker=None)
    assert small.observation_space.shape == (3, 32, 32)
    assert "FlickerFilter" not in str(small)
    envs = gym.make_vec(env.spec, num_envs=2)
    assert envs.single_observation_space == env.observation_space
    envs.close()
    clipped = gym.wrappers.ClipReward(env, 0.0, 1.0)  # a user's wrapper is recorded, replayed
    assert [w.name for w in clipped.spec.additional_wrappers] == ["ClipReward"]
    rebuilt = gym.make(EnvSpec.from_json(clipped.spec.to_json()))
    assert str(rebuilt) == str(clipped)
    for e in (env, small, clipped, rebuilt):
        e.close()


def test_module_prefixed_id_works_in_a_fresh_interpreter():
    code = (
        "import sys, gymnasium as gym\n"
        "assert 'gan_envs' not in sys.modules\n"
        "env = gym.make('gan_envs:GanAtari/Pong-v0')\n"
        "obs, _ = env.reset(seed=0)\n"
        "print(obs.shape, obs.dtype)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert "(3, 64, 64) float32" in out.stdout


def test_import_is_cheap():
    code = (
        "import sys, ale_py.env, ale_py.vector_env\n"
        "made = []\n"
        "for cls in (ale_py.env.AtariEnv, ale_py.vector_env.AtariVectorEnv):\n"
        "    original = cls.__init__\n"
        "    cls.__init__ = (lambda self, *a, _o=original, **k:\n"
        "                    (made.append(a), _o(self, *a, **k))[1])\n"
        "import gan_envs\n"
        "assert 'torch' not in sys.modules, 'torch imported'\n"
        "assert 'h5py' not in sys.modules, 'h5py imported'\n"
        "assert not made, f'emulators created: {made}'\n"
        "print(len([i for i in __import__('gymnasium').registry if i.startswith('GanAtari/')]))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert int(out.stdout.strip()) >= 100


def test_env_checker_passes():
    env = gym.make("GanAtari/Breakout-v0")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        check_env(env.unwrapped, skip_render_check=True)
    assert [str(w.message) for w in caught] == []
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        check_env(env, skip_render_check=True)
    messages = [str(w.message) for w in caught]
    assert all("different from the unwrapped version" in m for m in messages), messages
    env.close()


@pytest.mark.parametrize(
    "kwargs, error, match",
    [({"size": 0}, ValueError, "must be positive"),
     ({"size": "big"}, TypeError, "int or a"),
     ({"scale": (1, 0)}, ValueError, "low < high"),
     ({"scale": 5}, TypeError, "pair"),
     ({"flicker": "blink"}, ValueError, "flicker must be one of"),
     ({"obs_type": "ram"}, ValueError, "obs_type must be 'rgb' or 'grayscale'")],
)
def test_bad_keyword_arguments(kwargs, error, match):
    with pytest.raises(error, match=match):
        gym.make("GanAtari/Breakout-v0", **kwargs)


def test_unknown_ids_suggest_close_matches():
    assert resolve_env_id("GanAtari/Pong-v0") == "GanAtari/Pong-v0"
    assert resolve_env_id("gan_envs:GanAtari/Pong-v0") == "GanAtari/Pong-v0"
    with pytest.raises(UnknownEnvironmentError, match="did you mean GanAtari/Breakout-v0"):
        resolve_env_id("GanAtari/Breakot-v0")
    with pytest.raises(UnknownEnvironmentError, match="gan-envs list"):
        resolve_env_id("Nothing/LikeThis-v9")
    with pytest.raises(UnknownEnvironmentError, match="cannot import module"):
        resolve_env_id("no_such_module:GanAtari/Pong-v0")


# --------------------------------------------------------------------------- make_vec
def test_make_vec_takes_the_fast_path():
    from ale_py.vector_env import AtariVectorEnv

    envs = gym.make_vec("GanAtari/Breakout-v0", num_envs=8)
    single = gym.make("GanAtari/Breakout-v0")
    assert isinstance(envs.unwrapped, AtariVectorEnv)
    assert envs.single_observation_space == single.observation_space
    assert envs.observation_space.shape == (8, 3, 64, 64)
    obs, info = envs.reset(seed=0)
    assert obs in envs.observation_space and info["blank_frame"].shape == (8,)
    for _ in range(10):
        obs, rewards, terminations, truncations, info = envs.step(envs.action_space.sample())
        assert obs in envs.observation_space
    envs.close()


@pytest.mark.parametrize("obs_type", ["rgb", "grayscale"])
@pytest.mark.parametrize("game", ["Breakout", "Pong"])
def test_make_vec_frames_equal_single_env_frames(game, obs_type):
    """Without sticky actions the emulator is deterministic: same actions, same states."""
    kwargs = dict(repeat_action_probability=0.0, obs_type=obs_type, size=(48, 40))
    envs = gym.make_vec(f"GanAtari/{game}-v0", num_envs=2, **kwargs)
    single = gym.make(f"GanAtari/{game}-v0", **kwargs)
    vec_obs, _ = envs.reset(seed=1)
    obs, _ = single.reset(seed=2)
    np.testing.assert_array_equal(vec_obs[0], obs)
    rng = np.random.default_rng(0)
    for _ in range(60):
        action = int(rng.integers(single.action_space.n))
        vec_obs, *_ = envs.step(np.array([action, action]))
        obs, *_ = single.step(action)
        np.testing.assert_array_equal(vec_obs[0], obs)
    envs.close()


def test_make_vec_falls_back_for_what_the_fast_path_cannot_do():
    envs = gym.make_vec("GanAtari/Pong-v0", num_envs=2, flicker="skip", size=32)
    assert isinstance(envs.unwrapped, gym.vector.SyncVectorEnv)
    assert envs.single_observation_space.shape == (3, 32, 32)
    obs, _ = envs.reset(seed=0)
    assert obs in envs.observation_space
    envs.close()


def test_fast_vector_stack_steps_asynchronously_with_the_same_results():
    from gan_envs.wrappers import supports_send_recv

    kwargs = dict(num_envs=2, repeat_action_probability=0.0)
    stepped = gym.make_vec("GanAtari/Breakout-v0", **kwargs)
    sent = gym.make_vec("GanAtari/Breakout-v0", **kwargs)
    assert supports_send_recv(sent)
    assert not supports_send_recv(gym.make_vec("CartPole-v1", num_envs=2,
                                               vectorization_mode="sync"))
    stepped.reset(seed=0)
    sent.reset(seed=0)
    rng = np.random.default_rng(0)
    for _ in range(30):
        actions = rng.integers(0, 4, 2)
        expected = stepped.step(actions)
        sent.send(actions)
        got = sent.recv()
        for a, b in zip(expected[:4], got[:4], strict=True):
            np.testing.assert_array_equal(a, b)
        np.testing.assert_array_equal(expected[4]["blank_frame"], got[4]["blank_frame"])
    stepped.close()
    sent.close()
