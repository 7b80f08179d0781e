"""AreaResizer: memory safety of the C kernel, one contract for both paths, the OpenCV fallback."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import sysconfig
import textwrap
import threading
from pathlib import Path

import cv2
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import gan_envs.area as area
from gan_envs.area import AreaResizer, has_fast_kernel

ROOT = Path(__file__).resolve().parents[1]
KERNEL_SOURCE = ROOT / "gan_envs" / "_ext" / "area_resize.c"
needs_kernel = pytest.mark.skipif(not has_fast_kernel(), reason="compiled kernel not built")


def reference(frame: np.ndarray, h: int, w: int) -> np.ndarray:
    """cv2.resize INTER_AREA, 4 channels at a time (OpenCV's area resize takes at most 4)."""
    if frame.ndim == 3 and frame.shape[2] > 4:
        return np.concatenate([reference(np.ascontiguousarray(frame[:, :, c:c + 4]), h, w)
                               for c in range(0, frame.shape[2], 4)], axis=2)
    out = cv2.resize(frame, (w, h), interpolation=cv2.INTER_AREA)
    return out[:, :, None] if frame.ndim == 3 and out.ndim == 2 else out


def opencv_resizer(source_hw, target_hw) -> AreaResizer:
    """An AreaResizer made as on an install without the compiled kernel."""
    kernel, area._kernel = area._kernel, None
    try:
        return AreaResizer(source_hw, target_hw)
    finally:
        area._kernel = kernel


def _asan_runtime() -> str | None:
    gcc = shutil.which("gcc")
    if gcc is None:
        return None
    found = subprocess.run([gcc, "-print-file-name=libasan.so"], capture_output=True,
                           text=True).stdout.strip()
    return found if os.path.isabs(found) and os.path.exists(found) else None


def run_kernel_under_asan(source: Path, workdir: Path) -> subprocess.CompletedProcess:
    """Build ``source`` with AddressSanitizer and resize, through it, frames whose column taps
    are padded (a column with fewer taps than the widest one: 11 -> 4 columns, 160 -> 96)."""
    suffix = sysconfig.get_config_var("EXT_SUFFIX")
    library = workdir / f"area_resize_asan{suffix}"
    subprocess.run(["gcc", "-shared", "-fPIC", "-O1", "-g", "-fsanitize=address",
                    "-fno-omit-frame-pointer", f"-I{sysconfig.get_paths()['include']}",
                    str(source), "-o", str(library)], check=True, capture_output=True)
    script = textwrap.dedent(f"""
        import importlib.util
        import numpy as np
        import gan_envs.area as area
        spec = importlib.util.spec_from_file_location("area_resize", {str(library)!r})
        kernel = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(kernel)
        area._kernel = kernel
        rng = np.random.default_rng(0)
        for source, target, channels in [((1, 11), (1, 4), 3), ((5, 11), (1, 4), 1),
                                         ((210, 160), (42, 96), 3), ((7, 11), (7, 4), 5)]:
            resizer = area.AreaResizer(source, target)
            assert resizer.exact_fast_path, (source, target)
            frame = rng.integers(0, 256, source + (channels,), dtype=np.uint8)
            resizer(frame)
        print("clean")
    """)
    env = dict(os.environ, LD_PRELOAD=_asan_runtime() or "",
               ASAN_OPTIONS="detect_leaks=0:abort_on_error=0:exitcode=23")
    return subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                          env=env, cwd=ROOT, timeout=120)


@pytest.mark.skipif(_asan_runtime() is None, reason="needs gcc with AddressSanitizer")
def test_padded_column_taps_stay_inside_the_row(tmp_path):
    # 11 -> 4 columns has taps [0,1,2,pad] ... [8,9,10,pad]: the kernel read the last column's
    # padding (weight 0) one pixel past its row buffer, a heap-buffer-overflow
    result = run_kernel_under_asan(KERNEL_SOURCE, tmp_path)
    assert result.returncode == 0 and "clean" in result.stdout, result.stderr[-3000:]
    assert "AddressSanitizer" not in result.stderr


