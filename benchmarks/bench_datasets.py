"""Benchmark of gan_envs.datasets on real Breakout 64x64 frames; baselines run in the same process.

Measures
1. recording overhead: RecordRollouts around the env vs the same env unrecorded;
2. write throughput and bytes per frame for each lossless codec (none, lzf, gzip);
3. random batches of 256 frames/s: RolloutReader (warm cache, cold cache, in RAM) vs an in-RAM
   NumPy gather and vs naive h5py fancy indexing of a compressed dataset;
4. (optional) Minari's DataCollector, only when /tmp/minari-venv exists.

Usage: python benchmarks/bench_datasets.py [--frames 5000] [--repeats 5] [--out DIR]
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import ale_py
import cv2
import gymnasium as gym
import h5py
import numpy as np
from gymnasium.spaces import Box

from gan_envs.datasets import RecordRollouts, RolloutReader, RolloutWriter

gym.register_envs(ale_py)
BATCH = 256


class Frames64(gym.ObservationWrapper):
    """64x64 channel-first uint8 frames (cv2 INTER_AREA), as the gan-envs wrappers make them."""

    def __init__(self, env: gym.Env) -> None:
        super().__init__(env)
        self.observation_space = Box(0, 255, (3, 64, 64), np.uint8)

    def observation(self, obs: np.ndarray) -> np.ndarray:
        return cv2.resize(obs, (64, 64), interpolation=cv2.INTER_AREA).transpose(2, 0, 1)


def play(env: gym.Env, steps: int, seed: int = 0) -> tuple[float, list[dict[str, np.ndarray]]]:
    """Random actions for ``steps`` steps; returns (steps/s, finished episodes)."""
    env.action_space.seed(seed)
    episodes, obs, current = [], None, None
    start = time.perf_counter()
    for _ in range(steps):
        if obs is None:
            obs, _ = env.reset(seed=seed + len(episodes))
            current = {"observations": [obs], "actions": [], "rewards": []}
        action = env.action_space.sample()
        obs, reward, terminated, truncated, _ = env.step(action)
        current["observations"].append(obs)
        current["actions"].append(action)
        current["rewards"].append(reward)
        if terminated or truncated:
            episodes.append({k: np.asarray(v) for k, v in current.items()})
            obs = None
    rate = steps / (time.perf_counter() - start)
    env.close()
    return rate, episodes


def median_rate(run: Callable[[], int], repeats: int) -> float:
    """Median over ``repeats`` of items/s of ``run`` (which returns how many items it did)."""
    rates = []
    for _ in range(repeats):
        start = time.perf_counter()
        items = run()
        rates.append(items / (time.perf_counter() - start))
    return statistics.median(rates)


def write_file(path: Path, episodes: list[dict[str, np.ndarray]], compression: str | None
               ) -> float:
    space = Box(0, 255, (3, 64, 64), np.uint8)
    start = time.perf_counter()
    with RolloutWriter(path, space, gym.spaces.Discrete(4), compression=compression,
                       overwrite=True) as writer:
        for ep in episodes:
            writer.add_episode(ep["observations"], ep["actions"], ep["rewards"])
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, default=5000)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args()
    out = args.out or Path(tempfile.mkdtemp(prefix="bench-datasets-"))
    out.mkdir(parents=True, exist_ok=True)

    def make() -> gym.Env:
        return Frames64(gym.make("ALE/Breakout-v5"))

    # 1. Recording overhead ---------------------------------------------------------------
    raw_rate, episodes = play(make(), args.frames)
    rec_rate, _ = play(RecordRollouts(make(), out / "recorded.h5", overwrite=True), args.frames)
    frames = sum(len(ep["observations"]) for ep in episodes)
    print(f"Breakout 64x64, random policy: {len(episodes)} finished episodes, {frames} frames")
    print(f"env unrecorded      {raw_rate:9,.0f} steps/s")
    print(f"RecordRollouts      {rec_rate:9,.0f} steps/s   ({rec_rate / raw_rate:.2f}x unrecorded)")

    # 2. Codecs -----------------------------------------------------------------------------
    print("\ncodec   bytes/frame   write frames/s   (every array fletcher32-checksummed)")
    for codec in (None, "lzf", "gzip"):
        path = out / f"breakout-{codec or 'none'}.h5"
        seconds = write_file(path, episodes, codec)
        size = path.stat().st_size
        print(f"{codec or 'none':6s} {size / frames:12,.0f} {frames / seconds:16,.0f}")

    # 3. Random batches of 256 frames ---------------------------------------------------------
    path = out / "breakout-gzip.h5"
    ram = np.concatenate([ep["observations"] for ep in episodes])
    rng = np.random.default_rng(0)
    results: dict[str, float] = {}

    def gather() -> int:
        for _ in range(200):
            ram[rng.integers(len(ram), size=BATCH)]
        return 200 * BATCH

    results["in-RAM numpy gather (baseline)"] = median_rate(gather, args.repeats)

    naive = out / "naive.h5"
    with h5py.File(naive, "w") as f:
        f.create_dataset("x", data=ram, chunks=(64, 3, 64, 64), compression="gzip")
    with h5py.File(naive, "r") as f:
        ds = f["x"]

        def fancy() -> int:
            ds[np.unique(rng.integers(len(ram), size=BATCH))]
            return BATCH

        results["h5py fancy indexing, gzip chunks of 64 (baseline)"] = median_rate(fancy, 3)

    def reader_rate(**options: object) -> float:
        chunks = options.pop("chunks_per_batch", None)
        with RolloutReader(path, **options) as reader:
            def batches() -> int:
                for _ in range(50):
                    reader.sample_frames(BATCH, rng, chunks_per_batch=chunks)
                return 50 * BATCH
            return median_rate(batches, args.repeats)

    results["RolloutReader default (16 chunks/batch, 256 MiB cache)"] = reader_rate()
    results["RolloutReader cold: cache off, 16 chunks/batch"] = reader_rate(cache_bytes=0)
    results["RolloutReader cold: cache off, 8 chunks/batch"] = reader_rate(
        cache_bytes=0, chunks_per_batch=8)
    results["RolloutReader in_memory=True"] = reader_rate(in_memory=True)

    gather_rate = results["in-RAM numpy gather (baseline)"]
    fancy_rate = results["h5py fancy indexing, gzip chunks of 64 (baseline)"]
    print(f"\nrandom batches of {BATCH} uint8 3x64x64 frames from {path.name} "
          f"(median of {args.repeats})")
    print(f"{'':56s} {'frames/s':>10s} {'vs gather':>10s} {'vs fancy':>10s}")
    for name, rate in results.items():
        print(f"{name:56s} {rate:10,.0f} {rate / gather_rate:9.2f}x {rate / fancy_rate:9.0f}x")

    # 4. Minari (optional) ------------------------------------------------------------------
    if not Path("/tmp/minari-venv/bin/python").exists():
        print("\nMinari: skipped (no /tmp/minari-venv; create it with "
              "`python3 -m venv /tmp/minari-venv && /tmp/minari-venv/bin/pip install "
              "'minari[create]==0.5.4' ale-py opencv-python-headless`)")
    else:
        print("\nMinari: /tmp/minari-venv found, but the side-by-side run is not implemented yet")
    print(f"\nfiles in {out}")


if __name__ == "__main__":
    main()
