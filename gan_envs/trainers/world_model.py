"""Train a World Model (Ha & Schmidhuber, 2018) on recorded episodes: V, then M, then C.

:func:`train_world_model` reads episodes only through an
:class:`~gan_envs.trainers.sequences.EpisodeSource` and writes into ``run_dir``:

- ``vae.pt``: V (the conv VAE), its optimiser, RNG state and position (epoch, batch);
- ``latents.npz``: every frame encoded by V (``mu``, ``logvar``) with the actions, rewards and
  terminations, and the SHA-256 of the ``vae.pt`` it came from (re-encoded only when V changed);
- ``mdrnn.pt``: M (the MDN-RNN), its optimiser, RNG state and position, and the SHA-256 of the
  ``vae.pt`` whose latents it learned: the controller stage, :func:`dream` and the evaluation
  refuse (or leave out) an M that no longer fits ``vae.pt``;
- ``controller.pt``: C's best parameters and the pickled CMA-ES state (resumable per generation),
  and the SHA-256 of the ``vae.pt`` and ``mdrnn.pt`` it was trained with: a resumption of the
  controller stage, :func:`dream` and the evaluation refuse (or leave out) a C whose V or M changed;
- in each checkpoint, the identity of the dataset (path, episodes, frames, env ids and a rollout
  file's ``created`` stamp and seed): a later stage or a resumption on another file is refused;
- ``config.json`` (the resolved configuration of the last call), ``log.jsonl`` (one JSON object
  per ``log_every`` steps or per generation, with its ``stage``), ``metrics.json``
  (:func:`evaluate_world_model`).

The stages, top to bottom:

1. **V** learns ``z`` (32-d) from single frames: reconstruction (squared error summed over the
   pixel values in [0, 1], weighted ``moving_weight`` times on the pixels that differ from the
   dataset's static background, so small moving objects count) + KL clamped below at
   ``kl_tolerance * z_size``. The background (per-pixel median of training frames) is stored in
   ``vae.pt``.
2. The dataset is encoded once; **M** learns ``p(z_{t+1} | z_<=t, a_<=t)`` (5 Gaussians per
   dimension), the reward and the done flag on windows of ``seq_len`` steps that never cross an
   episode boundary, with ``z`` re-drawn from the cached ``(mu, logvar)`` at every batch.
3. **C** (``argmax(W [z, h] + b)``) is searched by CMA-ES: each candidate plays ``rollouts``
   episodes of the real env (new seeds every generation, the same for every candidate of it) in
   ``workers`` processes, or plays inside M's dream at temperature ``temperature``
   (``controller_env='dream'``). Each generation's best candidate and the CMA-ES mean are
   re-played on ``select_rollouts`` selection seeds (disjoint from the training seeds and from
   the evaluation's); the controller kept is the best there.

The same seed gives the same run, also across ``resume=True``. Library code never prints; pass
``progress`` for progress bars.
"""

from __future__ import annotations

import dataclasses
import hashlib
import importlib.util
import io
import json
import math
import multiprocessing
import os
import pickle
import time
import warnings
import zipfile
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
import torch
import torch.nn.functional as F

from gan_envs._numbers import flag, is_real, whole_number
from gan_envs._text import counted
from gan_envs.images import check_video_path, make_grid, write_video
from gan_envs.outputs import truncate_lines, write_bytes_atomically

from .checkpoint_files import unreadable_checkpoint
from .gan import CHECKPOINT_NAME, _atomic_save, _SigintToFlag
from .sequences import observation_shape_of, split_episodes, window_index
from .wm_models import (
    MDNRNN,
    ConvVAE,
    LinearController,
    frames_to_input,
    mdn_nll,
    mdn_sample,
    moving_mask,
    vae_loss,
)

__all__ = [
    "STAGES",
    "WorldModelError",
    "WorldModelConfig",
    "StageSummary",
    "WorldModelSummary",
    "train_world_model",
    "load_stage",
    "stage_config",
    "encode_latents",
    "background_frame",
    "evaluate_world_model",
    "check_evaluation",
    "metrics_table",
    "dream",
]

STAGES = ("vae", "mdrnn", "controller")
_FILES = {"vae": "vae.pt", "mdrnn": "mdrnn.pt", "controller": "controller.pt"}
_FORMAT = "gan-envs/world-model-{}"
_VERSION = 1
LATENTS_NAME = "latents.npz"
_GROUP_EPISODES = 8  # V reads this many episodes into memory at a time and shuffles their frames
_BACKGROUND_EPISODES, _BACKGROUND_FRAMES = 50, 1000  # the background's sample of training frames
_SELECT_OFFSET, _EVAL_OFFSET = 50_000, 100_000  # selection, evaluation seeds: eval_seed + these
MAX_TEMPERATURE = 100.0  # tau above this is noise (and near 1e70 overflows float32 to NaN frames)
MAX_LR = 1.0  # Adam beyond this diverges at once (and past ~1e38 overflows inside the step)
MAX_DREAM_STEPS = 10_000  # a dream video is held in memory: ~0.44 MB a frame at upscale 4
# Controller worker processes: each is a spawned Python with torch, V and M (~300 MB), so
# --workers 100000 tried to start that many. A fixed cap, the same on every machine (a command
# that works on one works on another): the full sizes play 16 candidates x 4 episodes = 64
# episodes a generation, and more processes than CPU cores only wait for one.
MAX_WORKERS = 64

_FULL = dict(max_episodes=0, vae_batch_size=100, vae_epochs=10, vae_max_steps=0, seq_len=32,
             mdrnn_batch_size=16, mdrnn_epochs=20, mdrnn_max_steps=0, population=16,
             generations=50, rollouts=4, rollout_steps=1000, eval_rollouts=8,
             select_rollouts=8)
_QUICK = dict(max_episodes=8, vae_batch_size=32, vae_epochs=1, vae_max_steps=15, seq_len=16,
              mdrnn_batch_size=8, mdrnn_epochs=2, mdrnn_max_steps=15, population=4,
              generations=2, rollouts=1, rollout_steps=25, eval_rollouts=2,
              select_rollouts=2)
# Fields that must not change when a stage is resumed or a later stage builds on it.
_FIXED = {
    "vae": ("seed", "max_episodes", "holdout_fraction", "z_size", "vae_width", "kl_tolerance",
            "vae_lr", "vae_batch_size", "moving_weight", "moving_threshold", "grad_clip"),
    "mdrnn": ("hidden_size", "n_gaussians", "seq_len", "mdrnn_batch_size", "mdrnn_lr",
              "reward_weight", "done_weight", "grad_clip"),
    "controller": ("controller_env", "env_id", "population", "rollouts", "rollout_steps",
                   "sigma0", "temperature", "eval_seed", "fresh_seeds", "select_rollouts"),
}
# What a checkpoint written before a field existed was trained with (the old behaviour).
_LEGACY = {"moving_weight": 1.0, "moving_threshold": 0.1, "fresh_seeds": False,
           "select_rollouts": 0}


class WorldModelError(ValueError):
    """Bad input for the World-Models trainer; the message names the problem and the fix."""


@dataclass
class WorldModelConfig:
    """Arguments of :func:`train_world_model`; None means "the full (or ``quick``) value".

    Example:
        >>> cfg = WorldModelConfig(quick=True).resolved()
        >>> cfg.vae_epochs, cfg.population, cfg.generations, cfg.rollout_steps
        (1, 4, 2, 25)
        >>> WorldModelConfig(vae_epochs=3).resolved().vae_epochs
        3
    """

    seed: int = 0
    """seed of weights, data order, latent draws and CMA-ES: same seed, same run"""
    quick: bool = False
    """tiny sizes for every length left as None (smoke tests and the demo)"""
    max_episodes: int | None = None
    """use only the first N episodes of the source (0: all; quick: 8)"""
    holdout_fraction: float = 0.1
    """the last episodes held out from training for the evaluation (at least one of two)"""
    # ---- V
    z_size: int = 32
    """size of the latent z"""
    vae_width: int = 32
    """channels of the first encoder convolution (32-64-128-256 for 32)"""
    kl_tolerance: float = 0.5
    """free bits: the summed KL is clamped below at kl_tolerance * z_size (0: plain KL)"""
    vae_lr: float = 1e-3
    """Adam learning rate of V (hardmaru's 1e-4 learned only the background on Breakout)"""
    vae_batch_size: int | None = None
    """frames per V batch (100; quick 32)"""
    vae_epochs: int | None = None
    """passes over the training frames (10; quick 1)"""
    vae_max_steps: int | None = None
    """stop V after this many batches (0: no cap; quick 15)"""
    moving_weight: float = 10.0
    """reconstruction weight of the "moving" pixels, those that differ from the background (the
    per-pixel median of training frames) by more than moving_threshold; 1: the plain loss"""
    moving_threshold: float = 0.1
    """a pixel moves where a channel differs from the background by more than this (values in
    [0, 1]); also the mask of the evaluation's moving-pixel MSE"""
    encode_batch_size: int = 256
    """frames per batch when encoding the dataset into the latent cache"""
    # ---- M
    hidden_size: int = 256
    """LSTM size of the MDN-RNN"""
    n_gaussians: int = 5
    """mixture components per latent dimension"""
    seq_len: int | None = None
    """steps per training window (32; quick 16)"""
    mdrnn_batch_size: int | None = None
    """windows per M batch (16; quick 8)"""
    mdrnn_lr: float = 1e-3
    """Adam learning rate of M"""
    mdrnn_epochs: int | None = None
    """passes over the training windows (20; quick 2)"""
    mdrnn_max_steps: int | None = None
    """stop M after this many batches (0: no cap; quick 15)"""
    reward_weight: float = 1.0
    """weight of the reward head's squared error in M's loss"""
    done_weight: float = 1.0
    """weight of the done head's binary cross-entropy in M's loss"""
    grad_clip: float = 1.0
    """gradient-norm clip of V and M (0: none)"""
    # ---- C
    controller_env: str = "real"
    """where candidates play: 'real' (the env) or 'dream' (M at temperature tau)"""
    env_id: str | None = None
    """the env C plays (None: the dataset's only env id)"""
    population: int | None = None
    """CMA-ES population (16; quick 4; the paper's 64)"""
    generations: int | None = None
    """CMA-ES generations (50; quick 2)"""
    rollouts: int | None = None
    """episodes per candidate (4; quick 1), on seeds eval_seed + (g - 1) * rollouts + i in
    generation g (fresh_seeds) or eval_seed + i in every generation"""
    fresh_seeds: bool = True
    """each generation plays new training seeds (the same for all its candidates); False: the
    same seeds in every generation"""
    select_rollouts: int | None = None
    """episodes on the selection seeds eval_seed + 50000 + i on which each generation's best
    candidate and the CMA-ES mean are re-played; the controller kept is the best there (8;
    quick 2; 0: keep the candidate with the best training fitness)"""
    rollout_steps: int | None = None
    """step cap of one episode (1000; quick 25)"""
    eval_rollouts: int | None = None
    """episodes of the evaluation, on seeds eval_seed + 100000 + i (8; quick 2)"""
    sigma0: float = 0.1
    """initial CMA-ES step size (parameters start at zero)"""
    temperature: float = 1.0
    """tau of M's sampling in the dream"""
    workers: int = 2
    """processes playing candidates in the real env (0: in this process)"""
    eval_seed: int = 10_000
    """first env seed of the candidates' training rollouts (selection: + 50000, evaluation:
    + 100000)"""
    # ---- bookkeeping
    checkpoint_every: int = 500
    """V/M batches between checkpoints (C: every generation; also at the end and on Ctrl-C)"""
    log_every: int = 10
    """V/M batches averaged into one line of log.jsonl"""

    def resolved(self) -> WorldModelConfig:
        """Return a copy with every None filled from the full or quick sizes, checked."""
        for name in ("quick", "fresh_seeds"):  # by truthiness, fresh_seeds="no" meant yes
            flag(getattr(self, name), name, error=WorldModelError)
        preset = _QUICK if self.quick else _FULL
        cfg = dataclasses.replace(self, **{k: v for k, v in preset.items()
                                           if getattr(self, k) is None})
        for name in ("z_size", "vae_width", "vae_batch_size", "vae_epochs", "encode_batch_size",
                     "hidden_size", "n_gaussians", "seq_len", "mdrnn_batch_size", "mdrnn_epochs",
                     "population", "rollouts", "rollout_steps", "eval_rollouts",
                     "checkpoint_every", "log_every"):
            label = ("population (CMA-ES candidates per generation; cma fails on 2 in its "
                     "second generation)" if name == "population" else name)
            setattr(cfg, name, whole_number(getattr(cfg, name), label,
                                            low=3 if name == "population" else 1,
                                            error=WorldModelError))
        for name in ("max_episodes", "vae_max_steps", "mdrnn_max_steps", "generations",
                     "workers", "select_rollouts"):
            setattr(cfg, name, whole_number(getattr(cfg, name), name, error=WorldModelError))
        cfg.workers = _checked_workers(cfg.workers)
        cfg.seed = whole_number(cfg.seed, "seed", high=2**63 - 1, error=WorldModelError)
        cfg.eval_seed = whole_number(cfg.eval_seed, "eval_seed", high=2**62,  # + offsets
                                     error=WorldModelError)
        for name in ("kl_tolerance", "vae_lr", "mdrnn_lr", "reward_weight", "done_weight",
                     "grad_clip", "sigma0", "temperature", "moving_weight", "moving_threshold",
                     "holdout_fraction"):  # NaN passes every comparison below: refuse it here
            value = getattr(cfg, name)
            if not (is_real(value) and math.isfinite(value)):
                raise WorldModelError(f"{name} must be a finite number, got {value!r}")
            setattr(cfg, name, float(value))
        for name in ("kl_tolerance", "reward_weight", "done_weight", "grad_clip"):
            if getattr(cfg, name) < 0:
                raise WorldModelError(f"{name} must be >= 0 (0: off), got {getattr(cfg, name)}")
        for name in ("vae_lr", "mdrnn_lr"):
            if not 0 < getattr(cfg, name) <= MAX_LR:
                raise WorldModelError(f"{name} must lie in (0, {MAX_LR:g}] (Adam beyond "
                                      f"{MAX_LR:g} diverges), got {getattr(cfg, name)}")
        if cfg.controller_env not in ("real", "dream"):
            raise WorldModelError(f"controller_env must be 'real' or 'dream', "
                                  f"got {cfg.controller_env!r}")
        if not 0.0 <= cfg.holdout_fraction < 1.0:
            raise WorldModelError(f"holdout_fraction must lie in [0, 1), "
                                  f"got {cfg.holdout_fraction}")
        for name in ("temperature", "sigma0"):
            if getattr(cfg, name) <= 0:
                raise WorldModelError(f"{name} must be > 0, got {getattr(cfg, name)}")
        if cfg.sigma0 > 1e6:  # candidates run in float32: 1e300 kept a controller of infs
            raise WorldModelError(f"sigma0 must be at most 1e6 (C's argmax ignores the scale of "
                                  f"its parameters; 0.1 is the default), got {cfg.sigma0}")
        if cfg.temperature > MAX_TEMPERATURE:
            raise WorldModelError(f"temperature must be at most {MAX_TEMPERATURE:g} (1: M as "
                                  f"trained), got {cfg.temperature}")
        if cfg.moving_weight <= 0:
            raise WorldModelError(f"moving_weight must be > 0 (1: the plain loss), "
                                  f"got {cfg.moving_weight}")
        if not 0.0 <= cfg.moving_threshold < 1.0:
            raise WorldModelError(f"moving_threshold must lie in [0, 1), "
                                  f"got {cfg.moving_threshold}")
        if (cfg.rollouts * (cfg.generations if cfg.fresh_seeds else 1) > _SELECT_OFFSET
                or cfg.select_rollouts > _EVAL_OFFSET - _SELECT_OFFSET):
            raise WorldModelError(f"rollouts * generations and select_rollouts must stay <= "
                                  f"{_SELECT_OFFSET} so the training, selection and evaluation "
                                  "seeds never meet; use fewer")
        return cfg


