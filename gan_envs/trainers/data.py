"""Where the GAN trainer gets its frames: a small protocol and two implementations.

- :class:`FrameSource`: anything with ``frame_shape`` and ``sample_frames(n, rng)`` (the rollout
  dataset reader has no ``frame_shape``: :class:`DatasetFrameSource` wraps it).
- :class:`LabelledFrameSource`: a source that also knows which environment each frame came from
  (``env_ids``, ``sample_frames_with_env``), used by the game classifier of the evaluation.
- :class:`DatasetFrameSource`: frames of a rollout dataset (what ``gan-envs train gan`` uses).
- :class:`ArrayFrameSource`: frames held in memory (tests, ``in_memory`` datasets).
- :class:`EnvFrameSource`: random agents playing live Gymnasium environments, as the tutorial does
  (``--source env``).

Frames are uint8 ``(C, H, W)`` images or ``(D,)`` vectors of any dtype; scaling to ``[-1, 1]``
happens in the trainer. Numpy only: importing this module does not import torch.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Protocol, runtime_checkable

import numpy as np

from gan_envs._numbers import flag, whole_number
from gan_envs._text import short_repr

__all__ = [
    "FrameSource",
    "LabelledFrameSource",
    "ArrayFrameSource",
    "DatasetFrameSource",
    "EnvFrameSource",
    "env_labels",
    "is_image_shape",
]


@runtime_checkable
class FrameSource(Protocol):
    """A source of training frames for the GAN trainer.

    ``frame_shape`` is ``(C, H, W)`` for images (uint8) or ``(D,)`` for vector observations.
    ``sample_frames(n, rng)`` returns ``n`` frames stacked along a new first axis, drawn with the
    given numpy ``Generator`` so that the same generator state gives the same frames. Sources
    should draw without replacement within one call when they hold at least ``n`` frames: the
    evaluation splits one draw into disjoint real sets.
    """

    frame_shape: tuple[int, ...]

    def sample_frames(self, n: int, rng: np.random.Generator) -> np.ndarray: ...


@runtime_checkable
class LabelledFrameSource(FrameSource, Protocol):
    """A :class:`FrameSource` that also says which environment (index into ``env_ids``) each
    frame came from."""

    env_ids: list[str]

    def sample_frames_with_env(
        self, n: int, rng: np.random.Generator
    ) -> tuple[np.ndarray, np.ndarray]: ...


def check_unique_env_ids(env_ids: Sequence[str], what: str) -> None:
    """Refuse an id named twice: it became a second label that no frame (or every frame of a
    second env of the same game) carried, and conditional runs trained on it.

    Example:
        >>> check_unique_env_ids(["Pong-v0", "Breakout-v0", "Pong-v0"], "data.h5")
        Traceback (most recent call last):
        ...
        ValueError: data.h5: env_ids (--env) names Pong-v0 twice; name each environment once
    """
    seen: set[str] = set()
    for env_id in env_ids:
        if env_id in seen:
            raise ValueError(f"{what}: env_ids (--env) names {env_id} twice; name each "
                             "environment once")
        seen.add(env_id)


def is_image_shape(shape: Sequence[int]) -> bool:
    """True for ``(C, H, W)`` frame shapes with 1 or 3 channels.

    Example:
        >>> is_image_shape((3, 64, 64)), is_image_shape((4,))
        (True, False)
    """
    return len(shape) == 3 and shape[0] in (1, 3)


def _check_rng(rng: Any) -> None:
    """A one-line ValueError unless ``rng`` is a numpy ``Generator`` (the sources' draws)."""
    if not isinstance(rng, np.random.Generator):
        raise ValueError(f"rng must be a numpy Generator (np.random.default_rng(seed)), got "
                         f"{type(rng).__name__}")


def env_labels(source: Any) -> list[str] | None:
    """The env ids of a source that can label its frames with at least two envs, else None."""
    env_ids = getattr(source, "env_ids", None)
    if not env_ids or len(env_ids) < 2 or not hasattr(source, "sample_frames_with_env"):
        return None
    return list(env_ids)


class ArrayFrameSource:
    """Serve frames from an in-memory array, optionally labelled with the env each came from.

    Args:
        frames: ``(N, C, H, W)`` uint8 images or ``(N, D)`` vectors.
        env_index: optional ``(N,)`` integer index into ``env_ids`` per frame.
        env_ids: names of the environments; defaults to ``["env0", ...]`` when ``env_index`` is
            given, ``[]`` otherwise.

    Draws are without replacement within one call when ``n <= N``.

    Example:
        >>> import numpy as np
        >>> src = ArrayFrameSource(np.zeros((10, 3, 8, 8), np.uint8), np.arange(10) % 2, ["a", "b"])
        >>> src.frame_shape, src.sample_frames(4, np.random.default_rng(0)).shape
        ((3, 8, 8), (4, 3, 8, 8))
        >>> frames, env = src.sample_frames_with_env(3, np.random.default_rng(0))
        >>> env.shape, len(src)
        ((3,), 10)
    """

    def __init__(
        self,
        frames: np.ndarray,
        env_index: np.ndarray | None = None,
        env_ids: Sequence[str] | None = None,
    ) -> None:
        frames = np.asarray(frames)
        if frames.ndim not in (2, 4) or len(frames) == 0:
            raise ValueError(
                "ArrayFrameSource needs frames shaped (N, C, H, W) or (N, D) with N >= 1, "
                f"got {frames.shape}"
            )
        if frames.ndim == 4 and frames.shape[3] in (1, 3, 4) and frames.shape[1] > 4:
            raise ValueError(f"ArrayFrameSource needs channels first (N, C, H, W), got "
                             f"{frames.shape}: pass np.moveaxis(frames, -1, 1)")
        if frames.ndim == 4 and frames.dtype != np.uint8:
            raise ValueError(f"ArrayFrameSource images must be uint8 0-255, got {frames.dtype}: "
                             "for floats in [0, 1] pass (frames * 255).round().astype(np.uint8)")
        if frames.ndim == 2 and (frames.dtype.kind not in "biuf"
                                 or not np.isfinite(frames).all()):
            bad = " with NaN or inf" if frames.dtype.kind == "f" else ""
            raise ValueError(f"ArrayFrameSource vectors must be finite numbers, got "
                             f"{frames.dtype}{bad}: drop or fix those frames")
        if isinstance(env_ids, str):  # one id, not its letters
            env_ids = [env_ids]
        if env_ids is not None:
            check_unique_env_ids(env_ids, "ArrayFrameSource")
        if env_index is not None:
            raw = np.asarray(env_index)
            if raw.dtype.kind not in "iuf" or (raw.dtype.kind == "f"
                                                and not np.array_equal(raw, np.round(raw))):
                raise ValueError(f"ArrayFrameSource: env_index must hold whole env indices, got "
                                 f"{raw.dtype} values such as {short_repr(raw.ravel()[:3], 40)}: "
                                 "pass one integer index into env_ids per frame")
            env_index = raw.astype(np.int64)
            if env_index.shape != (len(frames),):
                raise ValueError(
                    f"ArrayFrameSource: env_index must have shape ({len(frames)},), "
                    f"got {env_index.shape}"
                )
            if env_ids is None:
                env_ids = [f"env{i}" for i in range(int(env_index.max()) + 1)]
            if env_index.min() < 0 or env_index.max() >= len(env_ids):
                raise ValueError(
                    f"ArrayFrameSource: env_index values must lie in [0, {len(env_ids)}) "
                    "(one per env id)"
                )
        self.frames = frames
        self.env_index = env_index
        self.env_ids: list[str] = list(env_ids or [])
        self.frame_shape: tuple[int, ...] = tuple(int(s) for s in frames.shape[1:])

    def __len__(self) -> int:
        return len(self.frames)

    def _indices(self, n: int, rng: np.random.Generator) -> np.ndarray:
        n = whole_number(n, "sample_frames' n", error=ValueError)
        _check_rng(rng)
        return rng.choice(len(self.frames), size=n, replace=n > len(self.frames))

    def sample_frames(self, n: int, rng: np.random.Generator) -> np.ndarray:
        """Return ``n`` frames drawn at random (without replacement when ``n <= len(self)``)."""
        return self.frames[self._indices(n, rng)]

    def sample_frames_with_env(
        self, n: int, rng: np.random.Generator
    ) -> tuple[np.ndarray, np.ndarray]:
        """Return ``n`` frames and, per frame, its index into ``env_ids``."""
        if self.env_index is None:
            raise ValueError("this ArrayFrameSource has no env_index; pass one to label frames")
        index = self._indices(n, rng)
        return self.frames[index], self.env_index[index]

    def env_counts(self) -> np.ndarray:
        """Frames per env (index into ``env_ids``); the conditional GAN's label proportions."""
        if self.env_index is None:
            raise ValueError("this ArrayFrameSource has no env_index; pass one to label frames")
        return np.bincount(self.env_index, minlength=len(self.env_ids))


class DatasetFrameSource:
    """Frames of a rollout dataset (``gan_envs.datasets``), labelled with their environment.

    Training batches come from the reader's chunk-aware sampler (fast at random, see
    docs/dataset-format.md); :meth:`sample_frames_with_env` draws without replacement (the
    evaluation's disjoint real sets). Blank frames are left out when the dataset flags them.

    Args:
        path: a dataset written by ``gan-envs collect`` or ``RolloutWriter``.
        env_ids: only frames of these environments (default: all of the file's).
        exclude_blank: leave out frames flagged blank.
        in_memory: load the whole file into RAM.

    Example:
        >>> import tempfile, pathlib
        >>> from gan_envs.collect import CollectConfig, collect
        >>> path = pathlib.Path(tempfile.mkdtemp()) / "pong.h5"
        >>> _ = collect(CollectConfig(["GanAtari/Pong-v0"], path, steps=40, num_envs=2, size=32))
        >>> source = DatasetFrameSource(path)
        >>> source.frame_shape, source.sample_frames(8, np.random.default_rng(0)).shape
        ((3, 32, 32), (8, 3, 32, 32))
        >>> source.close()
    """

    def __init__(self, path: Any, *, env_ids: Sequence[str] | None = None,
                 exclude_blank: bool = True, in_memory: bool = False) -> None:
        from gan_envs.datasets import DatasetError, RolloutReader

        if isinstance(env_ids, str):  # one id, not its letters
            env_ids = [env_ids]
        if env_ids is not None and (not hasattr(env_ids, "__iter__")
                                    or not all(isinstance(e, str) for e in env_ids)):
            raise ValueError(f"{path}: env_ids must be env id strings such as "
                             f"'GanAtari/Pong-v0', got {short_repr(env_ids, 80)}")
        exclude_blank = flag(exclude_blank, "DatasetFrameSource's exclude_blank")
        in_memory = flag(in_memory, "DatasetFrameSource's in_memory")
        if env_ids is not None:
            check_unique_env_ids(env_ids, str(path))
        self.reader = RolloutReader(path, in_memory=in_memory)
        try:
            unknown = sorted(set(env_ids or []) - set(self.reader.env_ids))
            if unknown:
                raise DatasetError(f"{path}: holds no frames of {unknown}; it has "
                                   f"{self.reader.env_ids}")
            self.env_ids: list[str] = list(env_ids or self.reader.env_ids)
            self._filter = {"env_ids": self.env_ids,
                            "exclude_blank": exclude_blank and self.reader.has_blank_frame}
            self._indices = self.reader.frame_indices(**self._filter)
            if len(self._indices) == 0:
                what = ("holds no committed episodes" if self.reader.num_episodes == 0 else
                        f"holds no frames of {self.env_ids}"
                        + (" that are not blank" if self._filter["exclude_blank"] else ""))
                raise DatasetError(f"{path}: {what}; collect more (gan-envs collect ... "
                                   "--resume) and check it with gan-envs info")
            file_env = self.reader.frame_env_index()
            to_ours = {self.reader.env_ids.index(e): i for i, e in enumerate(self.env_ids)}
            self._file_env = file_env
            self._file_env_to_ours = np.array(
                [to_ours.get(i, -1) for i in range(len(self.reader.env_ids))] + [-1], np.int64)
            self._env_of_frame = self._file_env_to_ours[file_env[self._indices]]
        except BaseException:
            self.reader.close()
            raise
        self.frame_shape: tuple[int, ...] = tuple(int(s) for s in
                                                  self.reader.observation_space.shape)
        dtype = self.reader.observation_space.dtype
        if len(self.frame_shape) == 3 and dtype != np.uint8:
            self.reader.close()
            raise DatasetError(f"{path} holds {dtype} image frames; the trainers read images as "
                               "uint8 0-255: collect the data with scale=None (gan-envs collect "
                               "does)")

    def __len__(self) -> int:
        return len(self._indices)

    def sample_frames(self, n: int, rng: np.random.Generator) -> np.ndarray:
        """``n`` independent random frames, each uniform over the eligible frames.

        Every sample gets its own chunk draw (``chunks_per_batch = n``): the reader's faster
        default draws a batch from a few runs of consecutive, near-identical frames, and a GAN
        trained on such batches collapsed (fd/floor 1,456 and precision 0 after 4,143
        iterations, docs/gan.md). Independent draws cost < 1 ms per batch of 16 here.
        """
        n = whole_number(n, "sample_frames' n", error=ValueError)
        return self.reader.sample_frames(n, rng, chunks_per_batch=max(1, n), **self._filter)

    def sample_batch_with_env(
        self, n: int, rng: np.random.Generator
    ) -> tuple[np.ndarray, np.ndarray]:
        """:meth:`sample_frames` and each frame's env index (the conditional GAN's batches):
        the same independent draws, so the same ``rng`` state gives the same frames."""
        n = whole_number(n, "sample_batch_with_env's n", error=ValueError)
        _check_rng(rng)
        index = self.reader.chunk_index(**self._filter)
        positions = index.sample(n, rng, max(1, n))
        logical = index.frames[positions]
        return self.reader.frames(logical), self._file_env_to_ours[self._file_env[logical]]

    def env_counts(self) -> np.ndarray:
        """Eligible frames per env (index into ``env_ids``): the conditional GAN's label
        proportions."""
        return np.bincount(self._env_of_frame, minlength=len(self.env_ids))

    def sample_frames_with_env(
        self, n: int, rng: np.random.Generator
    ) -> tuple[np.ndarray, np.ndarray]:
        """``n`` distinct random frames (fewer if the dataset has fewer) and their env index,
        in random order (callers split one draw into disjoint sets)."""
        n = whole_number(n, "sample_frames_with_env's n", error=ValueError)
        _check_rng(rng)
        picks = rng.choice(len(self._indices), size=min(n, len(self._indices)), replace=False)
        return self.reader.frames(self._indices[picks]), self._env_of_frame[picks]

    def close(self) -> None:
        """Close the dataset file."""
        self.reader.close()


class EnvFrameSource:
    """Frames from random agents playing live Gymnasium environments, as the tutorial does.

    Each drawn frame: pick one env at random, take a random action, resize the observation to
    ``size x size`` with area interpolation, move channels first, and keep it unless it is blank
    (mean <= 0.01 on the 0-255 scale, the tutorial's filter); episodes reset when they end.

    Args:
        env_ids: Gymnasium ids, e.g. ``["ALE/Breakout-v5", "ALE/AirRaid-v5", "ALE/Pong-v5"]``
            (one id may be given as a string).
        size: side of the square frames.
        seed: seeds the environments' resets (actions and env choice come from ``rng``).
        make_kwargs: extra keyword arguments for every ``gym.make`` call.

    Live environments cannot be checkpointed: a resumed run that reads from them does not repeat
    the frames of an uninterrupted one (use a recorded dataset for that).

    Example:
        >>> src = EnvFrameSource(["ALE/Pong-v5"], size=32)
        >>> frames, env = src.sample_frames_with_env(2, np.random.default_rng(0))
        >>> frames.shape, frames.dtype, env.tolist()
        ((2, 3, 32, 32), dtype('uint8'), [0, 0])
        >>> src.close()
    """

    def __init__(
        self,
        env_ids: str | Sequence[str],
        size: int = 64,
        seed: int = 0,
        make_kwargs: dict[str, Any] | None = None,
    ) -> None:
        import gymnasium as gym

        from gan_envs.registration import resolve_env_id

        env_ids = [env_ids] if isinstance(env_ids, str) else list(env_ids)  # one id, not letters
        if not env_ids or not all(isinstance(e, str) for e in env_ids):
            raise ValueError(f"EnvFrameSource needs env ids such as 'GanAtari/Pong-v0', got "
                             f"{short_repr(env_ids, 80)}")
        check_unique_env_ids(env_ids, "EnvFrameSource")
        if any(e.startswith("ALE/") for e in env_ids):
            import ale_py

            gym.register_envs(ale_py)
        for env_id in env_ids:
            resolve_env_id(env_id)  # unknown: one line with the closest known ids
        self.env_ids: list[str] = env_ids
        self.size = whole_number(size, "EnvFrameSource's size", low=1, high=1024,
                                 error=ValueError)
        seed = whole_number(seed, "EnvFrameSource's seed", high=2**63 - 1 - len(env_ids),
                            error=ValueError)
        self.envs = []
        try:
            for env_id in self.env_ids:
                kwargs = dict(make_kwargs or {})
                if env_id.split(":")[-1].startswith("GanAtari/"):  # uint8 frames, no scaling
                    kwargs = {"size": self.size, "scale": None, "flicker": "flag", **kwargs}
                try:
                    env = gym.make(env_id, **kwargs)
                except gym.error.Error as exc:
                    raise ValueError(f"EnvFrameSource: cannot make {env_id!r}: {exc}") from None
                self.envs.append(env)
                obs, _ = env.reset(seed=seed + len(self.envs) - 1)
                env.action_space.seed(seed + len(self.envs) - 1)
                shape = self._process(obs).shape
        except BaseException:
            self.close()  # the envs made so far (emulators) are not left running
            raise
        self.frame_shape: tuple[int, ...] = tuple(int(s) for s in shape)

    def _process(self, obs: np.ndarray) -> np.ndarray:
        import cv2

        obs = np.asarray(obs)
        if obs.ndim == 2:
            obs = obs[..., None]
        if obs.ndim != 3:
            raise ValueError(f"EnvFrameSource needs image observations, got shape {obs.shape}")
        if obs.shape[0] in (1, 3) and obs.shape[-1] not in (1, 3):
            obs = obs.transpose(1, 2, 0)  # already channel-first: back to H x W x C
        if obs.shape[:2] != (self.size, self.size):
            obs = cv2.resize(obs, (self.size, self.size), interpolation=cv2.INTER_AREA)
            if obs.ndim == 2:
                obs = obs[..., None]
        return np.ascontiguousarray(obs.transpose(2, 0, 1)).astype(np.uint8, copy=False)

    def sample_frames_with_env(
        self, n: int, rng: np.random.Generator
    ) -> tuple[np.ndarray, np.ndarray]:
        """Play until ``n`` non-blank frames are collected; return them and their env index."""
        n = whole_number(n, "EnvFrameSource: n")
        frames = np.empty((n, *self.frame_shape), dtype=np.uint8)
        env_index = np.empty(n, dtype=np.int64)
        filled, attempts = 0, 0
        while filled < n:
            attempts += 1
            if attempts > 1000 * max(n, 1):
                raise RuntimeError(f"EnvFrameSource: {self.env_ids} keep producing blank frames")
            i = int(rng.integers(len(self.envs)))
            env = self.envs[i]
            space = env.action_space
            action = int(rng.integers(space.n)) if hasattr(space, "n") else space.sample()
            obs, _, terminated, truncated, _ = env.step(action)
            frame = self._process(obs)
            if frame.mean() > 0.01:
                frames[filled], env_index[filled] = frame, i
                filled += 1
            if terminated or truncated:
                env.reset()
        return frames, env_index

    def sample_frames(self, n: int, rng: np.random.Generator) -> np.ndarray:
        """Play until ``n`` non-blank frames are collected and return them."""
        return self.sample_frames_with_env(n, rng)[0]

    def close(self) -> None:
        """Close every environment."""
        for env in self.envs:
            env.close()
