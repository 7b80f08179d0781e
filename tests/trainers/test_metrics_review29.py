"""The distances against independent references, and the evaluation protocol's edge cases.

References: the Fréchet distance from the eigenvalues of ``S1 S2`` (numpy, and
50-digit mpmath for small ``D``), the unbiased KID of
Bińkowski et al. (2018) with kernel ``(x·y / d + 1)^3``, and k-NN precision/recall of
Kynkäänniemi et al. (2019) from exact pairwise differences.
"""

from __future__ import annotations

import shutil

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from gan_envs.trainers.data import ArrayFrameSource
from gan_envs.trainers.gan import GanConfig, train_gan
from gan_envs.trainers.metrics import (
    evaluate,
    evaluate_draws,
    evaluation_sets,
    far_frames,
    frechet_distance,
    kernel_inception_distance,
    precision_recall,
)

SMALL = dict(n=100, classifier_steps=20, classifier_frames=200)


# ---------------------------------------------------------------- references
def ref_fd(a: np.ndarray, b: np.ndarray) -> float:
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    s1, s2 = np.atleast_2d(np.cov(a, rowvar=False)), np.atleast_2d(np.cov(b, rowvar=False))
    ev = np.linalg.eigvals(s1 @ s2)  # eigenvalues of S1 S2: real and >= 0 up to rounding
    tr_covmean = np.sqrt(np.clip(ev.real, 0, None)).sum()
    return float(((a.mean(0) - b.mean(0)) ** 2).sum() + np.trace(s1) + np.trace(s2)
                 - 2 * tr_covmean)


def mp_fd(a: np.ndarray, b: np.ndarray) -> float:
    mp = pytest.importorskip("mpmath")
    with mp.workdps(50):
        d = a.shape[1]

        def stats(x):
            rows = [[mp.mpf(float(v)) for v in row] for row in x]
            mu = [mp.fsum(r[j] for r in rows) / len(rows) for j in range(d)]
            cov = mp.matrix([[mp.fsum((r[p] - mu[p]) * (r[q] - mu[q]) for r in rows)
                              / (len(rows) - 1) for q in range(d)] for p in range(d)])
            return mu, cov

        (mu1, s1), (mu2, s2) = stats(a), stats(b)
        ev = mp.eig(s1 * s2, left=False, right=False)
        tr = mp.fsum(mp.sqrt(max(mp.re(e), 0)) for e in ev)
        return float(mp.fsum((mu1[j] - mu2[j]) ** 2 for j in range(d))
                     + mp.fsum(s1[i, i] + s2[i, i] for i in range(d)) - 2 * tr)


