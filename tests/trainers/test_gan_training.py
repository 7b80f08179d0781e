"""The GAN training loop: updates, exact resumption, outputs, and one-line errors."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from gan_envs.trainers.data import ArrayFrameSource
from gan_envs.trainers.gan import GanConfig, load_checkpoint, train_gan


def _interrupt(iteration: int, metrics: dict) -> None:
    raise KeyboardInterrupt


def _changed(before: dict, after: dict) -> list[str]:
    return [k for k, v in before.items() if v.is_floating_point() and not torch.equal(v, after[k])]


@pytest.mark.parametrize(("recipe", "loss"), [("tutorial", None), ("fast", None),
                                              ("fast", "rpgan")])
def test_one_step_changes_both_networks(tmp_path, atari32, recipe, loss, tiny):
    config = dict(recipe=recipe, loss=loss, **tiny)
    train_gan(GanConfig(iterations=0, **config), atari32, tmp_path / "init")
    train_gan(GanConfig(iterations=1, **config), atari32, tmp_path / "one")
    init, one = load_checkpoint(tmp_path / "init"), load_checkpoint(tmp_path / "one")
    assert one["iteration"] == 1
    for net in ("generator", "discriminator"):
        # every weight moves (a bias may not: hinge gradients on D's last bias cancel at first)
        weights = [k for k in init[net] if k.endswith(("weight", "original"))]
        assert weights and set(weights) <= set(_changed(init[net], one[net])), net


def _assert_same_state(a: dict, b: dict) -> None:
    for net in ("generator", "discriminator", "generator_ema"):
        assert a[net].keys() == b[net].keys()
        for k in a[net]:
            assert torch.equal(a[net][k], b[net][k]), f"{net}.{k}"
    for opt in ("opt_g", "opt_d"):
        for i, state in a[opt]["state"].items():
            for k, v in state.items():
                assert torch.equal(v, b[opt]["state"][i][k]), f"{opt}.{i}.{k}"
    assert torch.equal(a["rng"]["torch"], b["rng"]["torch"])
    assert a["rng"]["numpy"] == b["rng"]["numpy"]


def test_resume_equals_uninterrupted(tmp_path, atari32, tiny):
    config = dict(recipe="fast", log_every=1, **tiny)
    train_gan(GanConfig(iterations=6, **config), atari32, tmp_path / "straight")
    train_gan(GanConfig(iterations=3, **config), atari32, tmp_path / "split")
    summary = train_gan(GanConfig(iterations=6, **config), atari32, tmp_path / "split",
                        resume=True)
    assert (summary.start_iteration, summary.iterations) == (3, 6)
    _assert_same_state(load_checkpoint(tmp_path / "straight"), load_checkpoint(tmp_path / "split"))
    losses = [[json.loads(line)["loss_g"] for line in (tmp_path / d / "log.jsonl").open()]
              for d in ("straight", "split")]
    assert losses[0] == losses[1] and len(losses[0]) == 6


def test_ctrl_c_checkpoints_and_resumes_exactly(tmp_path, atari32, tiny):
    config = dict(recipe="tutorial", checkpoint_every=100, **tiny)

    def interrupt_at_2(iteration, metrics):
        assert set(metrics) == {"loss_d", "loss_g", "d_real", "d_fake"}
        if iteration == 2:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        train_gan(GanConfig(iterations=4, **config), atari32, tmp_path / "cut",
                  progress=interrupt_at_2)
    assert load_checkpoint(tmp_path / "cut")["iteration"] == 2
    train_gan(GanConfig(iterations=4, **config), atari32, tmp_path / "cut", resume=True)
    train_gan(GanConfig(iterations=4, **config), atari32, tmp_path / "straight")
    a, b = load_checkpoint(tmp_path / "cut"), load_checkpoint(tmp_path / "straight")
    for net in ("generator", "discriminator"):
        assert all(torch.equal(v, b[net][k]) for k, v in a[net].items())


def test_channels_last_and_grey_frames_train(tmp_path, atari32, tiny):
    grey = ArrayFrameSource(atari32.frames[:, :1].copy())
    summary = train_gan(GanConfig(iterations=2, channels_last=True, **tiny), grey, tmp_path)
    assert summary.iterations == 2 and summary.last_grid.exists()


def test_resume_without_a_total_continues_to_the_runs_own(tmp_path, atari32, tiny):
    with pytest.raises(KeyboardInterrupt):
        train_gan(GanConfig(iterations=3, **tiny), atari32, tmp_path,
                  progress=_interrupt)
    assert train_gan(GanConfig(**tiny), atari32, tmp_path, resume=True).iterations == 3


def test_run_directory_outputs(tiny_run):
    names = {p.name for p in tiny_run.iterdir()}
    assert {"checkpoint.pt", "config.json", "log.jsonl", "samples", "training.mp4"} <= names
    assert sorted(p.name for p in (tiny_run / "samples").iterdir()) == [
        "iter_000002.png", "iter_000004.png"]
    line = json.loads((tiny_run / "log.jsonl").read_text().splitlines()[-1])
    assert {"iteration", "loss_d", "loss_g", "d_real", "d_fake"} <= set(line)
    assert json.loads((tiny_run / "config.json").read_text())["loss"] == "hinge"


def test_vector_observations_train_with_mlp(tmp_path):
    states = np.random.default_rng(0).normal([0, 0, 0, 0], [1, 0.5, 0.1, 0.5], (256, 4))
    source = ArrayFrameSource(states.astype(np.float32))
    summary = train_gan(GanConfig(arch="mlp", iterations=3, width=16, latent_dim=8), source,
                        tmp_path)
    assert summary.iterations == 3 and summary.video is None
    assert np.load(tmp_path / "samples" / "iter_000003.npy").shape == (64, 4)


def _one_line_error(excinfo) -> str:
    message = str(excinfo.value)
    assert "\n" not in message
    return message


def test_dcgan_refuses_vector_data(tmp_path):
    with pytest.raises(ValueError) as excinfo:
        train_gan(GanConfig(arch="dcgan"), ArrayFrameSource(np.zeros((8, 4), np.float32)),
                  tmp_path)
    assert "--arch mlp" in _one_line_error(excinfo)


@pytest.mark.parametrize("shape", [(3, 48, 48), (3, 64, 32), (3, 256, 256)])
def test_dcgan_refuses_unsupported_sizes(tmp_path, shape):
    with pytest.raises(ValueError) as excinfo:
        train_gan(GanConfig(arch="dcgan"), ArrayFrameSource(np.zeros((2, *shape), np.uint8)),
                  tmp_path)
    assert "32, 64 or 128" in _one_line_error(excinfo)


def test_existing_run_needs_resume(tiny_run, atari32, tiny):
    with pytest.raises(FileExistsError) as excinfo:
        train_gan(GanConfig(iterations=5, **tiny), atari32, tiny_run)
    assert "--resume" in _one_line_error(excinfo)


def test_resume_refuses_other_settings(tiny_run, atari32, tiny):
    with pytest.raises(ValueError) as excinfo:
        train_gan(GanConfig(iterations=5, loss="bce", **tiny), atari32, tiny_run, resume=True)
    assert "loss" in _one_line_error(excinfo)


def test_resume_on_other_games_is_refused_for_unconditional_runs(tmp_path, atari32, tiny):
    """Only conditional runs compared the games: an unconditional run trained on Breakout and
    Pong resumed on other games' frames without a word."""
    from gan_envs.trainers.data import ArrayFrameSource

    frames, env = atari32.sample_frames_with_env(64, np.random.default_rng(0))
    config = dict(tiny, conditional=False)
    train_gan(GanConfig(iterations=1, **config), atari32, tmp_path)
    other = ArrayFrameSource(frames, np.zeros_like(env), ["GanAtari/AirRaid-v0"])
    with pytest.raises(ValueError) as excinfo:
        train_gan(GanConfig(iterations=2, **config), other, tmp_path, resume=True)
    assert _one_line_error(excinfo).endswith(
        "was trained on ['ALE/Breakout-v5', 'ALE/Pong-v5'], this source holds "
        "['GanAtari/AirRaid-v0']: resume on the same games, or train a new run into another "
        "--out")
    reordered = ArrayFrameSource(frames, env, ["ALE/Pong-v5", "ALE/Breakout-v5"])
    assert train_gan(GanConfig(iterations=2, **config), reordered, tmp_path,
                     resume=True).iterations == 2  # the same games in another order: allowed
    config_3 = dict(config)
    unlabelled = ArrayFrameSource(frames)  # no env ids to compare: allowed
    assert train_gan(GanConfig(iterations=3, **config_3), unlabelled, tmp_path,
                     resume=True).iterations == 3


