"""Session 26's five gaps of the World-Models trainer, each refused in one line that names the
thing and the fix, before any work, leaving the run folder byte-identical:

1. ``workers`` had no upper bound (``--workers 100000`` tried to spawn that many processes);
2. ``train world-model`` ignored options of a stage ``--stage`` does not run;
3. M trained on the latents of another V (V retrained after M) went on into C and the dream;
4. a later stage or a resumption on another dataset was not noticed;
5. a C trained with another V or M (either retrained after C) went on into the dream, the
   evaluation and a resumed controller stage.

Tiny sizes throughout (``wm_tiny``); the command-line runs use ``--quick`` on a 60-step file.
"""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import h5py
import numpy as np
import pytest
import torch
from wm_tiny import tiny

from gan_envs.cli import main
from gan_envs.collect import CollectConfig, collect
from gan_envs.datasets import RolloutReader
from gan_envs.trainers import world_model as wm
from gan_envs.trainers.world_model import (
    MAX_WORKERS,
    WorldModelConfig,
    WorldModelError,
    dream,
    evaluate_world_model,
    load_stage,
    metrics_table,
    stage_config,
    train_world_model,
)


def _copy(src: Path, dst: Path) -> Path:
    shutil.copytree(src, dst)
    return dst


def _snapshot(run: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(run.iterdir())}


def _collect(path: Path, steps: int = 60, num_envs: int = 1, **kwargs) -> Path:
    collect(CollectConfig(["GanAtari/Pong-v0"], path, steps=steps, num_envs=num_envs, **kwargs))
    return path


def _one_line_error(argv: list[str], capsys) -> str:
    capsys.readouterr()
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1, err
    return err.strip()


# ---------------------------------------------------------------- 1. workers has a cap
def test_more_workers_than_the_cap_are_refused_before_anything(tmp_path, pong, v_and_m):
    """workers=100000 passed every check: the controller stage then tried to spawn 100,000
    processes (and the evaluation as many as it had episodes)."""
    assert tiny(workers=MAX_WORKERS).resolved().workers == MAX_WORKERS
    with pytest.raises(WorldModelError, match=rf"^workers must be in \[0, {MAX_WORKERS}\] "
                       r"\(processes that play controller candidates; .*\), got 100000$"):
        tiny(workers=100_000).resolved()
    run = tmp_path / "run"
    with pytest.raises(WorldModelError, match=r"^workers must be in \[0, 64\]"):
        train_world_model(tiny(workers=100_000), pong, run, stage="vae")
    assert not run.exists()
    with pytest.raises(WorldModelError, match=r"^workers must be in \[0, 64\]"):
        evaluate_world_model(v_and_m, pong, save=False, workers=MAX_WORKERS + 1)


def test_the_command_names_workers_and_its_range(tmp_path, capsys):
    data, run = _collect(tmp_path / "pong.h5"), tmp_path / "run"
    err = _one_line_error(["train", "world-model", str(data), "--out", str(run), "--quick",
                           "--workers", "100000"], capsys)
    assert err.startswith("gan-envs: --workers must be in [0, 64] (processes that play "
                          "controller candidates;") and err.endswith("got 100000")
    assert not run.exists()