def _checked_workers(workers: int) -> int:
    """``workers`` (a whole number >= 0) if it is at most :data:`MAX_WORKERS`."""
    if workers > MAX_WORKERS:
        raise WorldModelError(f"workers must be in [0, {MAX_WORKERS}] (processes that play "
                              "controller candidates; more than one per CPU core only wait, and "
                              f"this machine has {os.cpu_count() or 1}), got {workers}")
    return workers


@dataclass
class StageSummary:
    """What one stage of :func:`train_world_model` did."""

    stage: str
    """'vae', 'mdrnn' or 'controller'"""
    start_step: int
    """step (batch or generation) the stage started from: 0, or the checkpoint's"""
    steps: int
    """step reached"""
    total: int
    """steps planned"""
    seconds: float
    """wall time of this call's loop"""
    metrics: dict[str, float] = field(default_factory=dict)
    """the last logged values (losses; for C the fitness of the last generation and the best)"""
    checkpoint: str = ""
    """the checkpoint written"""


@dataclass
class WorldModelSummary:
    """What :func:`train_world_model` did, per stage (JSON-safe through :meth:`to_dict`)."""

    run_dir: str
    """the run directory"""
    stages: dict[str, StageSummary] = field(default_factory=dict)
    """one summary per stage run"""
    latents_reused: bool | None = None
    """True when M's stage found latents.npz up to date (None: M did not run)"""

    def to_dict(self) -> dict[str, Any]:
        """A JSON-safe dict."""
        return dataclasses.asdict(self)


# ---------------------------------------------------------------- the source and the run dir
def _source_info(source: Any) -> dict[str, Any]:
    """Check that ``source`` suits the conv VAE and the discrete controller; describe it."""
    name = getattr(source, "path", None) or type(source).__name__
    shape = observation_shape_of(source)
    if len(shape) != 3:
        raise WorldModelError(f"{name}: the conv VAE needs image frames (C, 64, 64), got vector "
                              f"observations of shape {shape}; record the env with image frames")
    if shape[1:] != (64, 64):
        raise WorldModelError(f"{name}: the conv VAE needs 64x64 frames, got {shape[1]}x"
                              f"{shape[2]}; record the dataset with size=64")
    if shape[0] not in (1, 3):
        raise WorldModelError(f"{name}: frames need 1 or 3 channels, got {shape[0]}")
    space = getattr(source, "action_space", None)
    if space is None or source.num_episodes < 1 or "actions" not in source.episode(0):
        raise WorldModelError(f"{name} has no actions; M and C need a dataset recorded with "
                              "actions (gan-envs collect)")
    if not isinstance(space, gym.spaces.Discrete):
        raise WorldModelError(f"{name}: the controller needs Discrete actions, got {space}")
    env_ids = list(getattr(source, "env_ids", []) or [])
    return {"observation_shape": list(shape), "n_actions": int(space.n), "env_ids": env_ids,
            "dataset": _dataset_identity(source, env_ids)}


def _dataset_identity(source: Any, env_ids: list[str]) -> dict[str, Any]:
    """What identifies the dataset a run trains on, recorded in each checkpoint: its path, size
    and env ids, and a rollout file's ``created`` stamp and ``seed`` (kept by ``collect
    --resume``, new for every other file). No hash of the file: datasets can be GBs."""
    meta = getattr(source, "metadata", None)
    meta = meta if isinstance(meta, dict) else {}
    path = getattr(source, "path", None)
    frames = getattr(source, "num_frames", None)
    created = meta.get("created")
    return {"path": str(path) if path is not None else None,
            "created": str(created) if created is not None else None,
            "seed": meta.get("seed"), "episodes": int(source.num_episodes),
            "frames": int(frames) if frames is not None else None, "env_ids": list(env_ids)}


def _latent_source_key(source: Any, n_used: int) -> str:
    """What must match for ``latents.npz`` to be reused: a rollout file's ``created`` stamp and
    seed (the same for a file grown by ``collect --resume``; the episode lengths are compared
    as well), else (a source in memory) the SHA-256 of its used episodes' actions and rewards.
    Another dataset of the run's games with the same episode lengths (episodes cut at one
    ``max_steps``) had its latents taken from the training file's cache."""
    identity = _dataset_identity(source, [])
    if identity["created"]:
        return json.dumps({"created": identity["created"], "seed": identity["seed"]})
    digest = hashlib.sha256()
    for i in range(n_used):
        episode = source.episode(i)
        for name in ("actions", "rewards"):
            digest.update(np.ascontiguousarray(episode[name]).tobytes())
    return "sha256:" + digest.hexdigest()


def _describe_dataset(dataset: dict[str, Any]) -> str:
    return (f"{dataset.get('path') or 'an in-memory source'} (created {dataset.get('created')}, "
            f"seed {dataset.get('seed')}, {counted(dataset.get('episodes'), 'episode')})")


def _check_dataset(saved: dict[str, Any], info: dict[str, Any], path: Path) -> None:
    """Refuse a dataset other than the one the checkpoint at ``path`` was trained on. Two rollout
    files are the same dataset when their ``created`` stamp and seed agree: one grown by
    ``collect --resume`` (more episodes) is. Checkpoints from before the identity was recorded,
    and sources without a stamp (in memory), are not compared."""
    old, new = saved.get("dataset") or {}, info.get("dataset") or {}
    if not old.get("created") or not new.get("created"):
        return
    if (old["created"], old.get("seed")) != (new["created"], new.get("seed")):
        raise WorldModelError(f"{path} was trained on {_describe_dataset(old)}, not on "
                              f"{_describe_dataset(new)}: pass the run's dataset (one grown by "
                              "`gan-envs collect --resume` is the same), or train a new run "
                              "into another --out")


def _episode_lengths(source: Any, count: int) -> np.ndarray:
    """Steps per episode for the first ``count`` episodes, without reading frames if possible."""
    table = getattr(source, "episode_table", None)
    if table is not None and "length" in getattr(table, "dtype", np.dtype([])).names:
        return np.asarray(table["length"][:count], np.int64)
    return np.array([len(source.episode(i)["actions"]) for i in range(count)], np.int64)


def _used_episodes(cfg: WorldModelConfig, source: Any) -> int:
    n = int(source.num_episodes)
    return min(n, cfg.max_episodes) if cfg.max_episodes else n


