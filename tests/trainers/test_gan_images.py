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
