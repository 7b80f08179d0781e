"""Parallel, multi-game, resumable collection of rollouts into one dataset (``gan-envs collect``).

Each environment id gets a vector env of ``num_envs`` copies: GanAtari ids use ale-py's C++
``AtariVectorEnv`` (the ``gym.make_vec`` fast path) with uint8 channel-first frames and the
blank-frame flag; any other Gymnasium id goes through ``gym.make_vec`` (synchronous). The ids
are stepped in turn, so a mixed dataset is balanced by steps, and every step is labelled with
its env id.

The stepping thread only steps, picks actions and keeps references to each batch; a finished
episode is handed to a writer thread (:class:`~gan_envs.background.BackgroundCalls`) that
gathers its frames, compresses them outside the GIL and commits it. The writer thread runs at a
lower scheduling priority (Linux niceness +10), so the emulators keep the cores and the writer
fills their idle moments. Ctrl-C, an error or the end of the run first commits every episode
already handed over.

Targets: with ``steps=N`` every one of the ``len(env_ids) * num_envs`` sub-environments records
an equal share of exactly ``N`` steps; an episode still running when its share is reached is
committed **truncated** (``truncations[-1] = True``: it ended for a reason outside the game,
which is what truncation means in Gymnasium). With ``episodes=N`` the sub-environments share
``N`` complete episodes and episodes still running at the end are dropped. Either way,
terminations and truncations are the environment's own except for that one truncation flag.

Example:
    >>> import tempfile, pathlib
    >>> out = pathlib.Path(tempfile.mkdtemp()) / "cartpole.h5"
    >>> summary = collect(CollectConfig(["CartPole-v1"], out, steps=200, num_envs=2))
    >>> summary.steps, summary.episodes >= 2
    (200, True)
"""

from __future__ import annotations

import os
import shlex
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import gymnasium as gym
import numpy as np

from gan_envs._numbers import whole_number
from gan_envs._text import first_line, short_repr
from gan_envs.background import BackgroundCalls
from gan_envs.policies import load_policy, policy_actions, policy_name, policy_target
from gan_envs.registration import NAMESPACE, resolve_env_id
from gan_envs.wrappers import normalize_size, supports_send_recv

if TYPE_CHECKING:
    from gan_envs.datasets import DatasetValueError, RolloutReader

__all__ = [
    "CollectConfig",
    "CollectError",
    "CollectProgress",
    "CollectSummary",
    "collect",
    "make_collection_envs",
    "run_collection",
]


class CollectError(ValueError):
    """A collection that cannot start: bad targets, an existing output, a bad policy."""


