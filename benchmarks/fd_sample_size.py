"""How much of an evaluation's Fréchet distance is the sample, and what do rare frames do to it?

Draws one large evaluation of a run with ``gan-envs evaluate``'s own ``evaluation_sets`` (as
``--n N --seed S``: the same stratified real sets A and B, latents, labels and cached feature
network), then re-scores random subsets of ``m`` frames of each set for every ``--sizes`` m:
the median, least and largest generated distance (A against G) and real-vs-real floor (A
against B) over ``--repeats`` subsets. It repeats the table after dropping *far* frames:
frames whose features lie more than ``--far`` times the median distance of set A's frames
from A's mean (on the Breakout + AirRaid + Pong data: AirRaid's light-grey flash screens, 30
of its 20,038 frames, at 3.4x), and prints how many far frames each set holds, per game
(docs/gan.md, *Session 16*).

    python benchmarks/fd_sample_size.py RUN_DIR DATA.h5 --n 4000 --seed 0 \
        --sizes 500 1000 2000 --repeats 5
"""

from __future__ import annotations

import argparse
import statistics
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from gan_envs.trainers.data import DatasetFrameSource, FrameSource, env_labels
from gan_envs.trainers.metrics import FAR_FACTOR, evaluation_sets, far_frames, frechet_distance
from gan_envs.trainers.sampling import proportional_counts


def draw_sets(run_dir: Path, source: FrameSource, n: int, seed: int,
              classifier_steps: int = 600, classifier_frames: int = 4000) -> dict[str, Any]:
    """The features of ``evaluate(run_dir, source, n, seed)``'s sets (its own
    :func:`evaluation_sets`): ``a``, ``b`` (real), ``fake`` (the EMA generator), each with its
    env labels (``a_env``, ...) and ``env_ids``."""
    if not env_labels(source) or not hasattr(source, "env_counts"):
        raise ValueError("fd_sample_size needs a source that labels its frames with two or "
                         "more envs and counts them (a multi-game rollout dataset)")
    drawn = evaluation_sets(run_dir, source, n, seed, classifier_steps=classifier_steps,
                            classifier_frames=classifier_frames)
    if drawn.fake_env is None:
        raise ValueError(f"{run_dir} is not conditional on this data's envs {drawn.env_ids}: "
                         "fd_sample_size compares game-labelled sets")
    real_env = drawn.real_env
    return {"a": drawn.sets["a"]["features"], "b": drawn.sets["b"]["features"],
            "fake": drawn.sets["fake"]["features"], "a_env": real_env[:n],
            "b_env": real_env[n:], "fake_env": drawn.fake_env, "env_ids": drawn.env_ids}


def subset_distances(sets: dict[str, Any], size: int | None, repeats: int, seed: int,
                     keep: dict[str, np.ndarray] | None = None) -> dict[str, list[float]]:
    """Generated distance and floor over ``repeats`` random subsets of ``size`` frames of each
    set (of the rows ``keep`` marks, when given), every subset in set A's game proportions
    (as the evaluation's sets are); ``size=None``: the whole sets (their kept rows), once."""
    pools = {k: np.flatnonzero(keep[k]) if keep else np.arange(len(sets[k]))
             for k in ("a", "b", "fake")}
    if size is None:
        a = sets["a"][pools["a"]]
        return {"fd": [frechet_distance(a, sets["fake"][pools["fake"]])],
                "floor": [frechet_distance(a, sets["b"][pools["b"]])]}
    smallest = min(len(p) for p in pools.values())
    if size > smallest:
        short = min(pools, key=lambda k: len(pools[k]))
        raise ValueError(f"subsets of {size} frames need sets that large, but set {short} "
                         f"holds {smallest}: pass --sizes up to {smallest} (or a larger --n)")
    share = np.bincount(sets["a_env"], minlength=len(sets["env_ids"]))
    counts = proportional_counts(share, size)
    rng = np.random.default_rng([seed, 3])
    out: dict[str, list[float]] = {"fd": [], "floor": []}
    for _ in range(repeats):
        pick = {}
        for k, pool in pools.items():
            envs = sets[f"{k}_env"][pool]
            held = np.bincount(envs, minlength=len(counts))
            if np.any(held < counts):
                e = int(np.flatnonzero(held < counts)[0])
                raise ValueError(f"set {k} holds {held[e]} frames of {sets['env_ids'][e]} but "
                                 f"subsets of {size} frames need {counts[e]}: pass smaller "
                                 "--sizes (or a larger --n)")
            pick[k] = np.concatenate([rng.permutation(pool[envs == e])[:c]
                                      for e, c in enumerate(counts)])
        a = sets["a"][pick["a"]]
        out["fd"].append(frechet_distance(a, sets["fake"][pick["fake"]]))
        out["floor"].append(frechet_distance(a, sets["b"][pick["b"]]))
    return out


def far_masks(sets: dict[str, Any], factor: float) -> dict[str, np.ndarray]:
    """Which frames of each set (``a``, ``b``, ``fake``) are far from set A."""
    return {k: far_frames(sets[k], sets["a"], factor) for k in ("a", "b", "fake")}


def far_counts(sets: dict[str, Any], far: dict[str, np.ndarray]) -> dict[str, list[int]]:
    """Far frames per set, per env."""
    return {k: np.bincount(sets[f"{k}_env"][mask], minlength=len(sets["env_ids"])).tolist()
            for k, mask in far.items()}


def _spread(values: Sequence[float]) -> str:
    if len(values) == 1:
        return f"{values[0]:.3f}"
    return f"{statistics.median(values):.3f} ({min(values):.3f}-{max(values):.3f})"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("run_dir", type=Path)
    parser.add_argument("data", type=Path)
    parser.add_argument("--n", type=int, default=4000, help="frames per set of the large draw")
    parser.add_argument("--seed", type=int, default=0, help="the evaluation seed to mirror")
    parser.add_argument("--sizes", type=int, nargs="+", default=[500, 1000, 2000])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--far", type=float, default=FAR_FACTOR,
                        help="far: farther from A's mean than this times A's median distance")
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    source = DatasetFrameSource(args.data)
    sets = draw_sets(args.run_dir, source, args.n, args.seed)
    far = far_masks(sets, args.far)
    print(f"far frames per env {sets['env_ids']}: " +
          ", ".join(f"{k} {v}" for k, v in far_counts(sets, far).items()))
    keep = {k: ~mask for k, mask in far.items()}
    print("| frames per set | generated fd | real-vs-real floor | without far frames: fd "
          "| floor |")
    print("|---:|---|---|---|---|")
    for size in [*args.sizes, None]:
        rows = [subset_distances(sets, size, args.repeats, args.seed),
                subset_distances(sets, size, args.repeats, args.seed, keep)]
        label = f"{args.n} (all)" if size is None else str(size)
        print(f"| {label} | {_spread(rows[0]['fd'])} | {_spread(rows[0]['floor'])} | "
              f"{_spread(rows[1]['fd'])} | {_spread(rows[1]['floor'])} |")


if __name__ == "__main__":
    from _script import run_script

    run_script(main)
