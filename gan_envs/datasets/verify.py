"""verify(): read a rollout file end to end and report the first bad episode.

Every chunk is decoded, so HDF5 checks every fletcher32 checksum; the episode table is checked
against the arrays (offsets, lengths, returns, termination flags) and every value against the
declared spaces; the commit journal (formats 1.1+) must read from its newest head back to its
first record.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from gan_envs._text import counted
from gan_envs.datasets._h5 import check_exists
from gan_envs.datasets.errors import CorruptDatasetError, DatasetError
from gan_envs.datasets.format import check_values
from gan_envs.datasets.journal import chain_problem
from gan_envs.datasets.reader import LOCATE_HINT, RolloutReader

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
            return (f"{self.path}: OK ({counted(self.num_episodes, 'episode')}, "
                    f"{counted(self.num_frames, 'frame')}, "
                    "every checksum verified)")
        first = self.first_bad_episode
        head = f"{self.path}: {counted(len(self.problems), 'problem')}"
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
        DatasetError: ``path`` is a folder, a pipe, a socket or a device (not a file to check).
    """
    report = VerifyReport(str(path))
    check_exists(Path(path))  # a missing path, a folder or a pipe: the caller's mistake
    try:
        reader = RolloutReader(Path(path), cache_bytes=0, check_table=False)
    except DatasetError as err:
        report.add(str(err))
        return report
    with reader:
        report.num_episodes, report.num_frames = reader.num_episodes, reader.num_frames
        unchecked = [name for name, ds in reader._ds.items() if not ds.fletcher32]
        if unchecked:
            report.add(f"{', '.join(sorted(unchecked))} carry no checksums (the writer "
                       "stores fletcher32 with every array: another program rewrote them)")
        for episode, problem in reader.table_problems():
            report.add(problem, episode)
        table_bad = set(report.bad_episodes)
        table = reader.episode_table  # once: the property copies the table (each row's own
        for i in range(reader.num_episodes):  # copy made verify quadratic: 20,000 in 13.6 s)
            if i not in table_bad:  # a row that does not fit the arrays cannot be read
                _check_episode(reader, i, table[i], report)
        # (formats 1.1+; the open reader keeps a resumer out meanwhile)
        journal_problem = chain_problem(path) if "commit_log" in reader._file else None
    if journal_problem is not None:
        report.add(f"the commit journal is damaged ({journal_problem}; reads are unaffected, "
                   "a recovery after a kill is not); RolloutWriter(path, resume=True) (or "
                   "`gan-envs collect ... --resume`) rewrites it")
    return report


def _check_episode(reader: RolloutReader, i: int, row: np.void, report: VerifyReport) -> None:
    try:
        ep = reader.episode(i)
    except (DatasetError, IndexError, ValueError, TypeError) as err:
        reason = str(err).split(": ", 1)[-1]
        if isinstance(err, CorruptDatasetError) and err.hint == LOCATE_HINT:
            # the reader's advice is to run this very check: report the damage without it
            reason = reason.removesuffix(f", {err.hint}")
        report.add(f"episode {i}: {reason}", i)
        return
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