def _file_hash(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


class _Hashes:
    """The SHA-256 of a run's ``vae.pt`` and ``mdrnn.pt``, each read once per call (they can be
    tens of MB): ``hashes("vae")``. :meth:`forget` a stage after it rewrote its file."""

    def __init__(self, run_dir: Path) -> None:
        self.run_dir = Path(run_dir)
        self._known: dict[str, str] = {}

    def __call__(self, stage: str) -> str:
        if stage not in self._known:
            self._known[stage] = _file_hash(self.run_dir / _FILES[stage])
        return self._known[stage]

    def forget(self, stage: str) -> None:
        self._known.pop(stage, None)


def load_stage(run_dir: str | os.PathLike[str], stage: str) -> dict[str, Any]:
    """Load ``vae.pt``, ``mdrnn.pt`` or ``controller.pt`` of a run (on the CPU).

    Example:
        >>> load_stage("no/such/run", "mdrnn")  # doctest: +ELLIPSIS
        Traceback (most recent call last):
        ...
        gan_envs.trainers.world_model.WorldModelError: run directory no/such/run does not exist ...
    """
    if stage not in _FILES:
        raise WorldModelError(f"unknown stage {stage!r}; choose one of {', '.join(STAGES)}")
    path = Path(run_dir) / _FILES[stage]
    if not path.is_file() and (Path(run_dir) / CHECKPOINT_NAME).is_file():
        raise WorldModelError(f"{run_dir} holds a GAN run ({CHECKPOINT_NAME}), not a world model: "
                              "use gan-envs sample / evaluate on it, or pass a world-model run")
    if not Path(run_dir).is_dir():
        raise WorldModelError(f"run directory {run_dir} does not exist (train one with "
                              f"`gan-envs train world-model DATA.h5 --out {run_dir}`)")
    if not path.is_file():
        raise WorldModelError(f"{run_dir} has no {_FILES[stage]}: run "
                              f"`gan-envs train world-model DATA.h5 --out {run_dir} --stage "
                              f"{stage}` first")
    try:
        ckpt = torch.load(path, map_location="cpu", weights_only=False)
    except Exception as exc:  # a truncated or foreign file
        raise WorldModelError(unreadable_checkpoint(path, exc)) from None
    if not isinstance(ckpt, dict) or ckpt.get("format") != _FORMAT.format(stage):
        raise WorldModelError(f"{path} is not a gan-envs world-model {stage} checkpoint")
    if ckpt.get("version", 0) > _VERSION:
        raise WorldModelError(f"{path}: checkpoint version {ckpt['version']} is newer than this "
                              f"gan-envs understands ({_VERSION}); upgrade gan-envs")
    return ckpt


def _log_lines(path: Path) -> list[dict[str, Any]]:
    """The JSON objects of a ``log.jsonl``; a line a kill cut short (not JSON) is dropped."""
    rows = []
    text = path.read_bytes().decode("utf-8", "replace") if path.exists() else ""
    for line in text.splitlines():  # (a non-UTF-8 file was a late error naming no file)
        try:
            rows.append(json.loads(line))
        except ValueError:
            continue
    return rows


def _saved_config(saved: dict[str, Any]) -> WorldModelConfig:
    """The config stored in a checkpoint; fields it predates take their old behaviour."""
    names = {f.name for f in dataclasses.fields(WorldModelConfig)}
    return WorldModelConfig(**{**_LEGACY, **{k: v for k, v in saved.items() if k in names}})


def _check_fixed(cfg: WorldModelConfig, saved: dict[str, Any], stage: str, path: Path) -> None:
    asked = dataclasses.asdict(cfg)
    saved = {**_LEGACY, **saved}
    clash = [f"{k}={saved.get(k)!r}" for k in _FIXED[stage] if asked[k] != saved.get(k)]
    if clash:
        quick = bool(saved.get("quick"))
        hint = (f"; it was trained {'with' if quick else 'without'} quick=True (--quick): "
                f"{'pass it again' if quick else 'leave it out'}"
                if quick != bool(asked["quick"]) else "")
        raise WorldModelError(f"{path} was trained with {', '.join(clash)}; pass the same "
                              "settings (only the lengths, workers and intervals may change)"
                              + hint)


def _vae_from(ckpt: dict[str, Any]) -> ConvVAE:
    cfg = ckpt["config"]
    vae = ConvVAE(ckpt["observation_shape"][0], cfg["z_size"], cfg["vae_width"])
    vae.load_state_dict(ckpt["model"])
    return vae.eval().requires_grad_(False)


def _mdrnn_from(ckpt: dict[str, Any]) -> MDNRNN:
    cfg = ckpt["config"]
    m = MDNRNN(cfg["z_size"], ckpt["n_actions"], cfg["hidden_size"], cfg["n_gaussians"])
    m.load_state_dict(ckpt["model"])
    return m.eval().requires_grad_(False)


class _Log:
    """``log.jsonl`` shared by the stages: a resumed stage keeps its lines up to its step."""

    def __init__(self, run_dir: Path, stage: str, start: int) -> None:
        self.path = run_dir / "log.jsonl"
        kept = [row for row in _log_lines(self.path)
                if "stage" in row and (row["stage"] != stage or row.get("step", 0) <= start)]
        self.path.write_text("".join(json.dumps(row) + "\n" for row in kept))
        self.stage = stage

    def write(self, step: int, metrics: dict[str, float], seconds: float) -> None:
        with self.path.open("a") as f:
            f.write(json.dumps({"stage": self.stage, "step": step, **metrics,
                                "seconds": round(seconds, 3)}) + "\n")

    def drop_after(self, step: int) -> None:
        """Cut this stage's lines after ``step`` (the checkpoint a resumption starts from):
        they are the file's tail (:func:`~gan_envs.outputs.truncate_lines`)."""
        def keep(line: bytes) -> bool:
            try:
                row = json.loads(line)
            except ValueError:
                return False
            return not (row.get("stage") == self.stage and row.get("step", 0) > step)

        truncate_lines(self.path, keep)


def _checked_stage(run_dir: Path, stage: str, cfg: WorldModelConfig, info: dict[str, Any],
                   *, same_dataset: bool = True) -> dict[str, Any]:
    """A stage's checkpoint, checked against this config (its fixed fields) and dataset: the
    same env ids and, with ``same_dataset``, the same file (:func:`_check_dataset`)."""
    saved = load_stage(run_dir, stage)
    path = run_dir / _FILES[stage]
    _check_fixed(cfg, saved["config"], stage, path)
    if saved["env_ids"] != info["env_ids"]:
        trained = saved.get("dataset") or {}
        name = (info.get("dataset") or {}).get("path") or "the dataset"
        raise WorldModelError(f"{path} was trained on {saved['env_ids']}"
                              f"{' (' + trained['path'] + ')' if trained.get('path') else ''}, "
                              f"{name} holds {info['env_ids']}; pass the dataset of the run")
    if same_dataset:
        _check_dataset(saved, info, path)
    return saved


def _m_fits_v(run_dir: Path, m_ckpt: dict[str, Any], hashes: _Hashes | None = None) -> bool:
    """Whether M was trained on the latents of the run's current ``vae.pt`` (by the SHA-256 its
    latent cache recorded; an M from before M recorded it is taken to fit)."""
    recorded = m_ckpt.get("vae_sha256")
    return recorded is None or (hashes or _Hashes(run_dir))("vae") == str(recorded)


_C_TRAINED_WITH = {"vae": "vae_sha256", "mdrnn": "mdrnn_sha256"}  # controller.pt's keys


def _c_misfits(run_dir: Path, c_ckpt: dict[str, Any], hashes: _Hashes | None = None
               ) -> list[str]:
    """The stages ('vae', 'mdrnn') whose file is not the one C was trained with (by the SHA-256s
    ``controller.pt`` recorded; a C from before it recorded them is taken to fit)."""
    hashes = hashes or _Hashes(run_dir)
    return [stage for stage, key in _C_TRAINED_WITH.items()
            if c_ckpt.get(key) is not None and hashes(stage) != str(c_ckpt[key])]


def _misfit_c(run_dir: Path, stages: Sequence[str]) -> str:
    """The one-line refusal of a C trained with another V and/or M than the run's files."""
    c_path = run_dir / _FILES["controller"]
    names = " and ".join(_FILES[s] for s in stages)
    return (f"{c_path} was trained with another {names} than {run_dir}'s ({names} changed after "
            f"C): retrain C on them: move {c_path.name} away and run --stage controller")


def _misfit_m(run_dir: Path, why: str = "V was trained after M", tail: str = "") -> str:
    """The one-line refusal of an M trained on the latents of another V than ``vae.pt``."""
    m_path, v_path = run_dir / _FILES["mdrnn"], run_dir / _FILES["vae"]
    return (f"{m_path} was trained on the latents of another vae.pt than {v_path} ({why}){tail}: "
            "retrain M on this V: --stage mdrnn --resume with more mdrnn_epochs "
            "(--mdrnn-epochs) or, where it caps M, a larger mdrnn_max_steps "
            f"(--mdrnn-max-steps), or move {m_path.name} away and run --stage mdrnn")


def stage_config(run_dir: str | os.PathLike[str], stage: str) -> WorldModelConfig:
    """The configuration a stage's checkpoint was trained with (fields it predates take their
    old behaviour, as the checks compare them): ``train world-model --stage mdrnn`` takes V's
    settings from it, since the options only V reads are refused there.

    Example:
        >>> stage_config("no/such/run", "vae")  # doctest: +ELLIPSIS
        Traceback (most recent call last):
        ...
        gan_envs.trainers.world_model.WorldModelError: run directory no/such/run does not exist ...
    """
    return _saved_config(load_stage(run_dir, stage)["config"])


def _begin_stage(cfg: WorldModelConfig, run_dir: Path, stage: str, info: dict[str, Any],
                 resume: bool) -> dict[str, Any] | None:
    """The stage's checkpoint to resume from (None: start it), with the checks."""
    if not (run_dir / _FILES[stage]).exists():
        return None
    if not resume:
        raise WorldModelError(f"{run_dir} already holds {_FILES[stage]}: resume it (--resume) "
                              "or choose another output directory")
    return _checked_stage(run_dir, stage, cfg, info)


# ---------------------------------------------------------------- a shared V/M loop
def _fit(
    stage: str, cfg: WorldModelConfig, run_dir: Path, model: torch.nn.Module,
    optimizer: torch.optim.Optimizer, batches: Iterator[tuple[int, int, Any]],
    loss_fn: Callable[[Any], tuple[torch.Tensor, dict[str, float]]],
    save: Callable[[int, tuple[int, int], dict[str, list[float]]], None], start: int,
    total: int, progress: Callable[[str, int, dict[str, float]], None] | None,
    window: dict[str, list[float]] | None = None,
) -> tuple[int, dict[str, float], float]:
    """One optimiser step per batch up to ``total``; logs, checkpoints, Ctrl-C. Returns
    ``(step reached, last logged means, seconds)``.

    ``window`` holds the metrics of the batches since the last log line; it is saved with each
    checkpoint and handed back on resume, so a resumed run logs the same means as an
    uninterrupted one. A loss that is not finite (V or M diverged) stops the stage with a
    WorldModelError before the step, after checkpointing the last finite one."""
    log = _Log(run_dir, stage, start)
    saved_at, done, in_step, position = start, start, False, (0, 0)
    window = {k: [float(v) for v in values] for k, values in (window or {}).items()}

    def checkpoint(step: int, pos: tuple[int, int]) -> None:
        try:
            save(step, pos, window)
        except OSError:  # a full disk: the log ends where the kept checkpoint does
            log.drop_after(saved_at)
            raise

    means: dict[str, float] = {}
    t0 = time.perf_counter()
    if progress is not None:
        progress(stage, start, {"total": float(total)})
    try:
        with _SigintToFlag() as sigint:
            for step in range(start + 1, total + 1):
                epoch, index, batch = next(batches)
                in_step = True
                loss, metrics = loss_fn(batch)
                if not math.isfinite(loss.item()):  # diverged: keep the last checkpoint
                    raise WorldModelError(_diverged(stage, cfg, step, saved_at))
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                if cfg.grad_clip > 0:
                    torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.grad_clip)
                optimizer.step()
                done, in_step, position = step, False, (epoch, index + 1)
                for k, v in metrics.items():
                    window.setdefault(k, []).append(v)
                if step % cfg.log_every == 0 or step == total:
                    means = {k: float(np.mean(v)) for k, v in window.items()}
                    window = {}
                    log.write(step, means, time.perf_counter() - t0)
                if step % cfg.checkpoint_every == 0 or step == total:
                    checkpoint(step, position)
                    saved_at = step
                if progress is not None:
                    progress(stage, step, metrics)
                if sigint.requested:
                    raise KeyboardInterrupt
    except KeyboardInterrupt:
        if not in_step and saved_at != done:  # a half-done step is not saved
            checkpoint(done, position)
        raise
    if saved_at != done or not (run_dir / _FILES[stage]).exists():
        checkpoint(done, position)
    return done, means, time.perf_counter() - t0


def _diverged(stage: str, cfg: WorldModelConfig, step: int, saved_at: int) -> str:
    """The one-line message for a loss that became NaN or infinite at batch ``step``."""
    lr = "vae_lr (--vae-lr)" if stage == "vae" else "mdrnn_lr"
    value = cfg.vae_lr if stage == "vae" else cfg.mdrnn_lr
    kept = (f"{_FILES[stage]} of batch {saved_at} is kept" if saved_at else
            f"no {_FILES[stage]} was written")
    return (f"{stage}: the loss is not finite at batch {step}, training diverged at learning "
            f"rate {value:g} ({kept}); train again into a new --out with a lower {lr}")


