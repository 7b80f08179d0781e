"""A GAN quality run with a CPU-time budget: train until this process has used N CPU-minutes.

Trains ``train_gan`` on a dataset held in RAM, stops once ``time.process_time()`` has advanced
``--cpu-minutes`` (or after 1.5× that in wall time, on a crowded machine), checkpoints the last
finished iteration, then resumes once with ``iterations=<reached>`` to write the training video.
Writes ``drive.json`` (iterations, wall and CPU seconds, config) into the run directory. Score
the run afterwards with ``gan-envs evaluate RUN_DIR DATA.h5 --n 1000 --seed S``.

``--config '{"iterations": N, ...}'`` also stops at iteration N when the budget lasts that long
(a schedule such as ``lr_decay`` needs to know the end).

``--fork RUN_OR_SNAPSHOT`` continues a saved run directory (a snapshot, or a finished run) in
RUN_DIR instead of starting afresh, the budget counting from there. The runs are deterministic
for a seed, so a fork equals the run it was taken from as long as ``--config`` changes only what
acts after the fork: ``iterations`` (beyond the fork), ``lr_decay`` (a decay that starts after
it) and ``loss`` (the objective from the fork on, e.g. the logistic loss early and the hinge
after); anything else given must equal the saved run's value.

``--snapshot-every K`` also copies the checkpoint every K iterations from iteration
``--snapshot-after`` (default 10,000) on into ``RUN_DIR.snapshots/iter_NNNNNN/``, each a run
directory that ``gan-envs evaluate`` scores. One final checkpoint is a single draw from a
trajectory whose Fréchet distance swings 2-5x between checkpoints 2,000 iterations apart
(docs/gan.md), so compare runs by the spread of these too.
"""

from __future__ import annotations

import argparse
import json
import shutil
import time
from pathlib import Path

import torch

from gan_envs.trainers.data import DatasetFrameSource
from gan_envs.trainers.gan import (
    GanConfig,
    _config_for_resume,
    load_checkpoint,
    lr_factor,
    train_gan,
)

FORK_CHANGES = ("lr_decay", "loss")  # GanConfig fields a fork may change (besides iterations)


def fork(saved_dir: Path, run_dir: Path, config: dict, cap: int) -> int:
    """Copy the run in ``saved_dir`` to ``run_dir`` with ``config``'s schedule changes; return
    its iteration. Raises ValueError for a change that would alter the iterations already run."""
    ckpt = load_checkpoint(saved_dir)
    start = int(ckpt["iteration"])
    if cap <= start:
        raise ValueError(f"the fork is at iteration {start}: pass a larger iterations cap")
    ckpt["config"].update({k: config[k] for k in FORK_CHANGES if k in config})
    # the trainer's own rule for --resume refuses every other change
    _config_for_resume(GanConfig(iterations=cap, **config), ckpt["config"], saved_dir)
    decay = float(ckpt["config"].get("lr_decay") or 0.0)
    if lr_factor(start, cap, decay) < 1.0:
        raise ValueError(f"lr_decay={decay} over {cap} iterations starts before the fork's "
                         f"iteration {start}: fork from an earlier snapshot")
    run_dir.mkdir(parents=True)
    torch.save(ckpt, run_dir / "checkpoint.pt")  # the trainer writes config.json on resuming
    return start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run_dir")
    parser.add_argument("--data", required=True)
    parser.add_argument("--cpu-minutes", type=float, default=30.0)
    parser.add_argument("--config", default="{}", help="GanConfig fields as JSON")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--snapshot-every", type=int, default=0,
                        help="copy the checkpoint every K iterations (0: no snapshots)")
    parser.add_argument("--snapshot-after", type=int, default=10_000,
                        help="first iteration to snapshot")
    parser.add_argument("--fork", metavar="RUN_OR_SNAPSHOT",
                        help="continue this saved run directory in RUN_DIR (see the docstring)")
    args = parser.parse_args()
    run_dir = Path(args.run_dir).resolve()
    snapshots = run_dir.with_name(run_dir.name + ".snapshots")
    if args.snapshot_every and snapshots.exists():
        parser.error(f"{snapshots} already exists: remove it or pick another RUN_DIR")

    torch.set_num_threads(args.threads)
    source = DatasetFrameSource(args.data, in_memory=True)
    config = {"sample_every": 1000, "checkpoint_every": 1000, **json.loads(args.config)}
    if args.snapshot_every and args.snapshot_every % config["checkpoint_every"]:
        parser.error(f"--snapshot-every must be a multiple of checkpoint_every "
                     f"({config['checkpoint_every']})")
    cap = config.pop("iterations", 10_000_000)  # a run with a schedule (lr_decay) names its end
    forked_at = None
    if args.fork:
        if run_dir.exists():
            parser.error(f"{run_dir} already exists: a fork starts in a new RUN_DIR")
        try:
            forked_at = fork(Path(args.fork), run_dir, config, cap)
        except (ValueError, FileNotFoundError) as error:
            parser.error(f"--fork: {error}")
    budget = args.cpu_minutes * 60
    reached = 0
    cpu0, wall0 = time.process_time(), time.time()

    def progress(iteration: int, metrics: dict[str, float]) -> None:
        nonlocal reached
        reached = iteration
        every = args.snapshot_every
        if every and iteration >= args.snapshot_after and iteration % every == 0:
            # the trainer has just written this iteration's checkpoint (checkpoint_every divides
            # every); keep a copy as a run directory of its own
            keep = snapshots / f"iter_{iteration:06d}"
            keep.mkdir(parents=True, exist_ok=True)
            for name in ("checkpoint.pt", "config.json"):
                shutil.copy(run_dir / name, keep / name)
        if time.process_time() - cpu0 >= budget or time.time() - wall0 >= 1.5 * budget:
            raise KeyboardInterrupt  # the trainer checkpoints the last finished iteration

    try:
        train_gan(GanConfig(iterations=cap, **config), source, args.run_dir, progress=progress,
                  resume=forked_at is not None)
    except KeyboardInterrupt:
        pass
    cpu, wall = time.process_time() - cpu0, time.time() - wall0
    train_gan(GanConfig(iterations=reached, **config), source, args.run_dir, resume=True)
    report = {"iterations": reached, "wall_s": wall, "cpu_s": cpu,
              "config": {**config, "iterations": cap},
              "fork": None if forked_at is None else {"from": args.fork, "iteration": forked_at}}
    with open(f"{args.run_dir}/drive.json", "w") as out:
        json.dump(report, out, indent=2)
    print(f"{args.run_dir}: {reached} iterations, {wall / 60:.2f} wall-min, {cpu / 60:.2f} CPU-min")


if __name__ == "__main__":
    from _script import run_script

    run_script(main)
