"""What the commit journal costs a writer: frames/s and bytes, against the same writer without it.

The baseline is RolloutWriter with its journal switched off after opening (a private handle,
set to None here only; the library has no option to drop crash safety). Both write the same
real Breakout 64x64 episodes into fresh files, alternating, ``--repeats`` times; the ratio is
the median of the per-pair ratios. Two episode lengths: Breakout's random-policy episodes as
they come, and the same frames cut into 16-step episodes (the most commits per frame).

``--growth N`` instead writes N noise episodes of 1,000 steps into one uncompressed file (with
``blank_frame`` flags), with and without the journal, and prints the commit time per episode
over the first and the last eighth of the file: a journal that asks HDF5 where each chunk is
(its answer walks the whole chunk index) grows with the file, the baseline does not.

Usage: python benchmarks/bench_journal.py [--frames 6000] [--repeats 7] [--growth 160]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

import ale_py
import gymnasium as gym
import numpy as np

sys.path.insert(0, str(Path(__file__).parent))
from bench_datasets import Frames64, play  # noqa: E402

from gan_envs.datasets import RolloutWriter  # noqa: E402
from gan_envs.datasets.journal import LOG_NAME  # noqa: E402

gym.register_envs(ale_py)
SPACE = gym.spaces.Box(0, 255, (3, 64, 64), np.uint8)


def cut(episodes: list[dict[str, np.ndarray]], steps: int) -> list[dict[str, np.ndarray]]:
    """The same frames as episodes of ``steps`` steps each."""
    out = []
    for ep in episodes:
        for start in range(0, len(ep["actions"]), steps):
            end = min(start + steps, len(ep["actions"]))
            out.append({"observations": ep["observations"][start:end + 1],
                        "actions": ep["actions"][start:end],
                        "rewards": ep["rewards"][start:end]})
    return out


def write(path: Path, episodes: list[dict[str, np.ndarray]], journal: bool) -> float:
    """Seconds to write ``episodes`` into a new file, with or without the journal."""
    start = time.perf_counter()
    with RolloutWriter(path, SPACE, gym.spaces.Discrete(4), overwrite=True) as writer:
        if not journal:
            writer._journal.close()
            writer._journal = None
        for ep in episodes:
            writer.add_episode(ep["observations"], ep["actions"], ep["rewards"])
    return time.perf_counter() - start


def commit_times(path: Path, episodes: int, journal: bool) -> list[float]:
    """Seconds per ``add_episode`` of ``episodes`` 1,000-step noise episodes, uncompressed."""
    rng = np.random.default_rng(0)
    steps = 1000
    obs = rng.integers(0, 256, (steps + 1, *SPACE.shape), dtype=np.uint8)
    actions = rng.integers(0, 4, steps)
    rewards = np.zeros(steps, np.float32)
    ends = np.arange(steps) == steps - 1
    blank = np.zeros(steps + 1, bool)
    times = []
    with RolloutWriter(path, SPACE, gym.spaces.Discrete(4), overwrite=True, compression=None,
                       blank_frames=True) as writer:
        if not journal:
            writer._journal.close()
            writer._journal = None
        for _ in range(episodes):
            start = time.perf_counter()
            writer.add_episode(obs, actions, rewards, ends, blank=blank)
            times.append(time.perf_counter() - start)
    return times


def growth(episodes: int) -> None:
    eighth = max(1, episodes // 8)
    with tempfile.TemporaryDirectory() as tmp:
        for journal in (False, True):
            times = commit_times(Path(tmp) / "growth.h5", episodes, journal)
            first = statistics.median(times[:eighth]) * 1000
            last = statistics.median(times[-eighth:]) * 1000
            print(f"{'with' if journal else 'without':>7} the journal, uncompressed: "
                  f"{first:.1f} ms per 1,000-step episode over the first {eighth}, "
                  f"{last:.1f} ms over the last {eighth} (at {episodes * 1000:,} steps): "
                  f"{last / first:.2f}x")


def log_bytes(path: Path) -> int:
    import h5py

    with h5py.File(path, "r") as f:
        log = f[LOG_NAME]
        return sum(log.id.get_chunk_info(i).size for i in range(log.id.get_num_chunks()))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, default=6000)
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--growth", type=int, default=0)
    args = parser.parse_args()
    if args.growth:
        growth(args.growth)
        return
    env = Frames64(gym.make("ALE/Breakout-v5", frameskip=4, repeat_action_probability=0.0))
    _, episodes = play(env, args.frames)
    if not episodes:
        parser.error(f"no episode finished in --frames {args.frames} steps: pass more "
                     "(Breakout's random-policy episodes take ~200)")
    frames = sum(len(ep["actions"]) + 1 for ep in episodes)
    print(f"{len(episodes)} Breakout episodes, {frames} frames "
          f"(median {int(np.median([len(e['actions']) for e in episodes]))} steps)")
    with tempfile.TemporaryDirectory() as tmp:
        for label, eps in (("as played", episodes), ("16-step episodes", cut(episodes, 16))):
            n = sum(len(ep["actions"]) + 1 for ep in eps)
            ratios, with_rates, without_rates = [], [], []
            for _ in range(args.repeats):
                t_without = write(Path(tmp) / "without.h5", eps, journal=False)
                t_with = write(Path(tmp) / "with.h5", eps, journal=True)
                ratios.append(t_without / t_with)
                with_rates.append(n / t_with)
                without_rates.append(n / t_without)
            size_with = (Path(tmp) / "with.h5").stat().st_size
            size_without = (Path(tmp) / "without.h5").stat().st_size
            print(f"{label:>17}: {len(eps)} episodes; with journal "
                  f"{statistics.median(with_rates):,.0f} frames/s, without "
                  f"{statistics.median(without_rates):,.0f} frames/s; median speed ratio "
                  f"{statistics.median(ratios):.3f} (min {min(ratios):.3f}, "
                  f"max {max(ratios):.3f}); "
                  f"file {size_with / size_without:.4f}x ({log_bytes(Path(tmp) / 'with.h5'):,} "
                  f"journal bytes, {size_with - size_without:+,} bytes in all)")


if __name__ == "__main__":
    main()
