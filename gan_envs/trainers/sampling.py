"""Sample a trained GAN and explore its latent space (seed 003's homework).

- :func:`load_generator`: the run's generator (its EMA copy when the run kept one), ready to use.
- :func:`sample`: ``n`` samples from normal latents, or from all-zeros / all-ones / all-``v``
  latents, with chosen dimensions set to chosen values.
- :func:`sweep`: one latent dimension swept from ``start`` to ``stop`` with the others fixed
  (a strip of images).
- :func:`interpolate`: the path between the latents of two seeds.

Images come back as uint8 ``(N, C, H, W)`` (pass them to
:func:`gan_envs.images.make_grid`); vector runs give float ``(N, D)`` in the data's units.

Class-conditional runs (``GanConfig.conditional``) also need an env label per latent: by default
the labels follow the training data's env proportions (rounded to the nearest counts, in an
order shuffled by ``seed``); ``env=`` draws one environment only.
"""

from __future__ import annotations

import math
import os
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import nn

from gan_envs._numbers import flag, is_real, whole_number

from .data import is_image_shape
from .gan import load_checkpoint
from .models import build_generator

__all__ = [
    "RunGenerator",
    "load_generator",
    "checkpoint_generator",
    "make_latents",
    "MAX_SAMPLES",
    "MAX_STRIP",
    "sample",
    "sweep",
    "interpolate",
]

EnvChoice = str | int | None


@dataclass
class RunGenerator:
    """A trained generator with what it takes to turn its output back into frames."""

    net: nn.Module
    """the generator, in eval mode"""
    latent_dim: int
    """size of its latent vector"""
    frame_shape: tuple[int, ...]
    """shape of one frame"""
    center: torch.Tensor
    """frames = output * half_range + center"""
    half_range: torch.Tensor
    """see ``center``"""
    env_ids: list[str]
    """the environments of the training data, when the source named them"""
    iteration: int
    """training iteration of the checkpoint"""
    ema: bool
    """whether ``net`` holds the EMA weights"""
    label_probs: torch.Tensor | None = None
    """conditional runs: the training data's share of each env (None: unconditional)"""

    @property
    def conditional(self) -> bool:
        """Whether the generator takes an env label per latent."""
        return self.label_probs is not None

    def env_index(self, env: str | int) -> int:
        """The label of ``env``: an index, an env id, or a unique case-insensitive part of one
        (``"Pong"``)."""
        if not self.conditional:
            raise ValueError("this run is unconditional: it cannot draw one env (train with "
                             "conditional=True (--conditional), the fast recipe's default on "
                             "multi-game data)")
        if isinstance(env, bool) or not isinstance(env, (int, np.integer, str)) \
                or (isinstance(env, str) and not env.strip()):
            raise ValueError(f"env must be an env id, a part of one, or an index, got {env!r} "
                             f"(this run knows {', '.join(self.env_ids)})")
        if isinstance(env, (int, np.integer)) or env.isdigit():
            index = int(env)
            if not 0 <= index < len(self.env_ids):
                raise ValueError(f"env index {index} is out of range: this run knows "
                                 f"{len(self.env_ids)} envs ({', '.join(self.env_ids)})")
            return index
        if env in self.env_ids:
            return self.env_ids.index(env)
        matches = [i for i, e in enumerate(self.env_ids) if env.lower() in e.lower()]
        if len(matches) > 1:
            raise ValueError(f"env {env!r} is ambiguous: it matches "
                             f"{', '.join(self.env_ids[i] for i in matches)}; give more of the id")
        if not matches:
            raise ValueError(f"unknown env {env!r}: this run knows {', '.join(self.env_ids)}")
        return matches[0]

    def labels(self, n: int, seed: int = 0, env: EnvChoice = None) -> torch.Tensor | None:
        """``n`` env labels: all ``env`` when given, else the data's proportions (largest-
        remainder counts, shuffled by ``seed``); None for an unconditional run (and no env)."""
        n = whole_number(n, "the number of labels", error=ValueError)
        seed = whole_number(seed, "the label seed", low=-(2**63), high=2**64 - 1,
                            error=ValueError)
        if env is not None:
            return torch.full((n,), self.env_index(env), dtype=torch.int64)
        if not self.conditional:
            return None
        counts = torch.from_numpy(proportional_counts(self.label_probs.double().numpy(), n))
        labels = torch.repeat_interleave(torch.arange(len(counts)), counts)
        return labels[torch.randperm(n, generator=torch.Generator().manual_seed(seed))]

    @torch.no_grad()
    def generate(self, z: torch.Tensor, batch_size: int = 256,
                 labels: torch.Tensor | None = None) -> np.ndarray:
        """Frames for latents ``z`` ``(N, latent_dim)``: uint8 images or float vectors.

        ``labels`` (conditional runs): one env index per latent; default :meth:`labels`.
        """
        try:
            z = torch.as_tensor(z, dtype=torch.float32)  # numpy or float64 latents too
        except (TypeError, ValueError, RuntimeError):
            raise ValueError(f"latents must be numbers shaped (N, {self.latent_dim}), got "
                             f"{type(z).__name__}") from None
        if z.ndim != 2 or z.shape[1] != self.latent_dim:
            raise ValueError(f"latents must be shaped (N, {self.latent_dim}), got {tuple(z.shape)}")
        if not bool(torch.isfinite(z).all()):
            raise ValueError("latents must be finite numbers (NaN or inf drew NaN frames, or "
                             "failed in torch's normal distribution with modes)")
        whole_number(batch_size, "batch_size", low=1, error=ValueError)
        if self.conditional:
            if labels is None:
                labels = self.labels(len(z))
            else:
                labels = torch.as_tensor(np.asarray(labels) if isinstance(labels, (list, tuple))
                                         else labels)
                if labels.is_floating_point() or labels.is_complex() \
                        or labels.dtype == torch.bool:
                    raise ValueError(f"labels must be whole env indices, got {labels.dtype} "
                                     "(torch.long truncated 1.2 to env 1)")
                labels = labels.long()
            n_envs = len(self.env_ids) if self.env_ids else int(self.label_probs.numel())
            if labels.shape != (len(z),) or (len(z) and not (
                    0 <= int(labels.min()) and int(labels.max()) < n_envs)):
                raise ValueError(f"labels must be {len(z)} env indices in [0, {n_envs}) (one "
                                 f"per latent), got shape {tuple(labels.shape)}")
            chunks = [self.net(z[i : i + batch_size], labels[i : i + batch_size])
                      for i in range(0, len(z), batch_size)]
        else:
            chunks = [self.net(z[i : i + batch_size]) for i in range(0, len(z), batch_size)]
        out = torch.cat(chunks) if chunks else torch.zeros(0, *self.frame_shape)
        frames = out * self.half_range + self.center
        if is_image_shape(self.frame_shape):
            return frames.round().clamp(0, 255).to(torch.uint8).numpy()
        return frames.numpy()


