"""Offline evaluation of a GAN run: no downloaded Inception weights, every number beside its floor.

Protocol (the MNIST practice, see ``docs/gan.md``):

1. A small CNN (:class:`FeatureNet`) is trained on real frames of the source and cached in the
   run directory (``eval_classifier.pt``). It always learns a self-supervised *corruption*
   task: tell a clean frame from the same frame with Gaussian noise, blur (down- and
   up-scaling), shuffled patches, a ghost of another (shifted) frame, a vertical flip, or
   permuted colour channels (inverted intensities for grey frames). These are the ways GAN
   samples go wrong, so its features see them, and the task needs no labels: it works when the
   data has a single game.
   When the source labels its frames with at least two environments, a second head learns the
   game too (a game classifier), which also gives the game mix of generated frames.
2. Its 128-d penultimate features give the Fréchet distance, the KID (polynomial kernel,
   unbiased, averaged over subsets) and k-NN precision/recall (Kynkäänniemi et al., 2019,
   k = 3) of ``n`` generated frames against ``n`` real frames (set A).
3. The same numbers for ``n`` other real frames (set B, disjoint from A in one draw) are the
   **floor** (what a perfect generator would score at this ``n``), and for ``n`` uniform-noise
   frames the **ceiling**.

Vector observations skip the classifier: the features are the normalised vectors themselves.
"""

from __future__ import annotations

import hashlib
import os
import statistics
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from gan_envs._numbers import whole_number

from .data import FrameSource, env_labels, is_image_shape
from .sampling import load_generator, make_latents, proportional_counts

__all__ = [
    "CORRUPTIONS",
    "FeatureNet",
    "corrupt",
    "train_feature_net",
    "frechet_distance",
    "kernel_inception_distance",
    "precision_recall",
    "TRAINING_THREADS",
    "FAR_FACTOR",
    "far_frames",
    "EvaluationSets",
    "evaluation_sets",
    "evaluate",
    "report_table",
    "evaluate_draws",
    "draws_table",
]

CLASSIFIER_NAME = "eval_classifier.pt"
_CLASSIFIER_VERSION = 3  # 2: trained at TRAINING_THREADS whatever the caller's thread count;
# 3: the key holds a digest of the frames it is trained on (another file's network was reused)
TRAINING_THREADS = 1
"""Torch threads the feature network is trained with, whatever the caller's count: another
count sums in another order and trains another network, so the ruler would change with a speed
setting (on the quality run's data the floor at evaluation seed 0 was 0.47 trained at 1 thread
and 0.61 at 2; docs/gan.md, *Session 17*)."""
CORRUPTIONS = ("clean", "noise", "blur", "shuffle", "blend", "flip", "colour")
_MAX_SIDE = 64  # frames larger than this are area-downsampled before the classifier


# ---------------------------------------------------------------- the feature network
class FeatureNet(nn.Module):
    """Four strided 3x3 convolutions, a 4x4 spatial pool (keeps the screen layout), 128
    features, and one head per task: corruption (when ``corruption``), game (when
    ``n_games >= 2``)."""

    def __init__(
        self, channels: int, n_games: int = 0, corruption: bool = True, feature_dim: int = 128
    ) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        for c_in, c_out in [(channels, 32), (32, 64), (64, 128), (128, 128)]:
            layers += [nn.Conv2d(c_in, c_out, 3, 2, 1), nn.BatchNorm2d(c_out),
                       nn.ReLU(inplace=True)]
        self.trunk = nn.Sequential(*layers, nn.AdaptiveAvgPool2d(4), nn.Flatten(),
                                   nn.Linear(128 * 16, feature_dim), nn.ReLU(inplace=True))
        self.corruption_head = nn.Linear(feature_dim, len(CORRUPTIONS)) if corruption else None
        self.game_head = nn.Linear(feature_dim, n_games) if n_games >= 2 else None

    def forward(
        self, x: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor | None, torch.Tensor | None]:
        """Return ``(features, corruption logits or None, game logits or None)``."""
        features = self.trunk(x)
        corruption = self.corruption_head(features) if self.corruption_head is not None else None
        game = self.game_head(features) if self.game_head is not None else None
        return features, corruption, game


