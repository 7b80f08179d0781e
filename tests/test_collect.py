"""gan-envs collect: real ALE and CartPole environments, real HDF5 files, real processes."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from gan_envs.cli import main
from gan_envs.collect import CollectConfig, CollectError, collect
from gan_envs.datasets import RolloutReader, verify
from gan_envs.policies import PolicyError
from gan_envs.registration import UnknownEnvironmentError

TESTS = Path(__file__).parent
GAMES = ["GanAtari/Breakout-v0", "GanAtari/Pong-v0"]


def all_arrays(path: Path) -> list[dict[str, np.ndarray]]:
    with RolloutReader(path) as reader:
        return [reader.episode(i) | {"info": reader.episode_info(i)}
                for i in range(reader.num_episodes)]


def test_two_games_mixed_balanced_and_labelled(tmp_path: Path):
    out = tmp_path / "mix.h5"
    summary = collect(CollectConfig(GAMES, out, steps=400, num_envs=2, seed=3))
    assert summary.steps == 400 and summary.env_ids == GAMES
    with RolloutReader(out) as reader:
        assert reader.num_steps == 400
        assert reader.observation_space.shape == (3, 64, 64)
        assert reader.observation_space.dtype == np.uint8
        steps_per_env = {e: 0 for e in GAMES}
        for i in range(reader.num_episodes):
            info = reader.episode_info(i)
            steps_per_env[info["env_id"]] += info["length"]
            ep = reader.episode(i)
            assert ep["observations"].dtype == np.uint8
            assert len(ep["observations"]) == info["length"] + 1
            assert ep["terminations"][-1] or ep["truncations"][-1]  # every episode ended
            assert not (ep["terminations"][:-1] | ep["truncations"][:-1]).any()
        assert steps_per_env == {GAMES[0]: 200, GAMES[1]: 200}  # balanced by steps
        meta = reader.metadata
        assert meta["wrappers"] == {"size": [64, 64], "channel_first": True, "scale": None,
                                    "flicker": "flag"}
        assert meta["seed"] == 3 and meta["policy"] == "random"
        assert set(meta["user_metadata"]["action_spaces"]) == set(GAMES)
        assert reader.has_blank_frame
    assert verify(out).ok


def test_steps_target_truncates_running_episodes_truthfully(tmp_path: Path):
    out = tmp_path / "pong.h5"
    collect(CollectConfig(["GanAtari/Pong-v0"], out, steps=120, num_envs=2))
    episodes = all_arrays(out)
    assert len(episodes) == 2  # Pong lasts far longer than 60 steps
    for ep in episodes:
        assert ep["truncations"][-1] and not ep["terminations"].any()
        assert len(ep["actions"]) == 60


def test_cartpole_vector_observations_and_episode_target(tmp_path: Path):
    out = tmp_path / "cartpole.h5"
    summary = collect(CollectConfig(["CartPole-v1"], out, episodes=9, num_envs=3))
    assert summary.episodes == 9 and summary.blank_frames == 0
    with RolloutReader(out) as reader:
        assert reader.observation_space.shape == (4,)
        assert reader.observation_space.dtype == np.float32
        for i in range(reader.num_episodes):
            ep = reader.episode(i)
            assert ep["terminations"][-1] or ep["truncations"][-1]
            assert not reader.has_blank_frame


def test_same_command_and_seed_give_identical_arrays(tmp_path: Path):
    runs = []
    for name in ("a.h5", "b.h5"):
        collect(CollectConfig(GAMES, tmp_path / name, steps=300, num_envs=2, seed=11))
        runs.append(all_arrays(tmp_path / name))
    assert len(runs[0]) == len(runs[1])
    for a, b in zip(*runs, strict=True):
        assert a["info"] == b["info"]
        for key in ("observations", "actions", "rewards", "terminations", "truncations"):
            np.testing.assert_array_equal(a[key], b[key])
    other = tmp_path / "c.h5"
    collect(CollectConfig(GAMES, other, steps=300, num_envs=2, seed=12))
    assert any(not np.array_equal(x["actions"], y["actions"])
               for x, y in zip(runs[0], all_arrays(other), strict=False))


def test_policies_plug_in(tmp_path: Path, monkeypatch):
    monkeypatch.syspath_prepend(str(TESTS))
    out = tmp_path / "zero.h5"
    collect(CollectConfig(["GanAtari/Breakout-v0"], out, steps=40, num_envs=2,
                          policy="collect_policies:always_zero"))
    assert all((ep["actions"] == 0).all() for ep in all_arrays(out))
    out = tmp_path / "cycle.h5"
    collect(CollectConfig(["GanAtari/Breakout-v0"], out, steps=40, num_envs=2,
                          policy="collect_policies:CyclingPolicy"))
    assert set(np.concatenate([ep["actions"] for ep in all_arrays(out)])) == {0, 1, 2, 3}
    for bad, match in [("nope", "'random' or 'module:callable'"),
                       ("no_such_module:f", "cannot import"),
                       ("collect_policies:missing", "no callable")]:
        with pytest.raises(PolicyError, match=match):
            collect(CollectConfig(["CartPole-v1"], tmp_path / "x.h5", steps=5, policy=bad))
    # policies that fail when they act: one line each, and no empty file left behind
    for bad, match in [("out_of_range", r"returned \[77, 77\], which is not in the action "
                                        r"space MultiDiscrete\(\[4 4\]\)"),
                       ("raises", "raised RuntimeError: the policy's own bug$"),
                       ("needs_no_env", r"raised TypeError: .* takes 0 positional")]:
        out = tmp_path / "bad.h5"
        with pytest.raises(PolicyError, match=match):
            collect(CollectConfig(["GanAtari/Breakout-v0"], out, steps=20, num_envs=2,
                                  policy=f"collect_policies:{bad}"))
        assert not out.exists()


def test_a_policy_module_that_fails_to_import_or_a_file_path_is_one_line(tmp_path: Path,
                                                                         monkeypatch, capsys):
    """A module raising while imported (a missing weights file, a syntax error) or a spec
    naming a file (`./agent.py:act`) ended in a traceback, exit 1, after the envs were made."""
    (tmp_path / "needs_weights.py").write_text(
        "raise RuntimeError('weights file agent.pt not found')\n")
    (tmp_path / "typo.py").write_text("def act(obs, infos)\n    return obs\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setattr("gan_envs.collect.make_collection_envs",
                        lambda *a: pytest.fail("the envs were made before the policy was checked"))
    for spec, message in [
            ("needs_weights:act", "policy 'needs_weights:act': importing 'needs_weights' raised "
                                  "RuntimeError: weights file agent.pt not found; fix the module"),
            ("typo:act", "policy 'typo:act': importing 'typo' raised SyntaxError: expected ':'"),
            ("./agent.py:act", "policy './agent.py:act': give a module name, not a file: put the "
                               "file's folder on PYTHONPATH and pass agent:act (e.g. PYTHONPATH=. "
                               "--policy agent:act for a file in this folder)"),
            ("agnet:act", "policy 'agnet:act': cannot import 'agnet' (No module named 'agnet'); "
                          "is its folder on PYTHONPATH? (e.g. PYTHONPATH=. for this folder)")]:
        capsys.readouterr()
        assert main(["collect", "CartPole-v1", "--out", str(tmp_path / "x.h5"), "--steps", "5",
                     "--policy", spec]) == 2
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and err.startswith(f"gan-envs: {message}"), err
    assert not (tmp_path / "x.h5").exists()


def test_ctrl_c_before_the_first_episode_leaves_no_file(tmp_path: Path, monkeypatch, capsys):
    """Ctrl-C as the first actions are chosen: a new file is removed again and the message says
    nothing was written; a file being resumed is kept as it was."""
    monkeypatch.syspath_prepend(str(TESTS))
    out = tmp_path / "c.h5"
    args = ["collect", "GanAtari/Breakout-v0", "--out", str(out), "--num-envs", "1",
            "--policy", "collect_policies:interrupted_if_asked"]
    monkeypatch.setenv("INTERRUPT_POLICY", "1")
    assert main([*args, "--steps", "20"]) == 130
    assert capsys.readouterr().err == "gan-envs: interrupted before anything was written\n"
    assert not out.exists()
    monkeypatch.delenv("INTERRUPT_POLICY")
    assert main([*args, "--steps", "20"]) == 0
    before = out.read_bytes()
    monkeypatch.setenv("INTERRUPT_POLICY", "1")
    assert main([*args, "--steps", "40", "--resume"]) == 130
    err = capsys.readouterr().err
    assert "interrupted; 1 finished episode is safe in" in err, err[-400:]
    with RolloutReader(out) as reader:
        assert reader.num_steps == 20
    assert verify(out).ok and out.stat().st_size == len(before)
    # Ctrl-C before --overwrite replaced the file (while the policy is built): the old file
    # is untouched, and its episodes are not this run's (they were counted as "safe")
    assert main([*args[:-1], "collect_policies:interrupted_while_built", "--steps", "20",
                 "--overwrite"]) == 130
    assert capsys.readouterr().err == (f"gan-envs: interrupted before anything was written; "
                                       f"{out} is as it was\n")
    assert out.stat().st_size == len(before) and verify(out).ok
    # --overwrite replaced the file with an empty one: nothing of it is left to resume
    assert main([*args, "--steps", "20", "--overwrite"]) == 130
    assert capsys.readouterr().err == "gan-envs: interrupted before anything was written\n"
    assert not out.exists()


def test_refusals(tmp_path: Path):
    out = tmp_path / "d.h5"
    collect(CollectConfig(["CartPole-v1"], out, steps=20, num_envs=1))
    before = out.read_bytes()
    with pytest.raises(FileExistsError, match="--resume .* --overwrite"):
        collect(CollectConfig(["CartPole-v1"], out, steps=20))
    assert out.read_bytes() == before  # nothing is ever overwritten silently
    with pytest.raises(UnknownEnvironmentError, match="did you mean GanAtari/Breakout-v0"):
        CollectConfig(["GanAtari/Breakot-v0"], tmp_path / "e.h5", steps=10)
    with pytest.raises(CollectError, match="exactly one target"):
        CollectConfig(["CartPole-v1"], tmp_path / "e.h5", steps=10, episodes=2)
    with pytest.raises(CollectError, match="separate files"):
        collect(CollectConfig(["CartPole-v1", "GanAtari/Pong-v0"], tmp_path / "e.h5", steps=10))
    with pytest.raises(FileNotFoundError, match="does not exist"):
        collect(CollectConfig(["CartPole-v1"], tmp_path / "no" / "e.h5", steps=10))
    with pytest.raises(CollectError, match="holds"):
        collect(CollectConfig(["CartPole-v0"], out, steps=40, resume=True))
    with pytest.raises(IsADirectoryError, match="is a folder; give a file name"):
        collect(CollectConfig(["CartPole-v1"], tmp_path, steps=10))
    with pytest.raises(CollectError, match="at most 1024 pixels a side"):
        CollectConfig(["GanAtari/Pong-v0"], tmp_path / "e.h5", steps=10, size=100_000)
    # new episodes must be what the file's metadata says they are
    for changed, match in [({"policy": "numpy:zeros_like"}, "--policy random"),
                           ({"seed": 5}, "--seed 0"),
                           ({"compression": "lzf"}, "--compression ")]:
        with pytest.raises(CollectError, match=f"collected with {match}"):
            collect(CollectConfig(["CartPole-v1"], out, steps=40, resume=True, **changed))
    assert out.read_bytes() == before


def test_cli_errors_are_one_line(tmp_path: Path, capsys):
    out = tmp_path / "d.h5"
    assert main(["collect", "CartPole-v1", "--out", str(out), "--steps", "10"]) == 0
    capsys.readouterr()
    assert main(["collect", "CartPole-v1", "--out", str(out), "--steps", "10"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "--resume" in err and "--overwrite" in err
    assert main(["collect", "GanAtari/Breakot-v0", "--out", str(tmp_path / "x.h5"),
                 "--steps", "10"]) == 2
    assert "did you mean GanAtari/Breakout-v0" in capsys.readouterr().err
    (tmp_path / "file").write_text("a file, not a folder")
    assert main(["collect", "CartPole-v1", "--out", str(tmp_path / "file" / "x.h5"),
                 "--steps", "10"]) == 2
    assert capsys.readouterr().err.strip().endswith("file is a file, not a folder; choose "
                                                    "another --out")
    if os.geteuid() != 0:  # root may write anywhere
        (tmp_path / "ro").mkdir(mode=0o500)
        assert main(["collect", "CartPole-v1", "--out", str(tmp_path / "ro" / "x.h5"),
                     "--steps", "10"]) == 2
        assert "not writable" in capsys.readouterr().err
    assert main(["collect", "CartPole-v1", "--out", str(tmp_path / "f.h5"), "--steps", "10",
                 "--policy", "nope"]) == 2
    assert capsys.readouterr().err.startswith("gan-envs: policy 'nope'")


def test_info_and_verify_commands(tmp_path: Path, capsys):
    out = tmp_path / "d.h5"
    collect(CollectConfig(GAMES, out, steps=200, num_envs=2))
    assert main(["info", str(out)]) == 0
    text = capsys.readouterr().out
    assert "GanAtari/Breakout-v0" in text and "GanAtari/Pong-v0" in text and "200" in text
    assert main(["info", str(out), "--json"]) == 0
    import json

    info = json.loads(capsys.readouterr().out)
    assert info["steps"] == 200 and [e["steps"] for e in info["envs"]] == [100, 100]
    assert main(["verify", str(out)]) == 0
    assert "OK" in capsys.readouterr().out
    assert main(["preview", str(out), "--out", str(tmp_path / "grid.png")]) == 0
    assert (tmp_path / "grid.png").stat().st_size > 1000
    assert main(["info", str(tmp_path / "missing.h5")]) == 2
    assert capsys.readouterr().err.startswith("gan-envs: ")


def _collect_process(out: Path, steps: int, *extra: str) -> subprocess.Popen:
    script = Path(sys.executable).with_name("gan-envs")
    return subprocess.Popen(
        [str(script), "collect", *GAMES, "--out", str(out), "--steps", str(steps),
         "--num-envs", "2", *extra],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _wait_for_episodes(out: Path, n: int, process: subprocess.Popen, timeout: float = 60):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            pytest.fail(f"collection ended early: {process.communicate()}")
        if out.exists():
            try:
                with RolloutReader(out) as reader:
                    if reader.num_episodes >= n:
                        return
            except Exception:  # the file may be in creation
                pass
        time.sleep(0.05)
    pytest.fail("no episodes committed in time")


@pytest.mark.parametrize("how", [signal.SIGINT, signal.SIGKILL])
def test_resume_after_interrupt_or_kill(tmp_path: Path, how):
    out = tmp_path / "big.h5"
    # far more than it can collect before the signal (with 16,000 a quiet machine once
    # finished first); the resumed run then aims a little past what was kept
    first_target = 1_000_000
    process = _collect_process(out, first_target)
    _wait_for_episodes(out, 2, process)
    process.send_signal(how)
    stdout, stderr = process.communicate(timeout=60)
    if how == signal.SIGINT:
        assert process.returncode == 130
        assert "--resume" in stderr and "safe in" in stderr
    with RolloutReader(out) as reader:  # opens as is, no repair step
        kept = reader.num_steps
        assert 0 < kept < first_target
    target = kept + 4000
    resumed = _collect_process(out, target, "--resume")
    stdout, stderr = resumed.communicate(timeout=120)
    assert resumed.returncode == 0, stderr
    with RolloutReader(out) as reader:
        assert reader.num_steps == target
    assert verify(out).ok


def test_disk_full_while_collecting_keeps_committed_episodes(tmp_path: Path):
    """Episodes are written on a background thread; its failure still stops the CLI cleanly."""
    out = tmp_path / "full.h5"
    code = ("import resource, signal, sys; signal.signal(signal.SIGXFSZ, signal.SIG_IGN); "
            "resource.setrlimit(resource.RLIMIT_FSIZE, (300_000, 300_000)); "
            "from gan_envs.cli import main; "
            f"sys.exit(main(['collect', 'GanAtari/Breakout-v0', '--out', {str(out)!r}, "
            "'--steps', '20000', '--num-envs', '4']))")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=300)
    assert proc.returncode == 1, proc.stderr
    lines = [line for line in proc.stderr.splitlines() if line.startswith("gan-envs:")]
    assert len(lines) == 1 and "(File too large)" in lines[0], proc.stderr
    assert lines[0].endswith(f"continue with: gan-envs collect GanAtari/Breakout-v0 --out {out} "
                             "--steps 20000 --num-envs 4 --resume")
    report = verify(out)
    assert report.ok, str(report)
    with RolloutReader(out) as reader:
        assert 1 <= reader.num_episodes
        assert f"episodes 0-{reader.num_episodes - 1} are committed and intact" in lines[0]


def test_a_policy_that_refills_one_array_records_what_it_sent(tmp_path: Path, monkeypatch):
    monkeypatch.syspath_prepend(str(TESTS))
    out = tmp_path / "reuse.h5"
    collect(CollectConfig(["CartPole-v1"], out, steps=30, num_envs=1,
                          policy="collect_policies:ReusedArray"))
    import collect_policies

    first = all_arrays(out)[0]["actions"]  # the first episode: the first actions sent
    sent = np.concatenate(collect_policies.ReusedArray.made[-1].sent)[:len(first)]
    assert len(set(sent.tolist())) == 2
    np.testing.assert_array_equal(first, sent)  # was the last array sent, over and over


def test_bool_actions_are_a_policy_error_and_leave_no_file(tmp_path: Path, monkeypatch):
    monkeypatch.syspath_prepend(str(TESTS))
    out = tmp_path / "bool.h5"
    with pytest.raises(PolicyError, match=r"bool actions: cast them"):
        collect(CollectConfig(["CartPole-v1"], out, steps=20, num_envs=2,
                              policy="collect_policies:pole_heuristic"))
    assert not out.exists()


def test_run_collection_refuses_vector_envs_of_different_sizes():
    from gan_envs.collect import make_collection_envs, run_collection
    from gan_envs.policies import load_policy

    a, b = make_collection_envs("CartPole-v1", 2), make_collection_envs("CartPole-v1", 3)
    try:
        with pytest.raises(CollectError, match=r"one num_envs each, got \[2, 3\]"):  # hung
            run_collection([a, b], lambda i, ep: None, seed=0, steps=100, episodes=None,
                           policies=[load_policy("random", a, 0), load_policy("random", b, 1)])
        with pytest.raises(CollectError, match="exactly one target"):
            run_collection([a], lambda i, ep: None, seed=0, steps=None, episodes=None,
                           policies=[load_policy("random", a, 0)])
    finally:
        a.close()
        b.close()


@pytest.mark.parametrize(("changed", "message"), [
    ({"seed": None}, "collect's seed must be a whole number, got None"),
    ({"seed": -1}, r"collect's seed must be in \[0, 9223372036854775807\], got -1"),
    ({"seed": 2.5}, "collect's seed must be a whole number, got 2.5"),
    ({"num_envs": 2.0}, "num_envs must be a whole number, got 2.0"),
    ({"num_envs": 0}, r"num_envs must be in \[1, 1024\], got 0"),
    ({"steps": True}, "the collection target steps must be a whole number, got True"),
    ({"policy": 3}, "policy must be 'random', 'module:callable' or a callable, got 3"),
    # a long value is cut with an ellipsis (was cut mid-word with no mark)
    ({"policy": [0] * 50}, r"policy must be .*, got \[0, 0, [0, ]*…$"),
    ({"compression": "zstd"}, r"compression must be one of \('gzip', 'lzf', 'none'\)"),
    ({"env_ids": [3]}, "environment ids are strings such as 'GanAtari/Pong-v0', got 3"),
    ({"env_ids": 3}, "env_ids must be a list of environment ids, got 3"),
    ({"out": None}, "out must be a file path, got None"),
])
def test_bad_config_values_are_one_line(tmp_path: Path, changed, message):
    """Each was a numpy, gym or pathlib traceback, some only after the envs were made."""
    arguments = {"env_ids": ["CartPole-v1"], "out": tmp_path / "x.h5", "steps": 10} | changed
    with pytest.raises(CollectError, match=f"^{message}"):
        CollectConfig(**arguments)


def test_one_env_id_as_a_string_and_a_policy_object(tmp_path: Path, monkeypatch):
    """``env_ids="CartPole-v1"`` was split into letters; a callable policy was refused late;
    ``f(obs, infos=None)`` was called as a factory with the vector env."""
    monkeypatch.syspath_prepend(str(TESTS))
    import collect_policies

    config = CollectConfig("CartPole-v1", tmp_path / "a.h5", steps=20, num_envs=2,
                           policy=collect_policies.zero_with_optional_infos)
    assert config.env_ids == ["CartPole-v1"]
    collect(config)
    with RolloutReader(tmp_path / "a.h5") as reader:
        assert reader.metadata["policy"] == "collect_policies:zero_with_optional_infos"
    assert all((ep["actions"] == 0).all() for ep in all_arrays(tmp_path / "a.h5"))
    # the same by name, and a factory object
    collect(CollectConfig("CartPole-v1", tmp_path / "b.h5", steps=20, num_envs=2,
                          policy="collect_policies:zero_with_optional_infos"))
    collect(CollectConfig(["GanAtari/Breakout-v0"], tmp_path / "c.h5", steps=40, num_envs=2,
                          policy=collect_policies.CyclingPolicy))
    assert set(np.concatenate([ep["actions"] for ep in all_arrays(tmp_path / "c.h5")])) \
        == {0, 1, 2, 3}


def test_a_factory_taken_for_a_policy_says_how_to_declare_it(tmp_path: Path, monkeypatch):
    monkeypatch.syspath_prepend(str(TESTS))
    with pytest.raises(PolicyError, match=r"returned a callable, .*: if "
                       r"factory_of_any_arguments is a factory, make the vector env its only "
                       r"required parameter \(not \*args\)$"):
        collect(CollectConfig("CartPole-v1", tmp_path / "f.h5", steps=10, num_envs=2,
                              policy="collect_policies:factory_of_any_arguments"))
    assert not (tmp_path / "f.h5").exists()
    # an optional parameter before seed keeps a factory a factory (it worked before session 24)
    collect(CollectConfig("CartPole-v1", tmp_path / "g.h5", steps=10, num_envs=2,
                          policy="collect_policies:factory_with_other_second_parameter"))
    assert all((ep["actions"] == 0).all() for ep in all_arrays(tmp_path / "g.h5"))


def test_resume_with_other_num_envs_is_refused(tmp_path: Path):
    """The file's metadata records num_envs; a resume with another one would make it wrong."""
    out = tmp_path / "d.h5"
    collect(CollectConfig(["CartPole-v1"], out, steps=20, num_envs=2))
    before = out.read_bytes()
    with pytest.raises(CollectError, match="collected with --num-envs 2; resume with the same"):
        collect(CollectConfig(["CartPole-v1"], out, steps=40, num_envs=4, resume=True))
    assert out.read_bytes() == before
    collect(CollectConfig(["CartPole-v1"], out, steps=40, num_envs=2, resume=True))
    with RolloutReader(out) as reader:
        assert reader.num_steps == 40