def _plan_total(batches_per_epoch: int, epochs: int, cap: int) -> int:
    total = batches_per_epoch * epochs
    return min(total, cap) if cap else total


# ---------------------------------------------------------------- V
def _vae_groups(train: np.ndarray, lengths: np.ndarray, batch: int,
                epoch: int, seed: int) -> list[tuple[np.ndarray, int]]:
    """The epoch's plan: groups of episodes (shuffled by ``[seed, epoch]``) and their batches."""
    order = np.random.default_rng([seed, 1, epoch]).permutation(train)
    groups = [order[i:i + _GROUP_EPISODES] for i in range(0, len(order), _GROUP_EPISODES)]
    return [(g, math.ceil(int((lengths[g] + 1).sum()) / batch)) for g in groups]


def _vae_batches(source: Any, train: np.ndarray, lengths: np.ndarray, cfg: WorldModelConfig,
                 epoch: int, index: int) -> Iterator[tuple[int, int, np.ndarray]]:
    """Frames batches from ``(epoch, index)`` on: each group is loaded, shuffled, sliced."""
    b = cfg.vae_batch_size
    while True:
        skip = index
        for group, n_batches in _vae_groups(train, lengths, b, epoch, cfg.seed):
            if skip >= n_batches:
                skip -= n_batches
                continue
            frames = np.concatenate([source.episode(int(i))["observations"] for i in group])
            perm = np.random.default_rng([cfg.seed, 1, epoch, int(group[0])]).permutation(
                len(frames))
            for j in range(skip, n_batches):
                yield epoch, index, frames[perm[j * b:(j + 1) * b]]
                index += 1
            skip = 0
        epoch, index = epoch + 1, 0


def background_frame(source: Any, episodes: Sequence[int] | np.ndarray) -> np.ndarray:
    """The static background of ``episodes``: the per-pixel median, uint8 ``(C, H, W)``, of up
    to 1,000 frames spread evenly over up to 50 of them (evenly spaced in the list).

    V's moving-pixel weights and the evaluation's moving-pixel MSE compare frames with it;
    :func:`train_world_model` stores the training episodes' background in ``vae.pt``.
    """
    episodes = np.asarray(episodes, np.int64)
    if len(episodes) == 0:
        raise WorldModelError("the background needs at least one training episode")
    picked = episodes[np.unique(np.linspace(0, len(episodes) - 1,
                                            min(len(episodes), _BACKGROUND_EPISODES)).astype(int))]
    per = max(1, math.ceil(_BACKGROUND_FRAMES / len(picked)))
    frames = []
    for i in picked:
        obs = source.episode(int(i))["observations"]
        frames.append(obs[np.unique(np.linspace(0, len(obs) - 1, min(per, len(obs))).astype(int))])
    return np.rint(np.median(np.concatenate(frames), axis=0)).astype(np.uint8)


def _background_of(ckpt: dict[str, Any], source: Any, train: np.ndarray) -> np.ndarray:
    """The background stored in a V checkpoint, or (one written before it was stored) the
    training episodes' background computed now."""
    saved = ckpt.get("background")
    return np.asarray(saved, np.uint8) if saved is not None else background_frame(source, train)


def _vae_plan(cfg: WorldModelConfig, source: Any) -> tuple[np.ndarray, np.ndarray, int]:
    """V's training episodes, the used episodes' lengths and the batches planned."""
    n_used = _used_episodes(cfg, source)
    train, _ = split_episodes(n_used, cfg.holdout_fraction)
    lengths = _episode_lengths(source, n_used)
    per_epoch = sum(n for _, n in _vae_groups(train, lengths, cfg.vae_batch_size, 0, cfg.seed))
    return train, lengths, _plan_total(per_epoch, cfg.vae_epochs, cfg.vae_max_steps)


def _train_vae(cfg: WorldModelConfig, source: Any, run_dir: Path, info: dict[str, Any],
               resume: bool, progress: Any) -> StageSummary:
    saved = _begin_stage(cfg, run_dir, "vae", info, resume)
    train, lengths, total = _vae_plan(cfg, source)

    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(cfg.seed)
        vae = ConvVAE(info["observation_shape"][0], cfg.z_size, cfg.vae_width)
    optimizer = torch.optim.Adam(vae.parameters(), lr=cfg.vae_lr)
    noise = torch.Generator().manual_seed(cfg.seed)
    start, position = 0, (0, 0)
    if saved is not None:
        vae.load_state_dict(saved["model"])
        optimizer.load_state_dict(saved["optimizer"])
        noise.set_state(saved["rng"])
        start, position = int(saved["step"]), tuple(saved["position"])
        background = _background_of(saved, source, train)
    else:
        background = background_frame(source, train)
    bg = frames_to_input(background)
    path = run_dir / _FILES["vae"]

    def save(step: int, pos: tuple[int, int], window: dict[str, list[float]]) -> None:
        _atomic_save({"format": _FORMAT.format("vae"), "version": _VERSION, "step": step,
                      "position": list(pos), "log_window": window,
                      "config": dataclasses.asdict(cfg), **info,
                      "background": background, "model": vae.state_dict(),
                      "optimizer": optimizer.state_dict(), "rng": noise.get_state()}, path)

    def loss_fn(frames: np.ndarray) -> tuple[torch.Tensor, dict[str, float]]:
        x = frames_to_input(frames)
        recon, mu, logvar = vae(x, noise)
        mask = moving_mask(x, bg, cfg.moving_threshold)
        weight = None if cfg.moving_weight == 1 else 1.0 + (cfg.moving_weight - 1.0) * mask
        loss, _, kl = vae_loss(recon, x, mu, logvar, cfg.kl_tolerance, weight)
        with torch.no_grad():
            err = (recon - x).pow(2)
            metrics = {"loss": loss.item(), "mse": err.mean().item(), "kl": kl.item()}
            moving = mask.expand_as(err)
            if moving.any():
                metrics["mse_moving"] = err[moving].mean().item()
        return loss, metrics

    vae.train()
    batches = _vae_batches(source, train, lengths, cfg, *position)
    step, means, seconds = _fit("vae", cfg, run_dir, vae, optimizer, batches, loss_fn, save,
                                start, total, progress,
                                None if saved is None else saved.get("log_window"))
    return StageSummary("vae", start, step, total, seconds, means, str(path))


# ---------------------------------------------------------------- the latent cache
def encode_latents(
    run_dir: str | os.PathLike[str],
    source: Any,
    *,
    max_episodes: int = 0,
    batch_size: int = 256,
    progress: Callable[[str, int, dict[str, float]], None] | None = None,
) -> tuple[dict[str, np.ndarray], bool]:
    """Encode every frame of the first ``max_episodes`` episodes (0: all) with the run's V, or
    reuse ``latents.npz`` when it was made by the same ``vae.pt`` (SHA-256) from episodes of the
    same lengths. Returns ``(arrays, reused)``.

    The arrays: ``mu`` and ``logvar`` ``(frames, z)`` float32, ``actions``, ``rewards`` and
    ``terminations`` ``(steps,)``, ``lengths`` (steps per episode), and the offsets
    ``frame_offsets`` and ``step_offsets`` of each episode.
    """
    max_episodes = whole_number(max_episodes, "max_episodes", error=WorldModelError)
    batch_size = whole_number(batch_size, "batch_size", low=1, error=WorldModelError)
    return _encode_latents(Path(run_dir), source, max_episodes, batch_size, progress,
                           _Hashes(Path(run_dir)))


def _read_latents(cache: Path) -> dict[str, np.ndarray] | None:
    """The arrays of ``latents.npz``, or None when it cannot be read (a copy cut short, another
    file under its name): it is a cache, encoded again then (a traceback from zipfile before)."""
    try:
        with np.load(cache) as f:
            return {k: f[k] for k in f.files}
    except (OSError, ValueError, EOFError, zipfile.BadZipFile):
        return None


def _encode_latents(run_dir: Path, source: Any, max_episodes: int, batch_size: int,
                    progress: Callable[[str, int, dict[str, float]], None] | None,
                    hashes: _Hashes) -> tuple[dict[str, np.ndarray], bool]:
    """:func:`encode_latents`, with the call's ``vae.pt`` hash."""
    vae = _vae_from(load_stage(run_dir, "vae"))
    vae_hash = hashes("vae")
    n_used = min(source.num_episodes, max_episodes) if max_episodes else source.num_episodes
    lengths = _episode_lengths(source, n_used)
    cache = run_dir / LATENTS_NAME
    source_key = _latent_source_key(source, n_used)
    if cache.is_file() and (arrays := _read_latents(cache)) is not None:
        if (str(arrays.get("vae_sha256")) == vae_hash
                and str(arrays.get("source_key")) == source_key
                and np.array_equal(arrays.get("lengths"), lengths)):
            return arrays, True
    mus, logvars, actions, rewards, terms = [], [], [], [], []
    if progress is not None:
        progress("encode", 0, {"total": float(n_used)})
    with torch.no_grad():
        for i in range(n_used):
            ep = source.episode(i)
            obs = ep["observations"]
            for j in range(0, len(obs), batch_size):
                mu, logvar = vae.encode(frames_to_input(obs[j:j + batch_size]))
                mus.append(mu.numpy())
                logvars.append(logvar.numpy())
            actions.append(np.asarray(ep["actions"], np.int64))
            rewards.append(np.asarray(ep["rewards"], np.float32))
            terms.append(np.asarray(ep["terminations"], bool))
            if progress is not None:
                progress("encode", i + 1, {})
    arrays = {
        "mu": np.concatenate(mus), "logvar": np.concatenate(logvars),
        "actions": np.concatenate(actions), "rewards": np.concatenate(rewards),
        "terminations": np.concatenate(terms), "lengths": lengths,
        "frame_offsets": np.concatenate([[0], np.cumsum(lengths + 1)[:-1]]).astype(np.int64),
        "step_offsets": np.concatenate([[0], np.cumsum(lengths)[:-1]]).astype(np.int64),
        "vae_sha256": np.array(vae_hash), "source_key": np.array(source_key),
    }
    buffer = io.BytesIO()  # written whole or not at all: a full disk is one line naming the
    np.savez(buffer, **arrays)  # file (np.savez said only "[Errno 27] File too large" and
    write_bytes_atomically(cache, buffer.getbuffer())  # left latents.tmp.npz)
    return arrays, False


# ---------------------------------------------------------------- M
def _window_batch(lat: dict[str, np.ndarray], episodes: np.ndarray, rows: np.ndarray,
                  seq_len: int) -> dict[str, torch.Tensor]:
    """Windows ``rows`` (episode position in ``episodes``, start) as padded tensors + mask."""
    b, z = len(rows), lat["mu"].shape[1]
    mu = np.zeros((b, seq_len + 1, z), np.float32)
    logvar = np.zeros_like(mu)
    actions = np.zeros((b, seq_len), np.int64)
    rewards = np.zeros((b, seq_len), np.float32)
    dones = np.zeros((b, seq_len), np.float32)
    mask = np.zeros((b, seq_len), np.float32)
    for k, (e, s) in enumerate(rows):
        ep = int(episodes[e])
        n = min(seq_len, int(lat["lengths"][ep]) - int(s))
        f0, s0 = int(lat["frame_offsets"][ep]) + int(s), int(lat["step_offsets"][ep]) + int(s)
        mu[k, :n + 1] = lat["mu"][f0:f0 + n + 1]
        logvar[k, :n + 1] = lat["logvar"][f0:f0 + n + 1]
        actions[k, :n] = lat["actions"][s0:s0 + n]
        rewards[k, :n] = lat["rewards"][s0:s0 + n]
        dones[k, :n] = lat["terminations"][s0:s0 + n]
        mask[k, :n] = 1.0
    return {k: torch.from_numpy(v) for k, v in dict(
        mu=mu, logvar=logvar, actions=actions, rewards=rewards, dones=dones, mask=mask).items()}


