"""Class-conditional GANs (env labels), bf16 autocast, and loading runs saved before them."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from gan_envs.trainers import sampling
from gan_envs.trainers.data import ArrayFrameSource
from gan_envs.trainers.gan import CHECKPOINT_NAME, GanConfig, load_checkpoint, train_gan
from gan_envs.trainers.models import build_models


@pytest.mark.parametrize("arch", ["dcgan", "mlp"])
def test_conditional_networks_use_the_label(arch):
    torch.manual_seed(0)
    g, d = build_models(arch, (3, 32, 32), 8, spectral_norm=True, width=16, num_classes=3)
    g.eval()
    z = torch.randn(2, 8)
    a, b = g(z, torch.tensor([0, 0])), g(z, torch.tensor([1, 2]))
    assert a.shape == (2, 3, 32, 32) and not torch.equal(a, b)
    x = torch.rand(2, 3, 32, 32)
    assert not torch.equal(d(x, torch.tensor([0, 0])), d(x, torch.tensor([1, 2])))
    with pytest.raises(ValueError, match="pass labels"):
        g(z)
    with pytest.raises(ValueError, match="num_classes must be 0"):
        build_models(arch, (3, 32, 32), 8, num_classes=1)


def test_unconditional_networks_keep_their_parameter_names():
    g, d = build_models("dcgan", (3, 32, 32), 8, width=16)
    assert not any("embed" in k for k in [*g.state_dict(), *d.state_dict()])


def test_fast_recipe_is_conditional_on_labelled_data_only(tmp_path, atari32, tiny):
    train_gan(GanConfig(iterations=2, **tiny), atari32, tmp_path / "labelled")
    ckpt = load_checkpoint(tmp_path / "labelled")
    assert ckpt["config"]["conditional"] is True
    assert torch.allclose(ckpt["label_probs"].sum(), torch.tensor(1.0, dtype=torch.float64))
    unlabelled = ArrayFrameSource(atari32.frames)
    train_gan(GanConfig(iterations=1, **tiny), unlabelled, tmp_path / "plain")
    assert load_checkpoint(tmp_path / "plain")["config"]["conditional"] is False
    train_gan(GanConfig(iterations=1, recipe="tutorial", **tiny), atari32, tmp_path / "tut")
    assert load_checkpoint(tmp_path / "tut")["config"]["conditional"] is False
    with pytest.raises(ValueError,
                       match=r"conditional=True \(--conditional\) needs frames labelled"):
        train_gan(GanConfig(iterations=1, conditional=True, **tiny), unlabelled, tmp_path / "x")


def test_conditional_sampling_by_env(tiny_run):
    gen = sampling.load_generator(tiny_run)
    assert gen.conditional and gen.env_ids == ["ALE/Breakout-v5", "ALE/Pong-v5"]
    assert gen.env_index("Pong") == 1 and gen.env_index("ALE/Breakout-v5") == 0
    # default labels follow the data's proportions exactly (rounded counts), shuffled by seed
    labels = gen.labels(100, seed=0)
    expected = torch.round(gen.label_probs * 100).long()
    assert torch.equal(torch.bincount(labels, minlength=2), expected)
    pong = sampling.sample(tiny_run, n=4, env="Pong")
    breakout = sampling.sample(tiny_run, n=4, env=0)
    assert pong.shape == (4, 3, 32, 32) and not np.array_equal(pong, breakout)
    assert sampling.sweep(tiny_run, 3, steps=4, env="Pong").shape == (4, 3, 32, 32)
    assert sampling.interpolate(tiny_run, 1, 2, steps=3, env="Pong").shape == (3, 3, 32, 32)
    with pytest.raises(ValueError, match="unknown env 'Qbert'"):
        sampling.sample(tiny_run, n=1, env="Qbert")


def test_unconditional_run_refuses_an_env(tmp_path, atari32, tiny):
    train_gan(GanConfig(iterations=1, conditional=False, **tiny), atari32, tmp_path)
    assert sampling.sample(tmp_path, n=2).shape == (2, 3, 32, 32)
    with pytest.raises(ValueError, match="unconditional"):
        sampling.sample(tmp_path, n=1, env="Pong")


def test_version_1_checkpoints_still_load_and_resume(tmp_path, atari32, tiny):
    """A checkpoint written before conditioning existed: no conditional/bf16 in its config."""
    train_gan(GanConfig(iterations=2, conditional=False, **tiny), atari32, tmp_path)
    path = tmp_path / CHECKPOINT_NAME
    ckpt = torch.load(path)
    ckpt["version"] = 1
    for key in ("label_probs", "fixed_labels"):
        del ckpt[key]
    for key in ("conditional", "bf16"):
        del ckpt["config"][key]
    torch.save(ckpt, path)
    assert sampling.sample(tmp_path, n=2).shape == (2, 3, 32, 32)
    summary = train_gan(GanConfig(iterations=3), atari32, tmp_path, resume=True)
    assert summary.iterations == 3
    assert load_checkpoint(tmp_path)["config"]["conditional"] is False


def test_bf16_autocast_trains_and_keeps_float32_weights(tmp_path, atari32, tiny):
    summary = train_gan(GanConfig(iterations=2, bf16=True, **tiny), atari32, tmp_path)
    assert all(np.isfinite(v) for v in summary.metrics.values())
    ckpt = load_checkpoint(tmp_path)
    assert ckpt["config"]["bf16"] is True
    assert all(v.dtype == torch.float32 for v in ckpt["generator"].values()
               if v.is_floating_point())
