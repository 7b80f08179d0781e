"""The reader's chunk-cache lock: cached random batches with the lock and with it swapped for a
no-op, in one process, interleaved rounds (median frames/s and their ratio).

The lock (``_ChunkCache._lock``, session 28) keeps a reader shared between threads consistent;
this measures what it costs a single-threaded reader.

Usage: ``python benchmarks/bench_cache_lock.py --data DATA.h5 [--rounds 7] [--batches 200]``
(any rollout file of image frames, e.g. one from ``gan-envs collect GanAtari/Breakout-v0``).
"""

from __future__ import annotations

import argparse
import contextlib
import statistics
import time

import numpy as np

from gan_envs.datasets import RolloutReader


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", required=True)
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--batches", type=int, default=200)
    parser.add_argument("--batch-size", type=int, default=256)
    args = parser.parse_args()
    if min(args.rounds, args.batches, args.batch_size) < 1:
        parser.error("--rounds, --batches and --batch-size must be at least 1")
    readers = {"locked": RolloutReader(args.data), "no lock": RolloutReader(args.data)}
    readers["no lock"]._cache._lock = contextlib.nullcontext()  # the same code, lock-free
    for reader in readers.values():  # warm the caches with every chunk
        reader.sample_frames(reader.num_frames, rng=0)
    rates: dict[str, list[float]] = {name: [] for name in readers}
    for _ in range(args.rounds):
        for name, reader in readers.items():
            rng = np.random.default_rng(1)
            start = time.perf_counter()
            for _ in range(args.batches):
                reader.sample_frames(args.batch_size, rng=rng)
            rates[name].append(args.batches * args.batch_size / (time.perf_counter() - start))
    medians = {name: statistics.median(values) for name, values in rates.items()}
    for name, rate in medians.items():
        print(f"{name:8s} {rate:12,.0f} frames/s (median of {args.rounds} rounds)")
    print(f"locked / no lock: {medians['locked'] / medians['no lock']:.3f}")


if __name__ == "__main__":
    from _script import run_script

    run_script(main)
