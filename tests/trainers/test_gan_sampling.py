"""Sampling a trained run and exploring its latent space."""

from __future__ import annotations

import numpy as np
import pytest

from gan_envs.trainers.sampling import interpolate, load_generator, sample, sweep


def test_sample_shapes_and_ranges(tiny_run):
    images = sample(tiny_run, n=5, seed=1)
    assert images.shape == (5, 3, 32, 32) and images.dtype == np.uint8
    assert np.array_equal(images, sample(tiny_run, n=5, seed=1))  # same seed, same images
    assert not np.array_equal(images, sample(tiny_run, n=5, seed=2))


def test_generator_uses_ema_when_present(tiny_run):
    assert load_generator(tiny_run).ema
    assert not load_generator(tiny_run, ema=False).ema
    assert not np.array_equal(sample(tiny_run, n=3), sample(tiny_run, n=3, ema=False))


@pytest.mark.parametrize("latent", ["zeros", "ones", 0.5])
def test_constant_latents_give_identical_images(tiny_run, latent):
    images = sample(tiny_run, n=3, latent=latent)
    assert (images == images[0]).all()


def test_set_dims_changes_the_image(tiny_run):
    base = sample(tiny_run, n=1, latent="zeros")
    assert not np.array_equal(base, sample(tiny_run, n=1, latent="zeros", set_dims={"3": 50.0}))


def test_sweep_is_a_strip(tiny_run):
    strip = sweep(tiny_run, dim=2, start=-3, stop=3, steps=6, seed=4)
    assert strip.shape == (6, 3, 32, 32) and strip.dtype == np.uint8
    assert not np.array_equal(strip[0], strip[-1])


def test_interpolation_ends_at_the_two_seeds(tiny_run):
    # tiny_run is conditional (two games): the path keeps one env, so name it on both sides
    path = interpolate(tiny_run, seed_a=1, seed_b=2, steps=5, env=0)
    assert path.shape == (5, 3, 32, 32)
    assert np.array_equal(path[0], sample(tiny_run, n=1, seed=1, env=0)[0])
    assert np.array_equal(path[-1], sample(tiny_run, n=1, seed=2, env=0)[0])
    slerp = interpolate(tiny_run, seed_a=1, seed_b=2, steps=5, spherical=True, env=0)
    assert np.abs(slerp[-1].astype(int) - path[-1]).max() <= 1


def test_missing_run_and_missing_checkpoint_are_one_line(tmp_path):
    for run_dir, words in [(tmp_path / "nope", "does not exist"), (tmp_path, "no checkpoint.pt")]:
        with pytest.raises(FileNotFoundError) as excinfo:
            sample(run_dir)
        assert words in str(excinfo.value) and "\n" not in str(excinfo.value)


@pytest.mark.parametrize(("kwargs", "words"), [
    (dict(set_dims={999: 1.0}), "cannot set latent dimension 999 to 1.0: give a dimension 0 to"),
    (dict(set_dims={"1.5": 1.0}), "cannot set latent dimension '1.5'"),
    (dict(set_dims={0: "inf"}), "cannot set latent dimension 0 to 'inf'"),
    (dict(latent="uniform"), "unknown latent 'uniform'"),
    (dict(latent="nan"), "unknown latent 'nan'; use normal, zeros, ones or a finite number"),
    (dict(latent=None), "unknown latent None"),
    (dict(n=2.5), "the number of samples must be a whole number, got 2.5"),
    (dict(seed=0.5), "the latent seed must be a whole number, got 0.5"),
])
def test_bad_latents_are_one_line(tiny_run, kwargs, words):
    """``latent="nan"`` was torch's two-line error; ``latent=None`` a TypeError traceback."""
    with pytest.raises(ValueError) as excinfo:
        sample(tiny_run, **({"n": 1} | kwargs))
    assert words in str(excinfo.value) and "\n" not in str(excinfo.value)


def test_sweep_ends_must_be_finite(tiny_run):
    with pytest.raises(ValueError, match=r"^the sweep's stop must be a finite number within "
                                         r"±1e\+06, got nan$"):
        sweep(tiny_run, dim=0, start=-1.0, stop=float("nan"))
    with pytest.raises(ValueError, match=r"^the sweep's start must be a finite number within "
                                         r"±1e\+06, got 1e\+39$"):
        sweep(tiny_run, dim=0, start=1e39)


def test_strips_have_a_length_limit(tiny_run):
    """``sweep(steps=100000)`` ran out of memory in torch; ``interpolate(steps=5000)`` wrote
    a 330002-pixel-wide strip."""
    with pytest.raises(ValueError, match=r"^the sweep's steps must be in \[1, 256\], got "):
        sweep(tiny_run, dim=0, steps=100_000)
    with pytest.raises(ValueError, match=r"^steps \(both ends count\) must be in \[2, 256\]"):
        interpolate(tiny_run, 1, 2, steps=5000)
    for dim in (-1, 16):  # the run's latents have 16 dimensions
        with pytest.raises(ValueError, match=r"^the sweep's latent dimension must be 0 to 15 "
                           rf"\(this run's latent vectors have 16\), got {dim}$"):
            sweep(tiny_run, dim=dim)
