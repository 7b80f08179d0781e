"""Train a GAN on environment frames: one configuration dataclass and one top-to-bottom loop.

:func:`train_gan` reads frames only through a :class:`~gan_envs.trainers.data.FrameSource`
(a rollout dataset, an in-memory array, or live environments) and writes into ``run_dir``:

- ``checkpoint.pt``: G, D, EMA-G, both optimisers, the RNG states and the iteration (atomically
  replaced every ``checkpoint_every`` iterations, at the end and on Ctrl-C);
- ``config.json``: the resolved configuration;
- ``log.jsonl``: one JSON object per ``log_every`` iterations (losses, D(x), D(G(z)));
- ``samples/iter_000500.png``: a grid from a fixed latent batch every ``sample_every`` iterations
  (``.npy`` for vector observations);
- ``training.mp4``: the grids as a video, at the end;
- ``tensorboard/``: scalars and grids, only when the ``tensorboard`` package is installed.

Two recipes fill in the hyperparameters left as None: ``tutorial`` (the book's Atari GAN: BCE,
Adam 1e-4, betas (0.5, 0.999), batch 16) and ``fast`` (hinge loss, spectral norm, generator EMA,
TTUR, a minibatch-std feature in D, PacGAN packs of two frames in D, a lazy R1 penalty,
class-conditional G and D on the env label when the source labels two or more envs, and for
images two modes per game with one fixed output template each). The same seed gives the same
run, also across ``resume=True``.
"""

from __future__ import annotations

import copy
import dataclasses
import io
import json
import math
import os
import signal
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from gan_envs._numbers import flag, is_real, whole_number
from gan_envs.images import MAX_FPS, make_grid, save_png, write_video
from gan_envs.outputs import is_out_of_space, truncate_lines, write_bytes_atomically

from .checkpoint_files import unreadable_checkpoint
from .data import FrameSource, env_labels, is_image_shape
from .models import (
    build_models,
    check_arch,
    check_g_norm,
    check_head,
    check_template_gate,
    check_template_mask_init,
    generator_labels,
    init_template,
    pack_frames,
    pick_modes,
    set_mode_shares,
    standing_statistics,
    template_frames,
)

__all__ = [
    "RECIPES",
    "GanConfig",
    "GanRunSummary",
    "train_gan",
    "load_checkpoint",
    "diff_augment",
    "lr_factor",
    "CHECKPOINT_NAME",
    "standing_inputs",
]

CHECKPOINT_NAME = "checkpoint.pt"
_CHECKPOINT_FORMAT = "gan-envs/gan-checkpoint"
_CHECKPOINT_VERSION = 7  # 2: conditional runs (label_probs); 3: output templates (written only
# by runs with template >= 1); 4: modes (mode_centres; only runs with modes >= 2); 5: a template
# mask (G's extra output channel; only runs with template_mask); 6: a fixed template gate (only
# runs with template_gate, which an older reader would sample without); 7: conditional
# BatchNorm in G (only runs with g_norm='conditional'); the others still
# write 2, and older files still load

# Hyperparameters a recipe fills in when the config leaves them as None, per architecture.
_TUTORIAL_DCGAN = dict(batch_size=16, loss="bce", lr_d=1e-4, lr_g=1e-4, betas=(0.5, 0.999),
                       spectral_norm=False, ema_decay=0.0, diffaugment="", d_relu_slope=0.0,
                       conditional=False, mbstd_group=0, diversity=0.0, pack=1, r1=0.0, r2=0.0,
                       template=0, modes=0, template_lr=1.0, g_head="transpose", g_norm="batch",
                       lr_decay=0.0, template_mask=False, standing_stats=0)
_TUTORIAL_MLP = dict(batch_size=64, loss="bce", lr_d=2e-4, lr_g=2e-4, betas=(0.9, 0.999),
                     spectral_norm=False, ema_decay=0.0, diffaugment="", d_relu_slope=0.2,
                     conditional=False, mbstd_group=0, diversity=0.0, pack=1, r1=0.0, r2=0.0,
                     template=0, modes=0, template_lr=1.0, g_head="transpose", g_norm="batch",
                     lr_decay=0.0, template_mask=False, standing_stats=0)
_FAST = dict(batch_size=32, loss="hinge", lr_d=4e-4, lr_g=1e-4, betas=(0.0, 0.9),
             spectral_norm=True, ema_decay=0.999, diffaugment="", d_relu_slope=0.2,
             conditional=True, mbstd_group=4, diversity=0.0, pack=2, r1=1.0, r2=0.0,
             template=1, modes=2, template_lr=0.0, g_head="transpose", g_norm="batch",
             lr_decay=0.0, template_mask=True, standing_stats=1024)
# What a recipe changes for vector frames, which have no screens to split into modes or
# templates. The diversity term left `fast` for images in session 9 (with modes and templates
# it raised the distance on three seeds); vectors, without either, keep it.
_VECTOR_RECIPES: dict[str, dict[str, Any]] = {
    "tutorial": dict(modes=0, template=0),
    "fast": dict(modes=0, template=0, diversity=1.0, template_mask=False),
}
RECIPES: dict[str, dict[str, dict[str, Any]]] = {
    "tutorial": {"dcgan": _TUTORIAL_DCGAN, "mlp": _TUTORIAL_MLP},
    "fast": {"dcgan": _FAST, "mlp": _FAST},
}
LOSSES = ("bce", "hinge", "rpgan")  # GanConfig.loss
# the most latents standing statistics take (they are drawn at once: 10^8 asked for 40 GB)
MAX_STANDING_STATS = 65_536
R1_EVERY = 16  # lazy R1 (StyleGAN2): the penalty, scaled by this, on every R1_EVERY-th D step
# Fields that may change between a run and its resumption; every other one must match.
_RESUMABLE_CHANGES = {"iterations", "sample_every", "checkpoint_every", "log_every", "video_fps"}


