"""PacGAN packing (``pack``) and the lazy R1 penalty (``r1``): shapes, pairs, updates, resume."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from gan_envs.trainers import gan as gan_module
from gan_envs.trainers.data import ArrayFrameSource
from gan_envs.trainers.gan import (
    R1_EVERY,
    GanConfig,
    _diversity_penalty,
    _r1_penalty,
    load_checkpoint,
    train_gan,
)
from gan_envs.trainers.models import build_models, pack_frames
from gan_envs.trainers.sampling import load_generator


@settings(max_examples=30, deadline=None)
@given(packs=st.integers(1, 5), pack=st.integers(1, 4), channels=st.integers(1, 3),
       side=st.integers(1, 4))
def test_pack_frames_stacks_consecutive_frames(packs, pack, channels, side):
    x = torch.randn(packs * pack, channels, side, side)
    packed = pack_frames(x, pack)
    assert packed.shape == (packs, pack * channels, side, side)
    for k in range(packs):  # pack k holds frames k*pack ... in order, channels first to last
        assert torch.equal(packed[k], torch.cat(list(x[k * pack:(k + 1) * pack]), dim=0))


def test_pack_frames_refuses_a_partial_pack():
    with pytest.raises(ValueError, match="5 frames do not split into packs of 2"):
        pack_frames(torch.zeros(5, 3, 4, 4), 2)


@pytest.mark.parametrize("arch, shape", [("dcgan", (3, 32, 32)), ("mlp", (4,))])
@pytest.mark.parametrize("num_classes", [0, 2])
def test_packed_discriminator_gives_one_logit_per_pack(arch, shape, num_classes):
    g, d = build_models(arch, shape, latent_dim=8, width=16, num_classes=num_classes,
                        mbstd_group=2, pack=2)
    g_plain, _ = build_models(arch, shape, latent_dim=8, width=16, num_classes=num_classes)
    assert [p.shape for p in g.parameters()] == [p.shape for p in g_plain.parameters()]
    labels = (torch.tensor([0, 0, 1, 1]),) if num_classes else ()
    frames = g(torch.randn(4, 8), *labels)
    assert d(pack_frames(frames, 2), *(y[::2] for y in labels)).shape == (2,)
    with pytest.raises(ValueError, match="takes inputs of shape"):  # unpacked: too few
        d(frames, *labels)                                            # channels / features


def test_diversity_pairs_are_pack_mates_of_one_label():
    a, b = torch.zeros(1, 3, 4, 4), torch.ones(1, 3, 4, 4)
    scale = torch.tensor([1.0, 2.0])
    # packs of 2: (a, a) label 0 -> penalty 1; (a, b) label 1 -> distance 1 / scale 2 -> 0.5
    fake = torch.cat([a, a, a, b])
    same = _diversity_penalty(fake, scale, torch.tensor([0, 0, 1, 1]), pack=2)
    assert same.item() == pytest.approx(0.75)
    # a pack straddling two labels is left out of the mean
    mixed = _diversity_penalty(fake, scale, torch.tensor([0, 0, 0, 1]), pack=2)
    assert mixed.item() == pytest.approx(1.0)
    assert _diversity_penalty(fake[:2], scale, torch.tensor([0, 1]), pack=2).item() == 0.0


@pytest.mark.parametrize("conditional", [True, False])
def test_packed_run_trains_resumes_exactly_and_samples(tmp_path, atari32, tiny, conditional):
    config = dict(pack=2, conditional=conditional, **tiny)
    train_gan(GanConfig(iterations=4, **config), atari32, tmp_path / "straight")
    train_gan(GanConfig(iterations=2, **config), atari32, tmp_path / "split")
    train_gan(GanConfig(iterations=4, **config), atari32, tmp_path / "split", resume=True)
    straight, split = load_checkpoint(tmp_path / "straight"), load_checkpoint(tmp_path / "split")
    assert straight["config"]["pack"] == 2
    for net in ("generator", "discriminator"):
        for k, v in straight[net].items():
            assert torch.equal(v, split[net][k]), f"{net}.{k}"
    first_conv = straight["discriminator"]["net.0.parametrizations.weight.original"]
    assert first_conv.shape[1] == 2 * 3  # two RGB frames per input
    images = load_generator(tmp_path / "split").generate(torch.zeros(3, tiny["latent_dim"]))
    assert images.shape == (3, 3, 32, 32)


class _Recording(torch.nn.Module):
    """A discriminator that keeps what it was given (its packs and their labels)."""

    def __init__(self, inner: torch.nn.Module, calls: list) -> None:
        super().__init__()
        self.inner, self.calls = inner, calls

    def forward(self, x, labels=None):
        self.calls.append((x.detach().clone(), None if labels is None else labels.clone()))
        return self.inner(x, labels)


@pytest.mark.parametrize("modes", [0, 2])
def test_every_pack_holds_one_game_with_its_label(tmp_path, tiny, monkeypatch, modes):
    # frames whose every pixel is 40 * (game + 1): a pack's frames tell their game
    env = np.repeat(np.arange(3), 20)
    frames = np.broadcast_to((40 * (env + 1)).astype(np.uint8)[:, None, None, None],
                             (60, 3, 32, 32)).copy()
    calls: list = []
    build = gan_module.build_models
    monkeypatch.setattr(gan_module, "build_models",
                        lambda *a, **k: (lambda g, d: (g, _Recording(d, calls)))(*build(*a, **k)))
    train_gan(GanConfig(iterations=3, pack=2, diversity=0.0, modes=modes,
                        **{**tiny, "batch_size": 12}),
              ArrayFrameSource(frames, env, ["a", "b", "c"]), tmp_path)
    assert len(calls) == 9  # per iteration: real, fake (D step), fake (G step)
    for step in range(3):
        (real, y_real), (fake, y_fake), (_, y_g) = calls[3 * step:3 * step + 3]
        assert real.shape == (6, 6, 32, 32) and fake.shape == (6, 6, 32, 32)
        games = ((real[:, ::3, 0, 0] + 1) * 127.5 / 40).round().long() - 1  # (packs, 2 frames)
        assert torch.equal(y_fake, y_real) and torch.equal(y_g, y_real)
        y_real = y_real // max(modes, 1)  # with modes D gets game * modes + mode
        assert torch.equal(games[:, 0], y_real)  # a pack's label is its first frame's game
        assert (games[:, 1] == y_real).sum() >= 6 - 2  # at most 2 packs straddle 3 games
        assert torch.equal(y_real, y_real.sort().values)


def test_r1_is_per_pack():
    grad = torch.ones(4, 3, 2, 2)
    assert _r1_penalty(grad, 1).item() == 12.0
    assert _r1_penalty(grad, 2).item() == 24.0  # a pack's gradient has twice the entries
    assert _r1_penalty(grad, 4).item() == 48.0


def _discriminator_after(tmp_path, name, atari32, tiny, iterations, penalty):
    train_gan(GanConfig(iterations=iterations, **penalty, **tiny), atari32, tmp_path / name)
    return load_checkpoint(tmp_path / name)["discriminator"]


@pytest.mark.parametrize("penalty", ["r1", "r2"])
def test_penalty_acts_on_every_sixteenth_discriminator_step(tmp_path, atari32, tiny, penalty):
    """R1 (on reals) and R2 (on fakes) change nothing before the 16th D step and D at it."""
    others = {"r1": 0.0, "r2": 0.0}  # the penalty under test alone
    before = [_discriminator_after(tmp_path, f"b{gamma}", atari32, tiny, R1_EVERY - 1,
                                   {**others, penalty: gamma}) for gamma in (0.0, 10.0)]
    at = [_discriminator_after(tmp_path, f"a{gamma}", atari32, tiny, R1_EVERY,
                               {**others, penalty: gamma}) for gamma in (0.0, 10.0)]
    assert all(torch.equal(v, before[1][k]) for k, v in before[0].items())
    assert any(not torch.equal(v, at[1][k]) for k, v in at[0].items())
    assert load_checkpoint(tmp_path / "a10.0")["config"][penalty] == 10.0
    logged = [json.loads(line) for line in (tmp_path / "a10.0" / "log.jsonl").open()]
    assert [row["iteration"] for row in logged if penalty in row] == [R1_EVERY]
    assert logged[-1][penalty] > 0.0
    assert not any({"r1", "r2"} - {penalty} & row.keys() for row in logged)


def test_r1_and_r2_together_add_up(tmp_path, atari32, tiny):
    """Both penalties on one step: D moves unlike with either alone, and both are logged."""
    alone = [_discriminator_after(tmp_path, name, atari32, tiny, R1_EVERY, penalty)
             for name, penalty in (("r1", dict(r1=10.0, r2=0.0)), ("r2", dict(r1=0.0, r2=10.0)))]
    both = _discriminator_after(tmp_path, "both", atari32, tiny, R1_EVERY, dict(r1=10.0, r2=10.0))
    for one in alone:
        assert any(not torch.equal(v, both[k]) for k, v in one.items())
    last = [json.loads(line) for line in (tmp_path / "both" / "log.jsonl").open()][-1]
    assert last["r1"] > 0.0 and last["r2"] > 0.0


@pytest.mark.parametrize("bad, message", [
    (dict(pack=3), "pack must be >= 1 and divide batch_size"),
    (dict(pack=0), "pack must be >= 1"),
    (dict(r1=-1.0), r"r1 \(--r1\) must be a finite weight"),
    (dict(r1=float("nan")), r"r1 \(--r1\) must be a finite weight"),
    (dict(r2=-0.5), r"r2 \(--r2\) must be a finite weight"),
    (dict(r2=float("inf")), r"r2 \(--r2\) must be a finite weight"),
])
def test_bad_pack_and_r1_are_one_line(tiny, bad, message):
    with pytest.raises(ValueError, match=message) as excinfo:
        GanConfig(**{**tiny, **bad}).resolved((3, 32, 32))
    assert "\n" not in str(excinfo.value)


def test_fast_recipe_packs_two_frames_and_the_tutorial_none():
    assert GanConfig().resolved((3, 64, 64)).pack == 2
    assert GanConfig(arch="mlp").resolved((4,)).pack == 2
    assert GanConfig(recipe="tutorial").resolved((3, 64, 64)).pack == 1
    assert GanConfig().resolved((3, 64, 64)).r1 == 1.0  # session 6: steadier, higher recall
    assert GanConfig(recipe="tutorial").resolved((3, 64, 64)).r1 == 0.0
    assert GanConfig(r1=0.0).resolved((3, 64, 64)).r1 == 0.0
    assert GanConfig().resolved((3, 64, 64)).r2 == 0.0  # R2 is off in both recipes
    assert GanConfig(recipe="tutorial").resolved((3, 64, 64)).r2 == 0.0
    with pytest.raises(ValueError, match="or pack=1"):  # the recipe's pack and an odd batch
        GanConfig(batch_size=15).resolved((3, 64, 64))
