"""The benchmark scripts' own logic (review 29): what they time, what they leave behind, and
bad inputs refused in one line instead of a traceback (or an exit status without its reason)."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import gymnasium as gym
import numpy as np
import pytest
from gan_runs import load_benchmark

from gan_envs.datasets import RolloutWriter

pytest.importorskip("torch")
ROOT = Path(__file__).resolve().parents[1]


def write_file(path: Path, env_ids: list[str], shape: tuple[int, ...] = (3, 16, 16)) -> Path:
    """A small rollout file: one 40-step episode of random frames per env id."""
    rng = np.random.default_rng(0)
    space = gym.spaces.Box(0, 255, shape, np.uint8)
    with RolloutWriter(path, space, gym.spaces.Discrete(2), env_ids=env_ids) as writer:
        for env_id in env_ids:
            writer.add_episode(rng.integers(0, 256, (41, *shape), dtype=np.uint8),
                               np.zeros(40, np.int64), np.zeros(40, np.float32), env_id=env_id)
    return path


def run_main(module, monkeypatch, *argv: str) -> None:
    monkeypatch.setattr(sys, "argv", [f"{module.__name__}.py", *map(str, argv)])
    module.main()


def test_bench_gan_step_does_not_time_the_final_grid_and_checkpoint(monkeypatch):
    """The last iteration writes a grid and a checkpoint (~0.5 s at width 128): the timed
    window ends one iteration before it (it ended on it: 7 against 12 it/s at 20 iterations)."""
    import gan_envs.trainers.data as data
    import gan_envs.trainers.gan as gan

    step = load_benchmark("bench_gan_step")

    def train_gan(config, source, run_dir, progress):
        for iteration in range(1, config.iterations + 1):
            time.sleep(0.3 if iteration == config.iterations else 0.002)  # the final write
            progress(iteration, {})

    monkeypatch.setattr(gan, "train_gan", train_gan)
    monkeypatch.setattr(data, "DatasetFrameSource", lambda path, in_memory: None)
    assert step.time_variant("unused.h5", {}, warmup=2, iters=5, threads=1) > 100


def test_bench_gan_step_says_why_a_measurement_failed(tmp_path, monkeypatch, capsys):
    step = load_benchmark("bench_gan_step")
    missing = tmp_path / "missing.h5"
    with pytest.raises(SystemExit) as exit_:  # was CalledProcessError: the reason was lost
        run_main(step, monkeypatch, "--data", missing, "--rounds", "1", "--warmup", "1",
                 "--iters", "1", "--width", "8")
    assert f"{missing} does not exist" in str(exit_.value.code)
    for bad, message in ((["--code", tmp_path], "no gan_envs package there"),
                         (["--warmup", "0"], "must be at least 1")):
        with pytest.raises(SystemExit) as exit_:  # before any measurement
            run_main(step, monkeypatch, "--data", missing, *bad)
        assert exit_.value.code == 2 and message in capsys.readouterr().err


def test_bench_gan_leaves_no_run_behind(tmp_path, monkeypatch):
    """Each of its runs wrote ~70 MB of checkpoint into a folder nothing removed (2 GB for the
    default 30 runs)."""
    from gan_envs.trainers.data import ArrayFrameSource

    bench = load_benchmark("bench_gan")
    monkeypatch.setattr(bench, "WIDTH", 8)  # the benchmark's 512 in a test's time
    frames = np.random.default_rng(0).integers(0, 256, (64, 3, 64, 64), dtype=np.uint8)
    source = bench.TimedSource(ArrayFrameSource(frames))
    rate, share = bench.time_ours(source, iters=1, warmup=1, channels_last=False,
                                  workdir=tmp_path)
    assert rate > 0 and 0 <= share < 1
    assert list(tmp_path.iterdir()) == []


def test_bench_datasets_leaves_no_files_without_out(tmp_path, monkeypatch):
    datasets = load_benchmark("bench_datasets")
    monkeypatch.setattr("tempfile.tempdir", str(tmp_path))
    monkeypatch.setattr(datasets, "MINARI_PYTHON", tmp_path / "no-minari")
    run_main(datasets, monkeypatch, "--frames", "300", "--repeats", "1",
             "--record-repeats", "1")
    assert list(tmp_path.iterdir()) == []  # was a bench-datasets-* folder of every file
    with pytest.raises(SystemExit, match="no episode finished in --frames 20 steps"):
        run_main(datasets, monkeypatch, "--frames", "20", "--repeats", "1",
                 "--record-repeats", "1")


@pytest.mark.parametrize("name, argv", [
    ("bench_collect", ["--steps", "4", "--num-envs", "8", "--rounds", "1"]),  # 0 raw steps
    ("bench_journal", ["--frames", "20", "--repeats", "1"]),  # no finished episode
    ("bench_wrappers", ["--rounds", "0"]),
    ("bench_cache_lock", ["--data", "unused.h5", "--batches", "0"]),
])
def test_parameters_that_measure_nothing_are_refused(name, argv, monkeypatch, capsys):
    with pytest.raises(SystemExit) as exit_:  # were ZeroDivisionError, ValueError, ...
        run_main(load_benchmark(name), monkeypatch, *argv)
    assert exit_.value.code == 2 and "error:" in capsys.readouterr().err


def test_fd_sensitivity_refuses_unusable_data_before_training(tmp_path, monkeypatch):
    """One game (or vectors): refused before the feature network's ~90 s of training, not
    after; a --run folder that does not exist yet is made (the network was trained, then
    could not be saved)."""
    sensitivity = load_benchmark("fd_sensitivity")
    seen = []

    def trained(run_dir, *args):
        seen.append(Path(run_dir).is_dir())
        raise RuntimeError("training")

    monkeypatch.setattr(sensitivity, "_load_or_train", trained)
    one_game = write_file(tmp_path / "one.h5", ["A-v0"])
    vectors = write_file(tmp_path / "vectors.h5", ["A-v0", "B-v0"], shape=(4,))
    for data in (one_game, vectors):
        with pytest.raises(SystemExit, match="needs image frames labelled with at least two"):
            run_main(sensitivity, monkeypatch, data, "--run", tmp_path / "net", "--n", "10")
    assert seen == []
    two_games = write_file(tmp_path / "two.h5", ["A-v0", "B-v0"])
    with pytest.raises(RuntimeError, match="training"):
        run_main(sensitivity, monkeypatch, two_games, "--run", tmp_path / "new" / "net",
                 "--n", "10")
    assert seen == [True]


def test_standing_stats_refuses_two_runs_of_one_name(tmp_path, capsys):
    """OUT/<run name>: the second run's copy replaced the first's."""
    standing = load_benchmark("standing_stats")
    runs = [tmp_path / "s0.snapshots" / "iter_018000", tmp_path / "s1.snapshots" / "iter_018000"]
    with pytest.raises(SystemExit) as exit_:
        standing.main([*map(str, runs), "--out", str(tmp_path / "out")])
    assert exit_.value.code == 2 and "two runs named iter_018000" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()


@pytest.mark.slow
def test_a_missing_data_file_is_one_line(tmp_path):
    """Each script that reads a data file: one line on stderr, not a traceback."""
    missing = tmp_path / "missing.h5"
    snapshot = tmp_path / "run.snapshots" / "iter_000002"  # evaluated: its data is read next
    snapshot.mkdir(parents=True)
    (snapshot / "r0.json").write_text('{"generated": {"fd": 1.0}}')
    commands = {
        "bench_cache_lock": ["--data", missing],
        "bench_gan": ["--data", missing, "--threads", "1", "--no-compile"],
        "checkpoint_selection": [missing, snapshot],
        "fd_sample_size": [tmp_path, missing],
        "fd_sensitivity": [missing, "--run", tmp_path],
        "gan_quality": [tmp_path / "run", "--data", missing],
        "standing_stats": [tmp_path, "--out", tmp_path / "out", "--data", missing],
    }
    for name, argv in commands.items():
        done = subprocess.run([sys.executable, str(ROOT / "benchmarks" / f"{name}.py"),
                               *map(str, argv)], capture_output=True, text=True, timeout=120)
        lines = [line for line in done.stderr.splitlines() if line.strip()]
        assert done.returncode == 1, (name, done.stderr)
        assert lines == [f"{name}.py: {missing} does not exist"], (name, done.stderr)
