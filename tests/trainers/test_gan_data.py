"""The frame sources: in-memory arrays and live environments."""

from __future__ import annotations

import numpy as np
import pytest

from gan_envs.trainers.data import ArrayFrameSource, EnvFrameSource, FrameSource


def test_array_source_draws_without_replacement():
    source = ArrayFrameSource(np.arange(20).reshape(20, 1))
    assert isinstance(source, FrameSource)
    frames = source.sample_frames(20, np.random.default_rng(0))
    assert sorted(frames[:, 0].tolist()) == list(range(20))
    assert source.sample_frames(30, np.random.default_rng(0)).shape == (30, 1)


def test_array_source_checks_its_inputs():
    with pytest.raises(ValueError, match="env_index"):
        ArrayFrameSource(np.zeros((4, 2)), np.zeros(3, int))
    with pytest.raises(ValueError, match="one per env id"):
        ArrayFrameSource(np.zeros((4, 2)), np.array([0, 1, 2, 0]), ["a", "b"])
    with pytest.raises(ValueError, match="no env_index"):
        ArrayFrameSource(np.zeros((4, 2))).sample_frames_with_env(2, np.random.default_rng(0))


def test_env_source_is_seeded_and_skips_blank_frames(atari32):
    frames, env = atari32.frames, atari32.env_index
    assert frames.shape == (600, 3, 32, 32) and frames.dtype == np.uint8
    assert set(env.tolist()) == {0, 1} and (frames.reshape(600, -1).mean(1) > 0.01).all()
    a = EnvFrameSource(["ALE/Pong-v5"], size=32, seed=3)
    b = EnvFrameSource(["ALE/Pong-v5"], size=32, seed=3)
    assert np.array_equal(a.sample_frames(20, np.random.default_rng(1)),
                          b.sample_frames(20, np.random.default_rng(1)))
    a.close()
    b.close()


def test_env_source_names_a_bad_env():
    with pytest.raises(ValueError, match=r"unknown environment 'ALE/Breakot-v5'; did you mean "
                       r"ALE/Breakout-v5"):  # was Gymnasium's text, without the close ids
        EnvFrameSource(["ALE/Breakot-v5"])


def test_env_source_takes_one_id_as_a_string_and_checks_size_and_seed():
    """A string was refused ("needs a list"), unlike collect and preview; size 0 was the
    GanAtari wrapper's message, and for other ids OpenCV's."""
    one = EnvFrameSource("GanAtari/Pong-v0", size=16)
    assert one.env_ids == ["GanAtari/Pong-v0"] and one.frame_shape == (3, 16, 16)
    one.close()
    for keyword, value, message in [("size", 0, r"EnvFrameSource's size must be in \[1, 1024\]"),
                                    ("size", 2.5, "EnvFrameSource's size must be a whole"),
                                    ("seed", -1, "EnvFrameSource's seed must be in")]:
        with pytest.raises(ValueError, match=message):
            EnvFrameSource(["ALE/Pong-v5"], **{keyword: value})
    with pytest.raises(ValueError, match="env ids such as 'GanAtari/Pong-v0'"):
        EnvFrameSource([])


def test_a_dataset_without_episodes_says_so(tmp_path):
    """It said "no frames pass the filters {'env_ids': [...], 'exclude_blank': True}"."""
    import gymnasium as gym

    from gan_envs.datasets import DatasetError, RolloutWriter
    from gan_envs.trainers.data import DatasetFrameSource

    path = tmp_path / "empty.h5"
    RolloutWriter(path, gym.spaces.Box(0, 255, (3, 8, 8), np.uint8), gym.spaces.Discrete(2),
                  env_ids=["A-v0"]).close()
    with pytest.raises(DatasetError, match=r"empty.h5: holds no committed episodes; collect "
                       r"more \(gan-envs collect ... --resume\) and check it with gan-envs info$"):
        DatasetFrameSource(path)
