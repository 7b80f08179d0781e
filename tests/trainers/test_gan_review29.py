"""Session 29 review of the GAN's Python API: wrong types are one-line errors before any file
is written, a progress callback that raises keeps the finished step, and the sampling and
frame-source helpers check their arguments."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from gan_envs.trainers import sampling
from gan_envs.trainers.data import ArrayFrameSource, DatasetFrameSource
from gan_envs.trainers.gan import GanConfig, load_checkpoint, train_gan

TINY = dict(width=16, batch_size=8, latent_dim=8, n_samples=8)


@pytest.fixture(scope="module")
def frames() -> ArrayFrameSource:
    rng = np.random.default_rng(0)
    return ArrayFrameSource(rng.integers(0, 256, (32, 3, 32, 32), dtype=np.uint8))


@pytest.fixture(scope="module")
def labelled() -> ArrayFrameSource:
    rng = np.random.default_rng(1)
    return ArrayFrameSource(rng.integers(0, 256, (32, 3, 32, 32), dtype=np.uint8),
                            np.arange(32) % 2, ["Pong", "Breakout"])


@pytest.fixture(scope="module")
def conditional_run(tmp_path_factory, labelled):
    run = tmp_path_factory.mktemp("review29") / "run"
    torch.set_num_threads(1)
    train_gan(GanConfig(iterations=2, **TINY), labelled, run)
    return run


@pytest.mark.parametrize(("field", "value", "match"), [
    ("pack", 2.0, r"pack \(--pack\) must be a whole number, got 2.0"),  # was: deep in conv
    ("pack", True, r"pack \(--pack\) must be a whole number, got True"),  # was: pack 1
    ("modes", 2.0, r"modes \(--modes\) must be a whole number"),
    ("mbstd_group", 4.0, r"mbstd_group \(--mbstd-group\) must be a whole number"),
    ("standing_stats", 512.0, r"standing_stats \(--standing-stats\) must be a whole number"),
    ("template", "1", r"template \(--template\) must be a whole number"),
    ("ema_decay", "0.9", r"ema_decay \(--ema\) must be a number, got '0.9'"),
    ("diversity", "1", r"diversity \(--diversity\) must be a number"),
    ("r1", "1", r"r1 \(--r1\) must be a number"),
    ("lr_decay", "0.5", r"lr_decay \(--lr-decay\) must be a number"),
    ("template_mask_init", "x", r"template_mask_init \(--template-mask-init\) must be a number"),
    ("bf16", "no", r"bf16 \(--bf16\) must be True or False, got 'no'"),
    ("spectral_norm", "no", r"spectral_norm \(--spectral-norm\) must be True or False"),
    ("conditional", "no", r"conditional \(--conditional\) must be True or False"),
    ("diffaugment", ["color"], r"diffaugment \(--diffaugment\) must be a string"),
    ("recipe", ["fast"], r"recipe \(--recipe\) must be a string"),
    ("env_shares", 1.0, r"env_shares \(--env-shares\) must be a sequence of numbers"),
    ("n_samples", 4097, r"n_samples must be in \[1, 4096\], got 4097"),  # 1e5: out of memory
])
def test_a_field_of_the_wrong_type_is_one_line_before_any_file(tmp_path, labelled, field,
                                                               value, match):
    with pytest.raises(ValueError, match=match) as err:
        train_gan(GanConfig(iterations=1, **{**TINY, field: value}), labelled, tmp_path / "r")
    assert "\n" not in str(err.value)
    assert not (tmp_path / "r").exists()


def test_env_shares_as_a_string_is_not_read_as_its_digits(labelled, tmp_path):
    with pytest.raises(ValueError, match="env_shares .* must be a sequence of numbers"):
        train_gan(GanConfig(iterations=1, env_shares="12", **TINY), labelled, tmp_path / "r")


def test_numpy_fields_are_stored_as_python_numbers(frames, tmp_path):
    train_gan(GanConfig(iterations=1, pack=np.int64(2), mbstd_group=np.int32(2),
                        bf16=np.bool_(False), r1=np.float32(0.5), **TINY), frames, tmp_path)
    saved = load_checkpoint(tmp_path)["config"]
    assert (type(saved["pack"]), type(saved["mbstd_group"]), type(saved["bf16"]),
            type(saved["r1"])) == (int, int, bool, float)


def test_wrong_arguments_of_train_gan_are_named(frames, tmp_path):
    with pytest.raises(TypeError, match="config must be a GanConfig, got dict"):
        train_gan({"iterations": 1}, frames, tmp_path / "a")
    with pytest.raises(TypeError, match="source must be a FrameSource .* got ndarray"):
        train_gan(GanConfig(iterations=1, **TINY), np.zeros((4, 3, 32, 32), np.uint8),
                  tmp_path / "b")
    with pytest.raises(TypeError, match="progress must be a function"):  # was: after a step
        train_gan(GanConfig(iterations=1, **TINY), frames, tmp_path / "c", progress=5)
    (tmp_path / "file").write_text("x")
    with pytest.raises(FileExistsError, match="is a file, not a folder"):
        train_gan(GanConfig(iterations=1, **TINY), frames, tmp_path / "file")
    assert not any((tmp_path / name).exists() for name in "abc")


def test_a_progress_callback_that_raises_keeps_the_step_and_resumes_exactly(frames, tmp_path):
    def stop_at_2(iteration: int, metrics: dict[str, float]) -> None:
        if iteration == 2:
            raise RuntimeError("stop")

    config = dict(TINY, checkpoint_every=100)
    with pytest.raises(RuntimeError, match="stop"):
        train_gan(GanConfig(iterations=4, **config), frames, tmp_path / "split",
                  progress=stop_at_2)
    assert load_checkpoint(tmp_path / "split")["iteration"] == 2  # was: no checkpoint
    train_gan(GanConfig(iterations=4, **config), frames, tmp_path / "split", resume=True)
    train_gan(GanConfig(iterations=4, **config), frames, tmp_path / "straight")
    split, straight = load_checkpoint(tmp_path / "split"), load_checkpoint(tmp_path / "straight")
    for k, v in straight["generator"].items():
        assert torch.equal(v, split["generator"][k]), k


def test_load_checkpoint_names_a_checkpoint_file_and_a_damaged_version(conditional_run,
                                                                       tmp_path):
    with pytest.raises(ValueError, match=f"is a file, and a run is a folder: pass its folder, "
                                         f"{conditional_run}"):
        load_checkpoint(conditional_run / "checkpoint.pt")  # was: "does not exist"
    with pytest.raises(TypeError, match="run_dir must be a path"):
        load_checkpoint(None)
    ckpt = load_checkpoint(conditional_run)
    ckpt["version"] = "7"
    (tmp_path / "run").mkdir()
    torch.save(ckpt, tmp_path / "run" / "checkpoint.pt")
    with pytest.raises(ValueError, match="its version is '7', not a whole number"):
        load_checkpoint(tmp_path / "run")


def test_resuming_a_conditional_run_on_one_of_its_games_names_the_games(conditional_run,
                                                                        labelled, tmp_path):
    import shutil

    run = tmp_path / "run"
    shutil.copytree(conditional_run, run)
    one = ArrayFrameSource(labelled.frames[:16], np.zeros(16, int), ["Pong"])
    with pytest.raises(ValueError, match=r"is conditional on the envs \['Pong', 'Breakout'\], "
                                         r"this source labels \[\]"):  # was: conditional=False
        train_gan(GanConfig(iterations=3, **TINY), one, run, resume=True)


def test_conditional_on_one_labelled_env_says_one(tmp_path, labelled):
    one = ArrayFrameSource(labelled.frames[:16], np.zeros(16, int), ["Pong"])
    with pytest.raises(ValueError, match="this source labels 1:"):  # was: "labels none"
        train_gan(GanConfig(iterations=1, conditional=True, **TINY), one, tmp_path / "r")


def test_sampling_checks_its_arguments(conditional_run):
    gen = sampling.load_generator(conditional_run)
    z = torch.zeros(2, gen.latent_dim)
    for call, match in [
        (lambda: gen.generate(z, labels=torch.tensor([0.5, 1.2])), "whole env indices"),
        (lambda: gen.generate(torch.full((2, gen.latent_dim), float("nan"))), "finite"),
        (lambda: gen.generate("abc"), r"latents must be numbers shaped \(N, 8\)"),
        (lambda: gen.labels("3"), "the number of labels must be a whole number"),
        (lambda: gen.labels(-1), "the number of labels must be >= 0"),
        (lambda: sampling.sample(conditional_run, n=2, set_dims=[(0, 1.0)]),
         "set_dims must be a mapping"),
        (lambda: sampling.sample(conditional_run, n=2, ema="no"), "ema must be True or False"),
        (lambda: sampling.interpolate(conditional_run, 1, 2, spherical="no"),
         "spherical must be True or False"),
        (lambda: sampling.make_latents(2, "3"), "latent_dim must be a whole number"),
        (lambda: sampling.checkpoint_generator(str(conditional_run)),
         "takes the dict load_checkpoint"),
    ]:
        with pytest.raises(ValueError, match=match):
            call()
    assert gen.generate(z, labels=[0, 1]).shape == (2, 3, 32, 32)


def test_frame_sources_check_their_arguments(tmp_path):
    rng = np.random.default_rng(0)
    source = ArrayFrameSource(np.zeros((10, 3, 8, 8), np.uint8), np.arange(10) % 2)
    for call, match in [
        (lambda: source.sample_frames(3.0, rng), "sample_frames' n must be a whole number"),
        (lambda: source.sample_frames(True, rng), "sample_frames' n must be a whole number"),
        (lambda: source.sample_frames(3, 0), "rng must be a numpy Generator"),
        (lambda: ArrayFrameSource(np.zeros((10, 3, 8, 8), np.uint8), np.arange(10) / 2),
         "env_index must hold whole env indices"),  # was: 0.5 read as env 0
        (lambda: ArrayFrameSource(np.array([["a", "b"]])), "vectors must be finite numbers"),
        (lambda: ArrayFrameSource(np.full((4, 3), np.nan)), "with NaN or inf"),
        (lambda: DatasetFrameSource(tmp_path / "x.h5", env_ids=3), "env_ids must be env id"),
        (lambda: DatasetFrameSource(tmp_path / "x.h5", in_memory="no"), "in_memory must be"),
    ]:
        with pytest.raises(ValueError, match=match):
            call()
    whole = ArrayFrameSource(np.zeros((4, 3, 8, 8), np.uint8), np.array([0.0, 1.0, 1.0, 0.0]))
    assert whole.env_index.tolist() == [0, 1, 1, 0]


def test_diffaugment_takes_spaces_after_the_commas():
    """'color, translation' (as a user types a list) was refused as an unknown policy."""
    cfg = GanConfig(diffaugment=" color, translation ").resolved((3, 32, 32))
    assert cfg.diffaugment == "color,translation"
    with pytest.raises(ValueError, match=r"unknown diffaugment \['cutout'\]"):
        GanConfig(diffaugment="color, cutout").resolved((3, 32, 32))
