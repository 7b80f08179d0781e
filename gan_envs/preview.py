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

from gan_envs.registration import resolve_env_id

__all__ = ["dataset_preview", "env_preview", "frame_to_rgb", "is_image_space"]

_GAP = 4
_LABEL_HEIGHT = 18


def frame_to_rgb(frame: np.ndarray, space: gym.Space | None = None) -> np.ndarray:
    """Any frame the wrappers produce as an ``(H, W, 3)`` uint8 RGB image.

    Float frames are mapped back from the space's ``[low, high]`` (default ``[-1, 1]``);
    channel-first frames are moved channel-last; one channel becomes grey RGB.

    Example:
        >>> frame_to_rgb(np.full((1, 2, 2), 1.0, dtype=np.float32)).tolist()[0][0]
        [255, 255, 255]
    """
    frame = np.asarray(frame)
    if frame.dtype != np.uint8:
        low, high = -1.0, 1.0
        if isinstance(space, gym.spaces.Box) and np.all(np.isfinite([space.low, space.high])):
            low, high = float(np.min(space.low)), float(np.max(space.high))
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


def _label(text: str, width: int) -> np.ndarray:
    strip = np.zeros((_LABEL_HEIGHT, width, 3), dtype=np.uint8)
    cv2.putText(strip, text, (4, 13), cv2.FONT_HERSHEY_SIMPLEX, 0.45, (255, 255, 255), 1,
                cv2.LINE_AA)
    return strip


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
    """
    if snapshots < 1 or steps_between < 0:
        raise ValueError("env_preview needs snapshots >= 1 and steps_between >= 0")
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
            rows.append(np.concatenate([_label(title, body.shape[1]), body], axis=0))
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
    """
    from gan_envs.datasets import RolloutReader
    from gan_envs.images import make_grid

    with RolloutReader(path) as reader:
        if not is_image_space(reader.observation_space):
            raise ValueError(f"{path}: observations {reader.observation_space} are not frames; "
                             "`gan-envs info` describes vector datasets")
        rng = np.random.default_rng(seed)
        rows = []
        for env_id in reader.env_ids:
            index = reader.frame_indices(env_ids=[env_id], exclude_blank=reader.has_blank_frame)
            if len(index) == 0:
                continue
            picks = np.sort(rng.choice(index, size=min(per_env, len(index)), replace=False))
            grid = make_grid(reader.frames(picks), nrow=min(per_env, 8), upscale=upscale)
            rows.append(np.concatenate([_label(env_id, grid.shape[1]), grid], axis=0))
    if not rows:
        raise ValueError(f"{path}: holds no frames to preview")
    width = max(r.shape[1] for r in rows)
    return np.concatenate([np.pad(r, ((0, _GAP), (0, width - r.shape[1]), (0, 0)))
                           for r in rows], axis=0)


def is_image_space(space: gym.Space) -> bool:
    """A uint8 Box of ``(C, H, W)`` frames with 1 or 3 channels."""
    return (isinstance(space, gym.spaces.Box) and space.dtype == np.uint8
            and len(space.shape) == 3 and space.shape[0] in (1, 3))
