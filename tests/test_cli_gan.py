"""train gan / sample / evaluate end to end: a real dataset, real torch training, real PNGs."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pytest
from test_cli_outputs import one_line_error

from gan_envs.cli import main
from gan_envs.collect import CollectConfig, collect
from gan_envs.trainers.data import DatasetFrameSource, EnvFrameSource
from gan_envs.trainers.sampling import load_generator

TINY = ["--width", "16", "--batch-size", "8", "--sample-every", "2", "--checkpoint-every", "2"]


@pytest.fixture(scope="module")
def dataset(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("data") / "two.h5"
    collect(CollectConfig(["GanAtari/Breakout-v0", "GanAtari/Pong-v0"], out, steps=300,
                          num_envs=2, size=32))
    return out


def test_dataset_frame_source_labels_and_disjoint_draws(dataset: Path):
    source = DatasetFrameSource(dataset)
    try:
        rng = np.random.default_rng(0)
        frames, env = source.sample_frames_with_env(len(source), rng)
        assert frames.shape == (len(source), 3, 32, 32) and frames.dtype == np.uint8
        assert set(env.tolist()) == {0, 1}
        first, second = np.array_split(env, 2)  # a random order: both halves hold both games
        assert set(first.tolist()) == set(second.tolist()) == {0, 1}
        assert source.sample_frames(16, rng).shape == (16, 3, 32, 32)
    finally:
        source.close()
    pong = DatasetFrameSource(dataset, env_ids=["GanAtari/Pong-v0"])
    assert pong.env_ids == ["GanAtari/Pong-v0"] and len(pong) < len(source)
    pong.close()


def test_train_sample_evaluate(dataset: Path, tmp_path: Path, capsys):
    run = tmp_path / "run"
    assert main(["train", "gan", str(dataset), "--out", str(run), "--iterations", "4", *TINY]) == 0
    assert (run / "checkpoint.pt").exists() and (run / "training.mp4").exists()
    assert sorted(p.name for p in (run / "samples").iterdir()) == [
        "iter_000002.png", "iter_000004.png"]
    assert main(["train", "gan", str(dataset), "--out", str(run), "--iterations", "6", "--resume",
                 *TINY]) == 0
    log = [json.loads(line) for line in (run / "log.jsonl").read_text().splitlines()]
    assert log[-1]["iteration"] == 6

    for extra in (["--n", "4"], ["--n", "4", "--latent", "zeros"],
                  ["--n", "4", "--set", "0=2.5", "3=-1"], ["--sweep", "5"],
                  ["--interpolate", "1", "2", "--steps", "5"]):
        out = tmp_path / f"s{len(extra)}.png"
        assert main(["sample", str(run), "--out", str(out), *extra]) == 0
        image = cv2.imread(str(out))
        assert image is not None and image.shape[2] == 3

    report = tmp_path / "report.json"
    assert main(["evaluate", str(run), str(dataset), "--n", "64", "--classifier-steps", "5",
                 "--json", str(report)]) == 0
    data = json.loads(report.read_text())
    assert {"generated", "real_vs_real", "noise"} <= set(data) and data["ema"] is True
    assert "fd / floor" in capsys.readouterr().out
    # --draws: the median over seeds 0 and 1, each draw's numbers beside it
    assert main(["evaluate", str(run), str(dataset), "--n", "64", "--classifier-steps", "5",
                 "--draws", "2", "--json", str(report)]) == 0
    both = json.loads(report.read_text())
    assert both["seeds"] == [0, 1] and both["draws"][0]["fd"] == data["generated"]["fd"]
    assert "over 2 draws" in capsys.readouterr().out
    # --no-ema: the raw generator, for evaluate and sample alike
    assert main(["evaluate", str(run), str(dataset), "--n", "64", "--classifier-steps", "5",
                 "--json", str(report), "--no-ema"]) == 0
    raw = json.loads(report.read_text())
    assert raw["ema"] is False and raw["generated"]["fd"] != data["generated"]["fd"]
    ema_png, raw_png = tmp_path / "ema.png", tmp_path / "raw.png"
    assert main(["sample", str(run), "--out", str(ema_png), "--n", "4"]) == 0
    assert main(["sample", str(run), "--out", str(raw_png), "--n", "4", "--no-ema"]) == 0
    assert not np.array_equal(cv2.imread(str(ema_png)), cv2.imread(str(raw_png)))
    for extra in (["--sweep", "5"], ["--interpolate", "1", "2", "--steps", "3"]):
        assert main(["sample", str(run), "--out", str(ema_png), *extra]) == 0
        assert main(["sample", str(run), "--out", str(raw_png), *extra, "--no-ema"]) == 0
        assert not np.array_equal(cv2.imread(str(ema_png)), cv2.imread(str(raw_png)))


def test_conditional_options_and_sample_one_env(dataset: Path, tmp_path: Path, capsys):
    cond, plain = tmp_path / "cond", tmp_path / "plain"
    assert main(["train", "gan", str(dataset), "--out", str(cond), "--iterations", "2",
                 "--bf16", *TINY]) == 0
    assert json.loads((cond / "config.json").read_text())["conditional"] is True
    out = tmp_path / "pong.png"
    assert main(["sample", str(cond), "--out", str(out), "--n", "4", "--env", "Pong"]) == 0
    assert main(["sample", str(cond), "--sweep", "3", "--env", "GanAtari/Breakout-v0",
                 "--out", str(tmp_path / "sweep.png")]) == 0
    assert main(["sample", str(cond), "--env", "Qbert", "--out", str(out)]) == 2
    assert "unknown env 'Qbert'" in capsys.readouterr().err
    assert main(["train", "gan", str(dataset), "--out", str(plain), "--iterations", "2",
                 "--no-conditional", *TINY]) == 0
    assert json.loads((plain / "config.json").read_text())["conditional"] is False
    assert main(["sample", str(plain), "--env", "Pong", "--out", str(out)]) == 2
    assert "unconditional" in capsys.readouterr().err


def test_template_option_trains_and_samples(dataset: Path, tmp_path: Path):
    run = tmp_path / "template"
    assert main(["train", "gan", str(dataset), "--out", str(run), "--iterations", "2",
                 "--template", "2", "--modes", "0", *TINY]) == 0
    assert json.loads((run / "config.json").read_text())["template"] == 2
    out = tmp_path / "grid.png"
    assert main(["sample", str(run), "--out", str(out), "--n", "4", "--env", "Pong"]) == 0
    assert cv2.imread(str(out)) is not None


def test_modes_option_trains_and_samples(dataset: Path, tmp_path: Path, capsys):
    run = tmp_path / "modes"
    assert main(["train", "gan", str(dataset), "--out", str(run), "--iterations", "2",
                 "--modes", "2", "--template", "1", *TINY]) == 0
    saved = json.loads((run / "config.json").read_text())
    assert (saved["modes"], saved["template"]) == (2, 1)
    out = tmp_path / "grid.png"
    assert main(["sample", str(run), "--out", str(out), "--n", "4", "--env", "Pong"]) == 0
    assert cv2.imread(str(out)) is not None
    capsys.readouterr()
    assert main(["train", "gan", str(dataset), "--out", str(tmp_path / "bad"),
                 "--iterations", "1", "--modes", "1", *TINY]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "modes must be 0" in err[0]


def test_bad_inputs_are_one_line(dataset: Path, tmp_path: Path, capsys):
    cartpole = tmp_path / "cartpole.h5"
    collect(CollectConfig(["CartPole-v1"], cartpole, steps=50, num_envs=1))
    assert main(["train", "gan", str(cartpole), "--out", str(tmp_path / "r"),
                 "--iterations", "1"]) == 2
    assert "use --arch mlp" in capsys.readouterr().err
    assert main(["train", "gan", "GanAtari/Pong-v0", "--source", "env", "--size", "48",
                 "--out", str(tmp_path / "r"), "--iterations", "1"]) == 2
    assert "32, 64" in capsys.readouterr().err  # the sizes dcgan can make
    assert main(["sample", str(tmp_path / "missing")]) == 2
    assert "does not exist" in capsys.readouterr().err
    assert main(["sample", str(tmp_path / "missing"), "--set", "x"]) == 2
    assert main(["train", "gan", str(tmp_path / "nope.h5"), "--out", str(tmp_path / "r")]) == 2
    assert "does not exist" in capsys.readouterr().err


def test_damaged_runs_and_mismatched_inputs_are_one_line(dataset: Path, tmp_path: Path, capsys):
    run = tmp_path / "run"
    assert main(["train", "gan", str(dataset), "--out", str(run), "--iterations", "2", *TINY]) == 0
    capsys.readouterr()

    def refused(args: list[str], fragment: str) -> None:
        assert main(args) == 2, args
        err = capsys.readouterr().err
        assert fragment in err and err.count("\n") == 1, err

    sample = ["sample", str(run), "--n", "4", "--out"]
    refused([*sample, str(tmp_path / "grid")], "give the file a .png name")
    refused([*sample, str(tmp_path / "g.png"), "--set", "0=nan"], "finite VALUE")
    refused(["sample", str(run), "--n", "100000", "--out", str(tmp_path / "g.png")],
            "more than one grid holds")
    with pytest.raises(SystemExit):  # argparse: "a seed must lie in [0, 2**63)"
        main([*sample, str(tmp_path / "g.png"), "--seed", str(2**64)])
    assert "a seed must lie in" in capsys.readouterr().err
    # a kill can cut the log's last line short: resume drops it
    with (run / "log.jsonl").open("a") as log:
        log.write('{"iteration": 3, "loss')
    assert main(["train", "gan", str(dataset), "--out", str(run), "--iterations", "4", "--resume",
                 *TINY]) == 0
    log = [json.loads(line) for line in (run / "log.jsonl").read_text().splitlines()]
    assert [row["iteration"] for row in log][-1] == 4
    capsys.readouterr()
    # on resume, a setting typed at its default is still a change (the run has width 16);
    # refused resumes leave the run's config.json as it was
    config = (run / "config.json").read_bytes()
    refused(["train", "gan", str(dataset), "--out", str(run), "--iterations", "5", "--resume",
             *TINY, "--width", "512"], "was trained with width=16, not 512")
    refused(["train", "gan", str(dataset), "--out", str(run), "--iterations", "3", "--resume",
             *TINY], "at iteration 4 already")
    assert (run / "config.json").read_bytes() == config
    # a conditional run: part of an env id that fits two
    refused([*sample, str(tmp_path / "g.png"), "--env", "GanAtari"], "is ambiguous")
    # a damaged evaluation cache is trained again
    evaluate = ["evaluate", str(run), str(dataset), "--n", "32", "--classifier-steps", "3"]
    assert main(evaluate) == 0
    (run / "eval_classifier.pt").write_bytes(b"")
    assert main(evaluate) == 0
    # data of other games
    breakout = tmp_path / "breakout.h5"
    collect(CollectConfig(["GanAtari/Breakout-v0"], breakout, steps=40, num_envs=1, size=32))
    capsys.readouterr()
    refused(["evaluate", str(run), str(breakout), "--n", "16"], "data that holds the run's games")
    # an empty checkpoint (a copy cut short)
    (run / "checkpoint.pt").write_bytes(b"")
    refused([*sample, str(tmp_path / "g.png")], "empty or cut short")
    # a world-model run is not a GAN run, and a GAN run does not go into one
    wm = tmp_path / "wm"
    wm.mkdir()
    (wm / "vae.pt").write_bytes(b"")
    refused(["sample", str(wm), "--out", str(tmp_path / "g.png")], "holds a world-model run")
    refused(["train", "gan", str(dataset), "--out", str(wm), "--iterations", "1", *TINY],
            "holds a world-model run")


def test_mlp_on_vector_observations(tmp_path: Path):
    cartpole = tmp_path / "cartpole.h5"
    collect(CollectConfig(["CartPole-v1"], cartpole, steps=200, num_envs=2))
    run = tmp_path / "mlp"
    assert main(["train", "gan", str(cartpole), "--out", str(run), "--arch", "mlp",
                 "--iterations", "3", *TINY]) == 0
    assert (run / "checkpoint.pt").exists()


def test_env_source_uses_gan_atari_frames():
    source = EnvFrameSource(["GanAtari/Pong-v0"], size=32)
    try:
        frames = source.sample_frames(3, np.random.default_rng(0))
        assert frames.shape == (3, 3, 32, 32) and frames.dtype == np.uint8
    finally:
        source.close()


def test_threads_and_diversity_options(dataset: Path, tmp_path: Path, capsys, monkeypatch):
    import torch

    import gan_envs.trainers.gan as gan

    seen: list[int] = []
    real_train = gan.train_gan

    def train_and_record_threads(*args, **kwargs):  # the real trainer, observed
        seen.append(torch.get_num_threads())
        return real_train(*args, **kwargs)

    monkeypatch.setattr(gan, "train_gan", train_and_record_threads)
    before = torch.get_num_threads()
    try:
        torch.set_num_threads(2)
        run = tmp_path / "div"
        assert main(["train", "gan", str(dataset), "--out", str(run), "--iterations", "2",
                     "--diversity", "0.5", "--threads", "1", *TINY]) == 0
        assert seen == [1] and torch.get_num_threads() == 2  # restored after the command
        assert json.loads((run / "log.jsonl").read_text().splitlines()[0])["iteration"]
        assert json.loads((run / "config.json").read_text())["diversity"] == 0.5
        assert "diversity" in (run / "log.jsonl").read_text()
    finally:
        torch.set_num_threads(before)
    with pytest.raises(SystemExit):
        main(["sample", str(run), "--threads", "0"])
    assert "--threads: must be >= 1" in capsys.readouterr().err


def test_relativistic_loss_and_r2_options_train(dataset: Path, tmp_path: Path, capsys):
    from gan_envs.trainers.gan import LOSSES

    run = tmp_path / "rpgan"
    assert main(["train", "gan", str(dataset), "--out", str(run), "--iterations", "2",
                 "--loss", "rpgan", "--r2", "0.5", *TINY]) == 0
    saved = json.loads((run / "config.json").read_text())
    assert (saved["loss"], saved["r2"]) == ("rpgan", 0.5)
    for loss in LOSSES:  # the command line offers every loss the trainer knows
        with pytest.raises(SystemExit) as done:
            main(["train", "gan", str(dataset), "--loss", loss, "--help"])
        assert done.value.code == 0
    capsys.readouterr()
    with pytest.raises(SystemExit):
        main(["train", "gan", str(dataset), "--out", str(run), "--loss", "wgan"])
    assert "invalid choice: 'wgan'" in capsys.readouterr().err


def test_repeated_and_abbreviated_options(dataset: Path, tmp_path: Path, capsys):
    """`--env A --env B` trained on B alone, `--set 1=5 --set 2=5` set dimension 2 alone, and
    `--resume --wid 512` (argparse's prefix of --width) trained on past the check that refuses
    a changed width; `--env A A` made a second, empty game."""
    run = tmp_path / "run"
    breakout, pong = "GanAtari/Breakout-v0", "GanAtari/Pong-v0"
    assert main(["train", "gan", str(dataset), "--out", str(run), "--iterations", "2",
                 "--env", breakout, "--env", pong, *TINY]) == 0
    assert load_generator(run).env_ids == [breakout, pong]
    with pytest.raises(SystemExit):  # argparse: unrecognized arguments
        main(["train", "gan", str(dataset), "--out", str(run), "--iterations", "4", "--resume",
              "--wid", "512", *TINY[2:]])
    assert "unrecognized arguments: --wid 512" in capsys.readouterr().err
    assert one_line_error(["train", "gan", str(dataset), "--out", str(tmp_path / "twice"),
                           "--env", pong, pong, "--iterations", "1", *TINY], capsys) == (
        f"gan-envs: {dataset}: env_ids (--env) names {pong} twice; name each environment once")
    assert not (tmp_path / "twice").exists()
    both, each = tmp_path / "both.png", tmp_path / "each.png"
    assert main(["sample", str(run), "--n", "4", "--latent", "zeros", "--set", "1=5", "2=5",
                 "--out", str(both)]) == 0
    assert main(["sample", str(run), "--n", "4", "--latent", "zeros", "--set", "1=5",
                 "--set", "2=5", "--out", str(each)]) == 0
    assert np.array_equal(cv2.imread(str(both)), cv2.imread(str(each)))
    assert one_line_error(["sample", str(run), "--set", "1=5", "1=6"], capsys) == (
        "gan-envs: --set gives dimension 1 twice (1=5 and 1=6); give each DIM once")


def test_huge_latent_values_and_sizes_are_one_line(dataset: Path, tmp_path: Path, capsys):
    """1e39 overflowed float32 in torch with a traceback; --size 2000 named EnvFrameSource."""
    run = tmp_path / "run"
    assert main(["train", "gan", str(dataset), "--out", str(run), "--iterations", "1",
                 *TINY]) == 0
    assert one_line_error(["sample", str(run), "--set", "1=1e39"], capsys).endswith(
        "and a finite value within ±1e+06")
    assert one_line_error(["sample", str(run), "--sweep", "1", "--from", "1e39"], capsys) == (
        "gan-envs: the sweep's start must be a finite number within ±1e+06, got 1e+39")
    assert one_line_error(["sample", str(run), "--sweep", "100"], capsys) == (
        "gan-envs: the sweep's latent dimension must be 0 to 99 (this run's latent vectors "
        "have 100), got 100")
    assert one_line_error(["train", "gan", "GanAtari/Pong-v0", "--source", "env", "--size", "2000",
                 "--out", str(tmp_path / "r"), "--iterations", "1"], capsys) == (
        "gan-envs: --size must be in [1, 1024] (the frame side of live environments), got 2,000")


def test_evaluate_scores_a_run_of_some_games_on_their_frames(dataset: Path, tmp_path: Path,
                                                             capsys):
    """A run trained with --env on part of a file was refused by `evaluate` on that file, which
    has no --env: it is scored on the run's games of the file."""
    run, pong = tmp_path / "run", "GanAtari/Pong-v0"
    assert main(["train", "gan", str(dataset), "--out", str(run), "--iterations", "1", "--env",
                 pong, *TINY]) == 0
    capsys.readouterr()
    report = tmp_path / "r.json"
    assert main(["evaluate", str(run), str(dataset), "--n", "10", "--classifier-steps", "5",
                 "--json", str(report)]) == 0
    assert f"scoring on the run's games of {dataset}: {pong}" in capsys.readouterr().err
    assert json.loads(report.read_text())["generated"]["fd"] > 0
