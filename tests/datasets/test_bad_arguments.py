"""Arguments of the writer, the reader, the torch adapters and RecordRollouts: a bad one is a
one-line error at the call that passed it, never a silently wrong file or result."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest
from dataset_helpers import ACTION_SPACE, FRAME_SPACE, make_episode, write_noise_file
from gymnasium.spaces import Box, Dict, Discrete

from gan_envs.datasets import DatasetError, RecordRollouts, RolloutReader, RolloutWriter
from gan_envs.datasets.torch import ChunkBatchSampler, FrameDataset, WindowDataset


def _one_line(err: pytest.ExceptionInfo) -> str:
    text = str(err.value)
    assert "\n" not in text, text
    return text


@pytest.fixture
def written(tmp_path):
    """Three noise episodes (chunk 8)."""
    return write_noise_file(tmp_path / "data.h5", 3)


@pytest.mark.parametrize(("options", "match"), [
    ({"seed": np.int64(3), "metadata": {"lr": np.float32(0.5), "sizes": np.arange(2)}}, None),
    ({"chunk_frames": np.int64(16), "compression_level": np.int32(4)}, None),
    ({"env_ids": "Noise-v0"}, None),  # one id, not its letters
    ({"seed": "abc"}, "seed must be a whole number, got 'abc'"),
    ({"seed": 1.5}, "seed must be a whole number"),
    ({"seed": 2**63}, r"seed must be in \[0, 9223372036854775807\]"),
    ({"policy": None}, "policy must be a string, got None"),
    ({"command": ["python", "x.py"]}, "command must be a string"),
    ({"metadata": "x"}, "metadata must be a dict"),
    ({"metadata": {"lr": float("nan")}}, "metadata must be JSON data .* it holds NaN"),
    ({"metadata": {"f": object()}}, "metadata must be JSON data .* it holds object"),
    ({"env_ids": [1, 2]}, "env_ids must be env id strings"),
    ({"chunk_frames": True}, "chunk_frames must be a whole number, got True"),
    ({"chunk_frames": 2**40}, r"chunk_frames must be in \[1, 65536\]"),
    ({"chunk_frames": 65_536, "observation_space": Box(0, 255, (3, 210, 160, 64), np.uint8)},
     "over HDF5's 4 GiB; pass a smaller chunk_frames"),
    ({"compression_level": None}, "compression_level must be a whole number, got None"),
    ({"compression_level": 2.5}, "compression_level must be a whole number"),
    ({"compression_level": 10}, r"compression_level must be in \[0, 9\], got 10"),
])
def test_writer_arguments(tmp_path, options, match):
    path = tmp_path / "w.h5"
    spaces = {"observation_space": options.pop("observation_space", FRAME_SPACE),
              "action_space": ACTION_SPACE}
    if match is None:
        with RolloutWriter(path, **spaces, **options) as writer:
            ep = make_episode(0)
            writer.add_episode(ep["observations"], ep["actions"], ep["rewards"])
        with RolloutReader(path) as reader:
            assert reader.num_episodes == 1
            if "env_ids" in options:
                assert reader.env_ids == ["Noise-v0"]
            if "metadata" in options:
                assert reader.metadata["user_metadata"] == {"lr": 0.5, "sizes": [0, 1]}
                assert reader.metadata["seed"] == 3
        return
    with pytest.raises(DatasetError, match=match) as err:
        RolloutWriter(path, **spaces, **options)
    assert str(path) in _one_line(err) and not path.exists()


def test_values_beyond_float32_are_refused_not_stored_as_infinity(tmp_path):
    vectors = Box(-np.inf, np.inf, (2,), np.float32)
    with RolloutWriter(tmp_path / "f.h5", vectors, ACTION_SPACE) as writer:
        obs = np.zeros((3, 2))
        with pytest.raises(DatasetError, match=r"rewards\[1\] = 1e\+39 is too large for float32"):
            writer.add_episode(obs, [0, 1], [0.0, 1e39])
        with pytest.raises(DatasetError, match=r"observations\[2\] holds a value too large"):
            writer.add_episode(np.array([[0, 0], [1, 1], [1e39, 0]]), [0, 1], [0.0, 1.0])
        writer.begin_episode(obs[0])
        with pytest.raises(DatasetError, match="reward 1e\\+39 is too large for float32"):
            writer.add_step(0, np.float64(1e39), obs[1])
        writer.discard_episode()
        with pytest.raises(DatasetError, match="holds NaN, which Box"):
            writer.add_episode(np.array([[0, 0], [1, np.nan], [1, 0]]), [0, 1], [0.0, 1.0])
        assert writer.num_episodes == 0


def test_resume_cannot_start_blank_flags(written):
    with pytest.raises(DatasetError, match="stores no blank_frame flags, so resuming") as err:
        RolloutWriter(written, resume=True, blank_frames=True)
    _one_line(err)
    with RolloutReader(written) as reader:
        assert reader.num_episodes == 3


def test_reader_indices(written):
    with RolloutReader(written) as reader:
        n = reader.num_frames
        mask = np.zeros(n, bool)
        mask[[1, 5]] = True
        np.testing.assert_array_equal(reader.frames(mask), reader.frames([1, 5]))
        np.testing.assert_array_equal(reader.frames(np.int64(5)), reader.frames([5])[0])
        assert reader.frames([]).shape == (0, *FRAME_SPACE.shape)
        for bad in ([1.7, 2.2], ["1"], [[0, 1], [2, 3]], mask[:-1]):
            with pytest.raises(IndexError) as err:
                reader.frames(bad)
            assert str(written) in _one_line(err)
        with pytest.raises(IndexError, match="out of range"):
            reader.frames([10**12])
        for call, match in [
            (lambda: reader.episode(1.0), "the episode number must be a whole number"),
            (lambda: reader.episode(True), "the episode number must be a whole number"),
            (lambda: reader.read_window(0, 0.5, 2), "start must be a whole number"),
        ]:
            with pytest.raises(TypeError, match=match):
                call()
        for call, match in [
            (lambda: reader.sample_frames(-1), r"sample_frames\(n\) must be >= 0, got -1"),
            (lambda: reader.sample_frames(10.0), r"sample_frames\(n\) must be a whole number"),
            (lambda: reader.sample_windows(2.0, 4), "must be a whole number"),
            (lambda: reader.sample_windows(2, 2.5), "the window length must be a whole number"),
            (lambda: reader.read_window(0, 2, 0), "the window length must be >= 1, got 0"),
            (lambda: reader.sample_windows(2, 3, env_ids=[]), "no committed episodes of"),
        ]:
            with pytest.raises(DatasetError, match=match) as err:
                call()
            assert str(written) in _one_line(err)
        empty = reader.sample_windows(0, 4)
        assert empty["observations"].shape == (0, 5, *FRAME_SPACE.shape)
        assert empty["actions"].shape == (0, 4) and empty["terminations"].dtype == bool
        full = reader.sample_windows(1, 4)
        assert {k: (v.shape[1:], v.dtype) for k, v in full.items()} == {
            k: (v.shape[1:], v.dtype) for k, v in empty.items()}
    for call in (lambda: reader.frames([0]), lambda: reader.sample_frames(2),
                 lambda: reader.compression, reader.refresh, reader.blank_flags):
        with pytest.raises(DatasetError, match="the reader is closed"):
            call()
    with RolloutReader(written, in_memory=True) as reader:
        pass
    with pytest.raises(DatasetError, match="the reader is closed"):
        reader.sample_frames(2)
    with pytest.raises(DatasetError, match="cache_bytes must be a whole number, got None"):
        RolloutReader(written, cache_bytes=None)


def test_torch_adapter_arguments(written):
    with pytest.raises(DatasetError, match="cache_bytes must be a whole number"):
        FrameDataset(written, cache_bytes=None)
    with pytest.raises(DatasetError, match="length must be a whole number, got 2.0"):
        WindowDataset(written, length=2.0)
    with pytest.raises(DatasetError, match=r"no episode has 100000 steps \(the longest has"):
        WindowDataset(written, length=100_000)
    with pytest.raises(DatasetError, match="batch_size must be a whole number, got 2.5"):
        ChunkBatchSampler(FrameDataset(written), 2.5)
    windows = WindowDataset(written, length=2)
    for a, b in zip(windows[-1].values(), windows[len(windows) - 1].values(), strict=True):
        assert np.array_equal(a.numpy(), b.numpy())
    with pytest.raises(IndexError, match="the window number must be in"):
        windows[len(windows)]


class _DictEnv(gym.Env):
    observation_space = Dict({"x": Discrete(2)})
    action_space = Discrete(2)


def test_record_rollouts_checks_its_arguments_at_construction(tmp_path):
    path = tmp_path / "r.h5"
    with pytest.raises(TypeError, match="unknown writer option 'compresion'; did you mean "
                                        "compression?"):
        RecordRollouts(gym.make("CartPole-v1"), path, compresion="lzf")
    with pytest.raises(DatasetError, match="compression must be one of"):
        RecordRollouts(gym.make("CartPole-v1"), path, compression="zstd")
    with pytest.raises(DatasetError, match="cannot record this env's observations"):
        RecordRollouts(_DictEnv(), path)
    with pytest.raises(FileNotFoundError, match="does not exist; create the folder"):
        RecordRollouts(gym.make("CartPole-v1"), tmp_path / "nope" / "r.h5")
    assert list(tmp_path.iterdir()) == []


def test_record_rollouts_says_why_a_step_cannot_be_recorded(tmp_path):
    env = RecordRollouts(gym.make("Pendulum-v1"), tmp_path / "p.h5")
    env.reset(seed=0)
    with pytest.raises(DatasetError, match="outside Box"):
        env.step(np.array([2.5], np.float32))  # Pendulum would clip it; the file refuses it
    with pytest.raises(DatasetError, match="the episode was discarded after a step the file "
                                           "refused; call reset"):
        env.step(np.array([1.5], np.float32))
    env.reset(seed=1)
    truncated = False
    while not truncated:
        _, _, _, truncated, _ = env.step(np.array([0.0], np.float32))
    with pytest.raises(DatasetError, match="after the episode ended \\(it is committed\\)"):
        env.step(np.array([0.0], np.float32))
    env.close()
    with RolloutReader(tmp_path / "p.h5") as reader:
        assert reader.num_episodes == 1


def test_what_the_package_and_torch_pass_still_passes(written, tmp_path):
    """Review of the checks above: 0-d torch integer tensors (a DataLoader's sampler gives
    them) are whole numbers; an env wrapped with an infinite argument still records; resuming
    in auto mode lets the file decide its blank flags."""
    import torch
    from torch.utils.data import DataLoader, SubsetRandomSampler

    with RolloutReader(written) as reader:
        np.testing.assert_array_equal(reader.episode(torch.tensor(1))["actions"],
                                      reader.episode(1)["actions"])
        assert reader.sample_frames(torch.tensor(2), rng=0).shape[0] == 2
    windows = WindowDataset(written, length=2)
    loader = DataLoader(windows, batch_size=3, sampler=SubsetRandomSampler(torch.arange(3)))
    assert next(iter(loader))["actions"].shape == (3, 2)
    clipped = gym.wrappers.ClipReward(gym.make("CartPole-v1"), min_reward=-np.inf, max_reward=1.0)
    path = tmp_path / "clip.h5"
    env = RecordRollouts(clipped, path)
    env.reset(seed=0)
    env.close()
    with RolloutReader(path) as reader:
        assert reader.metadata["wrappers"][-1]["kwargs"]["min_reward"] == "-inf"
    flicker = tmp_path / "flicker.h5"
    for resume in (False, True):  # the first file has no flags: the env adds none on resume
        env = RecordRollouts(gym.make("CartPole-v1"), flicker, resume=resume)
        env.reset(seed=int(resume))
        env.close()
        base = RecordRollouts(_BlankInfoEnv(), flicker, resume=True)
        base.reset(seed=3)
        assert base.writer.blank_frames is False
        base.close()


class _BlankInfoEnv(gym.Env):
    """CartPole's spaces, with FlickerFilter's blank flag in every info."""

    def __init__(self):
        inner = gym.make("CartPole-v1")
        self.observation_space, self.action_space = inner.observation_space, inner.action_space
        self.spec = inner.spec

    def reset(self, *, seed=None, options=None):
        return np.zeros(4, np.float32), {"blank_frame": False}


def test_info_counts_episodes_written_without_env_ids(tmp_path):
    from gan_envs.info import dataset_info, format_info

    path = tmp_path / "anonymous.h5"
    with RolloutWriter(path, FRAME_SPACE, ACTION_SPACE) as writer:  # no env_ids
        for k in range(2):
            ep = make_episode(k)
            writer.add_episode(ep["observations"], ep["actions"], ep["rewards"])
    info = dataset_info(path)
    assert [(e["env_id"], e["episodes"]) for e in info["envs"]] == [(None, 2)]
    assert "(no env id)" in format_info(info)


def test_ragged_observations_and_a_single_action_are_named(tmp_path):
    vectors = Box(0, 255, (2,), np.uint8)
    with RolloutWriter(tmp_path / "r.h5", vectors, ACTION_SPACE) as writer:
        with pytest.raises(DatasetError, match=r"observations: rows of different shapes .* "
                                               r"rows of shape \(2,\)"):
            writer.add_episode([[0, 0], [0]], [0], [0.0])
        with pytest.raises(DatasetError, match="one action per step, got the single value 1"):
            writer.add_episode(np.zeros((2, 2), np.uint8), 1, [0.0])
        assert writer.num_episodes == 0


def test_files_written_one_after_another_have_different_created_stamps(tmp_path):
    """`created` (with the seed) tells two rollout files apart, e.g. for a world-model run that
    refuses another dataset: to the second, two files of one second were the same."""
    from datetime import datetime

    stamps = []
    for name in ("a.h5", "b.h5"):
        with RolloutWriter(tmp_path / name, FRAME_SPACE, ACTION_SPACE, seed=0) as writer:
            ep = make_episode(0)
            writer.add_episode(ep["observations"], ep["actions"], ep["rewards"])
        with RolloutReader(tmp_path / name) as reader:
            stamps.append(reader.metadata["created"])
    first, second = (datetime.fromisoformat(s) for s in stamps)
    assert first < second and first.tzinfo is not None and first.utcoffset().total_seconds() == 0


def test_info_of_a_file_without_frames_gives_no_bytes_per_frame(tmp_path):
    """It printed the whole file's size as bytes per frame (9226 B/frame for 0 frames)."""
    from gan_envs.info import dataset_info, format_info

    path = tmp_path / "empty.h5"
    RolloutWriter(path, FRAME_SPACE, ACTION_SPACE).close()
    info = dataset_info(path)
    assert info["frames"] == 0 and info["bytes_per_frame"] is None
    assert format_info(info).splitlines()[0].endswith(", no frames)")


