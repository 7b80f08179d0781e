"""Image helpers: sample grids, PNG files and videos (no torchvision).

- :func:`to_uint8` turns generator output in ``[-1, 1]`` (or uint8 frames) into uint8.
- :func:`make_grid` tiles ``(N, C, H, W)`` images into one RGB ``H x W x 3`` uint8 image.
- :func:`save_png` writes an RGB image through OpenCV (which wants BGR).
- :func:`write_video` turns a sequence of RGB images or PNG files into an MP4 (``mp4v``).

Torch tensors are accepted wherever arrays are, but this module never imports torch itself.
"""

from __future__ import annotations

import contextlib
import math
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from gan_envs._numbers import is_real
from gan_envs.outputs import check_output_file, temporary_sibling, write_bytes_atomically

__all__ = ["to_uint8", "make_grid", "save_png", "write_video"]


def _as_numpy(images: Any) -> np.ndarray:
    """Return ``images`` as a numpy array; a torch tensor is detached and moved to the CPU."""
    if hasattr(images, "detach"):  # a torch.Tensor, without importing torch here
        images = images.detach().cpu()
        if images.is_floating_point() and images.dtype.itemsize < 4:  # bf16 has no numpy type
            images = images.float()
        images = images.numpy()
    return np.asarray(images)


def to_uint8(images: Any) -> np.ndarray:
    """Convert images to uint8: floats are read as ``[-1, 1]`` (clipped; ±inf to the ends, NaN
    refused), uint8 passes unchanged.

    Example:
        >>> import numpy as np
        >>> to_uint8(np.array([-1.0, 0.0, 1.0, 2.0])).tolist()
        [0, 128, 255, 255]
    """
    array = _as_numpy(images)
    if array.dtype == np.uint8:
        return array
    if not np.issubdtype(array.dtype, np.floating):
        raise TypeError(f"images must be uint8 or float in [-1, 1], got dtype {array.dtype}")
    if np.isnan(array).any():  # they became black pixels: a diverged GAN's grid looked black
        raise ValueError(f"images hold NaN ({int(np.isnan(array).sum()):,} of {array.size:,} "
                         "values): the network that made them diverged; lower its learning "
                         "rates, or go back to an earlier checkpoint")
    scaled = (np.clip(array.astype(np.float32), -1.0, 1.0) + 1.0) * 127.5
    return np.rint(scaled).astype(np.uint8)


MAX_GRID_PIXELS = 1 << 27
"""Largest grid :func:`make_grid` makes (134 M pixels, 400 MB of RGB; PNG viewers give up
long before): ``upscale=1000`` asked numpy for 183 GiB."""


