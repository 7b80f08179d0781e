"""Review 29 (writer): states a resume or a writer's arguments mishandled."""

from __future__ import annotations

import sys

import numpy as np
import pytest
from dataset_helpers import (
    ACTION_SPACE,
    FRAME_SPACE,
    assert_episode_equal,
    make_episode,
    write_noise_file,
)

from gan_envs.datasets import CorruptDatasetError, DatasetError, RolloutReader, RolloutWriter
from gan_envs.datasets._h5 import open_for_read
from gan_envs.datasets.format import EPISODE_DTYPE
from gan_envs.datasets.journal import chunk_locations, read_records
from gan_envs.datasets.reader import TABLE_HINT


def test_resume_of_a_closed_file_whose_table_row_is_damaged_recovers_every_episode(tmp_path):
    # a flipped bit in a committed row of a cleanly closed file fails the table's checksum:
    # resume=True raised a bare OSError ("Can't synchronously read data") naming no file,
    # though the commit journal holds every episode (a killed file was recovered from it)
    path = write_noise_file(tmp_path / "d.h5", 4)
    f, _ = open_for_read(path)
    offset = chunk_locations(f["episodes"])[2][0]
    f.close()
    with open(path, "r+b") as fh:
        fh.seek(offset + EPISODE_DTYPE.fields["length"][1])
        byte = fh.read(1)[0]
        fh.seek(offset + EPISODE_DTYPE.fields["length"][1])
        fh.write(bytes([byte ^ 1]))
    with pytest.raises(CorruptDatasetError, match=r"cannot read the episode table .*; the "
                       r"file is damaged, RolloutWriter\(path, resume=True\).*rebuilds the "
                       r"table") as err:
        RolloutReader(path)  # it said verify() locates the bad episodes: it cannot read any
    assert err.value.hint == TABLE_HINT
    with RolloutWriter(path, resume=True) as writer:
        assert writer.num_episodes == 4
        ep = make_episode(4)
        writer.add_episode(ep["observations"], ep["actions"], ep["rewards"], ep["terminations"])
    with RolloutReader(path) as reader:
        assert reader.num_episodes == 5
        for k in range(5):
            got = reader.episode(k)
            assert_episode_equal({n: got[n] for n in ("observations", "actions", "rewards")},
                                 {n: make_episode(k)[n]
                                  for n in ("observations", "actions", "rewards")})
    assert len(read_records(path)) == 5


@pytest.mark.parametrize("option", ["policy", "command"])
@pytest.mark.parametrize("text", ["a\x00b", "a\ud800b"])
def test_policy_or_command_hdf5_cannot_store_is_a_one_line_error(tmp_path, option, text):
    # h5py raised ValueError ("VLEN strings do not support embedded NULLs") or
    # UnicodeEncodeError, naming neither the file nor the argument
    path = tmp_path / "d.h5"
    with pytest.raises(DatasetError, match=rf"d\.h5: {option} must"):
        RolloutWriter(path, FRAME_SPACE, ACTION_SPACE, **{option: text})
    assert not path.exists()
    assert not list(tmp_path.iterdir())


def test_a_command_line_with_an_undecodable_byte_is_stored_escaped(tmp_path, monkeypatch):
    # Python decodes a non-UTF-8 byte of argv as a lone surrogate, which HDF5 cannot store:
    # every RolloutWriter of such a run failed with UnicodeEncodeError
    monkeypatch.setattr(sys, "argv", ["collect.py", "--out", "caf\udce9.h5"])
    path = tmp_path / "d.h5"
    with RolloutWriter(path, FRAME_SPACE, ACTION_SPACE) as writer:
        writer.add_episode(np.zeros((2, *FRAME_SPACE.shape), np.uint8), [1], [0.5])
    with RolloutReader(path) as reader:
        assert reader.metadata["command"] == "collect.py --out 'caf\\udce9.h5'"
        assert reader.num_episodes == 1


def test_record_rollouts_refuses_a_policy_hdf5_cannot_store_at_construction(tmp_path):
    # it was refused only at the first reset(), after the env had been built and stepped
    import gymnasium as gym

    from gan_envs.datasets import RecordRollouts

    env = gym.make("CartPole-v1")
    with pytest.raises(DatasetError, match=r"d\.h5: policy must not contain NUL"):
        RecordRollouts(env, tmp_path / "d.h5", policy="ppo\x00")
    env.close()