@dataclass
class CollectConfig:
    """What to collect and where."""

    env_ids: Sequence[str]
    """Gymnasium ids, e.g. ``["GanAtari/Breakout-v0", "GanAtari/Pong-v0"]``, ``["CartPole-v1"]``."""
    out: str | Path
    """The HDF5 file to write (a `.h5` or `.hdf5` name)."""
    steps: int | None = None
    """Total environment steps over all envs (exactly; running episodes end truncated)."""
    episodes: int | None = None
    """Total complete episodes over all envs (give ``steps`` or ``episodes``, not both)."""
    num_envs: int = 8
    """Parallel copies of each environment."""
    seed: int = 0
    """Seeds the resets and the random policy: the same config gives identical arrays."""
    policy: str | Callable[..., Any] = "random"
    """``"random"``, ``"module:callable"``, or a policy or factory itself (see
    :mod:`gan_envs.policies`)."""
    size: int | Sequence[int] | None = None
    """Frame size for GanAtari ids (None: 64); refused when no id is a GanAtari one (other envs'
    frames are stored as they come)."""
    compression: str | None = None
    """Dataset codec (``None``: the format's default)."""
    resume: bool = False
    """Continue an interrupted collection to the same target."""
    overwrite: bool = False
    """Replace an existing output file."""
    command: str = field(default_factory=lambda: shlex.join(sys.argv))
    """Recorded in the dataset's metadata."""

    def __post_init__(self) -> None:
        if isinstance(self.env_ids, str):  # one id, not its letters
            self.env_ids = [self.env_ids]
        try:
            self.env_ids = list(self.env_ids)
        except TypeError:
            raise CollectError(f"env_ids must be a list of environment ids, got "
                               f"{short_repr(self.env_ids, 80)}") from None
        if not self.env_ids:
            raise CollectError("collect needs at least one environment id")
        for env_id in self.env_ids:
            if not isinstance(env_id, str):
                raise CollectError(f"environment ids are strings such as 'GanAtari/Pong-v0', "
                                   f"got {short_repr(env_id, 80)}")
        if (self.steps is None) == (self.episodes is None):
            raise CollectError("collect needs exactly one target: steps=N or episodes=N")
        if self.steps is not None:
            self.steps = whole_number(self.steps, "the collection target steps", low=1,
                                      error=CollectError)
        else:
            self.episodes = whole_number(self.episodes, "the collection target episodes",
                                         low=1, error=CollectError)
        self.num_envs = whole_number(self.num_envs, "num_envs", low=1, high=MAX_NUM_ENVS,
                                     error=CollectError)
        self.seed = whole_number(self.seed, "collect's seed", high=2**63 - 1, error=CollectError)
        if not (isinstance(self.policy, str) or callable(self.policy)):
            raise CollectError(f"policy must be 'random', 'module:callable' or a callable, got "
                               f"{short_repr(self.policy, 80)}")
        if self.compression is not None and self.compression not in COMPRESSION_CHOICES:
            raise CollectError(f"compression must be one of {COMPRESSION_CHOICES}, got "
                               f"{self.compression!r}")
        if not isinstance(self.command, str):
            raise CollectError(f"command must be a string, got {short_repr(self.command, 80)}")
        if not isinstance(self.out, (str, os.PathLike)) or not str(self.out):
            raise CollectError(f"out must be a file path, got {short_repr(self.out, 80)}")
        if self.resume and self.overwrite:
            raise CollectError("choose --resume or --overwrite, not both")
        self.env_ids = [resolve_env_id(env_id) for env_id in self.env_ids]
        if len(set(self.env_ids)) != len(self.env_ids):
            raise CollectError(f"environment ids repeat: {list(self.env_ids)}; give each once "
                               "(--num-envs sets the copies of each)")
        if self.size is None:
            self.size = 64
        elif not any(gym.spec(e).namespace == NAMESPACE for e in self.env_ids):
            raise CollectError(f"--size resizes {NAMESPACE} frames, and none of "
                               f"{', '.join(self.env_ids)} is a {NAMESPACE} id (their "
                               f"observations are stored as they come); drop --size, or "
                               f"collect {NAMESPACE}/<Game>-v0")
        try:
            normalize_size(self.size, "collect", max_side=MAX_SIZE)
        except ValueError as err:
            raise CollectError(f"{err}; pass another --size") from None
        self.out = Path(self.out)

    @property
    def policy_name(self) -> str:
        """The policy as recorded in the dataset: its spec, or ``module:name`` of a callable."""
        return policy_name(self.policy)


MAX_SIZE = 1024
"""Largest frame side ``collect`` resizes to (a 1024x1024 RGB frame is 3 MiB)."""
MAX_NUM_ENVS = 1024
"""Most copies of one environment ``collect`` steps (each ALE copy holds its emulator)."""
COMPRESSION_CHOICES = ("gzip", "lzf", "none")
"""Codecs ``collect`` takes (``"none"``: uncompressed)."""


@dataclass
class CollectProgress:
    """Counts reported to the progress callback after every batch of steps."""

    steps: int
    """Steps taken so far (committed or in running episodes), earlier runs included."""
    episodes: int
    """Episodes committed so far, earlier runs included."""
    target_steps: int | None
    target_episodes: int | None
    bytes_written: int


@dataclass
class CollectSummary:
    """What a finished collection holds (including episodes from before a resume)."""

    path: Path
    steps: int
    episodes: int
    frames: int
    blank_frames: int
    env_ids: list[str]
    resumed_from_steps: int = 0


def make_collection_envs(env_id: str, num_envs: int, size: int | Sequence[int] = 64
                         ) -> gym.vector.VectorEnv:
    """The vector env that collection steps for ``env_id``.

    GanAtari ids: uint8 channel-first frames, ``flicker="flag"`` (frames stored as the game
    drew them, with the blank flag), through the ``AtariVectorEnv`` fast path. Other ids:
    ``gym.make_vec(env_id, num_envs, vectorization_mode="sync")``.
    """
    spec = gym.spec(env_id)
    if spec.namespace == NAMESPACE:
        return gym.make_vec(env_id, num_envs=num_envs, size=size, scale=None, flicker="flag")
    return gym.make_vec(env_id, num_envs=num_envs, vectorization_mode="sync")


