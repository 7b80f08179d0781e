"""Paths given to the command line: outputs checked before the work, written whole, and files
and folders that are not what an argument takes named as such (a helper sweep, session 24)."""

from __future__ import annotations

import os
import stat
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest

from gan_envs.cli import main
from gan_envs.collect import CollectConfig, collect
from gan_envs.images import save_png, write_video

TINY = ["--width", "16", "--batch-size", "4", "--sample-every", "2", "--checkpoint-every", "2"]


@pytest.fixture(scope="module")
def pong(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("data") / "pong.h5"
    collect(CollectConfig(["GanAtari/Pong-v0"], out, steps=120, num_envs=2, size=32))
    return out


@pytest.fixture(scope="module")
def run(pong: Path, tmp_path_factory) -> Path:
    run_dir = tmp_path_factory.mktemp("runs") / "run"
    assert main(["train", "gan", str(pong), "--out", str(run_dir), "--iterations", "2",
                 *TINY]) == 0
    return run_dir


def one_line_error(argv: list[str], capsys) -> str:
    capsys.readouterr()
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("gan-envs: "), err
    return err.strip()


def test_evaluate_json_never_replaces_the_dataset(pong: Path, run: Path, tmp_path: Path,
                                                  capsys):
    """``--json DATA.h5`` wrote the report over the dataset being evaluated, exit 0."""
    before = pong.read_bytes()
    err = one_line_error(["evaluate", str(run), str(pong), "--n", "16", "--classifier-steps",
                          "2", "--json", str(pong)], capsys)
    assert err.endswith("reports are written as .json files; give the file a .json name")
    assert pong.read_bytes() == before
    folder = tmp_path / "report.json"
    folder.mkdir()
    err = one_line_error(["evaluate", str(run), str(pong), "--n", "16", "--json", str(folder)],
                         capsys)
    assert "is a folder; give a file name such as" in err


def test_collect_writes_only_hdf5_names_and_overwrites_only_hdf5_files(tmp_path: Path,
                                                                         capsys):
    """``--out x.png --overwrite`` replaced a PNG (or a checkpoint) with a dataset, exit 0."""
    picture = tmp_path / "victim.png"
    save_png(picture, np.zeros((4, 4, 3), np.uint8))
    before = picture.read_bytes()
    err = one_line_error(["collect", "CartPole-v1", "--out", str(picture), "--steps", "10",
                          "--overwrite"], capsys)
    assert err.endswith("datasets are HDF5 files; give --out a .h5 (or .hdf5) name")
    disguised = tmp_path / "notes.h5"
    disguised.write_text("my notes, not a dataset")
    err = one_line_error(["collect", "CartPole-v1", "--out", str(disguised), "--steps", "10",
                          "--overwrite"], capsys)
    assert err.endswith("is not an HDF5 file, so --overwrite will not replace it; delete it "
                        "yourself or choose another --out")
    assert picture.read_bytes() == before and disguised.read_text().startswith("my notes")


def test_a_file_where_a_run_folder_goes_is_named(pong: Path, run: Path, tmp_path: Path,
                                                  capsys):
    """These said "run directory pong.h5 does not exist (train one with ... --out pong.h5)"
    or "[Errno 17] File exists"."""
    for argv in (["sample", str(pong), "--out", str(tmp_path / "s.png")],
                 ["evaluate", str(pong), str(pong), "--n", "16"],
                 ["dream", str(pong), "--out", str(tmp_path / "d.mp4")]):
        err = one_line_error(argv, capsys)
        assert err == (f"gan-envs: {pong} is a file; RUN_DIR is the folder a `gan-envs train` "
                       "run wrote (its --out)")
    err = one_line_error(["sample", str(run / "checkpoint.pt"), "--out",
                          str(tmp_path / "s.png")], capsys)
    assert err.endswith(f"(give {run} if this is its checkpoint)")
    before = pong.read_bytes()
    for trainer in (["train", "gan", str(pong)], ["train", "world-model", str(pong)]):
        err = one_line_error([*trainer, "--out", str(pong)], capsys)
        assert err.endswith(f"{pong} is a file; --out is the run's folder: give a new name "
                            "such as runs/pong")
    assert pong.read_bytes() == before


def test_folders_and_datasets_where_env_ids_go_are_named(pong: Path, run: Path,
                                                          tmp_path: Path, capsys):
    err = one_line_error(["preview", str(run), "--out", str(tmp_path / "p.png")], capsys)
    assert err.endswith("is a folder; preview takes environment ids or one dataset file "
                        "(DATA.h5)")  # was "unknown environment 'run'"
    err = one_line_error(["train", "gan", str(pong), "--source", "env", "--out",
                          str(tmp_path / "r")], capsys)
    assert err.endswith("is a dataset file, not an environment id; drop --source env to train "
                        "on it")
    assert not (tmp_path / "r").exists()


def test_preview_options_of_the_other_kind_and_too_large_are_named(pong: Path, tmp_path: Path,
                                                                   capsys):
    """--snapshots/--steps were ignored for a dataset (exit 0), --per-env for env ids; the
    library's caps were worded as its parameters; --steps 10**11 played on until killed."""
    out = tmp_path / "p.png"
    for option in ("--snapshots", "--steps"):
        err = one_line_error(["preview", str(pong), option, "3", "--out", str(out)], capsys)
        assert err == (f"gan-envs: {option} is for previews of environment ids; a dataset "
                       "preview takes --per-env")
    err = one_line_error(["preview", "GanAtari/Pong-v0", "--per-env", "3", "--out", str(out)],
                         capsys)
    assert err == ("gan-envs: --per-env is for previews of a dataset (DATA.h5); an environment "
                   "preview takes --snapshots and --steps")
    for source, option, value, high in [(str(pong), "--per-env", "2000", "1,024"),
                                        ("GanAtari/Pong-v0", "--snapshots", "65", "64"),
                                        ("GanAtari/Pong-v0", "--steps", "100000000000",
                                         "10,000")]:
        err = one_line_error(["preview", source, option, value, "--out", str(out)], capsys)
        assert err == f"gan-envs: {option} must be at most {high}, got {int(value):,}"
    assert not out.exists()
    assert main(["preview", str(pong), "--per-env", "2", "--out", str(out)]) == 0
    assert out.is_file()


def test_sample_options_the_output_does_not_read_are_refused(run: Path, tmp_path: Path,
                                                             capsys):
    """--steps for a grid, --n for a sweep, --seed for an interpolation were ignored (exit 0),
    and --sweep beside --interpolate silently lost the interpolation."""
    out = tmp_path / "s.png"
    cases = [
        ([], "--steps", ["--steps", "4"],
         "--steps does not apply to a grid (it reads --n, --seed, --latent, --set); drop "
         "--steps, or make a --sweep strip or an --interpolate strip"),
        ([], "--from", ["--from", "-1"],
         "--from does not apply to a grid (it reads --n, --seed, --latent, --set); drop --from, "
         "or make a --sweep strip"),
        (["--sweep", "0"], "--n", ["--n", "10"],
         "--n does not apply to a --sweep strip (it reads --seed, --from, --to, --steps); drop "
         "--n, or make a grid"),
        (["--interpolate", "1", "2"], "--seed", ["--seed", "3"],
         "--seed does not apply to an --interpolate strip (it reads --steps); drop --seed, or "
         "make a grid or a --sweep strip"),
        (["--interpolate", "1", "2"], "--latent", ["--latent", "zeros"],
         "--latent does not apply to an --interpolate strip (it reads --steps); drop --latent, "
         "or make a grid"),
        (["--sweep", "0"], "--interpolate", ["--interpolate", "1", "2"],
         "--sweep and --interpolate each make a strip; give one of them"),
    ]
    for kind, _, extra, message in cases:
        err = one_line_error(["sample", str(run), "--out", str(out), *kind, *extra], capsys)
        assert err == f"gan-envs: {message}"
    assert not out.exists()
    assert main(["sample", str(run), "--out", str(out), "--sweep", "0", "--seed", "5", "--from",
                 "1", "--to", "2", "--steps", "4"]) == 0
    assert main(["sample", str(run), "--out", str(out), "--latent", "zeros", "--seed", "3",
                 "--set", "0=1", "--n", "8"]) == 0


def test_dataset_options_with_live_environments_are_refused(tmp_path: Path, capsys):
    """--in-memory and --env were ignored with --source env (exit 0)."""
    base = ["train", "gan", "--source", "env", "GanAtari/Pong-v0", "--out", str(tmp_path / "r"),
            "--iterations", "1"]
    err = one_line_error([*base, "--in-memory"], capsys)
    assert err == ("gan-envs: --in-memory loads a dataset into RAM, and live environments "
                   "(--source env) have none; drop --in-memory")
    err = one_line_error([*base, "--env", "GanAtari/Pong-v0"], capsys)
    assert err == ("gan-envs: --env picks games of a dataset; with --source env the environment "
                   "ids themselves are the games: drop --env")
    assert not (tmp_path / "r").exists()


def test_evaluate_sizes_are_named_as_options(pong: Path, run: Path, capsys):
    """--n 5 said "evaluate's n (frames per set)"; --draws 1000 would have run for hours."""
    for extra, message in [(["--n", "5"], "--n (frames per set) must be in [10, 16,384], got 5"),
                           (["--draws", "101"], "--draws must be at most 100 (a draw takes "
                                                "~12 s at --n 1000), got 101")]:
        err = one_line_error(["evaluate", str(run), str(pong), *extra], capsys)
        assert err == f"gan-envs: {message}"


def test_verify_of_a_folder_is_a_usage_error(run: Path, capsys):
    err = one_line_error(["verify", str(run)], capsys)
    assert err.endswith("is a folder; pass the path of a rollout .h5 file")


def test_size_without_live_environments_is_refused(pong: Path, tmp_path: Path, capsys):
    """``--size 64`` on a 32x32 dataset trained at 32 without a word."""
    err = one_line_error(["train", "gan", str(pong), "--out", str(tmp_path / "r"), "--size",
                          "64", "--iterations", "1", *TINY], capsys)
    assert "--size 64 sets the frame size of live environments (--source env)" in err
    assert not (tmp_path / "r").exists()


def test_option_types_say_what_they_take(capsys):
    """argparse printed the checker's name: "invalid _non_negative_int value: '1.5'"."""
    with pytest.raises(SystemExit):
        main(["preview", "GanAtari/Pong-v0", "--steps", "1.5"])
    assert "argument --steps: must be a whole number >= 0, got '1.5'" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["collect", "CartPole-v1", "--out", "x.h5", "--steps", "10", "--seed", "x"])
    assert "a seed is a whole number in [0, 2**63), got 'x'" in capsys.readouterr().err
    with pytest.raises(SystemExit):  # was "invalid int value: '1.5'"
        main(["train", "gan", "d.h5", "--out", "r", "--template", "1.5"])
    assert "argument --template: must be a whole number, got '1.5'" in capsys.readouterr().err
    with pytest.raises(SystemExit):  # was "invalid float value: 'abc'"
        main(["train", "gan", "d.h5", "--out", "r", "--lr-d", "abc"])
    assert "argument --lr-d: must be a finite number, got 'abc'" in capsys.readouterr().err
    with pytest.raises(SystemExit):  # nan reached the config
        main(["dream", "run", "--temperature", "nan"])
    assert "argument --temperature: must be a finite number, got nan" in capsys.readouterr().err
    with pytest.raises(SystemExit):  # was "invalid float value: '1,2'"
        main(["train", "gan", "d.h5", "--out", "r", "--env-shares", "1,2"])
    assert ("argument --env-shares: takes one number per env, separated by spaces (e.g. "
            "--env-shares 1 2 1), got '1,2'") in capsys.readouterr().err