def _mdrnn_losses(m: MDNRNN, batch: dict[str, torch.Tensor], z: torch.Tensor,
                  cfg_weights: tuple[float, float]) -> tuple[torch.Tensor, dict[str, float]]:
    """M's loss on windows whose latents ``z`` ``(B, L+1, z)`` are given (drawn or means)."""
    logpi, mu, logsigma, reward, done, _, _ = m(z[:, :-1], batch["actions"])
    mask = batch["mask"]
    count = mask.sum().clamp(min=1.0)
    nll = (mdn_nll(logpi, mu, logsigma, z[:, 1:]).mean(-1) * mask).sum() / count
    mse = ((reward - batch["rewards"]).pow(2) * mask).sum() / count
    bce = (F.binary_cross_entropy_with_logits(done, batch["dones"], reduction="none")
           * mask).sum() / count
    loss = nll + cfg_weights[0] * mse + cfg_weights[1] * bce
    return loss, {"loss": loss.item(), "nll": nll.item(), "reward_mse": mse.item(),
                  "done_bce": bce.item()}


def _mdrnn_plan(cfg: WorldModelConfig, lengths: np.ndarray
                ) -> tuple[np.ndarray, np.ndarray, int, int]:
    """M's training episodes, its windows, batches per epoch and batches planned, for the used
    episodes of ``lengths`` steps."""
    train, _ = split_episodes(len(lengths), cfg.holdout_fraction)
    windows = window_index(np.asarray(lengths)[train], cfg.seq_len)
    per_epoch = math.ceil(len(windows) / cfg.mdrnn_batch_size)
    return train, windows, per_epoch, _plan_total(per_epoch, cfg.mdrnn_epochs,
                                                  cfg.mdrnn_max_steps)


def _train_mdrnn(cfg: WorldModelConfig, source: Any, run_dir: Path, info: dict[str, Any],
                 resume: bool, progress: Any, hashes: _Hashes | None = None
                 ) -> tuple[StageSummary, bool]:
    _checked_stage(run_dir, "vae", cfg, info)
    saved = _begin_stage(cfg, run_dir, "mdrnn", info, resume)
    lat, reused = _encode_latents(run_dir, source, cfg.max_episodes, cfg.encode_batch_size,
                                  progress, hashes or _Hashes(run_dir))
    train, windows, per_epoch, total = _mdrnn_plan(cfg, lat["lengths"])

    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(cfg.seed + 1)
        m = MDNRNN(cfg.z_size, info["n_actions"], cfg.hidden_size, cfg.n_gaussians)
    optimizer = torch.optim.Adam(m.parameters(), lr=cfg.mdrnn_lr)
    noise = torch.Generator().manual_seed(cfg.seed + 1)
    start, position = 0, (0, 0)
    if saved is not None:
        m.load_state_dict(saved["model"])
        optimizer.load_state_dict(saved["optimizer"])
        noise.set_state(saved["rng"])
        start, position = int(saved["step"]), tuple(saved["position"])
    path = run_dir / _FILES["mdrnn"]
    vae_hash = str(lat["vae_sha256"])

    def save(step: int, pos: tuple[int, int], window: dict[str, list[float]]) -> None:
        _atomic_save({"format": _FORMAT.format("mdrnn"), "version": _VERSION, "step": step,
                      "position": list(pos), "log_window": window,
                      "config": dataclasses.asdict(cfg), **info,
                      "vae_sha256": vae_hash, "model": m.state_dict(),
                      "optimizer": optimizer.state_dict(), "rng": noise.get_state()}, path)

    def batches(epoch: int, index: int) -> Iterator[tuple[int, int, dict[str, torch.Tensor]]]:
        while True:
            order = np.random.default_rng([cfg.seed, 2, epoch]).permutation(len(windows))
            b = cfg.mdrnn_batch_size
            for j in range(index, per_epoch):
                yield epoch, j, _window_batch(lat, train, windows[order[j * b:(j + 1) * b]],
                                              cfg.seq_len)
            epoch, index = epoch + 1, 0

    def loss_fn(batch: dict[str, torch.Tensor]) -> tuple[torch.Tensor, dict[str, float]]:
        eps = torch.randn(batch["mu"].shape, generator=noise)
        z = batch["mu"] + eps * torch.exp(0.5 * batch["logvar"])  # re-drawn every batch
        return _mdrnn_losses(m, batch, z, (cfg.reward_weight, cfg.done_weight))

    m.train()
    step, means, seconds = _fit("mdrnn", cfg, run_dir, m, optimizer, batches(*position),
                                loss_fn, save, start, total, progress,
                                None if saved is None else saved.get("log_window"))
    return StageSummary("mdrnn", start, step, total, seconds, means, str(path)), reused


# ---------------------------------------------------------------- C: playing the real env
def _resolve_env(cfg: WorldModelConfig, info: dict[str, Any], make_kwargs: dict[str, Any]
                 ) -> str:
    """The env id C plays, checked against the dataset (id, frames, actions)."""
    ids = info["env_ids"]
    env_id = cfg.env_id
    if env_id is None:
        if len(ids) != 1:
            raise WorldModelError(f"the dataset holds {len(ids)} env ids ({ids}); choose the "
                                  "one the controller plays with env_id (--env-id)")
        env_id = ids[0]
    elif env_id not in ids:
        raise WorldModelError(f"env id {env_id!r} does not match the dataset's {ids}; the "
                              "controller must play the env V and M were trained on")
    try:
        env = gym.make(env_id, **make_kwargs)
    except gym.error.Error as exc:
        raise WorldModelError(f"cannot make {env_id!r}: {exc}") from None
    space, actions = env.observation_space, env.action_space
    env.close()
    if tuple(space.shape) != tuple(info["observation_shape"]) or space.dtype != np.uint8:
        raise WorldModelError(f"{env_id} gives {space.dtype} frames {tuple(space.shape)}, the "
                              f"dataset uint8 {tuple(info['observation_shape'])}; pass the "
                              "dataset's wrapper settings (make_kwargs)")
    if getattr(actions, "n", None) != info["n_actions"]:
        raise WorldModelError(f"{env_id} has {actions}, the dataset Discrete("
                              f"{info['n_actions']}); pass the env of the dataset")
    return env_id


def _plays_env(cfg: WorldModelConfig, info: dict[str, Any]) -> bool:
    """Whether C's env is checked (:func:`_resolve_env`): always in the real env; in the dream
    when the dataset names its envs, since the evaluation and :func:`dream` play C there (a
    dream-trained C on a Breakout + Pong dataset took Breakout unasked and its 6 actions ended
    the evaluation in an IndexError from ale_py, after training)."""
    return cfg.controller_env == "real" or bool(info["env_ids"])


def _make_kwargs(source: Any, env_id: str | None) -> dict[str, Any]:
    kwargs = getattr(source, "make_kwargs", None)
    if kwargs is None:
        kwargs = {"scale": None} if (env_id or "").startswith("GanAtari/") else {}
    return dict(kwargs)


class _Player:
    """V + M + C in one process: plays episodes of the real env and returns their returns."""

    def __init__(self, run_dir: str, env_id: str, make_kwargs: dict[str, Any]) -> None:
        self.vae = _vae_from(load_stage(run_dir, "vae"))
        m_ckpt = load_stage(run_dir, "mdrnn")
        self.m = _mdrnn_from(m_ckpt)
        self.controller = LinearController(self.m.z_size, self.m.hidden_size, self.m.n_actions)
        self.env = gym.make(env_id, **make_kwargs)

    @torch.no_grad()
    def play(self, params: np.ndarray | None, seed: int, max_steps: int,
             record: bool = False) -> tuple[float, list[np.ndarray], list[int]]:
        """One episode from ``reset(seed=seed)``; ``params`` None plays uniformly at random.
        Returns ``(return, frames if record, actions)``."""
        obs, _ = self.env.reset(seed=seed)
        rng = np.random.default_rng(seed)
        if params is not None:
            self.controller.set_params(params)
        h, state = np.zeros((1, self.m.hidden_size), np.float32), None
        total, frames, actions = 0.0, [obs] if record else [], []
        for _ in range(max_steps):
            if params is None:
                action = int(rng.integers(self.m.n_actions))
            else:
                z, _ = self.vae.encode(frames_to_input(obs[None]))
                action = int(self.controller.act(z.numpy(), h)[0])
                out = self.m(z[:, None], torch.tensor([[action]]), state)
                h, state = out[5][:, 0].numpy(), out[6]
            obs, reward, terminated, truncated, _ = self.env.step(action)
            total += float(reward)
            actions.append(action)
            if record:
                frames.append(obs)
            if terminated or truncated:
                break
        return total, frames, actions

    def close(self) -> None:
        self.env.close()


_WORKER: dict[str, _Player] = {}


def _worker_init(run_dir: str, env_id: str, make_kwargs: dict[str, Any]) -> None:
    import gan_envs  # noqa: F401  (a spawned process registers the GanAtari ids itself)

    torch.set_num_threads(1)  # one process per core: one thread each
    from gan_envs.registration import quiet_emulator_banner

    quiet_emulator_banner()  # ALE's banner would interleave with the progress bars
    _WORKER["player"] = _Player(run_dir, env_id, make_kwargs)


def _worker_returns(task: tuple[np.ndarray | None, list[int], int]) -> list[float]:
    params, seeds, max_steps = task
    return [_WORKER["player"].play(params, s, max_steps)[0] for s in seeds]


class _Evaluator:
    """Returns of ``(params, seeds, max_steps)`` tasks, in ``workers`` spawned processes (each
    loads V and M from the checkpoint files and makes its own env) or in this process.

    A worker that dies (or fails to start) raises at once instead of hanging the search.
    """

    def __init__(self, run_dir: Path, env_id: str, make_kwargs: dict[str, Any],
                 workers: int) -> None:
        args = (str(run_dir), env_id, make_kwargs)
        self.pool: ProcessPoolExecutor | None = None
        self.player: _Player | None = None
        if workers > 0:
            self.pool = ProcessPoolExecutor(workers, multiprocessing.get_context("spawn"),
                                            initializer=_worker_init, initargs=args)
        else:
            self.player = _Player(*args)

    def returns(self, tasks: list[tuple[np.ndarray | None, list[int], int]]) -> list[list[float]]:
        if self.pool is None:
            assert self.player is not None
            return [[self.player.play(p, s, n)[0] for s in seeds] for p, seeds, n in tasks]
        try:
            return list(self.pool.map(_worker_returns, tasks))
        except BrokenProcessPool:
            raise RuntimeError("a controller worker process died or could not start (a script "
                               "that starts workers needs `if __name__ == '__main__':`; run "
                               "with workers=0 to see the error)") from None

    def close(self) -> None:
        if self.pool is not None:
            self.pool.shutdown(wait=True, cancel_futures=True)
        if self.player is not None:
            self.player.close()

    def __enter__(self) -> _Evaluator:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()


# ---------------------------------------------------------------- C: playing the dream
@torch.no_grad()
def _dream_returns(m: MDNRNN, lat: dict[str, np.ndarray], train: np.ndarray,
                   params: np.ndarray, seeds: Sequence[int], max_steps: int,
                   temperature: float) -> np.ndarray:
    """Returns ``(P, len(seeds))`` of P controllers, all played in one batch inside M's dream.

    Rollout ``j`` starts from the first frame's ``mu`` of a training episode chosen with
    ``seeds[j]`` and samples M with a generator seeded by ``seeds[j]`` (the same for every
    candidate); an episode ends when the done head says so (p > 0.5) or after ``max_steps``.
    """
    p, r = len(params), len(seeds)
    d = m.z_size + m.hidden_size
    params = np.asarray(params, np.float32)
    weight = torch.from_numpy(np.ascontiguousarray(params[:, :m.n_actions * d]))
    weight = weight.view(p, 1, m.n_actions, d).expand(p, r, -1, -1).reshape(p * r, -1, d)
    bias = torch.from_numpy(np.ascontiguousarray(params[:, m.n_actions * d:]))
    bias = bias.repeat_interleave(r, dim=0)
    starts = [int(np.random.default_rng(s).choice(train)) for s in seeds]
    z = torch.from_numpy(lat["mu"][lat["frame_offsets"][starts]]).repeat(p, 1)
    gens = [torch.Generator().manual_seed(int(s)) for s in seeds]
    h = torch.zeros(p * r, m.hidden_size)
    state = None
    alive = torch.ones(p * r)
    total = torch.zeros(p * r)
    for _ in range(max_steps):
        logits = torch.einsum("bad,bd->ba", weight, torch.cat([z, h], dim=1)) + bias
        actions = logits.argmax(dim=1)
        logpi, mu, logsigma, reward, done, out, state = m(z[:, None], actions[:, None], state)
        total += alive * reward[:, 0]
        alive = alive * (torch.sigmoid(done[:, 0]) <= 0.5).float()
        if not alive.any():
            break
        # common random numbers: rollout j draws the same noise for every candidate
        uniform = torch.stack([torch.rand(m.z_size, generator=g) for g in gens]).repeat(p, 1)
        normal = torch.stack([torch.randn(m.z_size, generator=g) for g in gens]).repeat(p, 1)
        z = mdn_sample(logpi[:, 0], mu[:, 0], logsigma[:, 0], temperature,
                       uniform=uniform, normal=normal)
        h = out[:, 0]
    return total.view(p, r).numpy()