# ---------------------------------------------------------------- 2. options of other stages
@pytest.mark.parametrize("stage, extra, message", [
    ("vae", ["--temperature", "1.5"],
     "--temperature is read by the controller stage; drop it or pass --stage controller|all"),
    ("controller", ["--vae-lr", "1e-3"],
     "--vae-lr is read by the vae stage; drop it or pass --stage vae|all"),
    ("mdrnn", ["--generations", "0"],  # a typed 0 is typed
     "--generations is read by the controller stage; drop it or pass --stage controller|all"),
    ("vae", ["--fixed-seeds"],
     "--fixed-seeds is read by the controller stage; drop it or pass --stage controller|all"),
    ("controller", ["--mdrnn-epochs", "3"],
     "--mdrnn-epochs is read by the mdrnn stage; drop it or pass --stage mdrnn|all"),
    ("controller", ["--mdrnn-max-steps", "3"],
     "--mdrnn-max-steps is read by the mdrnn stage; drop it or pass --stage mdrnn|all"),
    ("mdrnn", ["--vae-max-steps", "0"],
     "--vae-max-steps is read by the vae stage; drop it or pass --stage vae|all"),
    ("mdrnn", ["--moving-weight", "5"],
     "--moving-weight is read by the vae stage; drop it or pass --stage vae|all"),
    ("vae", ["--controller-env", "real"],  # its default typed: typed all the same
     "--controller-env is read by the controller stage; drop it or pass --stage controller|all"),
    ("mdrnn", ["--eval-rollouts", "4", "--evaluate"],  # recorded by C, read by the evaluation
     "--eval-rollouts is read by the controller stage; drop it or pass --stage controller|all"),
])
def test_an_option_of_a_stage_that_does_not_run_is_refused(tmp_path, v_and_m, capsys, stage,
                                                           extra, message):
    """These were ignored, exit 0 (`--stage vae --temperature 1.5` trained V)."""
    data, run = _collect(tmp_path / "pong.h5"), _copy(v_and_m, tmp_path / "run")
    before = _snapshot(run)
    err = _one_line_error(["train", "world-model", str(data), "--out", str(run), "--quick",
                           "--stage", stage, *extra], capsys)
    assert err == f"gan-envs: {message}"
    assert _snapshot(run) == before


def test_options_left_out_keep_their_defaults_and_workers_goes_with_any_stage(
        tmp_path, monkeypatch):
    """The parser's defaults became None (to tell a typed value from a default): the config
    the trainer gets is the same as before."""
    configs = []

    class Stop(Exception):
        pass

    def fake(config, source, run_dir, **kwargs):
        configs.append(config)
        raise Stop

    monkeypatch.setattr(wm, "train_world_model", fake)
    data = _collect(tmp_path / "pong.h5")
    for argv in ([], ["--stage", "vae", "--workers", "0"], ["--stage", "mdrnn", "--seed", "3"]):
        with pytest.raises(Stop):
            main(["train", "world-model", str(data), "--out", str(tmp_path / "run"), *argv])
    plain, vae_only, mdrnn_only = configs
    assert plain == WorldModelConfig()
    assert (plain.controller_env, plain.workers, plain.fresh_seeds) == ("real", 2, True)
    assert vae_only.workers == 0  # --workers says how to run: taken with any stage
    assert mdrnn_only.seed == 3


def test_a_later_stage_takes_vs_settings_from_vae_pt(tmp_path, capsys):
    """V's options are refused at --stage mdrnn|controller, so those stages take V's settings
    from vae.pt; before, a V trained with --vae-lr 0.002 needed it typed at every stage (and
    --stage mdrnn without it was refused)."""
    data, run = _collect(tmp_path / "pong.h5"), tmp_path / "run"
    common = ["train", "world-model", str(data), "--out", str(run), "--quick"]
    assert main([*common, "--stage", "vae", "--vae-lr", "0.002", "--moving-weight", "5",
                 "--vae-epochs", "2"]) == 0
    assert main([*common, "--stage", "mdrnn"]) == 0
    assert main([*common, "--stage", "controller", "--controller-env", "dream",
                 "--temperature", "1.5", "--generations", "1"]) == 0
    trained = stage_config(run, "controller")
    assert (trained.vae_lr, trained.moving_weight, trained.vae_epochs) == (0.002, 5.0, 2)
    assert (trained.temperature, trained.controller_env) == (1.5, "dream")
    capsys.readouterr()


# ---------------------------------------------------------------- 3. M fits V
def _retrain_v(run: Path, pong) -> None:
    """V trained on after M: vae.pt changes, mdrnn.pt still holds the old V's hash."""
    before = (run / "vae.pt").read_bytes()
    train_world_model(tiny(vae_max_steps=6), pong, run, stage="vae", resume=True)
    assert (run / "vae.pt").read_bytes() != before