def _with_file_size_limit(code: str, limit: int) -> subprocess.CompletedProcess:
    """Run ``code`` where no file may grow past ``limit`` bytes (a full disk, as the writes
    see it)."""
    prelude = ("import resource, signal; signal.signal(signal.SIGXFSZ, signal.SIG_IGN); "
               f"resource.setrlimit(resource.RLIMIT_FSIZE, ({limit}, {limit})); ")
    return subprocess.run([sys.executable, "-c", prelude + code], capture_output=True,
                          text=True, timeout=120)


def test_a_png_that_does_not_fit_keeps_the_old_file(tmp_path: Path):
    """OpenCV wrote a cut PNG, printed libpng's error and said 'could not write this PNG
    (check the folder and the name)'."""
    out = tmp_path / "grid.png"
    save_png(out, np.zeros((8, 8, 3), np.uint8))
    before = out.read_bytes()
    code = ("import numpy as np; from gan_envs.images import save_png\n"
            "try:\n"
            f"    save_png({str(out)!r}, np.random.default_rng(0).integers(0, 256, (300, 300, 3),"
            " dtype=np.uint8))\n"
            "except OSError as e:\n"
            "    print(e)")
    proc = _with_file_size_limit(code, 20_000)
    assert proc.stdout.strip() == (f"{out}: the disk is full (File too large); free space and "
                                   "run again (nothing was written there)"), proc.stderr
    assert proc.stderr == ""
    assert out.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["grid.png"]


