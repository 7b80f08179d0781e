"""Benchmark of the GAN trainer against the tutorial's env-fed loop, in the same process.

Ours: ``train_gan`` with ``recipe="tutorial"`` (the book's DCGAN, width 512, batch 16, BCE, Adam
1e-4 / (0.5, 0.999)) reading a rollout dataset through ``DatasetFrameSource`` (wrapped in a thin
timer that counts the seconds spent in ``sample_frames``), sample and checkpoint intervals larger
than the run. Iterations/s are timed between ``progress`` callbacks, so model building, the final
grid and checkpoint are not counted.

The tutorial: a re-implementation of *Deep RL Hands-On* ``Chapter03/03_atari_gan.py``: three live
``ALE/<Game>-v5`` envs (Breakout, AirRaid, Pong) with random actions, ``cv2.resize`` to 64x64 with
the default (bilinear) interpolation, ``np.moveaxis`` to channels first, float32, frames with
mean <= 0.01 dropped, batches of 16 scaled to [-1, 1]; the same G and D
(``build_models("dcgan", ...)`` as the tutorial recipe configures them, G's first layer back to
``nn.ConvTranspose2d``) with D's sigmoid and ``nn.BCELoss``, Adam with the recipe's settings,
one G forward shared by both steps, ``.item()`` of both losses every iteration.

Variants: our trainer as is (float32, the tutorial's numerics), with ``GanConfig.channels_last``
(same numerics, another memory layout), and with ``channels_last`` plus ``GanConfig.bf16``
(bfloat16 autocast of the forward passes: a numerics change, weights, optimisers, BatchNorm
statistics and losses in float32), and everything at ``torch.set_num_threads(1)`` and
``(2)``. Rounds interleave the variants; each number is the median over rounds. Then
``torch.compile`` of G and D is timed in the tutorial loop against the plain loop in a
subprocess (CPU inductor; ~20 s to compile here), skipped with a note when it takes longer than
``--compile-timeout``; ``--no-compile`` skips it.

Usage: python benchmarks/bench_gan.py [--rounds 5] [--iters 15] [--threads 2,1] [--data X.h5]
                                      [--json out.json] [--no-compile]
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import ale_py
import cv2
import gymnasium as gym
import numpy as np
import torch
from torch import nn

from gan_envs.trainers.data import DatasetFrameSource
from gan_envs.trainers.gan import RECIPES, GanConfig, train_gan
from gan_envs.trainers.models import build_models

gym.register_envs(ale_py)
TUTORIAL_ENVS = ["ALE/Breakout-v5", "ALE/AirRaid-v5", "ALE/Pong-v5"]
DATASET_ENVS = ["GanAtari/Breakout-v0", "GanAtari/AirRaid-v0", "GanAtari/Pong-v0"]
IMAGE_SIZE = 64
LATENT = 100
WIDTH = 512
TUTORIAL = RECIPES["tutorial"]["dcgan"]
BATCH = TUTORIAL["batch_size"]


# ---------------------------------------------------------------- the tutorial, re-implemented
class InputWrapper(gym.ObservationWrapper):
    """The book's wrapper: resize to 64x64 (cv2 default interpolation), channels first, float."""

    def __init__(self, env: gym.Env) -> None:
        super().__init__(env)
        old = self.observation_space
        self.observation_space = gym.spaces.Box(self.observation(old.low),
                                                self.observation(old.high), dtype=np.float32)

    def observation(self, observation: np.ndarray) -> np.ndarray:
        new_obs = cv2.resize(observation, (IMAGE_SIZE, IMAGE_SIZE))
        new_obs = np.moveaxis(new_obs, 2, 0)
        return new_obs.astype(np.float32)


