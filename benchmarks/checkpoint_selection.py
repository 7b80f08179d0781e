"""Could a score computed during training choose the checkpoint to keep?

Scores saved snapshots of GAN runs the way an in-run score would: a feature network of its own
(trained with ``--seed``, not the seed-0 network ``gan-envs evaluate`` caches), real frames and
latents of its own draw. It then ranks the snapshots of each run by that score and compares the
ranking with the evaluation reports already written into each snapshot (``r0.json``,
``r1.json``, ... from ``gan-envs evaluate SNAPSHOT DATA.h5 --seed E --json SNAPSHOT/rE.json``;
their median Fréchet distance, over ``--floor``). Per run it prints the rank correlation, the
evaluated ratio of the snapshot the score would keep, the best and the median (docs/gan.md,
*Session 15*).

    python benchmarks/checkpoint_selection.py DATA.h5 RUN.snapshots/iter_* --seed 7 --n 1000 \
        --floor 0.277
"""

from __future__ import annotations

import argparse
import json
import statistics
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch

from gan_envs.trainers.data import DatasetFrameSource, FrameSource, env_labels
from gan_envs.trainers.metrics import (
    _embed,
    _set_counts,
    _stratified_sets,
    frechet_distance,
    train_feature_net,
)
from gan_envs.trainers.sampling import load_generator, make_latents


def score_snapshots(source: FrameSource, snapshots: Sequence[Path], seed: int, n: int,
                    classifier_steps: int = 600, classifier_frames: int = 4000) -> list[float]:
    """Each snapshot's EMA Fréchet distance to ``n`` real frames (stratified by game) in a
    feature network trained with ``seed`` on ``classifier_frames`` frames of ``source``."""
    env_ids = env_labels(source)
    if not env_ids:
        raise ValueError("checkpoint_selection needs frames labelled with at least two envs")
    rng = np.random.default_rng([seed, 1])
    frames, env_index = source.sample_frames_with_env(classifier_frames, rng)
    net = train_feature_net(frames, env_index, len(env_ids), steps=classifier_steps, seed=seed)
    counts = _set_counts(source, env_ids, n)
    if counts is None:
        raise ValueError("checkpoint_selection needs a source that counts its frames per env "
                         "(a rollout dataset or labelled arrays)")
    real, _ = _stratified_sets(source, env_ids, counts, np.random.default_rng([seed, 2]))
    reference = _embed(net, real[:n])["features"]
    scores = []
    for snapshot in snapshots:
        gen = load_generator(snapshot, ema=True)
        if gen.frame_shape != tuple(source.frame_shape):
            raise ValueError(f"{snapshot} makes frames {gen.frame_shape} but the data has "
                             f"{tuple(source.frame_shape)}: score it against its own data")
        fake = gen.generate(make_latents(n, gen.latent_dim, 1000 + seed),
                            labels=gen.labels(n, 1000 + seed))
        scores.append(frechet_distance(reference, _embed(net, fake)["features"]))
    return scores


def evaluated_fd(snapshot: Path) -> float | None:
    """The median generated Fréchet distance of the snapshot's ``r*.json`` reports (None
    without any)."""
    reports = sorted(snapshot.glob("r[0-9].json"))
    fds = [json.loads(p.read_text())["generated"]["fd"] for p in reports]
    return statistics.median(fds) if fds else None


def ranks(values: Sequence[float]) -> np.ndarray:
    """0-based ranks (ties in order of appearance)."""
    return np.argsort(np.argsort(np.asarray(values), kind="stable"), kind="stable").astype(float)


def summarise(scores: Sequence[float], evaluated: Sequence[float]) -> dict[str, float]:
    """One run's snapshots: Spearman's rank correlation of score and evaluation, the evaluated
    value of the lowest-scored snapshot (what an in-run score would keep), the best and the
    median evaluated value.

    Example:
        >>> summarise([3.0, 1.0, 2.0], [2.5, 2.0, 4.0])
        {'rank_correlation': 0.5, 'kept': 2.0, 'best': 2.0, 'median': 2.5}
    """
    if len(scores) != len(evaluated) or len(scores) < 2:
        raise ValueError("summarise needs two or more snapshots with a score and an evaluation")
    a, b = ranks(scores), ranks(evaluated)
    return {"rank_correlation": float(np.corrcoef(a, b)[0, 1]),
            "kept": float(evaluated[int(np.argmin(scores))]),
            "best": float(min(evaluated)), "median": float(statistics.median(evaluated))}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("data")
    parser.add_argument("snapshots", nargs="+", type=Path,
                        help="snapshot directories; a run is the snapshots of one parent folder")
    parser.add_argument("--seed", type=int, default=7, help="the score's own feature network")
    parser.add_argument("--n", type=int, default=1000)
    parser.add_argument("--floor", type=float, default=1.0,
                        help="divide evaluated distances by this (the median real-vs-real floor)")
    args = parser.parse_args()
    torch.set_num_threads(1)
    missing = [str(s) for s in args.snapshots if not s.is_dir()]
    if missing:
        raise SystemExit(f"not a snapshot directory: {', '.join(missing)}")
    evaluated = {s: evaluated_fd(s) for s in args.snapshots}
    snapshots = [s for s in args.snapshots if evaluated[s] is not None]
    if not snapshots:
        raise SystemExit("no snapshot holds r*.json reports: run gan-envs evaluate --json first")
    source = DatasetFrameSource(args.data, in_memory=True)
    scores = dict(zip(snapshots, score_snapshots(source, snapshots, args.seed, args.n),
                      strict=True))
    print("| run | snapshot: score / evaluated ÷ floor | rank correlation | kept | best | median |")
    print("|---|---|---:|---:|---:|---:|")
    for run in sorted({s.parent for s in snapshots}):
        mine = sorted(s for s in snapshots if s.parent == run)
        ratios = [evaluated[s] / args.floor for s in mine]
        row = summarise([scores[s] for s in mine], ratios)
        cells = " ".join(f"{s.name}: {scores[s]:.2f} / {r:.2f}" for s, r in zip(mine, ratios,
                                                                                 strict=True))
        print(f"| {run} | {cells} | {row['rank_correlation']:.2f} | {row['kept']:.2f} "
              f"| {row['best']:.2f} | {row['median']:.2f} |")


if __name__ == "__main__":
    from _script import run_script

    run_script(main)
