"""Preview images: what an environment shows beside what the wrappers make of it.

Library code: returns RGB uint8 arrays; the CLI saves them (:func:`gan_envs.images.save_png`).

Example:
    >>> import gan_envs
    >>> image = env_preview(["GanAtari/Pong-v0"], snapshots=2, steps_between=5)
    >>> image.dtype, image.ndim, image.shape[2]
    (dtype('uint8'), 3, 3)
"""

from __future__ import annotations

import os
from collections.abc import Sequence

import cv2
import gymnasium as gym
import numpy as np

from gan_envs._numbers import whole_number
from gan_envs.registration import resolve_env_id

__all__ = ["dataset_preview", "env_preview", "frame_to_rgb", "is_image_space"]

_GAP = 4
_LABEL_HEIGHT = 18

MAX_SNAPSHOTS = 64
"""Most snapshots :func:`env_preview` puts in a row (a row of 64 at height 210 is ~27k px wide)."""
MAX_HEIGHT = 1024
"""Tallest snapshot :func:`env_preview` draws."""
MAX_PER_ENV = 1024
"""Most frames :func:`dataset_preview` shows per environment."""
MAX_PREVIEW_PIXELS = 100_000_000
"""Most pixels of a :func:`dataset_preview` (~300 MB of RGB): ``per_env`` 1,024 of a 100-game
file's frames would have drawn a 1.6-gigapixel PNG."""
MAX_STEPS_BETWEEN = 10_000
"""Most random steps :func:`env_preview` plays between snapshots (an Atari game's time limit is
27,000 steps; ``--steps 100000000000`` played on until it was killed)."""


def frame_to_rgb(frame: np.ndarray, space: gym.Space | None = None) -> np.ndarray:
    """Any frame the wrappers produce as an ``(H, W, 3)`` uint8 RGB image.

    Other frames are mapped back from the space's ``[low, high]`` where it is finite, else
    from ``[-1, 1]`` (float frames), ``[0, 255]`` (integer frames) or ``[0, 1]`` (bool
    frames); channel-first frames are
    moved channel-last; one channel becomes grey RGB.

    Example:
        >>> frame_to_rgb(np.full((1, 2, 2), 1.0, dtype=np.float32)).tolist()[0][0]
        [255, 255, 255]
        >>> frame_to_rgb(np.full((2, 2), 128, dtype=np.int64)).tolist()[0][0]
        [128, 128, 128]
    """
    frame = np.asarray(frame)
    if frame.dtype.kind not in "biuf":
        raise ValueError(f"cannot show a frame of dtype {frame.dtype} as an image")
    if frame.dtype != np.uint8:
        low, high = {"b": (0.0, 1.0), "f": (-1.0, 1.0)}.get(frame.dtype.kind, (0.0, 255.0))
        if isinstance(space, gym.spaces.Box) and np.all(np.isfinite(space.low)) \
                and np.all(np.isfinite(space.high)):
            low, high = float(np.min(space.low)), float(np.max(space.high))
        if high <= low:
            high = low + 1.0
        frame = np.clip((frame.astype(np.float64) - low) * (255.0 / (high - low)), 0, 255)
        frame = np.rint(frame).astype(np.uint8)
    if frame.ndim == 3 and frame.shape[0] in (1, 3) and frame.shape[2] not in (1, 3):
        frame = np.moveaxis(frame, 0, -1)
    if frame.ndim == 2:
        frame = frame[:, :, None]
    if frame.shape[2] == 1:
        frame = np.repeat(frame, 3, axis=2)
    if frame.ndim != 3 or frame.shape[2] != 3:
        raise ValueError(f"cannot show a frame of shape {frame.shape} as an image")
    return np.ascontiguousarray(frame)


def _raw_screen(env: gym.Env) -> np.ndarray | None:
    ale = getattr(env.unwrapped, "ale", None)
    return ale.getScreenRGB() if ale is not None else None


def _fit(image: np.ndarray, height: int) -> np.ndarray:
    """Scale ``image`` to ``height`` with nearest-neighbour so single pixels stay visible."""
    width = max(1, round(image.shape[1] * height / image.shape[0]))
    return cv2.resize(image, (width, height), interpolation=cv2.INTER_NEAREST)


def _titled(text: str, body: np.ndarray) -> np.ndarray:
    """``body`` under a strip with ``text``, both widened (black) to fit the whole text: a
    one-frame row cut "GanAtari/Breakout-v0" to "GanAtari/Breakout-v"."""
    (text_width, _), _ = cv2.getTextSize(text, cv2.FONT_HERSHEY_SIMPLEX, 0.45, 1)
    width = max(body.shape[1], text_width + 8)
    strip = np.zeros((_LABEL_HEIGHT, width, 3), dtype=np.uint8)
    cv2.putText(strip, text, (4, 13), cv2.FONT_HERSHEY_SIMPLEX, 0.45, (255, 255, 255), 1,
                cv2.LINE_AA)
    body = np.pad(body, ((0, 0), (0, width - body.shape[1]), (0, 0)))
    return np.concatenate([strip, body], axis=0)


