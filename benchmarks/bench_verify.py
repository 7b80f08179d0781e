"""What ``verify`` costs per episode as a file grows: its time against reading every episode
once (``reader.episode(i)``, the work it cannot skip), at two file sizes, in one run.

A check whose cost per episode grows with the file shows up as a ratio that grows with the
episode count (until session 29 each episode copied the whole episode table: 20,000 episodes
took 12.4 s, 2.9 s after). Each size gets its own file of short noise episodes in a temporary
folder; the two timings alternate ``--repeats`` times and the table gives medians.

Usage: ``python benchmarks/bench_verify.py [--episodes 2000 20000] [--repeats 3]``
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
from gymnasium.spaces import Box, Discrete

from gan_envs.datasets import RolloutReader, RolloutWriter, verify

STEPS = 1  # steps per episode: the most episodes per byte, where a per-episode cost shows


def write_file(path: Path, episodes: int) -> None:
    """``episodes`` one-step episodes of 8x8 grey noise frames."""
    rng = np.random.default_rng(0)
    space = Box(0, 255, (1, 8, 8), np.uint8)
    with RolloutWriter(path, space, Discrete(4), seed=0) as writer:
        for _ in range(episodes):
            frames = rng.integers(0, 256, (STEPS + 1, 1, 8, 8), dtype=np.uint8)
            ends = np.ones(STEPS, bool)  # each episode terminates
            writer.add_episode(frames, np.zeros(STEPS, np.int64), np.zeros(STEPS, np.float32),
                               ends)


def read_all(path: Path) -> None:
    with RolloutReader(path, cache_bytes=0) as reader:
        for i in range(reader.num_episodes):
            reader.episode(i)


def timed(fn, path: Path) -> float:
    start = time.perf_counter()
    fn(path)
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--episodes", type=int, nargs="+", default=[2000, 20000])
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    if args.repeats < 1 or min(args.episodes) < 1:
        parser.error("--episodes and --repeats must be at least 1")
    print(f"{'episodes':>9} {'verify s':>9} {'read s':>8} {'verify/read':>12} {'us/episode':>11}")
    with tempfile.TemporaryDirectory() as tmp:
        for n in args.episodes:
            path = Path(tmp) / f"e{n}.h5"
            write_file(path, n)
            checks, reads = [], []
            for _ in range(args.repeats):
                checks.append(timed(lambda p: verify(p), path))
                reads.append(timed(read_all, path))
            assert verify(path).ok
            v, r = statistics.median(checks), statistics.median(reads)
            print(f"{n:>9,} {v:>9.2f} {r:>8.2f} {v / r:>11.2f}x {v / n * 1e6:>11.0f}")


if __name__ == "__main__":
    main()
