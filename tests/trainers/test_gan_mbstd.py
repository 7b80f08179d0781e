"""Minibatch standard deviation in D (``mbstd_group``): batch-dependent, trains, old runs load."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from gan_envs.trainers import sampling
from gan_envs.trainers.gan import CHECKPOINT_NAME, GanConfig, load_checkpoint, train_gan
from gan_envs.trainers.models import MinibatchStd, build_models


def test_minibatch_std_is_the_group_std():
    h = torch.randn(8, 3, 2, 2)
    out = MinibatchStd(4)(h)
    assert out.shape == (8, 4, 2, 2) and torch.equal(out[:, :3], h)
    expected = h[:4].std(dim=0, unbiased=False).mean()
    assert torch.allclose(out[:4, 3], expected.expand(4, 2, 2), atol=1e-4)
    same = MinibatchStd(4)(h[:1].expand(8, 3, 2, 2))
    assert same[:, 3].abs().max() < 1e-3  # identical frames: (almost) zero std
    assert MinibatchStd(4)(torch.randn(6, 5)).shape == (6, 6)  # group 3 divides 6; vectors
    with pytest.raises(ValueError, match="mbstd group"):
        MinibatchStd(1)


def test_minibatch_std_with_labels_is_the_std_within_each_label():
    torch.manual_seed(0)
    frames = torch.randn(3, 4, 2, 2)  # one frame per game
    labels = torch.tensor([0, 1, 2, 0, 1, 2, 0, 1])
    collapsed = frames[labels]  # every game drawn as one frame: mixed groups still vary
    assert MinibatchStd(4)(collapsed)[:, 4].min() > 0.3
    assert MinibatchStd(4)(collapsed, labels)[:, 4].abs().max() < 1e-3
    h = torch.randn(8, 4, 2, 2)
    out = MinibatchStd(4)(h, labels)
    for k in range(3):
        expected = h[labels == k].std(dim=0, unbiased=False).mean()
        assert torch.allclose(out[labels == k, 4], expected.expand(int((labels == k).sum()),
                                                                     2, 2), atol=1e-4)


def test_minibatch_std_per_label_singletons_and_bf16():
    torch.manual_seed(0)
    h = torch.randn(7, 4, 2, 2)
    labels = torch.tensor([0, 0, 0, 1, 1, 1, 2])  # label 2 has one frame in the batch
    out = MinibatchStd(4)(h, labels)[:, 4, 0, 0]
    assert torch.allclose(out[6], (out[0] + out[3]) / 2)  # not 0, the tell of collapse
    collapsed = torch.full((8, 4, 2, 2), 5.0)  # identical frames: the value stays ~1e-4 in bf16
    with torch.autocast("cpu", dtype=torch.bfloat16):
        value = MinibatchStd(4)(collapsed, torch.tensor([0, 1] * 4))[:, 4]
    assert value.abs().max() < 1e-3


@pytest.mark.parametrize("arch", ["dcgan", "mlp"])
@pytest.mark.parametrize("num_classes", [0, 3])
def test_discriminator_output_depends_on_the_rest_of_the_batch(arch, num_classes):
    torch.manual_seed(0)
    _, d = build_models(arch, (3, 32, 32), 8, spectral_norm=True, width=16,
                        num_classes=num_classes, mbstd_group=4)
    _, plain = build_models(arch, (3, 32, 32), 8, spectral_norm=True, width=16,
                            num_classes=num_classes)
    d.eval(), plain.eval()
    labels = (torch.zeros(4, dtype=torch.long),) if num_classes else ()
    x = torch.rand(4, 3, 32, 32) * 2 - 1
    collapsed = x.clone()
    collapsed[1:] = x[0]  # the same first frame, its batch-mates replaced by copies of it
    with torch.no_grad():
        assert not torch.allclose(d(x, *labels)[0], d(collapsed, *labels)[0])
        assert torch.equal(plain(x, *labels)[0], plain(collapsed, *labels)[0])
    # only the last layer's input grows by one channel; no new parameters
    assert set(d.state_dict()) == set(plain.state_dict())


def test_mbstd_trains_resumes_and_is_the_fast_recipes_default(tmp_path, atari32, tiny):
    summary = train_gan(GanConfig(iterations=2, mbstd_group=4, **tiny), atari32, tmp_path / "a")
    assert all(np.isfinite(v) for v in summary.metrics.values())
    assert load_checkpoint(tmp_path / "a")["config"]["mbstd_group"] == 4
    assert train_gan(GanConfig(iterations=3), atari32, tmp_path / "a", resume=True).iterations == 3
    summary = train_gan(GanConfig(iterations=2, mbstd_group=4, bf16=True, **tiny), atari32,
                        tmp_path / "bf16")
    assert all(np.isfinite(v) for v in summary.metrics.values())
    with pytest.raises(ValueError, match=r"mbstd_group \(--mbstd-group\) must be 0"):
        GanConfig(mbstd_group=1).resolved((3, 32, 32))
    assert GanConfig(recipe="tutorial").resolved((3, 32, 32)).mbstd_group == 0
    assert GanConfig().resolved((3, 32, 32)).mbstd_group == 4
    assert GanConfig(mbstd_group=0).resolved((3, 32, 32)).mbstd_group == 0


def test_checkpoints_from_before_mbstd_load_and_resume(tmp_path, atari32, tiny):
    """A run saved before ``mbstd_group`` existed: no such key in its config."""
    train_gan(GanConfig(iterations=2, mbstd_group=0, **tiny), atari32, tmp_path)
    path = tmp_path / CHECKPOINT_NAME
    ckpt = torch.load(path)
    del ckpt["config"]["mbstd_group"]
    torch.save(ckpt, path)
    assert sampling.sample(tmp_path, n=2).shape == (2, 3, 32, 32)
    assert train_gan(GanConfig(iterations=3), atari32, tmp_path, resume=True).iterations == 3
    assert load_checkpoint(tmp_path)["config"]["mbstd_group"] == 0