class _Log:
    """One vector env's recent batches, dropped once no open episode needs them.

    Batch ``t`` holds the observations received at step ``t`` (with the rewards and flags that
    came with them, the blank flags, and the actions sent in reply).
    """

    def __init__(self) -> None:
        self.base = 0  # step number of batches[0]
        self.batches: list[tuple[Any, ...]] = []

    @property
    def end(self) -> int:
        return self.base + len(self.batches)

    def append(self, obs, blank, rewards, terminations, truncations, actions) -> None:
        if self.batches and np.may_share_memory(obs, self.batches[-1][0]):
            obs = obs.copy()  # an env that reuses its output buffer
        self.batches.append((obs, None if blank is None else np.array(blank, dtype=bool),
                             np.array(rewards, dtype=np.float32),
                             np.array(terminations, dtype=bool),
                             np.array(truncations, dtype=bool), actions))

    def drop_before(self, step: int) -> None:
        if step > self.base:
            del self.batches[:step - self.base]
            self.base = step

    def episode(self, i: int, first: int, last: int, seed: int | None,
                cut_short: bool) -> _Episode:
        """Sub-env ``i``'s episode from its first observation at step ``first`` to ``last``."""
        return _Episode(i, self.batches[first - self.base:last - self.base + 1], seed, cut_short)


class _Episode:
    """A finished episode as references into the log; :meth:`arrays` gathers it (N+1 frames).

    Gathering runs on the writer thread, so the stepping thread only keeps references.
    """

    def __init__(self, i: int, batches: list[tuple[Any, ...]], seed: int | None,
                 cut_short: bool) -> None:
        self.i, self.batches, self.seed, self.cut_short = i, batches, seed, cut_short

    def __len__(self) -> int:
        return len(self.batches) - 1

    def arrays(self) -> dict[str, np.ndarray]:
        i, steps = self.i, self.batches[1:]
        arrays = {
            "observations": np.stack([batch[0][i] for batch in self.batches]),
            "actions": np.stack([batch[5][i] for batch in self.batches[:-1]]),
            "rewards": np.array([batch[2][i] for batch in steps], dtype=np.float32),
            "terminations": np.array([batch[3][i] for batch in steps], dtype=bool),
            "truncations": np.array([batch[4][i] for batch in steps], dtype=bool),
        }
        if self.cut_short:
            arrays["truncations"][-1] = True  # the target, not the game, ended it
        if self.batches[0][1] is not None:
            arrays["blank_frame"] = np.array([batch[1][i] for batch in self.batches], dtype=bool)
        return arrays


_WRITER_NICE = 10  # lower priority, still ~10 % of a core against a busy one (19 would be 1.5 %)
_NEVER = np.iinfo(np.int64).max  # the deadline of a sub-env that has no step target to reach


def _stream_seed(seed: int, index: int) -> int:
    """The reset (and random-policy) seed of the ``index``-th environment id of a run; below
    ``2**31 - MAX_NUM_ENVS``, so that sub-environment ``i``'s seed (this + ``i``) fits the C
    ``int`` ALE's vector env keeps seeds in (a few seeds once failed at --num-envs 460)."""
    return int(np.random.SeedSequence([seed, index]).generate_state(1)[0] >> 1) \
        % (2**31 - MAX_NUM_ENVS)


def _shares(total: int, parts: int) -> list[int]:
    """``total`` split into ``parts`` near-equal ints (the first ones get the remainder)."""
    base, extra = divmod(total, parts)
    return [base + (i < extra) for i in range(parts)]


