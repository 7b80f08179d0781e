"""Exact, fast area resampling of uint8 frames (the kernel behind ``ResizeFrame``).

OpenCV's ``INTER_AREA`` weights every source pixel by the area it shares with the output pixel.
For a downscale from ``S`` to ``s`` pixels along an axis, each weight is an integer multiple of
``1 / (S / gcd(S, s))``, so an output pixel is ``acc / D`` with an integer ``acc`` and
``D = (H / gcd(H, h)) * (W / gcd(W, w))``. When ``D`` is odd, ``acc / D`` is never exactly
halfway between two integers and lies at least ``1 / (2 D)`` from such a tie; OpenCV's float32
arithmetic errs by far less than that for ``D <= 1024``, so rounding the exact value gives
OpenCV's byte bit for bit. 210×160 → 64×64 has ``D = 105 * 5 = 525``.

That case is computed with integer tap tables by a small C kernel (``gan_envs._ext``),
3.7–4.7× faster than ``cv2.resize`` here (docs/benchmarks.md). Every other case (upscaling, even
or large ``D``, no compiled kernel) calls ``cv2.resize(..., interpolation=cv2.INTER_AREA)``
itself, so the output is always OpenCV's.

Example:
    >>> import cv2, numpy as np
    >>> frame = np.random.default_rng(0).integers(0, 256, (210, 160, 3), dtype=np.uint8)
    >>> resizer = AreaResizer((210, 160), (64, 64))
    >>> small = resizer(frame)
    >>> small.shape, small.dtype
    ((64, 64, 3), dtype('uint8'))
    >>> bool(np.array_equal(small, cv2.resize(frame, (64, 64), interpolation=cv2.INTER_AREA)))
    True
"""

from __future__ import annotations

from math import gcd

import numpy as np

try:  # the compiled kernel is optional; OpenCV is the fallback with identical output
    from gan_envs._ext import area_resize as _kernel
except ImportError:  # pragma: no cover - exercised only on installs without a C compiler
    _kernel = None

__all__ = ["AreaResizer", "area_taps", "has_fast_kernel"]

#: Largest denominator for which OpenCV's float32 rounding provably matches the exact value.
MAX_EXACT_DENOMINATOR = 1024


def has_fast_kernel() -> bool:
    """Whether the compiled kernel is importable (otherwise OpenCV does every resize)."""
    return _kernel is not None