# ---------------------------------------------------------------- C: CMA-ES
class _Randn:
    """CMA-ES's normal draws from our own generator (picklable, so a resumed run continues
    the same stream; the global ``numpy.random`` state is left alone)."""

    def __init__(self, seed: int) -> None:
        self.rng = np.random.default_rng(seed)

    def __call__(self, *shape: int) -> np.ndarray:
        return self.rng.standard_normal(shape)


def _new_es(n_params: int, cfg: WorldModelConfig) -> Any:
    with warnings.catch_warnings():  # cma warns that matplotlib is missing
        warnings.simplefilter("ignore")
        import cma
    return cma.CMAEvolutionStrategy(np.zeros(n_params), cfg.sigma0, {
        "popsize": cfg.population, "seed": np.nan, "randn": _Randn(cfg.seed + 2),
        "verbose": -9, "verb_disp": 0, "verb_log": 0, "verb_filenameprefix": "",
    })


def _train_controller(cfg: WorldModelConfig, source: Any, run_dir: Path, info: dict[str, Any],
                      resume: bool, progress: Any, hashes: _Hashes | None = None
                      ) -> StageSummary:
    hashes = hashes or _Hashes(run_dir)
    _checked_stage(run_dir, "vae", cfg, info)
    m_ckpt = _checked_stage(run_dir, "mdrnn", cfg, info)
    if not _m_fits_v(run_dir, m_ckpt, hashes):  # (train_world_model refuses this before work)
        raise WorldModelError(_misfit_m(run_dir))
    saved = _begin_stage(cfg, run_dir, "controller", info, resume)
    if saved is not None and (misfits := _c_misfits(run_dir, saved, hashes)):  # (likewise)
        raise WorldModelError(_misfit_c(run_dir, misfits))
    trained_with = {key: hashes(stage) for stage, key in _C_TRAINED_WITH.items()}
    make_kwargs = _make_kwargs(source, cfg.env_id or (info["env_ids"] or [None])[0])
    env_id = _resolve_env(cfg, info, make_kwargs) if _plays_env(cfg, info) else (
        cfg.env_id or "")
    m = _mdrnn_from(m_ckpt)
    n_params = LinearController(m.z_size, m.hidden_size, m.n_actions).num_params
    select_seeds = [cfg.eval_seed + _SELECT_OFFSET + i for i in range(cfg.select_rollouts)]
    path = run_dir / _FILES["controller"]

    def train_seeds(generation: int) -> list[int]:
        first = cfg.eval_seed + ((generation - 1) * cfg.rollouts if cfg.fresh_seeds else 0)
        return [first + i for i in range(cfg.rollouts)]

    es, start, best, history = _new_es(n_params, cfg), 0, None, []
    best_fitness = -math.inf
    if saved is not None:
        es = pickle.loads(saved["es"])
        start, history = int(saved["step"]), list(saved["history"])
        best, best_fitness = saved["best_params"], float(saved["best_fitness"])

    def save(generation: int) -> None:
        _atomic_save({"format": _FORMAT.format("controller"), "version": _VERSION,
                      "step": generation, "config": dataclasses.asdict(cfg), **info,
                      "env_id": env_id, "make_kwargs": make_kwargs,
                      "n_params": n_params, "best_params": best, "best_fitness": best_fitness,
                      **trained_with,
                      "selection_seeds": select_seeds,
                      "mean_params": np.asarray(es.mean, np.float32),
                      "history": history, "es": pickle.dumps(es)}, path)

    lat: dict[str, np.ndarray] = {}
    train = np.zeros(0, np.int64)
    if cfg.controller_env == "dream":
        lat, _ = _encode_latents(run_dir, source, cfg.max_episodes, cfg.encode_batch_size,
                                 None, hashes)
        train, _ = split_episodes(len(lat["lengths"]), cfg.holdout_fraction)
    log = _Log(run_dir, "controller", start)
    total, done, metrics = cfg.generations, start, {}
    t0 = time.perf_counter()
    if progress is not None:
        progress("controller", start, {"total": float(total)})
    evaluator = _Evaluator(run_dir, env_id, make_kwargs, cfg.workers) if (
        cfg.controller_env == "real" and start < total) else None

    def play(params: np.ndarray, seeds: list[int]) -> np.ndarray:
        """Returns ``(len(params), len(seeds))``; one task per episode for the workers."""
        if evaluator is None:
            return _dream_returns(m, lat, train, params, seeds, cfg.rollout_steps,
                                  cfg.temperature)
        flat = evaluator.returns([(c, [s], cfg.rollout_steps) for c in params for s in seeds])
        return np.array(flat, np.float64).reshape(len(params), len(seeds))

    try:
        for generation in range(start + 1, total + 1):
            asked = es.ask()
            candidates = np.asarray(asked, np.float32)  # the controllers run in float32
            fitness = play(candidates, train_seeds(generation)).mean(axis=1)
            es.tell(asked, list(-fitness))  # the exact solutions asked (cma checks them)
            metrics = {"mean": float(fitness.mean()), "max": float(fitness.max()),
                       "min": float(fitness.min())}
            top = candidates[int(fitness.argmax())]
            if select_seeds:  # re-play the generation's best and the new mean on other seeds
                pool = np.stack([top, np.asarray(es.mean, np.float32)])
                scores = play(pool, select_seeds).mean(axis=1)
                metrics.update(select_top=float(scores[0]), select_mean=float(scores[1]))
                pick, score = pool[int(scores.argmax())], float(scores.max())
            else:
                pick, score = top, float(fitness.max())
            if score > best_fitness:
                best_fitness, best = score, pick.copy()
            metrics.update(best=best_fitness, sigma=float(es.sigma))
            history.append({"generation": generation, **metrics})
            done = generation
            log.write(generation, metrics, time.perf_counter() - t0)
            try:
                save(generation)  # every generation: candidates are expensive
            except OSError:  # a full disk: the log ends where the kept checkpoint does
                log.drop_after(generation - 1)
                raise
            if progress is not None:
                progress("controller", generation, metrics)
    finally:  # KeyboardInterrupt: the last finished generation is already saved
        if evaluator is not None:
            evaluator.close()
    if not path.exists():
        save(done)
    return StageSummary("controller", start, done, total, time.perf_counter() - t0, metrics,
                        str(path))


# ---------------------------------------------------------------- training
def train_world_model(
    config: WorldModelConfig,
    source: Any,
    run_dir: str | os.PathLike[str],
    *,
    stage: str = "all",
    resume: bool = False,
    progress: Callable[[str, int, dict[str, float]], None] | None = None,
) -> WorldModelSummary:
    """Train V, M and/or C on episodes from ``source``, writing checkpoints and logs in
    ``run_dir``.

    Args:
        config: the arguments; None fields come from the full or ``quick`` sizes.
        source: an :class:`~gan_envs.trainers.sequences.EpisodeSource` of 64x64 uint8 frames
            with Discrete actions (a ``RolloutReader`` or an ``ArrayEpisodeSource``).
        run_dir: output folder; created when missing.
        stage: 'vae', 'mdrnn', 'controller' or 'all' (the three in order). A stage needs the
            checkpoints of the stages before it.
        resume: continue the stages whose checkpoints exist (a stage without one starts);
            without it, a stage whose checkpoint exists is refused.
        progress: called as ``progress(stage, step, metrics)``: first with the stage's start
            step and ``{"total": steps planned}``, then after every batch (V, M) or generation
            (C); the latent encoding reports as stage 'encode' (step = episodes encoded).

    Returns:
        a :class:`WorldModelSummary`.

    Raises:
        WorldModelError: bad input (no actions, vector or non-64x64 frames, a missing earlier
            stage, an env id, settings or a dataset that do not match the run, more than
            :data:`MAX_WORKERS` workers, a controller stage that would play with an M trained
            on another V's latents, a resumed C trained with another ``vae.pt`` or
            ``mdrnn.pt`` than the run's or than this call's V and M stages write); said before
            anything is written.
        KeyboardInterrupt: after writing a checkpoint of the last completed step.

    Example:
        >>> import tempfile
        >>> from gan_envs.trainers.sequences import collect_random_episodes
        >>> source = collect_random_episodes("GanAtari/Pong-v0", episodes=2, max_steps=8)
        >>> config = WorldModelConfig(quick=True, vae_width=4, vae_max_steps=1,
        ...                           hidden_size=8, mdrnn_max_steps=1, generations=1,
        ...                           rollout_steps=3, workers=0)
        >>> with tempfile.TemporaryDirectory() as run:
        ...     summary = train_world_model(config, source, run)
        ...     [(s.stage, s.steps) for s in summary.stages.values()]
        [('vae', 1), ('mdrnn', 1), ('controller', 1)]
    """
    if stage not in (*STAGES, "all"):
        raise WorldModelError(f"unknown stage {stage!r}; choose one of {', '.join(STAGES)} "
                              "or 'all'")
    cfg = config.resolved()
    info = _source_info(source)
    if cfg.env_id is not None:  # checked at every stage: config.json records it for the next
        if info["env_ids"] and cfg.env_id not in info["env_ids"]:
            raise WorldModelError(f"env id {cfg.env_id!r} does not match the dataset's "
                                  f"{info['env_ids']}; pass one of them (--env-id), or leave it "
                                  "out for a dataset of one env")
        if not info["env_ids"]:
            from gan_envs.registration import resolve_env_id

            resolve_env_id(cfg.env_id)
    if stage in ("controller", "all") and importlib.util.find_spec("cma") is None:
        raise WorldModelError("the controller stage searches C with CMA-ES from the cma "
                              "package, which is not installed: pip install 'gan-envs[train]' "
                              "(or pip install cma), or train --stage vae / mdrnn alone")
    if stage in ("controller", "all") and _plays_env(cfg, info):
        # an env C cannot play is an error now, not after V and M have trained
        _resolve_env(cfg, info, _make_kwargs(source, cfg.env_id or (info["env_ids"] or [None])[0]))
    run_dir = Path(run_dir)
    if run_dir.exists() and not run_dir.is_dir():
        raise WorldModelError(f"{run_dir} is a file; the run directory (--out) is a folder: give "
                              "a new name")
    if (run_dir / CHECKPOINT_NAME).exists():
        raise WorldModelError(f"{run_dir} holds a GAN run ({CHECKPOINT_NAME}); train the world "
                              "model into another --out directory")
    if stage in STAGES:  # a later stage alone needs the earlier ones' checkpoints: say so
        for earlier in STAGES[:STAGES.index(stage)]:  # before a folder is made for nothing
            if not (run_dir / _FILES[earlier]).is_file():
                raise WorldModelError(f"{run_dir} has no {_FILES[earlier]}: run `gan-envs train "
                                      f"world-model DATA.h5 --out {run_dir} --stage {earlier}` "
                                      f"first (or --stage all)")
            _checked_stage(run_dir, earlier, cfg, info)
    for name in STAGES if stage == "all" else (stage,):  # refuse before config.json changes
        _begin_stage(cfg, run_dir, name, info, resume)
    hashes = _Hashes(run_dir)  # each file read once, unless its stage rewrites it
    _check_m_follows_v(cfg, source, run_dir, STAGES if stage == "all" else (stage,), hashes)
    _check_c_follows_vm(cfg, source, run_dir, STAGES if stage == "all" else (stage,), hashes)
    run_dir.mkdir(parents=True, exist_ok=True)
    (run_dir / "config.json").write_text(json.dumps(dataclasses.asdict(cfg), indent=2) + "\n")
    summary = WorldModelSummary(str(run_dir))
    for name in STAGES if stage == "all" else (stage,):
        if name == "vae":
            summary.stages[name] = _train_vae(cfg, source, run_dir, info, resume, progress)
        elif name == "mdrnn":
            result, reused = _train_mdrnn(cfg, source, run_dir, info, resume, progress, hashes)
            summary.stages[name], summary.latents_reused = result, reused
        else:
            summary.stages[name] = _train_controller(cfg, source, run_dir, info, resume,
                                                     progress, hashes)
        if summary.stages[name].steps != summary.stages[name].start_step:
            hashes.forget(name)  # its file was rewritten
    return summary


