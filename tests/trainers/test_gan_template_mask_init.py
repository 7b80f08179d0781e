"""template_mask_init: where the template mask's logit starts (how open the mask begins)."""

from __future__ import annotations

import math

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

from gan_envs.trainers.gan import GanConfig, train_gan
from gan_envs.trainers.models import build_models, init_template


def _masked_generator(init: float, head: str, value: int):
    torch.manual_seed(0)
    g, _ = build_models("dcgan", (3, 32, 32), latent_dim=8, width=16, template=1,
                        g_head=head, template_mask=True, template_mask_init=init)
    pixel = value / 127.5 - 1
    init_template(g, torch.full((1, 1, 3, 32, 32), pixel))
    return g.eval(), pixel


def _mask_bias(g: torch.nn.Module, head: str) -> torch.Tensor:
    conv = g.net[-1] if head == "transpose" else g.net[-1][0]
    return conv.bias[-(1 if head == "transpose" else 4):]


@settings(max_examples=25, deadline=None)
@given(init=st.floats(-8.0, 8.0), head=st.sampled_from(["transpose", "pixelshuffle"]),
       value=st.integers(0, 255), seed=st.integers(0, 2**16))
def test_the_init_moves_only_the_mask_logit_s_bias(init, head, value, seed):
    """The generator with a mask init is the default one with the mask logit's bias moved
    to ``init`` (0: left as initialised): every other parameter equal, and its frames still
    within [-1, 1]."""
    moved, pixel = _masked_generator(init, head, value)
    default, _ = _masked_generator(0.0, head, value)
    head_bias = f"net.{len(moved.net) - 1}." + ("bias" if head == "transpose" else "0.bias")
    for (name, a), (_, b) in zip(moved.state_dict().items(), default.state_dict().items(),
                                 strict=True):
        if name == head_bias and init:  # the content channels' entries stay, the mask's move
            n = len(_mask_bias(moved, head))
            assert torch.equal(a[:-n], b[:-n]) and torch.all(a[-n:] == init), name
        else:
            assert torch.equal(a, b), name
    torch.manual_seed(seed)
    with torch.no_grad():
        out = moved(torch.randn(4, 8))
    assert out.shape == (4, 3, 32, 32) and out.abs().max() <= 1


@pytest.mark.parametrize("head", ["transpose", "pixelshuffle"])
def test_a_closed_start_gives_the_template_and_a_lower_one_sits_nearer_it(head):
    """Started far below zero the mask is shut: G's first frames are its template, exactly
    to float precision; the lower the start, the nearer the template the frames are."""
    z = torch.randn(16, 8, generator=torch.Generator().manual_seed(1))
    deviation = {}
    for init in (0.0, -2.0, -4.0, -40.0):
        g, pixel = _masked_generator(init, head, 30)
        with torch.no_grad():
            deviation[init] = (g(z) - pixel).abs().mean().item()
    assert deviation[-40.0] < 1e-6
    assert deviation[0.0] > deviation[-2.0] > deviation[-4.0] > deviation[-40.0]


def test_a_run_with_an_init_records_it_and_resumes_exactly(tmp_path, atari32, tiny):
    straight = assert_resume_is_exact(dict(template_mask_init=-2.0, log_every=1, **tiny),
                                      atari32, tmp_path)
    assert straight["config"]["template_mask_init"] == -2.0
    assert straight["config"]["template_mask"] is True and straight["version"] == 5


def test_old_runs_resume_with_the_default_init(tmp_path, atari32, tiny):
    assert GanConfig().resolved((3, 64, 64), num_envs=3).template_mask_init == 0.0
    resume_as_saved_before("template_mask_init", tiny, atari32, tmp_path)
    with pytest.raises(ValueError, match="other template_mask_init"):
        train_gan(GanConfig(iterations=3, template_mask_init=-2.0, **tiny), atari32, tmp_path,
                  resume=True)


@pytest.mark.parametrize(("config", "message"), [
    (dict(template_mask_init=math.nan), r"^template_mask_init must be a logit within ±100"),
    (dict(template_mask_init=math.inf), r"^template_mask_init must be a logit within ±100"),
    (dict(template_mask_init=1e39), r"^template_mask_init must be a logit within ±100"),
    (dict(template_mask_init=-100.5), r"^template_mask_init must be a logit within ±100"),
    (dict(template_mask_init=-2.0, template_mask=False),
     r"^template_mask_init=-2.0 starts the template mask's logit"),
    (dict(template_mask_init=-2.0, template=0, modes=0),
     r"^template_mask_init=-2.0 starts the template mask's logit"),
])
def test_an_init_that_cannot_apply_is_a_one_line_error(config, message, tmp_path, atari32,
                                                       tiny):
    assert_refused({**tiny, **config}, message, atari32, tmp_path)


def test_the_command_line_takes_an_init_and_names_a_bad_one(tmp_path, capsys):
    assert_cli_refuses(["--no-template-mask", "--template-mask-init", "-2"],
                       "template_mask_init=-2.0 starts", tmp_path, capsys)