@dataclass
class GanConfig:
    """Arguments of :func:`train_gan`; None means "the recipe's value".

    Example:
        >>> cfg = GanConfig(recipe="tutorial").resolved((3, 64, 64))
        >>> cfg.batch_size, cfg.loss, cfg.lr_d, cfg.betas, cfg.spectral_norm
        (16, 'bce', 0.0001, (0.5, 0.999), False)
        >>> GanConfig(lr_g=3e-4).resolved((3, 64, 64)).lr_g
        0.0003
    """

    iterations: int = 10_000
    """total training iterations (one discriminator and one generator step each)"""
    recipe: str = "fast"
    """preset for the fields left as None: 'fast' or 'tutorial' (the book's Atari GAN)"""
    arch: str = "dcgan"
    """network family: 'dcgan' (images of 32, 64 or 128 pixels) or 'mlp' (any frames)"""
    batch_size: int | None = None
    """real (and fake) frames per iteration"""
    loss: str | None = None
    """adversarial loss: 'bce' (the tutorial's), 'hinge' (the fast recipe's) or 'rpgan'
    (relativistic pairing, Jolicoeur-Martineau 2018 and R3GAN: D's ``softplus(D(fake) -
    D(real))`` over the batch's pairs (real i, fake i), of one label with packs, G's
    ``softplus(D(real) - D(fake))`` with the updated D's logits on the same real inputs)"""
    lr_d: float | None = None
    """Adam learning rate of the discriminator"""
    lr_g: float | None = None
    """Adam learning rate of the generator"""
    betas: tuple[float, float] | None = None
    """Adam betas of both optimisers"""
    spectral_norm: bool | None = None
    """spectral normalisation on every discriminator layer (drops the discriminator's BatchNorm)"""
    ema_decay: float | None = None
    """decay of the generator's exponential moving average (0 disables EMA)"""
    standing_stats: int | None = None
    """latents the EMA generator runs, in BatchNorm's training mode and the training batch
    size, to measure its BatchNorm statistics before each grid and checkpoint (BigGAN's
    *standing statistics*); 0: the EMA of the raw generator's running statistics (as before
    session 18); the fast recipe uses 1024 (with an EMA), the tutorial 0; vectors' MLP has no
    BatchNorm"""
    diffaugment: str | None = None
    """differentiable augmentations for D, comma-separated from 'color', 'translation' ('' none)"""
    d_relu_slope: float | None = None
    """negative slope of the discriminator's LeakyReLU (0: ReLU, the book's DCGAN)"""
    latent_dim: int = 100
    """size of the generator's latent vector"""
    width: int = 512
    """DCGAN's widest stage, MLP's middle layer (the tutorials' 512; other layers scale with it)"""
    d_width: int | None = None
    """the discriminator's ``width`` when it should differ from the generator's (None: same)"""
    g_head: str | None = None
    """the DCGAN generator's last layer: 'transpose' (the book's 4x4 stride-2 transposed
    convolution) or 'pixelshuffle' (a 3x3 convolution to 4x the channels and a pixel shuffle,
    started as a nearest-neighbour upsampling). None: the recipe's"""
    g_norm: str | None = None
    """the DCGAN generator's normalisation: 'batch' (BatchNorm with one gain and bias per
    channel, the book's) or 'conditional' (one gain and bias per label, i.e. game, or
    (game, mode) with ``modes``: the SNGAN/BigGAN generator's conditional BatchNorm; needs a
    conditional run or modes). None: the recipe's ('batch')"""
    lr_decay: float | None = None
    """the last fraction of ``iterations`` over which both learning rates (the templates' too)
    fall linearly to zero (0: constant rates, as in the tutorials). The schedule follows
    ``iterations``: resuming with more iterations moves the decay. None: the recipe's"""
    template_mask: bool | None = None
    """give the DCGAN generator one more output channel, a mask that blends its frame with
    its template: ``t + sigmoid(a) * (G's frame - t)``, so that G can leave the template
    exactly (flat backgrounds free of speckle) by pushing one logit low instead of holding
    three channels at zero. Needs ``template >= 1``. None: the recipe's (``fast``: True where
    it has DCGAN templates, since session 12: lower distances at 15 of 15 checkpoints from
    10k to 18k iterations over three seeds, 6 of 6 against the same code without it;
    ``tutorial``: False)"""
    template_gate: float = 0.0
    """a fixed blend of G's frame with its template in place of the mask's learned one:
    ``t + template_gate * (G's frame - t)`` at every pixel (0: off). The mask seldom closes
    (docs/gan.md, *Output templates*), so what it changes may be this gate on G's deviation
    from the template, which starts at one half; this option measures that. Needs
    ``template >= 1`` and ``template_mask=False`` (the recipe's mask is dropped when this is
    set and ``template_mask`` is left unset)"""
    template_mask_init: float = 0.0
    """the template mask's starting logit (the bias of its channel): the mask starts about
    ``sigmoid(template_mask_init)`` open everywhere (-2: about 0.12, so G starts near its
    templates and opens the mask where frames differ from them; 0, the default: the layer's
    own initialisation, about one half). Needs the mask"""
    env_shares: tuple[float, ...] | None = None
    """a conditional run's share of each env (in the source's ``env_ids`` order) in training
    batches, real frames and fakes alike, e.g. ``(1, 2, 1)`` to give the second game half of
    every batch (normalised; each > 0). None: the data's proportions. Each env's frames are
    still drawn uniformly, and sampling, grids and evaluation keep the data's proportions:
    G and D are conditional, so this moves training effort between games, not the mix"""
    seed: int = 0
    """seed of weights, latents, augmentations and data draws: same seed, same run"""
    sample_every: int = 500
    """iterations between fixed-latent sample grids (and TensorBoard images)"""
    checkpoint_every: int = 1000
    """iterations between checkpoints (one is also written at the end and on Ctrl-C)"""
    log_every: int = 10
    """iterations averaged into one line of log.jsonl"""
    n_samples: int = 64
    """images in each sample grid (8 per row)"""
    video_fps: float = 5.0
    """frames per second of training.mp4"""
    channels_last: bool = False
    """run the convolutions in channels-last memory format (sometimes faster on CPU)"""
    conditional: bool | None = None
    """condition G and D on the env label of each frame (G: a label embedding concatenated to
    z; D: a projection term); fake labels are drawn in the data's proportions. None: the
    recipe's choice, used only when the source labels its frames with at least two envs"""
    bf16: bool = False
    """run G's and D's forward passes under bfloat16 autocast on the CPU (convolutions in
    bf16; weights, optimisers, BatchNorm and the losses stay float32). Faster on CPUs with
    AVX512-BF16 or AMX; a numerics change, so off by default"""
    mbstd_group: int | None = None
    """minibatch standard deviation in D (ProGAN/StyleGAN): the std of D's last features across
    groups of this many frames (a conditional D: across each game's frames of the batch), averaged
    to one extra channel before D's last layer, so that a generator ignoring its latent is easy
    to tell from the data. 0 turns it off (the tutorial recipe); the fast recipe uses groups of
    4"""
    diversity: float | None = None
    """weight of a diversity term in G's loss (DSGAN-style, capped by the data): the batch's
    latents come in pairs with the same label, and a pair whose two frames differ less than
    two random real frames of that label do (mean absolute difference, measured on the data at
    the start; per (game, mode) with ``modes``) is penalised by ``1 - difference / real
    difference``. 0 turns it off (the tutorial recipe, and the fast recipe on images since
    session 9: with modes and templates, lower distances without it); the fast recipe
    uses 1 on vectors"""
    pack: int | None = None
    """frames per discriminator input (PacGAN, Lin et al. 2018): D judges packs of this many
    frames stacked along the channels, so a generator that draws the same frame twice is told
    apart from two real frames. A conditional run sorts each real batch by game and gives the
    fakes the same labels, so a pack holds one game (but at a game boundary); the diversity
    term then pairs the first two frames of each pack. 1: one frame per input (the tutorial
    recipe); the fast recipe packs 2"""
    r1: float | None = None
    """weight gamma of the R1 penalty (Mescheder et al. 2018), ``gamma / 2 * |grad_x D(x)|^2``
    on real frames, applied lazily every 16 D steps (scaled by 16). 0 turns it off (the
    tutorial recipe); the fast recipe uses 1 (session 6: steadier checkpoints and more
    recall per seed, 4-8x, over three seeds)"""
    r2: float | None = None
    """weight gamma of the R2 penalty, ``gamma / 2 * |grad_x D(x)|^2`` on G's frames (as the
    discriminator sees them in its own step), applied with R1 every 16 D steps (scaled by 16).
    R3GAN (Huang et al. 2024) pairs R1 and R2 with the ``rpgan`` loss. 0 turns it off (both
    recipes)"""
    template: int | None = None
    """number of learned output templates per label (0: none): G adds one of its label's
    templates (picked per latent by a linear layer on its input; straight-through softmax
    gradient) to its last layer's output before the tanh, so that its convolutions draw only
    what differs from the game's usual screens. They start as the per-pixel medians of this
    many k-means clusters of each label's frames (from the start's probe draw of 4,096
    frames, which the diversity term's scale shares), so a static background starts out
    right up to the output of G's freshly initialised last layer. With ``modes`` at most 1
    (one template per mode, no choice layer). 0: G draws every pixel itself (the tutorial);
    the fast recipe uses 1 on images (with ``modes=2`` and ``template_lr=0``)"""
    template_lr: float | None = None
    """the templates' learning rate as a multiple of ``lr_g`` (0: they stay the data's
    medians; only the choice among them and the rest of G learn). None: the recipe's (fast: 0,
    tutorial: 1)"""
    modes: int | None = None
    """split each game (all frames, when unconditional) into this many modes, the k-means
    clusters of its frames in the start's probe draw (AirRaid: its purple and its grey screens),
    and condition G and D on the (game, mode) pair: a real frame's mode is its nearest cluster
    median, a generated frame's is drawn in the data's shares (from the latent's first number
    when G is given only the game, as in sampling). With ``template=1`` each mode has its own
    template, started at its cluster's median. 0: off (the tutorial recipe, and vector
    frames); the fast recipe uses 2 on images (session 7: final distances 7-12x the floor over
    three seeds, against 29-87x without)"""

    def resolved(self, frame_shape: tuple[int, ...], num_envs: int | None = None, *,
                 resuming: bool = False) -> GanConfig:
        """Return a copy with every None filled from the recipe, checked for ``frame_shape``.

        ``num_envs`` is how many envs the source labels its frames with (None: unknown, as
        for unlabelled sources); a recipe turns ``conditional`` on only when it is >= 2.
        ``resuming``: the settings come from a checkpoint, so checks added since it was
        written and that only advise (the minibatch-std grouping) are skipped.
        """
        return _typed(self)._resolve(frame_shape, num_envs, resuming)

    def _resolve(self, frame_shape: tuple[int, ...], num_envs: int | None, resuming: bool
                 ) -> GanConfig:
        """:meth:`resolved` of a config whose fields have the right types (:func:`_typed`)."""
        if self.recipe not in RECIPES:
            raise ValueError(f"unknown recipe {self.recipe!r}; choose one of {', '.join(RECIPES)}")
        check_arch(self.arch, frame_shape)
        preset = dict(RECIPES[self.recipe][self.arch])
        if not is_image_shape(frame_shape):
            preset["diffaugment"] = ""  # translation and colour need images
        if (num_envs or 0) < 2:
            if self.conditional and num_envs is not None:
                raise ValueError("conditional=True (--conditional) needs frames labelled with at "
                                 "least two envs, and this source labels "
                                 f"{'none' if num_envs == 0 else num_envs}: train on a multi-game "
                                 "dataset or pass conditional=False (--no-conditional)")
            preset["conditional"] = False
        if not is_image_shape(frame_shape):  # screens' modes and templates: images only
            preset.update(_VECTOR_RECIPES[self.recipe])
        filled = {k: preset[k] if getattr(self, k) is None else getattr(self, k) for k in preset}
        if self.template_mask is None and (self.arch != "dcgan" or not filled["template"]
                                           or self.template_gate):
            filled["template_mask"] = False  # the recipe's mask goes with its DCGAN templates,
            # and gives way to a fixed gate
        if self.standing_stats is None and _standing_stats_obstacle(
                filled["ema_decay"], self.arch, filled["batch_size"]):
            filled["standing_stats"] = 0  # the recipe measures only where it can
        if self.template_lr not in (None, preset["template_lr"]) and not filled["template"]:
            raise ValueError(f"template_lr={self.template_lr} acts only on templates: pass "
                             "template >= 1 (--template K) too, or leave template_lr unset")
        cfg = dataclasses.replace(self, **filled)
        cfg.betas = _check_betas(cfg.betas)
        if cfg.env_shares is not None:
            cfg.env_shares = _check_env_shares(cfg.env_shares, cfg.conditional, num_envs)
        cfg._check(frame_shape, resuming)
        check_g_norm(cfg.g_norm, cfg.arch,
                     generator_labels(int(num_envs or 0) if cfg.conditional else 0, cfg.modes))
        return cfg

    def _check(self, frame_shape: tuple[int, ...], resuming: bool = False) -> None:
        """Raise a one-line ValueError for a bad field; store numpy numbers as Python ones
        (``self`` is the fresh copy :meth:`resolved` made)."""
        if self.loss not in LOSSES:
            raise ValueError(f"unknown loss {self.loss!r}; choose one of "
                             + ", ".join(map(repr, LOSSES)))
        for name in ("iterations", "batch_size", "latent_dim", "width", "sample_every",
                     "checkpoint_every", "log_every", "n_samples"):
            minimum = {"iterations": 0, "width": 2}.get(name, 1)
            maximum = {"batch_size": MAX_BATCH_SIZE, "n_samples": MAX_BATCH_SIZE}.get(name)
            setattr(self, name, whole_number(getattr(self, name), _named(name), low=minimum,
                                             high=maximum, error=ValueError))
        self.seed = whole_number(self.seed, _named("seed"), high=2**63 - 1, error=ValueError)
        if self.d_width is not None:
            self.d_width = whole_number(self.d_width, "d_width (--d-width; None: the same as "
                                        "width)", low=2, error=ValueError)
        for name in ("lr_d", "lr_g", "video_fps"):  # (fps: OpenCV hangs on inf)
            value = getattr(self, name)
            if not (is_real(value) and math.isfinite(value) and value > 0):
                raise ValueError(f"{_named(name)} must be a finite number > 0, got {value!r}")
            setattr(self, name, float(value))
        if self.video_fps > MAX_FPS:
            raise ValueError(f"video_fps must be at most {MAX_FPS:g}, got {self.video_fps}")
        if not (is_real(self.d_relu_slope) and 0.0 <= self.d_relu_slope < 1.0):
            raise ValueError(f"d_relu_slope must lie in [0, 1) (0: ReLU), got "
                             f"{self.d_relu_slope!r}")
        self.d_relu_slope = float(self.d_relu_slope)
        check_head(self.g_head, self.arch)
        if self.d_width is not None and self.d_width < 2:
            raise ValueError(f"d_width must be >= 2 (or None: the same as width), got "
                             f"{self.d_width}")
        if not (self.diversity >= 0.0 and math.isfinite(self.diversity)):
            raise ValueError(f"{_named('diversity')} must be a finite weight >= 0, got "
                             f"{self.diversity}")
        if self.diversity and self.batch_size < 2:
            raise ValueError("diversity needs batch_size >= 2 (its latents come in pairs)")
        if self.pack < 1 or self.batch_size % self.pack:
            raise ValueError(f"pack must be >= 1 and divide batch_size ({self.batch_size}), "
                             f"got {self.pack}: pass a batch size that is a multiple of it, "
                             "or pack=1 (--pack 1) to judge single frames")
        if self.template < 0:
            raise ValueError(f"template must be 0 (off) or a number of templates per label, "
                             f"got {self.template}: pass template=0 (--template 0) to train "
                             "without")
        if self.modes == 1 or self.modes < 0:
            raise ValueError(f"modes must be 0 (off) or >= 2 modes per game, got {self.modes}: "
                             "pass modes=0 (--modes 0) to train without")
        for name in ("template", "modes"):
            if getattr(self, name) > MAX_TEMPLATES:
                raise ValueError(f"{name} must be at most {MAX_TEMPLATES}, got "
                                 f"{getattr(self, name)}: a cluster under 5 % of a game's "
                                 f"frames is not a kind of screen (and k-means over hundreds "
                                 f"of clusters takes minutes); pass {name}={MAX_TEMPLATES} "
                                 "or fewer")
        if self.modes and self.template > 1:
            raise ValueError(f"with modes each mode has one template, got template="
                             f"{self.template}: pass template=1 (--template 1), or modes=0 "
                             "(--modes 0) for K templates per game chosen by G")
        if self.template_mask and (self.arch != "dcgan" or not self.template):
            raise ValueError(f"template_mask blends a DCGAN generator's frames with its "
                             f"templates, got arch={self.arch!r}, template={self.template}: "
                             "pass arch='dcgan' and template >= 1 (--template 1), or "
                             "template_mask=False")
        if self.template_gate and self.arch != "dcgan":
            raise ValueError(f"template_gate blends a DCGAN generator's frames with its "
                             f"templates, got arch={self.arch!r}: pass arch='dcgan', or "
                             "template_gate=0")
        check_template_gate(self.template_gate, self.template, self.template_mask)
        check_template_mask_init(self.template_mask_init, self.template_mask)
        if not (self.template_lr >= 0.0 and math.isfinite(self.template_lr)):
            raise ValueError(f"template_lr must be a finite multiple >= 0, got "
                             f"{self.template_lr}: pass e.g. 1.0 (--template-lr 1)")
        for name in ("r1", "r2"):
            weight = getattr(self, name)
            if not (weight >= 0.0 and math.isfinite(weight)):
                raise ValueError(f"{_named(name)} must be a finite weight >= 0, got {weight}")
        if self.mbstd_group == 1 or self.mbstd_group < 0:
            raise ValueError(f"{_named('mbstd_group')} must be 0 (off) or >= 2, got "
                             f"{self.mbstd_group}")
        packs = self.batch_size // self.pack
        if self.mbstd_group and not (self.conditional or self.modes or resuming) and not any(
                packs % g == 0 for g in range(2, self.mbstd_group + 1)):
            raise ValueError(f"mbstd_group={self.mbstd_group} splits D's batch into groups of "
                             f"2 to {self.mbstd_group}, and its {packs} packs (batch_size "
                             f"{self.batch_size} / pack {self.pack}) split into none (the "
                             "feature would be a constant): pass a batch size whose packs "
                             "split evenly, or mbstd_group=0 (--mbstd-group 0)")
        if not 0.0 <= self.ema_decay < 1.0:
            raise ValueError(f"{_named('ema_decay')} must lie in [0, 1), got {self.ema_decay}")
        if self.standing_stats < 0 or self.standing_stats == 1 \
                or self.standing_stats > MAX_STANDING_STATS:
            raise ValueError(f"standing_stats must be 0 (off) or 2 to {MAX_STANDING_STATS:,} "
                             f"latents, got {self.standing_stats:,}: pass e.g. 1024 "
                             "(--standing-stats 1024)")
        obstacle = _standing_stats_obstacle(self.ema_decay, self.arch, self.batch_size)
        if self.standing_stats and obstacle:
            raise ValueError(f"standing_stats={self.standing_stats} measures the EMA "
                             f"generator's BatchNorm statistics in training batches, and "
                             f"{obstacle}, or standing_stats=0 (--standing-stats 0)")
        if not 0.0 <= self.lr_decay <= 1.0:
            raise ValueError(f"lr_decay must be a fraction of the iterations in [0, 1], got "
                             f"{self.lr_decay}: pass e.g. 0.25 (--lr-decay 0.25), or 0 for "
                             "constant learning rates")
        policies = [p.strip() for p in self.diffaugment.split(",") if p.strip()]
        self.diffaugment = ",".join(policies)  # 'color, translation' as 'color,translation'
        unknown = set(policies) - {"color", "translation"}
        if unknown:
            raise ValueError(f"unknown diffaugment {sorted(unknown)}; use 'color', 'translation' "
                             "or both, comma-separated (cutout is left out: it erases score bars)")
        if policies and not is_image_shape(frame_shape):
            raise ValueError(f"diffaugment needs image frames, got shape {frame_shape}: "
                             "pass diffaugment=''")


