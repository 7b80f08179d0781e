"""Modes (``modes=K``): each game split into K clusters of screens, G and D conditioned on them."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from gan_envs.trainers.data import ArrayFrameSource
from gan_envs.trainers.gan import (
    GanConfig,
    _nearest_modes,
    _real_pair_distances,
    load_checkpoint,
    train_gan,
)
from gan_envs.trainers.models import build_models, pick_modes, set_mode_shares
from gan_envs.trainers.sampling import load_generator


@settings(max_examples=50, deadline=None)
@given(shares=st.lists(st.lists(st.integers(0, 5), min_size=3, max_size=3)
                       .filter(lambda row: sum(row) > 0), min_size=1, max_size=3),
       z0=st.lists(st.floats(-6, 6, allow_nan=False), min_size=1, max_size=8),
       seed=st.integers(0, 100))
def test_pick_modes_follows_the_shares_and_keeps_the_rest(shares, z0, seed):
    g, _ = build_models("mlp", (4,), latent_dim=3, width=8, num_classes=len(shares) * (
        len(shares) > 1), modes=3)
    set_mode_shares(g, torch.tensor(shares, dtype=torch.float64))
    z = torch.randn(len(z0), 3, generator=torch.Generator().manual_seed(seed))
    z[:, 0] = torch.tensor(z0)
    labels = torch.arange(len(z0)) % len(shares) if len(shares) > 1 else None
    modes, redrawn = pick_modes(z, g.mode_cdf, labels)
    u = torch.distributions.Normal(0.0, 1.0).cdf(z[:, 0].double())
    cdf = g.mode_cdf.double()[labels if labels is not None else torch.zeros(len(z0)).long()]
    for i, m in enumerate(modes.tolist()):
        assert shares[int(labels[i]) if labels is not None else 0][m] > 0  # never a 0 share
        upper = float(cdf[i, m])
        lower = float(cdf[i, m - 1]) if m else 0.0
        assert lower - 1e-9 <= float(u[i]) <= upper + 1e-9
    assert torch.isfinite(redrawn).all()
    assert torch.equal(redrawn[:, 1:], z[:, 1:])  # only the first number is re-drawn
    again, _ = pick_modes(z, g.mode_cdf, labels)
    assert torch.equal(modes, again)  # deterministic


def test_picked_modes_come_in_the_shares_and_the_latent_stays_normal():
    cdf = torch.tensor([[0.25, 1.0], [0.9, 1.0]])
    z = torch.randn(40_000, 5, generator=torch.Generator().manual_seed(0))
    labels = torch.arange(40_000) % 2
    modes, redrawn = pick_modes(z, cdf, labels)
    assert abs(float((modes[labels == 0] == 0).float().mean()) - 0.25) < 0.01
    assert abs(float((modes[labels == 1] == 0).float().mean()) - 0.9) < 0.01
    for m in (0, 1):  # within a mode, the re-drawn number is again N(0, 1)
        first = redrawn[(labels == 0) & (modes == m), 0]
        assert abs(float(first.mean())) < 0.05 and abs(float(first.std()) - 1) < 0.05


@pytest.mark.parametrize("arch, shape", [("dcgan", (3, 32, 32)), ("mlp", (5,))])
@pytest.mark.parametrize("num_classes", [0, 3])
def test_a_generator_with_modes_embeds_label_times_modes(arch, shape, num_classes):
    g, d = build_models(arch, shape, latent_dim=8, width=16, num_classes=num_classes, modes=2,
                        template=1)
    assert g.embed.num_embeddings == max(num_classes, 1) * 2
    assert d.embed.num_embeddings == max(num_classes, 1) * 2
    assert g.template.shape[0] == max(num_classes, 1) * 2
    g.eval()
    labels = torch.tensor([0, 1, 1, 0]) if num_classes else None
    z = torch.randn(4, 8)
    modes, redrawn = pick_modes(z, g.mode_cdf, labels)
    # without modes, G picks them from z exactly as pick_modes does
    assert torch.equal(g(z, labels), g(redrawn, labels, modes))
    other = g(redrawn, labels, 1 - modes)
    assert not torch.equal(other, g(redrawn, labels, modes))


def test_bad_modes_are_one_line_errors():
    for bad, message in [(dict(modes=1), "modes must be 0"), (dict(modes=-2), "modes must be 0"),
                         (dict(modes=2, template=2), "one template"),
                         # these ran for minutes in k-means seeding before a first iteration
                         (dict(modes=500), "modes must be at most 16, got 500"),
                         (dict(modes=0, template=300), "template must be at most 16, got 300")]:
        with pytest.raises(ValueError, match=message) as excinfo:
            GanConfig(**bad).resolved((3, 64, 64))
        assert "\n" not in str(excinfo.value)
    with pytest.raises(ValueError, match="modes must be 0"):
        build_models("dcgan", (3, 32, 32), latent_dim=8, width=16, modes=1)
    plain, _ = build_models("dcgan", (3, 32, 32), latent_dim=8, width=16)
    with pytest.raises(ValueError, match="no modes"):
        set_mode_shares(plain, torch.ones(1, 2))
    with pytest.raises(ValueError, match="no modes"):
        plain(torch.zeros(1, 8), None, torch.zeros(1))
    g, _ = build_models("dcgan", (3, 32, 32), latent_dim=8, width=16, modes=2)
    for shares in (torch.ones(2, 2), torch.tensor([[0.0, 0.0]]), torch.tensor([[-1.0, 2.0]])):
        with pytest.raises(ValueError, match="mode shares"):
            set_mode_shares(g, shares)


def test_nearest_modes_looks_only_at_the_frames_own_label():
    centres = torch.tensor([[[0.0], [1.0]], [[5.0], [9.0]]])
    x = torch.tensor([[0.9], [0.9], [7.5]])
    assert _nearest_modes(x, torch.tensor([0, 1, 1]), centres).tolist() == [1, 0, 1]


@settings(max_examples=60, deadline=None)
@given(seed=st.integers(0, 10_000), frames=st.integers(1, 40), labels=st.integers(1, 3),
       modes=st.integers(2, 4), labelled=st.booleans())
def test_nearest_modes_equals_the_direct_distance(seed, frames, labels, modes, labelled):
    """The matmul form picks what subtracting every centre picks (frames in [-1, 1], as
    images are), wherever the two nearest centres are not a rounding error apart."""
    gen = torch.Generator().manual_seed(seed)
    centres = torch.rand(labels, modes, 3, 8, 8, generator=gen) * 2 - 1
    x = torch.rand(frames, 3, 8, 8, generator=gen) * 2 - 1
    y = torch.randint(0, labels, (frames,), generator=gen) if labelled else None
    own = centres[y] if y is not None else centres[:1].expand(frames, *centres.shape[1:])
    direct = (x[:, None] - own).flatten(2).double().square().sum(2)  # (frames, modes)
    top2 = direct.topk(2, dim=1, largest=False).values
    clear = (top2[:, 1] - top2[:, 0]) > 1e-6
    got = _nearest_modes(x, y, centres)
    assert got.shape == (frames,) and got.dtype == torch.long
    assert torch.equal(got[clear], direct.argmin(1)[clear])


def test_training_finds_each_games_modes_and_their_shares(tmp_path, tiny, two_games):
    train_gan(GanConfig(iterations=0, modes=2, template=1, template_lr=0.0,
                        template_mask=False, **tiny), two_games(30), tmp_path)
    saved = load_checkpoint(tmp_path)
    assert saved["version"] == 4 and saved["config"]["modes"] == 2  # 5 with a mask
    centres = ((saved["mode_centres"] + 1) * 127.5).round()  # (games, modes, 3, 32, 32)
    assert centres.shape == (2, 2, 3, 32, 32)
    assert [tuple(c[:, 0, 0].tolist()) for c in centres[1]] == [(100.0, 100.0, 100.0),
                                                                (112.0, 0.0, 92.0)]
    # game 1 is 3 grey : 1 purple in the probe draw's nearest-centre counts
    cdf = saved["generator"]["mode_cdf"]
    assert abs(float(cdf[1, 0]) - 0.75) < 0.05 and float(cdf[1, 1]) == 1.0
    assert torch.equal(saved["generator_ema"]["mode_cdf"], cdf)
    # each (game, mode) template is its cluster's median, in the same order
    drawn = ((torch.tanh(saved["generator"]["template"]) + 1) * 127.5).round()
    assert torch.equal(drawn[2:], centres[1].clamp(0.13, 254.87).round())


def test_a_mode_run_trains_resumes_exactly_and_samples(tmp_path, atari32, tiny):
    for name, extra in [("packs", dict(pack=2)), ("pairs", dict(pack=1, diversity=1.0))]:
        config = dict(modes=2, template=1, **extra, **tiny)
        straight, split = tmp_path / f"{name}-straight", tmp_path / f"{name}-split"
        train_gan(GanConfig(iterations=4, **config), atari32, straight)
        train_gan(GanConfig(iterations=2, **config), atari32, split)
        train_gan(GanConfig(iterations=4, **config), atari32, split, resume=True)
        a, b = load_checkpoint(straight), load_checkpoint(split)
        for net in ("generator", "discriminator", "generator_ema"):
            for k, v in a[net].items():
                assert torch.equal(v, b[net][k]), f"{name} {net}.{k}"
        assert torch.equal(a["pair_scale"], b["pair_scale"]) if extra.get("diversity") else True
    run = load_generator(tmp_path / "packs-split")
    images = run.generate(torch.randn(6, tiny["latent_dim"]), labels=torch.tensor([0, 1] * 3))
    assert images.shape == (6, 3, 32, 32) and images.dtype == np.uint8


def test_an_unconditional_run_with_modes(tmp_path, atari32, tiny):
    train_gan(GanConfig(iterations=2, modes=2, conditional=False, **tiny), atari32, tmp_path)
    saved = load_checkpoint(tmp_path)
    assert saved["mode_centres"].shape == (1, 2, 3, 32, 32)
    assert saved["discriminator"]["embed.parametrizations.weight.original"].shape[0] == 2
    images = load_generator(tmp_path).generate(torch.randn(3, tiny["latent_dim"]))
    assert images.shape == (3, 3, 32, 32)


def test_the_fast_recipe_uses_modes_on_images_only_and_they_cannot_change_on_resume(
        tmp_path, atari32, tiny):
    fast = GanConfig().resolved((3, 64, 64))
    assert (fast.modes, fast.template, fast.template_lr) == (2, 1, 0.0)
    vectors = GanConfig(arch="mlp").resolved((4,))
    assert (vectors.modes, vectors.template) == (0, 0)
    tutorial = GanConfig(recipe="tutorial").resolved((3, 64, 64))
    assert (tutorial.modes, tutorial.template) == (0, 0)
    train_gan(GanConfig(iterations=1, modes=0, template=0, **tiny), atari32, tmp_path)
    assert load_checkpoint(tmp_path)["version"] == 2
    with pytest.raises(ValueError, match="other modes"):
        train_gan(GanConfig(iterations=2, modes=2, **tiny), atari32, tmp_path, resume=True)
    # a plain resume keeps the run's own settings, not the recipe's new ones
    assert train_gan(GanConfig(iterations=2, **tiny), atari32, tmp_path,
                     resume=True).iterations == 2
    assert load_checkpoint(tmp_path)["config"]["modes"] == 0


def test_a_game_the_probe_draw_missed_gets_the_whole_draws_modes(tmp_path, tiny, two_games):
    # three labelled games, frames of two: the third trains with the pooled clusters
    games = two_games(30)
    source = ArrayFrameSource(games.frames, games.env_index,
                              ["black", "grey-or-purple", "none"])
    train_gan(GanConfig(iterations=1, **tiny), source, tmp_path)
    saved = load_checkpoint(tmp_path)
    assert saved["mode_centres"].shape[:2] == (3, 2)
    assert saved["generator"]["mode_cdf"][2].tolist() == [0.5, 1.0]  # equal shares
    images = load_generator(tmp_path).generate(torch.randn(2, tiny["latent_dim"]),
                                               labels=torch.tensor([2, 2]))
    assert images.shape == (2, 3, 32, 32)


def test_the_diversity_scale_is_measured_per_game_and_mode(tmp_path, tiny, two_games):
    # game 1's grey and purple screens differ far more than two frames of one colour do
    # (a spot apart): a per-game scale would ask same-mode pairs for a colour change
    games = two_games(30)
    train_gan(GanConfig(iterations=1, diversity=1.0, pack=1, **tiny), games, tmp_path)
    scale = load_checkpoint(tmp_path)["pair_scale"]
    per_game = _real_pair_distances(games.frames, games.env_index, 2,
                                    lambda f: torch.from_numpy(f).float() / 127.5 - 1)
    assert scale.shape == (4,)
    assert float(scale[2:].max()) < float(per_game[1]) / 10


def test_a_checkpoint_with_one_diversity_scale_per_game_resumes(tmp_path, atari32, tiny):
    # session 7's checkpoints saved the scale per game: each mode of a game resumes with it
    train_gan(GanConfig(iterations=1, diversity=1.0, pack=1, **tiny), atari32, tmp_path)
    saved = load_checkpoint(tmp_path)
    per_game = torch.tensor([0.01, 0.02])
    torch.save({**saved, "pair_scale": per_game}, tmp_path / "checkpoint.pt")
    train_gan(GanConfig(iterations=2, **tiny), atari32, tmp_path, resume=True)
    assert torch.equal(load_checkpoint(tmp_path)["pair_scale"],
                       per_game.repeat_interleave(2))


def test_a_mode_without_frames_takes_its_games_diversity_scale(tmp_path, tiny):
    # game 0's frames are all alike, so its second mode gets none: its scale is game 0's
    # (~0), not the whole draw's (black against grey and white frames)
    frames = np.zeros((80, 3, 32, 32), np.uint8)
    frames[40:60], frames[60:] = 100, 200
    source = ArrayFrameSource(frames, np.repeat([0, 1], 40), ["flat", "two-screens"])
    train_gan(GanConfig(iterations=1, diversity=1.0, pack=1, **tiny), source, tmp_path)
    saved = load_checkpoint(tmp_path)
    assert saved["generator"]["mode_cdf"][0].tolist() == [1.0, 1.0]  # mode 1: no frames
    assert saved["pair_scale"].tolist() == pytest.approx([1e-6] * 4)
