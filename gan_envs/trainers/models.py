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
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from itertools import pairwise

import torch
from torch import nn

from .data import is_image_shape

__all__ = [
    "ARCHS",
    "DCGAN_SIZES",
    "check_arch",
    "build_models",
    "build_generator",
    "DCGANGenerator",
    "DCGANDiscriminator",
    "MLPGenerator",
    "MLPDiscriminator",
]

ARCHS = ("dcgan", "mlp")
DCGAN_SIZES = (32, 64, 128)


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


def _dcgan_widths(size: int, width: int) -> list[int]:
    """Channels of the generator's stages, widest first: 512, 256, ... (log2(size) - 2 stages)."""
    stages = int(math.log2(size)) - 2
    return [max(width >> i, 1) for i in range(stages)]


def _d_act(slope: float) -> nn.Module:
    return nn.LeakyReLU(slope, inplace=True) if slope > 0 else nn.ReLU(inplace=True)


def _sn(layer: nn.Module, spectral_norm: bool) -> nn.Module:
    return nn.utils.parametrizations.spectral_norm(layer) if spectral_norm else layer


class DCGANGenerator(nn.Module):
    """Transposed-convolution generator: latent ``(N, latent_dim)`` -> images ``(N, C, S, S)``."""

    def __init__(self, frame_shape: Sequence[int], latent_dim: int = 100, width: int = 512) -> None:
        super().__init__()
        check_arch("dcgan", frame_shape)
        channels, size = int(frame_shape[0]), int(frame_shape[1])
        widths = _dcgan_widths(size, width)
        layers: list[nn.Module] = [
            nn.ConvTranspose2d(latent_dim, widths[0], 4, 1, 0),
            nn.BatchNorm2d(widths[0]),
            nn.ReLU(inplace=True),
        ]
        for w_in, w_out in pairwise(widths):
            layers += [nn.ConvTranspose2d(w_in, w_out, 4, 2, 1), nn.BatchNorm2d(w_out),
                       nn.ReLU(inplace=True)]
        layers += [nn.ConvTranspose2d(widths[-1], channels, 4, 2, 1), nn.Tanh()]
        self.latent_dim = latent_dim
        self.net = nn.Sequential(*layers)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.net(z.reshape(z.shape[0], self.latent_dim, 1, 1))


class DCGANDiscriminator(nn.Module):
    """Strided-convolution discriminator: images ``(N, C, S, S)`` -> logits ``(N,)``.

    The first convolution has no BatchNorm (as in the tutorial); ``relu_slope`` 0 gives the
    tutorial's ReLU, > 0 a LeakyReLU.
    """

    def __init__(
        self,
        frame_shape: Sequence[int],
        spectral_norm: bool = False,
        relu_slope: float = 0.0,
        width: int = 512,
    ) -> None:
        super().__init__()
        check_arch("dcgan", frame_shape)
        channels, size = int(frame_shape[0]), int(frame_shape[1])
        widths = _dcgan_widths(size, width)[::-1]
        layers: list[nn.Module] = [
            _sn(nn.Conv2d(channels, widths[0], 4, 2, 1), spectral_norm),
            _d_act(relu_slope),
        ]
        for w_in, w_out in pairwise(widths):
            layers.append(_sn(nn.Conv2d(w_in, w_out, 4, 2, 1), spectral_norm))
            if not spectral_norm:
                layers.append(nn.BatchNorm2d(w_out))
            layers.append(_d_act(relu_slope))
        layers.append(_sn(nn.Conv2d(widths[-1], 1, 4, 1, 0), spectral_norm))
        self.net = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x).reshape(-1)


class MLPGenerator(nn.Module):
    """The tutorials' MLP generator: latent -> 256 -> 512 -> 1024 -> prod(frame_shape), tanh."""

    def __init__(self, frame_shape: Sequence[int], latent_dim: int = 100, width: int = 512) -> None:
        super().__init__()
        check_arch("mlp", frame_shape)
        self.frame_shape = tuple(int(s) for s in frame_shape)
        widths = [latent_dim, width // 2, width, width * 2]
        layers: list[nn.Module] = []
        for w_in, w_out in pairwise(widths):
            layers += [nn.Linear(w_in, w_out), nn.ReLU(inplace=True)]
        layers += [nn.Linear(widths[-1], math.prod(self.frame_shape)), nn.Tanh()]
        self.latent_dim = latent_dim
        self.net = nn.Sequential(*layers)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.net(z.reshape(z.shape[0], self.latent_dim)).reshape(-1, *self.frame_shape)


class MLPDiscriminator(nn.Module):
    """The tutorials' MLP discriminator: prod(frame_shape) -> 1024 -> 512 -> 256 -> logit."""

    def __init__(
        self,
        frame_shape: Sequence[int],
        spectral_norm: bool = False,
        relu_slope: float = 0.2,
        width: int = 512,
    ) -> None:
        super().__init__()
        check_arch("mlp", frame_shape)
        widths = [math.prod(int(s) for s in frame_shape), width * 2, width, width // 2]
        layers: list[nn.Module] = [nn.Flatten()]
        for w_in, w_out in pairwise(widths):
            layers += [_sn(nn.Linear(w_in, w_out), spectral_norm), _d_act(relu_slope)]
        layers.append(_sn(nn.Linear(widths[-1], 1), spectral_norm))
        self.net = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x).reshape(-1)


def build_models(
    arch: str,
    frame_shape: Sequence[int],
    latent_dim: int = 100,
    spectral_norm: bool = False,
    relu_slope: float | None = None,
    width: int = 512,
) -> tuple[nn.Module, nn.Module]:
    """Build ``(generator, discriminator)`` for ``arch`` and ``frame_shape``.

    ``relu_slope`` is the discriminator's LeakyReLU slope (0: ReLU); None picks the tutorial's
    (0 for dcgan, 0.2 for mlp). ``width`` is the DCGAN's widest stage and the MLP's middle layer
    (512 in the tutorials; the other stages scale with it).

    Example:
        >>> import torch
        >>> g, d = build_models("dcgan", (3, 32, 32), latent_dim=8)
        >>> images = g(torch.zeros(2, 8))
        >>> tuple(images.shape), tuple(d(images).shape)
        ((2, 3, 32, 32), (2,))
    """
    generator = build_generator(arch, frame_shape, latent_dim, width)
    if arch == "dcgan":
        slope = 0.0 if relu_slope is None else relu_slope
        return generator, DCGANDiscriminator(frame_shape, spectral_norm, slope, width)
    slope = 0.2 if relu_slope is None else relu_slope
    return generator, MLPDiscriminator(frame_shape, spectral_norm, slope, width)


def build_generator(
    arch: str, frame_shape: Sequence[int], latent_dim: int = 100, width: int = 512
) -> nn.Module:
    """Build the generator of ``arch`` alone (for sampling from a checkpoint)."""
    check_arch(arch, frame_shape)
    if arch == "dcgan":
        return DCGANGenerator(frame_shape, latent_dim, width)
    return MLPGenerator(frame_shape, latent_dim, width)