# the fields of each type (None: the recipe's, where the default is None)
_INT_FIELDS = ("iterations", "batch_size", "latent_dim", "width", "d_width", "seed",
               "sample_every", "checkpoint_every", "log_every", "n_samples", "mbstd_group",
               "pack", "template", "modes", "standing_stats")
_FLOAT_FIELDS = ("lr_d", "lr_g", "ema_decay", "diversity", "r1", "r2", "template_lr",
                 "lr_decay", "d_relu_slope", "template_gate", "template_mask_init", "video_fps")
_BOOL_FIELDS = ("spectral_norm", "conditional", "template_mask", "bf16", "channels_last")
_STR_FIELDS = ("recipe", "arch", "loss", "diffaugment", "g_head", "g_norm")


def _typed(config: Any) -> GanConfig:
    """A copy of ``config`` with numpy numbers as Python ones, or a one-line ValueError for a
    field of the wrong type (a string, a bool for a count, a number for a switch): these
    failed deep inside torch (``pack=2.0``, ``bf16='no'``), or trained on wrongly
    (``conditional='no'`` read as True, ``env_shares='12'`` as (1, 2)).

    Example:
        >>> _typed(GanConfig(pack=np.int64(2), spectral_norm=np.bool_(True))).pack
        2
        >>> _typed(GanConfig(bf16="no"))  # doctest: +ELLIPSIS
        Traceback (most recent call last):
        ...
        ValueError: bf16 (--bf16) must be True or False, got 'no'
    """
    if not isinstance(config, GanConfig):
        raise TypeError(f"config must be a GanConfig, got {type(config).__name__}: pass "
                        "GanConfig(...) (e.g. GanConfig(**options) for a dict)")
    values: dict[str, Any] = {}
    for name in _INT_FIELDS:
        value = getattr(config, name)
        if value is not None:
            values[name] = whole_number(value, _named(name), low=-(2**63), error=ValueError)
    for name in _FLOAT_FIELDS:
        value = getattr(config, name)
        if value is not None:
            if not is_real(value):
                raise ValueError(f"{_named(name)} must be a number, got {value!r}")
            values[name] = float(value)
    for name in _BOOL_FIELDS:
        value = getattr(config, name)
        if value is not None:
            values[name] = flag(value, _named(name))
    for name in _STR_FIELDS:
        value = getattr(config, name)
        if value is not None and not isinstance(value, str):
            raise ValueError(f"{_named(name)} must be a string, got {value!r}")
    shares = config.env_shares
    if shares is not None:
        if isinstance(shares, (str, bytes)) or not hasattr(shares, "__iter__") \
                or not all(is_real(v) for v in shares):
            raise ValueError(f"env_shares (--env-shares) must be a sequence of numbers, one "
                             f"per env, e.g. (1, 2, 1), got {shares!r}")
        values["env_shares"] = tuple(float(v) for v in shares)
    return dataclasses.replace(config, **values)


def _check_betas(betas: Any) -> tuple[float, float]:
    """Adam's ``(beta1, beta2)``, each in [0, 1), or a one-line error."""
    try:
        b1, b2 = (float(b) for b in betas)
    except (TypeError, ValueError):
        raise ValueError(f"betas must be a pair (beta1, beta2) of numbers, got {betas!r}") \
            from None
    if not (0.0 <= b1 < 1.0 and 0.0 <= b2 < 1.0):
        raise ValueError(f"betas must each lie in [0, 1), got {betas!r}")
    return b1, b2


def _standing_stats_obstacle(ema_decay: float, arch: str, batch_size: int) -> str | None:
    """Why standing statistics cannot be measured for these settings, with the fix (None: they
    can); the recipe leaves them off there and an explicit request is an error."""
    if not ema_decay:
        return "this run has no EMA: pass ema_decay > 0 (--ema 0.999)"
    if arch != "dcgan":
        return f"the {arch} generator has none: pass arch='dcgan'"
    if batch_size < 2:
        return (f"batch_size={batch_size} is too small for BatchNorm's training mode: pass "
                "--batch-size 2 or more")
    return None


def _check_env_shares(shares: Sequence[float], conditional: bool, num_envs: int | None
                      ) -> tuple[float, ...]:
    """``shares`` normalised to sum to 1, or a one-line error naming the fix."""
    values = tuple(float(v) for v in shares)
    if not conditional:
        raise ValueError("env_shares (--env-shares) needs a conditional run on frames "
                         "labelled with at least two envs: pass conditional=True "
                         "(--conditional) and a multi-game source, or leave env_shares unset")
    if num_envs is not None and len(values) != num_envs:
        raise ValueError(f"env_shares gives {len(values)} shares for a source with {num_envs} "
                         f"envs: pass one share per env, in the order of the source's env_ids "
                         f"(gan-envs info DATA.h5 lists them)")
    if not all(v > 0 and math.isfinite(v) for v in values):
        raise ValueError(f"env_shares must be finite and > 0 (a game left out of training "
                         f"would still be sampled), got {list(values)}")
    total = sum(values)
    if abs(total - 1.0) < 1e-12:  # already normalised (a resumed run's): keep them exact
        return values
    return tuple(v / total for v in values)