def test_numpy_strings_and_numpy_keys_are_stored_as_plain_ones(tmp_path):
    """np.str_ policy/command/env ids (a str subclass) passed the checks and failed inside h5py
    ("No conversion path for dtype: dtype('<U6')"); numpy integer metadata keys were refused
    while Python int keys become strings."""
    path = tmp_path / "d.h5"
    with RolloutWriter(path, FRAME_SPACE, ACTION_SPACE, env_ids=[np.str_("Noise-v0")],
                       policy=np.str_("random"), command=np.str_("gan-envs x"),
                       metadata={"counts": {np.int64(0): 3, 1: np.int32(2)}}) as writer:
        ep = make_episode(0)
        writer.add_episode(ep["observations"], ep["actions"], ep["rewards"],
                           env_id="Noise-v0")
    with RolloutReader(path) as reader:
        assert reader.metadata["policy"] == "random" and reader.metadata["command"] == "gan-envs x"
        assert reader.metadata["user_metadata"] == {"counts": {"0": 3, "1": 2}}
        assert reader.env_ids == ["Noise-v0"]
    env = RecordRollouts(gym.make("CartPole-v1"), tmp_path / "r.h5", policy=np.str_("random"))
    env.reset(seed=0)
    env.close()
    with RolloutReader(tmp_path / "r.h5") as reader:
        assert reader.metadata["policy"] == "random"
