"""``benchmarks/gan_quality.py --fork``: a fork equals the run it came from, and any change
that would alter the iterations already run is refused with a one-line error."""

from __future__ import annotations

import pytest
import torch
from gan_runs import load_benchmark

from gan_envs.trainers.gan import GanConfig, load_checkpoint, train_gan


@pytest.fixture(scope="module")
def gan_quality():
    return load_benchmark("gan_quality")


def test_a_fork_with_a_later_decay_equals_the_straight_run(tmp_path, atari32, tiny, gan_quality):
    straight, base, forked = tmp_path / "straight", tmp_path / "base", tmp_path / "forked"
    train_gan(GanConfig(iterations=6, lr_decay=0.5, **tiny), atari32, straight)
    train_gan(GanConfig(iterations=3, **tiny), atari32, base)  # no decay: the baseline
    assert gan_quality.fork(base, forked, dict(lr_decay=0.5, **tiny), cap=6) == 3
    train_gan(GanConfig(iterations=6, lr_decay=0.5, **tiny), atari32, forked, resume=True)
    a, b = load_checkpoint(straight), load_checkpoint(forked)
    assert b["config"]["lr_decay"] == 0.5
    for net in ("generator", "discriminator", "generator_ema"):
        for k, v in a[net].items():
            assert torch.equal(v, b[net][k]), f"{net}.{k}"


def test_forks_that_would_change_the_past_are_one_line_errors(tmp_path, atari32, tiny,
                                                               gan_quality):
    base = tmp_path / "base"
    train_gan(GanConfig(iterations=3, **tiny), atari32, base)
    bad = [(dict(tiny, lr_decay=0.9), 6, "starts before the fork's iteration 3"),
           (dict(tiny, width=64), 6, "trained with other width"),
           (dict(tiny), 3, "pass a larger iterations cap")]
    for i, (config, cap, message) in enumerate(bad):
        with pytest.raises(ValueError, match=message) as error:
            gan_quality.fork(base, tmp_path / f"fork{i}", config, cap)
        assert "\n" not in str(error.value)
        assert not (tmp_path / f"fork{i}").exists()  # nothing written
