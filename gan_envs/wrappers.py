"""Frame wrappers that turn Atari screens into GAN-ready tensors.

* :class:`ResizeFrame` - area interpolation, identical to ``cv2.resize(..., INTER_AREA)``
* :class:`ChannelFirst` - ``(H, W, C)`` to ``(C, H, W)`` (a grayscale ``(H, W)`` gets ``C = 1``)
* :class:`ScaleFloat` - uint8 ``[0, 255]`` to float32 ``[low, high]``
* :class:`FlickerFilter` - hold, skip or flag blank ("flickering") frames

Each has a vector version for :func:`gymnasium.make_vec`: :class:`VectorResizeFrame`,
:class:`VectorChannelFirst`, :class:`VectorScaleFloat` and :class:`VectorFlickerFilter`.
Every single-env wrapper records its constructor arguments, JSON-friendly, so
``gym.make(env.spec)`` and ``EnvSpec.from_json(env.spec.to_json())`` rebuild the same stack.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, SupportsFloat

import gymnasium as gym
import numpy as np
from gymnasium.spaces import Box
from gymnasium.vector import VectorEnv, VectorObservationWrapper, VectorWrapper
from gymnasium.wrappers import TransformObservation
from gymnasium.wrappers.vector import VectorizeTransformObservation

from gan_envs.area import AreaResizer

__all__ = [
    "ResizeFrame",
    "ChannelFirst",
    "ScaleFloat",
    "FlickerFilter",
    "FLICKER_MODES",
    "VectorResizeFrame",
    "VectorChannelFirst",
    "VectorScaleFloat",
    "VectorFlickerFilter",
    "normalize_size",
    "AsyncObservations",
    "supports_send_recv",
]

FLICKER_MODES = ("hold", "skip", "flag")
#: The largest output side ResizeFrame makes (a 100,000-pixel side would need ~28 GiB a frame).
MAX_FRAME_SIDE = 8192


# --------------------------------------------------------------------------- argument checks
def normalize_size(size: int | Sequence[int], owner: str = "ResizeFrame",
                   max_side: int = MAX_FRAME_SIDE) -> tuple[int, int]:
    """``64`` or ``(64, 48)`` or ``[64, 48]`` as a ``(height, width)`` tuple of positive ints
    of at most ``max_side``.

    Example:
        >>> normalize_size(64), normalize_size([32, 48])
        ((64, 64), (32, 48))
    """
    if isinstance(size, (int, np.integer)) and not isinstance(size, bool):
        height = width = int(size)
    elif (
        isinstance(size, (tuple, list))
        and len(size) == 2
        and all(isinstance(v, (int, np.integer)) and not isinstance(v, bool) for v in size)
    ):
        height, width = int(size[0]), int(size[1])
    else:
        raise TypeError(f"{owner} size must be an int or a (height, width) pair, got {size!r}")
    if height <= 0 or width <= 0:
        raise ValueError(f"{owner} size must be positive, got {size!r}")
    if max(height, width) > max_side:
        raise ValueError(f"{owner} size must be at most {max_side} pixels a side, got {size!r}")
    return height, width


def _frame_space(space: gym.Space, owner: str, *, ranks: tuple[int, ...] = (2, 3),
                 uint8: bool = True) -> Box:
    """The incoming space as a Box of frames, or a one-line error naming ``owner``."""
    if not isinstance(space, Box):
        raise TypeError(f"{owner} requires a Box observation space of frames, got {space}")
    if uint8 and space.dtype != np.uint8:
        raise TypeError(f"{owner} requires uint8 frames, got dtype {space.dtype} ({space})")
    _check_not_empty(space, owner)
    if len(space.shape) not in ranks:
        wanted = (" or ".join(f"rank {r}" for r in ranks) + " frames ((H, W) or (H, W, C))"
                  if len(ranks) == 2 else f"rank {ranks[0]} to {ranks[-1]} arrays")
        raise ValueError(f"{owner} requires {wanted}, got shape {space.shape}")
    if len(space.shape) == 3 and ranks == (2, 3) and space.shape[0] <= 4 < space.shape[2]:
        before = "frame stacking" if "ChannelFirst" in owner else "ChannelFirst or frame stacking"
        raise ValueError(f"{owner} takes (H, W, C) frames; {space.shape} looks like channels "
                         f"or stacked frames first: apply it before {before} (ale-py's "
                         "make_vec stacks 4 frames: pass vectorization_mode='sync')")
    return space


def _check_env_kind(env: Any, owner: str, other: str, *, vector: bool, note: str = "") -> None:
    """A one-line error naming ``owner`` when ``env`` is a vector env and ``owner`` wraps single
    envs (``vector=False``), or the other way round; ``other`` is the wrapper to use instead."""
    if vector and not isinstance(env, VectorEnv):
        raise TypeError(f"{owner} wraps a gymnasium.vector.VectorEnv, got {type(env).__name__}: "
                        f"use {other} for a single env{note}")
    if not vector and isinstance(env, VectorEnv):
        raise TypeError(f"{owner} wraps a single gymnasium.Env, got the vector env "
                        f"{type(env).__name__}: use {other} for a vector env{note}")


def _check_not_empty(space: Box, owner: str) -> None:
    if 0 in space.shape:
        raise ValueError(f"{owner} requires frames of at least one pixel, got shape {space.shape} "
                         "(an axis of length 0)")


def _uint8_box(shape: tuple[int, ...]) -> Box:
    return Box(low=0, high=255, shape=shape, dtype=np.uint8)


# --------------------------------------------------------------------------- single-env wrappers
class _FactoryStackMember:
    """A wrapper that an env factory (the GanAtari entry point) may leave out of ``env.spec``.

    Used alone, each wrapper records itself in ``env.spec.additional_wrappers`` as Gymnasium
    wrappers do. Inside the GanAtari stack the keywords of the id already describe it, and
    Gymnasium refuses a spec whose recorded wrappers differ from what its entry point builds:
    listed there, ``gym.make(env.spec, size=32)`` and ``gym.make_vec(env.spec)`` would fail.
    """

    in_factory_stack: bool = False

    @property
    def spec(self) -> Any:
        if self.in_factory_stack:
            return self.env.spec  # type: ignore[attr-defined]
        return super().spec  # type: ignore[misc]


class ResizeFrame(_FactoryStackMember, TransformObservation, gym.utils.RecordConstructorArgs):
    """Resize uint8 frames with area interpolation, bit-identical to OpenCV's ``INTER_AREA``.

    The common Atari case (210×160 to sizes such as 64×64) runs in a compiled integer kernel
    that is several times faster than ``cv2.resize``; other sizes call ``cv2.resize`` itself
    (see :mod:`gan_envs.area`). Vector version: :class:`VectorResizeFrame`.

    Example:
        >>> import gymnasium as gym, ale_py
        >>> gym.register_envs(ale_py)
        >>> env = ResizeFrame(gym.make("ALE/Breakout-v5"), size=64)
        >>> env.observation_space
        Box(0, 255, (64, 64, 3), uint8)
        >>> obs, info = env.reset(seed=0)
        >>> obs.shape
        (64, 64, 3)
        >>> env.close()

    Args:
        env: an environment with uint8 ``(H, W)`` or ``(H, W, C)`` Box observations.
        size: an int for square output, or ``(height, width)`` (a list is accepted, as JSON
            gives it back).

    Raises:
        TypeError: ``env`` is a vector env (use :class:`VectorResizeFrame`), the space is not a
            uint8 Box, or ``size`` is not an int or a pair.
        ValueError: the frames are not rank 2 or 3, or ``size`` is not positive.
    """

    def __init__(self, env: gym.Env, size: int | Sequence[int] = 64) -> None:
        _check_env_kind(env, "ResizeFrame", "VectorResizeFrame", vector=False)
        height, width = normalize_size(size, "ResizeFrame")
        space = _frame_space(env.observation_space, "ResizeFrame")
        recorded = size if isinstance(size, int) else [height, width]
        gym.utils.RecordConstructorArgs.__init__(self, size=recorded)

        self.size = (height, width)
        self.resizer = AreaResizer(space.shape[:2], (height, width), owner="ResizeFrame",
                                   mismatch_hint="; the env returns other frames than its "
                                   "observation space declares")
        new_space = _uint8_box((height, width) + tuple(space.shape[2:]))
        TransformObservation.__init__(self, env, self.resizer, new_space)


class ChannelFirst(_FactoryStackMember, TransformObservation, gym.utils.RecordConstructorArgs):
    """Move the colour axis first: ``(H, W, C)`` to ``(C, H, W)``; ``(H, W)`` becomes ``(1, H, W)``.

    Observations are returned as contiguous arrays (what PyTorch convolutions expect). Any
    dtype is accepted. Vector version: :class:`VectorChannelFirst`.

    Example:
        >>> import gymnasium as gym, ale_py
        >>> gym.register_envs(ale_py)
        >>> env = ChannelFirst(ResizeFrame(gym.make("ALE/Pong-v5"), 64))
        >>> env.observation_space
        Box(0, 255, (3, 64, 64), uint8)
        >>> env.close()

    Raises:
        TypeError: ``env`` is a vector env (use :class:`VectorChannelFirst`), or the
            observation space is not a Box.
        ValueError: the frames are not rank 2 or 3.
    """

    def __init__(self, env: gym.Env) -> None:
        _check_env_kind(env, "ChannelFirst", "VectorChannelFirst", vector=False)
        space = _frame_space(env.observation_space, "ChannelFirst", uint8=False)
        gym.utils.RecordConstructorArgs.__init__(self)
        if len(space.shape) == 2:
            low, high = space.low[None], space.high[None]
            func = _add_channel_axis
        else:
            low, high = np.moveaxis(space.low, -1, 0), np.moveaxis(space.high, -1, 0)
            func = _move_channels_first
        new_space = Box(low=low, high=high, dtype=space.dtype)
        TransformObservation.__init__(self, env, func, new_space)


def _add_channel_axis(frame: np.ndarray) -> np.ndarray:
    return frame[None].copy()


def _move_channels_first(frame: np.ndarray) -> np.ndarray:
    return frame.transpose(2, 0, 1).copy()


class ByteScaler:
    """Affine map of uint8 values onto float32 ``[low, high]``: ``float32(v) * step + low``.

    ``step`` is a float32 near ``(high - low) / 255`` chosen so that 255 maps to ``high``
    exactly (0 maps to ``low`` exactly); float32 multiply-then-add is monotone, so every value
    stays inside ``[low, high]``. ``table`` holds the 256 results of the same arithmetic.

    Example:
        >>> scaler = ByteScaler(-1.0, 1.0)
        >>> float(scaler.table[0]), float(scaler.table[255]), scaler.table.dtype
        (-1.0, 1.0, dtype('float32'))
        >>> scaler(np.array([0, 255], dtype=np.uint8)).tolist()
        [-1.0, 1.0]
    """

    def __init__(self, low: float, high: float) -> None:
        self.low, self.high = np.float32(low), np.float32(high)
        step = np.float32((high - low) / 255.0)
        for _ in range(64):  # nudge step by ulps until 255 lands exactly on high
            top = np.float32(255) * step + self.low
            if top == self.high:
                break
            step = np.nextafter(step, np.float32(np.inf if top < self.high else -np.inf))
        self.step = step
        self._use_table = False
        self.table = self(np.arange(256, dtype=np.uint8))
        if self.table[255] != self.high:  # pragma: no cover - no float32 step hit high exactly
            self.table[255] = self.high
            self._use_table = True

    def __call__(self, frames: np.ndarray) -> np.ndarray:
        """The scaled frames as a new C-contiguous float32 array, whatever the input's layout
        (a transposed view is laid out in the same single pass)."""
        if self._use_table:
            return self.table.take(frames)  # take's result is C-ordered
        # float32(v) * step in one pass; order="C": the default "K" would keep a transposed
        # input's channels-last memory order (the make_vec fast path hands one over)
        out = np.multiply(frames, self.step, dtype=np.float32, order="C")
        out += self.low
        return out


def check_scale_bounds(low: float, high: float, owner: str) -> tuple[float, float]:
    """``(low, high)`` as floats for :class:`ByteScaler`, or a one-line error naming ``owner``."""
    try:
        low, high = float(low), float(high)
    except (TypeError, ValueError):
        raise TypeError(f"{owner} low and high must be numbers, got {low!r}, {high!r}") from None
    if not (np.isfinite(low) and np.isfinite(high) and low < high):
        raise ValueError(f"{owner} needs finite low < high, got low={low}, high={high}")
    if high - low > float(np.finfo(np.float32).max):  # the scaler's float32 step overflows
        raise ValueError(f"{owner} low and high span more than float32 holds: low={low}, "
                         f"high={high}")
    if np.float32(low) >= np.float32(high):
        raise ValueError(f"{owner} low and high collapse in float32: low={low}, high={high}")
    return low, high


class ScaleFloat(_FactoryStackMember, TransformObservation, gym.utils.RecordConstructorArgs):
    """Map uint8 frames ``[0, 255]`` affinely onto float32 ``[low, high]`` (default ``[-1, 1]``).

    0 maps to ``low`` and 255 to ``high`` exactly; the mapping is monotone. Vector version:
    :class:`VectorScaleFloat`.

    Example:
        >>> import gymnasium as gym, ale_py
        >>> gym.register_envs(ale_py)
        >>> env = ScaleFloat(gym.make("ALE/Pong-v5"), low=0.0, high=1.0)
        >>> env.observation_space
        Box(0.0, 1.0, (210, 160, 3), float32)
        >>> env.close()

    Raises:
        TypeError: ``env`` is a vector env (use :class:`VectorScaleFloat`), the space is not a
            uint8 Box, or the bounds are not numbers.
        ValueError: the bounds are not finite with ``low < high``.
    """

    def __init__(self, env: gym.Env, low: float = -1.0, high: float = 1.0) -> None:
        _check_env_kind(env, "ScaleFloat", "VectorScaleFloat", vector=False)
        low, high = check_scale_bounds(low, high, "ScaleFloat")
        space = _frame_space(env.observation_space, "ScaleFloat", ranks=(1, 2, 3, 4))
        gym.utils.RecordConstructorArgs.__init__(self, low=low, high=high)

        self.low, self.high = low, high
        self.scaler = ByteScaler(low, high)
        new_space = Box(low=low, high=high, shape=space.shape, dtype=np.float32)
        TransformObservation.__init__(self, env, self.scaler, new_space)


class _BlankTest:
    """Decides whether frames are blank: mean pixel value on the 0-255 scale <= threshold."""

    def __init__(self, space: gym.Space, threshold: float, owner: str) -> None:
        if not isinstance(space, Box):
            raise TypeError(f"{owner} requires a Box observation space of frames, got {space}")
        _check_not_empty(space, owner)
        try:
            threshold = float(threshold)
        except (TypeError, ValueError):
            raise TypeError(f"{owner} threshold must be a number, got {threshold!r}") from None
        if not 0.0 <= threshold < 255.0:
            raise ValueError(
                f"{owner} threshold is on the 0-255 scale: 0 <= t < 255, got {threshold}"
            )
        self.threshold = threshold
        if space.dtype == np.uint8:
            self.offset, self.per_level = 0.0, 1.0
        elif np.issubdtype(space.dtype, np.floating):
            low, high = float(np.min(space.low)), float(np.max(space.high))
            uniform = np.all(space.low == low) and np.all(space.high == high)
            if not (np.isfinite(low) and np.isfinite(high) and uniform and low < high):
                raise ValueError(
                    f"{owner} needs uint8 frames or float frames with finite, uniform bounds "
                    f"(as ScaleFloat makes), got {space.dtype} frames of shape {space.shape} "
                    f"with bounds {float(np.min(space.low)):g} to {float(np.max(space.high)):g}"
                )
            # mean_255 = (mean - low) * 255 / (high - low) <= t  <=>  mean <= low + t * per_level
            self.offset, self.per_level = low, (high - low) / 255.0
        else:
            raise TypeError(f"{owner} requires uint8 or float frames, got dtype {space.dtype}")
        self.limit = self.offset + threshold * self.per_level
        self.sum_limit = self.limit * int(np.prod(space.shape))
        self.max_first = float(np.min(space.low)) >= 0.0

    def __call__(self, frame: np.ndarray) -> bool:
        # sum <= limit * size is mean <= limit without a division (uint8 sums are exact). With
        # no negative pixel, sum >= max: one pixel above the limit settles it, and a max is
        # ~15x cheaper than a widening sum, so most frames never need the sum.
        if self.max_first and frame.max() > self.sum_limit:
            return False
        return bool(frame.sum() <= self.sum_limit)

    def batch(self, frames: np.ndarray) -> np.ndarray:
        """Blank flags of a batch (any memory layout: no copy of a transposed view)."""
        axes = tuple(range(1, frames.ndim))
        if not self.max_first:
            return frames.sum(axis=axes) <= self.sum_limit
        blank = frames.max(axis=axes) <= self.sum_limit
        for i in np.flatnonzero(blank):
            blank[i] = frames[i].sum() <= self.sum_limit
        return blank


class FlickerFilter(_FactoryStackMember, gym.Wrapper, gym.utils.RecordConstructorArgs):
    """Deal with blank ("flickering") frames: a frame is blank when its mean pixel value on the
    0-255 scale is <= ``threshold`` (the tutorial's ``np.mean(obs) > 0.01`` test).

    Works on uint8 frames and on float frames with uniform bounds (after :class:`ScaleFloat`,
    the mean is mapped back to the 0-255 scale). Modes:

    * ``"hold"``: a blank frame is replaced by the last non-blank frame since reset (a blank
      frame right after reset passes through: there is nothing to hold yet).
    * ``"skip"``: the action is repeated until a non-blank frame arrives, at most ``max_skip``
      extra steps; rewards are summed and termination or truncation stops the repeats.
    * ``"flag"``: frames pass through unchanged.

    Every mode sets ``info["blank_frame"]`` (whether the environment's frame was blank) and
    counts ``frames_seen`` and ``blank_frames``; ``"skip"`` also sets ``info["skipped_steps"]``.
    Vector version: :class:`VectorFlickerFilter` (``"hold"`` and ``"flag"``).

    Example:
        >>> import gymnasium as gym, ale_py
        >>> gym.register_envs(ale_py)
        >>> env = FlickerFilter(gym.make("ALE/TicTacToe3D-v5"), mode="hold")
        >>> obs, info = env.reset(seed=0)
        >>> info["blank_frame"] in (True, False)
        True
        >>> env.close()

    Raises:
        TypeError: ``env`` is a vector env (use :class:`VectorFlickerFilter`), or the space is
            not a Box of uint8 or float frames.
        ValueError: an unknown ``mode``, a threshold off the 0-255 scale, ``max_skip < 1``.
    """

    def __init__(self, env: gym.Env, threshold: float = 0.01, mode: str = "hold",
                 max_skip: int = 32) -> None:
        _check_env_kind(env, "FlickerFilter", "VectorFlickerFilter", vector=False,
                        note=" (modes 'hold' and 'flag'; for 'skip', put FlickerFilter inside "
                        "each env)")
        if mode not in FLICKER_MODES:
            raise ValueError(f"FlickerFilter mode must be one of {FLICKER_MODES}, got {mode!r}")
        if isinstance(max_skip, bool) or not isinstance(max_skip, (int, np.integer)):
            raise TypeError(f"FlickerFilter max_skip must be an int, got {max_skip!r}")
        if max_skip < 1:
            raise ValueError(f"FlickerFilter max_skip must be >= 1, got {max_skip}")
        self.is_blank = _BlankTest(env.observation_space, threshold, "FlickerFilter")
        gym.utils.RecordConstructorArgs.__init__(
            self, threshold=float(threshold), mode=mode, max_skip=int(max_skip)
        )
        gym.Wrapper.__init__(self, env)
        self.threshold, self.mode, self.max_skip = float(threshold), mode, int(max_skip)
        self.frames_seen = 0
        self.blank_frames = 0
        self._held: np.ndarray | None = None

    def _filter(self, obs: np.ndarray, info: dict[str, Any]) -> np.ndarray:
        blank = self.is_blank(obs)
        self.frames_seen += 1
        self.blank_frames += blank
        info["blank_frame"] = blank
        if self.mode == "hold":
            if not blank:  # a copy: the caller or the env may reuse the array it returns
                self._held = np.array(obs, copy=True)
            elif self._held is not None:
                return self._held.copy()
        return obs

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None):
        obs, info = self.env.reset(seed=seed, options=options)
        self._held = None
        return self._filter(obs, info), info

    def step(self, action):
        obs, reward, terminated, truncated, info = self.env.step(action)
        if self.mode == "skip":
            total: SupportsFloat = reward
            skipped = 0
            while (skipped < self.max_skip and not (terminated or truncated)
                   and self.is_blank(obs)):
                self.frames_seen += 1
                self.blank_frames += 1
                obs, reward, terminated, truncated, info = self.env.step(action)
                total = float(total) + float(reward)
                skipped += 1
            info["skipped_steps"] = skipped
            reward = total
        return self._filter(obs, info), reward, terminated, truncated, info


# --------------------------------------------------------------------------- vector wrappers
class AsyncObservations:
    """``send(actions)`` / ``recv()`` for vector observation wrappers, like ``AtariVectorEnv``'s.

    Over an env that steps asynchronously (ale-py's ``AtariVectorEnv``), ``send`` starts the
    emulators and returns at once; ``recv`` waits and returns what ``step`` would have. A
    caller can do other work in between (collection writes episodes while emulators run).
    """

    def send(self, actions) -> None:
        self.env.send(actions)

    def recv(self):
        obs, rewards, terminations, truncations, infos = self.env.recv()
        return self.observations(obs), rewards, terminations, truncations, infos


def supports_send_recv(envs: VectorEnv) -> bool:
    """Whether every layer of a vector env stack has ``send``/``recv`` (asynchronous stepping)."""
    layer = envs
    while isinstance(layer, VectorWrapper):
        if not isinstance(layer, AsyncObservations):
            return False
        layer = layer.env
    return callable(getattr(layer, "send", None)) and callable(getattr(layer, "recv", None))


class VectorResizeFrame(AsyncObservations, VectorizeTransformObservation):
    """Vector version of :class:`ResizeFrame`: resizes each sub-environment's frame.

    Example:
        >>> import gymnasium as gym, ale_py
        >>> gym.register_envs(ale_py)
        >>> envs = gym.make_vec("ALE/Pong-v5", num_envs=2, vectorization_mode="sync")
        >>> envs = VectorResizeFrame(envs, size=32)
        >>> envs.single_observation_space
        Box(0, 255, (32, 32, 3), uint8)
        >>> envs.close()
    """

    def __init__(self, env: VectorEnv, size: int | Sequence[int] = 64) -> None:
        _check_env_kind(env, "VectorResizeFrame", "ResizeFrame", vector=True)
        normalize_size(size, "VectorResizeFrame")  # errors name this wrapper, not ResizeFrame
        _frame_space(env.single_observation_space, "VectorResizeFrame")
        super().__init__(env, ResizeFrame, size=size)


class VectorChannelFirst(AsyncObservations, VectorObservationWrapper):
    """Vector version of :class:`ChannelFirst`: ``(N, H, W, C)`` to ``(N, C, H, W)``.

    ``copy=False`` returns a transposed view instead of a C-ordered copy, for an env that hands
    out a fresh array every step (``AtariVectorEnv`` does; the GanAtari fast path uses it): the
    next copy (scaling, stacking an episode, ``torch.as_tensor``) lays the frames out anyway.
    """

    def __init__(self, env: VectorEnv, copy: bool = True) -> None:
        _check_env_kind(env, "VectorChannelFirst", "ChannelFirst", vector=True)
        super().__init__(env)
        self.copy = copy
        space = _frame_space(env.single_observation_space, "VectorChannelFirst", uint8=False)
        self._gray = len(space.shape) == 2
        if self._gray:
            low, high = space.low[None], space.high[None]
        else:
            low, high = np.moveaxis(space.low, -1, 0), np.moveaxis(space.high, -1, 0)
        self.single_observation_space = Box(low=low, high=high, dtype=space.dtype)
        self.observation_space = gym.vector.utils.batch_space(
            self.single_observation_space, self.num_envs
        )

    def observations(self, observations: np.ndarray) -> np.ndarray:
        # transpose with fixed axes: np.moveaxis costs ~10x more per batch in argument checks
        frames = observations[:, None] if self._gray else observations.transpose(0, 3, 1, 2)
        return frames.copy(order="C") if self.copy else frames


class VectorScaleFloat(AsyncObservations, VectorObservationWrapper):
    """Vector version of :class:`ScaleFloat`, one pass over the whole batch.

    The result is a new C-contiguous array even when the input is a transposed view (the
    ``gym.make_vec`` fast path's ``VectorChannelFirst(copy=False)``): that pass lays it out.
    """

    def __init__(self, env: VectorEnv, low: float = -1.0, high: float = 1.0) -> None:
        _check_env_kind(env, "VectorScaleFloat", "ScaleFloat", vector=True)
        low, high = check_scale_bounds(low, high, "VectorScaleFloat")
        super().__init__(env)
        space = _frame_space(env.single_observation_space, "VectorScaleFloat", ranks=(1, 2, 3, 4))
        self.low, self.high = low, high
        self.scaler = ByteScaler(low, high)
        self.single_observation_space = Box(low=low, high=high, shape=space.shape,
                                            dtype=np.float32)
        self.observation_space = gym.vector.utils.batch_space(
            self.single_observation_space, self.num_envs
        )

    def observations(self, observations: np.ndarray) -> np.ndarray:
        return self.scaler(observations)


class VectorFlickerFilter(AsyncObservations, VectorWrapper):
    """Vector version of :class:`FlickerFilter` for modes ``"hold"`` and ``"flag"``.

    ``infos["blank_frame"]`` is a bool array with one entry per sub-environment. Holding
    restarts for a sub-environment after it ends an episode (next-step and same-step
    autoreset). Under same-step autoreset the last frame of an episode that ended,
    ``infos["final_obs"][i]``, is flagged (``infos["final_info"]["blank_frame"]``), counted and
    held as :class:`FlickerFilter` inside the sub-environment would do it. Mode ``"skip"``
    cannot step one sub-environment alone and is refused.

    Raises:
        TypeError: ``env`` is not a ``VectorEnv``, or its space is not a Box of uint8 or
            float frames.
        ValueError: a mode other than ``"hold"`` or ``"flag"``, a threshold off the 0-255 scale.
    """

    def __init__(self, env: VectorEnv, threshold: float = 0.01, mode: str = "hold") -> None:
        if mode not in ("hold", "flag"):
            raise ValueError(
                f"VectorFlickerFilter mode must be 'hold' or 'flag', got {mode!r} "
                "('skip' needs single environments: use FlickerFilter inside each one)"
            )
        _check_env_kind(env, "VectorFlickerFilter", "FlickerFilter", vector=True)
        self.is_blank = _BlankTest(env.single_observation_space, threshold,
                                   "VectorFlickerFilter")
        super().__init__(env)
        self.threshold, self.mode = float(threshold), mode
        self.frames_seen = 0
        self.blank_frames = 0
        self._held: np.ndarray | None = None  # the last non-blank frame of each sub-env
        self._has_held = np.zeros(self.num_envs, dtype=bool)
        self._episode_over = np.zeros(self.num_envs, dtype=bool)
        mode_name = getattr(env.metadata.get("autoreset_mode"), "value", None)
        self._same_step_reset = mode_name == "SameStep"

    def _filter(self, obs: np.ndarray, infos: dict[str, Any],
                new: np.ndarray | None = None) -> np.ndarray:
        """Flag, count and (``"hold"``) replace blank frames; ``new`` marks the sub-envs whose
        frame is new (all but those a partial reset left alone)."""
        blank = self.is_blank.batch(obs)
        counted = blank if new is None else blank[new]
        self.frames_seen += len(counted)
        self.blank_frames += int(counted.sum())
        infos["blank_frame"] = blank
        infos["_blank_frame"] = np.ones_like(blank)
        if self.mode == "flag":
            return obs
        # Copied, not referenced: the caller may change the batch it gets in place, and an env
        # may reuse its batch array (SyncVectorEnv(copy=False)).
        if self._held is None:
            self._held = np.empty_like(obs)
        fresh = ~blank
        if fresh.all():
            np.copyto(self._held, obs)  # one pass (a masked copy makes two)
        else:
            for i in np.flatnonzero(fresh):
                self._held[i] = obs[i]
        self._has_held |= fresh
        replace = blank & self._has_held
        if replace.any():
            obs = obs.copy(order="K")  # the input's memory layout, whether a blank came or not
            obs[replace] = self._held[replace]
        return obs

    def reset(self, *, seed: int | list[int] | None = None, options: dict[str, Any] | None = None):
        mask = (options or {}).get("reset_mask")  # a partial reset restarts only these
        obs, infos = self.env.reset(seed=seed, options=options)  # (it may pop the mask)
        restarted = (np.ones(self.num_envs, bool) if mask is None
                     else np.asarray(mask, dtype=bool).reshape(self.num_envs))
        self._has_held[restarted] = False
        self._episode_over[restarted] = False
        return self._filter(obs, infos, new=restarted), infos

    def step(self, actions):
        return self._after_step(*self.env.step(actions))

    def recv(self):
        return self._after_step(*self.env.recv())

    def _after_step(self, obs, rewards, terminations, truncations, infos):
        ended = np.logical_or(terminations, truncations)
        if self._same_step_reset:  # the observation of an ending step is already a reset one
            self._filter_final(infos, ended)
            self._has_held &= ~ended
        else:  # next-step autoreset: this step's observation is a reset one
            self._has_held &= ~self._episode_over
            self._episode_over = ended
        return self._filter(obs, infos), rewards, terminations, truncations, infos

    def _filter_final(self, infos: dict[str, Any], ended: np.ndarray) -> None:
        """Same-step autoreset: flag, count and (``"hold"``) replace the last frame of each
        episode that ended, ``infos["final_obs"][i]``, as :class:`FlickerFilter` inside the
        sub-environment would have, and set ``infos["final_info"]["blank_frame"]``."""
        final = infos.get("final_obs")
        if final is None:
            return
        mask = np.asarray(infos.get("_final_obs", ended), dtype=bool).reshape(self.num_envs)
        done = [i for i in np.flatnonzero(mask) if final[i] is not None]
        if not done:
            return
        final = final.copy()  # a new object array: the env's own is left as it gave it
        blank = np.zeros(self.num_envs, dtype=bool)
        held = self._held if self.mode == "hold" else None
        for i in done:
            blank[i] = self.is_blank(final[i])
            if held is not None and blank[i] and self._has_held[i]:
                final[i] = held[i].copy()  # the caller may change it in place
        self.frames_seen += len(done)
        self.blank_frames += int(blank.sum())
        infos["final_obs"] = final
        final_info = infos.get("final_info")
        if not isinstance(final_info, dict):
            final_info = infos["final_info"] = {}
            infos["_final_info"] = mask.copy()
        has_flag = np.zeros(self.num_envs, dtype=bool)
        has_flag[done] = True
        final_info["blank_frame"], final_info["_blank_frame"] = blank, has_flag
