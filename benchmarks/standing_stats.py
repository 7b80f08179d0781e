"""Standing statistics for saved runs: the EMA generator's BatchNorm statistics measured on
its own activations, scored beside the saved ones (docs/gan.md, *Session 18*).

For every RUN_DIR it writes ``OUT/<run name>/checkpoint.pt``: the run's checkpoint with the
EMA generator's BatchNorm statistics replaced by standing statistics over ``--frames`` latents
(:func:`gan_envs.trainers.models.standing_statistics`: the run's batch size, labels in its
training shares; by default on the latents its trainer uses,
:func:`gan_envs.trainers.gan.standing_inputs` of the run's seed, so that a run trained with
1,024 of them comes back unchanged), the weights unchanged; the copies are for scoring, not
for resuming. With ``--data`` it also copies the run's checkpoint as saved to
``OUT/<run name>.saved``, scores both copies with ``gan-envs evaluate``'s :func:`evaluate` at
every ``--seeds`` seed (the input runs are only read) and prints each pair and the median
ratio. Runs trained before session 18 saved the average of the raw generator's running
statistics; session 18's measurements used ``--seed 0``.

    python benchmarks/standing_stats.py RUN_DIR... --out /tmp/restat --frames 1024 \\
        --data /tmp/gan2/data.h5 --seeds 0 1 2 --n 1000
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import time
from collections.abc import Sequence
from pathlib import Path

import torch

from gan_envs.trainers.data import DatasetFrameSource
from gan_envs.trainers.gan import CHECKPOINT_NAME, load_checkpoint, standing_inputs
from gan_envs.trainers.metrics import evaluate
from gan_envs.trainers.models import standing_statistics
from gan_envs.trainers.sampling import checkpoint_generator


def restat_run(run_dir: Path, out_dir: Path, frames: int, seed: int | None = None) -> float:
    """Write ``run_dir``'s checkpoint to ``out_dir`` with standing statistics in its EMA
    generator, measured on :func:`standing_inputs` of ``seed`` (None: the run's own training
    seed, as its trainer does); return the CPU-seconds the measurement took."""
    ckpt = load_checkpoint(run_dir)
    if ckpt.get("generator_ema") is None:
        raise ValueError(f"{run_dir} has no EMA generator: standing statistics are the EMA's "
                         "(train with ema_decay > 0)")
    gen = checkpoint_generator(ckpt, ema=True)
    shares = None
    if gen.conditional:  # the training batches' shares
        env_shares = ckpt["config"].get("env_shares")
        shares = torch.tensor(env_shares, dtype=torch.float64) if env_shares \
            else gen.label_probs
    seed = int(ckpt["config"]["seed"]) if seed is None else seed
    latents, labels = standing_inputs(seed, frames, gen.latent_dim, shares)
    started = time.process_time()
    standing = standing_statistics(gen.net, latents, labels, int(ckpt["config"]["batch_size"]))
    seconds = time.process_time() - started
    ckpt["generator_ema"] = standing.state_dict()
    out_dir.mkdir(parents=True, exist_ok=True)
    torch.save(ckpt, out_dir / CHECKPOINT_NAME)
    return seconds


def _evaluate(run_dir: Path, source: DatasetFrameSource, n: int, seed: int, cache: Path
              ) -> dict:
    """:func:`evaluate`, reusing one feature network per evaluation seed across runs (it
    depends on the seed's real sets and the data, not on the run; kept in ``cache``)."""
    kept = cache / f"eval_classifier_s{seed}.pt"
    if kept.exists():
        shutil.copy(kept, run_dir / "eval_classifier.pt")
    report = evaluate(run_dir, source, n, seed)
    if not kept.exists():
        shutil.copy(run_dir / "eval_classifier.pt", kept)
    return report


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("runs", nargs="+", type=Path, help="run directories (with an EMA)")
    parser.add_argument("--out", type=Path, required=True, help="where the copies go")
    parser.add_argument("--frames", type=int, default=1024, help="latents per measurement")
    parser.add_argument("--seed", type=int,
                        help="the latents' and labels' seed (default: each run's own, as its "
                             "trainer draws them)")
    parser.add_argument("--data", help="score both copies against this dataset")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0], help="evaluation seeds")
    parser.add_argument("--n", type=int, default=1000, help="frames per evaluation set")
    parser.add_argument("--threads", type=int, default=1, help="torch threads")
    args = parser.parse_args(argv)
    names = [run.name for run in args.runs]
    twice = sorted({name for name in names if names.count(name) > 1})
    if twice:  # OUT/<run name>: the second copy would replace the first
        parser.error(f"two runs named {twice[0]}: their copies in --out would overwrite each "
                     "other; pass runs with distinct folder names (copy or link them)")
    torch.set_num_threads(args.threads)
    source = DatasetFrameSource(args.data) if args.data else None
    ratios = []
    print(f"{'run':40s} {'s':>3s} {'fd saved':>9s} {'fd standing':>12s} {'ratio':>6s} "
          f"{'floor':>7s}")
    for run in args.runs:
        out = args.out / run.name
        seconds = restat_run(run, out, args.frames, args.seed)
        print(f"{run}: standing statistics over {args.frames} latents in {seconds:.2f} "
              "CPU-s", flush=True)
        if source is None:
            continue
        as_saved = args.out / f"{run.name}.saved"
        as_saved.mkdir(parents=True, exist_ok=True)
        shutil.copy(run / CHECKPOINT_NAME, as_saved / CHECKPOINT_NAME)
        for seed in args.seeds:
            saved, standing = (_evaluate(d, source, args.n, seed, args.out)
                               for d in (as_saved, out))
            fd_a, fd_b = saved["generated"]["fd"], standing["generated"]["fd"]
            ratios.append(fd_b / fd_a)
            print(f"{run.name:40s} {seed:3d} {fd_a:9.4f} {fd_b:12.4f} {fd_b / fd_a:6.3f} "
                  f"{standing['real_vs_real']['fd']:7.4f}", flush=True)
    if ratios:
        print(f"median ratio standing / saved over {len(ratios)} pairs: "
              f"{statistics.median(ratios):.3f} (lower in {sum(r < 1 for r in ratios)})")


if __name__ == "__main__":
    from _script import run_script

    run_script(main)
