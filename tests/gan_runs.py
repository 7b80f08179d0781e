"""Helpers for GAN training tests (tests/ is on sys.path): exact resumes, runs saved before an
option existed, configurations refused before anything is written, and the GAN benchmark
scripts loaded as modules."""

from __future__ import annotations

import importlib.util
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
import torch

from gan_envs.trainers.gan import GanConfig, load_checkpoint, train_gan


def load_benchmark(name: str) -> ModuleType:
    """``benchmarks/NAME.py`` as a module (the folder is not a package)."""
    path = Path(__file__).resolve().parents[1] / "benchmarks" / f"{name}.py"
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def assert_resume_is_exact(config: dict[str, Any], source: Any, tmp_path: Path,
                           total: int = 4, cut: int = 2) -> dict[str, Any]:
    """Train ``total`` iterations straight and in two calls split at ``cut``; assert that
    G, D and the EMA come out equal, weight for weight. Returns the straight checkpoint."""
    train_gan(GanConfig(iterations=total, **config), source, tmp_path / "straight")
    train_gan(GanConfig(iterations=cut, **config), source, tmp_path / "split")
    train_gan(GanConfig(iterations=total, **config), source, tmp_path / "split", resume=True)
    straight, split = load_checkpoint(tmp_path / "straight"), load_checkpoint(tmp_path / "split")
    for net in ("generator", "discriminator", "generator_ema"):
        for k, v in straight[net].items():
            assert torch.equal(v, split[net][k]), f"{net}.{k}"
    return straight


def resume_as_saved_before(field: str, config: dict[str, Any], source: Any,
                           run_dir: Path, old: Any = None) -> None:
    """Train one iteration, drop ``field`` from the saved config (as a run saved before the
    option existed) and resume it to two iterations. ``old``: the value such runs had, where
    it is not today's default (the run is trained with it)."""
    before = config if old is None else {**config, field: old}
    train_gan(GanConfig(iterations=1, **before), source, run_dir)
    ckpt = load_checkpoint(run_dir)
    del ckpt["config"][field]
    torch.save(ckpt, run_dir / "checkpoint.pt")
    assert train_gan(GanConfig(iterations=2, **config), source, run_dir,
                     resume=True).iterations == 2


def assert_cli_refuses(options: list[str], fragment: str, run_dir: Path, capsys: Any) -> None:
    """Assert that ``gan-envs train gan`` on live Pong frames (32x32, one iteration) with
    ``options`` exits 2 with one line on stderr holding ``fragment``, and writes no
    checkpoint."""
    from gan_envs.cli import main

    try:
        status = main(["train", "gan", "GanAtari/Pong-v0", "--source", "env", "--size", "32",
                       "--out", str(run_dir / "run"), "--iterations", "1", *options])
    except SystemExit as refused:  # argparse: its usage, then one error line
        status = refused.code
        err = capsys.readouterr().err.strip().splitlines()
        assert err[0].startswith("usage:") and ": error: " in err[-1], err
        err = err[-1:]
    else:
        err = capsys.readouterr().err.strip().splitlines()
    assert status == 2
    assert len(err) == 1 and fragment in err[0], err
    assert not (run_dir / "run" / "checkpoint.pt").exists()


def assert_refused(config: dict[str, Any], message: str, source: Any, run_dir: Path) -> None:
    """Assert that training with ``config`` raises a ValueError matching ``message`` before
    it writes a checkpoint."""
    with pytest.raises(ValueError, match=message):
        train_gan(GanConfig(iterations=1, **config), source, run_dir)
    assert not (run_dir / "checkpoint.pt").exists()
