"""template_mask: a mask channel that blends G's frames with their templates."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from gan_runs import (
    assert_cli_refuses,
    assert_refused,
    assert_resume_is_exact,
    resume_as_saved_before,
)
from hypothesis import given, settings
from hypothesis import strategies as st

from gan_envs.trainers.gan import GanConfig, load_checkpoint, train_gan
from gan_envs.trainers.models import build_models, init_template
from gan_envs.trainers.sampling import load_generator


def _masked_generator(num_classes: int, values: list[int], head: str = "transpose"):
    g, _ = build_models("dcgan", (3, 32, 32), latent_dim=8, width=16, num_classes=num_classes,
                        template=1, g_head=head, template_mask=True)
    k = max(num_classes, 1)
    pixels = torch.tensor(values[:k], dtype=torch.float32)
    init_template(g, (pixels / 127.5 - 1).reshape(k, 1, 1, 1, 1).expand(k, 1, 3, 32, 32))
    return g.eval(), pixels


@settings(max_examples=25, deadline=None)
@given(num_classes=st.sampled_from([0, 2, 3]),
       values=st.lists(st.integers(0, 255), min_size=3, max_size=3),
       labels=st.lists(st.integers(0, 2), min_size=1, max_size=6),
       head=st.sampled_from(["transpose", "pixelshuffle"]), seed=st.integers(0, 2**16))
def test_a_closed_mask_draws_the_template_whatever_the_frame(num_classes, values, labels,
                                                               head, seed):
    """With the mask's logit pushed low every pixel is its label's template, exactly, while
    G's colour channels stay random; opened, the same latents draw G's own frame."""
    torch.manual_seed(seed)
    g, pixels = _masked_generator(num_classes, values, head)
    last = g.net[-1] if head == "transpose" else g.net[-1][0]
    k = max(num_classes, 1)
    y = torch.tensor(labels) % k
    z = torch.randn(len(labels), 8)
    args = (y,) if num_classes else ()
    with torch.no_grad():
        last.bias[-(4 if head == "pixelshuffle" else 1):] = -60.0  # sigmoid(-60) ~ 1e-26
        closed = g(z, *args)
        last.bias[-(4 if head == "pixelshuffle" else 1):] = 60.0
        opened = g(z, *args)
    assert closed.shape == opened.shape == (len(labels), 3, 32, 32)
    drawn = ((closed + 1) * 127.5).round()
    expected = pixels[y if num_classes else torch.zeros_like(y)]
    assert torch.equal(drawn, expected[:, None, None, None].expand_as(drawn))
    assert opened.abs().max() <= 1 and not torch.equal(opened, closed)


def test_a_masked_run_trains_the_mask_resumes_exactly_and_samples(tmp_path, atari32, tiny):
    config = dict(template_mask=True, log_every=1, **tiny)
    train_gan(GanConfig(iterations=0, **config), atari32, tmp_path / "start")
    straight = assert_resume_is_exact(config, atari32, tmp_path)
    start = load_checkpoint(tmp_path / "start")["generator"]
    last = max((k for k in start if k.startswith("net.") and k.endswith(".bias")),
               key=lambda k: int(k.split(".")[1]))
    assert start[last].shape == (4,)  # three colours and the mask
    assert start[last][-1] != straight["generator"][last][-1]  # the mask learns
    run = load_generator(tmp_path / "split")
    images = run.generate(torch.zeros(4, tiny["latent_dim"]), labels=torch.tensor([0, 0, 1, 1]))
    assert images.shape == (4, 3, 32, 32) and images.dtype == np.uint8


def test_the_fast_recipe_masks_its_templates_and_old_runs_resume_without(tmp_path, atari32,
                                                                         tiny):
    assert GanConfig().resolved((3, 64, 64), num_envs=3).template_mask is True
    assert GanConfig(recipe="tutorial").resolved((3, 64, 64)).template_mask is False
    # where the recipe's templates are off or cannot be, so is its mask (no error)
    for no_templates in (dict(template=0, modes=0), dict(arch="mlp")):
        assert GanConfig(**no_templates).resolved((3, 64, 64)).template_mask is False
    assert GanConfig(arch="mlp").resolved((4,)).template_mask is False  # vector frames
    assert GanConfig(template_mask=False).resolved((3, 64, 64)).template_mask is False
    # a run saved before the option (no mask, no field) resumes as it was, without a mask
    resume_as_saved_before("template_mask", tiny, atari32, tmp_path, old=False)
    assert train_gan(GanConfig(iterations=3, template_mask=False, **tiny), atari32, tmp_path,
                     resume=True).iterations == 3  # asking for what it was is no change
    with pytest.raises(ValueError, match="other template_mask"):
        train_gan(GanConfig(iterations=3, template_mask=True, **tiny), atari32, tmp_path,
                  resume=True)


@pytest.mark.parametrize("config", [dict(template=0, modes=0), dict(arch="mlp")])
def test_a_mask_without_templates_is_a_one_line_error(config, tmp_path, atari32, tiny, capsys):
    assert_refused(dict(template_mask=True, **{**tiny, **config}),
                   r"^template_mask blends a DCGAN generator's frames", atari32, tmp_path)
    assert_cli_refuses(["--template", "0", "--modes", "0", "--template-mask"],
                       "template_mask blends", tmp_path, capsys)
