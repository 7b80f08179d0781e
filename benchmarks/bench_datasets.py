"""Benchmark of gan_envs.datasets on real Breakout 64x64 frames; baselines run in the same process.

Measures
1. recording overhead: RecordRollouts around the env vs the same env unrecorded (interleaved runs);
2. per lossless codec (none, lzf, gzip levels 1, 2 = default, 3, 6): bytes per frame, write frames/s
   and cold random-read frames/s (cache off, default chunks per batch);
3. random batches of 256 frames/s from the default file (gzip 2, chunks of 16 frames):
   RolloutReader (default 256 MiB cache, cache off, in RAM) vs an in-RAM NumPy gather and vs naive
   h5py fancy indexing of a compressed dataset;
4. Minari 0.5.4's DataCollector recording the same steps, when /tmp/minari-venv exists (it runs in
   that venv as a subprocess, against the unrecorded env measured in the same subprocess).

Usage: python benchmarks/bench_datasets.py [--frames 5000] [--repeats 5] [--out DIR]
(the files stay in --out DIR when given; without it, in a temporary folder removed at the end)
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import ale_py
import cv2
import gymnasium as gym
import h5py
import numpy as np
from gymnasium.spaces import Box

from gan_envs.datasets import RecordRollouts, RolloutReader, RolloutWriter

gym.register_envs(ale_py)
BATCH = 256
MINARI_PYTHON = Path("/tmp/minari-venv/bin/python")
MINARI_SETUP = ("python3 -m venv /tmp/minari-venv && /tmp/minari-venv/bin/pip install "
                "'minari[create,hdf5]==0.5.4' pillow ale-py opencv-python-headless")
# (label, RolloutWriter options); {} is the writer's default (gzip level 2).
CODECS: list[tuple[str, dict[str, Any]]] = [
    ("none", {"compression": None}),
    ("lzf", {"compression": "lzf"}),
    ("gzip 1", {"compression": "gzip", "compression_level": 1}),
    ("gzip 2 (default)", {}),
    ("gzip 3", {"compression": "gzip", "compression_level": 3}),
    ("gzip 6", {"compression": "gzip", "compression_level": 6}),
]


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
    env.close()  # RecordRollouts writes as it goes; close() only drops the unfinished episode
    rate = steps / (time.perf_counter() - start)
    return rate, episodes


def median_rate(run: Callable[[], int], repeats: int) -> float:
    """Median over ``repeats`` of items/s of ``run`` (which returns how many items it did)."""
    rates = []
    for _ in range(repeats):
        start = time.perf_counter()
        items = run()
        rates.append(items / (time.perf_counter() - start))
    return statistics.median(rates)


def write_file(path: Path, episodes: list[dict[str, np.ndarray]], options: dict[str, Any]
               ) -> float:
    """Write ``episodes`` with RolloutWriter(**options); returns seconds."""
    space = Box(0, 255, (3, 64, 64), np.uint8)
    start = time.perf_counter()
    with RolloutWriter(path, space, gym.spaces.Discrete(4), overwrite=True, **options) as writer:
        for ep in episodes:
            writer.add_episode(ep["observations"], ep["actions"], ep["rewards"])
    return time.perf_counter() - start


def reader_rate(path: Path, repeats: int, rng: np.random.Generator, batches: int = 50,
                **options: Any) -> float:
    """Median frames/s of ``batches`` default random batches of BATCH frames."""
    with RolloutReader(path, **options) as reader:
        def run() -> int:
            for _ in range(batches):
                reader.sample_frames(BATCH, rng)
            return batches * BATCH
        return median_rate(run, repeats)


def load() -> str:
    return "load average {:.2f} {:.2f} {:.2f}".format(*os.getloadavg())


# The Minari side runs in /tmp/minari-venv (gan_envs is not installed there): the same wrapper
# and the same random-policy loop as above, the unrecorded env measured in the same process.
MINARI_SCRIPT = r'''
import json, os, shutil, statistics, sys, tempfile, time
import ale_py, cv2, gymnasium as gym, numpy as np
from gymnasium.spaces import Box
import minari
from minari.dataset.minari_storage import is_image_space
from minari import DataCollector

gym.register_envs(ale_py)
steps, repeats = int(sys.argv[1]), int(sys.argv[2])


class Frames64(gym.ObservationWrapper):
    def __init__(self, env, channel_first=True):
        super().__init__(env)
        self.channel_first = channel_first
        shape = (3, 64, 64) if channel_first else (64, 64, 3)
        self.observation_space = Box(0, 255, shape, np.uint8)

    def observation(self, obs):
        obs = cv2.resize(obs, (64, 64), interpolation=cv2.INTER_AREA)
        return obs.transpose(2, 0, 1) if self.channel_first else obs


def play(env, steps, seed=0):
    env.action_space.seed(seed)
    obs, episodes = None, 0
    start = time.perf_counter()
    for _ in range(steps):
        if obs is None:
            obs, _ = env.reset(seed=seed + episodes)
        obs, reward, terminated, truncated, _ = env.step(env.action_space.sample())
        if terminated or truncated:
            episodes += 1
            obs = None
    return time.perf_counter() - start


def make(channel_first=True):
    return Frames64(gym.make("ALE/Breakout-v5"), channel_first)


def dir_bytes(path):
    return sum(os.path.getsize(os.path.join(d, f)) for d, _, fs in os.walk(path) for f in fs)


def episode_frames(episodes):
    return sum(len(ep.observations) for ep in episodes)


root = tempfile.mkdtemp(prefix="minari-bench-")
os.environ["MINARI_DATASETS_PATH"] = root
out = {"minari": minari.__version__, "gymnasium": gym.__version__, "datasets_path": root}
raw, rec = [], {"cf": [], "cl": []}
for i in range(repeats):  # interleaved: raw, recorded channel-first, recorded channel-last
    raw.append(steps / play(make(), steps))
    for key, channel_first in (("cf", True), ("cl", False)):
        name = f"bench/breakout{key}-v{i}"
        env = DataCollector(make(channel_first))
        stepping = play(env, steps)
        start = time.perf_counter()
        env.create_dataset(dataset_id=name, algorithm_name="random", author="bench",
                           author_email="bench@example.invalid", code_permalink="none",
                           description="bench_datasets.py")
        create = time.perf_counter() - start
        env.close()
        rec[key].append((steps / stepping, steps / (stepping + create), create, name))

out["raw_steps_per_s"] = statistics.median(raw)
for key, rows in rec.items():
    name = rows[-1][3]
    dataset = minari.load_dataset(name)
    frames = dataset.total_steps + dataset.total_episodes
    storage = os.path.join(root, name)
    r = {
        "stepping_steps_per_s": statistics.median(x[0] for x in rows),
        "with_create_steps_per_s": statistics.median(x[1] for x in rows),
        "create_dataset_s": statistics.median(x[2] for x in rows),
        "episodes": dataset.total_episodes,
        "frames": frames,
        "bytes_per_frame": dir_bytes(storage) / frames,
        "jpeg": bool(dataset.storage.jpeg_encoding
                     and is_image_space(dataset.observation_space)),
        "shape": list(dataset.observation_space.shape),
    }
    rates = []
    for _ in range(repeats):
        start = time.perf_counter()
        n = episode_frames(dataset.iterate_episodes())
        rates.append(n / (time.perf_counter() - start))
    r["iterate_frames_per_s"] = statistics.median(rates)
    rates = []
    for _ in range(repeats):
        start = time.perf_counter()
        n = episode_frames(dataset.sample_episodes(min(8, dataset.total_episodes)))
        rates.append(n / (time.perf_counter() - start))
    r["sample8_frames_per_s"] = statistics.median(rates)
    out[key] = r
shutil.rmtree(root, ignore_errors=True)
print(json.dumps(out))
'''


def run_minari(steps: int, repeats: int, ours: dict[str, float]) -> None:
    if not MINARI_PYTHON.exists():
        print(f"\nMinari: skipped (no {MINARI_PYTHON}); create it with\n  {MINARI_SETUP}")
        return
    with tempfile.NamedTemporaryFile("w", suffix=".py", delete=False) as f:
        f.write(MINARI_SCRIPT)
    try:
        proc = subprocess.run([str(MINARI_PYTHON), f.name, str(steps), str(repeats)],
                              capture_output=True, text=True, timeout=1800)
    finally:
        os.unlink(f.name)
    if proc.returncode != 0:
        print(f"\nMinari: the run in {MINARI_PYTHON} failed (exit {proc.returncode}):\n"
              + proc.stderr.strip()[-2000:] + f"\n(the venv needs: {MINARI_SETUP})")
        return
    m = json.loads(proc.stdout.strip().splitlines()[-1])
    raw = m["raw_steps_per_s"]
    print(f"\nMinari {m['minari']} DataCollector (gymnasium {m['gymnasium']}), same {steps} "
          f"steps; env unrecorded in its process: {raw:,.0f} steps/s "
          f"(median of {repeats}, interleaved)")
    print(f"{'':44s} {'steps/s':>9s} {'ratio':>6s} {'B/frame':>8s} "
          f"{'iterate f/s':>12s} {'sample f/s':>11s}")
    for key, label in (("cf", "3x64x64 frames (as ours)"), ("cl", "64x64x3 frames")):
        r = m[key]
        how = "JPEG, lossy" if r["jpeg"] else "raw arrays"
        print(f"{'Minari ' + label + ', ' + how + ':':44s} ({r['episodes']} episodes incl. "
              f"the unfinished one, {r['frames']} frames)")
        print(f"{'  stepping (episodes written as they end)':44s} "
              f"{r['stepping_steps_per_s']:9,.0f} {r['stepping_steps_per_s'] / raw:5.2f}x")
        print(f"{'  including create_dataset':44s} {r['with_create_steps_per_s']:9,.0f} "
              f"{r['with_create_steps_per_s'] / raw:5.2f}x {r['bytes_per_frame']:8,.0f} "
              f"{r['iterate_frames_per_s']:12,.0f} {r['sample8_frames_per_s']:11,.0f}")
    print(f"{'gan-envs RecordRollouts (gzip 2, lossless)':44s} {ours['rec']:9,.0f} "
          f"{ours['rec'] / ours['raw']:5.2f}x {ours['bytes']:8,.0f} {ours['episode']:12,.0f}"
          f"   (ratio vs our own unrecorded {ours['raw']:,.0f} steps/s)")
    print("iterate/sample f/s: whole episodes (iterate_episodes, sample_episodes(8)); ours: "
          "RolloutReader.episode(i) over all episodes, cache off. Random frames: Minari has no "
          "frame-level access.")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, default=5000)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--record-repeats", type=int, default=3)
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args()
    if args.out is not None:
        args.out.mkdir(parents=True, exist_ok=True)
        run(args, args.out)
        return
    with tempfile.TemporaryDirectory(prefix="bench-datasets-") as scratch:  # removed after
        run(args, Path(scratch))


def run(args: argparse.Namespace, out: Path) -> None:
    """The benchmark, its files in ``out``."""
    print(f"start: {load()} on {os.cpu_count()} CPUs")

    def make() -> gym.Env:
        return Frames64(gym.make("ALE/Breakout-v5"))

    # 1. Recording overhead (interleaved: raw, recorded, raw, recorded, ...) ------------------
    raw_rates, rec_rates = [], []
    for _ in range(args.record_repeats):
        raw_rate, episodes = play(make(), args.frames)
        rec_rate, _ = play(RecordRollouts(make(), out / "recorded.h5", overwrite=True),
                           args.frames)
        raw_rates.append(raw_rate)
        rec_rates.append(rec_rate)
    raw_rate, rec_rate = statistics.median(raw_rates), statistics.median(rec_rates)
    frames = sum(len(ep["observations"]) for ep in episodes)
    if not episodes:
        sys.exit(f"bench_datasets.py: no episode finished in --frames {args.frames} steps: "
                 "pass more (Breakout's random-policy episodes take ~200)")
    print(f"Breakout 64x64, random policy: {len(episodes)} finished episodes, {frames} frames")
    print(f"(median of {args.record_repeats} interleaved runs of {args.frames} steps)")
    print(f"env unrecorded      {raw_rate:9,.0f} steps/s")
    print(f"RecordRollouts      {rec_rate:9,.0f} steps/s   ({rec_rate / raw_rate:.2f}x unrecorded)")

    # 2. Codecs -----------------------------------------------------------------------------
    rng = np.random.default_rng(0)
    print(f"\n{'codec':17s} {'bytes/frame':>11s} {'write frames/s':>15s} "
          f"{'cold read frames/s':>19s}   (fletcher32 on every array; chunks of 16;")
    print(f"{'':17s} read: cache off, {BATCH}-frame batches of 16 chunks; medians of "
          f"{args.repeats})")
    files: dict[str, Path] = {}
    for label, options in CODECS:
        path = out / f"breakout-{label.split(' (')[0].replace(' ', '')}.h5"
        seconds = statistics.median(write_file(path, episodes, options)
                                    for _ in range(args.repeats))
        size = path.stat().st_size
        cold = reader_rate(path, args.repeats, rng, cache_bytes=0)
        files[label] = path
        print(f"{label:17s} {size / frames:11,.0f} {frames / seconds:15,.0f} {cold:19,.0f}")

    # 3. Random batches of 256 frames from the default file ----------------------------------
    path = files["gzip 2 (default)"]
    ram = np.concatenate([ep["observations"] for ep in episodes])
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

    results["RolloutReader default (16 chunks/batch, 256 MiB cache)"] = reader_rate(
        path, args.repeats, rng)
    results["RolloutReader cold: cache off, 16 chunks/batch"] = reader_rate(
        path, args.repeats, rng, cache_bytes=0)
    results["RolloutReader in_memory=True"] = reader_rate(path, args.repeats, rng, in_memory=True)

    gather_rate = results["in-RAM numpy gather (baseline)"]
    fancy_rate = results["h5py fancy indexing, gzip chunks of 64 (baseline)"]
    print(f"\nrandom batches of {BATCH} uint8 3x64x64 frames from {path.name} "
          f"(median of {args.repeats})")
    print(f"{'':56s} {'frames/s':>10s} {'vs gather':>10s} {'vs fancy':>10s}")
    for name, rate in results.items():
        print(f"{name:56s} {rate:10,.0f} {rate / gather_rate:9.2f}x {rate / fancy_rate:9.0f}x")

    # Whole episodes, for the Minari comparison (Minari reads whole episodes only) ------------
    with RolloutReader(path, cache_bytes=0) as reader:
        def whole_episodes() -> int:
            return sum(len(reader.episode(i)["observations"])
                       for i in range(reader.num_episodes))
        episode_rate = median_rate(whole_episodes, args.repeats)
    print(f"\nwhole episodes, RolloutReader.episode(i), cache off: {episode_rate:,.0f} frames/s")

    # 4. Minari (optional) ------------------------------------------------------------------
    run_minari(args.frames, args.record_repeats,
               {"raw": raw_rate, "rec": rec_rate, "episode": episode_rate,
                "bytes": (out / "recorded.h5").stat().st_size / frames})
    print(f"\nend: {load()}" + (f"; files in {out}" if args.out is not None else ""))
    sys.stdout.flush()


if __name__ == "__main__":
    main()