@needs_kernel
@pytest.mark.parametrize("spoil", ["second row heavier", "negative weight", "no output rows"])
def test_kernel_refuses_tables_it_cannot_sum_exactly(spoil):
    frame = np.zeros((10, 10, 3), dtype=np.uint8)
    rows, row_w, cols, col_w, denominator = AreaResizer((10, 10), (2, 2))._tables
    rows, row_w, out = rows.copy(), row_w.copy(), np.empty((2, 2, 3), dtype=np.uint8)
    if spoil == "second row heavier":  # sums of 2 * 255 * 257 wrapped the 16-bit lanes
        row_w[1] *= 257
    elif spoil == "negative weight":
        row_w[1, :2] = [3, -1]  # still summing to 5
    else:  # the first row's weights were read from an empty table
        rows, row_w, out = rows[:0], row_w[:0], out[:0]
    with pytest.raises(ValueError, match="area_resize"):
        area._kernel.resize(frame, out, rows, row_w, cols, col_w, denominator)


@pytest.mark.parametrize("make", [AreaResizer, opencv_resizer], ids=["kernel", "opencv"])
@pytest.mark.parametrize("target", [(64, 64), (84, 84)])  # odd and even denominator
@pytest.mark.parametrize("bad_out", ["int8", "bool", "float32", "broadcast", "strided",
                                     "read-only", "list"])
def test_out_is_checked_the_same_way_on_both_paths(make, target, bad_out):
    frame = np.random.default_rng(3).integers(0, 256, (210, 160, 3), dtype=np.uint8)
    shape = target + (3,)
    out = {"int8": lambda: np.empty(shape, np.int8), "bool": lambda: np.empty(shape, np.bool_),
           "float32": lambda: np.empty(shape, np.float32),
           "broadcast": lambda: np.empty(target + (6,), np.uint8)[:, :, ::2],
           "strided": lambda: np.empty(shape[::-1], np.uint8).T,
           "read-only": lambda: np.zeros(shape, np.uint8).view(),
           "list": lambda: np.zeros(shape, np.uint8).tolist()}[bad_out]()
    if bad_out == "read-only":
        out.flags.writeable = False
    if bad_out == "broadcast":  # a 1-channel frame's result was broadcast into 3 channels
        frame, out = frame[:, :, :1], np.empty(shape, np.uint8)
    resizer = make((210, 160), target)
    with pytest.raises(ValueError, match="out must be a writable C-contiguous uint8 array"):
        resizer(frame, out=out)
    good = np.empty(target + frame.shape[2:], np.uint8)
    assert resizer(frame, out=good) is good
    np.testing.assert_array_equal(good, reference(frame, *target))


@pytest.mark.parametrize("make", [AreaResizer, opencv_resizer], ids=["kernel", "opencv"])
@pytest.mark.parametrize("target", [(64, 64), (84, 84)])
def test_zero_channel_frames_are_refused_on_both_paths(make, target):
    # the kernel returned an empty (h, w, 0) array, OpenCV raised a multi-line cv2.error
    with pytest.raises(ValueError, match=r"uint8 frames of \(210, 160\) pixels, got uint8"):
        make((210, 160), target)(np.zeros((210, 160, 0), np.uint8))


@pytest.mark.parametrize("dtype", [np.float32, np.float64, np.int8, np.uint16, np.bool_])
def test_other_dtypes_are_refused_in_one_line(dtype):
    with pytest.raises(ValueError) as error:
        AreaResizer((21, 16), (7, 8))(np.zeros((21, 16, 3), dtype))
    assert "\n" not in str(error.value) and "uint8 frames" in str(error.value)


