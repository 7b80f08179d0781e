"""The GAN networks: the tutorial's Atari DCGAN and the tutorials' MLP GAN.

- ``dcgan`` (Lapan, *Deep RL Hands-On* 2nd ed. section 3.7; seed 003 at 128x128): the generator
  maps a latent vector through transposed convolutions 512 -> 256 -> 128 -> 64 channels (with
  BatchNorm + ReLU) to C channels and tanh; the discriminator mirrors it with strided
  convolutions 64 -> 128 -> 256 -> 512 -> 1. The widest stage keeps 512 channels (``width``);
  a 32x32 network drops the last (64-channel) stage and a 128x128 one adds a 32-channel stage,
  as seed 003 does.
- ``mlp`` (seeds 000-002): G 100 -> 256 -> 512 -> 1024 -> D with ReLU and tanh; D mirrors it
  with LeakyReLU(0.2). Works for any frame shape, image or vector.

Discriminators return one logit per sample (shape ``(N,)``); the loss applies the sigmoid, which
is the tutorial's ``Sigmoid`` + ``BCELoss`` computed stably. ``spectral_norm=True`` wraps every
discriminator layer in spectral normalisation and drops its BatchNorm, as SNGAN does.

Output templates (``template=K >= 1``): the generator adds a learned image to its last layer's
output before the tanh, so that its convolutions draw only what differs from that image. Each
label (the one label of an unconditional generator) has ``K`` templates; with ``K >= 2`` a
linear layer on the generator's input picks one of them per latent (the argmax; its gradient
is the softmax's, straight-through). The trainer
initialises them from each game's screens (:func:`template_frames`: per-pixel medians of K
clusters), so the static background of a random-agent Atari dataset starts out right up to
the small output of G's freshly initialised last layer, where the plain generator has to learn
every background pixel to within the 1/255 that the offline evaluation can see; AirRaid
alternates between two background colours, hence more than one template. A black or white
template pixel sits where tanh is flat (slope 0.002 at ±0.999), so a sprite drawn over it gets
little gradient. ``template=0`` builds the networks exactly as before (old checkpoints
load).

Modes (``modes=K >= 2``): each label (the one label of an unconditional generator) is split
into K modes, the k-means clusters of its frames (AirRaid's two background colours, say), and G
and D are conditioned on the (label, mode) pair: G embeds ``label * K + mode``, and the
discriminator is built for ``labels * K`` classes. A caller that gives only the label (sampling,
evaluation) lets G pick the mode from its latent: ``z[:, 0]``'s normal CDF falls into one of
the label's mode shares (``mode_cdf``, a buffer the trainer sets from the data), and is then
stretched back to a standard normal within that share (:func:`pick_modes`), so the modes come
in the data's proportions and every latent the network sees is still N(0, 1). With modes each
(label, mode) has at most one template, chosen by the mode. ``modes=0`` builds the networks
exactly as before.

Class-conditional variants (``num_classes >= 2``, the dataset's env label): the generator gets a
learned label embedding of ``LABEL_EMBED_DIM`` numbers concatenated to its latent vector, the
discriminator a projection term (Miyato & Koyama, 2018): ``D(x, y) = head(h) + <embed(y),
sum_pool(h)>`` where ``h`` is the input of D's last layer. ``num_classes=0`` builds the
unconditional networks, with the same parameter names as before (old checkpoints load).

Minibatch standard deviation (``mbstd_group >= 2``, Karras et al. 2018, ProGAN/StyleGAN): D
splits its batch into groups of ``mbstd_group`` frames, takes the standard deviation of every
feature of ``h`` across each group, averages it over the features (and positions) and appends
it to ``h`` as one extra channel (one extra number for the MLP) before the last layer. A
generator that draws the same frame for every latent then gives D an easy tell. A conditional
discriminator groups by label instead (the std over the batch's frames of the same game). The
projection term still uses ``h`` without the extra channel; the feature has no parameters, so
only the last layer's input width changes (``mbstd_group=0`` builds the networks exactly as
before).

Standing statistics (:func:`standing_statistics`, BigGAN's term): a generator's BatchNorm
layers normalise by the batch's own statistics while it trains and by their running averages
when it samples. For the EMA generator those averages are averages of the raw generator's, whose
weights are not the EMA's; :func:`standing_statistics` measures them on the EMA generator's own
activations instead.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Sequence
from itertools import pairwise

import torch
import torch.nn.functional as F
from torch import nn

from gan_envs._numbers import whole_number

from .data import is_image_shape

__all__ = [
    "ARCHS",
    "DCGAN_SIZES",
    "check_arch",
    "check_head",
    "check_g_norm",
    "generator_labels",
    "ConditionalBatchNorm2d",
    "check_template_gate",
    "check_template_mask_init",
    "G_HEADS",
    "G_NORMS",
    "build_models",
    "pack_frames",
    "build_generator",
    "init_template",
    "template_frames",
    "pick_modes",
    "set_mode_shares",
    "standing_statistics",
    "DCGANGenerator",
    "DCGANDiscriminator",
    "MLPGenerator",
    "MLPDiscriminator",
    "LABEL_EMBED_DIM",
    "MinibatchStd",
]

ARCHS = ("dcgan", "mlp")
DCGAN_SIZES = (32, 64, 128)
G_HEADS = ("transpose", "pixelshuffle")
"""the DCGAN generator's last layer: the book's transposed convolution, or a 3x3 convolution
and a pixel shuffle (:func:`_pixel_shuffle_head`)"""
LABEL_EMBED_DIM = 32
"""size of the conditional generator's label embedding (concatenated to the latent vector)"""


def check_arch(arch: str, frame_shape: Sequence[int]) -> None:
    """Raise a one-line ValueError when ``arch`` cannot make frames of ``frame_shape``.

    Example:
        >>> check_arch("dcgan", (3, 64, 64))
        >>> check_arch("dcgan", (3, 48, 48))  # doctest: +ELLIPSIS
        Traceback (most recent call last):
        ...
        ValueError: arch 'dcgan' makes square frames of 32, 64 or 128 pixels, not 48x48: ...
    """
    shape = tuple(int(s) for s in frame_shape)
    if arch not in ARCHS:
        raise ValueError(f"unknown arch {arch!r}; choose one of {', '.join(ARCHS)}")
    if arch == "mlp":
        if len(shape) not in (1, 3) or math.prod(shape) == 0:
            raise ValueError(f"arch 'mlp' needs (D,) vectors or (C, H, W) images, got {shape}")
        return
    if not is_image_shape(shape):
        raise ValueError(
            f"arch 'dcgan' needs image frames (C, H, W) with C = 1 or 3, got shape {shape}: "
            "use --arch mlp for vector observations"
        )
    _, height, width = shape
    if height != width or height not in DCGAN_SIZES:
        raise ValueError(
            f"arch 'dcgan' makes square frames of 32, 64 or 128 pixels, not {height}x{width}: "
            "resize the data (e.g. collect with --size 64) or use --arch mlp"
        )