def run_collection(
    vector_envs: Sequence[gym.vector.VectorEnv],
    commit: Callable[[int, _Episode], None],
    *,
    seed: int,
    policies: Sequence[Callable[[np.ndarray, dict[str, Any]], np.ndarray]],
    steps: int | None,
    episodes: int | None,
    after_batch: Callable[[int, int], None] | None = None,
) -> tuple[int, int]:
    """Step every vector env in turn until each sub-environment met its share of the target.

    ``commit(env_index, episode)`` receives each finished episode; ``episode.arrays()`` gathers
    its arrays and ``episode.seed`` is the reset seed of a sub-environment's first episode
    (``None`` for the autoreset episodes after it). ``after_batch(steps_taken,
    episodes_committed)`` follows every batch. Returns the steps and episodes committed.
    Deterministic for fixed arguments. The per-step work is a few array operations per batch;
    Python loops only over the sub-environments whose episode just ended.
    """
    if not vector_envs or len({envs.num_envs for envs in vector_envs}) != 1:
        raise CollectError(f"run_collection steps vector envs of one num_envs each, got "
                           f"{[envs.num_envs for envs in vector_envs]}")
    if (steps is None) == (episodes is None):
        raise CollectError("run_collection needs exactly one target: steps or episodes")
    num_envs = vector_envs[0].num_envs
    n_sub = len(vector_envs) * num_envs
    # copy i of id j takes share i * len(ids) + j: a remainder goes round the ids, so that the
    # ids' totals differ by one at most (first ids first got it all: --steps 5 --num-envs 8 of
    # two ids collected 5 steps of the first and none of the second)
    target = _shares(steps if steps is not None else episodes, n_sub)
    streams = []
    for index, envs in enumerate(vector_envs):
        streams.append(_Stream(index, envs, policies[index], _stream_seed(seed, index),
                               target[index::len(vector_envs)],
                               by_steps=steps is not None))
    # Asynchronous stepping where the stack allows it (the AtariVectorEnv fast path): the next
    # actions are sent before this step's bookkeeping, so the emulators run while Python works.
    # Results and actions are the same either way.
    asynchronous = all(supports_send_recv(envs) for envs in vector_envs)
    for s in streams:
        if asynchronous:
            s.envs.send(s.actions)
    steps_taken = total_steps = total_episodes = 0
    running = [s for s in streams if not s.finished]
    while running:
        for s in running:
            envs, log = s.envs, s.log
            obs, rewards, terminations, truncations, infos = (
                envs.recv() if asynchronous else envs.step(s.actions))
            s.actions = policy_actions(s.act, obs, infos, envs.action_space)
            if asynchronous:
                envs.send(s.actions)  # runs while the bookkeeping below is done
            log.append(obs, infos.get("blank_frame"), rewards, terminations, truncations,
                       s.actions)
            now = log.end - 1
            steps_taken += s.stepping
            s.stepping = s.unfinished
            ended = np.logical_or(terminations, truncations)
            if now < s.next_deadline and not ended.any():
                continue
            # an episode ended or reached the step target: the rare path, env by env
            for i in range(num_envs):
                if s.done[i] or now == s.first[i]:  # finished, or showing a reset frame
                    continue
                cut_short = now >= s.deadline[i] and not ended[i]
                if not (ended[i] or cut_short):
                    continue
                episode = log.episode(i, s.first[i], now, s.seeds[i], cut_short)
                commit(s.index, episode)
                s.seeds[i] = None
                s.steps[i] += len(episode)
                s.episodes[i] += 1
                total_steps += len(episode)
                total_episodes += 1
                left = s.share[i] - (s.steps[i] if s.by_steps else s.episodes[i])
                s.stepping -= 1  # not stepping on the next batch: done, or a reset frame
                if left <= 0:
                    s.done[i] = True
                    s.unfinished -= 1
                    s.deadline[i] = _NEVER
                else:  # next-step autoreset: the next frame starts its next episode
                    s.first[i] = now + 1
                    s.deadline[i] = now + 1 + left if s.by_steps else _NEVER
            s.next_deadline = min(s.deadline)
            log.drop_before(min((s.first[i] for i in range(num_envs) if not s.done[i]),
                                default=log.end))
            if s.finished:
                if asynchronous:
                    envs.recv()  # collect the step sent ahead, unused
                running = [r for r in running if not r.finished]
        if after_batch is not None:
            after_batch(steps_taken, total_episodes)
    return total_steps, total_episodes