def iterate_batches(envs: list[gym.Env], batch_size: int = BATCH) -> Iterator[torch.Tensor]:
    """The book's generator: random env, random action, drop blank frames, yield full batches."""
    batch = [e.reset()[0] for e in envs]
    env_gen = iter(lambda: random.choice(envs), None)
    while True:
        e = next(env_gen)
        obs, reward, terminated, truncated, _ = e.step(e.action_space.sample())
        if np.mean(obs) > 0.01:
            batch.append(obs)
        if len(batch) == batch_size:
            batch_np = np.array(batch, dtype=np.float32) * 2.0 / 255.0 - 1.0
            yield torch.tensor(batch_np)
            batch.clear()
        if terminated or truncated:
            e.reset()


class TutorialLoop:
    """The book's training loop, one iteration per :meth:`step`; times its data path too."""

    def __init__(self, seed: int = 0, compile_models: bool = False) -> None:
        random.seed(seed)
        torch.manual_seed(seed)
        self.envs = [InputWrapper(gym.make(name)) for name in TUTORIAL_ENVS]
        for i, env in enumerate(self.envs):
            env.reset(seed=seed + i)
            env.action_space.seed(seed + i)
        # the same networks the tutorial recipe builds (BatchNorm D with ReLU, no spectral norm)
        self.net_gener, net_discr = build_models(
            "dcgan", (3, IMAGE_SIZE, IMAGE_SIZE), LATENT, TUTORIAL["spectral_norm"],
            TUTORIAL["d_relu_slope"], WIDTH)
        # G's first layer as the book writes it: nn.ConvTranspose2d's own forward (ours computes
        # the same function as one matmul, LatentProjection)
        first = self.net_gener.net[0]
        book = torch.nn.utils.skip_init(nn.ConvTranspose2d, first.in_channels,
                                        first.out_channels, 4, 1, 0)  # draws no random numbers
        book.load_state_dict(first.state_dict())
        self.net_gener.net[0] = book
        self.logits_discr = net_discr
        if compile_models:
            self.net_gener = torch.compile(self.net_gener)
            self.logits_discr = torch.compile(net_discr)
        self.objective = nn.BCELoss()
        self.gen_optimizer = torch.optim.Adam(self.net_gener.parameters(), lr=TUTORIAL["lr_g"],
                                              betas=TUTORIAL["betas"])
        self.dis_optimizer = torch.optim.Adam(net_discr.parameters(), lr=TUTORIAL["lr_d"],
                                              betas=TUTORIAL["betas"])
        self.true_labels_v = torch.ones(BATCH)
        self.fake_labels_v = torch.zeros(BATCH)
        self.batches = iterate_batches(self.envs)
        self.gen_losses: list[float] = []
        self.dis_losses: list[float] = []
        self.data_seconds = 0.0

    def net_discr(self, x: torch.Tensor) -> torch.Tensor:
        return torch.sigmoid(self.logits_discr(x))  # the book's D ends in nn.Sigmoid

    def step(self) -> None:
        t = time.perf_counter()
        batch_v = next(self.batches)
        self.data_seconds += time.perf_counter() - t
        gen_input_v = torch.FloatTensor(BATCH, LATENT, 1, 1).normal_(0, 1)
        gen_output_v = self.net_gener(gen_input_v)

        self.dis_optimizer.zero_grad()
        dis_output_true_v = self.net_discr(batch_v)
        dis_output_fake_v = self.net_discr(gen_output_v.detach())
        dis_loss = (self.objective(dis_output_true_v, self.true_labels_v)
                    + self.objective(dis_output_fake_v, self.fake_labels_v))
        dis_loss.backward()
        self.dis_optimizer.step()
        self.dis_losses.append(dis_loss.item())

        self.gen_optimizer.zero_grad()
        dis_output_v = self.net_discr(gen_output_v)
        gen_loss_v = self.objective(dis_output_v, self.true_labels_v)
        gen_loss_v.backward()
        self.gen_optimizer.step()
        self.gen_losses.append(gen_loss_v.item())

    def close(self) -> None:
        for env in self.envs:
            env.close()


