"""AreaResizer must reproduce cv2.resize(..., INTER_AREA) bit for bit."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from gan_envs.area import AreaResizer, area_taps, has_fast_kernel


def reference(frame: np.ndarray, h: int, w: int) -> np.ndarray:
    out = cv2.resize(frame, (w, h), interpolation=cv2.INTER_AREA)
    return out[:, :, None] if frame.ndim == 3 and out.ndim == 2 else out


@st.composite
def frames_and_sizes(draw, atari: bool = False):
    if atari:
        H, W = draw(st.sampled_from([(210, 160), (250, 160)]))
    else:
        H, W = draw(st.integers(1, 90)), draw(st.integers(1, 90))
    channels = draw(st.sampled_from([None, 1, 3, 4]))
    shape = (H, W) if channels is None else (H, W, channels)
    fill = draw(st.sampled_from(["random", "extremes"]))
    if fill == "random":
        seed = draw(st.integers(0, 2**32 - 1))
        frame = np.random.default_rng(seed).integers(0, 256, shape, dtype=np.uint8)
    else:
        frame = draw(arrays(np.uint8, shape, elements=st.sampled_from([0, 1, 127, 128, 254, 255])))
    h = draw(st.integers(1, H + 20 if not atari else H))
    w = draw(st.integers(1, W + 20 if not atari else W))
    return frame, h, w


@settings(max_examples=150, deadline=None)
@given(frames_and_sizes())
def test_matches_opencv_on_any_size(case):
    frame, h, w = case
    out = AreaResizer(frame.shape[:2], (h, w))(frame)
    np.testing.assert_array_equal(out, reference(frame, h, w))


@settings(max_examples=150, deadline=None)
@given(frames_and_sizes(atari=True))
def test_matches_opencv_on_atari_screens(case):
    frame, h, w = case
    out = AreaResizer(frame.shape[:2], (h, w))(frame)
    assert out.dtype == np.uint8 and out.shape[:2] == (h, w)
    np.testing.assert_array_equal(out, reference(frame, h, w))


@pytest.mark.skipif(not has_fast_kernel(), reason="compiled kernel not built")
@pytest.mark.parametrize("source", [(210, 160), (250, 160)])
@pytest.mark.parametrize("target", [(64, 64), (32, 32), (84, 84), (128, 128)])
def test_common_atari_sizes(source, target):
    resizer = AreaResizer(source, target)
    rng = np.random.default_rng(1)
    for _ in range(20):
        frame = rng.integers(0, 256, source + (3,), dtype=np.uint8)
        np.testing.assert_array_equal(resizer(frame), reference(frame, *target))
    if target != (84, 84):  # 84x84 has an even denominator: OpenCV itself runs
        assert resizer.exact_fast_path


def test_out_argument_is_filled():
    frame = np.random.default_rng(2).integers(0, 256, (210, 160, 3), dtype=np.uint8)
    out = np.empty((64, 64, 3), dtype=np.uint8)
    result = AreaResizer((210, 160), (64, 64))(frame, out=out)
    assert result is out
    np.testing.assert_array_equal(out, reference(frame, 64, 64))


@given(st.integers(1, 400), st.integers(1, 400))
def test_taps_are_an_exact_partition(source, target):
    if target > source:
        with pytest.raises(ValueError, match="shrinks only"):
            area_taps(source, target)
        return
    index, weight, denominator = area_taps(source, target)
    assert (weight.sum(axis=1) == denominator).all()  # each output averages exactly
    coverage = np.zeros(source, dtype=np.int64)
    np.add.at(coverage, index.ravel(), weight.ravel())
    # every source pixel contributes its whole area: target/gcd units in total
    assert (coverage == coverage[0]).all()


def test_bad_sizes_are_refused():
    with pytest.raises(ValueError, match="positive"):
        AreaResizer((210, 160), (0, 64))