def _check_m_follows_v(cfg: WorldModelConfig, source: Any, run_dir: Path,
                       stages: Sequence[str], hashes: _Hashes) -> None:
    """Refuse, before anything is written, a call that would leave ``mdrnn.pt`` trained on the
    latents of another V than ``vae.pt`` (its recorded ``vae_sha256``) for its controller stage
    to play with, or whose M stage has no batch left to train on this V."""
    m_path, v_path = run_dir / _FILES["mdrnn"], run_dir / _FILES["vae"]
    if not {"mdrnn", "controller"} & set(stages) or not m_path.is_file():
        return
    m_ckpt = load_stage(run_dir, "mdrnn")
    if m_ckpt.get("vae_sha256") is None:  # written before M recorded its V
        return
    v_moves = "vae" in stages and (not v_path.is_file() or int(
        load_stage(run_dir, "vae")["step"]) < _vae_plan(cfg, source)[2])
    if not v_moves and _m_fits_v(run_dir, m_ckpt, hashes):
        return
    tail = ""
    if "mdrnn" in stages:
        total = _mdrnn_plan(cfg, _episode_lengths(source, _used_episodes(cfg, source)))[3]
        if int(m_ckpt["step"]) < total:
            return  # M trains on this V's latents (and records it) before anything uses it
        tail = f" and has no batch left to train on it (batch {int(m_ckpt['step'])} of {total})"
    raise WorldModelError(_misfit_m(run_dir, "V trains on in this call" if v_moves else
                                    "V was trained after M", tail))


def _check_c_follows_vm(cfg: WorldModelConfig, source: Any, run_dir: Path,
                        stages: Sequence[str], hashes: _Hashes) -> None:
    """Refuse, before anything is written, a resumption of the controller stage whose
    ``controller.pt`` was trained with another ``vae.pt`` or ``mdrnn.pt`` (the SHA-256s it
    recorded) than the run's, or than the ones this call's V or M stage will write."""
    c_path = run_dir / _FILES["controller"]
    if "controller" not in stages or not c_path.is_file():
        return
    c_ckpt = load_stage(run_dir, "controller")
    if all(c_ckpt.get(key) is None for key in _C_TRAINED_WITH.values()):
        return  # written before C recorded its V and M
    def moves(stage: str, total: Callable[[], int]) -> bool:  # trains on in this call
        return stage in stages and (not (run_dir / _FILES[stage]).is_file() or int(
            load_stage(run_dir, stage)["step"]) < total())

    moving = [stage for stage, total in (
        ("vae", lambda: _vae_plan(cfg, source)[2]),
        ("mdrnn", lambda: _mdrnn_plan(
            cfg, _episode_lengths(source, _used_episodes(cfg, source)))[3]))
        if moves(stage, total)]
    if moving:
        c_path, names = run_dir / _FILES["controller"], " and ".join(_FILES[s] for s in moving)
        first = " then ".join(f"--stage {stage} --resume" for stage in moving)
        raise WorldModelError(
            f"{c_path} was trained with {run_dir}'s {names}, which this call would train on: "
            f"train them first ({first}), then move {c_path.name} away and run --stage "
            f"controller; or keep them as they are (--stage controller --resume)")
    if misfits := _c_misfits(run_dir, c_ckpt, hashes):
        raise WorldModelError(_misfit_c(run_dir, misfits))


# ---------------------------------------------------------------- evaluation
@torch.no_grad()
def evaluate_world_model(
    run_dir: str | os.PathLike[str],
    source: Any,
    *,
    max_frames: int = 1000,
    rollouts: int | None = None,
    rollout_steps: int | None = None,
    workers: int | None = None,
    save: bool = True,
) -> dict[str, Any]:
    """Measure each trained stage on held-out data, every number beside its baseline.

    - ``vae``: reconstruction MSE per pixel value (in [0, 1]) of up to ``max_frames`` frames of
      the held-out episodes, decoding ``mu``; beside it the MSE of predicting their mean frame.
      The same on the **moving** pixels only (``mse_moving``; all channels of the pixels where
      a channel differs from V's stored background by more than ``moving_threshold``: paddle,
      ball, broken bricks, score), beside the mean frame's and the background's MSE there
      (``mse_moving_mean_frame``, ``mse_moving_background``), and their share
      ``moving_fraction``. A V that drops the small objects scores about the baselines there
      even when its plain MSE looks good.
    - ``mdrnn``: NLL (nats per latent dimension, averaged over the steps of the held-out
      windows) of ``z_{t+1}`` under M, against **copy-last-z**: ``N(z_t, diag(s^2))`` with
      ``s^2`` the mean squared one-step change ``(z_{t+1} - z_t)^2`` over the training episodes
      (fitted on the split M was trained on). ``z`` is drawn once from V's ``(mu, logvar)``
      with a fixed seed (the distribution M is trained on; both models score the same draws);
      the ``*_mu`` numbers use the means ``mu`` instead. Lower is better; ``gain`` = baseline
      - M (positive: M beats copy-last-z).
    - ``controller``: mean ± std of the returns of C (its best parameters) and of the uniform
      random policy, on the same env seeds ``eval_seed + 100000 + i`` (not the training seeds).

    Stages without a checkpoint are left out, and so is a ``controller.pt`` of 0 generations
    (it has kept no controller yet). An M trained on the latents of another V than ``vae.pt``
    (V was trained after it) is left out with C, which plays with both: ``left_out`` then holds
    their names and the one-line reason; a C trained with another ``vae.pt`` or ``mdrnn.pt``
    than the run's (retrained after it) is left out alone, the same way. ``source`` may be
    another dataset of the run's games. ``workers`` is at most :data:`MAX_WORKERS`. Writes
    ``metrics.json`` when ``save``.
    """
    run_dir = Path(run_dir)
    max_frames = whole_number(max_frames, "max_frames", low=1, error=WorldModelError)
    for name, value in (("rollouts", rollouts), ("rollout_steps", rollout_steps)):
        if value is not None:
            whole_number(value, name, low=1, error=WorldModelError)
    if workers is not None:
        workers = _checked_workers(whole_number(workers, "workers", error=WorldModelError))
    info = _source_info(source)
    cfg = _saved_config(load_stage(run_dir, "vae")["config"])
    # (another dataset of the run's games is fine here: the metrics only need unseen episodes)
    vae_ckpt = _checked_stage(run_dir, "vae", cfg, info, same_dataset=False)
    train, held = _evaluation_split(cfg, source, "it was trained with")
    results: dict[str, Any] = {"run_dir": str(run_dir), "held_out_episodes": len(held)}

    # ---- V
    vae = _vae_from(vae_ckpt)
    frames = np.concatenate([source.episode(int(i))["observations"] for i in held])
    frames = frames[np.linspace(0, len(frames) - 1, min(max_frames, len(frames))).astype(int)]
    x = frames_to_input(frames)
    recon = torch.cat([vae.decode(vae.encode(x[j:j + 256])[0]) for j in range(0, len(x), 256)])
    mean_frame = x.mean(0, keepdim=True)
    background = frames_to_input(_background_of(vae_ckpt, source, train))
    moving = moving_mask(x, background, cfg.moving_threshold).expand_as(x)
    results["vae"] = {"mse": float((recon - x).pow(2).mean()),
                      "mse_mean_frame": float((x - mean_frame).pow(2).mean()),
                      "frames": len(frames),
                      "mse_moving": _masked_mse(recon, x, moving),
                      "mse_moving_mean_frame": _masked_mse(mean_frame, x, moving),
                      "mse_moving_background": _masked_mse(background, x, moving),
                      "moving_fraction": float(moving.float().mean()),
                      "moving_threshold": cfg.moving_threshold}

    # ---- M (one trained on another V's latents is left out, and so is C, which plays with both)
    hashes = _Hashes(run_dir)
    m_ckpt = load_stage(run_dir, "mdrnn") if (run_dir / _FILES["mdrnn"]).exists() else None
    if m_ckpt is not None and not _m_fits_v(run_dir, m_ckpt, hashes):
        left = ["mdrnn", *(["controller"] if (run_dir / _FILES["controller"]).exists() else [])]
        results["left_out"] = {"stages": left, "reason": _misfit_m(run_dir)}
    elif m_ckpt is not None:
        m = _mdrnn_from(m_ckpt)
        lat, _ = _encode_latents(run_dir, source, cfg.max_episodes, cfg.encode_batch_size,
                                 None, hashes)
        seq_len = int(m_ckpt["config"]["seq_len"])
        windows = window_index(lat["lengths"][held], seq_len)
        noise = torch.Generator().manual_seed(cfg.seed + 3)
        eps = torch.randn(lat["mu"].shape, generator=noise).numpy()
        targets = {"": lat["mu"] + eps * np.exp(0.5 * lat["logvar"]), "_mu": lat["mu"]}
        results["mdrnn"] = {"windows": len(windows)}
        for suffix, z_all in targets.items():
            deltas = [np.diff(z_all[o:o + n + 1], axis=0) for o, n in
                      zip(lat["frame_offsets"][train], lat["lengths"][train], strict=True)]
            var = torch.from_numpy(np.maximum((np.concatenate(deltas) ** 2).mean(axis=0),
                                              1e-8).astype(np.float32))
            nll_m, nll_copy, count = 0.0, 0.0, 0.0
            for j in range(0, len(windows), 64):
                batch = _window_batch({**lat, "mu": z_all}, held, windows[j:j + 64], seq_len)
                z, mask = batch["mu"], batch["mask"]
                logpi, mean, logsigma, *_ = m(z[:, :-1], batch["actions"])
                nll_m += float((mdn_nll(logpi, mean, logsigma, z[:, 1:]).mean(-1) * mask).sum())
                copy = 0.5 * torch.log(2 * math.pi * var) + (z[:, 1:] - z[:, :-1]) ** 2 / (2 * var)
                nll_copy += float((copy.mean(-1) * mask).sum())
                count += float(mask.sum())
            results["mdrnn"].update({f"nll{suffix}": nll_m / count,
                                     f"nll_copy_last_z{suffix}": nll_copy / count,
                                     f"gain{suffix}": (nll_copy - nll_m) / count})
        results["mdrnn"]["transitions"] = int(count)

    # ---- C (a controller.pt of 0 generations has kept no controller yet: left out, and so is
    # one trained with another vae.pt or mdrnn.pt than the run's)
    c_ckpt = load_stage(run_dir, "controller") if (run_dir / _FILES["controller"]).exists() \
        and "left_out" not in results else None
    if c_ckpt is not None and (gone := [stage for stage in _C_TRAINED_WITH
                                        if not (run_dir / _FILES[stage]).is_file()]):
        names = " and ".join(_FILES[stage] for stage in gone)
        results["left_out"] = {"stages": ["controller"], "reason": (
            f"{run_dir / _FILES['controller']} plays with {names}, which {run_dir} no longer "
            f"holds: train {names} again (from --stage {gone[0]} on), then C")}
        c_ckpt = None
    if c_ckpt is not None and (misfits := _c_misfits(run_dir, c_ckpt, hashes)):
        results["left_out"] = {"stages": ["controller"], "reason": _misfit_c(run_dir, misfits)}
        c_ckpt = None
    if c_ckpt is not None and c_ckpt.get("best_params") is not None and not c_ckpt["env_id"]:
        results["left_out"] = {"stages": ["controller"], "reason": _no_env(run_dir)}
        c_ckpt = None  # (gym.make("") failed after V and M were measured, losing both)
    if c_ckpt is not None and c_ckpt.get("best_params") is not None:
        ccfg = _saved_config(c_ckpt["config"])
        n = rollouts or ccfg.eval_rollouts
        steps = rollout_steps or ccfg.rollout_steps
        seeds = [ccfg.eval_seed + _EVAL_OFFSET + i for i in range(n)]
        n_workers = ccfg.workers if workers is None else workers
        with _Evaluator(run_dir, c_ckpt["env_id"], c_ckpt["make_kwargs"],
                        min(n_workers, n, MAX_WORKERS)) as ev:
            tasks = [(c_ckpt["best_params"], [s], steps) for s in seeds]
            tasks += [(None, [s], steps) for s in seeds]
            returns = np.array(ev.returns(tasks))[:, 0]
        ours, rand = returns[:n], returns[n:]
        results["controller"] = {
            "env_id": c_ckpt["env_id"], "seeds": seeds, "rollout_steps": steps,
            "mean": float(ours.mean()), "std": float(ours.std()),
            "random_mean": float(rand.mean()), "random_std": float(rand.std()),
            "returns": ours.tolist(), "random_returns": rand.tolist()}
    if save:
        (run_dir / "metrics.json").write_text(json.dumps(results, indent=2) + "\n")
    return results