def test_a_video_that_does_not_fit_is_an_error_not_a_cut_file(tmp_path: Path):
    """`dream` on a full disk said 'wrote d.mp4' and left a file no player opens."""
    out = tmp_path / "d.mp4"
    code = ("import numpy as np; from gan_envs.images import write_video\n"
            "frames = list(np.random.default_rng(0).integers(0, 256, (60, 64, 64, 3), "
            "dtype=np.uint8))\n"
            "try:\n"
            f"    write_video(frames, {str(out)!r})\n"
            "except OSError as e:\n"
            "    print(e)")
    proc = _with_file_size_limit(code, 50_000)
    assert proc.stdout.startswith(f"{out}: the video was cut short ("), proc.stderr
    assert proc.stdout.strip().endswith("(nothing was written there)")
    assert list(tmp_path.iterdir()) == []
    write_video([np.zeros((8, 8, 3), np.uint8)] * 3, out)  # and with room it plays
    capture = cv2.VideoCapture(str(out))
    assert capture.isOpened() and int(capture.get(cv2.CAP_PROP_FRAME_COUNT)) == 3
    capture.release()


def test_the_emulator_banner_stays_off_stderr(tmp_path: Path):
    """Every command that started an Atari env printed ALE's and Stella's names on stderr."""
    code = ("import sys; from gan_envs.cli import main; sys.exit(main(['preview', "
            f"'GanAtari/Pong-v0', '--out', {str(tmp_path / 'p.png')!r}, '--snapshots', '1', "
            "'--steps', '0']))")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert proc.stderr == ""