def ref_kid(a, b, n_subsets, subset_size, seed):
    """The unbiased MMD² estimator per subset, subsets drawn as kernel_inception_distance
    documents (``min(subset_size, max(2, half the smaller set))`` rows without replacement)."""
    d = a.shape[1]
    m = min(subset_size, max(2, min(len(a), len(b)) // 2))
    rng = np.random.default_rng(seed)
    values = []
    for _ in range(n_subsets):
        x = a[rng.choice(len(a), m, replace=False)]
        y = b[rng.choice(len(b), m, replace=False)]
        kxx, kyy, kxy = ((p @ q.T / d + 1) ** 3 for p, q in ((x, x), (y, y), (x, y)))
        off = lambda k: k.sum() - np.trace(k)  # noqa: E731
        values.append(off(kxx) / (m * (m - 1)) + off(kyy) / (m * (m - 1))
                      - 2 * kxy.sum() / (m * m))
    return float(np.mean(values)), float(np.std(values))


def exact_distances(a, b):
    return np.sqrt(((a[:, None, :] - b[None, :, :]) ** 2).sum(-1))


def ref_precision_recall(real, fake, k=3):
    r_real = np.sort(exact_distances(real, real), 1)[:, k]  # column 0: the point itself
    r_fake = np.sort(exact_distances(fake, fake), 1)[:, k]
    d = exact_distances(real, fake)
    return float((d <= r_real[:, None]).any(0).mean()), float((d <= r_fake[None, :]).any(1).mean())


# ---------------------------------------------------------------- Fréchet distance
@pytest.mark.parametrize(("n1", "n2", "d"), [(2, 2, 2), (2, 2, 3), (3, 3, 5), (4, 6, 8),
                                            (10, 10, 12), (30, 30, 6), (7, 20, 10)])
def test_frechet_distance_matches_a_50_digit_reference(n1, n2, d):
    rng = np.random.default_rng(n1 * 100 + d)
    a = rng.normal(size=(n1, d)) * rng.uniform(0.1, 5, d)
    b = rng.normal(size=(n2, d)) + 0.3
    assert frechet_distance(a, b) == pytest.approx(mp_fd(a, b), rel=1e-12, abs=1e-12)


@pytest.mark.parametrize(("n", "d"), [(50, 16), (200, 32), (1000, 128), (129, 128)])
def test_frechet_distance_matches_the_eigenvalue_reference(n, d):
    rng = np.random.default_rng(d)
    a = np.abs(rng.normal(size=(n, d))) * rng.uniform(0.1, 5, d)  # ReLU-like features
    b = np.abs(rng.normal(size=(n, d))) * 1.3 + 0.1
    assert frechet_distance(a, b) == pytest.approx(ref_fd(a, b), rel=1e-9)


@pytest.mark.parametrize(("n", "d"), [(3, 5), (50, 128), (127, 128), (2, 64)])
def test_frechet_distance_of_a_shift_is_the_squared_shift_with_few_rows(n, d):
    # fewer rows than features: singular covariances. The eigen-decomposition route took
    # square roots of rounding-level eigenvalues and gave 287.99997 for 288 (50 x 128)
    rng = np.random.default_rng(n)
    a = rng.normal(size=(n, d)) * rng.uniform(0.1, 5, d)
    shift = rng.normal(size=d)
    scale = np.trace(np.atleast_2d(np.cov(a, rowvar=False)))
    assert frechet_distance(a, a + shift) == pytest.approx((shift**2).sum(), abs=1e-11 * scale)
    assert 0.0 <= frechet_distance(a, a) <= 1e-11 * scale


@settings(max_examples=40, deadline=None)
@given(st.integers(2, 40), st.integers(1, 30), st.integers(0, 2**32 - 1),
       st.floats(1e-3, 1e3), st.booleans())
def test_frechet_distance_properties(n, d, seed, scale, single):
    rng = np.random.default_rng(seed)
    a = rng.normal(size=(n, d)) * scale
    b = rng.normal(size=(n + 3, d)) * scale * 1.1
    if single:  # float32 features give the float64 distance of the same (rounded) values
        a = a.astype(np.float32)
    value = frechet_distance(a, b)
    assert np.isfinite(value) and value >= 0
    assert value == pytest.approx(frechet_distance(b, a), rel=1e-9, abs=1e-9 * scale**2)
    assert value == pytest.approx(frechet_distance(np.float64(a), b), rel=1e-12, abs=1e-12)
    tolerance = 1e-9 * scale**2 * d
    assert frechet_distance(a, a) <= tolerance
    assert frechet_distance(b, b + scale) == pytest.approx(d * scale**2, abs=tolerance)


# ---------------------------------------------------------------- KID
@pytest.mark.parametrize(("n", "d", "subset_size"), [(4, 1, 1000), (5, 3, 1000), (40, 8, 1000),
                                                     (300, 128, 100), (1000, 128, 1000)])
def test_kid_matches_the_unbiased_reference(n, d, subset_size):
    rng = np.random.default_rng(n)
    a, b = rng.normal(size=(n, d)), rng.normal(size=(n + 1, d)) * 1.2 + 0.2
    got = kernel_inception_distance(a, b, n_subsets=7, subset_size=subset_size, seed=3)
    want = ref_kid(a, b, 7, subset_size, 3)
    assert got == pytest.approx(want, rel=1e-10, abs=1e-12)
    assert kernel_inception_distance(a.astype(np.float32), b, 7, subset_size, 3) == \
        pytest.approx(ref_kid(np.float64(a.astype(np.float32)), b, 7, subset_size, 3), rel=1e-10)


def test_kid_is_unbiased_for_one_distribution():
    rng = np.random.default_rng(0)
    values = [kernel_inception_distance(rng.normal(size=(60, 4)), rng.normal(size=(60, 4)),
                                        n_subsets=1, subset_size=30, seed=s)[0] for s in range(400)]
    mean, sem = np.mean(values), np.std(values) / np.sqrt(len(values))
    assert abs(mean) < 4 * sem  # a biased estimator sits ~2 E[k(x, x)] / m above 0


# ---------------------------------------------------------------- precision / recall
@settings(max_examples=40, deadline=None)
@given(st.integers(4, 30), st.integers(4, 30), st.integers(1, 40), st.integers(1, 3),
       st.integers(0, 2**32 - 1), st.floats(1e-2, 1e3), st.integers(1, 4))
def test_precision_recall_matches_the_exact_reference(n_real, n_fake, d, k, seed, scale, reps):
    rng = np.random.default_rng(seed)
    real = np.repeat(rng.normal(size=(n_real, d)) * scale + scale, reps, axis=0)  # duplicates
    fake = np.vstack([real[rng.integers(0, len(real), n_fake // 2)],  # copies of real points
                      rng.normal(size=(n_fake - n_fake // 2, d)) * scale + scale])
    assert precision_recall(real, fake, k=k, chunk=7) == ref_precision_recall(real, fake, k)


def test_copies_of_real_points_lie_on_the_real_manifold():
    # every real point has 3 exact duplicates, so its 3rd-neighbour radius is 0; a fake point
    # that copies one is at distance 0 from it. The expanded |a|^2 + |b|^2 - 2ab put such
    # distances at rounding noise (up to ~1e-4 here) above a radius computed as exactly 0
    rng = np.random.default_rng(1)
    failures = 0
    for _ in range(20):
        d, n = int(rng.integers(2, 200)), int(rng.integers(2, 40))
        scale = 10 ** rng.uniform(0, 3)
        real = np.repeat(rng.normal(size=(n, d)) * scale + rng.normal(size=d) * 3 * scale, 4, 0)
        fake = real[rng.integers(0, len(real), int(rng.integers(4, 100)))]
        failures += precision_recall(real, fake)[0] != 1.0
    assert failures == 0
    x = np.abs(rng.normal(size=(200, 128))) * 30
    assert precision_recall(x, x) == (1.0, 1.0)


def test_precision_recall_k_limits():
    x = np.random.default_rng(0).normal(size=(10, 3))
    assert precision_recall(x, x, k=9) == (1.0, 1.0)  # k = n - 1: every ball holds the set
    with pytest.raises(ValueError, match="k=10 needs more than 10 samples per set"):
        precision_recall(x, x, k=10)


# ---------------------------------------------------------------- bad inputs: one line each
x20 = np.random.default_rng(0).normal(size=(20, 3))


@pytest.mark.parametrize(("call", "words"), [
    (lambda: precision_recall(x20, x20, chunk=-1), "precision/recall chunk must be >= 1"),
    (lambda: precision_recall(x20, x20, chunk=0), "precision/recall chunk must be >= 1"),
    (lambda: frechet_distance(np.zeros((5, 0)), np.zeros((5, 0))), "with D >= 1"),
    (lambda: kernel_inception_distance(np.zeros((5, 0)), np.zeros((5, 0))), "with D >= 1"),
    (lambda: precision_recall(np.zeros((5, 0)), np.zeros((5, 0))), "with D >= 1"),
    (lambda: kernel_inception_distance(x20, x20, seed=None), "KID seed must be a whole number"),
    (lambda: kernel_inception_distance(x20, x20, seed=-1), r"KID seed must be in \[0, "),
    (lambda: far_frames(x20, x20, factor=float("nan")), "factor must be a finite number > 0"),
    (lambda: far_frames(x20, x20, factor=-1.0), "factor must be a finite number > 0"),
    (lambda: evaluate_draws("runs/none", None, seeds=[1.5]),
     "an evaluate_draws seed must be a whole number, got 1.5"),
    (lambda: evaluate_draws("runs/none", None, seeds="12"), "needs a sequence of seeds"),
    (lambda: evaluate_draws("runs/none", None, seeds=None), "needs a sequence of seeds"),
])
def test_bad_inputs_are_one_line_errors(call, words):
    # before: chunk=-1 returned (0.0, 0.0), D=0 a KID of NaN, factor=NaN no far frame,
    # seed=None other subsets each call, seeds=[1.5] seed 1 and seeds="12" seeds 1 and 2
    with pytest.raises(ValueError, match=words) as excinfo:
        call()
    assert "\n" not in str(excinfo.value)


@pytest.mark.parametrize(("options", "words"), [
    (dict(seed=-1), r"evaluate's seed must be in \[0, "),
    (dict(seed=1.5), "evaluate's seed must be a whole number, got 1.5"),
    (dict(classifier_seed=-1), r"classifier_seed must be in \[0, "),
    (dict(tasks=None), "tasks must be auto, game, corruption or game\\+corruption, got None"),
])
def test_evaluate_refuses_bad_seeds_and_tasks(tiny_run, atari32, options, words):
    with pytest.raises(ValueError, match=words):
        evaluate(tiny_run, atari32, **{**SMALL, **options})


# ---------------------------------------------------------------- the protocol
def test_the_classifier_cache_is_not_reused_for_other_data(tmp_path, tiny_run, atari32):
    # the same games and shape, other frames: the network cached for atari32 was reused
    # (features["cached"] True) and the numbers differed from a fresh evaluation of that data
    other = ArrayFrameSource(255 - atari32.frames, atari32.env_index, atari32.env_ids)
    used, fresh = tmp_path / "used", tmp_path / "fresh"
    shutil.copytree(tiny_run, used)
    shutil.copytree(tiny_run, fresh)
    for run in (used, fresh):
        (run / "eval_classifier.pt").unlink(missing_ok=True)
    first = evaluate(used, atari32, **SMALL)
    assert not first["features"]["cached"]
    again = evaluate(used, atari32, **SMALL)
    assert again["features"]["cached"] and again["generated"] == first["generated"]
    stages: list[str] = []
    report = evaluate(used, other, **SMALL, progress=stages.append)
    assert not report["features"]["cached"]
    assert "training the feature network" in stages  # it said "loading" where a file was
    assert "loading the feature network" not in stages
    assert report["generated"] == evaluate(fresh, other, **SMALL)["generated"]


class _IndependentDraws(ArrayFrameSource):
    """One game whose ``sample_frames`` draws each frame independently, as
    ``DatasetFrameSource`` does; it records the frame indices it hands out."""

    draws: list[np.ndarray]

    def sample_frames(self, n, rng):
        index = rng.integers(0, len(self), n)
        self.draws.append(index)
        return self.frames[index]

    def _indices(self, n, rng):
        index = super()._indices(n, rng)
        self.draws.append(index)
        return index


def test_one_game_real_sets_are_disjoint(tmp_path, atari32, tiny):
    pong = np.flatnonzero(atari32.env_index == 1)
    source = _IndependentDraws(atari32.frames[pong], np.zeros(len(pong), np.int64), ["pong"])
    source.draws = []
    torch.manual_seed(0)
    train_gan(GanConfig(iterations=1, **tiny), source, tmp_path)
    source.draws = []
    drawn = evaluation_sets(tmp_path, source, **{**SMALL, "classifier_frames": 120})
    assert drawn.real_sets_disjoint is True and not drawn.stratified
    real = [d for d in source.draws if len(d) == 2 * SMALL["n"]]
    assert len(real) == 1 and len(np.unique(real[0])) == len(real[0])  # no frame twice in A, B


def test_same_seed_same_numbers_and_draws_are_the_median(tmp_path, tiny_run, atari32):
    run = tmp_path / "run"
    shutil.copytree(tiny_run, run)
    one = evaluate(run, atari32, seed=5, **SMALL)
    two = evaluate(run, atari32, seed=5, **SMALL)
    for row in ("generated", "real_vs_real", "noise"):
        assert one[row] == two[row]
    assert evaluate(run, atari32, seed=6, **SMALL)["real_vs_real"] != one["real_vs_real"]
    summary = evaluate_draws(run, atari32, seeds=[5, 6, 7, 8], **SMALL)
    fds = sorted(r["generated"]["fd"] for r in summary["reports"])
    floors = sorted(r["real_vs_real"]["fd"] for r in summary["reports"])
    assert summary["reports"][0]["generated"] == one["generated"]
    assert summary["fd"]["median"] == pytest.approx((fds[1] + fds[2]) / 2)  # even count
    assert summary["fd_over_floor"] == pytest.approx(
        (fds[1] + fds[2]) / (floors[1] + floors[2]))