STALE = (r"mdrnn\.pt was trained on the latents of another vae\.pt than .*/vae\.pt \({why}\)"
         r"{tail}: retrain M on this V: --stage mdrnn --resume with more mdrnn_epochs "
         r"\(--mdrnn-epochs\) or, where it caps M, a larger mdrnn_max_steps "
         r"\(--mdrnn-max-steps\), or move mdrnn\.pt away and run --stage mdrnn$")


def test_the_controller_and_the_dream_refuse_an_m_of_another_v(tmp_path, pong, v_and_m):
    """After V was retrained, C trained on (and the dream ran) M with a V whose latents M never
    saw, exit 0."""
    run = _copy(v_and_m, tmp_path / "run")
    _retrain_v(run, pong)
    before = _snapshot(run)
    stale = STALE.format(why="V was trained after M", tail="")
    with pytest.raises(WorldModelError, match=stale):
        train_world_model(tiny(vae_max_steps=6), pong, run, stage="controller")
    with pytest.raises(WorldModelError, match=stale):
        dream(run, steps=2, out=tmp_path / "d.mp4")
    assert not (tmp_path / "d.mp4").exists()
    # the evaluation measures V and leaves M (and C, when there is one) out, saying why
    results = evaluate_world_model(run, pong, save=False)
    assert "vae" in results and "mdrnn" not in results
    assert results["left_out"]["stages"] == ["mdrnn"]
    assert "mdrnn left out: " in metrics_table(results)
    assert _snapshot(run) == before
    # an M with no batch left cannot follow V: said before anything, too
    with pytest.raises(WorldModelError, match=STALE.format(
            why="V was trained after M", tail=r" and has no batch left to train on it "
                                              r"\(batch 4 of 4\)")):
        train_world_model(tiny(vae_max_steps=6), pong, run, stage="mdrnn", resume=True)
    assert _snapshot(run) == before
    # the fix the message names: M trains on this V's latents and records it
    train_world_model(tiny(vae_max_steps=6, mdrnn_max_steps=6), pong, run, stage="mdrnn",
                      resume=True)
    train_world_model(tiny(vae_max_steps=6, mdrnn_max_steps=6, controller_env="dream"), pong,
                      run, stage="controller")
    assert dream(run, steps=2).shape[0] == 3
    assert "left_out" not in evaluate_world_model(run, pong, save=False)


def test_stage_all_refuses_before_v_trains_on_when_m_could_not_follow(tmp_path, pong, v_and_m):
    """`all --resume` with more V batches and none left for M trained V, left M as it was and
    searched C on the mismatched pair."""
    run = _copy(v_and_m, tmp_path / "run")
    before = _snapshot(run)
    cfg = tiny(vae_max_steps=6, controller_env="dream")
    with pytest.raises(WorldModelError, match=STALE.format(
            why="V trains on in this call", tail=r" and has no batch left to train on it "
                                                 r"\(batch 4 of 4\)")):
        train_world_model(cfg, pong, run, resume=True)
    assert _snapshot(run) == before
    # with batches left for M, M follows V in the same call and C plays with the pair
    summary = train_world_model(tiny(vae_max_steps=6, mdrnn_max_steps=5, controller_env="dream"),
                                pong, run, resume=True)
    assert [s.steps for s in summary.stages.values()] == [6, 5, 1]


def test_an_m_from_before_the_hash_was_recorded_still_loads(tmp_path, pong, v_and_m):
    run = _copy(v_and_m, tmp_path / "run")
    old = load_stage(run, "mdrnn")
    del old["vae_sha256"]
    torch.save(old, run / "mdrnn.pt")
    _retrain_v(run, pong)  # nothing to compare: taken to fit, as before
    train_world_model(tiny(vae_max_steps=6, controller_env="dream"), pong, run,
                      stage="controller")
    assert dream(run, steps=2).shape[0] == 3


def test_the_dream_command_says_it_in_one_line(tmp_path, pong, v_and_m, capsys):
    run = _copy(v_and_m, tmp_path / "run")
    _retrain_v(run, pong)
    err = _one_line_error(["dream", str(run), "--steps", "2", "--out", str(tmp_path / "d.mp4")],
                          capsys)
    assert f"{run / 'mdrnn.pt'} was trained on the latents of another vae.pt than " \
           f"{run / 'vae.pt'}" in err and "--stage mdrnn" in err
    assert not (tmp_path / "d.mp4").exists()