@dataclass
class GanRunSummary:
    """What :func:`train_gan` did."""

    run_dir: Path
    """the run directory"""
    start_iteration: int
    """iteration the run started from (0, or the checkpoint's when resumed)"""
    iterations: int
    """iteration reached"""
    seconds: float
    """wall time of the training loop"""
    iterations_per_second: float
    """iterations run in this call per second of wall time"""
    metrics: dict[str, float] = field(default_factory=dict)
    """means of the last logged window: loss_d, loss_g, d_real, d_fake"""
    checkpoint: Path | None = None
    """the checkpoint written"""
    last_grid: Path | None = None
    """the last sample grid written"""
    video: Path | None = None
    """training.mp4, when grids were written"""


# ---------------------------------------------------------------- augmentation
def diff_augment(x: torch.Tensor, policy: str, generator: torch.Generator) -> torch.Tensor:
    """DiffAugment (Zhao et al., 2020) for images in ``[-1, 1]``: 'color' and/or 'translation'.

    Colour jitters brightness, saturation and contrast per image; translation shifts each image
    by up to 1/8 of its size, filling with black (-1). No cutout: it erases Atari score bars.

    Example:
        >>> x = torch.zeros(2, 3, 16, 16)
        >>> tuple(diff_augment(x, "color,translation", torch.Generator().manual_seed(0)).shape)
        (2, 3, 16, 16)
    """
    if not policy:
        return x
    n = x.shape[0]
    if "color" in policy:
        x = x + (torch.rand(n, 1, 1, 1, generator=generator) - 0.5)
        mean = x.mean(dim=1, keepdim=True)
        x = (x - mean) * (torch.rand(n, 1, 1, 1, generator=generator) * 2.0) + mean
        mean = x.mean(dim=(1, 2, 3), keepdim=True)
        x = (x - mean) * (torch.rand(n, 1, 1, 1, generator=generator) + 0.5) + mean
    if "translation" in policy:
        _, _, height, width = x.shape
        sh, sw = int(height * 0.125 + 0.5), int(width * 0.125 + 0.5)
        dy = torch.randint(-sh, sh + 1, (n, 1, 1), generator=generator)
        dx = torch.randint(-sw, sw + 1, (n, 1, 1), generator=generator)
        rows = torch.arange(height).view(1, height, 1) + dy + sh
        cols = torch.arange(width).view(1, 1, width) + dx + sw
        padded = F.pad(x, [sw, sw, sh, sh], value=-1.0).permute(0, 2, 3, 1)
        x = padded[torch.arange(n).view(n, 1, 1), rows, cols].permute(0, 3, 1, 2)
    return x


# ---------------------------------------------------------------- losses
def _loss_d(loss: str, real: torch.Tensor, fake: torch.Tensor) -> torch.Tensor:
    """D's loss from its logits on real and fake inputs (``real[i]`` pairs with ``fake[i]``).

    Example:
        >>> real, fake = torch.tensor([2.0, 0.5]), torch.tensor([-1.0, 0.5])
        >>> round(_loss_d("hinge", real, fake).item(), 4)  # (0 + .5) / 2 + (0 + 1.5) / 2
        1.0
        >>> round(_loss_d("rpgan", real, fake).item(), 4)  # softplus(-3), softplus(0)
        0.3709
    """
    if loss == "hinge":
        return F.relu(1.0 - real).mean() + F.relu(1.0 + fake).mean()
    if loss == "rpgan":  # relativistic pairing: each real input against its paired fake
        return F.softplus(fake - real).mean()
    # the tutorial's BCELoss(D(x), 1) + BCELoss(D(G(z)), 0), on logits
    return (F.binary_cross_entropy_with_logits(real, torch.ones_like(real))
            + F.binary_cross_entropy_with_logits(fake, torch.zeros_like(fake)))


def _loss_g(loss: str, fake: torch.Tensor, real: torch.Tensor | None = None) -> torch.Tensor:
    """G's loss from D's logits on its fakes (``rpgan`` also needs D's logits on the paired
    real inputs, a constant for G)."""
    if loss == "hinge":
        return -fake.mean()
    if loss == "rpgan":
        if real is None:
            raise ValueError("the rpgan loss pairs each fake with a real input: pass real")
        return F.softplus(real - fake).mean()
    return F.binary_cross_entropy_with_logits(fake, torch.ones_like(fake))


@torch.no_grad()
def _real_pair_distances(frames: np.ndarray, labels: np.ndarray | None, num_classes: int,
                         to_input: Callable[[np.ndarray], torch.Tensor],
                         fallback: torch.Tensor | None = None) -> torch.Tensor:
    """Mean absolute difference of same-label frame pairs of a random draw, per label.

    The scale that :func:`_diversity_penalty` asks of generated pairs (index 0 when unlabelled).
    Frame ``i`` of a label pairs with frame ``i + n // 2``; pairs are scored in blocks, so memory
    stays small for large frames. A label with fewer than two frames in the draw (a rare game,
    or one the file holds no episode of) gets ``fallback[label]``, or without one the scale of
    the whole draw.
    """

    def spread(group: np.ndarray) -> torch.Tensor:
        half = len(group) // 2
        total = 0.0
        for first in range(0, half, 256):
            a = to_input(group[first:min(first + 256, half)]).float()
            b = to_input(group[half + first:half + min(first + 256, half)]).float()
            total += float((a - b).abs().flatten(1).mean(1).sum())
        return torch.tensor(total / half)

    if len(frames) < 2:
        raise ValueError("diversity needs at least two real frames")
    if labels is None:
        return spread(frames).clamp_min(1e-6).reshape(1)
    groups = [frames[labels == k] for k in range(num_classes)]
    if fallback is None and any(len(g) < 2 for g in groups):  # only when needed
        fallback = spread(frames).expand(num_classes)
    return torch.stack([spread(g) if len(g) >= 2 else fallback[k]
                        for k, g in enumerate(groups)]).clamp_min(1e-6)


def _diversity_penalty(fake: torch.Tensor, scale: torch.Tensor,
                       labels: torch.Tensor | None = None, pack: int = 1) -> torch.Tensor:
    """Mean over pairs of same-label frames of ``relu(1 - distance / scale[label])``.

    The pairs are (``fake[i]``, ``fake[i + half]``), or with ``pack >= 2`` the first two frames
    of each pack (a pack straddling two labels is skipped). ``scale`` holds one value per label
    (a single value when ``labels`` is None). 0 once every pair differs as much as real frames
    do; 1 for a generator that ignores z.
    """
    if pack > 1:
        first, second = fake[0::pack], fake[1::pack]
        keep = None if labels is None else labels[0::pack] == labels[1::pack]
        pair_labels = None if labels is None else labels[0::pack]
    else:
        half = len(fake) // 2
        first, second, keep = fake[:half], fake[half:2 * half], None
        pair_labels = None if labels is None else labels[:half]
    distance = (first - second).abs().flatten(1).mean(1)
    per_pair = torch.relu(1.0 - distance / (scale if pair_labels is None else scale[pair_labels]))
    if keep is None:
        return per_pair.mean()
    return per_pair[keep].mean() if bool(keep.any()) else per_pair.sum() * 0.0


def _template_start(frames: torch.Tensor, labels: np.ndarray | None, num_classes: int,
                    templates: int, seed: int) -> torch.Tensor:
    """Each label's ``templates`` typical frames ``(num_classes or 1, templates, ...)``.

    A label with no frames in ``frames`` (a game the draw missed) gets the whole draw's."""
    if not num_classes:
        return template_frames(frames, templates, seed=seed)[None]
    pooled = None
    per_label = []
    for k in range(num_classes):
        own = torch.from_numpy(labels == k)
        if bool(own.any()):
            per_label.append(template_frames(frames[own], templates, seed=seed))
        else:
            pooled = template_frames(frames, templates, seed=seed) if pooled is None else pooled
            per_label.append(pooled)
    return torch.stack(per_label)


def _nearest_modes(x: torch.Tensor, labels: torch.Tensor | None, centres: torch.Tensor
                   ) -> torch.Tensor:
    """Each frame's mode: the index of its label's nearest centre (squared distance).

    ``centres``: ``(num_classes or 1, modes, ...)`` in the model's input scale. Computed as
    ``|c|^2 - 2 x.c`` (``|x|^2`` is the same for every centre of a frame) with one float64
    matmul against all centres, then read at the frame's own label: ~1 ms for a batch of
    32 at 64x64, where subtracting every centre from every frame took 6-9 ms (~9 % of a
    training step).

    Example:
        >>> centres = torch.tensor([[[0.0, 0.0], [1.0, 1.0]]])
        >>> _nearest_modes(torch.tensor([[0.9, 0.8], [0.1, 0.0]]), None, centres).tolist()
        [1, 0]
    """
    flat = centres.detach().reshape(centres.shape[0], centres.shape[1], -1).double()
    frames = x.detach().reshape(len(x), -1).double()
    rows = torch.zeros(len(x), dtype=torch.long) if labels is None \
        else labels.reshape(-1).long()
    dots = (frames @ flat.reshape(-1, flat.shape[2]).T).view(len(x), *flat.shape[:2])
    distances = flat.square().sum(2)[rows] - 2 * dots[torch.arange(len(x)), rows]
    return distances.argmin(1)


def _diverged(metrics: dict[str, float], iteration: int, ckpt_path: Path, saved_at: int) -> str:
    """The one line for a run whose losses stopped being finite (grids of NaN drew black)."""
    bad = ", ".join(f"{k}={v}" for k, v in metrics.items() if not math.isfinite(v))
    kept = (f"{ckpt_path} keeps iteration {saved_at}, and resuming repeats the same steps"
            if saved_at >= 0 else "no checkpoint was written yet")
    return (f"training diverged at iteration {iteration} ({bad}); {kept}: train a new run "
            "with lower learning rates (--lr-d, --lr-g) or another seed")


def _r1_penalty(grad: torch.Tensor, pack: int = 1) -> torch.Tensor:
    """``|grad_x D(x)|^2`` per D input (a pack of ``pack`` frames), averaged over the inputs.

    Example:
        >>> _r1_penalty(torch.ones(4, 1, 1, 1), pack=2).item()  # two packs of two ones
        2.0
    """
    return pack_frames(grad.float(), pack).square().flatten(1).sum(1).mean()


