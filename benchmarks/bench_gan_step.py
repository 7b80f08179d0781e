"""Training speed of GAN settings side by side: iterations/s of ``train_gan`` per variant.

Each variant is a set of ``GanConfig`` fields on top of the quality run's (the ``fast`` recipe at
``--width``, default 128). The variants run interleaved, round by round, ``--rounds`` times
each, every measurement in a fresh process, timing iterations ``--warmup`` to
``--warmup + --iters`` of a fresh run (the start's probe draw and k-means are not timed, nor
the grid and checkpoint its last iteration writes, one iteration later); the table gives the
median iterations/s of each and its ratio to the first variant, the baseline, measured in the
same rounds::

    python benchmarks/bench_gan_step.py --data DATA.h5 \\
        --variant '{}' --variant '{"channels_last": true}' --variant '{"bf16": true}'

``--code DIR`` runs the variants on another checkout of gan-envs as well (a ``git worktree`` of
an older commit, say), interleaved with this one, to measure a change of the trainer itself.
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
from pathlib import Path


def time_variant(data: str, config: dict, warmup: int, iters: int, threads: int) -> float:
    """Iterations/s of one fresh run of ``config`` between iterations ``warmup`` and
    ``warmup + iters`` (runs in this process, with this process's gan_envs)."""
    import torch

    from gan_envs.trainers.data import DatasetFrameSource
    from gan_envs.trainers.gan import GanConfig, train_gan

    torch.set_num_threads(threads)
    source = DatasetFrameSource(data, in_memory=True)
    marks: dict[int, float] = {}

    def progress(iteration: int, metrics: dict[str, float]) -> None:
        if iteration in (warmup, warmup + iters):
            marks[iteration] = time.perf_counter()

    with tempfile.TemporaryDirectory() as run_dir:
        # one iteration more: the last one writes a grid and a checkpoint (not timed)
        settings = {"sample_every": 10**9, "checkpoint_every": 10**9, **config,
                    "iterations": warmup + iters + 1}
        train_gan(GanConfig(**settings), source, run_dir, progress=progress)
    return iters / (marks[warmup + iters] - marks[warmup])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", required=True, help="a rollout dataset (HDF5)")
    parser.add_argument("--variant", action="append", default=[],
                        help="GanConfig fields as JSON (repeatable; the first is the baseline)")
    parser.add_argument("--width", type=int, default=128)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--warmup", type=int, default=50)
    parser.add_argument("--iters", type=int, default=200)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--code", type=Path, help="another gan-envs checkout to time as well")
    parser.add_argument("--one", help=argparse.SUPPRESS)  # internal: time one variant, print it/s
    args = parser.parse_args()
    if args.warmup < 1 or args.iters < 1 or args.rounds < 1:
        parser.error("--warmup, --iters and --rounds must be at least 1")
    if args.code is not None and not (args.code / "gan_envs" / "__init__.py").is_file():
        parser.error(f"--code {args.code}: no gan_envs package there (a checkout of gan-envs)")
    if args.one is not None:
        print(time_variant(args.data, json.loads(args.one), args.warmup, args.iters,
                           args.threads))
        return
    variants = [json.loads(v) for v in args.variant] or [{}]
    for variant in variants:
        variant.setdefault("width", args.width)
    codes = [("this", Path(__file__).resolve().parents[1])]
    if args.code is not None:
        codes.append((str(args.code), args.code.resolve()))
    rows = [(code, json.dumps(v)) for code, _ in codes for v in variants]
    speeds: dict[tuple[str, str], list[float]] = {row: [] for row in rows}
    for round_ in range(args.rounds):
        for (code, variant), (_, root) in zip(rows, [c for c in codes for _ in variants],
                                              strict=True):
            # a fresh process per measurement: the checkout is its first import path
            out = subprocess.run(
                [sys.executable, __file__, "--data", args.data, "--one", variant,
                 "--warmup", str(args.warmup), "--iters", str(args.iters),
                 "--threads", str(args.threads)],
                capture_output=True, text=True,
                env={**os.environ, "PYTHONPATH": str(root)})
            if out.returncode != 0:  # its error, not only its exit status
                lines = out.stderr.strip().splitlines() or [f"exit status {out.returncode}"]
                sys.exit(f"bench_gan_step.py: {code} {variant}: "
                         f"{lines[-1].removeprefix('bench_gan_step.py: ')}")
            speeds[(code, variant)].append(float(out.stdout.split()[-1]))
            print(f"round {round_ + 1}/{args.rounds} {code} {variant}: "
                  f"{speeds[(code, variant)][-1]:.2f} it/s", file=sys.stderr)
    base = statistics.median(speeds[rows[0]])
    print(f"medians over {args.rounds} interleaved rounds, iterations {args.warmup}-"
          f"{args.warmup + args.iters}, {args.threads} thread(s), width {args.width}")
    print(f"{'code':<10} {'variant':<48} {'it/s':>7} {'vs first':>9}")
    for code, variant in rows:
        median = statistics.median(speeds[(code, variant)])
        print(f"{code[-10:]:<10} {variant[:48]:<48} {median:7.2f} {median / base:8.2f}x")


if __name__ == "__main__":
    from _script import run_script

    run_script(main)
