"""Preview images (gan_envs.preview), called as library functions."""

from __future__ import annotations

from pathlib import Path

import gymnasium as gym
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from gan_envs.datasets import RolloutWriter
from gan_envs.preview import dataset_preview, env_preview, frame_to_rgb


def test_one_env_id_as_a_string_is_one_row():
    as_string = env_preview("GanAtari/Pong-v0", snapshots=1, steps_between=1)
    as_list = env_preview(["GanAtari/Pong-v0"], snapshots=1, steps_between=1)
    np.testing.assert_array_equal(as_string, as_list)


def test_a_dataset_without_env_ids_gets_one_row(tmp_path: Path):
    """It said "holds no frames to preview" while `info` listed them as "(no env id)"."""
    one = dataset_preview(_small_dataset(tmp_path / "a.h5", ("A-v0",)), per_env=3, upscale=1)
    anonymous = dataset_preview(_small_dataset(tmp_path / "n.h5", ()), per_env=3, upscale=1)
    assert anonymous.shape[0] == one.shape[0] and anonymous.max() > 0  # (label widths differ)


@pytest.mark.parametrize(("keyword", "value", "message"), [
    ("snapshots", 0, "env_preview's snapshots must be in [1, 64], got 0"),
    ("snapshots", 2.5, "env_preview's snapshots must be a whole number, got 2.5"),
    ("steps_between", -1, "env_preview's steps_between must be in [0, 10000], got -1"),
    ("steps_between", 10**11, "env_preview's steps_between must be in [0, 10000], got "
                              "100000000000"),
    ("height", 0, "env_preview's height must be in [8, 1024], got 0"),
    ("height", 10**6, "env_preview's height must be in [8, 1024], got 1000000"),
    ("seed", -1, "env_preview's seed must be in [0, 9223372036854775807], got -1"),
])
def test_env_preview_bad_arguments_are_named(keyword, value, message):
    with pytest.raises(ValueError) as error:
        env_preview(["GanAtari/Pong-v0"], **{keyword: value})
    assert str(error.value) == message


def test_env_preview_without_ids_is_refused():
    with pytest.raises(ValueError, match="at least one environment id"):
        env_preview([])


def test_integer_frames_are_read_as_0_to_255():
    """An int64 frame (no finite space) was mapped from [-1, 1]: everything above 1 was white."""
    frame = np.array([[0, 100], [200, 255]], dtype=np.int64)
    assert frame_to_rgb(frame)[:, :, 0].tolist() == [[0, 100], [200, 255]]
    space = gym.spaces.Box(0, 1000, (2, 2), np.int64)
    assert frame_to_rgb(np.array([[0, 500], [1000, 0]]), space)[:, :, 0].tolist() \
        == [[0, 128], [255, 0]]


def test_bool_frames_are_black_and_white():
    assert frame_to_rgb(np.array([[True, False]]))[0, :, 0].tolist() == [255, 0]


def test_unshowable_frames_are_one_line():
    with pytest.raises(ValueError, match="of dtype <U1"):
        frame_to_rgb(np.array([["a"]]))
    with pytest.raises(ValueError, match=r"shape \(2, 2, 5\)"):
        frame_to_rgb(np.zeros((2, 2, 5), np.uint8))


@settings(max_examples=40, deadline=None)
@given(hnp.arrays(np.float32, st.tuples(st.sampled_from([1, 3]), st.integers(1, 6),
                                        st.integers(4, 6)),
                  elements=st.floats(-1, 1, width=32)))
def test_float_frames_map_minus_one_to_black_and_one_to_white(frame):
    image = frame_to_rgb(frame)
    assert image.dtype == np.uint8 and image.shape == (*frame.shape[1:], 3)
    want = np.rint((frame.astype(np.float64) + 1) * 127.5).astype(np.uint8)
    np.testing.assert_array_equal(image[:, :, 0], want[0])


def _small_dataset(path: Path, env_ids: tuple[str, ...] = ("A-v0", "B-v0")) -> Path:
    """One 5-step episode per env id (one without an id where ``env_ids`` is empty)."""
    space = gym.spaces.Box(0, 255, (3, 8, 8), np.uint8)
    rng = np.random.default_rng(0)
    with RolloutWriter(path, space, gym.spaces.Discrete(2), env_ids=list(env_ids)) as writer:
        for env_id in env_ids or (None,):
            writer.add_episode(rng.integers(0, 256, (6, 3, 8, 8), dtype=np.uint8),
                               np.zeros(5, np.int64), np.zeros(5, np.float32),
                               np.arange(5) == 4, env_id=env_id)
    return path


def test_dataset_preview_has_a_row_per_env(tmp_path: Path):
    image = dataset_preview(_small_dataset(tmp_path / "d.h5"), per_env=3, upscale=1)
    assert image.dtype == np.uint8 and image.shape[2] == 3
    twice = dataset_preview(tmp_path / "d.h5", per_env=3, upscale=2)
    assert twice.shape[0] > image.shape[0]


@pytest.mark.parametrize(("keyword", "value", "message"), [
    ("per_env", 0, "dataset_preview's per_env must be in [1, 1024], got 0"),
    ("per_env", "16", "dataset_preview's per_env must be a whole number, got '16'"),
    ("upscale", 0, "dataset_preview's upscale must be in [1, 16], got 0"),
    ("seed", 1.5, "dataset_preview's seed must be a whole number, got 1.5"),
])
def test_dataset_preview_bad_arguments_are_named(tmp_path: Path, keyword, value, message):
    path = _small_dataset(tmp_path / "d.h5")
    with pytest.raises(ValueError) as error:
        dataset_preview(path, **{keyword: value})
    assert str(error.value) == message