# ---------------------------------------------------------------- 4. the dataset is recorded
def _restamp(path: Path, created: str = "2020-01-01T00:00:00+00:00") -> Path:
    with h5py.File(path, "r+") as f:
        f.attrs["created"] = created
    return path


def test_the_dataset_is_recorded_and_another_one_is_refused(tmp_path):
    """Training M or resuming V on another file of the same game went on silently: V and M
    then learned from different data."""
    data = _collect(tmp_path / "pong.h5", steps=60, num_envs=2)  # 2 episodes: one held out
    other = _restamp(Path(shutil.copy(data, tmp_path / "other.h5")))  # same frames, new file
    run = tmp_path / "run"
    with RolloutReader(data) as reader:
        created, frames = reader.metadata["created"], reader.num_frames
        assert reader.num_episodes == 2
        train_world_model(tiny(), reader, run, stage="vae")
    recorded = load_stage(run, "vae")["dataset"]
    assert recorded == {"path": str(data), "created": created, "seed": 0, "episodes": 2,
                        "frames": frames, "env_ids": ["GanAtari/Pong-v0"]}
    before = _snapshot(run)
    message = "^" + re.escape(
        f"{run / 'vae.pt'} was trained on {data} (created {created}, seed 0, 2 episodes), not "
        f"on {other} (created 2020-01-01T00:00:00+00:00, seed 0, 2 episodes): pass the run's "
        "dataset (one grown by `gan-envs collect --resume` is the same), or train a new run "
        "into another --out") + "$"
    with RolloutReader(other) as reader:
        with pytest.raises(WorldModelError, match=message):
            train_world_model(tiny(), reader, run, stage="mdrnn")
        with pytest.raises(WorldModelError, match=message):
            train_world_model(tiny(vae_max_steps=6), reader, run, stage="vae", resume=True)
        # evaluating on other data of the run's games stays allowed
        assert "vae" in evaluate_world_model(run, reader, save=False)
    assert _snapshot(run) == before


def test_the_command_refuses_another_dataset_in_one_line(tmp_path, capsys):
    data, run = _collect(tmp_path / "pong.h5"), tmp_path / "run"
    other = _restamp(Path(shutil.copy(data, tmp_path / "other.h5")))
    common = ["train", "world-model", "--out", str(run), "--quick"]
    assert main([*common[:2], str(data), *common[2:], "--stage", "vae"]) == 0
    before = _snapshot(run)
    for stage in (["--stage", "vae", "--resume"], ["--stage", "mdrnn"]):
        err = _one_line_error([*common[:2], str(other), *common[2:], *stage], capsys)
        assert err.startswith(f"gan-envs: {run / 'vae.pt'} was trained on {data} (created ")
        assert f"not on {other} (created 2020-01-01T00:00:00+00:00" in err
        assert _snapshot(run) == before


def test_other_games_name_both_datasets(tmp_path):
    data, run = _collect(tmp_path / "pong.h5"), tmp_path / "run"
    with RolloutReader(data) as reader:
        train_world_model(tiny(), reader, run, stage="vae")
    breakout = tmp_path / "breakout.h5"
    collect(CollectConfig(["GanAtari/Breakout-v0"], breakout, steps=30, num_envs=1))
    before = _snapshot(run)
    with RolloutReader(breakout) as reader, pytest.raises(
            WorldModelError, match="^" + re.escape(
                f"{run / 'vae.pt'} was trained on ['GanAtari/Pong-v0'] ({data}), {breakout} "
                "holds ['GanAtari/Breakout-v0']; pass the dataset of the run") + "$"):
        train_world_model(tiny(), reader, run, stage="mdrnn")
    assert _snapshot(run) == before


def test_the_same_dataset_grown_by_a_resumed_collection_is_accepted(tmp_path):
    data, run = _collect(tmp_path / "pong.h5"), tmp_path / "run"
    with RolloutReader(data) as reader:
        train_world_model(tiny(), reader, run, stage="vae")
    _collect(data, steps=120, resume=True)  # same created stamp, one more episode
    with RolloutReader(data) as reader:
        assert reader.num_episodes == 2
        train_world_model(tiny(), reader, run, stage="mdrnn")
        train_world_model(tiny(vae_max_steps=6), reader, run, stage="vae", resume=True)
    assert load_stage(run, "mdrnn")["dataset"]["episodes"] == 2


