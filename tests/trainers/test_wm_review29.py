"""Review 29 of the World-Models trainer: a damaged latent cache or log, the typed evaluation
options of ``train world-model --evaluate``, C's env on a dataset of several games, and the
arguments of ``encode_latents``. Tiny sizes throughout."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from gymnasium.spaces import Discrete
from wm_tiny import tiny

import gan_envs.trainers.world_model as wm
from gan_envs.cli import main
from gan_envs.collect import CollectConfig, collect
from gan_envs.trainers.sequences import ArrayEpisodeSource
from gan_envs.trainers.world_model import (
    WorldModelError,
    WorldModelSummary,
    encode_latents,
    load_stage,
    train_world_model,
)


def _copy(src: Path, dst: Path, names: tuple[str, ...]) -> Path:
    dst.mkdir()
    for name in names:
        (dst / name).write_bytes((src / name).read_bytes())
    return dst


@pytest.mark.parametrize("damage", ["cut", "text"])
def test_a_damaged_latent_cache_is_encoded_again(tmp_path, pong, v_and_m, damage):
    """latents.npz cut short (a copy) was a zipfile.BadZipFile traceback, another file under its
    name numpy's "contains pickled (object) data"; it is a cache: encode the frames again."""
    run = _copy(v_and_m, tmp_path / "run", ("vae.pt", "latents.npz"))
    good = (run / "latents.npz").read_bytes()
    (run / "latents.npz").write_bytes(good[:3000] if damage == "cut" else b"hello\n")
    arrays, reused = encode_latents(run, pong)
    assert not reused and arrays["mu"].shape[0] == sum(
        len(pong.episode(i)["observations"]) for i in range(pong.num_episodes))
    assert encode_latents(run, pong)[1]  # rewritten whole: reused now


def test_a_log_that_is_not_utf8_does_not_stop_a_stage(tmp_path, pong, v_and_m):
    """A binary log.jsonl stopped the stage with "'utf-8' codec can't decode byte 0x80",
    naming no file, after the latents were encoded; its lines that are not JSON are dropped."""
    run = _copy(v_and_m, tmp_path / "run", ("vae.pt", "latents.npz"))
    (run / "log.jsonl").write_bytes((run / "vae.pt").read_bytes()[:300])
    train_world_model(tiny(mdrnn_max_steps=2), pong, run, stage="mdrnn")
    assert load_stage(run, "mdrnn")["step"] == 2
    assert '"stage": "mdrnn"' in (run / "log.jsonl").read_text()


@pytest.mark.parametrize("kwargs, message", [
    ({"max_episodes": -1}, "max_episodes must be >= 0"),  # "need at least one array to concat"
    ({"batch_size": 0}, "batch_size must be >= 1"),       # passed when the cache was reused
])
def test_encode_latents_checks_its_arguments(v_and_m, pong, kwargs, message):
    with pytest.raises(WorldModelError, match=message):
        encode_latents(v_and_m, pong, **kwargs)


def test_the_dataset_description_counts_one_episode():
    """"(created …, seed 1, 1 episodes)" in the refusal of another dataset."""
    text = wm._describe_dataset({"path": "a.h5", "created": "x", "seed": 1, "episodes": 1})
    assert text.endswith("seed 1, 1 episode)")


def test_a_dream_controller_on_several_games_needs_a_playable_env_id(tmp_path, pong):
    """With controller_env='dream' on a Breakout + Pong dataset, C took the first id unasked
    (Breakout) and, its actions being the dataset's 6, the evaluation after training ended in
    an IndexError traceback from ale_py. Now refused up front, like controller_env='real'."""
    episodes = [{**pong.episode(i), "env_id": np.int64(i % 2)} for i in range(pong.num_episodes)]
    mixed = ArrayEpisodeSource(episodes, ["GanAtari/Breakout-v0", "GanAtari/Pong-v0"],
                               Discrete(6), {"scale": None})
    run = tmp_path / "run"
    with pytest.raises(WorldModelError, match="holds 2 env ids"):
        train_world_model(tiny(controller_env="dream"), mixed, run)
    with pytest.raises(WorldModelError, match=r"Breakout-v0 has Discrete\(4\), the dataset"):
        train_world_model(tiny(controller_env="dream", env_id="GanAtari/Breakout-v0"), mixed,
                          run)
    assert not run.exists()
    summary = train_world_model(tiny(controller_env="dream", env_id="GanAtari/Pong-v0",
                                     vae_max_steps=1, mdrnn_max_steps=1), mixed, run)
    assert summary.stages["controller"].steps == 1
    assert load_stage(run, "controller")["env_id"] == "GanAtari/Pong-v0"


def test_evaluate_takes_the_typed_eval_rollouts_and_workers(tmp_path, monkeypatch, capsys):
    """`--resume --evaluate --eval-rollouts 5` on a finished controller evaluated on the
    controller.pt's 2 seeds: C did not run, so the typed value was never recorded."""
    data = tmp_path / "pong.h5"
    collect(CollectConfig(["GanAtari/Pong-v0"], data, steps=20, num_envs=1))
    calls: list[dict] = []

    def evaluate(run_dir, source, **kwargs):
        calls.append(kwargs)
        return {}

    monkeypatch.setattr(wm, "check_evaluation", lambda config, source: None)
    monkeypatch.setattr(wm, "train_world_model",
                        lambda *args, **kwargs: WorldModelSummary(str(tmp_path / "run")))
    monkeypatch.setattr(wm, "evaluate_world_model", evaluate)
    common = ["train", "world-model", str(data), "--out", str(tmp_path / "run"), "--resume",
              "--evaluate"]
    assert main([*common, "--eval-rollouts", "5", "--workers", "0"]) == 0
    assert main(common) == 0
    capsys.readouterr()
    assert [(c.get("rollouts"), c.get("workers")) for c in calls] == [(5, 0), (None, None)]


def test_a_dream_controller_of_a_source_without_env_ids_is_left_out(tmp_path, pong):
    """C trained in the dream of a source naming no env id has env id "": the evaluation failed
    in gym.make("") ("Malformed environment ID") after measuring V and M, and so did dream."""
    from gan_envs.trainers.world_model import dream, evaluate_world_model

    nameless = ArrayEpisodeSource([pong.episode(i) for i in range(pong.num_episodes)], [],
                                  Discrete(6))
    run = tmp_path / "run"
    train_world_model(tiny(controller_env="dream", vae_max_steps=1, mdrnn_max_steps=1),
                      nameless, run)
    results = evaluate_world_model(run, nameless)
    assert "mdrnn" in results and "controller" not in results
    assert results["left_out"]["stages"] == ["controller"]
    assert "names no env id" in results["left_out"]["reason"]
    with pytest.raises(WorldModelError, match="names no env id.*--data DATA.h5 --episode I"):
        dream(run, steps=2)
    assert dream(run, steps=2, source=nameless, start_episode=0).shape[0] == 3


@pytest.mark.parametrize("field, value", [("quick", "yes"), ("fresh_seeds", "no"),
                                          ("fresh_seeds", 0), ("quick", None)])
def test_the_flags_must_be_booleans(field, value):
    """WorldModelConfig took its flags by truthiness: fresh_seeds="no" meant fresh seeds."""
    with pytest.raises(WorldModelError, match=f"^{field} must be True or False, got "):
        wm.WorldModelConfig(**{field: value}).resolved()
    assert wm.WorldModelConfig(quick=np.bool_(True), fresh_seeds=False).resolved().quick
