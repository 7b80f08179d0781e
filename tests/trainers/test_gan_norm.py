"""The DCGAN generator's normalisation (``g_norm``): the book's BatchNorm or conditional
BatchNorm, one gain and bias per label (game, or (game, mode))."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from gan_runs import assert_cli_refuses, assert_resume_is_exact, resume_as_saved_before
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import nn

from gan_envs.cli import main
from gan_envs.trainers.gan import GanConfig, load_checkpoint, train_gan
from gan_envs.trainers.models import ConditionalBatchNorm2d, build_models, check_g_norm
from gan_envs.trainers.sampling import load_generator


@settings(max_examples=25, deadline=None)
@given(seed=st.integers(0, 2**16), labels=st.integers(2, 6), n=st.integers(2, 9),
       channels=st.integers(1, 5))
def test_a_new_conditional_norm_is_batchnorm_and_its_labels_learn_apart(seed, labels, n,
                                                                        channels):
    torch.manual_seed(seed)
    x = torch.randn(n, channels, 3, 3)
    y = torch.randint(0, labels, (n,))
    norm, plain = ConditionalBatchNorm2d(channels, labels), nn.BatchNorm2d(channels)
    assert torch.allclose(norm(x, y), plain(x), atol=1e-6)
    assert torch.allclose(norm.running_mean, plain.running_mean)
    # a label's gain and bias move only with that label's frames
    norm(x, y).square().mul(torch.arange(x.numel()).reshape(x.shape)).sum().backward()
    unused = sorted(set(range(labels)) - set(y.tolist()))
    assert not norm.gain.weight.grad[unused].any() and not norm.bias_of.weight.grad[unused].any()
    assert norm.gain.weight.grad[y].abs().sum() > 0


def test_a_conditional_generator_uses_its_labels():
    torch.manual_seed(0)
    g, _ = build_models("dcgan", (3, 32, 32), latent_dim=8, width=16, num_classes=2,
                        g_norm="conditional")
    norms = [m for m in g.modules() if isinstance(m, ConditionalBatchNorm2d)]
    assert len(norms) == 3 and not any(isinstance(m, nn.BatchNorm2d) and m.affine
                                       for m in g.modules())
    with torch.no_grad():
        norms[-1].bias_of.weight[1] += 5.0  # label 1 only
    g.eval()
    z = torch.randn(2, 8)
    zero = g(z, labels=torch.tensor([0, 0]))
    one = g(z, labels=torch.tensor([1, 1]))
    before = build_models("dcgan", (3, 32, 32), latent_dim=8, width=16, num_classes=2)[0]
    assert zero.shape == one.shape == (2, 3, 32, 32) and not torch.allclose(zero, one)
    assert sum(p.numel() for p in g.parameters()) > sum(p.numel() for p in before.parameters())


def test_a_conditional_norm_run_trains_resumes_exactly_and_samples(tmp_path, atari32, tiny):
    a = assert_resume_is_exact(dict(g_norm="conditional", **tiny), atari32, tmp_path, 3, 1)
    split = tmp_path / "split"
    assert a["config"]["g_norm"] == "conditional" and a["version"] == 7
    # both gains of the (game, mode) labels moved in training
    gains = a["generator"]["net.1.gain.weight"]
    assert gains.shape[0] == 2 * 2 and (gains != 1).any(dim=1).all()
    run = load_generator(split)
    images = run.generate(torch.randn(4, tiny["latent_dim"]), labels=torch.tensor([0, 1] * 2))
    assert images.shape == (4, 3, 32, 32) and images.dtype == np.uint8
    with pytest.raises(ValueError, match="other g_norm"):
        train_gan(GanConfig(iterations=4, g_norm="batch", **tiny), atari32, split, resume=True)


def test_recipes_keep_the_books_norm_and_old_runs_load_with_it(tmp_path, atari32, tiny):
    assert GanConfig().resolved((3, 64, 64), 3).g_norm == "batch"
    assert GanConfig(recipe="tutorial").resolved((3, 64, 64)).g_norm == "batch"
    assert GanConfig(arch="mlp").resolved((4,)).g_norm == "batch"
    resume_as_saved_before("g_norm", tiny, atari32, tmp_path)  # a run from before g_norm
    assert load_checkpoint(tmp_path)["version"] < 7  # only conditional norms need a new reader
    modules = load_generator(tmp_path).net.modules()
    assert not any(isinstance(m, ConditionalBatchNorm2d) for m in modules)


def test_bad_norms_are_one_line_errors():
    with pytest.raises(ValueError, match="^unknown g_norm 'layer'; choose one of batch, "
                                         "conditional$"):
        check_g_norm("layer")
    with pytest.raises(ValueError, match="unknown g_norm"):
        GanConfig(g_norm="layer").resolved((3, 32, 32))
    with pytest.raises(ValueError, match="is a DCGAN layer.*g_norm='batch'"):
        GanConfig(arch="mlp", g_norm="conditional").resolved((4,), 2)
    # no labels: one game, no modes
    with pytest.raises(ValueError, match=r"has no labels.*--modes 2.*\(--g-norm batch\)$"):
        GanConfig(g_norm="conditional", modes=0, template=0).resolved((3, 32, 32), 1)
    assert GanConfig(g_norm="conditional").resolved((3, 32, 32), 1).modes == 2  # modes: labels
    with pytest.raises(ValueError, match="has no labels"):
        build_models("dcgan", (3, 32, 32), g_norm="conditional")


def test_the_command_line_option(tmp_path, capsys):
    run = tmp_path / "ok"
    assert main(["train", "gan", "GanAtari/Pong-v0", "--source", "env", "--size", "32",
                 "--out", str(run), "--iterations", "1", "--width", "16", "--batch-size", "8",
                 "--g-norm", "conditional", "--threads", "1"]) == 0
    assert load_checkpoint(run)["config"]["g_norm"] == "conditional"  # one game, two modes
    capsys.readouterr()
    assert_cli_refuses(["--g-norm", "conditional", "--modes", "0", "--template", "0"],
                       "this generator has no labels", tmp_path, capsys)


def test_conditional_norms_train_under_bf16_and_channels_last(tmp_path, atari32, tiny):
    summary = train_gan(GanConfig(iterations=1, g_norm="conditional", bf16=True,
                                  channels_last=True, **tiny), atari32, tmp_path)
    assert summary.iterations == 1
    assert load_generator(tmp_path).generate(torch.randn(2, tiny["latent_dim"]),
                                             labels=torch.tensor([0, 1])).shape == (2, 3, 32, 32)
