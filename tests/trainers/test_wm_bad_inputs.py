"""Bad inputs to the World-Models trainer, its evaluation, its dream and their commands: each is
one line naming the option and the fix, said before any work, and never damages a run folder;
and a Ctrl-C'd run that resumes logs what an uninterrupted one logs. Tiny sizes throughout."""

from __future__ import annotations

import dataclasses
import json
import math
import sys
from pathlib import Path

import pytest
import torch
from wm_tiny import tiny

from gan_envs.cli import main
from gan_envs.collect import CollectConfig, collect
from gan_envs.trainers.world_model import (
    WorldModelError,
    dream,
    evaluate_world_model,
    load_stage,
    train_world_model,
)


@pytest.fixture(scope="module")
def dataset(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("wm_data") / "pong.h5"
    collect(CollectConfig(["GanAtari/Pong-v0"], path, steps=60, num_envs=1))
    return path


def _copy_run(src: Path, dst: Path, names=("vae.pt", "mdrnn.pt", "latents.npz")) -> Path:
    dst.mkdir(exist_ok=True)
    for name in names:
        (dst / name).write_bytes((src / name).read_bytes())
    return dst


def _snapshot(run: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(run.iterdir())}


# ---------------------------------------------------------------- the config
@pytest.mark.parametrize("changes, message", [
    ({"vae_lr": 1e300}, r"vae_lr must lie in \(0, 1\]"),    # overflowed inside Adam: traceback
    ({"mdrnn_lr": 2.0}, r"mdrnn_lr must lie in \(0, 1\]"),
    ({"temperature": 1e308}, "temperature must be at most 100"),  # NaN dreams, exit 0
    ({"sigma0": 1e300}, "sigma0 must be at most 1e6"),  # kept a controller of infs, exit 0
])
def test_out_of_range_floats_are_refused_by_the_config(changes, message):
    with pytest.raises(WorldModelError, match=message) as err:
        tiny(**changes).resolved()
    assert "\n" not in str(err.value)


def test_a_diverging_loss_stops_the_stage_and_keeps_the_last_checkpoint(tmp_path, pong):
    """vae_lr=1 turned V's weights into NaN within 3 batches; the stage went on, saved a vae.pt
    of NaNs and logged NaN losses, exit 0."""
    with pytest.raises(WorldModelError, match=r"vae: the loss is not finite at batch \d+, "
                       r"training diverged .* lower vae_lr \(--vae-lr\)") as err:
        train_world_model(tiny(vae_lr=1.0, vae_max_steps=20, checkpoint_every=1, log_every=1),
                          pong, tmp_path, stage="vae")
    bad = int(str(err.value).split("batch ")[1].split(",")[0])
    ckpt = load_stage(tmp_path, "vae")
    assert ckpt["step"] == bad - 1
    assert all(torch.isfinite(t).all() for t in ckpt["model"].values())
    rows = [json.loads(line) for line in (tmp_path / "log.jsonl").read_text().splitlines()]
    assert rows and all(math.isfinite(r["loss"]) for r in rows)


# ---------------------------------------------------------------- refused calls change nothing
def test_a_refused_call_leaves_the_run_folder_as_it_was(tmp_path, pong, v_and_m):
    """config.json was rewritten with the refused call's settings before the refusal."""
    run = _copy_run(v_and_m, tmp_path / "run")
    (run / "config.json").write_text(json.dumps(dataclasses.asdict(tiny().resolved())))
    before = _snapshot(run)
    with pytest.raises(WorldModelError, match="trained with vae_lr=0.001"):
        train_world_model(tiny(vae_lr=0.5), pong, run, stage="vae", resume=True)
    with pytest.raises(WorldModelError, match="already holds vae.pt"):
        train_world_model(tiny(vae_lr=0.5), pong, run, stage="vae")
    with pytest.raises(WorldModelError, match="trained with hidden_size=16"):
        train_world_model(tiny(hidden_size=32), pong, run, stage="controller")
    # stage 'all': M's clash is found before V resumes and rewrites vae.pt
    with pytest.raises(WorldModelError, match="mdrnn.pt was trained with seq_len=8"):
        train_world_model(tiny(vae_max_steps=6, seq_len=4), pong, run, resume=True)
    assert _snapshot(run) == before


def test_a_run_folder_that_is_a_file_is_one_line(tmp_path, pong):
    path = tmp_path / "run"
    path.write_bytes(b"keep me")
    with pytest.raises(WorldModelError, match="is a file; the run directory"):
        train_world_model(tiny(), pong, path, stage="vae")
    assert path.read_bytes() == b"keep me"


def test_a_changed_gradient_clip_is_refused_on_resume(tmp_path, pong, v_and_m):
    """grad_clip shapes V and M but was not among the fixed settings: a resume with another
    value continued silently, unlike an uninterrupted run."""
    run = _copy_run(v_and_m, tmp_path / "run")
    for stage in ("vae", "mdrnn"):
        with pytest.raises(WorldModelError, match=r"\.pt was trained with grad_clip=1.0"):
            train_world_model(tiny(grad_clip=0.0, vae_max_steps=6, mdrnn_max_steps=6), pong,
                              run, stage=stage, resume=True)


# ---------------------------------------------------------------- resume
def test_a_resumed_stage_logs_what_an_uninterrupted_one_logs(tmp_path, pong):
    """After Ctrl-C between two log lines, the resumed stage's next line averaged only the
    batches after the resumption (e.g. steps 4-5 instead of 1-5)."""
    cfg = tiny(vae_max_steps=7, log_every=5)

    def interrupt(stage, step, metrics):
        if step == 3:
            raise KeyboardInterrupt

    straight, resumed = tmp_path / "straight", tmp_path / "resumed"
    train_world_model(cfg, pong, straight, stage="vae")
    with pytest.raises(KeyboardInterrupt):
        train_world_model(cfg, pong, resumed, stage="vae", progress=interrupt)
    assert load_stage(resumed, "vae")["step"] == 3
    train_world_model(cfg, pong, resumed, stage="vae", resume=True)

    def rows(run):
        return [{k: v for k, v in json.loads(line).items() if k != "seconds"}
                for line in (run / "log.jsonl").read_text().splitlines()]

    assert [r["step"] for r in rows(straight)] == [5, 7]
    assert rows(resumed) == rows(straight)


# ---------------------------------------------------------------- evaluation
def test_evaluation_leaves_out_a_controller_of_zero_generations(tmp_path, pong, v_and_m):
    """generations=0 writes controller.pt with no kept controller; the evaluation played the
    random policy as "the controller" and reported it beside itself."""
    run = _copy_run(v_and_m, tmp_path / "run")
    train_world_model(tiny(generations=0), pong, run, stage="controller")
    assert load_stage(run, "controller")["best_params"] is None
    results = evaluate_world_model(run, pong, save=False)
    assert "controller" not in results and "mdrnn" in results


@pytest.mark.parametrize("kwargs, message", [
    ({"max_frames": 0}, "max_frames must be >= 1"),  # torch.cat of an empty list
    ({"rollouts": 0}, "rollouts must be >= 1"),      # 0 silently meant the default
    ({"workers": -1}, "workers must be >= 0"),
])
def test_evaluation_arguments_are_checked(v_and_m, pong, kwargs, message):
    with pytest.raises(WorldModelError, match=message):
        evaluate_world_model(v_and_m, pong, save=False, **kwargs)


# ---------------------------------------------------------------- dream
@pytest.mark.parametrize("kwargs, message", [
    ({"temperature": math.inf}, "temperature must be > 0 and at most 100"),  # NaN frames
    ({"temperature": 1e308}, "temperature must be > 0 and at most 100"),
    ({"steps": 10**8}, r"steps \(--steps\) must be in \[1, 10000\]"),  # ran for hours, then OOM
    ({"steps": 0}, r"steps \(--steps\) must be in \[1, 10000\]"),
    ({"start_episode": 1}, r"start episode \(--episode\) needs the dataset"),  # ignored
])
def test_dream_arguments_are_checked_before_anything_loads(tmp_path, kwargs, message):
    with pytest.raises(WorldModelError, match=message):
        dream(tmp_path / "no-such-run", out=tmp_path / "d.mp4", **kwargs)
    assert not (tmp_path / "d.mp4").exists()


# ---------------------------------------------------------------- the commands
def test_train_command_refusals_come_before_training(tmp_path, dataset, capsys):
    run = tmp_path / "run"
    # --evaluate without held-out episodes failed only after all three stages had trained
    assert main(["train", "world-model", str(dataset), "--out", str(run), "--quick",
                 "--workers", "0", "--max-episodes", "1", "--evaluate"]) == 2
    err = capsys.readouterr().err
    assert "the evaluation needs held-out episodes; the run uses 1 episode: record" in err
    assert err.count("\n") == 1 and not run.exists()
    # --temperature acts only in the dream: with the real env it was recorded and ignored
    assert main(["train", "world-model", str(dataset), "--out", str(run), "--quick",
                 "--temperature", "2"]) == 2
    assert "add --controller-env dream or leave --temperature out" in capsys.readouterr().err
    # config errors name the option as typed
    assert main(["train", "world-model", str(dataset), "--out", str(run), "--quick",
                 "--vae-lr", "1e300"]) == 2
    assert capsys.readouterr().err.startswith("gan-envs: --vae-lr must lie in (0, 1]")
    assert not run.exists()


def test_train_command_names_changed_options_as_typed(tmp_path, dataset, capsys):
    run = tmp_path / "run"
    assert main(["train", "world-model", str(dataset), "--out", str(run), "--quick",
                 "--workers", "0", "--stage", "vae"]) == 0
    config = (run / "config.json").read_bytes()
    capsys.readouterr()
    assert main(["train", "world-model", str(dataset), "--out", str(run), "--quick",
                 "--stage", "vae", "--vae-lr", "0.01", "--resume"]) == 2
    err = capsys.readouterr().err
    assert "vae.pt was trained with --vae-lr 0.001; pass the same settings" in err
    assert (run / "config.json").read_bytes() == config


def test_dream_command_refuses_an_episode_without_data(tmp_path, v_and_m, capsys):
    """--episode without --data was ignored: the dream showed a live episode, exit 0."""
    out = tmp_path / "d.mp4"
    assert main(["dream", str(v_and_m), "--episode", "2", "--out", str(out)]) == 2
    assert "--episode picks an episode of --data DATA.h5" in capsys.readouterr().err
    assert not out.exists()
    video = tmp_path / "ok.mp4"
    assert main(["dream", str(v_and_m), "--steps", "2", "--out", str(video)]) == 0
    assert video.stat().st_size > 0


def test_the_controller_stage_without_cma_is_one_line_before_any_work(tmp_path, pong,
                                                                     monkeypatch):
    """cma is in the [train] extra only: `make demo`'s venv lacked it, and the controller
    stage (after V and M had trained, under the default --stage all) ended in a traceback."""
    monkeypatch.setitem(sys.modules, "cma", None)  # what importlib finds when it is missing
    with pytest.raises(WorldModelError, match=r"^the controller stage searches C with CMA-ES "
                                              r"from the cma package, which is not installed: "
                                              r"pip install 'gan-envs\[train\]'"):
        train_world_model(tiny(), pong, tmp_path / "run")
    assert not (tmp_path / "run").exists()
    train_world_model(tiny(), pong, tmp_path / "v", stage="vae")  # V and M need no cma
