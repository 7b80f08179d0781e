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
    counts = sizes.far_counts(sets, 2.0)
    assert sorted(counts) == ["a", "b", "fake"] and all(len(v) == 2 for v in counts.values())
    with pytest.raises(ValueError, match=r"subsets of 41 frames need sets that large.*--sizes"):
        sizes.subset_distances(sets, 41, 2, seed=3)


def test_unlabelled_frames_are_refused(tiny_run, sizes):
    source = ArrayFrameSource(np.zeros((64, 3, 32, 32), np.uint8))
    with pytest.raises(ValueError, match="labels its frames with two or more envs"):
        sizes.draw_sets(tiny_run, source, 20, 0)