def proportional_counts(share: np.ndarray, n: int) -> np.ndarray:
    """``n`` split in the proportions ``share`` by largest remainders (exact integer counts).

    Example:
        >>> proportional_counts(np.array([1.0, 1.0, 1.0]), 10).tolist()
        [4, 3, 3]
    """
    share = np.asarray(share, dtype=np.float64)
    share = share / share.sum()
    counts = np.floor(share * n).astype(np.int64)
    counts[np.argsort(-(share * n - counts), kind="stable")[: n - int(counts.sum())]] += 1
    return counts


def load_generator(run_dir: str | os.PathLike[str], ema: bool = True) -> RunGenerator:
    """Load the generator of the run in ``run_dir`` (the EMA copy when present and ``ema``)."""
    return checkpoint_generator(load_checkpoint(run_dir), ema)


def checkpoint_generator(ckpt: Mapping[str, Any], ema: bool = True) -> RunGenerator:
    """The generator of a loaded checkpoint (:func:`load_checkpoint`'s dict), as
    :func:`load_generator` gives it."""
    if not isinstance(ckpt, Mapping) or "config" not in ckpt or "generator" not in ckpt:
        raise ValueError(f"checkpoint_generator takes the dict load_checkpoint(run_dir) returns, "
                         f"got {type(ckpt).__name__}: for a run folder call "
                         "load_generator(run_dir)")
    flag(ema, "ema")
    cfg = ckpt["config"]
    frame_shape = tuple(int(s) for s in ckpt["frame_shape"])
    env_ids = list(ckpt.get("env_ids", []))
    conditional = bool(cfg.get("conditional")) and ckpt.get("label_probs") is not None
    net = build_generator(cfg["arch"], frame_shape, cfg["latent_dim"], cfg["width"],
                          len(env_ids) if conditional else 0, int(cfg.get("template") or 0),
                          int(cfg.get("modes") or 0), cfg.get("g_head") or "transpose",
                          bool(cfg.get("template_mask")),
                          float(cfg.get("template_gate") or 0.0),
                          g_norm=cfg.get("g_norm") or "batch")
    use_ema = ema and ckpt.get("generator_ema") is not None
    net.load_state_dict(ckpt["generator_ema"] if use_ema else ckpt["generator"])
    net.eval().requires_grad_(False)
    return RunGenerator(
        net=net, latent_dim=int(cfg["latent_dim"]), frame_shape=frame_shape,
        center=ckpt["scale"]["center"], half_range=ckpt["scale"]["half_range"],
        env_ids=env_ids, iteration=int(ckpt["iteration"]), ema=use_ema,
        label_probs=ckpt["label_probs"] if conditional else None,
    )


