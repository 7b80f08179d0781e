"""Wrapper overhead: GanAtari against raw ALE, measured side by side in one run.

Prints medians over interleaved rounds and the ratios the project targets:

* single env: ``GanAtari/Breakout-v0`` steps/s ÷ ``ALE/Breakout-v5`` steps/s (target >= 0.90),
  both with ALE v5 settings, the same pre-drawn actions, through ``gym.make``;
* vector: ``gym.make_vec("GanAtari/Breakout-v0")`` ÷ raw ``AtariVectorEnv`` with the same
  settings and number of envs (target >= 0.95);
* for context, a naive stack (``cv2.resize`` INTER_AREA + ``moveaxis`` + ``astype``), the
  resize kernel alone against ``cv2.resize``, and the import time of ``gan_envs`` beside
  ``gymnasium``'s.

Usage: ``python benchmarks/bench_wrappers.py [--steps 2000] [--rounds 7] [--num-envs 8]``
"""

from __future__ import annotations

import argparse
import platform
import statistics
import subprocess
import sys
import time

import cv2
import gymnasium as gym
import numpy as np

import gan_envs
from gan_envs.area import AreaResizer, has_fast_kernel


def steps_per_second(env: gym.Env, actions: list[int]) -> float:
    env.reset(seed=0)
    start = time.perf_counter()
    for action in actions:
        _, _, terminated, truncated, _ = env.step(action)
        if terminated or truncated:
            env.reset()
    return len(actions) / (time.perf_counter() - start)


def vector_steps_per_second(envs, batches: list[np.ndarray]) -> float:
    envs.reset(seed=0)
    start = time.perf_counter()
    for actions in batches:
        envs.step(actions)
    return len(batches) * envs.num_envs / (time.perf_counter() - start)


class NaiveFrames(gym.ObservationWrapper):
    """The tutorial's approach: cv2.resize (INTER_AREA), moveaxis, astype, in one wrapper."""

    def __init__(self, env):
        super().__init__(env)
        self.observation_space = gym.spaces.Box(-1.0, 1.0, (3, 64, 64), np.float32)

    def observation(self, obs):
        small = cv2.resize(obs, (64, 64), interpolation=cv2.INTER_AREA)
        return np.moveaxis(small, 2, 0).astype(np.float32) / 127.5 - 1.0


def import_seconds(module: str, repeats: int) -> float:
    code = f"import time; t = time.perf_counter(); import {module}; print(time.perf_counter() - t)"
    runs = [float(subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                                 check=True).stdout) for _ in range(repeats)]
    return statistics.median(runs)


def median_ratio(rows: dict[str, list[float]], name: str, base: str) -> float:
    return statistics.median(a / b for a, b in zip(rows[name], rows[base], strict=True))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=2000, help="steps per round, single env")
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--num-envs", type=int, default=8)
    parser.add_argument("--vector-steps", type=int, default=300, help="batch steps per round")
    args = parser.parse_args()
    if min(args.steps, args.rounds, args.num_envs, args.vector_steps) < 1:
        parser.error("--steps, --rounds, --num-envs and --vector-steps must be at least 1")

    print(f"gan-envs {gan_envs.__version__}, gymnasium {gym.__version__}, "
          f"python {platform.python_version()}, compiled kernel: {has_fast_kernel()}")

    # ---------------------------------------------------------------- single environment
    envs = {
        "ALE/Breakout-v5 (baseline)": gym.make("ALE/Breakout-v5"),
        "GanAtari/Breakout-v0": gym.make("GanAtari/Breakout-v0"),
        "naive cv2 stack": NaiveFrames(gym.make("ALE/Breakout-v5")),
    }
    rng = np.random.default_rng(0)
    actions = [int(a) for a in rng.integers(0, 4, args.steps)]
    rows: dict[str, list[float]] = {name: [] for name in envs}
    for _ in range(args.rounds):  # interleaved: machine noise hits every row alike
        for name, env in envs.items():
            rows[name].append(steps_per_second(env, actions))
    base = "ALE/Breakout-v5 (baseline)"
    print(f"\nsingle env, {args.steps} steps x {args.rounds} rounds (median steps/s, ratio)")
    for name in envs:
        print(f"  {name:34s} {statistics.median(rows[name]):8.0f}   "
              f"{median_ratio(rows, name, base):.3f}")
    for env in envs.values():
        env.close()

    # ---------------------------------------------------------------- resize kernel alone
    raw = gym.make("ALE/Breakout-v5")
    raw.reset(seed=0)
    frames = [raw.step(int(a))[0] for a in rng.integers(0, 4, 200)]
    raw.close()
    resizer = AreaResizer((210, 160), (64, 64))
    timings: dict[str, list[float]] = {"cv2.resize INTER_AREA": [], "AreaResizer": []}
    for _ in range(args.rounds):
        for name, fn in (("cv2.resize INTER_AREA",
                          lambda f: cv2.resize(f, (64, 64), interpolation=cv2.INTER_AREA)),
                         ("AreaResizer", resizer)):
            start = time.perf_counter()
            for frame in frames:
                fn(frame)
            timings[name].append((time.perf_counter() - start) / len(frames) * 1e6)
    cv_us, ours_us = (statistics.median(timings[k]) for k in timings)
    print(f"\nresize 210x160x3 -> 64x64 (median us/frame): cv2 {cv_us:.1f}, "
          f"AreaResizer {ours_us:.1f} ({cv_us / ours_us:.1f}x faster, identical output)")

    # ---------------------------------------------------------------- vector environments
    from ale_py.vector_env import AtariVectorEnv

    n = args.num_envs
    vector_envs = {
        "raw AtariVectorEnv (baseline)": AtariVectorEnv(
            "breakout", n, img_height=64, img_width=64, grayscale=False, stack_num=1,
            frameskip=4, maxpool=False, noop_max=0, use_fire_reset=False, reward_clipping=False,
            episodic_life=False, repeat_action_probability=0.25),
        "make_vec GanAtari/Breakout-v0": gym.make_vec("GanAtari/Breakout-v0", num_envs=n),
    }
    batches = [rng.integers(0, 4, n) for _ in range(args.vector_steps)]
    vrows: dict[str, list[float]] = {name: [] for name in vector_envs}
    for _ in range(args.rounds):
        for name, venv in vector_envs.items():
            vrows[name].append(vector_steps_per_second(venv, batches))
    vbase = "raw AtariVectorEnv (baseline)"
    print(f"\nvector, {n} envs, {args.vector_steps} batch steps x {args.rounds} rounds "
          "(median env steps/s, ratio)")
    for name in vector_envs:
        print(f"  {name:34s} {statistics.median(vrows[name]):8.0f}   "
              f"{median_ratio(vrows, name, vbase):.3f}")
    for venv in vector_envs.values():
        venv.close()

    # ---------------------------------------------------------------- import time
    gym_s, ours_s = import_seconds("gymnasium", 5), import_seconds("gan_envs", 5)
    print(f"\nimport time (median of 5 fresh interpreters): gymnasium {gym_s * 1e3:.0f} ms, "
          f"gan_envs {ours_s * 1e3:.0f} ms (includes gymnasium and ale_py)")


if __name__ == "__main__":
    main()