def check_head(head: str, arch: str = "dcgan") -> None:
    """Raise a one-line ValueError unless ``head`` is one of :data:`G_HEADS` that ``arch`` has
    (the MLP has only the default, ``'transpose'``, which it ignores).

    Example:
        >>> check_head("pixelshuffle")
        >>> check_head("upsample")
        Traceback (most recent call last):
        ...
        ValueError: unknown g_head 'upsample'; choose one of transpose, pixelshuffle
    """
    if head not in G_HEADS:
        raise ValueError(f"unknown g_head {head!r}; choose one of {', '.join(G_HEADS)}")
    if head != "transpose" and arch != "dcgan":
        raise ValueError(f"g_head={head!r} is a DCGAN layer, and arch is {arch!r}: pass "
                         "arch='dcgan' (--arch dcgan) or leave g_head")


def _dcgan_widths(size: int, width: int) -> list[int]:
    """Channels of the generator's stages, widest first: 512, 256, ... (log2(size) - 2 stages)."""
    stages = int(math.log2(size)) - 2
    return [max(width >> i, 1) for i in range(stages)]


def _pixel_shuffle_head(channels_in: int, channels: int) -> nn.Module:
    """Double the resolution: a 3x3 convolution to ``4 * channels``, then a pixel shuffle.

    Each output pixel sees the 3x3 neighbourhood of its input position through weights of its
    own (one set per position in the 2x2 block), where the book's 4x4 stride-2 transposed
    convolution gives it 2x2 positions whose weights overlap from pixel to pixel. Initialised
    ICNR-style (Aitken et al. 2017): the four positions of a block start with the same
    weights, so the first output is a nearest-neighbour upsampling, free of checkerboard.
    """
    conv = nn.Conv2d(channels_in, 4 * channels, 3, 1, 1)
    with torch.no_grad():  # output channel c * 4 + i is position i of channel c
        conv.weight.copy_(conv.weight[::4].repeat_interleave(4, dim=0))
        conv.bias.copy_(conv.bias[::4].repeat_interleave(4))
    return nn.Sequential(conv, nn.PixelShuffle(2))


class LatentProjection(nn.ConvTranspose2d):
    """G's first layer: a 4x4 transposed convolution of a 1x1 input, computed as one matmul.

    The same parameters (and checkpoints) as ``nn.ConvTranspose2d(in, out, 4, 1, 0)`` and the
    same function: on a 1x1 input each output pixel is ``z @ weight[:, :, i, j] + bias``, so
    the whole layer is ``z @ weight.reshape(in, out * 16)``. oneDNN's transposed convolution
    takes ~2.2-2.5x as long for this (forward and backward, batch 32, 228 -> 128 channels, 1
    thread: 6.8 against 2.7 ms in session 11, 4.8 against 2.2 ms in session 12). Other
    settings (padding, groups, a larger input) fall back to the convolution.

    Example:
        >>> layer = LatentProjection(8, 4, 4, 1, 0)
        >>> z = torch.randn(2, 8, 1, 1)
        >>> bool(torch.allclose(layer(z), nn.ConvTranspose2d.forward(layer, z), atol=1e-6))
        True
    """

    def forward(self, x: torch.Tensor, output_size: list[int] | None = None) -> torch.Tensor:
        if (x.dim() != 4 or x.shape[-2:] != (1, 1) or output_size is not None
                or self.padding != (0, 0) or self.output_padding != (0, 0)
                or self.dilation != (1, 1) or self.groups != 1):
            return super().forward(x, output_size)
        out_channels, (kh, kw) = self.out_channels, self.kernel_size
        bias = (self.bias if self.bias is not None else self.weight.new_zeros(out_channels))
        y = torch.addmm(bias.repeat_interleave(kh * kw), x.flatten(1),
                        self.weight.reshape(self.in_channels, -1))
        y = y.view(x.shape[0], out_channels, kh, kw)
        if self.weight.is_contiguous(memory_format=torch.channels_last):
            y = y.contiguous(memory_format=torch.channels_last)
        return y


def _d_act(slope: float) -> nn.Module:
    return nn.LeakyReLU(slope, inplace=True) if slope > 0 else nn.ReLU(inplace=True)


def _sn(layer: nn.Module, spectral_norm: bool) -> nn.Module:
    return nn.utils.parametrizations.spectral_norm(layer) if spectral_norm else layer


def generator_labels(num_classes: int, modes: int) -> int:
    """How many labels a generator takes: games, ``games * modes``, or (unconditional) modes;
    0 for a plain generator.

    Example:
        >>> generator_labels(3, 2), generator_labels(0, 2), generator_labels(3, 0)
        (6, 2, 3)
    """
    return max(num_classes, 1) * modes if modes else num_classes


def _add_label_embedding(module: nn.Module, num_classes: int, modes: int) -> int:
    """Set ``num_classes``, ``modes`` (and the ``mode_cdf`` buffer) and the label embedding of a
    generator; return the embedding's width (0 for a plain unconditional generator)."""
    module.num_classes, module.modes = int(num_classes), int(modes)
    if module.modes == 1 or module.modes < 0:
        raise ValueError(f"modes must be 0 (off) or >= 2 modes per label, got {modes}: pass "
                         "modes=0 (--modes 0) to train without")
    if module.modes:  # cumulative mode shares per label; uniform until set_mode_shares
        shares = torch.full((max(module.num_classes, 1), module.modes), 1.0 / module.modes)
        module.register_buffer("mode_cdf", shares.cumsum(dim=1))
    embedded = generator_labels(module.num_classes, module.modes)
    if not embedded:
        return 0
    module.embed = nn.Embedding(embedded, LABEL_EMBED_DIM)
    return LABEL_EMBED_DIM