def test_observations_outside_the_envs_own_space_name_the_env(tmp_path: Path):
    """An env whose frames leave its own Box: was the writer's message with no env id or fix."""
    import gymnasium as gym
    from frame_env import FrameEnv

    frames = [np.full(4, v, np.float32) for v in (0.1, 0.2, 0.3, 5.0)]
    gym.register("OutsideItsBox-v0", entry_point=lambda: FrameEnv(frames, length=3, high=1))
    try:
        out = tmp_path / "o.h5"
        with pytest.raises(CollectError, match=r"^OutsideItsBox-v0 gave an episode that cannot "
                           r"be stored \(.*observations\[3\] is outside Box\(0.0, 1.0, \(4,\), "
                           r"float32\)\); make its observations fit its observation_space, "
                           r"e.g. wrap the env in gymnasium.wrappers.ClipObservation$"):
            collect(CollectConfig(["OutsideItsBox-v0"], out, steps=20, num_envs=2))
        assert not out.exists()  # nothing was committed: no file left
    finally:
        del gym.registry["OutsideItsBox-v0"]


def test_rewards_the_file_cannot_hold_name_the_reward_fix(tmp_path: Path):
    """A NaN reward was blamed on the observations ("wrap it in ClipObservation")."""
    import gymnasium as gym

    def nan_rewards() -> gym.Env:
        return gym.wrappers.TransformReward(gym.make("CartPole-v1"), lambda r: float("nan"))

    gym.register("NanRewards-v0", entry_point=nan_rewards, disable_env_checker=True)
    try:
        out = tmp_path / "r.h5"
        with pytest.raises(CollectError, match=r"^NanRewards-v0 gave an episode that cannot be "
                           r"stored \(.*rewards must be .*finite.*\); make its rewards finite "
                           r"and within float32, e.g. wrap the env in "
                           r"gymnasium.wrappers.TransformReward$") as caught:
            collect(CollectConfig(["NanRewards-v0"], out, steps=20, num_envs=2))
        assert "ClipObservation" not in str(caught.value)
        assert not out.exists()
    finally:
        del gym.registry["NanRewards-v0"]


