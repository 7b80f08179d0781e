"""The diversity term: zero for pairs as different as real frames; trains and resumes."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from gan_envs.trainers.data import ArrayFrameSource
from gan_envs.trainers.gan import (
    GanConfig,
    _diversity_penalty,
    _real_pair_distances,
    load_checkpoint,
    train_gan,
)


def test_penalty_is_one_for_identical_pairs_and_zero_at_the_real_spread():
    scale = torch.tensor([0.5, 0.5])
    same = torch.zeros(4, 3, 2, 2)
    assert _diversity_penalty(same, scale).item() == pytest.approx(1.0)
    apart = torch.cat([torch.zeros(2, 3, 2, 2), torch.full((2, 3, 2, 2), 0.5)])
    assert _diversity_penalty(apart, scale).item() == pytest.approx(0.0)
    more = torch.cat([torch.zeros(2, 3, 2, 2), torch.ones(2, 3, 2, 2)])
    assert _diversity_penalty(more, scale).item() == 0.0  # capped: no reward beyond the data
    half = torch.cat([torch.zeros(2, 3, 2, 2), torch.full((2, 3, 2, 2), 0.25)])
    assert _diversity_penalty(half, scale).item() == pytest.approx(0.5)


def _as_float(frames: np.ndarray) -> torch.Tensor:
    return torch.as_tensor(frames, dtype=torch.float32)


def test_real_pair_distances_are_per_label():
    # label 0: four equal rows (distance 0, clamped to a tiny positive scale); label 1: rows
    # 4-7 pair up as (4, 6) and (5, 7), each differing by 1 in every entry
    frames = np.concatenate([np.zeros((4, 2)), [[0.0, 0], [1, 1], [1, 1], [0, 0]]])
    labels = np.array([0, 0, 0, 0, 1, 1, 1, 1])
    scale = _real_pair_distances(frames, labels, 2, _as_float)
    assert scale.shape == (2,)
    assert scale[0].item() == pytest.approx(1e-6) and scale[1].item() == pytest.approx(1.0)
    assert _real_pair_distances(frames[4:], None, 0, _as_float).item() == pytest.approx(1.0)
    # a label with fewer than two frames gets the whole draw's scale (pairs 0-4, 1-5, 2-6, 3-7)
    rare = _real_pair_distances(frames, np.array([0, 0, 0, 0, 0, 0, 0, 1]), 3, _as_float)
    pooled = np.abs(frames[:4] - frames[4:]).mean()
    assert rare[1].item() == pytest.approx(pooled) and rare[2].item() == pytest.approx(pooled)
    with pytest.raises(ValueError, match="at least two real frames"):
        _real_pair_distances(frames[:1], None, 0, _as_float)


def test_real_pair_distances_in_blocks_equal_one_pass():
    frames = np.random.default_rng(0).integers(0, 256, (1500, 3, 4, 4), dtype=np.uint8)
    scale = _real_pair_distances(frames, None, 0, lambda f: _as_float(f) / 127.5 - 1)
    x = _as_float(frames) / 127.5 - 1
    assert scale.item() == pytest.approx((x[:750] - x[750:]).abs().mean().item(), rel=1e-5)


@pytest.mark.parametrize("conditional", [True, False])
def test_diversity_trains_logs_and_resumes_exactly(tmp_path, atari32, tiny, conditional):
    config = dict(diversity=1.0, conditional=conditional, **tiny)
    summary = train_gan(GanConfig(iterations=3, **config), atari32, tmp_path / "a")
    assert 0.0 <= summary.metrics["diversity"] <= 1.0
    assert load_checkpoint(tmp_path / "a")["config"]["diversity"] == 1.0
    train_gan(GanConfig(iterations=2, **config), atari32, tmp_path / "b")
    train_gan(GanConfig(iterations=3, **config), atari32, tmp_path / "b", resume=True)
    a, b = load_checkpoint(tmp_path / "a"), load_checkpoint(tmp_path / "b")
    # one scale per label: per (game, mode) with the recipe's modes
    assert torch.equal(a["pair_scale"], b["pair_scale"]) and len(a["pair_scale"]) == (
        2 if conditional else 1) * max(a["config"]["modes"], 1)
    for key in a["generator"]:
        assert torch.equal(a["generator"][key], b["generator"][key]), key


def test_diversity_changes_the_generator_update(tmp_path, tiny):
    # noise frames spread far more than a fresh generator's pairs, so the term is active; the
    # same pairing of latents in both runs, only the term's weight differs
    frames = np.random.default_rng(0).integers(0, 256, (256, 3, 32, 32), dtype=np.uint8)
    noise = ArrayFrameSource(frames)
    faint = train_gan(GanConfig(iterations=1, diversity=1e-12, **tiny), noise, tmp_path / "f")
    train_gan(GanConfig(iterations=1, diversity=5.0, **tiny), noise, tmp_path / "d")
    assert faint.metrics["diversity"] > 0.0
    g0 = load_checkpoint(tmp_path / "f")["generator"]
    g1 = load_checkpoint(tmp_path / "d")["generator"]
    assert any(not torch.equal(g0[k], g1[k]) for k in g0)
    plain = train_gan(GanConfig(iterations=1, diversity=0.0, **tiny), noise, tmp_path / "p")
    assert "diversity" not in plain.metrics


def test_bad_diversity_settings_are_refused():
    with pytest.raises(ValueError, match=r"diversity \(--diversity\) must be a finite weight"):
        GanConfig(diversity=-1.0).resolved((3, 32, 32))
    with pytest.raises(ValueError, match="batch_size >= 2"):
        GanConfig(diversity=1.0, batch_size=1).resolved((3, 32, 32))
    assert GanConfig(recipe="tutorial").resolved((3, 32, 32)).diversity == 0.0


def test_the_fast_recipe_uses_the_term_on_vectors_only():
    # session 9: with modes and templates on images the runs scored lower without it
    assert GanConfig().resolved((3, 64, 64)).diversity == 0.0
    assert GanConfig(arch="mlp").resolved((3, 32, 32)).diversity == 0.0
    assert GanConfig(arch="mlp").resolved((4,)).diversity == 1.0
    assert GanConfig(recipe="tutorial", arch="mlp").resolved((4,)).diversity == 0.0
    assert GanConfig(diversity=0.5).resolved((3, 64, 64)).diversity == 0.5
