"""env_shares: each game's share of the training batches (samples keep the data's mix)."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from gan_runs import assert_cli_refuses, assert_refused
from hypothesis import given, settings
from hypothesis import strategies as st

from gan_envs.trainers.data import ArrayFrameSource
from gan_envs.trainers.gan import GanConfig, _draw_in_shares, load_checkpoint, train_gan
from gan_envs.trainers.sampling import load_generator


@settings(max_examples=25, deadline=None)
@given(counts=st.lists(st.integers(1, 60), min_size=2, max_size=4),
       weights=st.lists(st.floats(0.05, 1.0), min_size=4, max_size=4),
       n=st.integers(1, 40), seed=st.integers(0, 2**16))
def test_draws_come_in_the_asked_shares(counts, weights, n, seed):
    """Exactly n frames, each frame's label its own, every env reachable; over many draws
    the envs' shares are proportions * keep_prob, normalised."""
    env = np.repeat(np.arange(len(counts)), counts)
    frames = np.arange(len(env), dtype=np.uint8)[:, None, None, None] * np.ones((1, 1, 2, 2),
                                                                                np.uint8)
    source = ArrayFrameSource(frames, env)
    proportions = np.asarray(counts, float) / sum(counts)
    keep = np.asarray(weights[:len(counts)]) / max(weights[:len(counts)])
    rng = np.random.default_rng(seed)
    got, labels = _draw_in_shares(source.sample_frames_with_env, n, rng, keep, proportions)
    assert got.shape == (n, 1, 2, 2) and labels.shape == (n,)
    assert np.array_equal(env[got[:, 0, 0, 0]], labels)  # each frame keeps its own label
    many = np.concatenate([_draw_in_shares(source.sample_frames_with_env, 64, rng, keep,
                                           proportions)[1] for _ in range(40)])
    expected = proportions * keep / (proportions * keep).sum()
    share = np.bincount(many, minlength=len(counts)) / len(many)
    assert np.abs(share - expected).max() < 0.08  # 2,560 draws: ~4 standard errors


def test_a_run_trains_on_the_asked_shares_and_samples_the_datas(tmp_path, atari32, tiny):
    """Pong gets 3/4 of every batch: resumes exactly, records the shares, samples 50/50."""
    config = dict(log_every=1, env_shares=(1, 3), **tiny)
    train_gan(GanConfig(iterations=4, **config), atari32, tmp_path / "straight")
    train_gan(GanConfig(iterations=2, **config), atari32, tmp_path / "split")
    train_gan(GanConfig(iterations=4, **config), atari32, tmp_path / "split", resume=True)
    a, b = load_checkpoint(tmp_path / "straight"), load_checkpoint(tmp_path / "split")
    assert all(torch.equal(v, b["generator"][k]) for k, v in a["generator"].items())
    assert tuple(a["config"]["env_shares"]) == (0.25, 0.75)
    assert json.loads((tmp_path / "straight" / "config.json").read_text())["env_shares"] == \
        [0.25, 0.75]
    torch.testing.assert_close(a["label_probs"].float(), torch.tensor([0.5, 0.5]), atol=0.05,
                               rtol=0)  # sampling keeps the data's mix
    torch.testing.assert_close(load_generator(tmp_path / "straight").label_probs.float(),
                               a["label_probs"].float())


@pytest.mark.parametrize("pack", [1, 2])
def test_training_batches_come_in_the_shares(pack, tmp_path, atari32, tiny, monkeypatch):
    """Pong's share of D's real frames and of G's fakes is 3/4 (packs: fakes copy the real
    labels; single frames: fakes drawn from the shares); the data is half Pong."""
    import gan_envs.trainers.gan as gan

    real, fake = [], []
    draw = gan._draw_in_shares

    def recording_draw(*args, **kwargs):
        frames, labels = draw(*args, **kwargs)
        real.append(labels)
        return frames, labels

    build = gan.build_models

    def recording_build(*args, **kwargs):
        generator, discriminator = build(*args, **kwargs)
        generator.register_forward_pre_hook(
            lambda module, inputs: fake.append(inputs[1].numpy().copy())
            if len(inputs) > 1 and len(inputs[1]) == tiny["batch_size"] else None)
        return generator, discriminator

    monkeypatch.setattr(gan, "_draw_in_shares", recording_draw)
    monkeypatch.setattr(gan, "build_models", recording_build)
    # (standing statistics off: their copies of G carry the hook and run batches too)
    train_gan(GanConfig(iterations=60, env_shares=(1, 3), pack=pack, sample_every=10**6,
                        standing_stats=0, **tiny), atari32, tmp_path)
    real_share, fake_share = (np.concatenate(x).mean() for x in (real, fake))
    assert len(real) == len(fake) == 60
    assert abs(real_share - 0.75) < 0.06 and abs(fake_share - 0.75) < 0.06  # 480 draws each


def test_shares_change_the_run(tmp_path, atari32, tiny):
    """Not a no-op: other shares draw other batches, so the weights differ."""
    for name, shares in (("even", None), ("pong", (1, 3))):
        train_gan(GanConfig(iterations=3, env_shares=shares, **tiny), atari32, tmp_path / name)
    a, b = (load_checkpoint(tmp_path / n)["generator"] for n in ("even", "pong"))
    assert any(not torch.equal(v, b[k]) for k, v in a.items())


@pytest.mark.parametrize("shares, message", [
    ((1, 2, 3), r"^env_shares gives 3 shares for a source with 2 envs: pass one share per env"),
    ((1, 0), r"^env_shares must be finite and > 0"),
    ((1, float("nan")), r"^env_shares must be finite and > 0"),
])
def test_bad_shares_are_one_line_errors(shares, message, tmp_path, atari32, tiny):
    assert_refused(dict(env_shares=shares, **tiny), message, atari32, tmp_path)


def test_shares_need_a_conditional_run(tmp_path, atari32, tiny, capsys):
    with pytest.raises(ValueError, match=r"^env_shares \(--env-shares\) needs a conditional run"):
        train_gan(GanConfig(iterations=1, env_shares=(1, 1), conditional=False, **tiny),
                  atari32, tmp_path)
    assert_cli_refuses(["--env-shares", "1", "2"],
                       "env_shares (--env-shares) needs a conditional run", tmp_path, capsys)


def test_resume_with_other_shares_is_refused(tmp_path, atari32, tiny):
    train_gan(GanConfig(iterations=1, env_shares=(1, 3), **tiny), atari32, tmp_path)
    train_gan(GanConfig(iterations=2, env_shares=(2, 6), **tiny), atari32, tmp_path,
              resume=True)  # the same shares, normalised
    with pytest.raises(ValueError, match="trained with other env_shares"):
        train_gan(GanConfig(iterations=3, env_shares=(1, 1), **tiny), atari32, tmp_path,
                  resume=True)
