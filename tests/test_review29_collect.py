"""Review 29 (collect): defects found while using ``gan-envs collect`` as a demanding user."""

from __future__ import annotations

from pathlib import Path

from gan_envs.collect import MAX_NUM_ENVS, CollectConfig, _stream_seed, collect
from gan_envs.datasets import RolloutReader


def test_every_sub_environment_seed_fits_ales_c_int():
    """--seed 2667687 gave the first id the stream seed 2**31 - 456, so --num-envs 460 failed
    at the first reset with "GanAtari vector env: seed (seed + i seeds the i-th env) must be
    in [0, 2147483188]", a seed the user never gave."""
    for seed in (0, 1, 2667687, 2**63 - 1):
        for index in range(3):
            assert 0 <= _stream_seed(seed, index) + MAX_NUM_ENVS - 1 <= 2**31 - 1


def test_a_step_remainder_is_shared_between_the_ids(tmp_path: Path):
    """--steps 5 --num-envs 4 of two ids: 3 and 2 steps (it was 4 and 1: the remainder of the
    split went to the first id's copies, so small targets left the later ids out)."""
    games = ["GanAtari/Breakout-v0", "GanAtari/Pong-v0"]
    out = tmp_path / "mix.h5"
    collect(CollectConfig(games, out, steps=5, num_envs=4, seed=0))
    with RolloutReader(out) as reader:
        steps = {e: 0 for e in games}
        for i in range(reader.num_episodes):
            info = reader.episode_info(i)
            steps[info["env_id"]] += info["length"]
    assert steps == {games[0]: 3, games[1]: 2}


def test_a_late_error_is_the_last_line_after_the_progress_bar(tmp_path, capsys):
    """The one-line error came before the bar was closed, so the bar's last redraw followed
    it and the error was not the last line on the terminal."""
    import collect_policies

    from gan_envs.cli import main

    collect_policies._CALLS["fails_late"] = 0
    out = tmp_path / "late.h5"
    code = main(["collect", "CartPole-v1", "--out", str(out), "--steps", "5000",
                 "--num-envs", "2", "--policy", "collect_policies:fails_late"])
    err = capsys.readouterr().err
    assert code != 0
    lines = [line for line in err.replace("\r", "\n").split("\n") if line.strip()]
    assert "the policy failed late" in lines[-1], lines[-3:]
