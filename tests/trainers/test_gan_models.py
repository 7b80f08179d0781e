"""The networks: the book's channel plan, sizes 32/64/128, spectral norm, the MLP."""

from __future__ import annotations

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import nn

from gan_envs.trainers.models import LatentProjection, build_models


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


@settings(max_examples=30, deadline=None)
@given(batch=st.integers(1, 5), c_in=st.integers(1, 9), c_out=st.integers(1, 9),
       bias=st.booleans(), channels_last=st.booleans(), seed=st.integers(0, 2**16))
def test_latent_projection_is_the_transposed_convolution(batch, c_in, c_out, bias,
                                                         channels_last, seed):
    """G's first layer as one matmul: the same outputs and gradients as the convolution."""
    torch.manual_seed(seed)
    layer = LatentProjection(c_in, c_out, 4, 1, 0, bias=bias)
    if channels_last:
        layer = layer.to(memory_format=torch.channels_last)
    z = torch.randn(batch, c_in, 1, 1, requires_grad=True)
    ours, conv = layer(z), nn.ConvTranspose2d.forward(layer, z)
    assert ours.shape == conv.shape == (batch, c_out, 4, 4)
    layout = torch.channels_last if channels_last else torch.contiguous_format
    assert ours.is_contiguous(memory_format=layout)  # the layout the next layer expects
    torch.testing.assert_close(ours, conv, rtol=1e-5, atol=1e-5)
    weights = [z, layer.weight] + ([layer.bias] if bias else [])
    upstream = torch.randn_like(conv)
    for g_ours, g_conv in zip(torch.autograd.grad(ours, weights, upstream),
                              torch.autograd.grad(conv, weights, upstream), strict=True):
        torch.testing.assert_close(g_ours, g_conv, rtol=1e-4, atol=1e-5)


def test_latent_projection_keeps_the_checkpoint_layout():
    """Runs saved with nn.ConvTranspose2d as G's first layer load and give the same frames."""
    g, _ = build_models("dcgan", (3, 32, 32), latent_dim=8, width=16)
    assert isinstance(g.net[0], LatentProjection)
    old = nn.Sequential(nn.ConvTranspose2d(8, 16, 4, 1, 0))
    old[0].load_state_dict(g.net[0].state_dict())  # same names and shapes
    z = torch.randn(3, 8, 1, 1)
    torch.testing.assert_close(g.net[0](z), old(z), rtol=1e-5, atol=1e-5)
    larger = LatentProjection(8, 16, 4, 1, 0)  # a larger input falls back to the convolution
    x = torch.randn(2, 8, 3, 3)
    torch.testing.assert_close(larger(x), nn.ConvTranspose2d.forward(larger, x))
