"""The learning-rate decay (``lr_decay``): both rates fall linearly to zero over the last part of
the run, resumably."""

from __future__ import annotations

import json
import math

import pytest
import torch
from gan_runs import assert_cli_refuses, resume_as_saved_before
from hypothesis import given, settings
from hypothesis import strategies as st

from gan_envs.trainers.gan import GanConfig, load_checkpoint, lr_factor, train_gan


@settings(max_examples=200, deadline=None)
@given(iterations=st.integers(1, 5_000), decay=st.floats(0.0, 1.0), data=st.data())
def test_the_factor_is_one_then_falls_linearly_and_never_reaches_zero(iterations, decay, data):
    t = data.draw(st.integers(1, iterations))
    factor = lr_factor(t, iterations, decay)
    assert 0.0 < factor <= 1.0
    span = decay * iterations
    if t <= iterations - span + 1:
        assert factor == 1.0
    else:  # on the line through (end + 1, 0) with slope 1 / span
        assert factor == pytest.approx((iterations + 1 - t) / span)
    if t < iterations:
        assert lr_factor(t + 1, iterations, decay) <= factor


def test_recipes_keep_constant_rates_and_old_runs_resume_with_them(tmp_path, atari32, tiny):
    for recipe, arch, shape in (("fast", "dcgan", (3, 64, 64)), ("tutorial", "dcgan",
                                (3, 64, 64)), ("fast", "mlp", (4,))):
        assert GanConfig(recipe=recipe, arch=arch).resolved(shape).lr_decay == 0.0
    resume_as_saved_before("lr_decay", tiny, atari32, tmp_path)
    assert json.loads((tmp_path / "config.json").read_text())["lr_decay"] == 0.0


def _rates(ckpt: dict) -> list[float]:
    return [g["lr"] for opt in ("opt_g", "opt_d") for g in ckpt[opt]["param_groups"]]


def test_a_decaying_run_ends_at_the_last_factor_and_resumes_exactly(tmp_path, atari32, tiny):
    config = dict(iterations=6, lr_decay=0.5, template_lr=1.0, **tiny)
    straight, split = tmp_path / "straight", tmp_path / "split"
    train_gan(GanConfig(**config), atari32, straight)

    def stop_after_four(iteration: int, metrics: dict[str, float]) -> None:
        if iteration == 4:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        train_gan(GanConfig(**config), atari32, split, progress=stop_after_four)
    assert load_checkpoint(split)["iteration"] == 4
    train_gan(GanConfig(**config), atari32, split, resume=True)
    a, b = load_checkpoint(straight), load_checkpoint(split)
    for net in ("generator", "discriminator", "generator_ema"):
        for k, v in a[net].items():
            assert torch.equal(v, b[net][k]), f"{net}.{k}"
    cfg = GanConfig(**config).resolved((3, 32, 32), 2)
    last = lr_factor(6, 6, 0.5)  # 1/3: G, its templates and D alike
    assert _rates(a) == _rates(b) == pytest.approx(
        [cfg.lr_g * last, cfg.lr_g * cfg.template_lr * last, cfg.lr_d * last])
    # constant rates without the decay
    train_gan(GanConfig(iterations=2, **tiny), atari32, tmp_path / "flat")
    flat = GanConfig(**tiny).resolved((3, 32, 32), 2)
    assert _rates(load_checkpoint(tmp_path / "flat")) == pytest.approx(
        [flat.lr_g, flat.lr_g * flat.template_lr, flat.lr_d])


@pytest.mark.parametrize("bad", [-0.1, 1.5, float("nan")])
def test_bad_decays_are_one_line_errors(bad, tmp_path, capsys):
    with pytest.raises(ValueError, match=r"^lr_decay must be a fraction of the iterations in "
                                         r"\[0, 1\], got .*--lr-decay 0.25"):
        GanConfig(lr_decay=bad).resolved((3, 32, 32))
    assert_cli_refuses(["--lr-decay", str(bad)], "argument --lr-decay: must be a finite "
                       "number, got nan" if math.isnan(bad) else "lr_decay must be a fraction",
                       tmp_path, capsys)
