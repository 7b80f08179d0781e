"""RecordRollouts: a Gymnasium wrapper that records every step of an env into a rollout file."""

from __future__ import annotations

import contextlib
import difflib
import inspect
import json
import math
import os
from pathlib import Path
from typing import Any, SupportsFloat

import gymnasium as gym
import numpy as np

from gan_envs.datasets.errors import DatasetError
from gan_envs.datasets.format import space_storage
from gan_envs.datasets.writer import RolloutWriter, check_folder, check_writer_options

__all__ = ["RecordRollouts"]


class RecordRollouts(gym.Wrapper, gym.utils.RecordConstructorArgs):
    """Record every step through a :class:`~gan_envs.datasets.RolloutWriter`.

    Each episode is committed when it terminates or is truncated; an episode cut short by
    ``reset()`` or ``close()`` is discarded, so the file only ever holds whole episodes. Works
    for image or vector observations and Discrete or Box actions. The env's id and
    ``env.spec.to_json()`` (when the spec can be written as JSON) go into the file's metadata.

    Example:
        >>> import tempfile, pathlib, gymnasium as gym
        >>> from gan_envs.datasets import RecordRollouts, RolloutReader
        >>> path = pathlib.Path(tempfile.mkdtemp()) / "cartpole.h5"
        >>> env = RecordRollouts(gym.make("CartPole-v1"), path, policy="random")
        >>> _ = env.action_space.seed(0)
        >>> obs, info = env.reset(seed=0)
        >>> done = False
        >>> while not done:
        ...     obs, reward, terminated, truncated, info = env.step(env.action_space.sample())
        ...     done = terminated or truncated
        >>> env.close()
        >>> with RolloutReader(path) as reader:
        ...     reader.num_episodes, reader.env_ids, reader.episode_info(0)["seed"]
        (1, ['CartPole-v1'], 0)

    Args:
        env: the environment to record.
        path: the rollout file to create (or to append to with ``resume=True``).
        policy: a description of the acting policy, stored as metadata.
        blank_frames: store ``info[blank_key]`` per observation; None (default) decides at the
            first ``reset()``: yes when its info has ``blank_key`` (a resumed file keeps what it
            has).
        blank_key: the info key that flags blank frames (``FlickerFilter`` sets it).
        overwrite: replace an existing file.
        resume: append to an existing file.
        writer_options: more keyword arguments for :class:`RolloutWriter` (``compression``,
            ``chunk_frames``, ``seed``, ``metadata``, ``fsync``, ...).

    Raises:
        FileExistsError: ``path`` exists and neither ``overwrite`` nor ``resume`` is set.
        FileNotFoundError: ``path``'s folder does not exist.
        TypeError: an unknown writer option.
        DatasetError: a space the format cannot store (``Dict``, ``Tuple``), a bad codec.
    """

    def __init__(self, env: gym.Env, path: str | os.PathLike[str], *, policy: str = "",
                 blank_frames: bool | None = None, blank_key: str = "blank_frame",
                 overwrite: bool = False, resume: bool = False, **writer_options: Any) -> None:
        if not isinstance(path, (str, os.PathLike)) or isinstance(os.fspath(path), bytes):
            raise TypeError(f"RecordRollouts path must be a str or pathlib.Path, got {path!r}")
        self.path = Path(path)
        _check_flags(self.path, policy=policy, blank_frames=blank_frames, blank_key=blank_key,
                     overwrite=overwrite, resume=resume)
        writer_options = _check_options(self.path, env, writer_options)
        gym.utils.RecordConstructorArgs.__init__(  # JSON-friendly: spec.to_json() works
            self, path=str(path), policy=policy, blank_frames=blank_frames, blank_key=blank_key,
            overwrite=overwrite, resume=resume, **writer_options)
        gym.Wrapper.__init__(self, env)
        if self.path.exists() and not (overwrite or resume):
            raise FileExistsError(f"{self.path} exists; pass overwrite=True to replace it or "
                                  "resume=True to append to it")
        spec = env.spec
        self._blank_key = blank_key
        self._options: dict[str, Any] = {
            "env_ids": [spec.id] if spec is not None else [],
            "env_specs": {spec.id: _spec_json(spec)} if spec is not None else None,
            "wrappers": _wrapper_list(spec),
            "policy": policy,
            "overwrite": overwrite,
            "resume": resume,
            **writer_options,
        }
        self._writer: RolloutWriter | None = None
        self._stopped = "step() before reset()"  # why step() cannot record now
        if blank_frames is not None:
            self._writer = self._open_writer(blank_frames)

    @property
    def writer(self) -> RolloutWriter | None:
        """The writer (None before the first ``reset()`` when ``blank_frames`` is None)."""
        return self._writer

    @property
    def num_episodes(self) -> int:
        """Episodes committed to the file so far."""
        return self._writer.num_episodes if self._writer is not None else 0

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None
              ) -> tuple[Any, dict[str, Any]]:
        obs, info = self.env.reset(seed=seed, options=options)
        if self._writer is None:  # auto: flags if the env gives them (a resumed file decides)
            resumed = self._options["resume"] and self.path.exists()
            self._writer = self._open_writer(self._blank_key in info and not resumed)
        writer = self._writer
        if writer.in_episode:
            writer.discard_episode()
        writer.begin_episode(obs, seed=seed, blank=self._blank(info))
        return obs, info

    def step(self, action: Any) -> tuple[Any, SupportsFloat, bool, bool, dict[str, Any]]:
        obs, reward, terminated, truncated, info = self.env.step(action)
        writer = self._writer
        if writer is None or not writer.in_episode:
            raise DatasetError(f"{self.path}: {self._stopped}; call reset() (RecordRollouts "
                               "records episodes from their first observation)")
        try:
            writer.add_step(action, reward, obs, terminated, truncated, blank=self._blank(info))
        except DatasetError:
            writer.discard_episode()  # never commit an episode with a missing step
            self._stopped = "the episode was discarded after a step the file refused"
            raise
        if terminated or truncated:
            writer.commit_episode()
            self._stopped = "step() after the episode ended (it is committed)"
        return obs, reward, terminated, truncated, info

    def close(self) -> None:
        """Discard an unfinished episode, close the file, then the env."""
        if self._writer is not None:
            self._writer.close()
        super().close()

    def _open_writer(self, blank_frames: bool) -> RolloutWriter:
        return RolloutWriter(self.path, self.env.observation_space, self.env.action_space,
                             blank_frames=blank_frames, **self._options)

    def _blank(self, info: dict[str, Any]) -> bool:
        return bool(info.get(self._blank_key, False)) if self._writer.blank_frames else False


