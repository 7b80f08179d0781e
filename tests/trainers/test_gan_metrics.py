"""Offline evaluation: the distances, and the protocol on real Atari frames."""

from __future__ import annotations

import json
import shutil
import statistics

import numpy as np
import pytest
import torch

from gan_envs.trainers.data import ArrayFrameSource
from gan_envs.trainers.metrics import (
    CLASSIFIER_NAME,
    CORRUPTIONS,
    TRAINING_THREADS,
    corrupt,
    draws_table,
    evaluate,
    evaluate_draws,
    far_frames,
    frechet_distance,
    kernel_inception_distance,
    precision_recall,
    report_table,
)

SMALL = dict(n=100, classifier_steps=100, classifier_frames=400)


def test_frechet_distance_of_known_gaussians():
    rng = np.random.default_rng(0)
    a = rng.normal(0, 1, (20000, 2))
    b = rng.normal(0, 2, (20000, 2)) + [3, 0]
    # |mu1 - mu2|^2 + tr(S1 + S2 - 2 sqrt(S1 S2)) = 9 + 2 * (1 + 4 - 2 * 2) = 11
    assert frechet_distance(a, b) == pytest.approx(11.0, rel=0.03)
    assert frechet_distance(a[:, :1], a[:, :1]) == pytest.approx(0.0, abs=1e-9)


def test_far_frames_are_the_planted_ones():
    reference = np.random.default_rng(0).normal(size=(400, 8))
    frames = np.vstack([reference[:50], reference[:2] + 30.0])
    assert np.flatnonzero(far_frames(frames, reference)).tolist() == [50, 51]
    assert not far_frames(reference, reference).any()
    assert far_frames(frames, reference, factor=100.0).sum() == 0
    for bad in (np.zeros((1, 8)), np.zeros((5, 3)), np.zeros(8)):
        with pytest.raises(ValueError, match="far_frames needs 2-D features"):
            far_frames(frames, bad)


def test_the_table_says_when_the_real_sets_hold_different_far_frames():
    row = {"fd": 1.0, "kid": 0.0, "kid_std": 0.0, "precision": 1.0, "recall": 1.0}
    report = {"generated": row, "real_vs_real": row, "noise": row,
              "far_frames": {"factor": 2.0, "real_a": 0, "real_b": 1, "generated": 0}}
    assert "real A 0, real B 1, generated 0; A and B differ" in report_table(report)
    report["far_frames"]["real_b"] = 0
    assert "differ" not in report_table(report)


def test_kid_and_precision_recall_separate_sets():
    rng = np.random.default_rng(1)
    a, b = rng.normal(size=(400, 8)), rng.normal(size=(400, 8))
    assert abs(kernel_inception_distance(a, b)[0]) < 0.05 < kernel_inception_distance(a, b + 2)[0]
    precision, recall = precision_recall(a, b)
    assert precision > 0.8 and recall > 0.8
    assert precision_recall(a, b * 0.1) == (1.0, pytest.approx(0.0, abs=0.1))  # mode collapse


def test_every_corruption_changes_real_frames(atari32):
    x = torch.from_numpy(atari32.frames[:len(CORRUPTIONS)]).float() / 127.5 - 1
    out = corrupt(x, torch.arange(len(CORRUPTIONS)), torch.Generator().manual_seed(0))
    changed = [(out[i] - x[i]).abs().mean().item() > 1e-3 for i in range(len(CORRUPTIONS))]
    assert changed == [False] + [True] * (len(CORRUPTIONS) - 1)


