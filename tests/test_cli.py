"""The gan-envs command line, called in-process through main() and once as a console script."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import cv2
import pytest

from gan_envs.cli import main


def test_list_filters_ids(capsys):
    assert main(["list", "break"]) == 0
    assert capsys.readouterr().out.split() == ["GanAtari/Breakout-v0"]
    assert main(["list"]) == 0
    assert len(capsys.readouterr().out.split()) >= 100


def test_list_without_match_is_one_line_error(capsys):
    assert main(["list", "zzzz"]) == 2
    err = capsys.readouterr().err
    assert err.strip().startswith("gan-envs: no GanAtari environment matches 'zzzz'; "
                                  "`gan-envs list` prints all ")
    assert main(["list", "brekout"]) == 2  # a misspelt game: the close ones
    assert capsys.readouterr().err.endswith("; did you mean GanAtari/Breakout-v0, "
                                            "GanAtari/Qbert-v0?\n")


def test_preview_writes_a_png(tmp_path: Path, capsys):
    out = tmp_path / "nested" / "preview.png"
    code = main(["preview", "GanAtari/Breakout-v0", "GanAtari/Pong-v0", "--out", str(out),
                 "--snapshots", "2", "--steps", "3"])
    assert code == 0
    image = cv2.imread(str(out))
    assert image is not None and image.shape[0] > 2 * 210 and image.shape[1] > 2 * 210
    assert str(out) in capsys.readouterr().out


def test_preview_of_an_env_without_frames_is_one_line(tmp_path: Path, capsys):
    assert main(["preview", "CartPole-v1", "--out", str(tmp_path / "p.png")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("gan-envs: CartPole-v1 observes Box(") and "not frames" in err
    assert err.count("\n") == 1


def test_preview_of_a_dataset_and_an_env_together_is_one_line(tmp_path: Path, capsys):
    assert main(["preview", "data.h5", "GanAtari/Pong-v0", "--out", str(tmp_path / "p.png")]) == 2
    assert "one dataset or several environment ids" in capsys.readouterr().err
    assert main(["preview", "GanAtari/Pong-v0", "--out", str(tmp_path / "p.jpg")]) == 2
    assert "give the file a .png name" in capsys.readouterr().err


def test_preview_unknown_env_is_one_line_with_suggestion(tmp_path: Path, capsys):
    assert main(["preview", "GanAtari/Breakot-v0", "--out", str(tmp_path / "p.png")]) == 2
    err = capsys.readouterr().err.strip()
    assert "\n" not in err
    assert err.startswith("gan-envs: unknown environment 'GanAtari/Breakot-v0'; did you mean "
                          "GanAtari/Breakout-v0")
    assert not (tmp_path / "p.png").exists()


def test_preview_unwritable_path_is_one_line(tmp_path: Path, capsys):
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    assert main(["preview", "GanAtari/Pong-v0", "--out", str(blocker / "p.png"),
                 "--snapshots", "1", "--steps", "0"]) == 2
    assert capsys.readouterr().err.startswith("gan-envs: ")


def test_bad_argument_values_are_refused():
    with pytest.raises(SystemExit) as exit_info:
        main(["preview", "GanAtari/Pong-v0", "--snapshots", "0"])
    assert exit_info.value.code == 2


def test_console_script_is_installed():
    script = Path(sys.executable).with_name("gan-envs")
    out = subprocess.run([str(script), "--version"], capture_output=True, text=True, check=True)
    assert out.stdout.startswith("gan-envs ")


def test_a_closed_output_pipe_ends_quietly():
    """`gan-envs list | head -1`: the reader goes away; no traceback, exit status 1."""
    script = Path(sys.executable).with_name("gan-envs")
    process = subprocess.Popen([str(script), "list"], stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, text=True)
    process.stdout.close()  # before the command has imported anything, let alone printed
    stderr = process.stderr.read()
    assert process.wait(timeout=120) == 1
    assert stderr == ""
