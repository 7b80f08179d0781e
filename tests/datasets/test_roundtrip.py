"""Random spaces and episodes survive write -> read unchanged, across a resume."""

from __future__ import annotations

import numpy as np
from gymnasium.spaces import Box, Discrete, MultiBinary, MultiDiscrete
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from gan_envs.datasets import RolloutReader, RolloutWriter

DTYPES = [np.uint8, np.int16, np.int64, np.float32, np.float64]


@st.composite
def spaces(draw):
    kind = draw(st.sampled_from(["box", "discrete", "multidiscrete", "multibinary"]))
    if kind == "discrete":
        return Discrete(draw(st.integers(1, 9)), start=draw(st.integers(-3, 3)))
    if kind == "multidiscrete":
        return MultiDiscrete(draw(st.lists(st.integers(1, 5), min_size=1, max_size=3)))
    if kind == "multibinary":
        return MultiBinary(draw(st.integers(1, 4)))
    dtype = draw(st.sampled_from(DTYPES))
    shape = tuple(draw(st.lists(st.integers(1, 5), min_size=0, max_size=3)))
    if np.dtype(dtype).kind == "f":
        return Box(-2.0, 3.0, shape, dtype)
    info = np.iinfo(dtype)
    return Box(max(info.min, -100), min(info.max, 200), shape, dtype)


def _episode(obs_space, act_space, rng, n):
    obs_space.seed(int(rng.integers(2**31)))
    act_space.seed(int(rng.integers(2**31)))
    end = rng.integers(3)
    return {
        "observations": np.stack([obs_space.sample() for _ in range(n + 1)]),
        "actions": np.stack([np.asarray(act_space.sample()) for _ in range(n)]),
        "rewards": rng.normal(size=n).astype(np.float32),
        "terminations": (np.arange(n) == n - 1) & (end == 1),
        "truncations": (np.arange(n) == n - 1) & (end == 2),
        "blank_frame": rng.random(n + 1) < 0.3,
    }


def _write(writer, ep, stepwise, k):
    if not stepwise:
        writer.add_episode(ep["observations"], ep["actions"], ep["rewards"], ep["terminations"],
                           ep["truncations"], env_id=f"E{k % 2}", seed=k, blank=ep["blank_frame"])
        return
    writer.begin_episode(ep["observations"][0], env_id=f"E{k % 2}", seed=k,
                         blank=ep["blank_frame"][0])
    for t in range(len(ep["actions"])):
        writer.add_step(ep["actions"][t], ep["rewards"][t], ep["observations"][t + 1],
                        ep["terminations"][t], ep["truncations"][t],
                        blank=ep["blank_frame"][t + 1])
    writer.commit_episode()


@settings(max_examples=25, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(obs_space=spaces(), act_space=spaces(), lengths=st.lists(st.integers(1, 40), min_size=1,
       max_size=5), chunk=st.sampled_from([1, 3, 8, 32]), compression=st.sampled_from(
       [None, "gzip", "lzf"]), split=st.integers(0, 5), seed=st.integers(0, 2**16))
def test_write_then_read_is_identical(tmp_path_factory, obs_space, act_space, lengths, chunk,
                                      compression, split, seed):
    path = tmp_path_factory.mktemp("rt") / "data.h5"
    rng = np.random.default_rng(seed)
    episodes = [_episode(obs_space, act_space, rng, n) for n in lengths]
    split = min(split, len(episodes))
    options = {"env_ids": ["E0", "E1"], "chunk_frames": chunk, "compression": compression,
               "blank_frames": True}
    with RolloutWriter(path, obs_space, act_space, **options) as writer:
        for k in range(split):
            _write(writer, episodes[k], stepwise=bool(k % 2), k=k)
    with RolloutWriter(path, obs_space, act_space, resume=True, env_ids=["E0"]) as writer:
        assert writer.num_episodes == split
        for k in range(split, len(episodes)):
            _write(writer, episodes[k], stepwise=bool(k % 2), k=k)
    with RolloutReader(path) as reader:
        assert reader.observation_space == obs_space and reader.action_space == act_space
        assert reader.num_episodes == len(episodes)
        assert reader.num_steps == sum(lengths)
        assert reader.num_frames == sum(lengths) + len(lengths)
        for k, want in enumerate(episodes):
            got = reader.episode(k)
            assert got["observations"].dtype == want["observations"].dtype
            for name, array in want.items():
                np.testing.assert_array_equal(got[name], array, err_msg=name)
            info = reader.episode_info(k)
            assert (info["seed"], info["env_id"], info["length"]) == (k, f"E{k % 2}", lengths[k])
            assert np.isclose(info["return"], want["rewards"].astype(np.float64).sum())
            assert info["terminated"] == bool(want["terminations"][-1])
        all_obs = np.concatenate([ep["observations"] for ep in episodes])
        order = rng.permutation(len(all_obs))
        np.testing.assert_array_equal(reader.frames(order), all_obs[order])
    with RolloutReader(path, in_memory=True) as reader:
        np.testing.assert_array_equal(reader.frames(order), all_obs[order])
        np.testing.assert_array_equal(reader.episode(0)["actions"], episodes[0]["actions"])