def test_evaluate_game_classifier(tiny_run, atari32):
    report = evaluate(tiny_run, atari32, seed=0, **SMALL)
    json.dumps(report, allow_nan=False)
    floor, fake, noise = report["real_vs_real"], report["generated"], report["noise"]
    assert report["features"]["tasks"] == ["game", "corruption"]
    assert report["features"]["game_accuracy"] > 0.9
    # real vs real sits at the floor; noise and a 4-iteration generator are far above it
    assert noise["fd"] > 100 * floor["fd"] and fake["fd"] > 10 * floor["fd"]
    assert floor["precision"] > 0.7 and floor["recall"] > 0.7 and noise["precision"] == 0.0
    assert floor["game_mix_max_diff_points"] < 15
    assert floor["judged_clean"] > max(0.5, noise["judged_clean"])
    assert set(fake["game_mix"]) == {"ALE/Breakout-v5", "ALE/Pong-v5"}
    assert report["fd_over_floor"] == pytest.approx(fake["fd"] / floor["fd"])
    assert "fd / floor" in report_table(report)
    far = report["far_frames"]
    assert far["factor"] == 2.0 and far["real_a"] + far["real_b"] < 10  # random play: few
    assert all(isinstance(far[k], int) for k in ("real_a", "real_b", "generated"))
    assert "far frames (beyond 2x A's median distance" in report_table(report)
    # the feature network is cached in the run and reused: same numbers
    again = evaluate(tiny_run, atari32, seed=0, **SMALL)
    assert again["features"]["cached"] and again["generated"]["fd"] == fake["fd"]
    assert again["features"]["threads"] == TRAINING_THREADS


def test_feature_network_does_not_depend_on_the_callers_threads(tmp_path, tiny_run, atari32):
    # another thread count would sum in another order and train another network (another
    # ruler), so the network is trained at TRAINING_THREADS whatever the caller uses
    nets = []
    before = torch.get_num_threads()
    try:
        for threads in (1, 2):
            run = tmp_path / f"run{threads}"
            shutil.copytree(tiny_run, run)
            (run / CLASSIFIER_NAME).unlink(missing_ok=True)  # another test may have cached one
            torch.set_num_threads(threads)
            report = evaluate(run, atari32, seed=0, **SMALL)
            assert torch.get_num_threads() == threads  # the caller's count is restored
            assert not report["features"]["cached"]
            assert report["features"]["threads"] == TRAINING_THREADS
            nets.append(torch.load(run / CLASSIFIER_NAME)["state_dict"])
    finally:
        torch.set_num_threads(before)
    assert nets[0].keys() == nets[1].keys()
    assert all(torch.equal(nets[0][k], nets[1][k]) for k in nets[0])


def test_evaluate_draws_takes_the_median_of_its_draws(tmp_path, tiny_run, atari32):
    run = tmp_path / "run"
    shutil.copytree(tiny_run, run)
    stages = []
    summary = evaluate_draws(run, atari32, seeds=[0, 1, 2], progress=stages.append, **SMALL)
    json.dumps(summary, allow_nan=False)
    alone = [evaluate(run, atari32, seed=s, **SMALL) for s in (0, 1, 2)]
    fds = [r["generated"]["fd"] for r in alone]
    floors = [r["real_vs_real"]["fd"] for r in alone]
    assert [d["fd"] for d in summary["draws"]] == fds and len(set(fds)) == 3
    assert [d["floor"] for d in summary["draws"]] == floors
    assert summary["fd"] == {"median": statistics.median(fds), "min": min(fds), "max": max(fds)}
    assert summary["fd_over_floor"] == pytest.approx(
        statistics.median(fds) / statistics.median(floors))
    assert summary["uneven_far_frames"] == sum(
        r["far_frames"]["real_a"] != r["far_frames"]["real_b"] for r in alone)
    assert stages[0].startswith("draw 1/3 (seed 0): ") and "draw 3/3 (seed 2)" in stages[-1]
    table = draws_table(summary)
    assert "over 3 draws" in table and len(table.splitlines()) == 6
    with pytest.raises(ValueError, match="at least one seed"):
        evaluate_draws(run, atari32, seeds=[])


