"""``benchmarks/checkpoint_selection.py``: scoring snapshots with a feature network of its own,
reading the evaluation reports beside them, and the per-run summary."""

from __future__ import annotations

import json
import math
import shutil

import numpy as np
import pytest
from gan_runs import load_benchmark

from gan_envs.trainers.data import ArrayFrameSource
from gan_envs.trainers.metrics import evaluate


@pytest.fixture(scope="module")
def selection():
    return load_benchmark("checkpoint_selection")


def test_the_summary_keeps_the_lowest_scored_snapshot(selection):
    row = selection.summarise([0.9, 0.4, 1.5, 0.7], [3.0, 2.2, 4.1, 1.6])
    assert row["kept"] == 2.2 and row["best"] == 1.6 and row["median"] == 2.6
    assert row["rank_correlation"] == pytest.approx(0.8)
    assert selection.summarise([1, 2, 3], [5, 6, 7])["rank_correlation"] == pytest.approx(1.0)
    with pytest.raises(ValueError, match="two or more snapshots"):
        selection.summarise([1.0], [2.0])


def test_snapshots_are_scored_and_their_reports_read(tmp_path, atari32, tiny_run, selection):
    snapshot = tmp_path / "run.snapshots" / "iter_000004"
    shutil.copytree(tiny_run, snapshot)
    assert selection.evaluated_fd(snapshot) is None
    for seed in (0, 1):
        report = evaluate(snapshot, atari32, n=20, seed=seed, classifier_steps=3,
                          classifier_frames=64)
        (snapshot / f"r{seed}.json").write_text(json.dumps(report))
    fds = [json.loads((snapshot / f"r{s}.json").read_text())["generated"]["fd"] for s in (0, 1)]
    assert selection.evaluated_fd(snapshot) == pytest.approx(sum(fds) / 2)
    twice = [selection.score_snapshots(atari32, [snapshot, tiny_run], seed=7, n=20,
                                       classifier_steps=3, classifier_frames=64)
             for _ in range(2)]
    assert twice[0] == twice[1]  # the score's own draws: the same numbers each time
    assert all(math.isfinite(s) and s > 0 for s in twice[0])
    assert twice[0][0] == pytest.approx(twice[0][1])  # the same weights score the same


def test_unlabelled_frames_are_refused(tiny_run, selection):
    frames = np.zeros((64, 3, 32, 32), np.uint8)
    with pytest.raises(ValueError, match="labelled with at least two envs"):
        selection.score_snapshots(ArrayFrameSource(frames), [tiny_run], seed=7, n=20)


def test_a_snapshot_of_other_frames_is_refused(tiny_run, selection):
    labels = np.repeat([0, 1], 40)
    frames = np.zeros((80, 3, 64, 64), np.uint8)
    source = ArrayFrameSource(frames, labels, ["ALE/Breakout-v5", "ALE/Pong-v5"])
    with pytest.raises(ValueError, match=r"makes frames \(3, 32, 32\) but the data has") as error:
        selection.score_snapshots(source, [tiny_run], seed=7, n=20, classifier_steps=1,
                                  classifier_frames=16)
    assert "\n" not in str(error.value)