def area_taps(source: int, target: int) -> tuple[np.ndarray, np.ndarray, int]:
    """Integer area-interpolation taps for shrinking ``source`` pixels to ``target`` pixels.

    Returns ``(index, weight, denominator)``: ``index`` and ``weight`` are int32 arrays of shape
    ``(target, taps)`` (unused taps have weight 0), and output pixel ``i`` equals
    ``sum(weight[i] * pixel[index[i]]) / denominator``.

    Example:
        >>> index, weight, denominator = area_taps(5, 2)
        >>> index.tolist(), weight.tolist(), denominator
        ([[0, 1, 2], [2, 3, 4]], [[2, 2, 1], [1, 2, 2]], 5)
    """
    if not 0 < target <= source:
        raise ValueError(f"area_taps shrinks only: target {target} must be in 1..{source}")
    unit = gcd(source, target)
    rows: list[list[tuple[int, int]]] = []
    for i in range(target):
        # Output pixel i spans [i*source, (i+1)*source) in units of 1/target source pixels.
        lo, hi = i * source, (i + 1) * source
        taps = []
        for j in range(lo // target, -(-hi // target)):
            overlap = min(hi, (j + 1) * target) - max(lo, j * target)
            if overlap > 0:
                taps.append((j, overlap // unit))
        rows.append(taps)
    width = max(len(taps) for taps in rows)
    index = np.zeros((target, width), dtype=np.int32)
    weight = np.zeros((target, width), dtype=np.int32)
    for i, taps in enumerate(rows):
        for t, (j, w) in enumerate(taps):
            index[i, t], weight[i, t] = j, w
    return index, weight, source // unit


class AreaResizer:
    """Resize uint8 frames of one fixed shape exactly as ``cv2.resize(..., INTER_AREA)`` does.

    Args:
        source_hw: ``(height, width)`` of the incoming frames.
        target_hw: ``(height, width)`` of the outgoing frames.

    Frames may be ``(H, W)`` or ``(H, W, C)`` uint8 arrays; the result has the same rank.
    """

    def __init__(self, source_hw: tuple[int, int], target_hw: tuple[int, int], *,
                 owner: str = "AreaResizer", mismatch_hint: str = "") -> None:
        (H, W), (h, w) = (int(v) for v in source_hw), (int(v) for v in target_hw)
        if min(H, W, h, w) <= 0:
            raise ValueError(f"AreaResizer needs positive sizes, got {source_hw} -> {target_hw}")
        self.source_hw, self.target_hw = (H, W), (h, w)
        self.owner, self.mismatch_hint = owner, mismatch_hint  # for the frame check's message
        self.exact_fast_path = False
        if _kernel is not None and h <= H and w <= W and max(h, w) < 1000:
            rows, row_w, row_d = area_taps(H, h)
            cols, col_w, col_d = area_taps(W, w)
            denominator = row_d * col_d
            if (denominator % 2 == 1 and denominator <= MAX_EXACT_DENOMINATOR
                    and row_d * 255 <= np.iinfo(np.uint16).max):
                self._tables = (rows, row_w, cols, col_w, denominator)
                self.exact_fast_path = True

    def __call__(self, frame: np.ndarray, out: np.ndarray | None = None) -> np.ndarray:
        """Resize one frame; ``out`` (uint8, contiguous, target shape) is filled when given.

        Raises:
            ValueError: ``frame`` is not a uint8 frame of ``source_hw`` pixels with at least one
                channel, or ``out`` is not a writable C-contiguous uint8 array of the result's
                shape.
        """
        h, w = self.target_hw
        if (frame.shape[:2] != self.source_hw or frame.dtype != np.uint8 or frame.ndim > 3
                or frame.size == 0):  # zero channels: OpenCV refuses them, the kernel did not
            raise ValueError(f"{self.owner} was made for uint8 frames of {self.source_hw} "
                             f"pixels, got {frame.dtype} {frame.shape}{self.mismatch_hint}")
        # Both paths take the same `out` (OpenCV's result was cast or broadcast into any array,
        # the kernel wrote raw bytes into int8 or bool ones and refused the rest)
        if out is not None and not (
                isinstance(out, np.ndarray) and out.dtype == np.uint8
                and out.shape == (h, w) + frame.shape[2:]
                and out.flags.c_contiguous and out.flags.writeable):
            raise ValueError(f"{self.owner}: out must be a writable C-contiguous uint8 array of "
                             f"shape {(h, w) + frame.shape[2:]}, got {getattr(out, 'dtype', None)} "
                             f"{getattr(out, 'shape', type(out).__name__)}")
        if not self.exact_fast_path:
            import cv2  # imported on first use: `import gan_envs` stays cheap

            # OpenCV's area resize takes at most 4 channels: larger frames go 4 at a time
            parts = [frame] if frame.ndim == 2 or frame.shape[2] <= 4 else [
                frame[:, :, c:c + 4] for c in range(0, frame.shape[2], 4)]
            resized = [cv2.resize(part, (w, h), interpolation=cv2.INTER_AREA) for part in parts]
            resized = [r[:, :, None] if r.ndim == 2 and frame.ndim == 3 else r  # OpenCV drops
                       for r in resized]                                      # one channel
            result = resized[0] if len(resized) == 1 else np.concatenate(resized, axis=2)
            if out is not None:
                out[...] = result
                return out
            return result
        if out is None:
            out = np.empty((h, w) + frame.shape[2:], dtype=np.uint8)
        rows, row_w, cols, col_w, denominator = self._tables
        _kernel.resize(np.ascontiguousarray(frame), out, rows, row_w, cols, col_w, denominator)
        return out