def test_evaluate_draws_real_sets_in_the_datas_game_mix(tiny_run, atari32):
    # 1 Breakout frame to 3 Pong frames: every real set holds exactly 50 and 150 of n = 200,
    # and the two sets take all 400 frames between them, none twice
    keep = np.flatnonzero(atari32.env_index == 0)[:100]
    keep = np.concatenate([keep, np.flatnonzero(atari32.env_index == 1)[:300]])
    skewed = ArrayFrameSource(atari32.frames[keep], atari32.env_index[keep], atari32.env_ids)
    report = evaluate(tiny_run, skewed, seed=3, **{**SMALL, "n": 200})
    assert report["real_sets"] == "stratified" and report["real_sets_disjoint"] is True
    assert report["real_mix"] == {"ALE/Breakout-v5": 0.25, "ALE/Pong-v5": 0.75}
    for row in ("generated", "real_vs_real"):
        assert set(report[row]["fd_per_game"]) == {"ALE/Breakout-v5", "ALE/Pong-v5"}
    floor, fake = report["real_vs_real"]["fd_per_game"], report["generated"]["fd_per_game"]
    assert all(fake[e] > 10 * floor[e] for e in floor)  # a 4-iteration generator
    assert "fd per game, real floor" in report_table(report)
    unlabelled = evaluate(tiny_run, ArrayFrameSource(atari32.frames), **SMALL)
    assert unlabelled["real_sets"] == "random" and "fd_per_game" not in unlabelled["generated"]
    with pytest.raises(ValueError, match=r"needs 102 frames of ALE/Breakout-v5 .* holds 100: use a "
                                         r"smaller n \(at most about 200\)"):
        evaluate(tiny_run, skewed, **{**SMALL, "n": 204})


def test_stratified_sets_are_disjoint_when_the_first_draw_is_short():
    from gan_envs.trainers.metrics import _stratified_sets

    # 20 frames of env 1 among 1,000: a 3n = 120 draw often lacks the 4 it needs
    env = np.zeros(1000, np.int64)
    env[::50] = 1
    ids = np.arange(1000)
    source = ArrayFrameSource(np.stack([ids // 256, ids % 256], 1).astype(np.uint8), env,
                              ["a", "b"])  # each frame spells its own index
    real, real_env = _stratified_sets(source, ["a", "b"], np.array([38, 2]),
                                      np.random.default_rng(0))
    keys = real[:, 0].astype(int) * 256 + real[:, 1]
    assert len(set(keys.tolist())) == 80 and np.bincount(real_env[:40]).tolist() == [38, 2]
    assert np.bincount(real_env[40:]).tolist() == [38, 2]


def test_evaluate_single_game_uses_the_corruption_task(tiny_run, atari32):
    breakout = ArrayFrameSource(atari32.frames[atari32.env_index == 0])
    report = evaluate(tiny_run, breakout, seed=1, **SMALL)
    assert report["features"]["tasks"] == ["corruption"] and "game_mix" not in report["generated"]
    assert report["real_sets_disjoint"] is True
    assert report["noise"]["fd"] > 100 * report["real_vs_real"]["fd"]


def test_feature_tasks_can_be_chosen(tiny_run, atari32):
    report = evaluate(tiny_run, atari32, tasks="game", **SMALL)
    assert report["features"]["tasks"] == ["game"] and "judged_clean" not in report["generated"]
    with pytest.raises(ValueError, match="game task needs"):
        evaluate(tiny_run, ArrayFrameSource(atari32.frames), tasks="game", **SMALL)


def test_evaluate_refuses_other_frames(tiny_run):
    with pytest.raises(ValueError, match="makes frames"):
        evaluate(tiny_run, ArrayFrameSource(np.zeros((300, 3, 64, 64), np.uint8)), n=100)


def test_evaluate_vector_observations(tmp_path):
    from gan_envs.trainers.gan import GanConfig, train_gan

    states = np.random.default_rng(0).normal(0, [1, 0.5, 0.1, 0.5], (400, 4)).astype(np.float32)
    source = ArrayFrameSource(states)
    train_gan(GanConfig(arch="mlp", iterations=2, width=16, latent_dim=8), source, tmp_path)
    report = evaluate(tmp_path, source, n=100)
    assert report["features"] == {"kind": "normalised vectors", "dim": 4}
    assert "far_frames" not in report  # images only (few dimensions: many rows lie beyond 2x)
    assert report["noise"]["fd"] > 10 * report["real_vs_real"]["fd"]


@pytest.mark.parametrize(("n", "words"), [
    (100_000, "evaluate's n (frames per set) must be in [10, 16384], got 100000"),  # OOM
    (9, "evaluate's n (frames per set) must be in [10, 16384], got 9"),
    (50.5, "evaluate's n (frames per set) must be a whole number, got 50.5"),
])
def test_evaluate_set_size_limits(tiny_run, atari32, n, words):
    with pytest.raises(ValueError) as excinfo:
        evaluate(tiny_run, atari32, n=n, classifier_steps=2)
    assert str(excinfo.value) == words