MAX_STRIP = 256
"""Most frames in a sweep or an interpolation (one strip: 256 frames of 64 pixels are ~17k
pixels wide)."""

MAX_SAMPLES = 4096
"""Most frames one :func:`sample` call generates (the CLI's grid holds as many; 64x64 RGB
frames take 50 MB, and their float copies several times that): draw more in several calls,
each with its own ``seed``."""


#: The largest latent value :func:`make_latents` and :func:`sweep` take:
#: latents are standard normal, and a value near float32's limit (3.4e38) overflowed in torch
#: with a traceback.
LATENT_LIMIT = 1e6


def _within_limit(value: float) -> bool:
    return math.isfinite(value) and abs(value) <= LATENT_LIMIT


def make_latents(
    n: int,
    latent_dim: int,
    seed: int = 0,
    latent: str | float = "normal",
    set_dims: Mapping[int | str, float] | None = None,
) -> torch.Tensor:
    """Latent vectors ``(n, latent_dim)``: standard normal from ``seed``, or constant.

    Args:
        latent: 'normal', 'zeros', 'ones', or a number for all-that-value vectors.
        set_dims: dimensions to overwrite, ``{dim: value}`` (keys may be strings, as parsed).

    Example:
        >>> make_latents(2, 4, latent="zeros", set_dims={"1": 3.0}).tolist()
        [[0.0, 3.0, 0.0, 0.0], [0.0, 3.0, 0.0, 0.0]]
    """
    n = whole_number(n, "the number of samples")
    latent_dim = whole_number(latent_dim, "latent_dim", low=1, error=ValueError)
    seed = whole_number(seed, "the latent seed", low=-(2**63), high=2**64 - 1)
    if set_dims is not None and not isinstance(set_dims, Mapping):
        raise ValueError(f"set_dims must be a mapping {{dim: value}}, e.g. {{0: 2.5}}, got "
                         f"{set_dims!r}")
    if latent == "normal":
        z = torch.randn(n, latent_dim, generator=torch.Generator().manual_seed(seed))
    else:
        constants = {"zeros": 0.0, "ones": 1.0}
        try:
            value = constants[latent] if isinstance(latent, str) and latent in constants \
                else float(latent)
        except (TypeError, ValueError):
            value = math.nan
        if isinstance(latent, bool) or not _within_limit(value):
            raise ValueError(f"unknown latent {latent!r}; use normal, zeros, ones or a finite "
                             f"number within ±{LATENT_LIMIT:g}")
        z = torch.full((n, latent_dim), value)
    for dim, value in (set_dims or {}).items():
        try:
            index = int(dim)
            number = float(value)
        except (TypeError, ValueError):
            index, number = -1, math.nan
        if not 0 <= index < latent_dim or str(index) != str(dim).strip() \
                or not _within_limit(number):
            raise ValueError(f"cannot set latent dimension {dim!r} to {value!r}: give a "
                             f"dimension 0 to {latent_dim - 1} (this run's latent vectors "
                             f"have {latent_dim}) and a finite value within "
                             f"±{LATENT_LIMIT:g}")
        z[:, index] = number
    return z


