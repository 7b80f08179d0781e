"""Trainer arguments a PyTorch user may pass: one-line errors when the config is made or the
function called, never a hang, a late failure after training, or a silently wrong run."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from gan_envs.images import make_grid, write_video
from gan_envs.trainers.data import ArrayFrameSource
from gan_envs.trainers.gan import GanConfig, train_gan
from gan_envs.trainers.metrics import frechet_distance, kernel_inception_distance, precision_recall
from gan_envs.trainers.models import build_models
from gan_envs.trainers.sampling import load_generator, sweep
from gan_envs.trainers.world_model import WorldModelConfig, WorldModelError

IMAGES = (3, 32, 32)


@pytest.mark.parametrize(("fields", "match"), [
    ({"video_fps": math.inf}, "video_fps must be a finite number > 0"),  # OpenCV hung on it
    ({"video_fps": 0}, "video_fps must be a finite number > 0"),
    ({"video_fps": 5000.0}, "video_fps must be at most 1000"),
    ({"iterations": 1e4}, r"iterations \(--iterations\) must be a whole number"),
    ({"batch_size": 4.0}, r"batch_size \(--batch-size\) must be a whole number"),
    ({"seed": -1}, r"seed \(--seed\) must be in \[0, "),
    ({"lr_d": -1e-4}, r"lr_d \(--lr-d\) must be a finite number > 0"),
    ({"lr_g": math.nan}, r"lr_g \(--lr-g\) must be a finite number > 0"),
    ({"betas": (1.0, 0.9)}, r"betas must each lie in \[0, 1\)"),
    ({"betas": (0.5,)}, "betas must be a pair"),
    ({"betas": (0.5, 0.9, 0.1)}, "betas must be a pair"),
    ({"d_relu_slope": -0.2}, r"d_relu_slope must lie in \[0, 1\)"),
    ({"d_relu_slope": math.nan}, r"d_relu_slope must lie in \[0, 1\)"),
    ({"batch_size": 100_000}, r"batch_size \(--batch-size\) must be in \[1, 4096\], got "
                              "100000"),  # it took the machine's 24 GiB for one iteration
    ({"ema_decay": 1.5}, r"ema_decay \(--ema\) must lie in \[0, 1\)"),
])
def test_gan_config_fields(fields, match):
    with pytest.raises(ValueError, match=match) as err:
        GanConfig(**fields).resolved(IMAGES, 2)
    assert "\n" not in str(err.value)


def test_a_minibatch_std_that_would_be_constant_is_refused():
    # 10 frames in packs of 2: 5 packs, which no group of 2 to 4 divides
    with pytest.raises(ValueError, match=r"mbstd_group=4 .* its 5 packs \(batch_size 10 / "
                                         r"pack 2\) split into none"):
        GanConfig(arch="mlp", batch_size=10).resolved((4,))
    GanConfig(arch="mlp", batch_size=12).resolved((4,))  # 6 packs: groups of 3


def test_image_sources_must_be_uint8_and_channels_first():
    rng = np.random.default_rng(0)
    with pytest.raises(ValueError, match="images must be uint8 0-255, got float32"):
        ArrayFrameSource(rng.random((8, *IMAGES)).astype(np.float32))
    with pytest.raises(ValueError, match=r"needs channels first .* np.moveaxis"):
        ArrayFrameSource(rng.integers(0, 256, (8, 32, 32, 3), dtype=np.uint8))
    assert ArrayFrameSource(np.zeros((2, 4), np.float32), np.array([0, 0]),
                            "Only-v0").env_ids == ["Only-v0"]


class _BrokenSource:
    """A frame source that breaks its contract the way ``how`` says."""

    def __init__(self, how: str) -> None:
        self.how = how
        self.frame_shape = IMAGES if how != "nan" else (4,)

    def sample_frames(self, n, rng):
        if self.how == "channels_last":
            return np.zeros((n, 32, 32, 3), np.uint8)
        if self.how == "float":
            return np.zeros((n, *IMAGES), np.float32)
        frames = np.zeros((n, 4), np.float32)
        frames[0, 0] = np.nan
        return frames


@pytest.mark.parametrize(("how", "match"), [
    ("channels_last", r"promised frames of shape \(3, 32, 32\) .* gave \(32, 32, 3\)"),
    ("float", "gave float32 image frames; the trainer reads images as uint8"),
    ("nan", "vector frames that are not all finite"),
])
def test_a_frame_source_that_breaks_its_contract_is_named(tmp_path, how, match):
    config = GanConfig(iterations=1, width=16, batch_size=4, latent_dim=8, n_samples=4,
                       arch="dcgan" if how != "nan" else "mlp")
    with pytest.raises(ValueError, match=match) as err:
        train_gan(config, _BrokenSource(how), tmp_path / how)
    assert "_BrokenSource" in str(err.value)


def test_build_models_and_the_discriminator_check_their_inputs():
    for kwargs, match in [({"latent_dim": 0}, "latent_dim must be >= 1, got 0"),
                          ({"width": 0}, "width must be >= 2, got 0"),
                          ({"d_width": -4}, "d_width must be >= 2, got -4"),
                          ({"relu_slope": -0.2}, r"relu_slope must lie in \[0, 1\)")]:
        with pytest.raises(ValueError, match=match):
            build_models("dcgan", IMAGES, **kwargs)
    _, d = build_models("dcgan", IMAGES, width=16)
    with pytest.raises(ValueError, match=r"takes inputs of shape \(N, \*\(3, 32, 32\)\), got "
                                         r"\(2, 3, 64, 64\)"):
        d(torch.zeros(2, 3, 64, 64))  # gave 50 logits for 2 frames


def test_the_generator_of_a_run_takes_numpy_latents_and_checks_labels(tiny_run):
    gen = load_generator(tiny_run)
    z = np.random.default_rng(0).normal(size=(3, gen.latent_dim))  # float64 numpy
    assert gen.generate(z).shape == (3, *gen.frame_shape)
    with pytest.raises(ValueError, match=r"labels must be 2 env indices in \[0, 2\)"):
        gen.generate(z[:2], labels=torch.tensor([0, 7]))
    with pytest.raises(ValueError, match="batch_size must be"):
        gen.generate(z, batch_size=0)
    with pytest.raises(ValueError, match="env must be an env id"):
        gen.env_index(1.0)
    with pytest.raises(ValueError, match="the sweep's latent dimension must be a whole number"):
        sweep(tiny_run, dim=0.5)
    with pytest.raises(ValueError, match="steps must be a whole number"):
        sweep(tiny_run, dim=0, steps=2.0)


def test_metrics_check_their_feature_sets():
    x = np.random.default_rng(0).normal(size=(50, 4))
    for call, match in [
        (lambda: frechet_distance(x[:1], x), "at least 2 samples per set, got 1 and 50"),
        (lambda: frechet_distance(x, x[:, :3]), "the same D, got shapes"),
        (lambda: frechet_distance(x, np.full_like(x, np.nan)), "finite features"),
        (lambda: kernel_inception_distance(x, x, n_subsets=0), "n_subsets must be"),
        (lambda: kernel_inception_distance(x[:1], x), "at least 4 samples"),
        (lambda: precision_recall(x, x, k=0), "precision/recall k must be"),
        (lambda: precision_recall(x[:, 0], x), r"\(N, D\) feature sets"),
    ]:
        with pytest.raises(ValueError, match=match):
            call()


def test_image_helpers_check_their_arguments(tmp_path):
    frames = np.zeros((2, 3, 8, 8), np.uint8)
    with pytest.raises(ValueError, match="pad_value is a grey level, a whole number 0-255, "
                                         "got 300$"):
        make_grid(frames, pad_value=300)
    with pytest.raises(ValueError, match="nrow must be a whole number, got 2.5"):
        make_grid(frames, nrow=2.5)
    with pytest.raises(ValueError, match="fps must be > 0 and at most 1000, got inf"):
        write_video([np.zeros((8, 8, 3), np.uint8)] * 2, tmp_path / "v.mp4", fps=math.inf)


@pytest.mark.parametrize(("fields", "match"), [
    ({"temperature": math.nan}, "temperature must be a finite number, got nan"),
    ({"sigma0": math.inf}, "sigma0 must be a finite number"),
    ({"moving_weight": math.nan}, "moving_weight must be a finite number"),
    ({"grad_clip": -1.0}, r"grad_clip must be >= 0 \(0: off\)"),
    ({"reward_weight": -1.0}, "reward_weight must be >= 0"),
    ({"kl_tolerance": -1.0}, "kl_tolerance must be >= 0"),
    ({"eval_seed": -1}, r"eval_seed must be in \[0, "),
    ({"z_size": 8.0}, "z_size must be a whole number"),
    ({"temperature": -1.0}, "^temperature must be > 0, got -1.0$"),  # named both, not which
    ({"sigma0": 0.0}, "^sigma0 must be > 0, got 0.0$"),
])
def test_world_model_config_fields(fields, match):
    with pytest.raises(WorldModelError, match=match):
        WorldModelConfig(quick=True, **fields).resolved()


def test_numpy_numbers_and_resumed_settings_still_pass(tmp_path, atari32):
    """Review of the checks above: numpy numbers are stored as Python ones (config.json is
    JSON), build_models takes numpy ints, and a resumed run is not refused by a check newer
    than its checkpoint (the minibatch-std grouping)."""
    config = GanConfig(iterations=1, width=np.int64(16), batch_size=np.int64(4),
                       latent_dim=8, n_samples=4, lr_d=np.float32(4e-4), seed=np.int64(1))
    summary = train_gan(config, atari32, tmp_path / "run")
    assert summary.iterations == 1
    g, _ = build_models("dcgan", IMAGES, latent_dim=np.int64(8), width=np.int64(16))
    assert tuple(g(torch.zeros(1, 8)).shape) == (1, *IMAGES)
    old = GanConfig(arch="mlp", batch_size=10)
    with pytest.raises(ValueError, match="mbstd_group=4"):
        old.resolved((4,))
    assert old.resolved((4,), resuming=True).mbstd_group == 4


def test_image_helpers_take_bf16_and_name_bad_frames(tmp_path):
    assert make_grid(torch.zeros(2, 3, 8, 8, dtype=torch.bfloat16)).shape == (12, 22, 3)
    with pytest.raises(ValueError, match=r"uint8 H x W x 3 .* got uint8 \(3, 8, 8\) "
                                         r"\(channels-first frames"):
        write_video([np.zeros((3, 8, 8), np.uint8)] * 2, tmp_path / "v.mp4")
    assert not (tmp_path / "v.mp4").exists()
    from gan_envs.images import save_png
    with pytest.raises(ValueError, match="non-empty uint8"):
        save_png(tmp_path / "a.png", np.zeros((0, 0, 3), np.uint8))
