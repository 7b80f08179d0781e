"""verify(): read a rollout file end to end and report the first bad episode.

Every chunk is decoded, so HDF5 checks every fletcher32 checksum; the episode table is checked
against the arrays (offsets, lengths, returns, termination flags) and every value against the
declared spaces.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from gan_envs.datasets.errors import DatasetError
from gan_envs.datasets.format import align_up, check_values
from gan_envs.datasets.reader import RolloutReader

__all__ = ["VerifyReport", "verify"]


@dataclass
class VerifyReport:
    """What :func:`verify` found; ``str(report)`` is the text a CLI prints."""

    path: str
    num_episodes: int = 0
    num_frames: int = 0
    problems: list[str] = field(default_factory=list)
    bad_episodes: list[int] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems

    @property
    def first_bad_episode(self) -> int | None:
        return min(self.bad_episodes) if self.bad_episodes else None

    def add(self, problem: str, episode: int | None = None) -> None:
        self.problems.append(problem)
        if episode is not None and episode not in self.bad_episodes:
            self.bad_episodes.append(episode)

    def __str__(self) -> str:
        if self.ok:
            return (f"{self.path}: OK ({self.num_episodes} episodes, {self.num_frames} frames, "
                    "every checksum verified)")
        first = self.first_bad_episode
        head = f"{self.path}: {len(self.problems)} problem(s)"
        head += f"; first bad episode: {first}" if first is not None else ""
        return "\n".join([head, *(f"  {p}" for p in self.problems)])


def verify(path: str | os.PathLike[str]) -> VerifyReport:
    """Check a rollout file: checksums, shapes, the episode table; name the bad episodes.

    Example:
        >>> import tempfile, pathlib, numpy as np
        >>> from gymnasium.spaces import Box, Discrete
        >>> from gan_envs.datasets import RolloutWriter, verify
        >>> path = pathlib.Path(tempfile.mkdtemp()) / "rollouts.h5"
        >>> with RolloutWriter(path, Box(0, 1, (2,)), Discrete(2)) as writer:
        ...     _ = writer.add_episode(np.zeros((4, 2), np.float32), [0, 1, 0], [1, 1, 1])
        >>> report = verify(path)
        >>> report.ok, report.num_episodes, report.first_bad_episode
        (True, 1, None)

    Raises:
        FileNotFoundError: ``path`` does not exist.
    """
    report = VerifyReport(str(path))
    try:
        reader = RolloutReader(Path(path), cache_bytes=0)
    except DatasetError as err:
        report.add(str(err))
        return report
    with reader:
        report.num_episodes, report.num_frames = reader.num_episodes, reader.num_frames
        _check_table(reader, report)
        for i in range(reader.num_episodes):
            _check_episode(reader, i, report)
    return report


def _check_table(reader: RolloutReader, report: VerifyReport) -> None:
    table, t = reader.episode_table, reader.chunk_frames
    extents = {name: ds.shape[0] for name, ds in reader._ds.items()}
    obs_free = step_free = 0
    for i, row in enumerate(table):
        n, obs0, step0 = int(row["length"]), int(row["obs_offset"]), int(row["step_offset"])
        if n < 1:
            report.add(f"episode {i}: length {n} (an episode has at least one step)", i)
            continue
        if obs0 % t or step0 % t or obs0 < obs_free or step0 < step_free:
            report.add(f"episode {i}: offsets {obs0}/{step0} overlap the previous episode or "
                       f"miss a chunk boundary ({t} rows)", i)
        if obs0 + n + 1 > extents["observations"] or step0 + n > extents["actions"]:
            report.add(f"episode {i}: reaches past the end of the arrays", i)
        if not -1 <= int(row["env_index"]) < len(reader.env_ids):
            report.add(f"episode {i}: env_index {int(row['env_index'])} is not one of "
                       f"{len(reader.env_ids)} env ids", i)
        obs_free, step_free = align_up(obs0 + n + 1, t), align_up(step0 + n, t)


def _check_episode(reader: RolloutReader, i: int, report: VerifyReport) -> None:
    try:
        ep = reader.episode(i)
    except (DatasetError, IndexError) as err:
        report.add(f"episode {i}: {str(err).split(': ', 1)[-1]}", i)
        return
    row = reader.episode_table[i]
    ends = ep["terminations"] | ep["truncations"]
    if ends[:-1].any():
        report.add(f"episode {i}: ends at step {int(np.argmax(ends))} but has {len(ends)} steps", i)
    if (bool(ep["terminations"][-1]), bool(ep["truncations"][-1])) != (
            bool(row["terminated"]), bool(row["truncated"])):
        report.add(f"episode {i}: the table's terminated/truncated disagree with its last step", i)
    total = float(ep["rewards"].astype(np.float64).sum())
    if not np.isclose(total, float(row["return"]), rtol=1e-6, atol=1e-6):
        report.add(f"episode {i}: return {float(row['return'])} in the table, rewards sum to "
                   f"{total}", i)
    for space, name in ((reader.observation_space, "observations"),
                        (reader.action_space, "actions")):
        try:
            check_values(space, ep[name], name)
        except DatasetError as err:
            report.add(f"episode {i}: {err}", i)