def test_writer_value_errors_name_the_array():
    """DatasetValueError.array says whose value it was; it survives pickling (worker processes)."""
    import pickle

    import gymnasium as gym

    from gan_envs.datasets import DatasetError, DatasetValueError, RolloutWriter

    space = gym.spaces.Box(0.0, 1.0, (2,), np.float32)
    cases = {"observations": dict(observations=np.full((3, 2), 2.0, np.float32)),
             "actions": dict(actions=[0, 5]),
             "rewards": dict(rewards=[0.0, np.inf]),
             "terminations": dict(terminations=[1, 0])}
    import tempfile
    with tempfile.TemporaryDirectory() as folder:
        with RolloutWriter(Path(folder) / "v.h5", space, gym.spaces.Discrete(2)) as writer:
            for array, bad in cases.items():
                arguments = dict(observations=np.zeros((3, 2), np.float32), actions=[0, 1],
                                 rewards=[0.0, 1.0]) | bad
                with pytest.raises(DatasetValueError) as caught:
                    writer.add_episode(**arguments)
                assert caught.value.array == array
                assert isinstance(caught.value, DatasetError)
                copy = pickle.loads(pickle.dumps(caught.value))
                assert (copy.array, str(copy)) == (array, str(caught.value))
            assert writer.num_episodes == 0