def time_tutorial(loop: TutorialLoop, iters: int, warmup: int) -> tuple[float, float]:
    """(iterations/s, fraction of the time spent getting the batch) over ``iters`` steps."""
    for _ in range(warmup):
        loop.step()
    loop.data_seconds = 0.0
    t = time.perf_counter()
    for _ in range(iters):
        loop.step()
    seconds = time.perf_counter() - t
    return iters / seconds, loop.data_seconds / seconds


# ---------------------------------------------------------------- our trainer
class TimedSource:
    """A thin wrapper around a frame source that adds up the seconds spent in sample_frames."""

    def __init__(self, inner: DatasetFrameSource) -> None:
        self.inner = inner
        self.frame_shape = inner.frame_shape
        self.env_ids = inner.env_ids
        self.seconds = 0.0
        self.calls = 0

    def sample_frames(self, n: int, rng: np.random.Generator) -> np.ndarray:
        t = time.perf_counter()
        frames = self.inner.sample_frames(n, rng)
        self.seconds += time.perf_counter() - t
        self.calls += 1
        return frames


def conversion_seconds(source: DatasetFrameSource, repeats: int = 200) -> float:
    """Median seconds per batch of the trainer's uint8 -> [-1, 1] float conversion (to_input)."""
    frames = source.sample_frames(BATCH, np.random.default_rng(0))
    center, half = torch.tensor(127.5), torch.tensor(127.5)
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        (torch.from_numpy(np.asarray(frames)).float() - center) / half
        times.append(time.perf_counter() - t)
    return statistics.median(times)


def time_ours(source: TimedSource, iters: int, warmup: int, channels_last: bool,
              workdir: Path, bf16: bool = False) -> tuple[float, float]:
    """(iterations/s, fraction of the timed window spent in sample_frames) of one fresh run."""
    stamps: list[float] = []
    marks: dict[str, float] = {}
    total = warmup + iters + 1  # the last iteration writes a grid and a checkpoint: not timed

    def progress(iteration: int, metrics: dict[str, float]) -> None:
        stamps.append(time.perf_counter())
        if iteration == warmup:
            marks["data0"] = source.seconds
        if iteration == warmup + iters:
            marks["data1"] = source.seconds

    config = GanConfig(iterations=total, recipe="tutorial", width=WIDTH, batch_size=BATCH,
                       sample_every=10**6, checkpoint_every=10**6, log_every=100,
                       channels_last=channels_last, bf16=bf16)
    with tempfile.TemporaryDirectory(dir=workdir) as run_dir:  # ~70 MB of checkpoint a run
        train_gan(config, source, run_dir, progress=progress)
    seconds = stamps[warmup + iters - 1] - stamps[warmup - 1]
    return iters / seconds, (marks["data1"] - marks["data0"]) / seconds


class IidSource(TimedSource):
    """Independent draws per frame (``chunks_per_batch = n``) instead of the reader's default
    ``ceil(n / 16)`` chunks of 16 consecutive frames (one short clip per 16 frames)."""

    def sample_frames(self, n: int, rng: np.random.Generator) -> np.ndarray:
        t = time.perf_counter()
        frames = self.inner.reader.sample_frames(n, rng, chunks_per_batch=n,
                                                 **self.inner._filter)
        self.seconds += time.perf_counter() - t
        self.calls += 1
        return frames


def sampling_costs(data: Path, batches: int = 300) -> dict[str, float]:
    """Median milliseconds per batch of 16 frames: default (chunked) vs independent draws."""
    out = {}
    for in_memory in (False, True):
        inner = DatasetFrameSource(data, in_memory=in_memory)
        for name, source in (("chunked", TimedSource(inner)), ("iid", IidSource(inner))):
            rng = np.random.default_rng(0)
            times = []
            for _ in range(batches):
                t = time.perf_counter()
                source.sample_frames(BATCH, rng)
                times.append(time.perf_counter() - t)
            out[f"{name}{' in RAM' if in_memory else ''}"] = 1e3 * statistics.median(times)
        inner.close()
    return out