@pytest.mark.parametrize("max_episodes", [0, 2])
def test_a_grown_dataset_gives_v_more_batches_unless_max_episodes_caps_it(tmp_path, max_episodes):
    """All episodes used (0): V and M plan more batches on the grown file, so `all --resume` on
    a finished run would train them on under the C of the old pair: refused before anything
    (with M capped, as under --quick, it is M's "no batch left" refusal instead). With the
    episodes capped at the two trained on, nothing moves and the call is a no-op."""
    data, run = _collect(tmp_path / "pong.h5", num_envs=2), tmp_path / "run"
    cfg = tiny(max_episodes=max_episodes, vae_epochs=1, vae_max_steps=0, mdrnn_epochs=1,
               mdrnn_max_steps=0, controller_env="dream")
    with RolloutReader(data) as reader:
        done = [s.steps for s in train_world_model(cfg, reader, run).stages.values()]
    _collect(data, steps=240, num_envs=2, resume=True)
    before = _snapshot(run)
    with RolloutReader(data) as reader:
        assert reader.num_episodes > 2
        if max_episodes:
            summary = train_world_model(cfg, reader, run, resume=True)
            assert [s.steps for s in summary.stages.values()] == done
            assert _snapshot(run).keys() == before.keys()
            assert _snapshot(run)["vae.pt"] == before["vae.pt"]
        else:
            with pytest.raises(WorldModelError, match=re.escape(
                    f"{run / 'controller.pt'} was trained with {run}'s vae.pt and mdrnn.pt, "
                    "which this call would train on: train them first (--stage vae --resume "
                    "then --stage mdrnn --resume)")):
                train_world_model(cfg, reader, run, resume=True)
            assert _snapshot(run) == before


def test_a_run_from_before_the_dataset_was_recorded_takes_any_file_of_its_games(tmp_path):
    data, run = _collect(tmp_path / "pong.h5"), tmp_path / "run"
    with RolloutReader(data) as reader:
        train_world_model(tiny(), reader, run, stage="vae")
    old = load_stage(run, "vae")
    del old["dataset"]
    torch.save(old, run / "vae.pt")
    other = _restamp(Path(shutil.copy(data, tmp_path / "other.h5")))
    with RolloutReader(other) as reader:
        train_world_model(tiny(), reader, run, stage="mdrnn")


# ---------------------------------------------------------------- 5. C fits V and M
# controller.pt did not record which vae.pt and mdrnn.pt it was trained with: after both were
# retrained, a resumption of the controller stage, the dream and the evaluation went on with
# the old C on the new V and M, exit 0. It now records their SHA-256s.
DREAM_C = dict(controller_env="dream")


@pytest.fixture(scope="module")
def v_m_and_c(tmp_path_factory, pong, v_and_m) -> Path:
    """The V and M run with C searched in the dream for 1 generation."""
    run = _copy(v_and_m, tmp_path_factory.mktemp("wm26_vmc") / "run")
    train_world_model(tiny(**DREAM_C), pong, run, stage="controller")
    return run


def _retrain_m(run: Path, pong, **sizes) -> None:
    """M trained on (on the run's current V): mdrnn.pt changes."""
    before = (run / "mdrnn.pt").read_bytes()
    train_world_model(tiny(**sizes, mdrnn_max_steps=6), pong, run, stage="mdrnn", resume=True)
    assert (run / "mdrnn.pt").read_bytes() != before


def _stale_c(run: Path, names: str) -> str:
    return "^" + re.escape(
        f"{run / 'controller.pt'} was trained with another {names} than {run}'s ({names} "
        "changed after C): retrain C on them: move controller.pt away and run --stage "
        "controller") + "$"