def test_a_size_for_envs_that_are_not_gan_atari_is_refused(tmp_path: Path):
    """--size with CartPole was ignored (exit 0): only GanAtari ids are resized."""
    with pytest.raises(CollectError, match=r"^--size resizes GanAtari frames, and none of "
                       r"CartPole-v1 is a GanAtari id .*; drop --size, or collect "
                       r"GanAtari/<Game>-v0$"):
        CollectConfig(["CartPole-v1"], tmp_path / "c.h5", steps=10, size=32)
    assert CollectConfig(["CartPole-v1"], tmp_path / "c.h5", steps=10).size == 64
    assert CollectConfig(["GanAtari/Pong-v0"], tmp_path / "p.h5", steps=10, size=32).size == 32


def test_resume_at_another_frame_size_names_the_size(tmp_path: Path, capsys):
    """Resuming at another --size said 'resume with observation_space Box(0, 255, (3, 48, 48),
    uint8), but the file holds ...' (no option named); a plain --resume of a file collected at
    --size 32 asked for 64."""
    out = tmp_path / "s.h5"
    args = ["collect", "GanAtari/Pong-v0", "--out", str(out), "--num-envs", "1"]
    assert main([*args, "--steps", "20", "--size", "32"]) == 0
    assert capsys.readouterr().out.endswith(": 1 episode, 20 steps, 21 frames from "
                                            "GanAtari/Pong-v0\n")
    before = out.read_bytes()
    for size in (["--size", "48"], []):
        assert main([*args, "--steps", "40", "--resume", *size]) == 2
        assert capsys.readouterr().err == (f"gan-envs: {out} was collected with --size 32; "
                                           "resume with the same settings, or write a new "
                                           "file\n")
    assert out.read_bytes() == before
    assert main([*args, "--steps", "40", "--resume", "--size", "32"]) == 0