def env_preview(
    env_ids: Sequence[str],
    *,
    snapshots: int = 4,
    steps_between: int = 25,
    seed: int = 0,
    height: int = 210,
) -> np.ndarray:
    """One row per environment: ``snapshots`` pairs of raw screen | processed observation.

    A random agent plays ``steps_between`` steps between snapshots. The processed frame is
    scaled up (nearest neighbour) to ``height`` pixels so it can be compared by eye.

    Raises:
        UnknownEnvironmentError: an id Gymnasium does not know (with close matches).
        ValueError: ``snapshots`` (1-64), ``steps_between`` (0-10,000), ``seed`` or ``height``
            (8-1024) is not a whole number in its range.
    """
    env_ids = [env_ids] if isinstance(env_ids, str) else list(env_ids)
    if not env_ids:
        raise ValueError("env_preview needs at least one environment id")
    snapshots = whole_number(snapshots, "env_preview's snapshots", low=1, high=MAX_SNAPSHOTS)
    steps_between = whole_number(steps_between, "env_preview's steps_between",
                                 high=MAX_STEPS_BETWEEN)
    seed = whole_number(seed, "env_preview's seed", high=2**63 - 1)
    height = whole_number(height, "env_preview's height", low=8, high=MAX_HEIGHT)
    rows = []
    for env_id in env_ids:
        env = gym.make(resolve_env_id(env_id))
        space = env.observation_space
        if not (isinstance(space, gym.spaces.Box) and len(space.shape) in (2, 3)):
            env.close()
            raise ValueError(f"{env_id} observes {space}, not frames: preview shows image "
                             "environments (GanAtari/..., or ids rendering frames)")
        try:
            env.action_space.seed(seed)
            obs, _ = env.reset(seed=seed)
            cells = []
            for _ in range(snapshots):
                for _ in range(steps_between):
                    obs, _, terminated, truncated, _ = env.step(env.action_space.sample())
                    if terminated or truncated:
                        obs, _ = env.reset()
                processed = _fit(frame_to_rgb(obs, env.observation_space), height)
                raw = _raw_screen(env)
                pair = [processed] if raw is None else [_fit(raw, height), processed]
                gap = np.zeros((height, _GAP // 2, 3), dtype=np.uint8)
                cells.append(np.concatenate([pair[0], gap, *pair[1:]], axis=1)
                             if len(pair) > 1 else pair[0])
            spacer = np.full((height, _GAP * 2, 3), 40, dtype=np.uint8)
            body = np.concatenate([c for cell in cells for c in (cell, spacer)][:-1], axis=1)
            space = env.observation_space
            title = f"{env_id}  raw | {tuple(space.shape)} {space.dtype}"
            rows.append(_titled(title, body))
        finally:
            env.close()
    width = max(r.shape[1] for r in rows)
    rows = [np.pad(r, ((0, _GAP), (0, width - r.shape[1]), (0, 0))) for r in rows]
    return np.concatenate(rows, axis=0)


def dataset_preview(path: str | os.PathLike[str], *, per_env: int = 16, seed: int = 0,
                    upscale: int = 2) -> np.ndarray:
    """A grid of ``per_env`` random frames for each environment in a dataset, one row each.

    Blank frames are left out where the dataset flags them.

    Raises:
        FileNotFoundError, DatasetError: the file is missing or not a rollout dataset.
        ValueError: ``per_env``, ``seed`` or ``upscale`` is not a whole number in its range.
    """
    per_env = whole_number(per_env, "dataset_preview's per_env", low=1, high=MAX_PER_ENV)
    seed = whole_number(seed, "dataset_preview's seed", high=2**63 - 1)
    upscale = whole_number(upscale, "dataset_preview's upscale", low=1, high=16)
    from gan_envs.datasets import RolloutReader
    from gan_envs.images import make_grid

    with RolloutReader(path) as reader:
        space = reader.observation_space
        if not (isinstance(space, gym.spaces.Box) and len(space.shape) in (2, 3)):
            raise ValueError(f"{path}: observations {space} are not frames; "
                             "`gan-envs info` describes vector datasets")
        rng = np.random.default_rng(seed)
        rows = []
        frame_env = reader.frame_env_index()
        shown = np.ones(len(frame_env), bool)
        if reader.has_blank_frame:
            shown &= ~reader.blank_flags()
        # one row per env id, then one for episodes written without an id (as `info` lists them)
        labelled = [(env_id, np.flatnonzero(shown & (frame_env == label)))
                    for label, env_id in [*enumerate(reader.env_ids), (-1, "(no env id)")]]
        height, width = space.shape[1:] if is_image_space(space) else space.shape[:2]
        drawn = sum(min(per_env, len(index)) for _, index in labelled) * height * width \
            * upscale**2
        if drawn > MAX_PREVIEW_PIXELS:
            raise ValueError(f"{path}: {per_env} frames of each of its envs would make a "
                             f"{drawn / 1e6:,.0f}-megapixel preview (at most "
                             f"{MAX_PREVIEW_PIXELS / 1e6:,.0f}): pass a smaller per_env "
                             "(--per-env) or upscale")
        for env_id, index in labelled:
            if len(index) == 0:
                continue
            picks = np.sort(rng.choice(index, size=min(per_env, len(index)), replace=False))
            frames = reader.frames(picks)
            if not is_image_space(space):  # (H, W, 3) screens of ALE/...-v5, grey (H, W), ...:
                # "not frames; `gan-envs info` describes vector datasets" until session 29
                frames = np.stack([frame_to_rgb(f, space) for f in frames]).transpose(0, 3, 1, 2)
            grid = make_grid(frames, nrow=min(per_env, 8), upscale=upscale)
            rows.append(_titled(env_id, grid))
    if not rows:
        raise ValueError(f"{path}: holds no frames to preview")
    width = max(r.shape[1] for r in rows)
    return np.concatenate([np.pad(r, ((0, _GAP), (0, width - r.shape[1]), (0, 0)))
                           for r in rows], axis=0)


def is_image_space(space: gym.Space) -> bool:
    """A uint8 Box of ``(C, H, W)`` frames with 1 or 3 channels."""
    return (isinstance(space, gym.spaces.Box) and space.dtype == np.uint8
            and len(space.shape) == 3 and space.shape[0] in (1, 3))