def test_controller_pt_records_the_v_and_m_it_was_trained_with(v_m_and_c):
    c = load_stage(v_m_and_c, "controller")
    assert c["vae_sha256"] == wm._file_hash(v_m_and_c / "vae.pt")
    assert c["mdrnn_sha256"] == wm._file_hash(v_m_and_c / "mdrnn.pt")


def test_a_c_of_another_v_and_m_is_refused_or_left_out(tmp_path, pong, v_m_and_c, capsys):
    run = _copy(v_m_and_c, tmp_path / "run")
    _retrain_v(run, pong)
    _retrain_m(run, pong, vae_max_steps=6)
    before = _snapshot(run)
    stale = _stale_c(run, "vae.pt and mdrnn.pt")
    cfg = tiny(vae_max_steps=6, mdrnn_max_steps=6, generations=2, **DREAM_C)
    with pytest.raises(WorldModelError, match=stale):  # resumed C on the new V and M
        train_world_model(cfg, pong, run, stage="controller", resume=True)
    with pytest.raises(WorldModelError, match=stale):  # C would play the dream's episode
        dream(run, steps=2, out=tmp_path / "d.mp4")
    assert not (tmp_path / "d.mp4").exists()
    err = _one_line_error(["dream", str(run), "--steps", "2"], capsys)
    assert f"{run / 'controller.pt'} was trained with another vae.pt and mdrnn.pt" in err
    # a dream of a dataset's episode does not use C
    assert dream(run, source=pong, start_episode=0, steps=2).shape[0] == 3
    # the evaluation measures V and M and leaves C out, saying why
    results = evaluate_world_model(run, pong, save=False)
    assert "mdrnn" in results and "controller" not in results
    assert results["left_out"]["stages"] == ["controller"]
    assert re.match(stale, results["left_out"]["reason"])
    assert "controller left out: " in metrics_table(results)
    assert _snapshot(run) == before
    # the fix the message names
    (run / "controller.pt").rename(tmp_path / "old-controller.pt")
    train_world_model(cfg, pong, run, stage="controller")
    assert dream(run, steps=2).shape[0] == 3
    results = evaluate_world_model(run, pong, save=False)
    assert "left_out" not in results and "controller" in results


def test_a_c_of_another_m_alone_names_mdrnn_pt(tmp_path, pong, v_m_and_c):
    run = _copy(v_m_and_c, tmp_path / "run")
    _retrain_m(run, pong)
    before = _snapshot(run)
    with pytest.raises(WorldModelError, match=_stale_c(run, "mdrnn.pt")):
        train_world_model(tiny(generations=2, **DREAM_C), pong, run, stage="controller",
                          resume=True)
    assert _snapshot(run) == before


def test_stage_all_refuses_a_resumed_c_when_m_trains_on(tmp_path, pong, v_m_and_c):
    """`all --resume` with M batches left trained M and resumed C on it."""
    run = _copy(v_m_and_c, tmp_path / "run")
    before = _snapshot(run)
    with pytest.raises(WorldModelError, match="^" + re.escape(
            f"{run / 'controller.pt'} was trained with {run}'s mdrnn.pt, which this call "
            "would train on: train them first (--stage mdrnn --resume), then move "
            "controller.pt away and run --stage controller; or keep them as they are "
            "(--stage controller --resume)") + "$"):
        train_world_model(tiny(mdrnn_max_steps=6, generations=2, **DREAM_C), pong, run,
                          resume=True)
    assert _snapshot(run) == before
    # with V and M as C saw them, C resumes
    summary = train_world_model(tiny(generations=2, **DREAM_C), pong, run, resume=True)
    assert [s.steps for s in summary.stages.values()] == [4, 4, 2]


def test_a_c_from_before_the_hashes_were_recorded_still_loads(tmp_path, pong, v_m_and_c):
    run = _copy(v_m_and_c, tmp_path / "run")
    old = load_stage(run, "controller")
    del old["vae_sha256"], old["mdrnn_sha256"]
    torch.save(old, run / "controller.pt")
    _retrain_m(run, pong)  # nothing to compare: taken to fit, as before
    train_world_model(tiny(generations=2, **DREAM_C), pong, run, stage="controller",
                      resume=True)
    assert dream(run, steps=2).shape[0] == 3
    assert "controller" in evaluate_world_model(run, pong, save=False)


