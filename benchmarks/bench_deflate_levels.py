"""Deflate levels on real frames: µs and bytes per frame for each zlib-ng level, per game.

Collects a few thousand random-play steps per game with ``collect`` (64×64 channel-first uint8,
as datasets store them), cuts the frames into the 16-frame chunks the writer encodes, and times
``ChunkEncoder``'s deflate (zlib-ng) at each level. This is how the default level was chosen.

Usage: ``python benchmarks/bench_deflate_levels.py [--steps 6000] [--levels 1 2 3 4 6]``
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np

from gan_envs.collect import CollectConfig, collect
from gan_envs.datasets import RolloutReader
from gan_envs.datasets.chunks import ChunkEncoder

CHUNK = 16


def chunks_of(env_id: str, steps: int, folder: Path) -> list[np.ndarray]:
    path = folder / "frames.h5"
    collect(CollectConfig([env_id], path, steps=steps, num_envs=8, overwrite=True))
    with RolloutReader(path) as reader:
        frames = np.concatenate([reader.episode(i)["observations"]
                                 for i in range(reader.num_episodes)])
    return [np.ascontiguousarray(frames[i:i + CHUNK])
            for i in range(0, len(frames) - CHUNK + 1, CHUNK)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=6000)
    parser.add_argument("--levels", type=int, nargs="+", default=[1, 2, 3, 4, 6])
    parser.add_argument("--games", nargs="+", default=["Breakout", "Pong", "AirRaid"])
    args = parser.parse_args()
    print(f"{'game':10s} {'level':>5s} {'us/frame':>9s} {'B/frame':>8s} "
          f"{'time vs 2':>9s} {'size vs 2':>9s}  (level 2 is the default; same run)")
    with tempfile.TemporaryDirectory() as folder:
        for game in args.games:
            chunks = chunks_of(f"GanAtari/{game}-v0", args.steps, Path(folder))
            frames = len(chunks) * CHUNK
            results = {}
            for level in sorted({2, *args.levels}):
                encoder = ChunkEncoder(level)
                start = time.perf_counter()
                size = sum(len(encoder.encode(chunk)) for chunk in chunks)
                results[level] = (time.perf_counter() - start, size)
            base_time, base_size = results[2]
            for level, (seconds, size) in results.items():
                print(f"{game:10s} {level:5d} {seconds / frames * 1e6:9.2f} {size / frames:8.0f} "
                      f"{seconds / base_time:9.2f} {size / base_size:9.2f}")


if __name__ == "__main__":
    main()