@st.composite
def views(draw):
    """A uint8 frame, often a non-contiguous view (strided, reversed, transposed)."""
    H, W = draw(st.integers(1, 70)), draw(st.integers(1, 70))
    channels = draw(st.sampled_from([None, 1, 2, 3, 4, 5, 9]))
    step_y, step_x = draw(st.sampled_from([1, 2, -1, -2])), draw(st.sampled_from([1, 2, -1]))
    transpose = draw(st.booleans())
    base_hw = (W, H) if transpose else (H, W)
    base_hw = (base_hw[0] * abs(step_y), base_hw[1] * abs(step_x))
    shape = base_hw if channels is None else base_hw + (channels,)
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    frame = rng.integers(0, 256, shape, dtype=np.uint8)[::step_y, ::step_x]
    if transpose:
        frame = frame.swapaxes(0, 1)
    h = draw(st.integers(1, H + 10))
    w = draw(st.integers(1, W + 10))
    return frame, h, w


@settings(max_examples=200, deadline=None)
@given(views())
def test_any_view_matches_opencv_on_both_paths(case):
    frame, h, w = case
    expected = reference(np.ascontiguousarray(frame), h, w)
    np.testing.assert_array_equal(reference(frame, h, w), expected)  # OpenCV takes views too
    np.testing.assert_array_equal(AreaResizer(frame.shape[:2], (h, w))(frame), expected)
    np.testing.assert_array_equal(opencv_resizer(frame.shape[:2], (h, w))(frame), expected)


@settings(max_examples=60, deadline=None)
@given(st.integers(1, 2000), st.integers(1, 999), st.integers(1, 999), st.integers(0, 2**32 - 1))
def test_one_axis_squeezed_frames_match_opencv(long_side, short, target, seed):
    """Tall, narrow and 1-pixel frames and outputs, weights up to 257 per output row."""
    target = min(target, long_side)
    rng = np.random.default_rng(seed)
    for source, size in [((long_side, 1 + short % 3), (target, 1)),
                         ((1 + short % 3, long_side), (1, target))]:
        frame = rng.integers(0, 256, source + (3,), dtype=np.uint8)
        np.testing.assert_array_equal(AreaResizer(source, size)(frame), reference(frame, *size))


@needs_kernel
def test_kernel_is_thread_safe():
    resizer = AreaResizer((210, 160), (64, 64))
    assert resizer.exact_fast_path
    frames = np.random.default_rng(4).integers(0, 256, (16, 210, 160, 3), dtype=np.uint8)
    expected = [reference(frame, 64, 64) for frame in frames]
    failures: list[int] = []

    def work():
        for _ in range(20):
            failures.extend(i for i, frame in enumerate(frames)
                            if not np.array_equal(resizer(frame), expected[i]))

    threads = [threading.Thread(target=work) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert failures == []


def test_opencv_fallback_is_used_without_the_kernel():
    script = textwrap.dedent("""
        import importlib.abc, sys
        from unittest import mock

        class NoKernel(importlib.abc.MetaPathFinder):
            def find_spec(self, name, path, target=None):
                if name == "gan_envs._ext.area_resize":
                    raise ImportError("no C compiler at install time")

        sys.meta_path.insert(0, NoKernel())
        import cv2, numpy as np
        from gan_envs.area import AreaResizer, has_fast_kernel
        assert not has_fast_kernel()
        resizer = AreaResizer((210, 160), (64, 64))
        assert not resizer.exact_fast_path
        frame = np.random.default_rng(0).integers(0, 256, (210, 160, 3), dtype=np.uint8)
        expected = cv2.resize(frame, (64, 64), interpolation=cv2.INTER_AREA)
        with mock.patch("cv2.resize", wraps=cv2.resize) as spy:
            assert np.array_equal(resizer(frame), expected)
        assert spy.call_count == 1
        print("fallback ok")
    """)
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                            cwd=ROOT, timeout=120)
    assert result.returncode == 0 and "fallback ok" in result.stdout, result.stderr[-2000:]
