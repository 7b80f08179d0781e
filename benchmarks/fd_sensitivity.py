"""How the offline Fréchet distance reacts to small, invisible changes of real frames.

Draws the same stratified real sets A and B as ``gan-envs evaluate --seed S`` and scores set B
against set A after Gaussian noise, Gaussian blur and a brightness shift, with the feature
network cached in ``--run`` (``eval_classifier.pt``; trained there first when missing). The
rows show how close to the data, in pixels, a generator must be to reach a given multiple of
the real-vs-real floor (docs/gan.md, *How far 2× is, in pixels*).

    python benchmarks/fd_sensitivity.py DATA.h5 --run RUN_DIR --n 1000 --seeds 0 1 2
"""

from __future__ import annotations

import argparse
import statistics
from collections.abc import Callable
from pathlib import Path

import cv2
import numpy as np
import torch

from gan_envs.trainers.data import DatasetFrameSource, env_labels, is_image_shape
from gan_envs.trainers.metrics import (
    _embed,
    _load_or_train,
    _resolve_tasks,
    _set_counts,
    _stratified_sets,
    frechet_distance,
)


def _noise(sigma: float) -> Callable[[np.ndarray, np.random.Generator], np.ndarray]:
    def change(frames: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        noisy = frames.astype(np.float32) + rng.normal(0.0, sigma, frames.shape)
        return np.clip(noisy, 0, 255).round().astype(np.uint8)
    return change


def _blur(sigma: float) -> Callable[[np.ndarray, np.random.Generator], np.ndarray]:
    def change(frames: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        return np.stack([cv2.GaussianBlur(f.transpose(1, 2, 0), (0, 0), sigma)
                         .reshape(f.shape[1], f.shape[2], -1).transpose(2, 0, 1) for f in frames])
    return change


def _brighter(step: int) -> Callable[[np.ndarray, np.random.Generator], np.ndarray]:
    def change(frames: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        return np.clip(frames.astype(np.int16) + step, 0, 255).astype(np.uint8)
    return change


CHANGES: list[tuple[str, Callable[[np.ndarray, np.random.Generator], np.ndarray]]] = [
    ("nothing (the floor)", lambda frames, rng: frames),
    *[(f"Gaussian noise, sigma {s}/255", _noise(s)) for s in (1, 2, 4, 8)],
    *[(f"Gaussian blur, sigma {s} px", _blur(s)) for s in (0.3, 0.5, 0.8)],
    *[(f"every channel {d}/255 brighter", _brighter(d)) for d in (2, 5, 10)],
]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("data")
    parser.add_argument("--run", required=True, help="folder with (or for) eval_classifier.pt")
    parser.add_argument("--n", type=int, default=1000)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    args = parser.parse_args()
    torch.set_num_threads(1)
    source = DatasetFrameSource(args.data, in_memory=True)
    env_ids = env_labels(source)  # as evaluate reads them (None for one env)
    counts = _set_counts(source, env_ids, args.n)
    if counts is None or not is_image_shape(source.frame_shape):  # before any training
        raise SystemExit(f"{args.data}: needs image frames labelled with at least two envs")
    run = Path(args.run)
    run.mkdir(parents=True, exist_ok=True)  # a folder for the network, when new
    # the defaults of gan_envs.trainers.metrics.evaluate: the same cached network
    net, _ = _load_or_train(run, source, env_ids, _resolve_tasks("auto", env_ids), 600, 4000, 0)
    scores: dict[str, list[float]] = {name: [] for name, _ in CHANGES}
    for seed in args.seeds:
        real, _ = _stratified_sets(source, env_ids, counts, np.random.default_rng([seed, 2]))
        rng = np.random.default_rng(seed)
        with torch.no_grad():
            reference = _embed(net, real[:args.n])["features"]
            for name, change in CHANGES:
                changed = _embed(net, change(real[args.n:], rng))["features"]
                scores[name].append(frechet_distance(reference, changed))
    floor = statistics.median(scores[CHANGES[0][0]])
    print(f"| real set B, changed by | fd, seeds {' / '.join(map(str, args.seeds))} "
          "| x median floor |")
    print("|---|---|---:|")
    for name, values in scores.items():
        print(f"| {name} | {' / '.join(f'{v:.2f}' for v in values)} "
              f"| {statistics.median(values) / floor:.1f} |")


if __name__ == "__main__":
    from _script import run_script

    run_script(main)