class _Stream:
    """The collection state of one environment id's vector env."""

    def __init__(self, index: int, envs: gym.vector.VectorEnv, act: Callable[..., Any],
                 stream_seed: int, share: list[int], *, by_steps: bool) -> None:
        n = envs.num_envs
        self.index, self.envs, self.act, self.share, self.by_steps = (
            index, envs, act, share, by_steps)
        obs, infos = envs.reset(seed=stream_seed)
        self.actions = policy_actions(act, obs, infos, envs.action_space)
        self.log = _Log()
        self.log.append(obs, infos.get("blank_frame"), np.zeros(n), np.zeros(n, bool),
                        np.zeros(n, bool), self.actions)
        self.seeds: list[int | None] = [stream_seed + i for i in range(n)]
        self.first = [0] * n  # the step of each open episode's first frame
        self.steps = [0] * n  # committed steps
        self.episodes = [0] * n
        self.done = [x == 0 for x in share]
        # the step at which a sub-env's open episode reaches its share of a step target
        self.deadline = [x if by_steps and x else _NEVER for x in share]
        self.next_deadline = min(self.deadline)
        self.unfinished = self.stepping = n - sum(self.done)

    @property
    def finished(self) -> bool:
        return self.unfinished == 0


def _common_spaces(env_ids: Sequence[str], vector_envs: Sequence[gym.vector.VectorEnv]
                   ) -> tuple[gym.Space, gym.Space, dict[str, str]]:
    """The dataset's observation and action spaces for a mix of environments.

    Observations must agree. Discrete actions of different sizes (Breakout has 4, Pong 6) are
    stored in the largest ``Discrete``; each env's own action space goes into the metadata.
    """
    from gan_envs.datasets.format import space_to_json

    obs_spaces = [envs.single_observation_space for envs in vector_envs]
    act_spaces = [envs.single_action_space for envs in vector_envs]
    for env_id, space in zip(env_ids, obs_spaces, strict=True):
        if not isinstance(space, gym.spaces.Box):
            raise CollectError(f"{env_id}: collect stores Box observations, got {space}")
        if space != obs_spaces[0]:
            raise CollectError(f"{env_id} observes {space} but {env_ids[0]} observes "
                               f"{obs_spaces[0]}; collect them into separate files")
    per_env = {e: space_to_json(a) for e, a in zip(env_ids, act_spaces, strict=True)}
    if all(a == act_spaces[0] for a in act_spaces):
        return obs_spaces[0], act_spaces[0], per_env
    if all(isinstance(a, gym.spaces.Discrete) and a.start == 0 for a in act_spaces):
        return obs_spaces[0], gym.spaces.Discrete(max(int(a.n) for a in act_spaces)), per_env
    raise CollectError(f"the action spaces differ and cannot be merged: {per_env}; "
                       "collect these environments into separate files")


def _env_spec_json(env_id: str, envs: gym.vector.VectorEnv) -> str | None:
    spec = getattr(envs.unwrapped, "spec", None) or gym.spec(env_id)
    try:
        return spec.to_json()
    except (ValueError, TypeError):  # a spec with a callable can't be serialised
        return None


DATASET_SUFFIXES = (".h5", ".hdf5")
"""Names ``collect`` writes datasets under (so a typo cannot replace a PNG or a checkpoint)."""


def _check_output(config: CollectConfig) -> None:
    out = config.out
    if out.is_dir():
        raise IsADirectoryError(f"{out} is a folder; give a file name such as {out / 'data.h5'}")
    if out.suffix.lower() not in DATASET_SUFFIXES:
        raise CollectError(f"{out}: datasets are HDF5 files; give --out a .h5 (or .hdf5) name")
    if config.overwrite and out.is_file() and not _replaceable(out):
        raise CollectError(f"{out} is not an HDF5 file, so --overwrite will not replace it; "
                           "delete it yourself or choose another --out")
    if out.exists() and not (config.resume or config.overwrite):
        raise FileExistsError(f"{out} exists; pass --resume to continue it or --overwrite to "
                              "replace it")
    if out.parent.exists() and not out.parent.is_dir():
        raise NotADirectoryError(f"{out.parent} is a file, not a folder; choose another --out")
    if not out.parent.is_dir():
        raise FileNotFoundError(f"{out.parent} does not exist; create the folder first")
    if not os.access(out.parent, os.W_OK):
        raise PermissionError(f"{out.parent} is not writable; choose another --out")


