"""The networks: the book's channel plan, sizes 32/64/128, spectral norm, the MLP."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from gan_envs.trainers.models import build_models


def _channels(net: nn.Module, kind: type) -> list[int]:
    return [m.out_channels for m in net.modules() if isinstance(m, kind)]


@pytest.mark.parametrize("size, g_channels", [
    (32, [512, 256, 128, 3]),
    (64, [512, 256, 128, 64, 3]),  # the book's Atari generator
    (128, [512, 256, 128, 64, 32, 3]),  # the course slides' 128x128 generator
])
def test_dcgan_channel_plan(size, g_channels):
    g, d = build_models("dcgan", (3, size, size))
    assert _channels(g, nn.ConvTranspose2d) == g_channels
    assert _channels(d, nn.Conv2d) == g_channels[-2::-1] + [1]


@pytest.mark.parametrize("size", [32, 64, 128])
@pytest.mark.parametrize("channels", [1, 3])
def test_dcgan_shapes(size, channels):
    g, d = build_models("dcgan", (channels, size, size), latent_dim=8, width=16)
    images = g(torch.randn(2, 8))
    assert images.shape == (2, channels, size, size) and images.abs().max() <= 1
    assert d(images).shape == (2,)


def test_spectral_norm_replaces_batchnorm_in_d():
    _, d = build_models("dcgan", (3, 32, 32), spectral_norm=True, width=16)
    assert not any(isinstance(m, nn.BatchNorm2d) for m in d.modules())
    assert all(hasattr(m, "parametrizations") for m in d.modules() if isinstance(m, nn.Conv2d))
    _, d_book = build_models("dcgan", (3, 32, 32), width=16)
    assert sum(isinstance(m, nn.BatchNorm2d) for m in d_book.modules()) == 2  # not the first
    assert not any(isinstance(m, nn.LeakyReLU) for m in d_book.modules())  # the book's ReLU


def test_mlp_matches_the_tutorials():
    g, d = build_models("mlp", (4,))
    assert [m.out_features for m in g.modules() if isinstance(m, nn.Linear)] == [256, 512, 1024, 4]
    assert [m.out_features for m in d.modules() if isinstance(m, nn.Linear)] == [1024, 512, 256, 1]
    assert g(torch.zeros(3, 100)).shape == (3, 4) and d(torch.zeros(3, 4)).shape == (3,)
    g_img, _ = build_models("mlp", (1, 8, 8), latent_dim=4, width=8)
    assert g_img(torch.zeros(2, 4)).shape == (2, 1, 8, 8)


@pytest.mark.parametrize("arch, shape", [("dcgan", (3, 32, 32)), ("mlp", (4,))])
def test_discriminator_width_of_its_own(arch, shape):
    g, d = build_models(arch, shape, latent_dim=8, width=16, d_width=64)
    g_same, d_same = build_models(arch, shape, latent_dim=8, width=16)
    assert [p.shape for p in g.parameters()] == [p.shape for p in g_same.parameters()]
    assert sum(p.numel() for p in d.parameters()) > 4 * sum(p.numel() for p in d_same.parameters())
    assert d(g(torch.randn(2, 8))).shape == (2,)