def standing_inputs(seed: int, n: int, latent_dim: int, label_shares: torch.Tensor | None = None
                    ) -> tuple[torch.Tensor, torch.Tensor | None]:
    """The fixed latents (and, with ``label_shares``, labels drawn in those shares) on which a
    run of training seed ``seed`` measures its EMA generator's standing statistics
    (``standing_stats=n``): the same for every grid and checkpoint of the run.

    Example:
        >>> z, y = standing_inputs(0, 4, 8, torch.tensor([0.0, 1.0]))
        >>> tuple(z.shape), y.tolist()
        ((4, 8), [1, 1, 1, 1])
    """
    rng = torch.Generator().manual_seed(seed + 5)  # a stream of its own
    latents = torch.randn(n, latent_dim, generator=rng)
    if label_shares is None or n == 0:
        return latents, None
    return latents, torch.multinomial(label_shares.float(), n, replacement=True, generator=rng)


def lr_factor(iteration: int, iterations: int, decay: float) -> float:
    """The learning rates' multiplier at ``iteration`` (1-based) of ``iterations``: 1, then
    falling linearly over the last ``decay`` fraction so that the last step still moves.

    Example:
        >>> [round(lr_factor(t, 8, 0.5), 3) for t in range(1, 9)]
        [1.0, 1.0, 1.0, 1.0, 1.0, 0.75, 0.5, 0.25]
    """
    span = decay * iterations
    if span <= 0:
        return 1.0
    return min(1.0, (iterations - iteration + 1) / span)


def _ema_update(ema: nn.Module, model: nn.Module, decay: float) -> None:
    for p_ema, p in zip(ema.parameters(), model.parameters(), strict=True):
        p_ema.lerp_(p, 1.0 - decay)
    for b_ema, b in zip(ema.buffers(), model.buffers(), strict=True):
        if b.is_floating_point():
            b_ema.lerp_(b, 1.0 - decay)
        else:
            b_ema.copy_(b)


# ---------------------------------------------------------------- checkpoints
def _log_iteration(line: str) -> float:
    """The iteration of one ``log.jsonl`` line; infinity for a line that is not a log record
    (empty, or cut short by a kill)."""
    try:
        return float(json.loads(line)["iteration"])
    except (ValueError, KeyError, TypeError):
        return math.inf


MAX_BATCH_SIZE = 4096
"""Largest ``batch_size``: ``--batch-size 100000`` at width 512 took the machine's 24 GiB for
one iteration; 4,096 frames of 64x64 need a few GiB. Also the largest ``n_samples`` (a grid is
one generator pass: 100,000 ran out of memory after the first iteration's work)."""

#: the ``gan-envs train gan`` option of each GanConfig field a user may type wrong
_OPTIONS = {"ema_decay": "--ema", **{name: "--" + name.replace("_", "-") for name in (
    "iterations", "batch_size", "width", "sample_every", "checkpoint_every", "seed", "lr_d",
    "lr_g", "diversity", "r1", "r2", "mbstd_group", "recipe", "arch", "loss", "diffaugment",
    "g_head", "g_norm", "pack", "template", "modes", "standing_stats", "template_lr",
    "lr_decay", "template_gate", "template_mask_init", "spectral_norm", "conditional",
    "template_mask", "bf16", "channels_last", "d_width", "env_shares")}}


def _named(field: str) -> str:
    """A field as errors name it: with its command-line option where it has one.

    Example:
        >>> _named("lr_d"), _named("latent_dim")
        ('lr_d (--lr-d)', 'latent_dim')
    """
    option = _OPTIONS.get(field)
    return field if option is None else f"{field} ({option})"


MAX_TEMPLATES = 16
"""Most templates or modes per game: k-means clusters under 5 % of the frames (the
``min_share`` of :func:`~gan_envs.trainers.models.template_frames`) give the overall median
instead, so more than 20 add nothing; ``--modes 500`` ran for minutes in k-means seeding."""


def load_checkpoint(run_dir: str | os.PathLike[str]) -> dict[str, Any]:
    """Load ``run_dir/checkpoint.pt`` (on the CPU), with one-line errors for a missing run.

    Example:
        >>> load_checkpoint("no/such/run")  # doctest: +ELLIPSIS
        Traceback (most recent call last):
        ...
        FileNotFoundError: run directory no/such/run does not exist (train one with ...)
    """
    if not isinstance(run_dir, (str, os.PathLike)):
        raise TypeError(f"run_dir must be a path (str or pathlib.Path), got "
                        f"{type(run_dir).__name__}")
    run_dir = Path(run_dir)
    path = run_dir / CHECKPOINT_NAME
    if run_dir.is_file():
        hint = (f"pass its folder, {run_dir.parent}" if run_dir.name == CHECKPOINT_NAME
                else "pass the folder a GAN run was trained into (--out)")
        raise ValueError(f"{run_dir} is a file, and a run is a folder: {hint}")
    if not run_dir.is_dir():
        raise FileNotFoundError(f"run directory {run_dir} does not exist "
                                f"(train one with `gan-envs train gan DATA.h5 --out {run_dir}`)")
    if not path.is_file() and (run_dir / "vae.pt").is_file():
        raise ValueError(f"{run_dir} holds a world-model run (vae.pt), not a GAN run: use "
                         "gan-envs dream on it, or pass a GAN run directory")
    if not path.is_file():
        raise FileNotFoundError(f"{run_dir} has no {CHECKPOINT_NAME} (the run has not reached "
                                "its first checkpoint; train it or pass another run directory)")
    try:
        ckpt = torch.load(path, map_location="cpu")
    except Exception as exc:  # a truncated or foreign file
        raise ValueError(unreadable_checkpoint(path, exc)) from None
    if not isinstance(ckpt, dict) or ckpt.get("format") != _CHECKPOINT_FORMAT:
        raise ValueError(f"{path} is not a gan-envs GAN checkpoint")
    version = ckpt.get("version", 0)
    if isinstance(version, bool) or not isinstance(version, int):
        raise ValueError(f"{path} is damaged: its version is {version!r}, not a whole number; "
                         "copy it again, or train the run again")
    if version > _CHECKPOINT_VERSION:
        raise ValueError(f"{path}: checkpoint version {ckpt['version']} is newer than this "
                         f"gan-envs understands ({_CHECKPOINT_VERSION}); upgrade gan-envs")
    return ckpt


def _env_proportions(source: Any, num_classes: int, seed: int) -> np.ndarray:
    """Share of each env among the source's frames (exact counts when the source has them,
    else from 4,096 labelled draws)."""
    counts = getattr(source, "env_counts", None)
    if counts is not None:
        counts = np.asarray(counts(), dtype=np.float64)
    else:
        _, env = source.sample_frames_with_env(4096, np.random.default_rng(seed + 3))
        counts = np.bincount(np.asarray(env), minlength=num_classes).astype(np.float64)
    counts = counts[:num_classes]
    if counts.sum() <= 0:
        raise ValueError("the source labels no frames with its envs; pass conditional=False")
    return counts / counts.sum()


def _checked_frames(source: Any, frames: np.ndarray, frame_shape: tuple[int, ...],
                    images: bool) -> np.ndarray:
    """``frames`` if they keep the frame source's contract (``frame_shape``, uint8 images,
    finite vectors), else a one-line error naming the source: a source that breaks it would
    fail deep inside torch, or train on wrongly scaled frames."""
    name = getattr(source, "path", None) or type(source).__name__
    if frames.shape[1:] != frame_shape:
        raise ValueError(f"{name} promised frames of shape {frame_shape} (its frame_shape) and "
                         f"gave {frames.shape[1:]}; make sample_frames return (n, *frame_shape)")
    if images and frames.dtype != np.uint8:
        raise ValueError(f"{name} gave {frames.dtype} image frames; the trainer reads images "
                         "as uint8 0-255 (x / 127.5 - 1): scale them to uint8 first")
    if not images and (frames.dtype.kind not in "biuf" or not np.isfinite(frames).all()):
        raise ValueError(f"{name} gave vector frames that are not all finite numbers "
                         f"({frames.dtype}); drop or fix the NaN/inf frames")
    return frames


