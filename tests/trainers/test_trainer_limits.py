"""Limits and failures of the trainers: sampling caps, and a checkpoint that does not fit on
the disk (one line, the previous checkpoint kept, and a log that ends where it does, so that
``--resume`` continues from it). Tiny sizes throughout."""

from __future__ import annotations

import errno
import json
import pickle
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from gan_envs.trainers import gan as gan_module
from gan_envs.trainers import world_model as wm
from gan_envs.trainers.data import ArrayFrameSource
from gan_envs.trainers.gan import GanConfig, load_checkpoint, train_gan
from gan_envs.trainers.sampling import MAX_SAMPLES, sample
from gan_envs.trainers.sequences import collect_random_episodes
from gan_envs.trainers.world_model import WorldModelConfig, train_world_model

WM_TINY = dict(max_episodes=0, z_size=8, vae_width=4, vae_batch_size=16, vae_epochs=50,
               vae_max_steps=4, hidden_size=16, n_gaussians=2, seq_len=8, mdrnn_batch_size=4,
               mdrnn_epochs=50, mdrnn_max_steps=4, workers=0, checkpoint_every=2, log_every=1)


@pytest.fixture(scope="module")
def pong64():
    """Three short episodes of random Pong play, 64x64 uint8."""
    return collect_random_episodes("GanAtari/Pong-v0", episodes=3, max_steps=24, seed=0)


def _full_disk_on_call(k: int, real):
    """``real`` (a writer), failing from its ``k``-th call on as a full disk does."""
    calls = {"n": 0}

    def writer(*args, **kwargs):
        calls["n"] += 1
        if calls["n"] >= k:
            raise OSError(errno.ENOSPC, f"{args[1] if len(args) > 1 else args[0]}: the disk is "
                          "full (No space left on device); free space and rerun with --resume")
        return real(*args, **kwargs)

    return writer


def _log_iterations(run_dir: Path, key: str = "iteration", stage: str | None = None) -> list:
    rows = [json.loads(line) for line in (run_dir / "log.jsonl").read_text().splitlines()]
    return [r[key] for r in rows if stage is None or r.get("stage") == stage]


# ---------------------------------------------------------------- sampling
def test_sample_refuses_more_than_one_grid_of_frames(tiny_run):
    """``sample(run, n=10**6)`` asked torch for gigabytes ('can't allocate memory')."""
    with pytest.raises(ValueError, match=rf"n={MAX_SAMPLES + 1} samples is more than one call "
                                         rf"makes \(at most {MAX_SAMPLES:,}\); draw them in "
                                         "several calls"):
        sample(tiny_run, n=MAX_SAMPLES + 1)
    assert sample(tiny_run, n=0).shape[0] == 0


# ---------------------------------------------------------------- a full disk
def test_gan_checkpoint_on_a_full_disk_keeps_the_last_one_and_resume_continues(
        tmp_path, two_games, tiny, monkeypatch):
    """The log claimed iterations whose checkpoint was never written."""
    config = GanConfig(recipe="tutorial", iterations=4, checkpoint_every=2, log_every=1,
                       sample_every=100, **tiny)
    whole = tmp_path / "whole"
    train_gan(config, two_games(), whole)

    run = tmp_path / "run"
    monkeypatch.setattr(gan_module, "write_bytes_atomically",
                        _full_disk_on_call(3, gan_module.write_bytes_atomically))
    # (call 1 writes config.json, call 2 the checkpoint at iteration 2)
    with pytest.raises(OSError, match="checkpoint.pt: saving the checkpoint failed, the disk is "
                                      "full"):
        train_gan(config, two_games(), run)
    assert load_checkpoint(run)["iteration"] == 2  # the previous checkpoint, whole
    assert _log_iterations(run) == [1, 2]  # not the iterations that were not saved
    assert not [p for p in run.iterdir() if ".tmp" in p.name]

    monkeypatch.undo()
    train_gan(config, two_games(), run, resume=True)
    assert _log_iterations(run) == [1, 2, 3, 4]
    ours, theirs = load_checkpoint(run), load_checkpoint(whole)
    for name, weights in theirs["generator"].items():
        assert torch.equal(ours["generator"][name], weights), name