def test_each_file_is_hashed_once_a_call(tmp_path, pong, v_m_and_c, monkeypatch):
    """vae.pt and mdrnn.pt can be tens of MB: one read each per call."""
    run = _copy(v_m_and_c, tmp_path / "run")
    read: list[str] = []
    real = wm._file_hash
    monkeypatch.setattr(wm, "_file_hash", lambda path: read.append(Path(path).name) or real(path))
    calls = [lambda: train_world_model(tiny(generations=2, **DREAM_C), pong, run, resume=True),
             lambda: evaluate_world_model(run, pong, save=False),
             lambda: dream(run, steps=2)]
    for call in calls:
        read.clear()
        call()
        assert sorted(read) == ["mdrnn.pt", "vae.pt"]


# ---------------------------------------------------------------- session 27's review
def test_the_evaluation_leaves_c_out_when_mdrnn_pt_is_gone(tmp_path, pong, v_m_and_c):
    """With mdrnn.pt moved away (the fix the M refusal names) the evaluation hashed the missing
    file: a raw FileNotFoundError, after training when the CLI ran it with --evaluate."""
    run = _copy(v_m_and_c, tmp_path / "run")
    (run / "mdrnn.pt").unlink()
    results = evaluate_world_model(run, pong, save=False)
    assert "vae" in results and "mdrnn" not in results and "controller" not in results
    assert results["left_out"] == {"stages": ["controller"], "reason": (
        f"{run / 'controller.pt'} plays with mdrnn.pt, which {run} no longer holds: train "
        "mdrnn.pt again (from --stage mdrnn on), then C")}


def test_latents_of_another_source_with_the_same_lengths_are_not_reused(tmp_path, pong,
                                                                        v_and_m):
    """latents.npz was reused whenever vae.pt and the episode lengths matched: the evaluation on
    another dataset of the run's games (episodes cut at one max_steps) scored M on the
    training data's latents and actions."""
    from gan_envs.trainers.sequences import collect_random_episodes

    run = _copy(v_and_m, tmp_path / "run")
    other = collect_random_episodes("GanAtari/Pong-v0", episodes=3, max_steps=24, seed=1)
    assert np.array_equal(wm._episode_lengths(other, 3), wm._episode_lengths(pong, 3))
    own, reused = wm.encode_latents(run, pong)
    assert reused  # the cache M's stage wrote
    theirs, reused = wm.encode_latents(run, other)
    assert not reused and not np.array_equal(theirs["actions"], own["actions"])
    assert not np.array_equal(theirs["mu"], own["mu"])
    again, reused = wm.encode_latents(run, other)
    assert reused and np.array_equal(again["mu"], theirs["mu"])


def test_a_population_of_two_is_refused_before_anything(tmp_path, pong):
    """population=2 passed the checks, trained V and M, then cma raised 'Found unused injected
    direction/solutions' in the controller's second generation (at --quick sizes)."""
    run = tmp_path / "run"
    with pytest.raises(WorldModelError, match=r"^population \(CMA-ES candidates per "
                       r"generation; cma fails on 2 in its second generation\) must be >= 3, "
                       r"got 2$"):
        train_world_model(tiny(population=2), pong, run)
    assert not run.exists()
    assert tiny(population=3).resolved().population == 3


def test_a_later_stage_without_quick_names_quick(tmp_path, capsys):
    """`--quick --stage vae` then `--stage mdrnn` was refused naming vae_batch_size=32, which
    the command has no option for, and not --quick."""
    data, run = _collect(tmp_path / "pong.h5"), tmp_path / "run"
    assert main(["train", "world-model", str(data), "--out", str(run), "--quick",
                 "--stage", "vae"]) == 0
    err = _one_line_error(["train", "world-model", str(data), "--out", str(run),
                           "--stage", "mdrnn"], capsys)
    assert err.endswith("; it was trained with quick=True (--quick): pass it again")
    assert main(["train", "world-model", str(data), "--out", str(run), "--quick",
                 "--stage", "mdrnn"]) == 0