# ---------------------------------------------------------------- torch.compile probe
_COMPILE_PROBE = """
import statistics, sys, time, torch
sys.path.insert(0, {bench_dir!r})
import bench_gan
torch.set_num_threads({threads})
plain = bench_gan.TutorialLoop()
compiled = bench_gan.TutorialLoop(compile_models=True)
t = time.perf_counter(); compiled.step(); compiled.step(); first = time.perf_counter() - t
rates = {{"plain": [], "compiled": []}}
for _ in range({rounds}):
    for name, loop in (("plain", plain), ("compiled", compiled)):
        rates[name].append(bench_gan.time_tutorial(loop, {iters}, 1)[0])
print(first, statistics.median(rates["plain"]), statistics.median(rates["compiled"]))
"""


def probe_compile(threads: int, iters: int, rounds: int, timeout: float) -> dict[str, Any]:
    """torch.compile of G and D in the tutorial loop, against the plain loop, in a subprocess
    (interleaved rounds there); skipped when compilation exceeds ``timeout``."""
    code = _COMPILE_PROBE.format(bench_dir=str(Path(__file__).parent), threads=threads,
                                 iters=iters, rounds=rounds)
    t = time.perf_counter()
    try:
        out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                             timeout=timeout, check=True).stdout.split()
    except subprocess.TimeoutExpired:
        return {"skipped": f"compilation did not finish within {timeout:.0f} s"}
    except subprocess.CalledProcessError as exc:
        return {"skipped": f"failed: {exc.stderr.strip().splitlines()[-1][:200]}"}
    first, plain, compiled = (float(x) for x in out[-3:])
    return {"threads": threads, "first_two_steps_seconds": first, "plain_it_per_s": plain,
            "compiled_it_per_s": compiled, "ratio": compiled / plain,
            "wall_seconds": time.perf_counter() - t}


# ---------------------------------------------------------------- the benchmark
def make_dataset(path: Path, steps: int) -> None:
    from gan_envs.collect import CollectConfig, collect

    collect(CollectConfig(DATASET_ENVS, path, steps=steps, num_envs=8, size=IMAGE_SIZE))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--iters", type=int, default=15, help="timed iterations per measurement")
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--threads", default="2,1", help="torch thread counts to measure")
    parser.add_argument("--data", type=Path, help="dataset (default: collect 6,000 steps)")
    parser.add_argument("--json", type=Path, help="write the results here")
    parser.add_argument("--no-compile", action="store_true", help="skip the torch.compile probe")
    parser.add_argument("--compile-timeout", type=float, default=150.0,
                        help="skip torch.compile (with a note) when it takes longer")
    args = parser.parse_args()
    threads = [int(t) for t in args.threads.split(",")]
    if args.warmup < 1 or args.iters < 1 or args.rounds < 1:
        parser.error("--warmup, --iters and --rounds must be at least 1")
    with tempfile.TemporaryDirectory(prefix="bench_gan_") as folder:
        run(args, threads, Path(folder))


