"""train world-model / dream end to end: a real dataset, real torch training, real videos."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import pytest

from gan_envs.cli import main
from gan_envs.collect import CollectConfig, collect


def test_quick_world_model_from_a_dataset(tmp_path: Path, capsys):
    data = tmp_path / "pong.h5"
    collect(CollectConfig(["GanAtari/Pong-v0"], data, steps=600, num_envs=3))
    run = tmp_path / "wm"
    assert main(["train", "world-model", str(data), "--out", str(run), "--quick",
                 "--workers", "0", "--evaluate"]) == 0
    out = capsys.readouterr().out
    assert "copy last z" in out and "random policy" in out
    for name in ("vae.pt", "latents.npz", "mdrnn.pt", "controller.pt", "metrics.json"):
        assert (run / name).exists(), name
    metrics = json.loads((run / "metrics.json").read_text())
    assert {"vae", "mdrnn", "controller"} <= set(metrics)

    video = tmp_path / "dream.mp4"
    assert main(["dream", str(run), "--steps", "12", "--out", str(video), "--data", str(data),
                 "--episode", "1"]) == 0
    capture = cv2.VideoCapture(str(video))
    frames = int(capture.get(cv2.CAP_PROP_FRAME_COUNT))
    ok, frame = capture.read()
    capture.release()
    assert ok and frames == 13 and frame.shape[1] > frame.shape[0]  # real beside dream
    breakout = tmp_path / "breakout.h5"  # another game's data
    collect(CollectConfig(["GanAtari/Breakout-v0"], breakout, steps=30, num_envs=1))
    capsys.readouterr()
    assert main(["dream", str(run), "--steps", "2", "--out", str(video), "--data",
                 str(breakout)]) == 2
    assert "trained on GanAtari/Pong-v0: dream on the run's own games" in capsys.readouterr().err
    small = tmp_path / "pong32.h5"  # the run's game, other frames
    collect(CollectConfig(["GanAtari/Pong-v0"], small, steps=30, num_envs=1, size=32))
    capsys.readouterr()
    assert main(["dream", str(run), "--steps", "2", "--out", str(video), "--data",
                 str(small)]) == 2
    err = capsys.readouterr().err
    assert "holds frames (3, 32, 32), but this world model was trained on (3, 64, 64)" in err
    assert "dream on the run's own kind of data" in err and err.count("\n") == 1


def test_world_model_errors_are_one_line(tmp_path: Path, capsys):
    cartpole = tmp_path / "cartpole.h5"
    collect(CollectConfig(["CartPole-v1"], cartpole, steps=60, num_envs=1))
    assert main(["train", "world-model", str(cartpole), "--out", str(tmp_path / "a"),
                 "--quick"]) == 2
    assert "needs image frames" in capsys.readouterr().err
    pong = tmp_path / "pong.h5"
    collect(CollectConfig(["GanAtari/Pong-v0"], pong, steps=60, num_envs=1))
    assert main(["train", "world-model", str(pong), "--out", str(tmp_path / "b"), "--stage",
                 "mdrnn", "--quick"]) == 2
    assert "--stage vae` first" in capsys.readouterr().err
    assert main(["dream", str(tmp_path / "none"), "--out", str(tmp_path / "d.mp4")]) == 2
    assert "does not exist" in capsys.readouterr().err
    gan_run = tmp_path / "gan"
    gan_run.mkdir()
    (gan_run / "checkpoint.pt").write_bytes(b"")
    assert main(["dream", str(gan_run), "--out", str(tmp_path / "d.mp4")]) == 2
    assert "holds a GAN run" in capsys.readouterr().err
    assert main(["train", "world-model", str(pong), "--out", str(gan_run), "--quick"]) == 2
    assert "holds a GAN run" in capsys.readouterr().err
    assert main(["dream", str(gan_run), "--out", str(tmp_path / "d.png")]) == 2
    assert "give the file a .mp4 name" in capsys.readouterr().err
    assert main(["dream", str(gan_run), "--temperature", "-1"]) == 2
    assert "temperature must be > 0" in capsys.readouterr().err
    assert main(["train", "world-model", str(pong), "--out", str(tmp_path / "c"), "--quick",
                 "--env-id", "GanAtari/Breakout-v0"]) == 2
    assert capsys.readouterr().err.startswith("gan-envs: ")


def test_batch_caps_of_v_and_m_are_options(tmp_path: Path, capsys):
    """--quick caps V and M at 15 batches; --vae-max-steps / --mdrnn-max-steps set the caps
    (0: none), recorded with the stage and taken from vae.pt by the later stages."""
    from gan_envs.trainers.world_model import load_stage, stage_config

    data = tmp_path / "pong.h5"  # one 60-step episode: 2 V batches of 32 frames per epoch
    collect(CollectConfig(["GanAtari/Pong-v0"], data, steps=60, num_envs=1))
    run = tmp_path / "wm"
    base = ["train", "world-model", str(data), "--out", str(run), "--quick"]
    assert main([*base, "--stage", "vae", "--vae-epochs", "9", "--vae-max-steps", "0"]) == 0
    assert int(load_stage(run, "vae")["step"]) == 18  # past --quick's 15
    assert stage_config(run, "vae").vae_max_steps == 0
    assert main([*base, "--stage", "mdrnn", "--mdrnn-max-steps", "1"]) == 0
    assert int(load_stage(run, "mdrnn")["step"]) == 1  # the plan is 2
    capped = tmp_path / "capped"
    assert main([*base[:3], "--out", str(capped), "--quick", "--stage", "vae",
                 "--vae-epochs", "9", "--vae-max-steps", "4"]) == 0
    assert int(load_stage(capped, "vae")["step"]) == 4
    capsys.readouterr()
    with pytest.raises(SystemExit) as exit_:  # argparse's usage error
        main([*base, "--stage", "vae", "--vae-max-steps", "-1"])
    assert exit_.value.code == 2
    assert "argument --vae-max-steps: must be >= 0, got -1" in capsys.readouterr().err