def sample(
    run_dir: str | os.PathLike[str],
    n: int = 64,
    seed: int = 0,
    latent: str | float = "normal",
    set_dims: Mapping[int | str, float] | None = None,
    ema: bool = True,
    env: EnvChoice = None,
) -> np.ndarray:
    """``n`` samples of the run in ``run_dir``; see :func:`make_latents` for the latents.

    ``env`` (conditional runs): draw only this env (an env id, a unique part of one, or its
    index); default: the data's env proportions (one env drawn by ``seed`` for constant
    latents).

    Example:
        >>> sample("no/such/run")  # doctest: +ELLIPSIS
        Traceback (most recent call last):
        ...
        FileNotFoundError: run directory no/such/run does not exist ...
    """
    n = whole_number(n, "the number of samples", error=ValueError)
    if n > MAX_SAMPLES:
        raise ValueError(f"n={n} samples is more than one call makes (at most {MAX_SAMPLES:,}); "
                         "draw them in several calls, each with its own seed")
    gen = load_generator(run_dir, ema)
    z = make_latents(n, gen.latent_dim, seed, latent, set_dims)
    # constant latents share one env too (the same latent gives the same image)
    labels = gen.labels(n, seed, env) if latent == "normal" else _one_label(gen, n, seed, env)
    return gen.generate(z, labels=labels)


def sweep(
    run_dir: str | os.PathLike[str],
    dim: int,
    start: float = -3.0,
    stop: float = 3.0,
    steps: int = 8,
    seed: int = 0,
    ema: bool = True,
    env: EnvChoice = None,
) -> np.ndarray:
    """Sweep latent dimension ``dim`` over ``linspace(start, stop, steps)``, the other dimensions
    fixed to one normal latent from ``seed``: ``steps`` frames, left to right (conditional
    runs: all of env ``env``, default the env drawn for ``seed``)."""
    whole_number(steps, "the sweep's steps", low=1, high=MAX_STRIP, error=ValueError)
    whole_number(dim, "the sweep's latent dimension", low=-(2**63), error=ValueError)
    for name, value in (("start", start), ("stop", stop)):
        if not (is_real(value) and _within_limit(value)):
            raise ValueError(f"the sweep's {name} must be a finite number within "
                             f"±{LATENT_LIMIT:g}, got {value!r}")
    gen = load_generator(run_dir, ema)
    if not 0 <= int(dim) < gen.latent_dim:
        raise ValueError(f"the sweep's latent dimension must be 0 to {gen.latent_dim - 1} (this "
                         f"run's latent vectors have {gen.latent_dim}), got {dim}")
    z = make_latents(1, gen.latent_dim, seed, set_dims={dim: 0.0}).repeat(steps, 1)
    z[:, int(dim)] = torch.linspace(start, stop, steps)
    return gen.generate(z, labels=_one_label(gen, steps, seed, env))


def interpolate(
    run_dir: str | os.PathLike[str],
    seed_a: int,
    seed_b: int,
    steps: int = 8,
    spherical: bool = False,
    ema: bool = True,
    env: EnvChoice = None,
) -> np.ndarray:
    """Frames along the path from seed ``seed_a``'s latent to seed ``seed_b``'s, both included.

    ``spherical=True`` follows the great circle (slerp), which keeps the latent norm typical of
    a Gaussian; the default is a straight line. Conditional runs keep one env along the path
    (``env``, default the env drawn for ``seed_a``).
    """
    whole_number(steps, "steps (both ends count)", low=2, high=MAX_STRIP, error=ValueError)
    flag(spherical, "spherical")
    gen = load_generator(run_dir, ema)
    a = make_latents(1, gen.latent_dim, seed_a)[0]
    b = make_latents(1, gen.latent_dim, seed_b)[0]
    t = torch.linspace(0.0, 1.0, steps)[:, None]
    labels = _one_label(gen, steps, seed_a, env)
    if spherical:
        omega = torch.arccos(torch.clamp(torch.dot(a / a.norm(), b / b.norm()), -1.0, 1.0))
        if omega.abs() > 1e-6:
            z = (torch.sin((1 - t) * omega) * a + torch.sin(t * omega) * b) / torch.sin(omega)
            return gen.generate(z, labels=labels)
    return gen.generate((1 - t) * a + t * b, labels=labels)


def _one_label(gen: RunGenerator, n: int, seed: int, env: EnvChoice) -> torch.Tensor | None:
    """``n`` copies of one label: ``env``'s, or one drawn from the data's proportions by
    ``seed`` (None for an unconditional run)."""
    if env is not None:
        return gen.labels(n, seed, env)
    if gen.label_probs is None:
        return None
    label = torch.multinomial(gen.label_probs.double(), 1,
                              generator=torch.Generator().manual_seed(seed))
    return label.repeat(n)