def _check_flags(path: Path, **flags: Any) -> None:
    """RecordRollouts' own arguments: a string ``"no"`` for ``overwrite`` would replace a file."""
    for name in ("overwrite", "resume"):
        if not isinstance(flags[name], (bool, np.bool_)):
            raise TypeError(f"{path}: RecordRollouts {name} must be True or False, got "
                            f"{flags[name]!r}")
    if flags["overwrite"] and flags["resume"]:
        raise DatasetError(f"{path}: pass overwrite=True or resume=True, not both")
    if flags["blank_frames"] is not None and not isinstance(flags["blank_frames"],
                                                            (bool, np.bool_)):
        raise TypeError(f"{path}: RecordRollouts blank_frames must be True, False or None "
                        f"(decide at the first reset), got {flags['blank_frames']!r}")
    for name in ("policy", "blank_key"):
        if not isinstance(flags[name], str):
            raise TypeError(f"{path}: RecordRollouts {name} must be a string, got "
                            f"{flags[name]!r}")
    check_writer_options(path, policy=flags["policy"])  # text HDF5 can store, checked now


def _check_options(path: Path, env: gym.Env, options: dict[str, Any]) -> dict[str, Any]:
    """What the writer would refuse at the first ``reset()``, refused now; the options with
    NumPy numbers made plain (they are recorded in ``env.spec``, which must stay JSON)."""
    allowed = set(inspect.signature(RolloutWriter).parameters) - {
        "path", "observation_space", "action_space", "env_ids", "env_specs", "wrappers",
        "policy", "overwrite", "resume", "blank_frames"}
    unknown = sorted(set(options) - allowed)
    if unknown:
        close = difflib.get_close_matches(unknown[0], allowed, n=1)
        hint = f"did you mean {close[0]}?" if close else f"it takes {', '.join(sorted(allowed))}"
        raise TypeError(f"RecordRollouts got an unknown writer option {unknown[0]!r}; {hint}")
    plain = {k: v for k, v in options.items() if k not in ("fsync", "blank_key")}
    checked = check_writer_options(path, **plain)  # the writer's own checks, run now
    options = {**options, **{k: checked[k] for k in plain if k in checked}}
    if "fsync" in options and not isinstance(options["fsync"], (bool, np.bool_)):
        raise TypeError(f"{path}: RecordRollouts fsync must be True or False, got "
                        f"{options['fsync']!r}")
    for space, name in ((env.observation_space, "observation"), (env.action_space, "action")):
        try:
            space_storage(space)
        except DatasetError as err:
            raise DatasetError(f"{path}: cannot record this env's {name}s: {err}") from None
    check_folder(path)
    return options


def _spec_json(spec: gym.envs.registration.EnvSpec) -> str | None:
    """``spec.to_json()``, or None when the spec holds something JSON cannot (a callable)."""
    with contextlib.suppress(Exception):
        return spec.to_json()
    return None


def _wrapper_list(spec: gym.envs.registration.EnvSpec | None) -> list[dict[str, Any]]:
    """The wrappers recorded in the spec with their parameters (repr where not JSON)."""
    if spec is None:
        return []
    wrappers = [{"name": w.name, "entry_point": w.entry_point, "kwargs": w.kwargs}
                for w in spec.additional_wrappers]
    return _finite(json.loads(json.dumps(wrappers, default=repr)))


def _finite(value: Any) -> Any:
    """``value`` with every non-finite float as its text (``ClipReward(min_reward=-inf)``):
    metadata is strict JSON."""
    if isinstance(value, float) and not math.isfinite(value):
        return repr(value)
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_finite(v) for v in value]
    return value
