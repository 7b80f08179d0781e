"""The grid, PNG and video helpers (no torchvision)."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from gan_envs.trainers.images import make_grid, save_png, to_uint8, write_video


@settings(max_examples=30, deadline=None)
@given(n=st.integers(1, 20), channels=st.sampled_from([1, 3]), side=st.integers(1, 12),
       nrow=st.integers(1, 9), padding=st.integers(0, 3), upscale=st.integers(1, 3))
def test_grid_shape(n, channels, side, nrow, padding, upscale):
    grid = make_grid(np.zeros((n, channels, side, side), np.uint8), nrow, padding, upscale)
    cols, rows = min(nrow, n), -(-n // min(nrow, n))
    cell = side * upscale + padding
    assert grid.shape == (rows * cell + padding, cols * cell + padding, 3)
    assert grid.dtype == np.uint8


def test_grid_places_images_in_rgb_order():
    images = np.zeros((2, 3, 2, 2), np.uint8)
    images[1, 0] = 255  # the second image is pure red
    grid = make_grid(images, nrow=2, padding=1)
    assert grid[1, 1].tolist() == [0, 0, 0] and grid[1, 4].tolist() == [255, 0, 0]


def test_grid_accepts_float_tensors_and_grey_images():
    grid = make_grid(torch.ones(4, 1, 3, 3), nrow=2, padding=0)
    assert grid.shape == (6, 6, 3) and (grid == 255).all()
    assert to_uint8(torch.tensor([-1.0, 1.0])).tolist() == [0, 255]


def test_grid_rejects_other_shapes():
    with pytest.raises(ValueError, match="C = 1 or 3"):
        make_grid(np.zeros((2, 4, 8, 8), np.uint8))


def test_png_round_trip_keeps_colours(tmp_path):
    image = np.zeros((4, 5, 3), np.uint8)
    image[..., 0] = 200  # red
    path = save_png(tmp_path / "sub" / "red.png", image)
    assert np.array_equal(cv2.cvtColor(cv2.imread(str(path)), cv2.COLOR_BGR2RGB), image)


def test_video_from_files_and_arrays(tmp_path):
    paths = [save_png(tmp_path / f"{i}.png", np.full((9, 11, 3), 40 * i, np.uint8))
             for i in range(3)]
    out = write_video(paths + [np.zeros((5, 5, 3), np.uint8)], tmp_path / "v.mp4", fps=2)
    capture = cv2.VideoCapture(str(out))
    count = 0
    while capture.read()[0]:
        count += 1
    capture.release()
    assert count == 4
    with pytest.raises(ValueError):
        write_video([], tmp_path / "empty.mp4")


def test_a_grid_too_large_to_hold_is_one_line():
    """``gan-envs sample --upscale 1000`` asked numpy for 183 GiB."""
    with pytest.raises(ValueError, match=r"^make_grid would make a 128006 x 128006 image, over "
                       r"134,217,728 pixels; pass fewer images or a smaller upscale$"):
        make_grid(np.zeros((4, 3, 64, 64), np.uint8), nrow=2, upscale=1000)


def test_nan_images_are_refused_not_drawn_black():
    """A diverged generator's NaN frames became black pixels with only numpy's warning."""
    with pytest.raises(ValueError, match=r"^images hold NaN \(2 of 4 values\): the network that "
                                         r"made them diverged"):
        to_uint8(np.array([np.nan, 0.0, np.nan, 1.0], np.float32))
    assert to_uint8(np.array([np.inf, -np.inf], np.float32)).tolist() == [255, 0]
    with pytest.raises(ValueError, match="images hold NaN"):
        make_grid(torch.full((2, 3, 4, 4), float("nan")))
    for bad in ("a", 1.5, True):
        with pytest.raises(ValueError, match=r"pad_value is a grey level, a whole number 0-255"):
            make_grid(np.zeros((1, 3, 4, 4), np.uint8), pad_value=bad)


def test_video_takes_tensor_frames_and_names_a_missing_file_quietly(tmp_path, capfd):
    """A tensor frame was taken for a file name (a 71-line message; OpenCV's warning on
    stderr), though the module takes tensors wherever arrays go."""
    frames = [torch.full((8, 8, 3), 40 * k, dtype=torch.uint8) for k in range(3)]
    assert write_video(frames, tmp_path / "t.mp4").stat().st_size > 0
    capfd.readouterr()
    with pytest.raises(FileNotFoundError, match=r"nope\.png: cannot read this image"):
        write_video([str(tmp_path / "nope.png")], tmp_path / "n.mp4")
    assert capfd.readouterr().err == ""  # nothing printed
