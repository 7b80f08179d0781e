"""``benchmarks/fd_sample_size.py``: the evaluation's sets re-drawn, subsets of them scored, far
frames found."""

from __future__ import annotations

import shutil

import numpy as np
import pytest
from gan_runs import load_benchmark

from gan_envs.trainers.data import ArrayFrameSource
from gan_envs.trainers.metrics import evaluate

SMALL = dict(classifier_steps=3, classifier_frames=64)


@pytest.fixture(scope="module")
def sizes():
    return load_benchmark("fd_sample_size")


def test_the_whole_sets_score_as_the_evaluation_does(tmp_path, atari32, tiny_run, sizes):
    run = tmp_path / "run"
    shutil.copytree(tiny_run, run)
    report = evaluate(run, atari32, n=40, seed=3, **SMALL)
    sets = sizes.draw_sets(run, atari32, 40, 3, **SMALL)
    whole = sizes.subset_distances(sets, None, 5, seed=3)
    assert whole["fd"] == [pytest.approx(report["generated"]["fd"])]
    assert whole["floor"] == [pytest.approx(report["real_vs_real"]["fd"])]
    # subsets keep set A's game proportions; different subsets, different distances
    parts = sizes.subset_distances(sets, 20, 4, seed=3)
    assert len(parts["fd"]) == 4 and len(set(parts["fd"])) > 1
    assert parts == sizes.subset_distances(sets, 20, 4, seed=3)  # its own seeded draws
    # a planted far frame is counted under its set and game; leaving it out changes the floor
    sets["b"][5] = sets["a"].mean(axis=0) + 100.0
    far = sizes.far_masks(sets, 2.0)
    counts = sizes.far_counts(sets, far)
    assert counts["b"][sets["b_env"][5]] >= 1 and sum(counts["b"]) == int(far["b"].sum())
    assert all(sum(v) <= 40 for v in counts.values())
    keep = {k: ~mask for k, mask in far.items()}
    near = sizes.subset_distances(sets, None, 1, seed=3, keep=keep)
    assert near["floor"][0] < sizes.subset_distances(sets, None, 1, seed=3)["floor"][0]
    with pytest.raises(ValueError, match=r"set a holds 40: pass --sizes up to 40"):
        sizes.subset_distances(sets, 41, 2, seed=3)


def test_unlabelled_frames_are_refused(tiny_run, sizes):
    source = ArrayFrameSource(np.zeros((64, 3, 32, 32), np.uint8))
    with pytest.raises(ValueError, match="labels its frames with two or more envs"):
        sizes.draw_sets(tiny_run, source, 20, 0)