def test_world_model_checkpoint_on_a_full_disk_keeps_the_log_in_step(tmp_path, pong64,
                                                                     monkeypatch):
    run = tmp_path / "run"
    monkeypatch.setattr(wm, "_atomic_save", _full_disk_on_call(2, wm._atomic_save))
    with pytest.raises(OSError, match="the disk is full"):
        train_world_model(WorldModelConfig(**WM_TINY), pong64, run, stage="vae")
    assert wm.load_stage(run, "vae")["step"] == 2
    assert _log_iterations(run, "step", "vae") == [1, 2]
    monkeypatch.undo()
    summary = train_world_model(WorldModelConfig(**WM_TINY), pong64, run, stage="vae",
                                resume=True)
    assert (summary.stages["vae"].start_step, summary.stages["vae"].steps) == (2, 4)
    assert _log_iterations(run, "step", "vae") == [1, 2, 3, 4]


def test_latent_cache_on_a_full_disk_is_one_line_and_leaves_no_temporary_file(tmp_path,
                                                                              pong64):
    """np.savez raised '[Errno 27] File too large', naming no file, and left
    latents.tmp.npz."""
    run = tmp_path / "run"
    train_world_model(WorldModelConfig(**WM_TINY), pong64, run, stage="vae")
    (tmp_path / "source.pkl").write_bytes(pickle.dumps(pong64))
    code = ("import resource, signal, pickle\n"
            "signal.signal(signal.SIGXFSZ, signal.SIG_IGN)\n"
            "resource.setrlimit(resource.RLIMIT_FSIZE, (1000, 1000))\n"
            "from gan_envs.trainers.world_model import encode_latents\n"
            f"source = pickle.loads(open({str(tmp_path / 'source.pkl')!r}, 'rb').read())\n"
            "try:\n"
            f"    encode_latents({str(run)!r}, source)\n"
            "except OSError as error:\n"
            "    print(error)\n")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=120)
    assert proc.stdout.strip() == (f"{run / 'latents.npz'}: the disk is full (File too large); "
                                   "free space and run again (nothing was written there)"), \
        proc.stderr
    assert sorted(p.name for p in run.iterdir()) == ["config.json", "log.jsonl", "vae.pt"]
    assert np.isfinite(wm.encode_latents(run, pong64)[0]["mu"]).all()  # with space: written


# ---------------------------------------------------------------- modes and templates
def test_more_modes_or_templates_than_frames_are_refused_before_the_run_folder(
        tmp_path, two_games, tiny):
    """The clusters a game's frames cannot fill were all copies of its median frame."""
    few = ArrayFrameSource(two_games().frames[:5])
    run = tmp_path / "run"
    with pytest.raises(ValueError, match=r"^modes=8 splits the frames into 8 clusters, and the "
                                         r"data has 5 frames: pass modes=5 or fewer "
                                         r"\(--modes 5\), or collect more frames$"):
        train_gan(GanConfig(iterations=1, modes=8, **tiny), few, run)
    labelled = two_games()
    labelled = ArrayFrameSource(labelled.frames[:43], labelled.env_index[:43],
                                labelled.env_ids)  # 40 of game 0, 3 of game 1
    with pytest.raises(ValueError, match=r"^template=4 splits each game's frames into 4 "
                                         r"clusters, and grey-or-purple has 3 frames"):
        train_gan(GanConfig(iterations=1, modes=0, template=4, **tiny), labelled, run)
    assert not run.exists()
    # the recipe's own counts train on any data
    assert train_gan(GanConfig(iterations=1, recipe="tutorial", **tiny),
                     ArrayFrameSource(two_games().frames[:1]), run).iterations == 1


def test_a_diverged_gan_stops_in_one_line_and_saves_nothing_nan(tmp_path, atari32, tiny):
    """Losses of NaN trained on (its grids were drawn black) and would have been checkpointed."""
    run = tmp_path / "run"
    with pytest.raises(ValueError, match=r"^training diverged at iteration 1 \(.*=nan.*\); no "
                                         r"checkpoint was written yet: train a new run with "
                                         r"lower learning rates \(--lr-d, --lr-g\)"):
        train_gan(GanConfig(iterations=5, lr_d=1e20, lr_g=1e20, recipe="tutorial",
                            checkpoint_every=1, sample_every=1, **tiny), atari32, run)
    assert not (run / "checkpoint.pt").exists() and not list(run.glob("samples/*.png"))