@torch.no_grad()
def set_mode_shares(generator: nn.Module, shares: torch.Tensor) -> None:
    """Set the share of each mode within each label, ``(num_classes or 1, modes)`` (rows are
    normalised), from which a generator called without modes picks them (:func:`pick_modes`).

    Example:
        >>> g = DCGANGenerator((3, 32, 32), latent_dim=8, width=16, modes=2)
        >>> set_mode_shares(g, torch.tensor([[3.0, 1.0]]))
        >>> g.mode_cdf.tolist()
        [[0.75, 1.0]]
    """
    if not getattr(generator, "modes", 0):
        raise ValueError("this generator has no modes: build it with modes >= 2")
    shares = torch.as_tensor(shares, dtype=torch.float64)
    if tuple(shares.shape) != tuple(generator.mode_cdf.shape) or not bool((shares >= 0).all()) \
            or not bool((shares.sum(dim=1) > 0).all()):
        raise ValueError(f"mode shares must be {tuple(generator.mode_cdf.shape)} non-negative "
                         f"numbers with a positive sum per row, got {shares.tolist()}")
    cdf = (shares / shares.sum(dim=1, keepdim=True)).cumsum(dim=1)
    cdf[:, -1] = 1.0
    generator.mode_cdf.copy_(cdf.to(generator.mode_cdf.dtype))


def pick_modes(z: torch.Tensor, mode_cdf: torch.Tensor, labels: torch.Tensor | None = None
               ) -> tuple[torch.Tensor, torch.Tensor]:
    """Each latent's mode, from its first number, and the latents with that number re-drawn.

    ``u = Phi(z[:, 0])`` falls into one of the label's mode shares (``mode_cdf``: cumulative
    shares, one row per label); ``u`` is then stretched over that share back to (0, 1) and
    ``z[:, 0] = Phi^-1(u)``, so the modes follow the shares and the new ``z[:, 0]`` is again a
    standard normal, independent of the mode. Deterministic: a latent keeps its mode.

    Example:
        >>> modes, z = pick_modes(torch.tensor([[-1.0], [0.5]]), torch.tensor([[0.5, 1.0]]))
        >>> modes.tolist(), [round(v, 3) for v in z[:, 0].tolist()]
        ([0, 1], [-0.475, -0.298])
    """
    normal = torch.distributions.Normal(0.0, 1.0)
    flat = z.reshape(z.shape[0], -1)
    u = normal.cdf(flat[:, 0].double())
    rows = mode_cdf.double()[labels.reshape(-1).long()] if labels is not None \
        else mode_cdf.double()[:1].expand(len(u), -1)
    modes = (u[:, None] > rows[:, :-1]).sum(dim=1)
    upper = rows.gather(1, modes[:, None])[:, 0]
    lower = torch.where(modes > 0, rows.gather(1, (modes - 1).clamp_min(0)[:, None])[:, 0], 0.0)
    stretched = ((u - lower) / (upper - lower).clamp_min(1e-12)).clamp(1e-7, 1 - 1e-7)
    redrawn = flat.clone()
    redrawn[:, 0] = normal.icdf(stretched).to(flat.dtype)
    return modes, redrawn.reshape(z.shape)


def _generator_input(module: nn.Module, z: torch.Tensor, labels: torch.Tensor | None,
                     modes: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor | None]:
    """``z`` flattened, with the label embedding appended for a conditional generator, and the
    index each latent's template is looked up with (its label, or ``label * K + mode``)."""
    z = z.reshape(z.shape[0], module.latent_dim)
    if module.num_classes and labels is None:
        raise ValueError(f"this generator is conditional on {module.num_classes} classes: "
                         "pass labels (one class index per latent)")
    # a generator without classes ignores labels (as it always has)
    labels = None if labels is None or not module.num_classes else labels.reshape(-1).long()
    if module.modes:
        if modes is None:
            modes, z = pick_modes(z, module.mode_cdf, labels)
        labels = modes.reshape(-1).long() + (0 if labels is None else labels * module.modes)
    elif modes is not None:
        raise ValueError("this generator has no modes: build it with modes >= 2 or pass none")
    if labels is None:
        return z, None
    return torch.cat([z, module.embed(labels).to(z.dtype)], dim=1), labels


TEMPLATE_CLAMP = 0.999
"""|x| limit of a template initialised from frames: tanh's inverse stays finite; the pixel
then sits (1 - 0.999) * 127.5 = 0.13 from 0 or 255, which rounds to them"""
TEMPLATE_SHARPNESS = 4.0
"""factor on the template-choice logits (their softmax gives the straight-through gradient)"""


def _add_template(module: nn.Module, templates: int, shape: tuple[int, ...], in_dim: int
                  ) -> None:
    """Give a generator ``templates`` output templates per label (0: ``template = None``).

    They are stored as one parameter ``template`` of shape ``(labels * templates, *shape)``
    (label-major), so that an image template is 4-D like the images (channels_last works).
    """
    module.templates = int(templates)
    if module.templates < 0:
        raise ValueError(f"template must be 0 (off) or a number of templates per label, got "
                         f"{templates}: pass template=0 (--template 0) to train without")
    if not module.templates:
        module.register_parameter("template", None)
        module.template_choice = None
        return
    if module.modes and module.templates > 1:
        raise ValueError(f"with modes each mode has one template, got template={templates}: "
                         "pass template=1 (--template 1) or template=0")
    labels = max(module.num_classes, 1) * max(module.modes, 1)
    module.template = nn.Parameter(torch.zeros(labels * module.templates, *shape))
    # a latent's mix of its label's templates (softmax); one template needs no choice
    module.template_choice = nn.Linear(in_dim, module.templates) if templates > 1 else None


def check_template_gate(gate: float, template: int, template_mask: bool) -> None:
    """Raise ValueError unless ``gate`` is 0 (off) or a usable fixed template gate.

    Example:
        >>> check_template_gate(0.5, template=1, template_mask=False)
        >>> check_template_gate(0.5, template=0, template_mask=False)  # doctest: +ELLIPSIS
        Traceback (most recent call last):
        ...
        ValueError: template_gate=0.5 blends G's frames with their templates: pass template >= 1 ...
    """
    if not gate:
        return
    if not (0.0 < gate <= 1.0 and math.isfinite(gate)):
        raise ValueError(f"template_gate must be 0 (off) or a fraction in (0, 1], got {gate}: "
                         "pass e.g. 0.5 (--template-gate 0.5)")
    if not template:
        raise ValueError(f"template_gate={gate} blends G's frames with their templates: pass "
                         "template >= 1 (--template 1) too, or template_gate=0")
    if template_mask:
        raise ValueError(f"template_gate={gate} is a fixed blend in place of the template "
                         "mask's learned one: pass template_mask=False (--no-template-mask), "
                         "or template_gate=0")