def run(args: argparse.Namespace, threads: list[int], workdir: Path) -> None:
    """The benchmark; ``workdir`` holds the collected dataset and the runs (removed after)."""
    data = args.data
    if data is None:
        data = workdir / "atari3.h5"
        t = time.perf_counter()
        make_dataset(data, 6000)
        print(f"collected {data} in {time.perf_counter() - t:.1f} s", flush=True)
    inner = DatasetFrameSource(data)
    source = TimedSource(inner)
    tutorial = TutorialLoop()
    convert = {}
    for n in threads:
        torch.set_num_threads(n)
        convert[n] = conversion_seconds(inner)

    variants: list[tuple[str, int, Callable[[], tuple[float, float]]]] = []
    for n in threads:
        variants += [
            ("tutorial env-fed loop", n,
             lambda: time_tutorial(tutorial, args.iters, args.warmup)),
            ("ours (train_gan, dataset)", n,
             lambda: time_ours(source, args.iters, args.warmup, False, workdir)),
            ("ours + channels_last", n,
             lambda: time_ours(source, args.iters, args.warmup, True, workdir)),
            ("ours + channels_last + bf16", n,
             lambda: time_ours(source, args.iters, args.warmup, True, workdir, bf16=True)),
        ]
    rates: dict[tuple[str, int], list[float]] = {(v, n): [] for v, n, _ in variants}
    data_frac: dict[tuple[str, int], list[float]] = {(v, n): [] for v, n, _ in variants}
    t_start = time.perf_counter()
    for r in range(args.rounds):
        order = variants if r % 2 == 0 else variants[::-1]
        for name, n, fn in order:
            torch.set_num_threads(n)
            rate, frac = fn()
            rates[(name, n)].append(rate)
            data_frac[(name, n)].append(frac)
            print(f"round {r + 1} {name:<28} threads={n}: {rate:.3f} it/s "
                  f"(data {100 * frac:.2f} %)", flush=True)
    tutorial.close()

    base = {n: statistics.median(rates[("tutorial env-fed loop", n)]) for n in threads}
    best_tutorial = max(base.values())
    results = []
    print(f"\nmedians over {args.rounds} interleaved rounds of {args.iters} iterations, "
          f"batch {BATCH}, width {WIDTH}, {torch.__version__}:")
    print("options: ours = GanConfig(recipe='tutorial', width=512, batch_size=16) (float32); "
          "+ channels_last = channels_last=True; + bf16 = bf16=True (bfloat16 autocast)")
    print(f"{'variant':<28} {'threads':>7} {'it/s':>7} {'vs tutorial':>12} {'vs best tut.':>12} "
          f"{'data path':>10}")
    for (name, n), values in rates.items():
        rate = statistics.median(values)
        frac = statistics.median(data_frac[(name, n)])
        if name.startswith("ours"):  # the conversion happens in the trainer, outside the wrapper
            frac += convert[n] * rate
        row = {"variant": name, "threads": n, "it_per_s": rate,
               "ratio_same_threads": rate / base[n], "ratio_vs_best_tutorial": rate / best_tutorial,
               "data_path_fraction": frac, "rounds": values}
        results.append(row)
        print(f"{name:<28} {n:>7} {rate:>7.3f} {rate / base[n]:>11.2f}x "
              f"{rate / best_tutorial:>11.2f}x {100 * frac:>9.2f}%")
    ours = [r for r in results if r["variant"].startswith("ours")]
    best = max(ours, key=lambda r: r["it_per_s"])
    print(f"\nbest ours: {best['variant']}, threads={best['threads']}: "
          f"{best['ratio_vs_best_tutorial']:.2f}x the tutorial's best setting "
          f"({best_tutorial:.3f} it/s); target >= 1.5x")
    for row in ours:
        print(f"ours' data path, {row['variant']}, threads={row['threads']}: "
              f"{1e3 * row['data_path_fraction'] / row['it_per_s']:.2f} ms/iteration "
              f"(sample_frames + conversion; the conversion alone "
              f"{1e3 * convert[row['threads']]:.3f} ms/batch)")
    print(f"timed section: {time.perf_counter() - t_start:.0f} s")

    costs = sampling_costs(data)
    print("sample_frames(16), median ms per batch: "
          + ", ".join(f"{k} {v:.3f}" for k, v in costs.items())
          + " (chunked: the reader's default, 1 chunk of 16 consecutive frames per 16; iid: "
            "chunks_per_batch = n)")
    compiled: dict[str, Any] = {"skipped": "--no-compile"}
    if not args.no_compile:
        compiled = probe_compile(max(threads), args.iters, args.rounds, args.compile_timeout)
    print(f"torch.compile (G and D, tutorial loop): {compiled}")
    inner.close()
    if args.json:
        args.json.write_text(json.dumps({"results": results, "compile": compiled,
                                         "conversion_seconds": convert,
                                         "sampling_ms_per_batch": costs,
                                         "torch": torch.__version__}, indent=2) + "\n")


if __name__ == "__main__":
    from _script import run_script

    run_script(main)