def test_a_recorded_size_that_is_not_a_pair_does_not_crash_the_resume_check(tmp_path: Path):
    """A file written through RolloutWriter may record any wrappers: an int size raised
    TypeError inside the check."""
    from gan_envs.collect import _check_resumed_settings

    class Recorded:
        metadata = {"wrappers": {"size": 64}, "user_metadata": {}}
        compression = "gzip"

    config = CollectConfig(["GanAtari/Pong-v0"], tmp_path / "x.h5", steps=10, size=32)
    Recorded.metadata["wrappers"]["size"] = [64, 64, 3]
    _check_resumed_settings(config, Recorded())  # not a size: nothing to compare
    Recorded.metadata["wrappers"]["size"] = [32, 48]
    with pytest.raises(CollectError, match=r"size=\(32, 48\) .*--size makes square frames"):
        _check_resumed_settings(config, Recorded())


def test_resume_with_its_target_met_says_there_is_nothing_to_collect(tmp_path: Path, capsys):
    """It printed "wrote data.h5: ..." for a file it had not touched, target not mentioned."""
    out = tmp_path / "data.h5"
    assert main(["collect", "CartPole-v1", "--out", str(out), "--steps", "60"]) == 0
    before = out.stat().st_mtime_ns
    with RolloutReader(out) as reader:
        episodes, steps = reader.num_episodes, reader.num_steps
    capsys.readouterr()
    assert main(["collect", "CartPole-v1", "--out", str(out), "--steps", "50", "--resume"]) == 0
    assert capsys.readouterr().out.strip() == (
        f"{out} already holds {episodes} episode{'s' * (episodes != 1)} and {steps} steps "
        "(--steps 50 is met): nothing to collect; raise --steps to add more")
    assert out.stat().st_mtime_ns == before