def _check_resumed_settings(config: CollectConfig, reader: Any) -> None:
    """Refuse to resume a file with another policy, seed, compression, frame size or number of
    copies than it records: the new episodes would not be what its metadata says."""
    recorded = reader.metadata
    clashes = []
    if recorded.get("policy") is not None and recorded["policy"] != config.policy_name:
        clashes.append(f"--policy {recorded['policy']}")
    if recorded.get("seed") is not None and recorded["seed"] != config.seed:
        clashes.append(f"--seed {recorded['seed']}")
    if config.compression is not None and _codec(config) != reader.compression:
        clashes.append(f"--compression {reader.compression or 'none'}")
    recorded_size = (recorded.get("wrappers") or {}).get("size")
    try:  # (a file written through RolloutWriter may record any wrappers)
        recorded_size = None if recorded_size is None else normalize_size(recorded_size)
    except (TypeError, ValueError):
        recorded_size = None
    if recorded_size is not None and recorded_size != normalize_size(config.size):
        height, width = recorded_size
        clashes.append(f"--size {height}" if height == width else
                       f"size=({height}, {width}) (collect(CollectConfig(size=...)); --size "
                       "makes square frames only)")
    recorded_envs = (recorded.get("user_metadata") or {}).get("num_envs")
    if recorded_envs is not None and recorded_envs != config.num_envs:
        clashes.append(f"--num-envs {recorded_envs}")
    if clashes:
        raise CollectError(f"{config.out} was collected with {', '.join(clashes)}; resume with "
                           "the same settings, or write a new file")


def _unstorable_episode(env_id: str, policy: str, error: DatasetValueError) -> str:
    """The one line for an episode the writer refused: the env's values, or the policy's."""
    if error.array == "actions":
        return (f"policy {policy} gave {env_id} actions that cannot be stored "
                f"({first_line(error)}); return actions inside the env's action_space")
    if error.array == "observations":
        fix = ("make its observations fit its observation_space, e.g. wrap the env in "
               "gymnasium.wrappers.ClipObservation")
    elif error.array == "rewards":
        fix = ("make its rewards finite and within float32, e.g. wrap the env in "
               "gymnasium.wrappers.TransformReward")
    else:
        fix = "make its values fit its spaces"
    return f"{env_id} gave an episode that cannot be stored ({first_line(error)}); {fix}"


def _open_resumed(path: Path) -> RolloutReader:
    """A RolloutReader of the file ``--resume`` continues, to count its episodes and compare
    its settings; a killed writer's file that readers refuse (the kill tore HDF5's metadata)
    is recovered first, as the writer's ``resume=True`` would do anyway."""
    from gan_envs.datasets import CorruptDatasetError, RolloutReader, RolloutWriter
    from gan_envs.datasets.reader import RECOVER_HINT

    try:
        return RolloutReader(path)
    except CorruptDatasetError as error:
        if error.hint != RECOVER_HINT:
            raise
    RolloutWriter(path, resume=True).close()
    return RolloutReader(path)