def make_grid(
    images: Any,
    nrow: int = 8,
    padding: int = 2,
    upscale: int = 1,
    pad_value: int = 0,
) -> np.ndarray:
    """Tile ``(N, C, H, W)`` images (C = 1 or 3) into one RGB grid of ``nrow`` images per row.

    Args:
        images: uint8 array, or float array / tensor in ``[-1, 1]``; a single ``(C, H, W)`` image
            is also accepted.
        nrow: images per row (the last row may be short).
        padding: pixels between images and around the border (before upscaling).
        upscale: integer nearest-neighbour magnification of each image, for small frames.
        pad_value: grey level (0-255) of the padding.

    Returns:
        uint8 array of shape ``(rows * (H*upscale + padding) + padding,
        nrow * (W*upscale + padding) + padding, 3)`` in RGB order.

    Example:
        >>> import numpy as np
        >>> make_grid(np.zeros((10, 3, 8, 8), dtype=np.uint8), nrow=4, padding=1).shape
        (28, 37, 3)
        >>> make_grid(np.ones((2, 1, 4, 4)), nrow=2, padding=0, upscale=2).shape
        (8, 16, 3)
    """
    array = to_uint8(images)
    if array.ndim == 3:
        array = array[None]
    if array.ndim != 4 or array.shape[1] not in (1, 3):
        raise ValueError(
            f"make_grid needs images shaped (N, C, H, W) with C = 1 or 3, got {array.shape}"
        )
    if 0 in array.shape:  # it made a grid of padding alone: a blank image, with no error
        raise ValueError(f"make_grid needs at least one image of at least 1 x 1 pixels, got "
                         f"shape {array.shape}")
    for name, value in (("nrow", nrow), ("padding", padding), ("upscale", upscale)):
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
            raise ValueError(f"make_grid {name} must be a whole number, got {value!r}")
    if isinstance(pad_value, bool) or not isinstance(pad_value, (int, np.integer)) \
            or not 0 <= pad_value <= 255:
        raise ValueError(f"make_grid pad_value is a grey level, a whole number 0-255, got "
                         f"{pad_value!r}")
    if nrow < 1 or padding < 0 or upscale < 1:
        raise ValueError(f"make_grid needs nrow >= 1, padding >= 0, upscale >= 1, got "
                         f"nrow={nrow}, padding={padding}, upscale={upscale}")
    n, channels, height, width = array.shape
    if channels == 1:
        array = np.repeat(array, 3, axis=1)
    cols = min(nrow, max(n, 1))
    rows = max(math.ceil(n / cols), 1)
    grid_height = rows * (height * upscale + padding) + padding
    grid_width = cols * (width * upscale + padding) + padding
    if grid_height * grid_width > MAX_GRID_PIXELS:
        raise ValueError(f"make_grid would make a {grid_width} x {grid_height} image, over "
                         f"{MAX_GRID_PIXELS:,} pixels; pass fewer images or a smaller upscale")
    if upscale > 1:
        array = array.repeat(upscale, axis=2).repeat(upscale, axis=3)
        height, width = height * upscale, width * upscale
    grid = np.full(
        (rows * (height + padding) + padding, cols * (width + padding) + padding, 3),
        pad_value,
        dtype=np.uint8,
    )
    for i in range(n):
        top = padding + (i // cols) * (height + padding)
        left = padding + (i % cols) * (width + padding)
        grid[top : top + height, left : left + width] = array[i].transpose(1, 2, 0)
    return grid


def check_png_path(path: str | os.PathLike[str]) -> Path:
    """``path`` as a Path if it names a PNG file (what :func:`save_png` writes); call it before
    long work whose result goes there.

    Example:
        >>> check_png_path("grid.jpg")
        Traceback (most recent call last):
        ...
        ValueError: grid.jpg: images are written as .png files; give the file a .png name
    """
    return check_output_file(path, ".png", "images")


def check_video_path(path: str | os.PathLike[str], fps: float) -> Path:
    """``path`` as a Path if it names an MP4 file and ``fps`` is positive (what
    :func:`write_video` needs); call it before long work whose result goes there.

    Example:
        >>> check_video_path("dream.mp4", fps=0)
        Traceback (most recent call last):
        ...
        ValueError: dream.mp4: the video's fps must be > 0 and at most 1000, got 0
    """
    path = check_output_file(path, ".mp4", "videos")
    if not (is_real(fps) and 0 < fps <= MAX_FPS):
        raise ValueError(f"{path}: the video's fps must be > 0 and at most {MAX_FPS:g}, got "
                         f"{fps}")
    return path


#: OpenCV's MP4 writer hangs on an infinite frame rate; no video player shows more than this.
MAX_FPS = 1000.0


def save_png(path: str | os.PathLike[str], image_rgb: np.ndarray) -> Path:
    """Write an RGB (``H x W x 3``) or grey (``H x W``) uint8 image to ``path`` as PNG.

    The parent folder is created when missing. Returns the path written.

    Example:
        >>> import numpy as np, tempfile, os
        >>> with tempfile.TemporaryDirectory() as d:
        ...     path = save_png(os.path.join(d, "a.png"), make_grid(np.zeros((1, 3, 4, 4))))
        ...     os.path.getsize(path) > 0
        True
    """
    path = Path(path)
    image = np.asarray(image_rgb)
    if image.dtype != np.uint8 or image.ndim not in (2, 3) or 0 in image.shape or (
            image.ndim == 3 and image.shape[2] != 3):
        raise ValueError(
            f"save_png needs a non-empty uint8 H x W x 3 (or H x W) image, got {image.dtype} "
            f"{image.shape}"
        )
    check_png_path(path)
    bgr = image if image.ndim == 2 else cv2.cvtColor(image, cv2.COLOR_RGB2BGR)
    encoded, png = cv2.imencode(".png", bgr)  # in memory: the file is written whole, or not
    if not encoded:
        raise ValueError(f"{path}: OpenCV cannot encode a {image.shape} image as PNG")
    return write_bytes_atomically(path, png.tobytes())


def _read_rgb(frame: Any) -> np.ndarray:
    """An RGB uint8 frame: an array or tensor as it is (checked), or an image file read."""
    if not isinstance(frame, (str, os.PathLike)):
        frame = _as_numpy(frame)  # a torch tensor too (it was taken for a file name)
        if frame.dtype != np.uint8 or frame.ndim not in (2, 3) or (
                frame.ndim == 3 and frame.shape[2] != 3) or 0 in frame.shape:
            raise ValueError(f"write_video needs uint8 H x W x 3 (or H x W) frames, got "
                             f"{frame.dtype} {frame.shape} (channels-first frames: "
                             "frame.transpose(1, 2, 0); floats: gan_envs.images.to_uint8)")
        return frame if frame.ndim == 3 else np.repeat(frame[..., None], 3, axis=2)
    image = cv2.imread(str(frame), cv2.IMREAD_COLOR) if os.path.isfile(frame) else None
    if image is None:  # (checked first: OpenCV prints a warning for a missing file)
        raise FileNotFoundError(f"{frame}: cannot read this image (missing or not a PNG/JPEG)")
    return cv2.cvtColor(image, cv2.COLOR_BGR2RGB)


def write_video(
    frames: Sequence[np.ndarray | str | os.PathLike[str]],
    out_path: str | os.PathLike[str],
    fps: float = 10.0,
) -> Path:
    """Write RGB frames (arrays or image files) to an MP4 video with OpenCV's ``mp4v`` codec.

    Frames of another size than the first are resized to it; odd sizes are padded to even
    ones (many players refuse odd MP4 sizes). Returns the path written.

    Example:
        >>> import numpy as np, tempfile, os
        >>> with tempfile.TemporaryDirectory() as d:
        ...     out = write_video([np.zeros((9, 9, 3), np.uint8)] * 3, os.path.join(d, "v.mp4"))
        ...     os.path.getsize(out) > 0
        True
    """
    if len(frames) == 0:
        raise ValueError("write_video needs at least one frame")
    out_path = check_video_path(out_path, fps)
    out_path.parent.mkdir(parents=True, exist_ok=True)
    first = _read_rgb(frames[0])
    height, width = first.shape[:2]
    size = (width + width % 2, height + height % 2)
    tmp = temporary_sibling(out_path)  # renamed into place once it plays: never a cut video
    try:
        writer = cv2.VideoWriter(str(tmp), cv2.VideoWriter_fourcc(*"mp4v"), float(fps), size)
        if not writer.isOpened():
            raise OSError(f"{out_path}: OpenCV cannot open an mp4v video writer here (check "
                          "the folder and the name)")
        try:
            for frame in frames:
                image = _read_rgb(frame)
                if image.shape[:2] != (height, width):
                    image = cv2.resize(image, (width, height), interpolation=cv2.INTER_AREA)
                image = np.pad(image, ((0, size[1] - height), (0, size[0] - width), (0, 0)))
                writer.write(cv2.cvtColor(image, cv2.COLOR_RGB2BGR))
        finally:
            writer.release()
        _check_video_plays(tmp, out_path, len(frames))
        os.replace(tmp, out_path)
    finally:
        with contextlib.suppress(OSError):
            tmp.unlink()
    return out_path


def _check_video_plays(tmp: Path, out_path: Path, frames: int) -> None:
    """Raise one line unless OpenCV reads ``frames`` frames back from the finished ``tmp``
    (OpenCV's writer does not report a full disk: the file just stops)."""
    capture = cv2.VideoCapture(str(tmp))
    try:
        count = int(capture.get(cv2.CAP_PROP_FRAME_COUNT)) if capture.isOpened() else 0
    finally:
        capture.release()
    if count == frames:
        return
    import shutil

    free = shutil.disk_usage(tmp.parent).free
    cause = (f"the disk is full ({free:,} bytes free); free space and run again" if
             free < max(1 << 20, 2 * tmp.stat().st_size if tmp.exists() else 0)
             else "OpenCV's mp4v writer failed")
    raise OSError(f"{out_path}: the video was cut short ({count} of {frames} frames): "
                  f"{cause} (nothing was written there)")
