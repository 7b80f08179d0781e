"""The DCGAN generator's last layer (``g_head``): the book's transposed convolution or a
3x3 convolution and a pixel shuffle."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import nn

from gan_envs.cli import main
from gan_envs.trainers.gan import GanConfig, load_checkpoint, train_gan
from gan_envs.trainers.models import build_models, check_head
from gan_envs.trainers.sampling import load_generator


@pytest.mark.parametrize("size", [32, 64, 128])
def test_a_pixel_shuffle_head_keeps_the_books_other_stages(size):
    g, _ = build_models("dcgan", (3, size, size), latent_dim=8, width=16, g_head="pixelshuffle")
    book, _ = build_models("dcgan", (3, size, size), latent_dim=8, width=16)
    head = g.net[-1]
    assert isinstance(head[0], nn.Conv2d) and isinstance(head[1], nn.PixelShuffle)
    assert (head[0].kernel_size, head[0].out_channels) == ((3, 3), 12)
    # every stage but the last is the book's
    assert [p.shape for p in g.net[:-1].parameters()] == [p.shape for p in
                                                          book.net[:-1].parameters()]
    images = g(torch.randn(5, 8))
    assert images.shape == (5, 3, size, size) and images.abs().max() <= 1


@settings(max_examples=25, deadline=None)
@given(seed=st.integers(0, 2**16), channels=st.sampled_from([1, 3]),
       shape=st.tuples(st.integers(1, 3), st.integers(1, 8), st.integers(1, 6), st.integers(1, 6)))
def test_the_pixel_shuffle_head_starts_as_a_nearest_upsampling(seed, channels, shape):
    torch.manual_seed(seed)
    n, c_in, h, w = shape
    g, _ = build_models("dcgan", (channels, 32, 32), latent_dim=4, width=4 * c_in,
                        g_head="pixelshuffle")
    head = g.net[-1]
    features = torch.randn(n, head[0].in_channels, h, w)
    out = head(features)
    assert out.shape == (n, channels, 2 * h, 2 * w)
    blocks = out.reshape(n, channels, h, 2, w, 2)
    assert torch.allclose(blocks, blocks[:, :, :, :1, :, :1].expand_as(blocks), atol=1e-6)
    # ... and the four positions of a block learn apart (their weights are separate)
    out.square().mul(torch.arange(out.numel()).reshape(out.shape)).sum().backward()
    grad = head[0].weight.grad.reshape(channels, 4, -1)
    assert not torch.allclose(grad[:, 0], grad[:, 3])


def test_a_pixel_shuffle_run_trains_resumes_exactly_and_samples(tmp_path, atari32, tiny):
    config = dict(g_head="pixelshuffle", **tiny)
    straight, split = tmp_path / "straight", tmp_path / "split"
    train_gan(GanConfig(iterations=3, **config), atari32, straight)
    train_gan(GanConfig(iterations=1, **config), atari32, split)
    train_gan(GanConfig(iterations=3, **config), atari32, split, resume=True)
    a, b = load_checkpoint(straight), load_checkpoint(split)
    assert a["config"]["g_head"] == "pixelshuffle"
    for net in ("generator", "discriminator", "generator_ema"):
        for k, v in a[net].items():
            assert torch.equal(v, b[net][k]), f"{net}.{k}"
    run = load_generator(split)
    assert isinstance(run.net.net[-1][1], nn.PixelShuffle)
    images = run.generate(torch.randn(4, tiny["latent_dim"]), labels=torch.tensor([0, 1] * 2))
    assert images.shape == (4, 3, 32, 32) and images.dtype == np.uint8
    with pytest.raises(ValueError, match="other g_head"):
        train_gan(GanConfig(iterations=4, g_head="transpose", **tiny), atari32, split,
                  resume=True)


def test_recipes_keep_the_books_head_and_old_runs_load_with_it(tmp_path, atari32, tiny):
    assert GanConfig().resolved((3, 64, 64)).g_head == "transpose"
    assert GanConfig(recipe="tutorial").resolved((3, 64, 64)).g_head == "transpose"
    assert GanConfig(arch="mlp").resolved((4,)).g_head == "transpose"
    train_gan(GanConfig(iterations=1, **tiny), atari32, tmp_path)
    ckpt = load_checkpoint(tmp_path)
    del ckpt["config"]["g_head"]  # a run saved before g_head existed
    torch.save(ckpt, tmp_path / "checkpoint.pt")
    assert isinstance(load_generator(tmp_path).net.net[-1], nn.ConvTranspose2d)
    assert train_gan(GanConfig(iterations=2, **tiny), atari32, tmp_path,
                     resume=True).iterations == 2
    assert json.loads((tmp_path / "config.json").read_text())["g_head"] == "transpose"


def test_bad_heads_are_one_line_errors(tmp_path, capsys):
    with pytest.raises(ValueError, match="^unknown g_head 'upsample'; choose one of "
                                         "transpose, pixelshuffle$"):
        check_head("upsample")
    with pytest.raises(ValueError, match="unknown g_head"):
        GanConfig(g_head="upsample").resolved((3, 32, 32))
    with pytest.raises(ValueError, match="is a DCGAN layer.*arch='dcgan'"):
        GanConfig(arch="mlp", g_head="pixelshuffle").resolved((4,))
    with pytest.raises(ValueError, match="unknown g_head"):
        build_models("dcgan", (3, 32, 32), g_head="bilinear")
    with pytest.raises(ValueError, match="is a DCGAN layer"):  # the library refuses it too
        build_models("mlp", (4,), g_head="pixelshuffle")
    with pytest.raises(SystemExit):
        main(["train", "gan", str(tmp_path / "x.h5"), "--out", str(tmp_path / "run"),
              "--g-head", "bilinear"])
    assert "invalid choice: 'bilinear'" in capsys.readouterr().err