def check_template_mask_init(template_mask_init: float, template_mask: bool) -> None:
    """Raise ValueError unless ``template_mask_init`` is a usable start for the mask's logit.

    The mask starts ``sigmoid(template_mask_init)`` open: -2 is about 0.12; 0 (the default)
    leaves the layer's own initialisation, about one half.

    Example:
        >>> check_template_mask_init(-2.0, template_mask=True)
        >>> check_template_mask_init(-2.0, template_mask=False)  # doctest: +ELLIPSIS
        Traceback (most recent call last):
        ...
        ValueError: template_mask_init=-2.0 starts the template mask's logit: pass ...
    """
    if not (math.isfinite(template_mask_init) and abs(template_mask_init) <= 100):
        raise ValueError(f"template_mask_init must be a logit within ±100 (sigmoid(-100) is "
                         f"shut to float precision; 1e39 overflowed in torch), got "
                         f"{template_mask_init}: pass e.g. -2.0 (--template-mask-init -2)")
    if template_mask_init and not template_mask:
        raise ValueError(f"template_mask_init={template_mask_init} starts the template mask's "
                         "logit: pass template_mask=True (--template-mask) too, or "
                         "template_mask_init=0")


def _templates_by_label(module: nn.Module) -> torch.Tensor:
    """The templates as ``(labels, templates, *shape)``."""
    return module.template.reshape(-1, module.templates, *module.template.shape[1:])


def _generator_output(module: nn.Module, pre: torch.Tensor, g_input: torch.Tensor,
                      labels: torch.Tensor | None) -> torch.Tensor:
    """``tanh(pre)``, with the latent's template added to ``pre`` first when there are some.

    With a template mask (``module.template_mask``) ``pre``'s last channel is the mask's
    logit ``a``: the frame is ``t + sigmoid(a) * (tanh(pre + bias) - t)``, where ``t`` is the
    template frame ``tanh(bias)``, so G leaves the template exactly where it saturates ``a``
    low, whatever its other channels hold there. With a fixed gate ``g``
    (``module.template_gate`` > 0) the frame is ``t + g * (tanh(pre + bias) - t)``: the mask's
    blend with ``sigmoid(a)`` held at ``g`` everywhere.
    """
    if module.template is None:
        return torch.tanh(pre)
    by_label = _templates_by_label(module)
    if labels is not None:  # the label, or label * modes + mode
        own = by_label[labels]  # (N, K, *shape)
    else:
        own = by_label.expand(pre.shape[0], *by_label.shape[1:])
    if module.template_choice is None:
        bias = own[:, 0]
    else:
        # one template per latent, never a blend of two screens; the gradient is the
        # softmax's (straight-through)
        soft = torch.softmax(TEMPLATE_SHARPNESS * module.template_choice(g_input).float(), 1)
        hard = F.one_hot(soft.argmax(dim=1), module.templates).to(soft.dtype)
        weights = hard + soft - soft.detach()
        bias = torch.einsum("nk,nk...->n...", weights.to(own.dtype), own)
    gate: torch.Tensor | float
    if getattr(module, "template_mask", False):  # the last channel is the mask's logit
        content, gate = pre[:, :-1], torch.sigmoid(pre[:, -1:])
    else:
        content, gate = pre, getattr(module, "template_gate", 0.0)
    bias = bias.reshape(content.shape).to(pre.dtype)
    if isinstance(gate, float) and not gate:
        return torch.tanh(content + bias)
    base = torch.tanh(bias)
    return base + gate * (torch.tanh(content + bias) - base)


@torch.no_grad()
def init_template(generator: nn.Module, frames: torch.Tensor) -> None:
    """Set a generator's templates to ``frames`` (in tanh's input: ``atanh(frames)``).

    ``frames``: ``(num_classes or 1, templates, *frame_shape)`` in the generator's output
    range [-1, 1], e.g. the per-pixel median frames of each game's clusters of screens,
    clamped to ±``TEMPLATE_CLAMP`` first. They stay trainable parameters. A zero residual
    (G's last layer at zero) then draws the label's frame that the choice layer picks.

    Example:
        >>> g = DCGANGenerator((3, 32, 32), latent_dim=8, width=16, template=1)
        >>> init_template(g, torch.full((1, 1, 3, 32, 32), 0.5))
        >>> round(float(torch.tanh(g.template.detach()).mean()), 4)
        0.5
    """
    if generator.template is None:
        raise ValueError("this generator has no template: build it with template >= 1")
    shape = tuple(_templates_by_label(generator).shape)
    if frames.numel() != math.prod(shape) or tuple(frames.shape[:2]) != shape[:2]:
        raise ValueError(f"the templates are {shape[0]} label(s) x {shape[1]} frame(s) of "
                         f"{math.prod(shape[2:])} values; got frames of shape "
                         f"{tuple(frames.shape)}")
    clamped = frames.float().clamp(-TEMPLATE_CLAMP, TEMPLATE_CLAMP)
    generator.template.copy_(torch.atanh(clamped).reshape(generator.template.shape))


def template_frames(frames: torch.Tensor, templates: int, steps: int = 10,
                    min_share: float = 0.05, restarts: int = 4, seed: int = 0) -> torch.Tensor:
    """``templates`` typical frames of ``frames`` ``(N, ...)``: k-means cluster medians.

    k-means with squared distances: the first centre is the per-pixel median frame, the others
    are drawn k-means++ style (a frame with probability proportional to its squared distance
    to the nearest centre so far), then ``steps`` Lloyd steps; of ``restarts`` such runs (seeded
    by ``seed``) the one with the smallest total squared distance is kept. Each cluster gives
    its per-pixel median, largest cluster first. A cluster with fewer than ``min_share`` of the
    frames (a few odd screens, not a kind of screen) gives the median of all ``frames``
    instead. Returns ``(templates, ...)``.

    Example:
        >>> two_kinds = torch.cat([torch.zeros(5, 3), torch.ones(3, 3)])
        >>> template_frames(two_kinds, 2).tolist()
        [[0.0, 0.0, 0.0], [1.0, 1.0, 1.0]]
    """
    if len(frames) == 0:
        raise ValueError("no frames to make templates from")
    flat = frames.reshape(len(frames), -1).float()
    overall = flat.median(dim=0).values
    members = torch.zeros(len(flat), dtype=torch.long)
    squares = flat.square().sum(dim=1, keepdim=True)

    def squared_distances(centres: torch.Tensor) -> torch.Tensor:  # (N, K)
        return (squares - 2 * (flat @ centres.T) + centres.square().sum(dim=1)).clamp_min(0)

    if templates > 1:
        rng = torch.Generator().manual_seed(seed)
        best = math.inf
        for _ in range(restarts):
            centres = overall[None]
            for _ in range(templates - 1):
                nearest = squared_distances(centres).min(dim=1).values
                pick = (torch.multinomial(nearest / nearest.sum(), 1, generator=rng)
                        if nearest.sum() > 0 else torch.zeros(1, dtype=torch.long))
                centres = torch.cat([centres, flat[pick]])
            for _ in range(steps):
                one_hot = F.one_hot(squared_distances(centres).argmin(dim=1), templates).float()
                counts = one_hot.sum(dim=0)[:, None]
                centres = torch.where(counts > 0, one_hot.T @ flat / counts.clamp_min(1),
                                      centres)
            distances = squared_distances(centres)
            inertia = float(distances.min(dim=1).values.sum())
            if inertia < best:
                best, members = inertia, distances.argmin(dim=1)
    sizes = torch.bincount(members, minlength=templates)
    order = torch.argsort(-sizes, stable=True)
    kept = sizes >= max(1, math.ceil(min_share * len(flat)))
    medians = [flat[members == k].median(dim=0).values if kept[k] else overall for k in order]
    return torch.stack(medians).reshape(templates, *frames.shape[1:])