def _no_env(run_dir: Path) -> str:
    """Why a C trained in the dream of a source that names no env id cannot be played."""
    return (f"{run_dir / _FILES['controller']} was trained in M's dream on a source that names "
            "no env id: there is no env to play it in")


def _evaluation_split(cfg: WorldModelConfig, source: Any, how: str
                      ) -> tuple[np.ndarray, np.ndarray]:
    """The training and held-out episodes of the evaluation; none held out is an error."""
    n_used = _used_episodes(cfg, source)
    train, held = split_episodes(n_used, cfg.holdout_fraction)
    if len(held) == 0:
        fix = (f"{how} holdout_fraction=0: train it with holdout_fraction > 0 (e.g. 0.1) to "
               "evaluate" if cfg.holdout_fraction == 0 else
               "record at least 2 (and leave --max-episodes at 0 or >= 2)")
        raise WorldModelError("the evaluation needs held-out episodes; the run uses "
                              f"{counted(n_used, 'episode')}: {fix}")
    return train, held


def check_evaluation(config: WorldModelConfig, source: Any) -> None:
    """Raise the WorldModelError :func:`evaluate_world_model` would raise for a run trained with
    ``config`` on ``source`` for want of held-out episodes: call it before training when the
    evaluation is to follow (``train world-model --evaluate``)."""
    _evaluation_split(config.resolved(), source, "the config has")


def _masked_mse(prediction: torch.Tensor, x: torch.Tensor, mask: torch.Tensor) -> float | None:
    """Mean squared error of ``prediction`` (broadcast to ``x``) on the values where ``mask``
    holds; None when it holds nowhere."""
    if not bool(mask.any()):
        return None
    return float((prediction.expand_as(x) - x).pow(2)[mask].mean())


def metrics_table(results: dict[str, Any]) -> str:
    """The results of :func:`evaluate_world_model` as a plain-text table.

    Example:
        >>> print(metrics_table({"vae": {"mse": 0.001, "mse_mean_frame": 0.01, "frames": 9}}))
        stage       metric                          model      baseline
        vae         MSE per pixel (held-out)     0.001000      0.010000  (mean frame)
    """
    rows = ["stage       metric                          model      baseline"]
    if "vae" in results:
        r = results["vae"]
        rows.append(f"vae         MSE per pixel (held-out) {r['mse']:>12.6f}  "
                    f"{r['mse_mean_frame']:>12.6f}  (mean frame)")
        if r.get("mse_moving") is not None:
            share = f"{100 * r['moving_fraction']:.1f}%"
            rows.append(f"vae         MSE, moving pixels {share:>5} {r['mse_moving']:>12.6f}  "
                        f"{r['mse_moving_mean_frame']:>12.6f}  (mean frame)")
            rows.append(f"vae         MSE, moving pixels       {r['mse_moving']:>12.6f}  "
                        f"{r['mse_moving_background']:>12.6f}  (background)")
    if "mdrnn" in results:
        r = results["mdrnn"]
        rows.append(f"mdrnn       NLL per z dim (held-out) {r['nll']:>12.4f}  "
                    f"{r['nll_copy_last_z']:>12.4f}  (copy last z)")
        rows.append(f"mdrnn       NLL per z dim, z = mu    {r['nll_mu']:>12.4f}  "
                    f"{r['nll_copy_last_z_mu']:>12.4f}  (copy last z)")
    if "controller" in results:
        r = results["controller"]
        ours = f"{r['mean']:.1f} ± {r['std']:.1f}"
        rand = f"{r['random_mean']:.1f} ± {r['random_std']:.1f}"
        rows.append(f"controller  return ({len(r['seeds'])} seeds)       {ours:>12}  "
                    f"{rand:>12}  (random policy)")
    if "left_out" in results:
        r = results["left_out"]
        rows.append(f"{' and '.join(r['stages'])} left out: {r['reason']}")
    return "\n".join(rows)


# ---------------------------------------------------------------- dream
def _check_dream_source(source: Any, vae_ckpt: dict[str, Any]) -> None:
    """Refuse a dataset of other frames or other games than the run's V was trained on."""
    name = getattr(source, "path", None) or type(source).__name__
    shape = tuple(observation_shape_of(source))
    want = tuple(vae_ckpt["observation_shape"])
    if shape != want:
        raise WorldModelError(f"{name} holds frames {shape}, but this world model was trained on "
                              f"{want}: dream on the run's own kind of data")
    ids, trained = list(getattr(source, "env_ids", []) or []), list(vae_ckpt["env_ids"])
    if ids and trained and not set(ids) <= set(trained):
        raise WorldModelError(f"{name} holds {', '.join(ids)}, but this world model was trained "
                              f"on {', '.join(trained)}: dream on the run's own games")


@torch.no_grad()
def dream(
    run_dir: str | os.PathLike[str],
    *,
    steps: int = 200,
    seed: int = 0,
    temperature: float = 1.0,
    source: Any = None,
    start_episode: int | None = None,
    out: str | os.PathLike[str] | None = None,
    fps: float = 15.0,
    upscale: int = 4,
) -> np.ndarray:
    """An imagined rollout decoded by V beside the real one from the same start and actions.

    The real side is either episode ``start_episode`` of ``source`` (its frames and actions) or
    a live episode of the run's env from ``reset(seed=seed)``, acted by the trained controller
    (``controller.pt``) or, without one, uniformly at random. The dream starts from V's ``mu``
    of the first real frame and feeds M's samples (temperature ``temperature``) back to M with
    the real actions. When the real episode ends first, its last frame is held. ``steps`` is at
    most 10,000 (the video is held in memory), ``temperature`` in (0, 100]. An M trained on the
    latents of another V than the run's ``vae.pt`` is refused (retrain M first), and so is a
    ``controller.pt`` trained with another ``vae.pt`` or ``mdrnn.pt`` when C plays the episode
    (retrain C).

    Returns:
        RGB frames ``(steps + 1, H, W, 3)`` uint8: real on the left, dream on the right.
        Written as an MP4 to ``out`` when given.
    """
    run_dir = Path(run_dir)
    if not (is_real(temperature) and 0 < temperature <= MAX_TEMPERATURE):
        raise WorldModelError(f"the dream's temperature must be > 0 and at most "
                              f"{MAX_TEMPERATURE:g} (1: M as trained), got {temperature}")
    steps = whole_number(steps, "the dream's steps (--steps)", low=1, high=MAX_DREAM_STEPS,
                         error=WorldModelError)
    seed = whole_number(seed, "the dream's seed (--seed)", high=2**63 - 1, error=WorldModelError)
    upscale = whole_number(upscale, "upscale", low=1, high=16, error=WorldModelError)
    if start_episode is not None:
        start_episode = whole_number(start_episode, "the start episode (--episode)",
                                     error=WorldModelError)
        if source is None:
            raise WorldModelError("a start episode (--episode) needs the dataset it is in "
                                  "(--data DATA.h5)")
    if out is not None:  # before the dream is computed
        check_video_path(out, fps)
    vae_ckpt, m_ckpt = load_stage(run_dir, "vae"), load_stage(run_dir, "mdrnn")
    hashes = _Hashes(run_dir)
    if not _m_fits_v(run_dir, m_ckpt, hashes):  # M would dream in another V's latent space
        raise WorldModelError(_misfit_m(run_dir))
    c_ckpt = None  # C plays the real episode unless the dream starts from a dataset's
    if (source is None or start_episode is None) and (run_dir / _FILES["controller"]).exists():
        c_ckpt = load_stage(run_dir, "controller")
        if misfits := _c_misfits(run_dir, c_ckpt, hashes):  # C would act on another V/M
            raise WorldModelError(_misfit_c(run_dir, misfits))
        if not c_ckpt["env_id"]:  # (gym.make("") said "Malformed environment ID: .")
            raise WorldModelError(f"{_no_env(run_dir)}: dream from a dataset episode "
                                  "(--data DATA.h5 --episode I)")
    vae, m = _vae_from(vae_ckpt), _mdrnn_from(m_ckpt)
    if source is not None:
        _check_dream_source(source, vae_ckpt)
    if source is not None and start_episode is not None:
        if not 0 <= start_episode < source.num_episodes:
            raise WorldModelError(f"the start episode (--episode) must lie in [0, "
                                  f"{source.num_episodes}), got {start_episode}")
        ep = source.episode(start_episode)
        real, actions = list(ep["observations"][:steps + 1]), [int(a) for a in ep["actions"]]
    else:
        if c_ckpt is not None:
            env_id, make_kwargs, params = (c_ckpt["env_id"], c_ckpt["make_kwargs"],
                                           c_ckpt["best_params"])
        else:
            ids = vae_ckpt["env_ids"]
            if len(ids) != 1:
                raise WorldModelError(f"{run_dir} was trained on {len(ids)} env ids and has no "
                                      "controller: dream needs a dataset and an episode "
                                      "(--data DATA.h5 --episode I)")
            env_id, make_kwargs, params = ids[0], _make_kwargs(None, ids[0]), None
        player = _Player(str(run_dir), env_id, make_kwargs)
        try:
            _, real, actions = player.play(params, seed, steps, record=True)
        finally:
            player.close()
    gen = torch.Generator().manual_seed(seed)
    z = vae.encode(frames_to_input(real[0][None]))[0]
    imagined = [vae.decode(z)[0]]
    state = None
    for t in range(steps):
        action = actions[min(t, len(actions) - 1)] if actions else 0
        logpi, mu, logsigma, _, _, _, state = m(z[:, None], torch.tensor([[action]]), state)
        z = mdn_sample(logpi[:, 0], mu[:, 0], logsigma[:, 0], temperature, gen)
        imagined.append(vae.decode(z)[0])
    frames = []
    for t in range(steps + 1):
        left = real[min(t, len(real) - 1)]
        right = np.rint(imagined[t].numpy() * 255).astype(np.uint8)
        frames.append(make_grid(np.stack([left, right]), nrow=2, padding=2, upscale=upscale))
    video = np.stack(frames)
    if out is not None:
        write_video(list(video), out, fps=fps)
    return video