def test_damaged_checkpoints_say_what_they_are(pong: Path, run: Path, tmp_path: Path, capsys):
    """An HDF5 file as checkpoint.pt gave torch's long 'Weights only load failed ...' text; a
    cut one '(OSError: [Errno 22] Invalid argument)'."""
    import shutil

    copy = tmp_path / "copy"
    shutil.copytree(run, copy)
    checkpoint = copy / "checkpoint.pt"
    whole = checkpoint.read_bytes()
    argv = ["sample", str(copy), "--out", str(tmp_path / "s.png")]
    shutil.copyfile(pong, checkpoint)
    assert one_line_error(argv, capsys).endswith(
        "checkpoint.pt is an HDF5 file (a dataset?), not a torch checkpoint; pass the run "
        "folder a `gan-envs train` run wrote")
    checkpoint.write_bytes(whole[: len(whole) // 2])
    err = one_line_error(argv, capsys)
    assert f"checkpoint.pt is cut short or damaged ({len(whole) // 2:,} bytes; torch: " in err
    assert err.endswith("); copy it again, or train the run again")
    checkpoint.write_bytes(b"not a checkpoint at all")
    assert "is not a file torch.save wrote, not a torch checkpoint" in one_line_error(argv,
                                                                                      capsys)


def test_a_checkpoint_that_does_not_fit_is_one_line_and_keeps_nothing_cut(pong: Path,
                                                                          tmp_path: Path):
    """torch's writer raised two chained tracebacks ('unexpected pos ...') and left
    checkpoint.pt.tmp behind."""
    run_dir = tmp_path / "run"
    code = ("import sys; from gan_envs.cli import main; sys.exit(main(['train', 'gan', "
            f"{str(pong)!r}, '--out', {str(run_dir)!r}, '--iterations', '2', '--width', '32', "
            "'--batch-size', '4', '--threads', '1']))")
    proc = _with_file_size_limit(code, 1_000_000)  # the grid PNG fits, the checkpoint not
    assert proc.returncode == 2, proc.stderr
    assert proc.stderr.splitlines()[-1] == (
        f"gan-envs: {run_dir / 'checkpoint.pt'}: saving the checkpoint failed, the disk is full "
        "(File too large); free space and rerun with --resume (the previous checkpoint is "
        "kept)")
    assert "Traceback" not in proc.stderr
    assert sorted(p.name for p in run_dir.iterdir()) == ["config.json", "log.jsonl", "samples"]


def test_temporary_names_fit_any_legal_name_and_never_stay(tmp_path: Path):
    """The first temporary names added ~13 characters (a 251-character name failed), were one
    per process (two threads writing one file collided) and stayed behind on Ctrl-C."""
    import threading

    from gan_envs import outputs

    long_name = tmp_path / ("a" * 247 + ".png")
    save_png(long_name, np.zeros((4, 4, 3), np.uint8))
    assert long_name.is_file()
    failures: list[BaseException] = []

    def write_many() -> None:
        for i in range(50):
            try:
                outputs.write_bytes_atomically(tmp_path / "same.json", b"%d" % i)
            except OSError as error:
                failures.append(error)

    threads = [threading.Thread(target=write_many) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert failures == []

    def interrupted(*args):  # Ctrl-C as the finished file is renamed into place
        raise KeyboardInterrupt

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(outputs.os, "replace", interrupted)
        with pytest.raises(KeyboardInterrupt):
            outputs.write_bytes_atomically(tmp_path / "k.json", b"{}")
    assert sorted(p.name for p in tmp_path.iterdir()) == [long_name.name, "same.json"]


@pytest.mark.parametrize("umask", [0o022, 0o077])
def test_outputs_get_the_users_umask_not_owner_only(tmp_path: Path, umask: int):
    """Grids, videos, JSON and checkpoints were written -rw------- (tempfile.mkstemp's mode
    survives the rename) whatever the umask."""
    from gan_envs.outputs import write_bytes_atomically

    previous = os.umask(umask)
    try:
        written = [write_bytes_atomically(tmp_path / "a.json", b"{}"),
                   save_png(tmp_path / "g.png", np.zeros((4, 4, 3), np.uint8)),
                   write_video([np.zeros((8, 8, 3), np.uint8)] * 2, tmp_path / "v.mp4")]
    finally:
        os.umask(previous)
    for path in written:
        assert stat.S_IMODE(Path(path).stat().st_mode) == 0o666 & ~umask, path
