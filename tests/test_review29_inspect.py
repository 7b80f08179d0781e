"""`gan-envs list / preview / info / verify` as a demanding user meets them (review 29, F)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import cv2
import gymnasium as gym
import h5py
import numpy as np
import pytest

from gan_envs.cli import main
from gan_envs.datasets import RolloutWriter
from gan_envs.images import make_grid
from gan_envs.info import dataset_info, format_info
from gan_envs.preview import dataset_preview

LONG_ID = "GanAtari/VideoCheckers-v0"


def _dataset(path: Path, env_ids: tuple[str, ...] = ("A-v0",)) -> Path:
    space = gym.spaces.Box(0, 255, (3, 8, 8), np.uint8)
    rng = np.random.default_rng(0)
    with RolloutWriter(path, space, gym.spaces.Discrete(2), env_ids=list(env_ids)) as writer:
        for env_id in env_ids:
            writer.add_episode(rng.integers(0, 256, (3, 3, 8, 8), dtype=np.uint8),
                               np.zeros(2, np.int64), np.zeros(2, np.float32), [False, True],
                               env_id=env_id)
    return path


def _one_line_error(argv: list[str], capsys) -> str:
    capsys.readouterr()
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("gan-envs: "), err
    return err.strip()


def test_upper_case_h5_names_are_datasets(tmp_path: Path, capsys):
    """`preview DATA.H5` was taken for an environment id: "unknown environment 'DATA.H5'"."""
    err = _one_line_error(["preview", str(tmp_path / "DATA.H5"), "--out",
                           str(tmp_path / "p.png")], capsys)
    assert "does not exist" in err and "unknown environment" not in err
    data = _dataset(tmp_path / "d.h5")
    shutil.copy(data, tmp_path / "COPY.HDF5")
    assert main(["preview", str(tmp_path / "COPY.HDF5"), "--per-env", "2", "--out",
                 str(tmp_path / "p.png")]) == 0


@pytest.mark.parametrize("argv", [["preview", "", "--out", "x.png"], ["info", ""],
                                  ["verify", ""]])
def test_an_empty_argument_is_named_not_taken_for_this_folder(argv, capsys):
    """"" is Path("."): it said " is a folder" / ". is a folder"."""
    err = _one_line_error(argv, capsys)
    assert "empty" in err and "folder" not in err


def test_dataset_preview_labels_are_not_cut(tmp_path: Path):
    """A row narrower than its env id cut the label ("GanAtari/Breakout-v" at --per-env 1)."""
    image = dataset_preview(_dataset(tmp_path / "d.h5", (LONG_ID,)), per_env=1, upscale=1)
    (text_width, _), _ = cv2.getTextSize(LONG_ID, cv2.FONT_HERSHEY_SIMPLEX, 0.45, 1)
    assert image.shape[1] >= text_width + 4
    label = image[:18]
    assert not label[:, -2:].any()  # the text ends before the right edge


def test_info_json_is_json_for_foreign_attribute_values(tmp_path: Path, capsys):
    """An array attribute was a TypeError traceback; a NaN seed printed NaN (not JSON)."""
    path = _dataset(tmp_path / "d.h5")
    with h5py.File(path, "a") as file:
        file.attrs["created"] = np.array([1, 2])
        file.attrs["seed"] = np.float64("nan")
    capsys.readouterr()
    assert main(["info", "--json", str(path)]) == 0

    def refuse(constant: str):
        raise AssertionError(f"{constant} is not JSON")

    info = json.loads(capsys.readouterr().out, parse_constant=refuse)
    assert info["created"] == [1, 2] and info["seed"] is None
    assert main(["info", str(path)]) == 0


def test_info_table_stays_aligned_and_names_missing_values(tmp_path: Path):
    long_id = "Vendor/AVeryLongEnvironmentName-v0"  # over the 28-column name field
    info = dataset_info(_dataset(tmp_path / "d.h5", ("A-v0", long_id)))
    lines = format_info(info).splitlines()
    header = next(line for line in lines if line.lstrip().startswith("env "))
    rows = [line for line in lines if line.lstrip().startswith(("A-v0", long_id))]
    end = header.index("episodes") + len("episodes")
    assert len(rows) == 2 and all(row[end - 1] == "1" and row[end] == " " for row in rows)
    assert "policy -, seed -," in format_info(info)  # was "policy , seed None"


@pytest.mark.parametrize("shape", [(0, 3, 4, 4), (2, 3, 0, 4), (2, 1, 4, 0)])
def test_make_grid_of_no_pixels_is_refused(shape):
    """It returned a grid of padding alone: a blank image, with no error."""
    with pytest.raises(ValueError, match="at least one image of at least 1 x 1 pixels"):
        make_grid(np.zeros(shape, np.uint8))


@pytest.mark.parametrize("shape", [(6, 5, 3), (6, 5)])
def test_datasets_of_channel_last_or_grey_frames_are_previewed(tmp_path: Path, shape):
    """`collect ALE/Pong-v5` stores (210, 160, 3) screens: preview called them "not frames"."""
    space = gym.spaces.Box(0, 255, shape, np.uint8)
    frames = np.random.default_rng(0).integers(0, 256, (2, *shape), dtype=np.uint8)
    with RolloutWriter(tmp_path / "d.h5", space, gym.spaces.Discrete(2),
                       env_ids=["A-v0"]) as writer:
        writer.add_episode(frames, [0], [0.0], [True])
    image = dataset_preview(tmp_path / "d.h5", per_env=2, upscale=1)
    cells = [image[20:26, 2 + 7 * i: 7 + 7 * i] for i in range(2)]  # label 18, padding 2
    want = frames if len(shape) == 3 else np.repeat(frames[..., None], 3, axis=3)
    np.testing.assert_array_equal(np.stack(cells), want)


def test_a_preview_of_too_many_pixels_is_refused_before_drawing(tmp_path: Path, monkeypatch,
                                                                capsys):
    """Rows were capped per env, the stack of them not: --per-env 1024 of a 100-game file
    would have drawn a 1.6-gigapixel PNG. The cap is lowered here to stay small."""
    import gan_envs.preview as preview

    path = _dataset(tmp_path / "d.h5", ("A-v0", "B-v0"))  # 3 frames of 8x8 in each
    monkeypatch.setattr(preview, "MAX_PREVIEW_PIXELS", 2 * 3 * 64 * 4)  # upscale 2: 4x
    assert dataset_preview(path, per_env=3, upscale=2).size > 0  # exactly at the cap
    with pytest.raises(ValueError, match=r"would make a 0-megapixel preview .*--per-env"):
        dataset_preview(path, per_env=3, upscale=3)
    monkeypatch.setattr(preview, "MAX_PREVIEW_PIXELS", 2 * 2 * 64 * 4)
    out = tmp_path / "p.png"
    err = _one_line_error(["preview", str(path), "--out", str(out), "--per-env", "3"], capsys)
    assert "pass a smaller per_env (--per-env)" in err and not out.exists()