def collect(config: CollectConfig,
            progress: Callable[[CollectProgress], None] | None = None) -> CollectSummary:
    """Collect rollouts into ``config.out``; see the module docstring for the targets.

    Ctrl-C (``KeyboardInterrupt``) and crashes keep every finished episode; ``resume=True``
    continues to the same target (the interrupted episodes are lost, new ones are collected
    with a seed derived from ``seed`` and the number of episodes already in the file). A new
    file that Ctrl-C or a failing policy stops before its first episode is removed again.

    Raises:
        FileExistsError: the output exists and neither ``resume`` nor ``overwrite`` is set.
        CollectError: bad targets, mismatched spaces, a resumed file for other env ids.
        PolicyError: a policy that cannot be loaded.
    """
    from gan_envs.datasets import DatasetValueError, RolloutWriter

    _check_output(config)
    if isinstance(config.policy, str) and config.policy != "random":
        policy_target(config.policy)  # a bad spec is refused before any environment is made
    done_steps = done_episodes = 0
    if config.resume and config.out.exists():
        with _open_resumed(config.out) as reader:
            done_steps, done_episodes = reader.num_steps, reader.num_episodes
            if list(reader.env_ids) != list(config.env_ids):
                raise CollectError(f"{config.out} holds {reader.env_ids}, not "
                                   f"{list(config.env_ids)}; resume with the same ids")
            _check_resumed_settings(config, reader)
    steps_left = None if config.steps is None else config.steps - done_steps
    episodes_left = None if config.episodes is None else config.episodes - done_episodes
    summary = dict(path=config.out, env_ids=list(config.env_ids), resumed_from_steps=done_steps)
    if (steps_left is not None and steps_left <= 0) or (episodes_left is not None
                                                         and episodes_left <= 0):
        return _summarise(summary)

    run_seed = config.seed if done_episodes == 0 else int(
        np.random.SeedSequence([config.seed, done_episodes]).generate_state(1)[0] >> 1)
    vector_envs: list[gym.vector.VectorEnv] = []
    created = not config.out.exists()
    opened = False  # whether this run's writer took the file (only then may it remove it)
    try:
        for env_id in config.env_ids:
            vector_envs.append(make_collection_envs(env_id, config.num_envs, config.size))
        observation_space, action_space, action_spaces = _common_spaces(config.env_ids,
                                                                        vector_envs)
        policies = [load_policy(config.policy, envs, seed=_stream_seed(run_seed, index))
                    for index, envs in enumerate(vector_envs)]
        gan_atari = [gym.spec(e).namespace == NAMESPACE for e in config.env_ids]
        wrappers = {"size": list(normalize_size(config.size)), "channel_first": True,
                    "scale": None, "flicker": "flag"} if any(gan_atari) else None
        with RolloutWriter(
            config.out, observation_space, action_space,
            env_ids=list(config.env_ids),
            env_specs={e: _env_spec_json(e, v) for e, v in zip(config.env_ids, vector_envs,
                                                               strict=True)},
            wrappers=wrappers, policy=config.policy_name, seed=config.seed, command=config.command,
            metadata={"action_spaces": action_spaces, "num_envs": config.num_envs},
            blank_frames=any(gan_atari), overwrite=config.overwrite, resume=config.resume,
            **({} if config.compression is None else {"compression": _codec(config)}),
        ) as writer:
            opened = True

            def write(index: int, episode: _Episode) -> None:
                arrays = episode.arrays()
                try:
                    writer.add_episode(arrays["observations"], arrays["actions"],
                                       arrays["rewards"], arrays["terminations"],
                                       arrays["truncations"], env_id=config.env_ids[index],
                                       seed=episode.seed, blank=arrays.get("blank_frame"))
                except DatasetValueError as error:  # the episode's values: whose doing?
                    raise CollectError(_unstorable_episode(
                        config.env_ids[index], config.policy_name, error)) from error

            def after_batch(steps: int, episodes: int) -> None:
                if progress is not None:
                    progress(CollectProgress(
                        steps=done_steps + steps, episodes=done_episodes + episodes,
                        target_steps=config.steps, target_episodes=config.episodes,
                        bytes_written=config.out.stat().st_size))

            # the writer yields the cores to the emulators: it runs in their idle moments
            with BackgroundCalls(write, nice=_WRITER_NICE) as commits:
                run_collection(vector_envs, commits.submit, seed=run_seed, policies=policies,
                               steps=steps_left, episodes=episodes_left,
                               after_batch=after_batch)
    except BaseException:  # failed before any episode (a policy, an env, Ctrl-C): leave no
        # empty new file behind, which a rerun without --resume would refuse
        if opened and (created or config.overwrite) and config.out.exists() \
                and not _has_episodes(config.out):
            config.out.unlink()
        raise
    finally:
        for envs in vector_envs:
            envs.close()
    return _summarise(summary)


def _replaceable(path: Path) -> bool:
    """Whether ``--overwrite`` may replace ``path``: an HDF5 file (a rollout file or one cut
    short: its signature stays), or an empty file."""
    import h5py

    try:
        return path.stat().st_size == 0 or bool(h5py.is_hdf5(path))
    except (OSError, ValueError):
        return False


def _has_episodes(path: Path) -> bool:
    from gan_envs.datasets import RolloutReader

    try:
        with RolloutReader(path) as reader:
            return reader.num_episodes > 0
    except Exception:  # noqa: BLE001 - unreadable: keep it, someone may want to look
        return True


def _codec(config: CollectConfig) -> str | None:
    return None if config.compression in ("none", None) else config.compression


def _summarise(fields: dict[str, Any]) -> CollectSummary:
    from gan_envs.datasets import RolloutReader

    with RolloutReader(fields["path"]) as reader:
        blank = int(reader.blank_flags().sum()) if reader.has_blank_frame else 0
        return CollectSummary(steps=reader.num_steps, episodes=reader.num_episodes,
                              frames=reader.num_frames, blank_frames=blank, **fields)