def test_resume_of_missing_run_is_one_line(tmp_path, atari32, tiny):
    with pytest.raises(FileNotFoundError) as excinfo:
        train_gan(GanConfig(**tiny), atari32, tmp_path / "nope", resume=True)
    assert "does not exist" in _one_line_error(excinfo)


@pytest.mark.parametrize("bad", [dict(loss="wgan"), dict(recipe="slow"), dict(arch="vae"),
                                 dict(diffaugment="cutout"), dict(ema_decay=1.0), dict(d_width=1)])
def test_bad_options_are_one_line(tmp_path, atari32, bad, tiny):
    with pytest.raises(ValueError) as excinfo:
        train_gan(GanConfig(**{**tiny, **bad}), atari32, tmp_path)
    _one_line_error(excinfo)


def test_discriminator_width_trains_and_the_generator_loads(tmp_path, atari32, tiny):
    from gan_envs.trainers.sampling import load_generator

    train_gan(GanConfig(iterations=2, d_width=48, **tiny), atari32, tmp_path)
    ckpt = load_checkpoint(tmp_path)
    assert ckpt["config"]["d_width"] == 48
    assert ckpt["discriminator"]["net.0.parametrizations.weight.original"].shape[0] == 12  # 48/4
    assert load_generator(tmp_path).generate(torch.zeros(2, tiny["latent_dim"])).shape[0] == 2


def test_rpgan_loss_pairs_each_real_with_its_fake():
    """The relativistic pairing loss depends on each pair's difference only, and the
    generator's side is the discriminator's with the roles swapped."""
    from gan_envs.trainers.gan import _loss_d, _loss_g
    real, fake = torch.tensor([3.0, -1.0, 0.0]), torch.tensor([1.0, 2.0, 0.0])
    assert torch.isclose(_loss_d("rpgan", real, fake), _loss_d("rpgan", real + 5, fake + 5))
    assert torch.isclose(_loss_g("rpgan", fake, real), _loss_d("rpgan", fake, real))
    # a D that ranks every real above its fake has a lower loss than one that swaps them
    assert _loss_d("rpgan", real.abs() + 1, -real.abs()) < _loss_d("rpgan", -real.abs(),
                                                                  real.abs() + 1)
    with pytest.raises(ValueError, match="pass real"):
        _loss_g("rpgan", fake)


def test_unknown_loss_is_one_line_error(atari32, tmp_path, tiny):
    with pytest.raises(ValueError, match=r"^unknown loss 'wgan'; choose one of 'bce', "
                                         r"'hinge', 'rpgan'$"):
        train_gan(GanConfig(iterations=1, loss="wgan", **tiny), atari32, tmp_path / "run")
