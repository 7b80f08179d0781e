"""The generator's output template (``template``): shapes, initialisation, training, resume."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from gan_envs.trainers.data import ArrayFrameSource
from gan_envs.trainers.gan import GanConfig, load_checkpoint, train_gan
from gan_envs.trainers.models import TEMPLATE_CLAMP, build_models, init_template
from gan_envs.trainers.sampling import load_generator


def _zero_residual(generator: torch.nn.Module) -> None:
    """Zero the last layer, so that the generator draws its template and nothing else."""
    last = generator.net[-1]
    torch.nn.init.zeros_(last.weight)
    torch.nn.init.zeros_(last.bias)


@pytest.mark.parametrize("arch, shape", [("dcgan", (3, 32, 32)), ("mlp", (5,))])
@pytest.mark.parametrize("num_classes", [0, 3])
def test_without_a_template_the_networks_are_unchanged(arch, shape, num_classes):
    torch.manual_seed(0)
    plain, _ = build_models(arch, shape, latent_dim=8, width=16, num_classes=num_classes)
    torch.manual_seed(0)
    with_template, _ = build_models(arch, shape, latent_dim=8, width=16,
                                    num_classes=num_classes, template=True)
    assert "template" not in plain.state_dict()
    assert with_template.template.shape[0] == max(num_classes, 1)
    keys = set(with_template.state_dict()) - {"template"}
    assert keys == set(plain.state_dict())
    labels = (torch.tensor([0, 2]),) if num_classes else ()
    z = torch.randn(2, 8)
    plain.eval(), with_template.eval()
    # a zero template adds nothing: the same weights draw the same frames
    assert torch.equal(plain(z, *labels), with_template(z, *labels))


@settings(max_examples=25, deadline=None)
@given(num_classes=st.sampled_from([0, 2, 3]),
       values=st.lists(st.integers(0, 255), min_size=3, max_size=3),
       labels=st.lists(st.integers(0, 2), min_size=1, max_size=6))
def test_a_zero_residual_draws_each_labels_template(num_classes, values, labels):
    g, _ = build_models("dcgan", (3, 32, 32), latent_dim=8, width=16,
                        num_classes=num_classes, template=True)
    _zero_residual(g)
    k = max(num_classes, 1)
    pixels = torch.tensor(values[:k], dtype=torch.float32)
    frames = (pixels / 127.5 - 1).reshape(k, 1, 1, 1).expand(k, 3, 32, 32)
    init_template(g, frames)
    y = torch.tensor(labels) % k
    out = g.eval()(torch.randn(len(labels), 8), *((y,) if num_classes else ()))
    drawn = ((out + 1) * 127.5).round()  # quantised as the data and the evaluation are
    expected = pixels[y if num_classes else torch.zeros_like(y)]
    assert torch.equal(drawn[:, :, 5, 7], expected[:, None].expand(-1, 3))
    assert out.abs().max() <= TEMPLATE_CLAMP + 1e-6


def test_init_template_refuses_the_wrong_shape_or_a_plain_generator():
    g, _ = build_models("dcgan", (3, 32, 32), latent_dim=8, width=16, num_classes=2,
                        template=True)
    with pytest.raises(ValueError, match="holds 2 frame") as excinfo:
        init_template(g, torch.zeros(3, 3, 32, 32))
    assert "\n" not in str(excinfo.value)
    plain, _ = build_models("dcgan", (3, 32, 32), latent_dim=8, width=16)
    with pytest.raises(ValueError, match="template=True"):
        init_template(plain, torch.zeros(1, 3, 32, 32))


def _two_games(seed: int = 0) -> ArrayFrameSource:
    """Game 0: black with a white pixel somewhere; game 1: grey 100 with a dark one."""
    rng = np.random.default_rng(seed)
    env = np.repeat([0, 1], 40)
    frames = np.where(env[:, None, None, None] == 0, 0, 100).astype(np.uint8)
    frames = np.broadcast_to(frames, (80, 3, 32, 32)).copy()
    spots = rng.integers(0, 32, (80, 2))
    frames[np.arange(80), :, spots[:, 0], spots[:, 1]] = np.where(env == 0, 255, 20)[:, None]
    return ArrayFrameSource(frames, env, ["black", "grey"])


@pytest.mark.parametrize("conditional", [True, False])
def test_training_starts_from_the_median_frames(tmp_path, tiny, conditional):
    source = _two_games()
    train_gan(GanConfig(iterations=0, template=True, conditional=conditional, **tiny),
              source, tmp_path)
    saved = load_checkpoint(tmp_path)
    assert saved["config"]["template"] is True
    drawn = torch.tanh(saved["generator"]["template"])
    if conditional:  # each game's background: -1 (black, clamped) and 100 / 127.5 - 1
        assert drawn.shape == (2, 3, 32, 32)
        assert torch.allclose(drawn[0], torch.tensor(-TEMPLATE_CLAMP))
        assert torch.allclose(drawn[1], torch.tensor(100 / 127.5 - 1))
    else:  # one template: the pooled median, between the two backgrounds
        assert drawn.shape == (1, 3, 32, 32)
        assert drawn.min() >= -TEMPLATE_CLAMP - 1e-6 and drawn.max() <= 100 / 127.5 - 1 + 1e-6
    assert torch.equal(saved["generator_ema"]["template"], saved["generator"]["template"])


def test_template_run_trains_resumes_exactly_and_samples(tmp_path, atari32, tiny):
    config = dict(template=True, **tiny)
    train_gan(GanConfig(iterations=4, **config), atari32, tmp_path / "straight")
    train_gan(GanConfig(iterations=2, **config), atari32, tmp_path / "split")
    train_gan(GanConfig(iterations=4, **config), atari32, tmp_path / "split", resume=True)
    straight, split = load_checkpoint(tmp_path / "straight"), load_checkpoint(tmp_path / "split")
    for net in ("generator", "discriminator", "generator_ema"):
        for k, v in straight[net].items():
            assert torch.equal(v, split[net][k]), f"{net}.{k}"
    train_gan(GanConfig(iterations=0, **config), atari32, tmp_path / "start")
    start = load_checkpoint(tmp_path / "start")["generator"]["template"]
    assert not torch.equal(straight["generator"]["template"], start)  # it is trained
    run = load_generator(tmp_path / "split")
    images = run.generate(torch.zeros(4, tiny["latent_dim"]),
                          labels=torch.tensor([0, 0, 1, 1]))
    assert images.shape == (4, 3, 32, 32) and images.dtype == np.uint8


def test_recipes_leave_the_template_off_and_resume_refuses_a_change(tmp_path, atari32, tiny):
    assert GanConfig().resolved((3, 64, 64)).template is False
    assert GanConfig(recipe="tutorial").resolved((3, 64, 64)).template is False
    train_gan(GanConfig(iterations=1, **tiny), atari32, tmp_path)
    with pytest.raises(ValueError, match="other template"):
        train_gan(GanConfig(iterations=2, template=True, **tiny), atari32, tmp_path,
                  resume=True)