class MinibatchStd(nn.Module):
    """Append the minibatch standard deviation of ``h`` as one channel (ProGAN/StyleGAN).

    The batch is split into groups of ``group`` samples (the largest divisor of the batch size
    that is <= ``group``); per group, the std across the group of every feature and position,
    averaged over features and positions, becomes one constant extra channel (or feature) of
    each sample of that group.

    With ``labels`` (a conditional discriminator) the groups are the labels instead: each
    sample gets the std over the samples of the batch that share its label (a label with one
    sample gets the mean of the others'). Consecutive groups
    of mixed games measured the spread *between* games, which a generator that draws one frame
    per game still shows (Pong collapsed to a single frame under it, docs/gan.md).

    Example:
        >>> h = torch.zeros(8, 3, 4, 4)
        >>> tuple(MinibatchStd(4)(h).shape)
        (8, 4, 4, 4)
        >>> h = torch.tensor([0.0, 2.0, 5.0, 5.0]).reshape(4, 1)  # label 0 varies, label 1 not
        >>> MinibatchStd(4)(h, torch.tensor([0, 0, 1, 1]))[:, 1].round(decimals=3).tolist()
        [1.0, 1.0, 0.0, 0.0]
    """

    def __init__(self, group: int = 4) -> None:
        super().__init__()
        if group < 2:
            raise ValueError(f"mbstd group must be >= 2, got {group}")
        self.group = int(group)

    def forward(self, h: torch.Tensor, labels: torch.Tensor | None = None) -> torch.Tensor:
        n = h.shape[0]
        if labels is None:
            g = next(k for k in range(min(self.group, n), 0, -1) if n % k == 0)
            y = h.float().reshape(n // g, g, *h.shape[1:])  # (groups, g, ...)
            y = torch.sqrt(y.var(dim=1, unbiased=False) + 1e-8)  # (groups, ...)
            y = y.mean(dim=tuple(range(1, y.ndim)))  # (groups,)
            y = y.repeat_interleave(g)  # (n,): group i's value for its samples
        else:
            y = _std_per_label(h, labels.reshape(-1).long())
        y = y.to(h.dtype).reshape(n, 1, *([1] * (h.ndim - 2))).expand(n, 1, *h.shape[2:])
        return torch.cat([h, y], dim=1)


def _std_per_label(h: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Per sample: the std of ``h`` over the batch's samples with its label, averaged over
    features. A label with a single sample in the batch gets the mean of the other labels'
    values (its own std would be 0, the tell of a collapsed generator). In float32 even under
    bf16 autocast (the value of a collapsed batch is ~1e-4)."""
    with torch.autocast(h.device.type, enabled=False):
        flat = h.float().reshape(len(h), -1)
        onehot = F.one_hot(labels, int(labels.max()) + 1).to(flat.dtype)  # (n, classes)
        sizes = onehot.sum(0)
        counts = sizes.clamp_min(1.0)[:, None]
        centred = flat - (onehot.T @ flat / counts)[labels]
        std = torch.sqrt(onehot.T @ centred.square() / counts + 1e-8).mean(dim=1)  # (classes,)
        several = sizes >= 2
        if bool(several.any()):
            std = torch.where(several, std, std[several].mean())
        return std[labels]


def _finish_discriminator(module: nn.Module, layers: list[nn.Module], features: int,
                          spectral_norm: bool, num_classes: int, mbstd_group: int) -> None:
    """Set a discriminator's ``net`` and its optional minibatch-std and projection parts
    (the attribute names checkpoints use: ``net``, ``mbstd``, ``embed``)."""
    module.net = nn.Sequential(*layers)
    if mbstd_group:
        module.mbstd = MinibatchStd(mbstd_group)
    module.num_classes = int(num_classes)
    if module.num_classes:
        module.embed = _sn(nn.Embedding(module.num_classes, features), spectral_norm)


def _check_input(module: nn.Module, x: torch.Tensor) -> None:
    """A one-line error for discriminator inputs of another shape than it was built for (with
    ``pack >= 2``: packs, :func:`pack_frames`)."""
    if tuple(x.shape[1:]) != module.input_shape:
        raise ValueError(f"this discriminator takes inputs of shape (N, *{module.input_shape}), "
                         f"got {tuple(x.shape)}")


def _projection_logits(module: nn.Module, x: torch.Tensor, labels: torch.Tensor | None
                       ) -> torch.Tensor:
    """``head(h)`` plus, for a conditional discriminator, the projection ``<embed(y), pool(h)>``.

    With minibatch std, ``head`` sees ``h`` with the std channel appended."""
    mbstd = getattr(module, "mbstd", None)
    if module.num_classes == 0 and mbstd is None:
        return module.net(x).reshape(-1)
    if module.num_classes and labels is None:
        raise ValueError(f"this discriminator is conditional on {module.num_classes} classes: "
                         "pass labels (one class index per frame)")
    h = module.net[:-1](x)
    out = module.net[-1](h if mbstd is None else mbstd(h, labels)).reshape(-1)
    if module.num_classes == 0:
        return out
    pooled = h.sum(dim=(2, 3)) if h.ndim == 4 else h
    return out + (module.embed(labels.reshape(-1).long()).to(pooled.dtype) * pooled).sum(dim=1)


G_NORMS = ("batch", "conditional")
"""the DCGAN generator's normalisation layers: BatchNorm with one learned gain and bias per
channel (the tutorial's), or :class:`ConditionalBatchNorm2d` (one gain and bias per label)"""


def check_g_norm(norm: str, arch: str = "dcgan", labels: int = 2) -> None:
    """Raise ValueError unless ``norm`` is one of :data:`G_NORMS` usable with ``arch`` and a
    generator with ``labels`` labels (games, or ``games * modes``; 0 or 1: unconditional).

    Example:
        >>> check_g_norm("conditional", "dcgan", labels=6)  # 3 games x 2 modes: fine
        >>> check_g_norm("conditional", "mlp", labels=6)
        Traceback (most recent call last):
        ...
        ValueError: g_norm='conditional' is a DCGAN layer, and arch is 'mlp': pass arch='dcgan' ...
    """
    if norm not in G_NORMS:
        raise ValueError(f"unknown g_norm {norm!r}; choose one of {', '.join(G_NORMS)}")
    if norm == "conditional" and arch != "dcgan":
        raise ValueError(f"g_norm='conditional' is a DCGAN layer, and arch is {arch!r}: pass "
                         "arch='dcgan' (--arch dcgan) or g_norm='batch' (--g-norm batch)")
    if norm == "conditional" and labels < 2:
        raise ValueError("g_norm='conditional' gives each label its own BatchNorm gain and "
                         "bias, and this generator has no labels: pass conditional=True "
                         "(--conditional) with two or more games, or modes >= 2 (--modes 2), "
                         "or g_norm='batch' (--g-norm batch)")


class ConditionalBatchNorm2d(nn.BatchNorm2d):
    """BatchNorm over the whole batch, then a gain and a bias per label (as in the SNGAN and
    BigGAN generators): ``gain[y] * (x - mean) / std + bias[y]``. Gains start at 1, biases at
    0, so a new layer equals a new ``nn.BatchNorm2d``; running statistics are shared.

    Example:
        >>> norm = ConditionalBatchNorm2d(4, labels=3)
        >>> tuple(norm(torch.randn(6, 4, 2, 2), torch.tensor([0, 1, 2, 0, 1, 2])).shape)
        (6, 4, 2, 2)
    """

    def __init__(self, channels: int, labels: int) -> None:
        super().__init__(channels, affine=False)
        self.gain = nn.Embedding(labels, channels)
        self.bias_of = nn.Embedding(labels, channels)
        nn.init.ones_(self.gain.weight)
        nn.init.zeros_(self.bias_of.weight)

    def forward(self, x: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:  # type: ignore[override]
        x = super().forward(x)
        gain = self.gain(labels).to(x.dtype)[:, :, None, None]
        return x * gain + self.bias_of(labels).to(x.dtype)[:, :, None, None]


class DCGANGenerator(nn.Module):
    """Transposed-convolution generator: latent ``(N, latent_dim)`` -> images ``(N, C, S, S)``.

    With ``num_classes >= 2`` it also takes ``labels`` ``(N,)`` (class indices), embedded and
    concatenated to the latent. With ``modes >= 2`` it may also take ``modes`` ``(N,)``; without
    them each latent picks its own (:func:`pick_modes`). ``head`` is the last layer (one of
    :data:`G_HEADS`).
    """

    def __init__(self, frame_shape: Sequence[int], latent_dim: int = 100, width: int = 512,
                 num_classes: int = 0, template: int = 0, modes: int = 0,
                 head: str = "transpose", template_mask: bool = False,
                 template_gate: float = 0.0, template_mask_init: float = 0.0,
                 norm: str = "batch") -> None:
        super().__init__()
        check_arch("dcgan", frame_shape)
        check_head(head)
        labels = generator_labels(num_classes, modes)
        check_g_norm(norm, "dcgan", labels)
        if template_mask and not template:
            raise ValueError("template_mask blends G's output with its template: pass "
                             "template >= 1 (--template 1) too, or template_mask=False")
        check_template_gate(template_gate, template, template_mask)
        check_template_mask_init(template_mask_init, template_mask)
        channels, size = int(frame_shape[0]), int(frame_shape[1])
        self.template_mask = bool(template_mask)
        self.template_gate = float(template_gate)
        out = channels + 1 if template_mask else channels  # + the mask's logit
        widths = _dcgan_widths(size, width)
        extra = _add_label_embedding(self, num_classes, modes)
        self.norm = norm

        def normalisation(channels: int) -> nn.Module:
            return ConditionalBatchNorm2d(channels, labels) if norm == "conditional" \
                else nn.BatchNorm2d(channels)

        layers: list[nn.Module] = [
            LatentProjection(latent_dim + extra, widths[0], 4, 1, 0),
            normalisation(widths[0]),
            nn.ReLU(inplace=True),
        ]
        for w_in, w_out in pairwise(widths):
            layers += [nn.ConvTranspose2d(w_in, w_out, 4, 2, 1), normalisation(w_out),
                       nn.ReLU(inplace=True)]
        layers.append(nn.ConvTranspose2d(widths[-1], out, 4, 2, 1) if head == "transpose"
                      else _pixel_shuffle_head(widths[-1], out))  # tanh in forward
        self.latent_dim = latent_dim
        self.net = nn.Sequential(*layers)
        if template_mask_init:  # the mask logit's bias (the pixel-shuffle head: 4 positions')
            head_conv = layers[-1] if head == "transpose" else layers[-1][0]
            with torch.no_grad():
                head_conv.bias[-(1 if head == "transpose" else 4):] = template_mask_init
        _add_template(self, template, (channels, size, size), latent_dim + extra)

    def forward(self, z: torch.Tensor, labels: torch.Tensor | None = None,
                modes: torch.Tensor | None = None) -> torch.Tensor:
        x, index = _generator_input(self, z, labels, modes)
        h = x.reshape(x.shape[0], x.shape[1], 1, 1)
        if self.norm == "conditional":  # the label index reaches every normalisation
            for layer in self.net:
                h = layer(h, index) if isinstance(layer, ConditionalBatchNorm2d) else layer(h)
        else:
            h = self.net(h)
        return _generator_output(self, h, x, index)


class DCGANDiscriminator(nn.Module):
    """Strided-convolution discriminator: images ``(N, C, S, S)`` -> logits ``(N,)``.

    The first convolution has no BatchNorm (as in the tutorial); ``relu_slope`` 0 gives the
    tutorial's ReLU, > 0 a LeakyReLU. With ``num_classes >= 2`` it also takes ``labels`` and
    adds the projection term. With ``pack >= 2`` it takes packs of frames
    ``(N, pack * C, S, S)`` (:func:`pack_frames`) and their labels ``(N,)``.
    """

    def __init__(
        self,
        frame_shape: Sequence[int],
        spectral_norm: bool = False,
        relu_slope: float = 0.0,
        width: int = 512,
        num_classes: int = 0,
        mbstd_group: int = 0,
        pack: int = 1,
    ) -> None:
        super().__init__()
        check_arch("dcgan", frame_shape)
        channels, size = int(frame_shape[0]), int(frame_shape[1])
        widths = _dcgan_widths(size, width)[::-1]
        layers: list[nn.Module] = [
            _sn(nn.Conv2d(channels * pack, widths[0], 4, 2, 1), spectral_norm),
            _d_act(relu_slope),
        ]
        for w_in, w_out in pairwise(widths):
            layers.append(_sn(nn.Conv2d(w_in, w_out, 4, 2, 1), spectral_norm))
            if not spectral_norm:
                layers.append(nn.BatchNorm2d(w_out))
            layers.append(_d_act(relu_slope))
        extra = 1 if mbstd_group else 0
        layers.append(_sn(nn.Conv2d(widths[-1] + extra, 1, 4, 1, 0), spectral_norm))
        _finish_discriminator(self, layers, widths[-1], spectral_norm, num_classes, mbstd_group)
        self.input_shape = (channels * pack, size, size)

    def forward(self, x: torch.Tensor, labels: torch.Tensor | None = None) -> torch.Tensor:
        _check_input(self, x)  # other sizes would give several logits per input
        return _projection_logits(self, x, labels)


class MLPGenerator(nn.Module):
    """The tutorials' MLP generator: latent -> 256 -> 512 -> 1024 -> prod(frame_shape), tanh."""

    def __init__(self, frame_shape: Sequence[int], latent_dim: int = 100, width: int = 512,
                 num_classes: int = 0, template: int = 0, modes: int = 0) -> None:
        super().__init__()
        check_arch("mlp", frame_shape)
        self.frame_shape = tuple(int(s) for s in frame_shape)
        extra = _add_label_embedding(self, num_classes, modes)
        widths = [latent_dim + extra, width // 2, width, width * 2]
        layers: list[nn.Module] = []
        for w_in, w_out in pairwise(widths):
            layers += [nn.Linear(w_in, w_out), nn.ReLU(inplace=True)]
        layers.append(nn.Linear(widths[-1], math.prod(self.frame_shape)))  # tanh in forward
        self.latent_dim = latent_dim
        self.net = nn.Sequential(*layers)
        _add_template(self, template, (math.prod(self.frame_shape),), latent_dim + extra)

    def forward(self, z: torch.Tensor, labels: torch.Tensor | None = None,
                modes: torch.Tensor | None = None) -> torch.Tensor:
        x, index = _generator_input(self, z, labels, modes)
        return _generator_output(self, self.net(x), x, index).reshape(-1, *self.frame_shape)


class MLPDiscriminator(nn.Module):
    """The tutorials' MLP discriminator: prod(frame_shape) -> 1024 -> 512 -> 256 -> logit."""

    def __init__(
        self,
        frame_shape: Sequence[int],
        spectral_norm: bool = False,
        relu_slope: float = 0.2,
        width: int = 512,
        num_classes: int = 0,
        mbstd_group: int = 0,
        pack: int = 1,
    ) -> None:
        super().__init__()
        check_arch("mlp", frame_shape)
        widths = [math.prod(int(s) for s in frame_shape) * pack, width * 2, width, width // 2]
        layers: list[nn.Module] = [nn.Flatten()]
        for w_in, w_out in pairwise(widths):
            layers += [_sn(nn.Linear(w_in, w_out), spectral_norm), _d_act(relu_slope)]
        extra = 1 if mbstd_group else 0
        layers.append(_sn(nn.Linear(widths[-1] + extra, 1), spectral_norm))
        _finish_discriminator(self, layers, widths[-1], spectral_norm, num_classes, mbstd_group)
        first, *rest = (int(v) for v in frame_shape)
        self.input_shape = (first * pack, *rest)

    def forward(self, x: torch.Tensor, labels: torch.Tensor | None = None) -> torch.Tensor:
        _check_input(self, x)
        return _projection_logits(self, x, labels)


def build_models(
    arch: str,
    frame_shape: Sequence[int],
    latent_dim: int = 100,
    spectral_norm: bool = False,
    relu_slope: float | None = None,
    width: int = 512,
    num_classes: int = 0,
    mbstd_group: int = 0,
    d_width: int | None = None,
    pack: int = 1,
    template: int = 0,
    modes: int = 0,
    g_head: str = "transpose",
    template_mask: bool = False,
    template_gate: float = 0.0,
    template_mask_init: float = 0.0,
    g_norm: str = "batch",
) -> tuple[nn.Module, nn.Module]:
    """Build ``(generator, discriminator)`` for ``arch`` and ``frame_shape``.

    ``relu_slope`` is the discriminator's LeakyReLU slope (0: ReLU); None picks the tutorial's
    (0 for dcgan, 0.2 for mlp). ``width`` is the DCGAN's widest stage and the MLP's middle layer
    (512 in the tutorials; the other stages scale with it). ``num_classes >= 2`` builds the
    class-conditional pair (label embedding in G, projection term in D); 0 the plain one.
    ``mbstd_group >= 2`` adds D's minibatch-std feature over groups of that size (0: none).
    ``d_width`` gives D a width of its own (None: ``width``). ``pack >= 2`` builds a PacGAN
    discriminator: it takes ``pack`` frames stacked along the first (channel) axis, one logit
    per pack (see :func:`pack_frames`). ``template=K`` gives the generator K learned output
    templates per label (see :func:`init_template`; 0: none). ``modes=K >= 2`` splits each
    label into K modes: G takes them (or picks them, :func:`pick_modes`), D is built for
    ``max(num_classes, 1) * K`` classes (``label * K + mode``). ``g_head`` is the DCGAN
    generator's last layer (:data:`G_HEADS`; the MLP has none to choose). ``template_mask``
    gives the DCGAN generator a mask channel that blends its frames with its templates, and
    ``template_gate`` in (0, 1] a fixed blend instead (see :func:`_generator_output`);
    ``template_mask_init`` is the mask logit's starting bias
    (:func:`check_template_mask_init`). ``g_norm`` is the DCGAN generator's normalisation
    (:data:`G_NORMS`; 'conditional' needs labels: ``num_classes >= 2`` or ``modes >= 2``).

    Example:
        >>> import torch
        >>> g, d = build_models("dcgan", (3, 32, 32), latent_dim=8)
        >>> images = g(torch.zeros(2, 8))
        >>> tuple(images.shape), tuple(d(images).shape)
        ((2, 3, 32, 32), (2,))
    """
    if num_classes == 1 or num_classes < 0:
        raise ValueError(f"num_classes must be 0 (unconditional) or >= 2, got {num_classes}")
    if mbstd_group == 1 or mbstd_group < 0:
        raise ValueError(f"mbstd_group must be 0 (off) or >= 2, got {mbstd_group}")
    if pack < 1:
        raise ValueError(f"pack must be >= 1 (1: one frame per D input), got {pack}")
    latent_dim = whole_number(latent_dim, "latent_dim", low=1, error=ValueError)
    width = whole_number(width, "width", low=2, error=ValueError)
    if d_width is not None:
        d_width = whole_number(d_width, "d_width", low=2, error=ValueError)
    if relu_slope is not None and not 0.0 <= relu_slope < 1.0:
        raise ValueError(f"relu_slope must lie in [0, 1) (0: ReLU), got {relu_slope!r}")
    generator = build_generator(arch, frame_shape, latent_dim, width, num_classes, template,
                                modes, g_head, template_mask, template_gate,
                                template_mask_init, g_norm)
    d_width = width if d_width is None else d_width
    if modes:  # D tells the (label, mode) pairs apart
        num_classes = max(num_classes, 1) * modes
    if arch == "dcgan":
        slope = 0.0 if relu_slope is None else relu_slope
        return generator, DCGANDiscriminator(frame_shape, spectral_norm, slope, d_width,
                                              num_classes, mbstd_group, pack)
    slope = 0.2 if relu_slope is None else relu_slope
    return generator, MLPDiscriminator(frame_shape, spectral_norm, slope, d_width, num_classes,
                                       mbstd_group, pack)


def pack_frames(x: torch.Tensor, pack: int) -> torch.Tensor:
    """Stack each run of ``pack`` consecutive frames along the channel axis (PacGAN's input).

    ``(N, C, ...)`` -> ``(N // pack, pack * C, ...)``: frames ``k*pack .. k*pack + pack - 1``
    become pack ``k``. ``N`` must be a multiple of ``pack``.

    Example:
        >>> x = torch.arange(4.0).reshape(4, 1, 1, 1)
        >>> pack_frames(x, 2).reshape(2, 2).tolist()
        [[0.0, 1.0], [2.0, 3.0]]
    """
    if pack == 1:
        return x
    n = x.shape[0]
    if n % pack:
        raise ValueError(f"{n} frames do not split into packs of {pack}")
    return x.reshape(n // pack, pack * x.shape[1], *x.shape[2:])


def build_generator(
    arch: str, frame_shape: Sequence[int], latent_dim: int = 100, width: int = 512,
    num_classes: int = 0, template: int = 0, modes: int = 0, g_head: str = "transpose",
    template_mask: bool = False, template_gate: float = 0.0,
    template_mask_init: float = 0.0, g_norm: str = "batch",
) -> nn.Module:
    """Build the generator of ``arch`` alone (for sampling from a checkpoint)."""
    check_arch(arch, frame_shape)
    check_head(g_head, arch)
    check_g_norm(g_norm, arch, generator_labels(num_classes, modes))
    if template_mask and arch != "dcgan":
        raise ValueError(f"template_mask needs arch='dcgan' (image frames), got arch={arch!r}: "
                         "pass template_mask=False")
    if template_gate and arch != "dcgan":
        raise ValueError(f"template_gate needs arch='dcgan' (image frames), got arch={arch!r}: "
                         "pass template_gate=0")
    if arch == "dcgan":
        return DCGANGenerator(frame_shape, latent_dim, width, num_classes, template, modes,
                              g_head, template_mask, template_gate, template_mask_init, g_norm)
    check_template_mask_init(template_mask_init, template_mask)
    return MLPGenerator(frame_shape, latent_dim, width, num_classes, template, modes)


@torch.no_grad()
def standing_statistics(generator: nn.Module, latents: torch.Tensor,
                        labels: torch.Tensor | None = None, batch_size: int = 32) -> nn.Module:
    """A copy of ``generator`` (in eval mode) whose BatchNorm layers hold *standing
    statistics*: the mean of its own per-batch means and variances over ``latents`` (and
    ``labels``, one per latent, for a conditional generator), run in training mode in batches of
    ``batch_size`` (the batch size it trained with: BatchNorm normalised each training batch by
    that batch). The weights, and ``generator`` itself, are left as they are; a generator
    without BatchNorm comes back as an equal copy.

    Example:
        >>> g = DCGANGenerator((3, 32, 32), latent_dim=8, width=16)
        >>> z = torch.randn(64, 8, generator=torch.Generator().manual_seed(0))
        >>> s = standing_statistics(g, z, batch_size=16)
        >>> s.training, int(s.net[1].num_batches_tracked), int(g.net[1].num_batches_tracked)
        (False, 4, 0)
    """
    if batch_size < 2:
        raise ValueError(f"standing statistics need batches of >= 2 latents (BatchNorm's "
                         f"training mode), got batch_size={batch_size}")
    if labels is not None and len(labels) != len(latents):
        raise ValueError(f"standing statistics take one label per latent, got {len(labels)} "
                         f"labels for {len(latents)} latents")
    if len(latents) < 2:
        raise ValueError(f"standing statistics need >= 2 latents, got {len(latents)}")
    standing = copy.deepcopy(generator)
    norms = [m for m in standing.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    if not norms:
        return standing.eval()
    momenta = [m.momentum for m in norms]
    for m in norms:
        m.reset_running_stats()
        m.momentum = None  # a cumulative average: every batch counts the same
    standing.train()
    for start in range(0, len(latents), batch_size):
        z = latents[start : start + batch_size]
        if len(z) < 2:  # a last batch of one frame: BatchNorm cannot train on it
            break
        if labels is None:
            standing(z)
        else:
            standing(z, labels[start : start + batch_size])
    for m, momentum in zip(norms, momenta, strict=True):
        m.momentum = momentum
    return standing.eval()
