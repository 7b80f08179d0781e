"""Collection throughput: ``collect()`` (writing included) against raw ``AtariVectorEnv`` stepping.

Both step the same number of emulators with the same threads and settings (ALE v5 semantics,
64×64 RGB, random actions); ``collect`` also assembles episodes, validates them and writes a
gzip-compressed, checksummed HDF5 file. Rounds are interleaved, in alternating order; medians,
the median of per-round ratios and every round's ratio are printed. Target: ratio >= 0.90.

Both timings include creating and resetting the emulators.

Usage: ``python benchmarks/bench_collect.py [--steps 16000] [--num-envs 8] [--rounds 5]``
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
from ale_py.vector_env import AtariVectorEnv

from gan_envs.collect import CollectConfig, collect


def raw_steps_per_second(game: str, steps: int, num_envs: int, seed: int) -> float:
    """Create, reset and step the emulators (collect's time includes the same set-up)."""
    start = time.perf_counter()
    envs = AtariVectorEnv(
        game, num_envs, img_height=64, img_width=64, grayscale=False, stack_num=1, frameskip=4,
        maxpool=False, noop_max=0, use_fire_reset=False, reward_clipping=False,
        episodic_life=False, repeat_action_probability=0.25)
    rng = np.random.default_rng(seed)
    n = int(envs.single_action_space.n)
    envs.reset(seed=seed)
    for _ in range(steps // num_envs):
        envs.step(rng.integers(0, n, num_envs))
    elapsed = time.perf_counter() - start
    envs.close()
    return (steps // num_envs) * num_envs / elapsed


def collect_steps_per_second(env_ids: list[str], steps: int, num_envs: int, seed: int,
                             folder: Path, compression: str | None) -> tuple[float, float]:
    out = folder / f"bench-{seed}.h5"
    start = time.perf_counter()
    summary = collect(CollectConfig(env_ids, out, steps=steps, num_envs=num_envs, seed=seed,
                                    overwrite=True, compression=compression))
    elapsed = time.perf_counter() - start
    bytes_per_frame = out.stat().st_size / summary.frames
    out.unlink()
    return summary.steps / elapsed, bytes_per_frame


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=16000)
    parser.add_argument("--num-envs", type=int, default=8)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    if args.num_envs < 1 or args.steps < args.num_envs or args.rounds < 1:
        parser.error("needs --rounds >= 1 and --steps >= --num-envs >= 1 (the raw envs step "
                     "steps // num-envs batches)")

    print(f"Breakout, {args.num_envs} envs, {args.steps} steps x {args.rounds} rounds")
    rows: dict[str, list[float]] = {"raw AtariVectorEnv (baseline)": []}
    sizes: dict[str, float] = {}
    codecs = ["gzip", "lzf"]
    with tempfile.TemporaryDirectory() as folder:
        for seed in range(args.rounds):
            # alternate the order so that no variant always runs first (page cache, turbo)
            order = ["raw", *codecs] if seed % 2 == 0 else [*codecs, "raw"]
            for variant in order:
                if variant == "raw":
                    rows["raw AtariVectorEnv (baseline)"].append(
                        raw_steps_per_second("breakout", args.steps, args.num_envs, seed))
                    continue
                rate, size = collect_steps_per_second(
                    ["GanAtari/Breakout-v0"], args.steps, args.num_envs, seed, Path(folder),
                    variant)
                rows.setdefault(f"collect, {variant}", []).append(rate)
                sizes[f"collect, {variant}"] = size
    base = rows["raw AtariVectorEnv (baseline)"]
    print(f"  {'':32s} {'steps/s':>9s} {'ratio':>6s} {'B/frame':>8s}  per-round ratios")
    for name, rates in rows.items():
        ratios = [r / b for r, b in zip(rates, base, strict=True)]
        size = f"{sizes[name]:8.0f}" if name in sizes else f"{'':8s}"
        rounds = " ".join(f"{r:.3f}" for r in ratios)
        print(f"  {name:32s} {statistics.median(rates):9.0f} {statistics.median(ratios):6.3f} "
              f"{size}  {rounds}")


if __name__ == "__main__":
    main()