def _to_input(frames: np.ndarray) -> torch.Tensor:
    """uint8 ``(N, C, H, W)`` -> float in [-1, 1], area-downsampled to at most 64 pixels."""
    x = torch.from_numpy(np.asarray(frames)).float() / 127.5 - 1.0
    if x.shape[-1] > _MAX_SIDE:
        x = F.adaptive_avg_pool2d(x, (_MAX_SIDE * x.shape[-2] // x.shape[-1], _MAX_SIDE))
    return x


def corrupt(
    x: torch.Tensor, labels: torch.Tensor, generator: torch.Generator
) -> torch.Tensor:
    """Apply corruption ``CORRUPTIONS[labels[i]]`` to image ``x[i]`` (``[-1, 1]`` floats).

    Example:
        >>> x = torch.rand(7, 3, 16, 16) * 2 - 1
        >>> out = corrupt(x, torch.arange(7), torch.Generator().manual_seed(0))
        >>> torch.equal(out[0], x[0]), torch.equal(out[5], x[5].flip(1))
        (True, True)
    """
    n, channels, height, width = x.shape
    out = x.clone()
    u = torch.rand(n, 1, 1, 1, generator=generator)
    for k, name in enumerate(CORRUPTIONS):
        idx = (labels == k).nonzero().flatten()
        if len(idx) == 0 or name == "clean":
            continue
        xs = x[idx]
        if name == "noise":
            sigma = 0.1 + 0.3 * u[idx]
            xs = (xs + sigma * torch.randn(xs.shape, generator=generator)).clamp(-1, 1)
        elif name == "blur":
            factor = max(2, height // 16)
            xs = F.interpolate(F.avg_pool2d(xs, factor), size=(height, width), mode="bilinear",
                               align_corners=False)
        elif name == "shuffle":
            g = 4
            ph, pw = height // g, width // g
            patches = xs[:, :, : ph * g, : pw * g].reshape(len(xs), channels, g, ph, g, pw)
            patches = patches.permute(0, 2, 4, 1, 3, 5).reshape(len(xs), g * g, channels, ph, pw)
            patches = patches[:, torch.randperm(g * g, generator=generator)]
            shuffled = patches.reshape(len(xs), g, g, channels, ph, pw).permute(0, 3, 1, 4, 2, 5)
            xs = xs.clone()
            xs[:, :, : ph * g, : pw * g] = shuffled.reshape(len(xs), channels, ph * g, pw * g)
        elif name == "blend":  # a ghost of another frame, shifted so that it shows even
            alpha = 0.3 + 0.4 * u[idx]  # when the two frames are the same screen
            other = x[torch.randint(0, n, (len(idx),), generator=generator)]
            shift = int(torch.randint(width // 4, 3 * width // 4 + 1, (1,), generator=generator))
            xs = alpha * xs + (1 - alpha) * other.roll(shift, dims=3)
        elif name == "flip":
            xs = xs.flip(2)
        elif name == "colour":
            xs = xs.roll(1, dims=1) if channels > 1 else -xs
        out[idx] = xs
    return out


def train_feature_net(
    frames: np.ndarray,
    env_index: np.ndarray | None = None,
    n_games: int = 0,
    steps: int = 600,
    batch_size: int = 64,
    seed: int = 0,
    corruption: bool = True,
) -> FeatureNet:
    """Train a :class:`FeatureNet` on real uint8 frames: the corruption task when
    ``corruption``, the game task when ``env_index`` is given and ``n_games >= 2``.
    Returns it in eval mode."""
    x_all = _to_input(frames)
    games = torch.from_numpy(np.asarray(env_index, dtype=np.int64)) if n_games >= 2 else None
    if games is None and not corruption:
        raise ValueError("the feature network needs a task: game labels of >= 2 envs, "
                         "or the corruption task")
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        net = FeatureNet(x_all.shape[1], n_games if games is not None else 0, corruption)
    gen = torch.Generator().manual_seed(seed)
    opt = torch.optim.Adam(net.parameters(), lr=1e-3)
    net.train()
    for _ in range(steps):
        idx = torch.randint(0, len(x_all), (batch_size,), generator=gen)
        x = x_all[idx]
        if corruption:
            labels = torch.randint(0, len(CORRUPTIONS), (batch_size,), generator=gen)
            x = corrupt(x, labels, gen)
        _, corruption_logits, game_logits = net(x)
        loss = torch.zeros(())
        if corruption_logits is not None:
            loss = loss + F.cross_entropy(corruption_logits, labels)
        if game_logits is not None:
            loss = loss + F.cross_entropy(game_logits, games[idx])
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
    return net.eval()


@torch.no_grad()
def _embed(net: FeatureNet, frames: np.ndarray, batch: int = 256) -> dict[str, np.ndarray]:
    feats, clean, games = [], [], []
    for i in range(0, len(frames), batch):
        f, corruption_logits, game_logits = net(_to_input(frames[i : i + batch]))
        feats.append(f.double().numpy())
        if corruption_logits is not None:
            clean.append((corruption_logits.argmax(1) == 0).numpy())
        if game_logits is not None:
            games.append(game_logits.softmax(1).double().numpy())
    out = {"features": np.concatenate(feats)}
    if clean:
        out["clean"] = np.concatenate(clean)
    if games:
        out["game_probs"] = np.concatenate(games)
    return out


# ---------------------------------------------------------------- distances
FAR_FACTOR = 2.0
"""A frame is *far* when its features lie beyond this many times the median distance of real
set A's frames from A's mean (AirRaid's flash screens sit at ~3.4x, the 99.9th percentile of
the data at ~1.1x; docs/gan.md, *Session 16* of the quality run)."""


def far_frames(features: np.ndarray, reference: np.ndarray,
               factor: float = FAR_FACTOR) -> np.ndarray:
    """True for rows of ``features`` farther from ``reference``'s mean than ``factor`` times the
    median distance of ``reference``'s own rows from it.

    Example:
        >>> ref = np.random.default_rng(0).normal(size=(500, 4))
        >>> far_frames(np.vstack([ref[:3], [[40.0, 0, 0, 0]]]), ref).tolist()
        [False, False, False, True]
    """
    features, reference = np.asarray(features), np.asarray(reference)
    if reference.ndim != 2 or len(reference) < 2 or features.ndim != 2 \
            or features.shape[1] != reference.shape[1]:
        raise ValueError(f"far_frames needs 2-D features (N, D) and a reference of 2 or more "
                         f"rows of the same D, got {features.shape} and {reference.shape}")
    if isinstance(factor, bool) or not isinstance(factor, (int, float, np.number)) \
            or not np.isfinite(factor) or factor <= 0:  # NaN counted no frame as far
        raise ValueError(f"far_frames' factor must be a finite number > 0, got {factor!r}")
    centre = reference.mean(axis=0)
    typical = float(np.median(np.linalg.norm(reference - centre, axis=1)))
    return np.linalg.norm(features - centre, axis=1) > factor * typical


def _feature_sets(a: Any, b: Any, what: str, minimum: int = 2
                  ) -> tuple[np.ndarray, np.ndarray]:
    """Two ``(N, D)`` float64 feature sets with the same ``D``, ``N >= minimum``, all finite; or a
    one-line error naming ``what`` needs them."""
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    if a.ndim != 2 or b.ndim != 2 or a.shape[1] != b.shape[1]:
        raise ValueError(f"{what} needs two (N, D) feature sets with the same D, got shapes "
                         f"{a.shape} and {b.shape}")
    if a.shape[1] == 0:  # KID divided by D = 0 (NaN), FD gave 0 and precision/recall 1
        raise ValueError(f"{what} needs features with D >= 1, got shapes {a.shape} and {b.shape}")
    if min(len(a), len(b)) < minimum:
        raise ValueError(f"{what} needs at least {minimum} samples per set, got {len(a)} and "
                         f"{len(b)}")
    if not (np.isfinite(a).all() and np.isfinite(b).all()):
        raise ValueError(f"{what} needs finite features; a set holds NaN or infinity")
    return a, b


def frechet_distance(a: np.ndarray, b: np.ndarray) -> float:
    """Fréchet distance between Gaussians fitted to feature sets ``a`` and ``b`` ``(N, D)``.

    ``tr(sqrt(S1 S2))`` is computed as the nuclear norm of ``R1 R2^T``, where ``S = R^T R``
    (QR of the centred rows; no scipy, and exact where a set has fewer rows than features).

    Example:
        >>> rng = np.random.default_rng(0)
        >>> x = rng.normal(size=(2000, 3))
        >>> round(frechet_distance(x, x), 6), round(frechet_distance(x, x + 2.0), 2)
        (0.0, 12.0)
    """
    a, b = _feature_sets(a, b, "the Fréchet distance")
    mu1, mu2 = a.mean(0), b.mean(0)
    # S = R^T R from the centred rows (R: the QR factor), so tr(sqrt(S1 S2)) is the sum of the
    # singular values of R1 R2^T: no square roots of eigenvalues at rounding level (with fewer
    # rows than features, sqrt(1e-14) per null direction put FD(x, x + s) 3e-5 below |s|^2)
    r1 = np.linalg.qr(a - mu1, mode="r") / np.sqrt(len(a) - 1)
    r2 = np.linalg.qr(b - mu2, mode="r") / np.sqrt(len(b) - 1)
    tr_covmean = np.linalg.svd(r1 @ r2.T, compute_uv=False).sum()
    value = ((mu1 - mu2) ** 2).sum() + (r1**2).sum() + (r2**2).sum() - 2 * tr_covmean
    return float(max(value, 0.0))


def kernel_inception_distance(
    a: np.ndarray,
    b: np.ndarray,
    n_subsets: int = 20,
    subset_size: int = 1000,
    seed: int = 0,
) -> tuple[float, float]:
    """KID (Bińkowski et al., 2018): unbiased MMD² with kernel ``(x·y / d + 1)³``, mean and std
    over ``n_subsets`` random subsets of ``min(subset_size, half the smaller set)`` rows (half,
    so that the subsets differ and the std means something).

    Example:
        >>> rng = np.random.default_rng(0)
        >>> x, y = rng.normal(size=(500, 4)), rng.normal(size=(500, 4))
        >>> same, shifted = kernel_inception_distance(x, y), kernel_inception_distance(x, y + 1)
        >>> abs(same[0]) < 0.01, shifted[0] > 0.1
        (True, True)
    """
    a, b = _feature_sets(a, b, "KID", minimum=4)  # two subsets of >= 2 rows each
    whole_number(n_subsets, "KID n_subsets", low=1, error=ValueError)
    whole_number(subset_size, "KID subset_size", low=2, error=ValueError)
    whole_number(seed, "KID seed", high=2**63 - 1, error=ValueError)  # None drew other subsets
    d = a.shape[1]
    m = min(subset_size, max(2, min(len(a), len(b)) // 2))
    rng = np.random.default_rng(seed)
    values = []
    for _ in range(n_subsets):
        x = a[rng.choice(len(a), m, replace=False)]
        y = b[rng.choice(len(b), m, replace=False)]
        kxx, kyy, kxy = (x @ x.T / d + 1) ** 3, (y @ y.T / d + 1) ** 3, (x @ y.T / d + 1) ** 3
        mmd = ((kxx.sum() - np.trace(kxx)) + (kyy.sum() - np.trace(kyy))) / (m * (m - 1)) \
            - 2 * kxy.mean()
        values.append(mmd)
    return float(np.mean(values)), float(np.std(values))


def _pairwise(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    norms_a, norms_b = (a**2).sum(1)[:, None], (b**2).sum(1)[None, :]
    sq = norms_a + norms_b - 2 * a @ b.T
    # the expansion cancels to ~1e-14 x the norms: a point's distance to itself or to a
    # duplicate came out as noise (up to 3e-4 here), above a k-NN radius of 0 from exact
    # duplicates, so copies of real points fell outside the real manifold. Entries that close
    # to 0 are computed again from the differences (exact 0 for equal rows).
    near_i, near_j = np.nonzero(sq <= 1e-6 * (norms_a + norms_b))
    for s in range(0, len(near_i), 1 << 16):
        i, j = near_i[s : s + (1 << 16)], near_j[s : s + (1 << 16)]
        sq[i, j] = ((a[i] - b[j]) ** 2).sum(1)
    return np.sqrt(np.clip(sq, 0, None))


def _knn_radii(x: np.ndarray, k: int, chunk: int) -> np.ndarray:
    radii = np.empty(len(x))
    for i in range(0, len(x), chunk):
        d = _pairwise(x[i : i + chunk], x)
        radii[i : i + chunk] = np.partition(d, k, axis=1)[:, k]  # column 0 is the point itself
    return radii


def _coverage(points: np.ndarray, centers: np.ndarray, radii: np.ndarray, chunk: int) -> float:
    inside = np.zeros(len(points), dtype=bool)
    for i in range(0, len(points), chunk):
        inside[i : i + chunk] = (_pairwise(points[i : i + chunk], centers) <= radii).any(1)
    return float(inside.mean())


def precision_recall(
    real: np.ndarray, fake: np.ndarray, k: int = 3, chunk: int = 1024
) -> tuple[float, float]:
    """k-NN precision and recall (Kynkäänniemi et al., 2019).

    Precision: the fraction of fake points inside the real manifold (the union of balls around
    real points reaching their k-th nearest real neighbour); recall: the fraction of real points
    inside the fake manifold.

    Example:
        >>> rng = np.random.default_rng(0)
        >>> x = rng.normal(size=(300, 2))
        >>> precision_recall(x, x)
        (1.0, 1.0)
        >>> precision_recall(x, x + 100.0)
        (0.0, 0.0)
    """
    real, fake = _feature_sets(real, fake, "precision/recall")
    whole_number(k, "precision/recall k", low=1, error=ValueError)
    whole_number(chunk, "precision/recall chunk", low=1, error=ValueError)  # -1 gave (0.0, 0.0)
    if min(len(real), len(fake)) <= k:
        raise ValueError(f"precision/recall with k={k} needs more than {k} samples per set")
    r_real, r_fake = _knn_radii(real, k, chunk), _knn_radii(fake, k, chunk)
    return _coverage(fake, real, r_real, chunk), _coverage(real, fake, r_fake, chunk)


# ---------------------------------------------------------------- evaluation
def _resolve_tasks(tasks: str, env_ids: list[str] | None) -> list[str]:
    if not isinstance(tasks, str):
        raise ValueError(f"tasks must be auto, game, corruption or game+corruption, got {tasks!r}")
    if tasks == "auto":
        return ["game", "corruption"] if env_ids else ["corruption"]
    chosen = sorted(set(tasks.split("+")), reverse=True)
    if not chosen or set(chosen) - {"game", "corruption"}:
        raise ValueError(f"unknown tasks {tasks!r}; use auto, game, corruption or "
                         "game+corruption")
    if "game" in chosen and not env_ids:
        raise ValueError("the game task needs a source that labels frames with >= 2 envs "
                         "(env_ids and sample_frames_with_env); use tasks='corruption'")
    return chosen


def _load_or_train(
    run_dir: Path, source: FrameSource, env_ids: list[str] | None, tasks: list[str],
    steps: int, n_train: int, seed: int, say: Callable[[str], None] = lambda stage: None,
) -> tuple[FeatureNet, dict[str, Any]]:
    game_ids = env_ids if "game" in tasks else None
    rng = np.random.default_rng([seed, 1])
    if game_ids:
        frames, env_index = source.sample_frames_with_env(n_train, rng)
    else:
        frames, env_index = source.sample_frames(n_train, rng), None
    # the network is a function of the frames it learns from: without their digest in the key,
    # the network cached for one data file was reused, silently, for another of the same shape
    digest = hashlib.sha256(np.ascontiguousarray(frames, np.uint8).tobytes())
    if env_index is not None:
        digest.update(np.ascontiguousarray(env_index, np.int64).tobytes())
    key = {"version": _CLASSIFIER_VERSION, "frame_shape": list(source.frame_shape),
           "env_ids": game_ids or [], "tasks": tasks, "steps": steps, "n_train": n_train,
           "seed": seed, "threads": TRAINING_THREADS, "train_frames_sha256": digest.hexdigest()}
    data_ids = list(getattr(source, "env_ids", None) or [])
    if data_ids and not game_ids:  # one game: the network is still that game's
        key["data_env_ids"] = data_ids
    path = run_dir / CLASSIFIER_NAME
    if path.is_file():
        try:
            cached = torch.load(path, map_location="cpu")
        except Exception:  # a cache cut short or damaged: train it again
            cached = {}
        if isinstance(cached, dict) and cached.get("key") == key:
            say("loading the feature network")
            net = FeatureNet(int(source.frame_shape[0]), len(game_ids or []),
                             "corruption" in tasks)
            net.load_state_dict(cached["state_dict"])
            return net.eval(), {**cached["info"], "cached": True}
    say("training the feature network")  # (also where a cache no longer fits: it said loading)
    caller_threads = torch.get_num_threads()
    torch.set_num_threads(TRAINING_THREADS)
    try:
        net = train_feature_net(frames, env_index, len(game_ids or []), steps=steps, seed=seed,
                                corruption="corruption" in tasks)
    finally:
        torch.set_num_threads(caller_threads)
    info = {"tasks": tasks, "train_frames": n_train, "steps": steps, "seed": seed,
            "threads": TRAINING_THREADS}
    tmp = path.with_name(path.name + ".tmp")
    torch.save({"key": key, "state_dict": net.state_dict(), "info": info}, tmp)
    os.replace(tmp, path)
    return net, {**info, "cached": False}


def _row(real: dict[str, np.ndarray], other: dict[str, np.ndarray], env_ids: list[str] | None,
         seed: int) -> dict[str, Any]:
    kid, kid_std = kernel_inception_distance(real["features"], other["features"], seed=seed)
    precision, recall = precision_recall(real["features"], other["features"])
    row: dict[str, Any] = {
        "fd": frechet_distance(real["features"], other["features"]),
        "kid": kid, "kid_std": kid_std, "precision": precision, "recall": recall,
    }
    if "clean" in other:
        row["judged_clean"] = float(other["clean"].mean())
    if env_ids and "game_probs" in other:
        mix = np.bincount(other["game_probs"].argmax(1), minlength=len(env_ids)) / len(
            other["game_probs"])
        real_mix = np.bincount(real["game_probs"].argmax(1), minlength=len(env_ids)) / len(
            real["game_probs"])
        row["game_mix"] = {e: float(p) for e, p in zip(env_ids, mix, strict=True)}
        row["game_mix_max_diff_points"] = float(100 * np.abs(mix - real_mix).max())
        row["game_confidence"] = float(other["game_probs"].max(1).mean())
    return row


@dataclass
class EvaluationSets:
    """What one evaluation draws and embeds (:func:`evaluation_sets`); :func:`evaluate` scores it.

    ``sets`` maps ``"a"``, ``"b"`` (the real sets), ``"fake"`` and ``"noise"`` to their
    embeddings (``{"features": (n, D), ...}``); ``real_env`` labels A then B (None when the
    source cannot), ``fake_env`` the generated frames (None unless the run is conditional on the
    source's envs); ``stratified`` says whether A and B hold exactly the data's game shares."""

    n: int
    seed: int
    env_ids: list[str] | None
    stratified: bool
    real_sets_disjoint: bool | None
    real_env: np.ndarray | None
    fake_env: np.ndarray | None
    sets: dict[str, dict[str, np.ndarray]]
    features: dict[str, Any]
    iteration: int
    ema: bool


MAX_DRAWS = 100
"""Most draws ``gan-envs evaluate --draws`` makes (one takes ~12 s at ``n = 1,000``, so 100 are
~20 minutes; ``--draws 1000`` would have run for hours)."""

MAX_EVAL_FRAMES = 16384
"""Largest ``n`` :func:`evaluate` draws per set (four sets of 64x64 frames and their float
copies take several GiB beyond it; ``n=100000`` ran out of memory in torch)."""


def evaluation_sets(
    run_dir: str | os.PathLike[str],
    source: FrameSource,
    n: int = 1000,
    seed: int = 0,
    *,
    ema: bool = True,
    classifier_steps: int = 600,
    classifier_frames: int = 4000,
    classifier_seed: int = 0,
    tasks: str = "auto",
    progress: Callable[[str], None] | None = None,
) -> EvaluationSets:
    """Draw and embed the sets :func:`evaluate` scores (same arguments): real sets A and B,
    ``n`` generated frames and ``n`` noise frames, in the cached feature network's space (the
    normalised vectors themselves for vector frames)."""
    say = progress or (lambda _: None)
    run_dir = Path(run_dir)
    gen = load_generator(run_dir, ema)
    frame_shape = tuple(int(s) for s in source.frame_shape)
    if frame_shape != gen.frame_shape:
        raise ValueError(f"{run_dir} makes frames {gen.frame_shape} but the data has "
                         f"{frame_shape}: evaluate against the run's own kind of data")
    whole_number(n, "evaluate's n (frames per set)", low=10, high=MAX_EVAL_FRAMES,
                 error=ValueError)
    for value, what in ((seed, "evaluate's seed"), (classifier_seed, "classifier_seed")):
        whole_number(value, what, high=2**63 - 1, error=ValueError)  # numpy's seeds are >= 0
    images = is_image_shape(frame_shape)
    env_ids = env_labels(source) if images else None
    data_ids = list(getattr(source, "env_ids", None) or []) if images else []
    if data_ids and gen.env_ids and sorted(data_ids) != sorted(gen.env_ids):
        raise ValueError(f"{run_dir} was trained on {', '.join(gen.env_ids)}, but the data holds "
                         f"{', '.join(data_ids)}: evaluate against data that holds the run's "
                         "games (`gan-envs evaluate` scores a file with more games on the run's; "
                         "from Python: DatasetFrameSource(path, env_ids=[the run's]))")
    rng = np.random.default_rng([seed, 2])

    say("drawing real frames")
    fake_env = gen.labels(n, seed) if gen.conditional and env_ids == gen.env_ids else None
    counts = _set_counts(source, env_ids, n)
    if counts is not None:
        real, real_env = _stratified_sets(source, env_ids, counts, rng)
    elif env_ids:
        real, real_env = source.sample_frames_with_env(2 * n, rng)
    else:
        real, real_env = _distinct_frames(source, 2 * n, rng), None
    say("generating frames")
    fake = gen.generate(make_latents(n, gen.latent_dim, seed), labels=fake_env)
    if images:
        noise = rng.integers(0, 256, (n, *frame_shape), dtype=np.uint8)
    else:
        u = torch.from_numpy(rng.uniform(-1, 1, (n, *frame_shape)).astype(np.float32))
        noise = (u * gen.half_range + gen.center).numpy()

    # sets A and B are disjoint when the source draws without replacement and holds >= 2n frames
    size = len(source) if hasattr(source, "__len__") else None  # type: ignore[arg-type]
    disjoint = (True if counts is not None  # one draw without replacement
                else None if size is None else bool(size >= 2 * n))
    named = [("a", real[:n]), ("b", real[n:]), ("fake", fake), ("noise", noise)]
    if images:
        net, info = _load_or_train(run_dir, source, env_ids, _resolve_tasks(tasks, env_ids),
                                   classifier_steps, classifier_frames, classifier_seed, say)
        say("embedding")
        sets = {name: _embed(net, frames) for name, frames in named}
        held_out = _held_out_accuracy(net, real[n:], None if real_env is None else real_env[n:],
                                      seed)
        features = {"kind": "feature network", "dim": 128, **info, **held_out}
    else:
        def normalised(frames: np.ndarray) -> dict[str, np.ndarray]:
            x = (torch.from_numpy(np.asarray(frames)).float() - gen.center) / gen.half_range
            return {"features": x.reshape(len(x), -1).double().numpy()}

        sets = {name: normalised(frames) for name, frames in named}
        features = {"kind": "normalised vectors", "dim": int(np.prod(frame_shape))}
    return EvaluationSets(
        n=n, seed=seed, env_ids=env_ids, stratified=counts is not None,
        real_sets_disjoint=disjoint, real_env=None if real_env is None else np.asarray(real_env),
        fake_env=None if fake_env is None else fake_env.numpy(), sets=sets, features=features,
        iteration=gen.iteration, ema=gen.ema)


def evaluate(
    run_dir: str | os.PathLike[str],
    source: FrameSource,
    n: int = 1000,
    seed: int = 0,
    *,
    ema: bool = True,
    classifier_steps: int = 600,
    classifier_frames: int = 4000,
    classifier_seed: int = 0,
    tasks: str = "auto",
    progress: Callable[[str], None] | None = None,
) -> dict[str, Any]:
    """Score the generator of ``run_dir`` against real frames of ``source`` (JSON-serialisable).

    Args:
        run_dir: a run written by :func:`gan_envs.trainers.gan.train_gan`.
        source: real frames of the same shape (the training data, or held-out data of it).
        n: frames per set (generated, real A, real B, noise): 1,000 or more for stable numbers.
        seed: latents, real sets and noise.
        ema: score the EMA generator when the run kept one.
        classifier_steps, classifier_frames, classifier_seed: training of the feature network,
            cached in ``run_dir/eval_classifier.pt`` and reused while these stay the same.
            It is always trained at :data:`TRAINING_THREADS` torch threads, so the ruler does
            not change with the caller's thread count (the report's ``features`` holds it).
        progress: called with a short description of each stage (for the CLI).

    Returns:
        ``{"generated": row, "real_vs_real": row, "noise": row, "fd_over_floor": ..., ...}``,
        each row with fd, kid, kid_std, precision, recall (and, with a feature network,
        judged_clean; with game labels, game_mix, game_mix_max_diff_points, game_confidence),
        always measured against real set A.
    """
    whole_number(classifier_steps, "classifier_steps", low=1, error=ValueError)
    whole_number(classifier_frames, "classifier_frames", low=2, error=ValueError)
    drawn = evaluation_sets(run_dir, source, n, seed, ema=ema,
                            classifier_steps=classifier_steps,
                            classifier_frames=classifier_frames,
                            classifier_seed=classifier_seed, tasks=tasks, progress=progress)
    sets, env_ids, real_env, fake_env = drawn.sets, drawn.env_ids, drawn.real_env, drawn.fake_env
    report: dict[str, Any] = {"run_dir": str(run_dir), "iteration": drawn.iteration,
                              "ema": drawn.ema, "n": n, "seed": seed, "env_ids": env_ids or [],
                              "real_sets_disjoint": drawn.real_sets_disjoint,
                              "features": drawn.features}
    images = drawn.features["kind"] == "feature network"
    if images and env_ids and real_env is not None:
        report["real_mix"] = {e: float(p) for e, p in zip(
            env_ids, np.bincount(real_env[:n], minlength=len(env_ids)) / n, strict=True)}

    (progress or (lambda _: None))("scoring")
    report["real_sets"] = "stratified" if drawn.stratified else "random"
    report["generated"] = _row(sets["a"], sets["fake"], env_ids, seed)
    report["real_vs_real"] = _row(sets["a"], sets["b"], env_ids, seed)
    report["noise"] = _row(sets["a"], sets["noise"], env_ids, seed)
    if drawn.stratified and fake_env is not None and real_env is not None:
        for key, other, other_env in [("generated", sets["fake"], fake_env),
                                      ("real_vs_real", sets["b"], real_env[n:])]:
            report[key]["fd_per_game"] = _fd_per_game(
                sets["a"]["features"], real_env[:n], other["features"], other_env, env_ids)
    if images:  # a few frames far from the rest move a Frechet distance a lot (docs/gan.md);
        # not for vectors, whose few dimensions put many ordinary rows beyond 2x the median
        report["far_frames"] = {"factor": FAR_FACTOR, **{
            key: int(far_frames(sets[name]["features"], sets["a"]["features"]).sum())
            for key, name in [("real_a", "a"), ("real_b", "b"), ("generated", "fake")]}}
    floor = report["real_vs_real"]["fd"]
    report["fd_over_floor"] = report["generated"]["fd"] / floor if floor > 0 else None
    return report


def evaluate_draws(
    run_dir: str | os.PathLike[str],
    source: FrameSource,
    seeds: Sequence[int],
    n: int = 1000,
    *,
    progress: Callable[[str], None] | None = None,
    **options: Any,
) -> dict[str, Any]:
    """:func:`evaluate` once per seed (its own real sets, latents and noise; the same cached
    feature network) and the median over those draws.

    One draw of ``n = 1,000`` is a noisy ruler where a few real frames lie far from the rest
    (docs/gan.md, *Evaluate offline*): the median of several is steadier.

    Returns:
        ``{"seeds", "n", "fd", "floor", "fd_over_floor", "uneven_far_frames", "draws",
        "reports"}``: ``fd`` and ``floor`` hold the ``median``, ``min`` and ``max`` of the
        draws' generated and real-vs-real distances, ``fd_over_floor`` is the median fd over
        the median floor, ``uneven_far_frames`` counts the draws whose real sets A and B hold
        different numbers of far frames, ``draws`` one short row per seed and ``reports``
        each draw's full report.

    Example:
        >>> evaluate_draws("runs/none", None, seeds=[])
        Traceback (most recent call last):
        ...
        ValueError: evaluate_draws needs at least one seed, e.g. seeds=range(5)
    """
    if isinstance(seeds, (str, bytes)) or not hasattr(seeds, "__iter__"):
        raise ValueError(f"evaluate_draws needs a sequence of seeds, e.g. seeds=range(5), got "
                         f"{seeds!r}")
    seeds = [whole_number(s, "an evaluate_draws seed", high=2**63 - 1, error=ValueError)
             for s in seeds]  # int(1.5) was seed 1, "12" seeds 1 and 2
    if not seeds:
        raise ValueError("evaluate_draws needs at least one seed, e.g. seeds=range(5)")
    say = progress or (lambda _: None)
    reports = []
    for i, seed in enumerate(seeds):
        reports.append(evaluate(run_dir, source, n=n, seed=seed, progress=lambda stage, i=i,
                                seed=seed: say(f"draw {i + 1}/{len(seeds)} (seed {seed}): "
                                               f"{stage}"), **options))
    fds = [r["generated"]["fd"] for r in reports]
    floors = [r["real_vs_real"]["fd"] for r in reports]

    def spread(values: list[float]) -> dict[str, float]:
        return {"median": float(statistics.median(values)), "min": float(min(values)),
                "max": float(max(values))}

    floor = statistics.median(floors)
    draws = [{"seed": seed, "fd": r["generated"]["fd"], "floor": r["real_vs_real"]["fd"],
              "fd_over_floor": r["fd_over_floor"], "far_frames": r.get("far_frames")}
             for seed, r in zip(seeds, reports, strict=True)]
    return {"seeds": seeds, "n": n, "fd": spread(fds), "floor": spread(floors),
            "fd_over_floor": statistics.median(fds) / floor if floor > 0 else None,
            "uneven_far_frames": sum(d["far_frames"]["real_a"] != d["far_frames"]["real_b"]
                                     for d in draws if d["far_frames"]),
            "draws": draws, "reports": reports}


def draws_table(summary: dict[str, Any]) -> str:
    """The result of :func:`evaluate_draws` as plain text: a row per draw, then the medians.

    Example:
        >>> far = {"factor": 2.0, "real_a": 0, "real_b": 1, "generated": 0}
        >>> row = {"seed": 3, "fd": 1.5, "floor": 0.5, "fd_over_floor": 3.0, "far_frames": far}
        >>> print(draws_table({"draws": [row], "fd": {"median": 1.5, "min": 1.5, "max": 1.5},
        ...                    "floor": {"median": 0.5, "min": 0.5, "max": 0.5},
        ...                    "fd_over_floor": 3.0, "uneven_far_frames": 1}))
        ... # doctest: +NORMALIZE_WHITESPACE
        seed          fd       floor  fd/floor  far frames A/B/generated
        3         1.5000      0.5000      3.00  0/1/0
        median fd 1.5000 (1.5000-1.5000), median floor 0.5000 (0.5000-0.5000)
        fd / floor 3.00 over 1 draws (1 with A and B holding different numbers of far frames)
    """
    lines = [f"{'seed':<6}{'fd':>12}{'floor':>12}{'fd/floor':>10}  far frames A/B/generated"]
    for d in summary["draws"]:
        ratio = "-" if d["fd_over_floor"] is None else f"{d['fd_over_floor']:.2f}"
        far = d["far_frames"]
        counts = f"{far['real_a']}/{far['real_b']}/{far['generated']}" if far else "-"
        lines.append(f"{d['seed']:<6}{d['fd']:>12.4f}{d['floor']:>12.4f}{ratio:>10}  {counts}")
    fd, floor = summary["fd"], summary["floor"]
    ratio = "-" if summary["fd_over_floor"] is None else f"{summary['fd_over_floor']:.2f}"
    lines.append(f"median fd {fd['median']:.4f} ({fd['min']:.4f}-{fd['max']:.4f}), median floor "
                 f"{floor['median']:.4f} ({floor['min']:.4f}-{floor['max']:.4f})")
    lines.append(f"fd / floor {ratio} over {len(summary['draws'])} draws "
                 f"({summary['uneven_far_frames']} with A and B holding different numbers of "
                 "far frames)")
    return "\n".join(lines)


def _set_counts(source: FrameSource, env_ids: list[str] | None, n: int) -> np.ndarray | None:
    """Frames per env in each real set: the source's env proportions as exact counts (the
    largest-remainder rounding of the generated labels, which follow the training data's), or
    None where the source cannot say."""
    if not env_ids or not hasattr(source, "env_counts"):
        return None
    share = np.asarray(source.env_counts(), dtype=np.float64)
    if share.shape != (len(env_ids),) or share.sum() <= 0:
        return None
    return proportional_counts(share, n)


def _distinct_frames(source: Any, count: int, rng: np.random.Generator) -> np.ndarray:
    """``count`` frames drawn without replacement where the source holds that many: a labelled
    source that is not stratified (a DatasetFrameSource of one game, or of vectors) draws
    distinct frames with ``sample_frames_with_env``, whereas its ``sample_frames`` draws each
    frame independently (A and B shared frames while the report said disjoint)."""
    if getattr(source, "env_ids", None) and hasattr(source, "sample_frames_with_env") \
            and hasattr(source, "__len__") and len(source) >= count:
        return source.sample_frames_with_env(count, rng)[0]
    return source.sample_frames(count, rng)


def _stratified_sets(source: Any, env_ids: list[str], counts: np.ndarray,
                     rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Two disjoint real sets (A then B, ``counts.sum()`` frames each), each holding exactly
    ``counts[e]`` frames of env ``e``: a random draw has its own game mix, which moved the
    real-vs-real floor 1.9-9.2 between seeds (docs/gan.md).

    Frames come from one draw without replacement: ``3n`` frames, or, where an env is short in
    it, a larger draw up to the whole source (never two draws, which could repeat a frame).
    """
    n, size = int(counts.sum()), len(source)
    available = np.asarray(source.env_counts())
    short = np.flatnonzero(available < 2 * counts)
    if len(short):
        e = int(short[0])
        largest = int(min(available[k] * n // max(2 * counts[k], 1) for k in range(len(counts))
                          if counts[k]))
        raise ValueError(f"evaluate with n={n} needs {2 * counts[e]} frames of {env_ids[e]} "
                         f"(two sets in the data's proportions) but the source holds "
                         f"{available[e]}: use a smaller n (at most about {largest})")
    for k in (3 * n, 12 * n, size):
        pool, pool_env = source.sample_frames_with_env(min(k, size), rng)
        if np.all(np.bincount(pool_env, minlength=len(counts)) >= 2 * counts):
            break
    halves: list[list[np.ndarray]] = [[], []]
    for env, count in enumerate(counts):
        where = np.flatnonzero(pool_env == env)
        halves[0].append(where[:count])
        halves[1].append(where[count : 2 * count])
    picks = [np.concatenate(h)[rng.permutation(n)] for h in halves]
    index = np.concatenate(picks)
    return pool[index], pool_env[index]


_MIN_FRAMES_PER_GAME = 50  # fewer frames per game give a per-game distance that is mostly noise


def _fd_per_game(real: np.ndarray, real_env: np.ndarray, other: np.ndarray,
                 other_env: np.ndarray, env_ids: list[str]) -> dict[str, float]:
    """Fréchet distance within each game (frames of env e against real frames of env e), for
    the games with at least ``_MIN_FRAMES_PER_GAME`` frames in both sets."""
    return {e: frechet_distance(real[real_env == i], other[other_env == i])
            for i, e in enumerate(env_ids)
            if min((real_env == i).sum(), (other_env == i).sum()) >= _MIN_FRAMES_PER_GAME}


@torch.no_grad()
def _held_out_accuracy(
    net: FeatureNet, frames: np.ndarray, env_index: np.ndarray | None, seed: int
) -> dict[str, float]:
    """Accuracy of the feature network's heads on real frames (set B: drawn apart from the
    network's training frames, so some of them may be among those)."""
    x = _to_input(frames)
    gen = torch.Generator().manual_seed(seed)
    labels = torch.randint(0, len(CORRUPTIONS), (len(x),), generator=gen)
    out = {}
    if net.corruption_head is not None:
        _, corruption_logits, _ = net(corrupt(x, labels, gen))
        out["corruption_accuracy"] = float((corruption_logits.argmax(1) == labels).float().mean())
    if env_index is not None and net.game_head is not None:
        _, _, game_logits = net(x)
        out["game_accuracy"] = float(
            (game_logits.argmax(1).numpy() == np.asarray(env_index)).mean())
    return out


def report_table(report: dict[str, Any]) -> str:
    """The report of :func:`evaluate` as a plain-text table (the CLI prints it).

    Example:
        >>> row = {"fd": 1.0, "kid": 0.0, "kid_std": 0.0, "precision": 1.0, "recall": 1.0}
        >>> print(report_table({"generated": row, "real_vs_real": row, "noise": row}))
        ... # doctest: +NORMALIZE_WHITESPACE
        metric       generated  real floor  noise ceiling
        fd              1.0000      1.0000         1.0000
        kid             0.0000      0.0000         0.0000
        precision       1.0000      1.0000         1.0000
        recall          1.0000      1.0000         1.0000
    """
    columns = [("generated", "generated"), ("real_vs_real", "real floor"),
               ("noise", "noise ceiling")]
    metrics = ["fd", "kid", "precision", "recall", "judged_clean", "game_mix_max_diff_points",
               "game_confidence"]
    lines = [f"{'metric':<12}" + "".join(f"{title:>{max(12, len(title) + 2)}}"
                                        for _, title in columns)]
    for metric in metrics:
        if metric not in report["generated"]:
            continue
        cells = []
        for key, title in columns:
            value = report[key].get(metric)
            width = max(12, len(title) + 2)
            cells.append(f"{'-':>{width}}" if value is None else f"{value:>{width}.4f}")
        label = "game_mix_diff" if metric == "game_mix_max_diff_points" else metric
        lines.append(f"{label:<12}" + "".join(cells))
    if report.get("fd_over_floor") is not None:
        lines.append(f"fd / floor: {report['fd_over_floor']:.2f}")
    if report.get("real_sets_disjoint") is False:
        lines.append(f"real sets A and B share frames (the data holds fewer than 2 x "
                     f"{report.get('n')} distinct frames), so the floor is too low: evaluate "
                     "with a smaller n or more data")
    far = report.get("far_frames")
    if far:
        uneven = ("; A and B differ, so this floor is unsteady: compare several draws (--draws 5)"
                  if far["real_a"] != far["real_b"] else "")
        lines.append(f"far frames (beyond {far['factor']:g}x A's median distance from its mean): "
                     f"real A {far['real_a']}, real B {far['real_b']}, generated "
                     f"{far['generated']}{uneven}")
    for key, title in columns:
        mix = report[key].get("game_mix")
        if mix:
            lines.append(f"game mix, {title}: "
                         + ", ".join(f"{e} {100 * p:.1f}%" for e, p in mix.items()))
    for key, title in columns:
        per_game = report[key].get("fd_per_game")
        if per_game:
            lines.append(f"fd per game, {title}: "
                         + ", ".join(f"{e} {v:.2f}" for e, v in per_game.items()))
    if report.get("real_mix"):
        lines.append("game mix, real data: "
                     + ", ".join(f"{e} {100 * p:.1f}%" for e, p in report["real_mix"].items()))
    return "\n".join(lines)
