"""Where the World-Models trainer gets its episodes: a small protocol and an in-memory source.

- :class:`EpisodeSource`: anything with ``env_ids``, ``observation_shape`` (or an
  ``observation_space``), ``action_space``, ``num_episodes`` and ``episode(i)``; the rollout
  dataset reader (``gan_envs.datasets.RolloutReader``) is one.
- :class:`ArrayEpisodeSource`: episodes held in memory (tests, demos).
- :func:`collect_random_episodes`: a random agent plays a live env into an ArrayEpisodeSource.
- :func:`split_episodes` and :func:`window_index`: the held-out split and the sequence windows
  (windows never cross an episode boundary).

An episode is a dict of arrays: ``observations`` ``(T+1, C, H, W)`` uint8, ``actions`` ``(T,)``,
``rewards`` ``(T,)`` float32, ``terminations`` and ``truncations`` ``(T,)`` bool. Numpy only:
importing this module does not import torch.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Protocol, runtime_checkable

import gymnasium as gym
import numpy as np

__all__ = [
    "EPISODE_KEYS",
    "EpisodeSource",
    "ArrayEpisodeSource",
    "collect_random_episodes",
    "observation_shape_of",
    "split_episodes",
    "window_index",
]

#: The arrays every episode has (``env_id``, an index into ``env_ids``, is optional).
EPISODE_KEYS = ("observations", "actions", "rewards", "terminations", "truncations")


@runtime_checkable
class EpisodeSource(Protocol):
    """A source of whole episodes for the World-Models trainer.

    ``observation_shape`` is ``(C, H, W)`` for uint8 frames; ``episode(i)`` returns the arrays
    named in :data:`EPISODE_KEYS` for ``0 <= i < num_episodes`` (T steps, T + 1 observations).
    A source with an ``observation_space`` instead of ``observation_shape`` (the rollout reader)
    is accepted by the trainer too (see :func:`observation_shape_of`). An optional
    ``make_kwargs`` dict is passed to ``gym.make`` when the controller plays the env.
    """

    env_ids: list[str]
    observation_shape: tuple[int, ...]
    action_space: gym.Space
    num_episodes: int

    def episode(self, i: int) -> dict[str, np.ndarray]: ...


def observation_shape_of(source: Any) -> tuple[int, ...]:
    """The frame shape of a source: ``observation_shape``, else ``observation_space.shape``.

    Example:
        >>> from gymnasium.spaces import Box
        >>> class Reader: observation_space = Box(0, 255, (3, 64, 64), np.uint8)
        >>> observation_shape_of(Reader())
        (3, 64, 64)
    """
    shape = getattr(source, "observation_shape", None)
    if shape is None:
        space = getattr(source, "observation_space", None)
        shape = getattr(space, "shape", None)
    if shape is None:
        raise ValueError(f"{type(source).__name__} has neither observation_shape nor "
                         "observation_space; pass an EpisodeSource")
    return tuple(int(s) for s in shape)


class ArrayEpisodeSource:
    """Serve episodes held in memory.

    Args:
        episodes: dicts with the arrays of :data:`EPISODE_KEYS` (``rewards``, ``terminations``
            and ``truncations`` may be left out: zeros / False, the last step truncated).
        env_ids: the environment of the episodes (one id, or several with a per-episode
            ``env_id`` index).
        action_space: the action space (``Discrete`` for Atari).
        make_kwargs: extra ``gym.make`` arguments to rebuild the env (e.g. ``scale=None``).

    Example:
        >>> from gymnasium.spaces import Discrete
        >>> obs = np.zeros((6, 3, 64, 64), np.uint8)
        >>> src = ArrayEpisodeSource([{"observations": obs, "actions": np.zeros(5, int)}],
        ...                          ["GanAtari/Pong-v0"], Discrete(6))
        >>> src.num_episodes, src.observation_shape, src.episode(0)["rewards"].shape
        (1, (3, 64, 64), (5,))
    """

    def __init__(
        self,
        episodes: Sequence[dict[str, np.ndarray]],
        env_ids: Sequence[str],
        action_space: gym.Space,
        make_kwargs: dict[str, Any] | None = None,
    ) -> None:
        if isinstance(env_ids, str):
            env_ids = [env_ids]
        if len(episodes) == 0:
            raise ValueError("ArrayEpisodeSource needs at least one episode")
        self.env_ids: list[str] = list(env_ids)
        self.action_space = action_space
        self.make_kwargs = None if make_kwargs is None else dict(make_kwargs)
        self.episodes = [self._checked(i, ep) for i, ep in enumerate(episodes)]
        shapes = {ep["observations"].shape[1:] for ep in self.episodes}
        if len(shapes) != 1:
            raise ValueError(f"ArrayEpisodeSource: episodes have different frame shapes {shapes}")
        self.observation_shape: tuple[int, ...] = tuple(int(s) for s in shapes.pop())

    @staticmethod
    def _checked(i: int, episode: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        if "observations" not in episode:
            raise ValueError(f"ArrayEpisodeSource: episode {i} has no observations")
        obs = np.asarray(episode["observations"])
        steps = len(obs) - 1
        if steps < 1:
            raise ValueError(f"ArrayEpisodeSource: episode {i} needs at least 2 observations")
        out = {"observations": obs}
        if "actions" in episode:
            out["actions"] = np.asarray(episode["actions"])
        truncations = np.zeros(steps, bool)
        truncations[-1] = not bool(np.asarray(episode.get("terminations", [False]))[-1])
        defaults = {"rewards": np.zeros(steps, np.float32),
                    "terminations": np.zeros(steps, bool), "truncations": truncations}
        for name, default in defaults.items():
            value = np.asarray(episode.get(name, default)).astype(default.dtype)
            out[name] = value
        for name, value in out.items():
            if name != "observations" and len(value) != steps:
                raise ValueError(f"ArrayEpisodeSource: episode {i} has {steps + 1} observations "
                                 f"but {len(value)} {name} (needs {steps})")
        if "env_id" in episode:
            out["env_id"] = np.asarray(episode["env_id"])
        return out

    @property
    def num_episodes(self) -> int:
        """Episodes held."""
        return len(self.episodes)

    def __len__(self) -> int:
        return len(self.episodes)

    def episode(self, i: int) -> dict[str, np.ndarray]:
        """The arrays of episode ``i`` (the stored arrays, not copies)."""
        return self.episodes[i]


def collect_random_episodes(
    env_id: str,
    episodes: int = 2,
    max_steps: int = 100,
    seed: int = 0,
    **make_kwargs: Any,
) -> ArrayEpisodeSource:
    """Play ``episodes`` episodes of a uniformly random policy and keep them in memory.

    Each episode resets with seed ``seed + i`` and ends when the env terminates or truncates, or
    after ``max_steps`` steps (then its last step is marked truncated). GanAtari ids default to
    uint8 frames (``scale=None``); other ``make_kwargs`` go to ``gym.make``.

    Example:
        >>> src = collect_random_episodes("GanAtari/Pong-v0", episodes=1, max_steps=3)
        >>> ep = src.episode(0)
        >>> ep["observations"].shape, ep["observations"].dtype, ep["truncations"].tolist()
        ((4, 3, 64, 64), dtype('uint8'), [False, False, True])
    """
    if episodes < 1 or max_steps < 1:
        raise ValueError(f"collect_random_episodes needs episodes >= 1 and max_steps >= 1, "
                         f"got {episodes} and {max_steps}")
    if env_id.startswith("GanAtari/"):
        make_kwargs.setdefault("scale", None)
    env = gym.make(env_id, **make_kwargs)
    rng = np.random.default_rng(seed)
    out = []
    try:
        for i in range(episodes):
            obs, _ = env.reset(seed=seed + i)
            frames, actions, rewards, terms, truncs = [obs], [], [], [], []
            for t in range(max_steps):
                action = int(rng.integers(env.action_space.n))
                obs, reward, terminated, truncated, _ = env.step(action)
                truncated = bool(truncated or (t == max_steps - 1 and not terminated))
                frames.append(obs)
                actions.append(action)
                rewards.append(reward)
                terms.append(terminated)
                truncs.append(truncated)
                if terminated or truncated:
                    break
            out.append({"observations": np.stack(frames), "actions": np.array(actions),
                        "rewards": np.array(rewards, np.float32),
                        "terminations": np.array(terms, bool),
                        "truncations": np.array(truncs, bool)})
    finally:
        env.close()
    return ArrayEpisodeSource(out, [env_id], env.action_space, make_kwargs)


def split_episodes(num_episodes: int, holdout_fraction: float) -> tuple[np.ndarray, np.ndarray]:
    """Split episode numbers into training and held-out ones: the last ``holdout_fraction``.

    At least one episode is held out when there are two or more (none from a single episode);
    the split is the same for every stage and for the evaluation.

    Example:
        >>> train, held = split_episodes(10, 0.2)
        >>> train.tolist(), held.tolist()
        ([0, 1, 2, 3, 4, 5, 6, 7], [8, 9])
        >>> [a.tolist() for a in split_episodes(1, 0.2)]
        [[0], []]
    """
    if not 0.0 <= holdout_fraction < 1.0:
        raise ValueError(f"holdout_fraction must lie in [0, 1), got {holdout_fraction}")
    held = 0
    if num_episodes >= 2 and holdout_fraction > 0:
        held = min(max(1, round(num_episodes * holdout_fraction)), num_episodes - 1)
    order = np.arange(num_episodes)
    return order[: num_episodes - held], order[num_episodes - held:]


def window_index(lengths: Sequence[int], seq_len: int) -> np.ndarray:
    """Non-overlapping windows of ``seq_len`` steps inside each episode, as ``(episode, start)``
    rows; an episode's last window may be shorter (the trainer pads and masks it).

    Example:
        >>> window_index([5, 2], seq_len=2).tolist()
        [[0, 0], [0, 2], [0, 4], [1, 0]]
    """
    if seq_len < 1:
        raise ValueError(f"seq_len must be >= 1, got {seq_len}")
    rows = [(e, s) for e, n in enumerate(lengths) for s in range(0, int(n), seq_len)]
    return np.array(rows, dtype=np.int64).reshape(-1, 2)
