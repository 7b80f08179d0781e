"""template_gate: a fixed blend of G's frames with their templates, in place of the mask."""

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


def _templated_generator(num_classes: int, values: list[int], head: str, gate: float):
    torch.manual_seed(0)
    g, _ = build_models("dcgan", (3, 32, 32), latent_dim=8, width=16, num_classes=num_classes,
                        template=1, g_head=head, template_gate=gate)
    k = max(num_classes, 1)
    pixels = torch.tensor(values[:k], dtype=torch.float32) / 127.5 - 1
    init_template(g, pixels.reshape(k, 1, 1, 1, 1).expand(k, 1, 3, 32, 32))
    return g.eval(), pixels


@settings(max_examples=25, deadline=None)
@given(num_classes=st.sampled_from([0, 2, 3]),
       values=st.lists(st.integers(1, 254), min_size=3, max_size=3),
       labels=st.lists(st.integers(0, 2), min_size=1, max_size=6),
       head=st.sampled_from(["transpose", "pixelshuffle"]),
       gate=st.floats(0.01, 1.0), seed=st.integers(0, 2**16))
def test_the_gate_scales_g_s_deviation_from_the_template(num_classes, values, labels, head,
                                                        gate, seed):
    """The gated frame is ``t + gate * (ungated frame - t)`` for the same weights and
    latents; gate 1 is the ungated generator itself."""
    gated, pixels = _templated_generator(num_classes, values, head, gate)
    plain, _ = _templated_generator(num_classes, values, head, 1.0)
    assert gated.template_gate == gate
    plain.load_state_dict(gated.state_dict())  # same parameters: the gate holds none
    y = torch.tensor(labels) % max(num_classes, 1)
    torch.manual_seed(seed)
    z = torch.randn(len(labels), 8)
    args = (y,) if num_classes else ()
    with torch.no_grad():
        out, ungated = gated(z, *args), plain(z, *args)
    t = pixels[y if num_classes else torch.zeros_like(y)][:, None, None, None]
    assert out.shape == (len(labels), 3, 32, 32) and out.abs().max() <= 1
    torch.testing.assert_close(out, t + gate * (ungated - t), atol=1e-5, rtol=0)


def test_a_gated_run_resumes_exactly_and_samples_with_its_gate(tmp_path, atari32, tiny):
    config = dict(template_gate=0.5, log_every=1, **tiny)
    straight = assert_resume_is_exact(config, atari32, tmp_path)
    assert straight["version"] == 6 and straight["config"]["template_gate"] == 0.5
    assert straight["config"]["template_mask"] is False  # the recipe's mask gave way
    last = max((k for k in straight["generator"] if k.startswith("net.")
                and k.endswith(".bias")), key=lambda k: int(k.split(".")[1]))
    assert straight["generator"][last].shape == (3,)  # no mask channel
    run = load_generator(tmp_path / "split")
    assert run.net.template_gate == 0.5
    images = run.generate(torch.zeros(4, tiny["latent_dim"]), labels=torch.tensor([0, 0, 1, 1]))
    assert images.shape == (4, 3, 32, 32) and images.dtype == np.uint8


def test_old_runs_resume_without_a_gate(tmp_path, atari32, tiny):
    assert GanConfig().resolved((3, 64, 64), num_envs=3).template_gate == 0.0
    resume_as_saved_before("template_gate", tiny, atari32, tmp_path)
    assert load_checkpoint(tmp_path)["version"] == 5  # the recipe's mask, no gate
    with pytest.raises(ValueError, match="other template_gate"):
        train_gan(GanConfig(iterations=3, template_gate=0.5, **tiny), atari32, tmp_path,
                  resume=True)


@pytest.mark.parametrize(("config", "message"), [
    (dict(template_gate=1.5), r"^template_gate must be 0 \(off\) or a fraction in \(0, 1\]"),
    (dict(template_gate=-0.5), r"^template_gate must be 0 \(off\) or a fraction"),
    (dict(template_gate=float("nan")), r"^template_gate must be 0 \(off\) or a fraction"),
    (dict(template_gate=0.5, template=0, modes=0), r"^template_gate=0.5 blends G's frames"),
    (dict(template_gate=0.5, template_mask=True), r"^template_gate=0.5 is a fixed blend"),
    (dict(template_gate=0.5, arch="mlp"), r"^template_gate blends a DCGAN generator's"),
])
def test_a_gate_that_cannot_apply_is_a_one_line_error(config, message, tmp_path, atari32,
                                                      tiny):
    assert_refused({**tiny, **config}, message, atari32, tmp_path)


def test_the_command_line_takes_a_gate_and_names_a_bad_one(tmp_path, capsys):
    assert_cli_refuses(["--template", "0", "--modes", "0", "--template-gate", "0.5"],
                       "template_gate=0.5 blends", tmp_path, capsys)