def _draw_in_shares(draw_labelled: Callable[[int, np.random.Generator], tuple[Any, Any]],
                    n: int, rng: np.random.Generator, keep_prob: np.ndarray,
                    proportions: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``n`` frames and labels from ``draw_labelled`` (uniform over the data, whose envs come
    in ``proportions``), each drawn frame kept with ``keep_prob[label]``: the kept frames'
    envs come in shares proportional to ``proportions * keep_prob``, and within an env every
    frame is equally likely. It draws about ``n / sum(proportions * keep_prob)`` frames: 1.5n
    for (1, 2, 1) on three equal games, more for shares far from a lopsided dataset's."""
    kept_frames, kept_labels, have = [], [], 0
    accepted = float((proportions * keep_prob).sum())  # expected share of a draw kept
    while have < n:
        frames, labels = draw_labelled(math.ceil(1.25 * (n - have) / accepted) + 1, rng)
        labels = np.asarray(labels)
        keep = rng.random(len(labels)) < keep_prob[labels]
        kept_frames.append(np.asarray(frames)[keep])
        kept_labels.append(labels[keep])
        have += int(keep.sum())
    return np.concatenate(kept_frames)[:n], np.concatenate(kept_labels)[:n]


def _check_clusters(asked: GanConfig, cfg: GanConfig, source: Any, env_ids: list[str]
                    ) -> None:
    """A ``modes`` or ``template`` count the caller chose that is more than the frames of a
    game (``env_ids``: a conditional run's games; none: all frames together) is one line: the
    clusters it cannot fill would all be copies of the game's median frame."""
    name = "modes" if cfg.modes else "template"
    k = getattr(cfg, name)
    if k < 2 or getattr(asked, name) is None:  # the recipe's counts fit any data
        return
    if env_ids:
        counts = getattr(source, "env_counts", None)
        if counts is None:
            return
        have = [(e, int(c)) for e, c in zip(env_ids, np.asarray(counts()), strict=False) if c > 0]
    elif hasattr(source, "__len__"):
        have = [("the data", len(source))]
    else:  # live environments: no end to their frames
        return
    if not have:
        return
    game, frames = min(have, key=lambda pair: pair[1])
    if frames < k:
        whose = "each game's frames" if env_ids else "the frames"
        raise ValueError(f"{name}={k} splits {whose} into {k} clusters, and {game} has "
                         f"{frames} frame{'s' if frames != 1 else ''}: pass {name}={frames} or "
                         f"fewer (--{name} {frames}), or collect more frames")


def _atomic_save(obj: Any, path: Path) -> None:
    """``torch.save`` to ``path`` whole or not at all: serialised in memory, then written
    through a temporary file. A full disk is one line naming the file, and the previous
    checkpoint stays (torch's own writer raised two chained tracebacks and left a ``.tmp``)."""
    buffer = io.BytesIO()
    torch.save(obj, buffer)
    try:
        write_bytes_atomically(path, buffer.getbuffer())
    except OSError as error:
        full = is_out_of_space(error)
        raise OSError(f"{path}: saving the checkpoint failed"
                      + (f", the disk is full ({os.strerror(error.errno)}); free space and "
                         "rerun with --resume (the previous checkpoint is kept)" if full else
                         f" ({error})")) from None


def _config_for_resume(config: GanConfig, saved: dict[str, Any], path: Path) -> GanConfig:
    # runs saved before these fields existed were unconditional float32 runs without mbstd
    saved_cfg = GanConfig(**{"conditional": False, "bf16": False, "mbstd_group": 0,
                             "diversity": 0.0, "pack": 1, "r1": 0.0, "r2": 0.0,
                             "template": 0,
                             "modes": 0, "g_head": "transpose", "lr_decay": 0.0,
                             "template_mask": False, "template_gate": 0.0,
                             "template_mask_init": 0.0, "standing_stats": 0,
                             "g_norm": "batch",
                             **saved,
                             "betas": tuple(saved["betas"])})
    if saved_cfg.env_shares is not None:
        saved_cfg.env_shares = tuple(saved_cfg.env_shares)
    if not saved_cfg.template:  # the rate of no templates (session 6 saved 1.0 with none)
        saved_cfg.template_lr = None
    asked = dataclasses.asdict(config)
    if asked["env_shares"] is not None and saved_cfg.env_shares is not None:  # as normalised
        total = sum(float(v) for v in asked["env_shares"])
        if total > 0 and all(math.isclose(float(a) / total, b) for a, b in
                             zip(asked["env_shares"], saved_cfg.env_shares, strict=False)) \
                and len(asked["env_shares"]) == len(saved_cfg.env_shares):
            asked["env_shares"] = saved_cfg.env_shares
    defaults = dataclasses.asdict(GanConfig())
    clash = [k for k, v in asked.items() if k not in _RESUMABLE_CHANGES and v is not None
             and v != defaults[k] and v != dataclasses.asdict(saved_cfg)[k]
             and not (k == "betas" and tuple(v) == saved_cfg.betas)]
    if clash:
        raise ValueError(f"{path} was trained with other {', '.join(clash)}; resume with the "
                         "same settings (only iterations and the output intervals may change)")
    # an interval or total left at its default keeps the run's own (plain --resume continues)
    changes = {k: asked[k] for k in _RESUMABLE_CHANGES if asked[k] != defaults[k]}
    return dataclasses.replace(saved_cfg, **changes)


class _SigintToFlag:
    """While active (main thread only), the first Ctrl-C sets ``requested``; a second one raises."""

    def __init__(self) -> None:
        self.requested = False
        self._previous: Any = None

    def _handle(self, signum: int, frame: Any) -> None:
        if self.requested:
            raise KeyboardInterrupt
        self.requested = True

    def __enter__(self) -> _SigintToFlag:
        if threading.current_thread() is threading.main_thread():
            self._previous = signal.signal(signal.SIGINT, self._handle)
        return self

    def __exit__(self, *exc: Any) -> None:
        if self._previous is not None:
            signal.signal(signal.SIGINT, self._previous)


def _open_tensorboard(run_dir: Path, start: int) -> Any:
    try:
        from torch.utils.tensorboard import SummaryWriter
    except ImportError:  # the optional `tensorboard` extra is not installed
        return None
    return SummaryWriter(log_dir=str(run_dir / "tensorboard"), purge_step=start or None)


# ---------------------------------------------------------------- training
def train_gan(
    config: GanConfig,
    source: FrameSource,
    run_dir: str | os.PathLike[str],
    *,
    resume: bool = False,
    progress: Callable[[int, dict[str, float]], None] | None = None,
) -> GanRunSummary:
    """Train a GAN on frames from ``source``, writing checkpoints, grids and logs in ``run_dir``.

    Args:
        config: the arguments; None fields come from ``config.recipe``.
        source: where real frames come from (``frame_shape``, ``sample_frames(n, rng)``).
        run_dir: output folder; created when missing; must not hold a run unless ``resume``.
        resume: continue the run in ``run_dir`` up to ``config.iterations``; for the same seed
            and a recorded source the result equals an uninterrupted run's.
        progress: called as ``progress(iteration, metrics)`` after every iteration (the CLI's
            progress bar); metrics has loss_d, loss_g, d_real and d_fake (D's mean sigmoid
            output on real and generated frames). An exception it raises stops the run after a
            checkpoint of that iteration (resume continues it, as after Ctrl-C).

    Returns:
        a :class:`GanRunSummary`.

    Raises:
        KeyboardInterrupt: after writing a checkpoint of the last completed iteration.

    Example:
        >>> import numpy as np, tempfile
        >>> from gan_envs.trainers.data import ArrayFrameSource
        >>> frames = np.random.default_rng(0).integers(0, 256, (32, 3, 32, 32), dtype=np.uint8)
        >>> with tempfile.TemporaryDirectory() as run:
        ...     config = GanConfig(iterations=2, batch_size=4)
        ...     summary = train_gan(config, ArrayFrameSource(frames), run)
        ...     summary.iterations, summary.checkpoint.name
        (2, 'checkpoint.pt')
    """
    config = _typed(config)  # (before a resume compares it with the saved one)
    if not hasattr(source, "frame_shape") or not callable(getattr(source, "sample_frames", None)):
        raise TypeError(f"source must be a FrameSource (frame_shape and sample_frames(n, rng)), "
                        f"got {type(source).__name__}: wrap frames in memory in "
                        "ArrayFrameSource(frames), a dataset in DatasetFrameSource(path)")
    if progress is not None and not callable(progress):
        raise TypeError(f"progress must be a function progress(iteration, metrics) or None, "
                        f"got {type(progress).__name__}")
    flag(resume, "resume", error=TypeError)
    run_dir = Path(run_dir)
    ckpt_path = run_dir / CHECKPOINT_NAME
    if run_dir.exists() and not run_dir.is_dir():
        raise FileExistsError(f"run_dir {run_dir} is a file, not a folder: pass the folder to "
                              "write the run in (--out)")
    frame_shape = tuple(int(s) for s in source.frame_shape)
    saved: dict[str, Any] | None = None
    if resume:
        saved = load_checkpoint(run_dir)
        if tuple(saved["frame_shape"]) != frame_shape:
            raise ValueError(f"{ckpt_path} was trained on frames {tuple(saved['frame_shape'])}, "
                             f"this source gives {frame_shape}")
        config = _config_for_resume(config, saved["config"], ckpt_path)
    elif ckpt_path.exists():
        raise FileExistsError(f"{run_dir} already holds a run ({CHECKPOINT_NAME}): resume it "
                              "(--resume) or choose another output directory")
    elif (run_dir / "vae.pt").exists():
        raise FileExistsError(f"{run_dir} holds a world-model run (vae.pt); train the GAN into "
                              "another --out directory")
    env_ids = env_labels(source)
    if saved is not None and saved.get("label_probs") is not None \
            and list(saved.get("env_ids") or []) != (env_ids or []):  # (before the conditional
        # check, which would advise conditional=False, a setting a resume cannot change)
        raise ValueError(f"{ckpt_path} is conditional on the envs {saved.get('env_ids')}, this "
                         f"source labels {env_ids or []}: resume on the same dataset")
    labelled = len(getattr(source, "env_ids", None) or []) \
        if hasattr(source, "sample_frames_with_env") else 0  # (what a refusal names)
    cfg = config.resolved(frame_shape, len(env_ids) if env_ids else labelled,
                          resuming=saved is not None)
    if saved is not None and cfg.iterations < int(saved["iteration"]):  # (before config.json)
        raise ValueError(f"{ckpt_path} is at iteration {int(saved['iteration'])} already, past "
                         f"iterations={cfg.iterations}: pass more iterations to train on "
                         "(sample or evaluate the run as it is)")
    num_classes = len(env_ids) if cfg.conditional and env_ids else 0
    if saved is not None and num_classes and list(saved.get("env_ids", [])) != env_ids:
        raise ValueError(f"{ckpt_path} is conditional on the envs {saved.get('env_ids')}, this "
                         f"source labels {env_ids}: resume on the same dataset")
    trained_on = list(saved.get("env_ids") or []) if saved is not None else []
    source_ids = list(getattr(source, "env_ids", None) or [])
    if trained_on and source_ids and sorted(trained_on) != sorted(source_ids):  # (any order:
        # an unconditional run does not depend on it; a conditional one is checked above)
        raise ValueError(f"{ckpt_path} was trained on {trained_on}, this source holds "
                         f"{source_ids}: resume on the same games, or train a new run into "
                         "another --out")
    images = is_image_shape(frame_shape)
    policy = cfg.diffaugment
    label_probs = torch.zeros(0)  # a conditional run's env proportions in the data
    if num_classes and saved is None:
        label_probs = torch.as_tensor(_env_proportions(source, num_classes, cfg.seed),
                                      dtype=torch.float64)
        missing = [env_ids[i] for i in range(num_classes) if label_probs[i] <= 0]
        if missing and cfg.env_shares is not None:
            raise ValueError(f"env_shares asks for frames of {missing}, which the source has "
                             "none of: collect some, or train on a source without them")
    if saved is None and images:
        _check_clusters(config, cfg, source, env_ids if num_classes else [])
    run_dir.mkdir(parents=True, exist_ok=True)
    write_bytes_atomically(run_dir / "config.json",
                           (json.dumps(dataclasses.asdict(cfg), indent=2) + "\n").encode())

    # ---- networks, optimisers, random streams (the caller's global torch RNG is left alone)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(cfg.seed)
        generator, discriminator = build_models(cfg.arch, frame_shape, cfg.latent_dim,
                                                cfg.spectral_norm, cfg.d_relu_slope, cfg.width,
                                                num_classes, cfg.mbstd_group, cfg.d_width,
                                                cfg.pack, cfg.template, cfg.modes,
                                                cfg.g_head, cfg.template_mask,
                                                cfg.template_gate,
                                                cfg.template_mask_init, cfg.g_norm)
    memory_format = torch.channels_last if cfg.channels_last and images else None
    if memory_format is not None:
        generator.to(memory_format=memory_format)
        discriminator.to(memory_format=memory_format)
    ema = copy.deepcopy(generator).eval().requires_grad_(False) if cfg.ema_decay > 0 else None
    g_groups = [{"params": [p for n, p in generator.named_parameters() if n != "template"]}]
    if cfg.template:  # the templates learn at their own rate
        g_groups.append({"params": [generator.template], "lr": cfg.lr_g * cfg.template_lr})
    # fused: one kernel for all of a group's parameters (~5x cheaper than the per-parameter
    # loop PyTorch defaults to on the CPU, ~4 % of a width-128 step; same update rule; CPU
    # support since torch 2.4, hence the extras' floor)
    opt_g = torch.optim.Adam(g_groups, lr=cfg.lr_g, betas=cfg.betas, fused=True)
    opt_d = torch.optim.Adam(discriminator.parameters(), lr=cfg.lr_d, betas=cfg.betas,
                             fused=True)
    # every group's rate before any decay (a resumed optimiser holds the decayed ones)
    base_lrs = [group["lr"] for group in opt_g.param_groups + opt_d.param_groups]
    noise = torch.Generator().manual_seed(cfg.seed)  # latents and augmentations
    data_rng = np.random.default_rng(cfg.seed)  # which real frames
    fixed_latent = torch.randn(cfg.n_samples, cfg.latent_dim,
                               generator=torch.Generator().manual_seed(cfg.seed + 1))
    # conditional runs: fake labels follow the data's env proportions; the grids show the envs
    # in equal blocks (first rows env 0, then env 1, ...)
    fixed_labels = torch.arange(cfg.n_samples) * max(num_classes, 1) // cfg.n_samples
    autocast = torch.autocast("cpu", dtype=torch.bfloat16, enabled=cfg.bf16)

    # ---- how frames become model inputs: uint8 images x / 127.5 - 1, vectors min-max to [-1, 1]
    if images:
        center, half_range = torch.tensor(127.5), torch.tensor(127.5)
    elif saved is not None:
        center, half_range = saved["scale"]["center"], saved["scale"]["half_range"]
    else:
        probe = np.asarray(source.sample_frames(4096, np.random.default_rng(cfg.seed + 2)))
        low, high = probe.min(axis=0).astype(np.float32), probe.max(axis=0).astype(np.float32)
        center = torch.from_numpy((high + low) / 2)
        half_range = torch.from_numpy(np.where(high > low, (high - low) / 2 * 1.05, 1.0))

    def to_input(frames: np.ndarray) -> torch.Tensor:
        frames = _checked_frames(source, np.asarray(frames), frame_shape, images)
        x = (torch.from_numpy(frames).float() - center) / half_range
        return x.contiguous(memory_format=memory_format) if memory_format else x

    draw_labelled = getattr(source, "sample_batch_with_env", None) \
        or getattr(source, "sample_frames_with_env", None)

    def draw_training_batch(n: int) -> tuple[np.ndarray, np.ndarray]:
        """``n`` labelled real frames in the envs' training shares (see ``env_shares``)."""
        if keep_prob is None:
            frames, labels = draw_labelled(n, data_rng)
            labels = np.asarray(labels)
            if len(frames) != n or labels.shape != (n,) or (n and not (
                    0 <= labels.min() and labels.max() < num_classes)):
                raise ValueError(f"{type(source).__name__} was asked for {n} labelled frames "
                                 f"and gave {len(frames)} frames with labels of shape "
                                 f"{labels.shape} (labels must lie in [0, {num_classes}), one "
                                 "per env id)")
            return frames, labels
        return _draw_in_shares(draw_labelled, n, data_rng, keep_prob, label_probs.numpy())

    # what is measured on the data at the start, from one probe draw of its own (the data
    # stream is unchanged): the diversity term's per-label scale and the templates' start
    # (measured once; a resumed run uses the saved ones, even if the dataset grew meanwhile)
    needs_scale = cfg.diversity and (saved is None or saved.get("pair_scale") is None)
    needs_templates = (cfg.template or cfg.modes) and saved is None
    probe, probe_labels = None, None
    if needs_scale or needs_templates:
        probe_rng = np.random.default_rng(cfg.seed + 3)
        if num_classes:
            probe, probe_labels = draw_labelled(4096, probe_rng)
            probe_labels = np.asarray(probe_labels)
        else:
            probe = source.sample_frames(4096, probe_rng)
        probe = np.asarray(probe)
    pair_scale = torch.ones(1)
    if needs_scale and not (needs_templates and cfg.modes):  # with modes: per mode, below
        pair_scale = _real_pair_distances(probe, probe_labels, num_classes, to_input)
    elif cfg.diversity and not needs_scale:
        pair_scale = saved["pair_scale"]
    mode_centres = torch.zeros(0)  # (num_classes or 1, modes, *frame_shape), input scale
    probe_input = to_input(probe) if needs_templates else None
    if needs_templates and cfg.modes:  # the clusters give the modes and their templates
        mode_centres = _template_start(probe_input, probe_labels, num_classes, cfg.modes,
                                       cfg.seed)
        groups = torch.zeros(len(probe_input), dtype=torch.long) if probe_labels is None \
            else torch.from_numpy(probe_labels).long()
        probe_modes = _nearest_modes(probe_input, groups, mode_centres)  # one row unlabelled
        shares = torch.zeros(mode_centres.shape[:2], dtype=torch.float64)
        shares.index_put_((groups, probe_modes), torch.ones(len(groups), dtype=torch.float64),
                          accumulate=True)
        shares[shares.sum(dim=1) == 0] = 1.0  # a game the draw missed: equal shares
        set_mode_shares(generator, shares)
        if needs_scale:  # one scale per (game, mode): a game's modes differ more than
            # frames within one mode do (AirRaid: 0.20 across its two screens, 0.04-0.05 within);
            # a (game, mode) with fewer than two frames in the draw takes its game's scale
            per_game = _real_pair_distances(probe, groups.numpy(), len(shares), to_input)
            pair_scale = _real_pair_distances(probe, (groups * cfg.modes + probe_modes).numpy(),
                                              shares.numel(), to_input,
                                              fallback=per_game.repeat_interleave(cfg.modes))
        if cfg.template:
            init_template(generator, mode_centres.reshape(-1, 1, *mode_centres.shape[2:]))
    elif needs_templates:
        init_template(generator, _template_start(probe_input, probe_labels, num_classes,
                                                 cfg.template, cfg.seed))
    if needs_templates and ema is not None:
        ema.load_state_dict(generator.state_dict())
    del probe, probe_input
    if cfg.modes and saved is not None:
        mode_centres = saved["mode_centres"]
    if cfg.diversity and cfg.modes and len(pair_scale) == len(mode_centres):
        # a checkpoint of session 7 saved one scale per game: each of its modes uses it
        pair_scale = pair_scale.repeat_interleave(cfg.modes)

    start = 0
    if saved is not None:
        generator.load_state_dict(saved["generator"])
        discriminator.load_state_dict(saved["discriminator"])
        if ema is not None:
            ema.load_state_dict(saved["generator_ema"])
        opt_g.load_state_dict(saved["opt_g"])
        opt_d.load_state_dict(saved["opt_d"])
        for group in opt_g.param_groups + opt_d.param_groups:  # runs saved before fused Adam
            group.update(fused=True, foreach=None)
        noise.set_state(saved["rng"]["torch"])
        data_rng.bit_generator.state = saved["rng"]["numpy"]
        fixed_latent = saved["fixed_latent"]
        if num_classes:
            label_probs, fixed_labels = saved["label_probs"], saved["fixed_labels"]
        start = int(saved["iteration"])

    # what training batches hold of each env: the data's proportions, or cfg.env_shares (real
    # frames drawn uniformly, each kept with a probability proportional to share / proportion)
    train_probs, keep_prob = label_probs, None
    if num_classes and cfg.env_shares is not None:
        train_probs = torch.tensor(cfg.env_shares, dtype=torch.float64)
        keep_prob = (train_probs / label_probs).numpy()
        keep_prob /= keep_prob.max()

    saved_at = start if saved is not None else -1

    # what the grids and checkpoints show: the EMA generator, with standing statistics when
    # asked (its own BatchNorm statistics, measured on fixed latents: a function of its
    # weights alone, so a resumed run saves the same ones; the live EMA's BatchNorm buffers
    # then serve nothing); one measurement serves an iteration's grid and checkpoint alike
    standing_latents, standing_labels = standing_inputs(
        cfg.seed, cfg.standing_stats, cfg.latent_dim,
        train_probs if num_classes else None)  # labels in the training batches' shares
    standing_memo: dict[int, nn.Module] = {}

    def shown_generator(iteration: int) -> nn.Module:
        if ema is None:
            return generator
        if not cfg.standing_stats:
            return ema
        if iteration not in standing_memo:
            standing_memo.clear()
            standing_memo[iteration] = standing_statistics(ema, standing_latents,
                                                           standing_labels, cfg.batch_size)
        return standing_memo[iteration]

    def save_checkpoint(iteration: int) -> Path:
        nonlocal saved_at
        try:
            write_checkpoint(iteration)
        except OSError:  # a full disk: the log ends where the kept checkpoint does
            truncate_lines(log_path, lambda line: _log_iteration(
                line.decode("utf-8", "replace")) <= saved_at)
            raise
        saved_at = iteration
        return ckpt_path

    def write_checkpoint(iteration: int) -> None:
        _atomic_save({
            "format": _CHECKPOINT_FORMAT,
            "version": 7 if cfg.g_norm == "conditional" else 6 if cfg.template_gate
            else 5 if cfg.template_mask else 4 if cfg.modes else 3 if cfg.template else 2,
            "iteration": iteration, "config": dataclasses.asdict(cfg),
            "frame_shape": list(frame_shape), "env_ids": list(getattr(source, "env_ids", [])),
            "generator": generator.state_dict(), "discriminator": discriminator.state_dict(),
            "generator_ema": None if ema is None else shown_generator(iteration).state_dict(),
            "opt_g": opt_g.state_dict(), "opt_d": opt_d.state_dict(),
            "rng": {"torch": noise.get_state(), "numpy": data_rng.bit_generator.state},
            "fixed_latent": fixed_latent,
            "label_probs": label_probs if num_classes else None,
            "fixed_labels": fixed_labels if num_classes else None,
            "scale": {"center": center, "half_range": half_range},
            "pair_scale": pair_scale if cfg.diversity else None,
            "mode_centres": mode_centres if cfg.modes else None,
        }, ckpt_path)

    @torch.no_grad()
    def save_samples(iteration: int) -> Path:
        net = shown_generator(iteration)
        was_training = net.training
        net.eval()
        out = net(fixed_latent, fixed_labels) if num_classes else net(fixed_latent)
        net.train(was_training)
        if not images:
            path = run_dir / "samples" / f"iter_{iteration:06d}.npy"
            path.parent.mkdir(parents=True, exist_ok=True)
            np.save(path, (out * half_range + center).numpy())
            return path
        grid = make_grid(out, nrow=8, padding=2, upscale=max(1, 64 // frame_shape[-1]))
        if tensorboard is not None:
            tensorboard.add_image("samples", grid, iteration, dataformats="HWC")
        return save_png(run_dir / "samples" / f"iter_{iteration:06d}.png", grid)

    # ---- the log: keep the lines up to the resumed iteration
    log_path = run_dir / "log.jsonl"
    kept = []
    if saved is not None and log_path.exists():
        kept = [line for line in log_path.read_text().splitlines()
                if _log_iteration(line) <= start]  # (a line cut short by a kill: dropped)
    log_path.write_text("".join(line + "\n" for line in kept))
    tensorboard = _open_tensorboard(run_dir, start)

    def judge(x: torch.Tensor, x_labels: tuple[torch.Tensor, ...]) -> torch.Tensor:
        """D's logits for frames ``x`` (augmented, then packed; a pack has its first label)."""
        packed = pack_frames(diff_augment(x, policy, noise), cfg.pack)
        if memory_format is not None and cfg.pack > 1:  # packing copies to NCHW
            packed = packed.contiguous(memory_format=memory_format)
        return discriminator(packed, *(y[::cfg.pack] for y in x_labels))

    def draw_batch() -> tuple[Any, ...]:
        """Real frames and their labels, latents and the fakes' labels for one iteration.

        Returns ``(real, z, y_fake, m_fake, labels, labels_real)``: ``y_fake`` holds game
        labels (None when unconditional), ``m_fake`` the fakes' modes (None without modes),
        and ``labels`` / ``labels_real`` what D is given (the game, or ``game * modes +
        mode``; empty for a plain unconditional run).
        """
        y_real = y_fake = m_fake = None
        if num_classes:  # real labels from the data; fake ones in the data's proportions
            # (with packs: the real batch's own labels, so both sides pack alike)
            frames, y_real = draw_training_batch(cfg.batch_size)
            real, y_real = to_input(frames), torch.from_numpy(y_real).long()
        else:
            real = to_input(source.sample_frames(cfg.batch_size, data_rng))
        z = torch.randn(cfg.batch_size, cfg.latent_dim, generator=noise)
        m_real = _nearest_modes(real, y_real, mode_centres) if cfg.modes else None
        # what packs are sorted by: the game, or the (game, mode) pair
        key = None if not (num_classes or cfg.modes) else \
            (y_real if y_real is not None else 0) * max(cfg.modes, 1) \
            + (m_real if m_real is not None else 0)
        if cfg.pack > 1:  # packs of one label, in random order within it (a live-env batch
            # holds successive steps), fakes with the same labels
            shuffle = torch.from_numpy(data_rng.permutation(cfg.batch_size))
            order = shuffle if key is None else shuffle[torch.argsort(key[shuffle], stable=True)]
            real = real[order]
            y_real = None if y_real is None else y_real[order]
            m_real = None if m_real is None else m_real[order]
            y_fake = None if y_real is None else y_real.clone()
            m_fake = None if m_real is None else m_real.clone()
        else:
            if num_classes:
                y_fake = torch.multinomial(train_probs, cfg.batch_size, replacement=True,
                                           generator=noise)
            if cfg.modes:  # in the data's shares within each game (G's own rule)
                m_fake, z = pick_modes(z, generator.mode_cdf, y_fake)
            if cfg.diversity:  # pairs (i, i + half) share a label
                half = cfg.batch_size // 2
                for y in (y_fake, m_fake):
                    if y is not None:
                        y[half:2 * half] = y[:half]
        if cfg.modes:
            games_real = 0 if y_real is None else y_real * cfg.modes
            games_fake = 0 if y_fake is None else y_fake * cfg.modes
            return real, z, y_fake, m_fake, (games_fake + m_fake,), (games_real + m_real,)
        if num_classes:
            return real, z, y_fake, None, (y_fake,), (y_real,)
        return real, z, None, None, (), ()

    # ---- the loop
    names = ("loss_d", "loss_g", "d_real", "d_fake") + (("diversity",) if cfg.diversity else ()) \
        + (("r1",) if cfg.r1 else ()) + (("r2",) if cfg.r2 else ())
    window: dict[str, list[float]] = {k: [] for k in names}
    last_means: dict[str, float] = {}
    done, last_grid, in_step = start, None, False
    t0 = time.perf_counter()
    try:
        with _SigintToFlag() as sigint, log_path.open("a") as log:
            for iteration in range(start + 1, cfg.iterations + 1):
                in_step = True  # until G, D and EMA have all been updated
                if cfg.lr_decay:
                    factor = lr_factor(iteration, cfg.iterations, cfg.lr_decay)
                    for group, lr in zip(opt_g.param_groups + opt_d.param_groups, base_lrs,
                                         strict=True):
                        group["lr"] = lr * factor
                real, z, y_fake, m_fake, labels, labels_real = draw_batch()
                with autocast:
                    fake = generator(z, y_fake, m_fake) if cfg.modes \
                        else generator(z, *labels)

                # discriminator step: real -> 1, fake -> 0 (G's graph kept for its own step)
                discriminator.requires_grad_(True)
                opt_d.zero_grad(set_to_none=True)
                # the gradient penalties due now: R1 on reals, R2 on fakes
                due = [k for k in ("r1", "r2")
                       if getattr(cfg, k) > 0 and iteration % R1_EVERY == 0]
                if "r1" in due:
                    real = real.detach().requires_grad_(True)
                fake_in = fake.detach().requires_grad_("r2" in due)
                with autocast:
                    logits_real = judge(real, labels_real)
                    logits_fake = judge(fake_in, labels)
                logits_real, logits_fake = logits_real.float(), logits_fake.float()
                loss_d = _loss_d(cfg.loss, logits_real, logits_fake)
                penalties: dict[str, torch.Tensor] = {}  # |grad_x D(x)|^2, before gamma
                if due:
                    pairs = {"r1": (real, logits_real), "r2": (fake_in, logits_fake)}
                    grads = torch.autograd.grad([pairs[k][1].sum() for k in due],
                                                [pairs[k][0] for k in due], create_graph=True)
                    penalties = {k: _r1_penalty(g, cfg.pack)
                                 for k, g in zip(due, grads, strict=True)}
                    weighted = sum(getattr(cfg, k) * p for k, p in penalties.items())
                    (loss_d + R1_EVERY / 2 * weighted).backward()
                else:
                    loss_d.backward()
                opt_d.step()

                # generator step: make the updated D call the same fakes real
                discriminator.requires_grad_(False)
                opt_g.zero_grad(set_to_none=True)
                with autocast:
                    logits_g = judge(fake, labels)
                anchor = None  # rpgan: the updated D's logits on the paired real inputs
                if cfg.loss == "rpgan":
                    with torch.no_grad(), autocast:
                        anchor = judge(real.detach(), labels_real).float()
                loss_g = _loss_g(cfg.loss, logits_g.float(), anchor)
                if cfg.diversity:
                    penalty = _diversity_penalty(fake.float(), pair_scale,
                                                 labels[0] if labels else None, cfg.pack)
                    (loss_g + cfg.diversity * penalty).backward()
                else:
                    loss_g.backward()
                opt_g.step()
                if ema is not None:  # decay warms up: (1 + t) / (10 + t) until cfg.ema_decay
                    decay = min(cfg.ema_decay, (1 + iteration) / (10 + iteration))
                    _ema_update(ema, generator, decay)
                done, in_step = iteration, False

                # bookkeeping: log, grids, checkpoints, progress
                metrics = {"loss_d": loss_d.item(), "loss_g": loss_g.item(),
                           "d_real": torch.sigmoid(logits_real).mean().item(),
                           "d_fake": torch.sigmoid(logits_fake).mean().item()}
                if cfg.diversity:
                    metrics["diversity"] = penalty.item()
                # on penalty steps (loss_d is the adversarial part)
                metrics.update({k: p.item() for k, p in penalties.items()})
                if not all(math.isfinite(v) for v in metrics.values()):  # nothing NaN is saved
                    raise ValueError(_diverged(metrics, iteration, ckpt_path, saved_at))
                for k in names:
                    if k in metrics:
                        window[k].append(metrics[k])
                last = iteration == cfg.iterations
                if iteration % cfg.log_every == 0 or last:
                    last_means = {k: float(np.mean(v)) for k, v in window.items() if v}
                    window = {k: [] for k in names}
                    log.write(json.dumps({"iteration": iteration, **last_means,
                                          "seconds": round(time.perf_counter() - t0, 3)}) + "\n")
                    log.flush()
                    if tensorboard is not None:
                        for k, v in last_means.items():
                            tensorboard.add_scalar(k, v, iteration)
                if iteration % cfg.sample_every == 0 or last:
                    last_grid = save_samples(iteration)
                if iteration % cfg.checkpoint_every == 0 or last:
                    save_checkpoint(iteration)
                if progress is not None:
                    try:
                        progress(iteration, metrics)
                    except BaseException:  # the step is whole: keep it, as on Ctrl-C
                        if saved_at != done:
                            save_checkpoint(done)
                        raise
                if sigint.requested:
                    raise KeyboardInterrupt
    except KeyboardInterrupt:
        if not in_step and saved_at != done:  # a half-done step is not saved
            save_checkpoint(done)
        raise
    finally:
        if tensorboard is not None:
            tensorboard.close()
    seconds = time.perf_counter() - t0

    # ---- the end: a checkpoint (also for a run that had nothing left to do) and the video
    if saved_at != done:
        save_checkpoint(done)
    video = None
    grids = sorted((run_dir / "samples").glob("iter_*.png"))
    if grids:
        video = write_video(grids, run_dir / "training.mp4", fps=cfg.video_fps)
    return GanRunSummary(
        run_dir=run_dir, start_iteration=start, iterations=done, seconds=seconds,
        iterations_per_second=(done - start) / seconds if seconds > 0 else math.nan,
        metrics=last_means, checkpoint=ckpt_path, last_grid=last_grid, video=video,
    )
