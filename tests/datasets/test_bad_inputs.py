"""Every bad input gives a one-line error that names the file; nothing bad is written."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys

import h5py
import numpy as np
import pytest
from dataset_helpers import (
    ACTION_SPACE,
    FRAME_SPACE,
    assert_episode_equal,
    make_episode,
    start_child,
    write_noise_file,
)
from gymnasium.spaces import Box, Dict, Discrete

from gan_envs.datasets import (
    CorruptDatasetError,
    DatasetError,
    DatasetVersionError,
    RolloutReader,
    RolloutWriter,
    verify,
)

OBS = np.zeros(FRAME_SPACE.shape, np.uint8)


def _one_line(err: pytest.ExceptionInfo, path) -> str:
    text = str(err.value)
    assert "\n" not in text and str(path) in text, text
    return text


@pytest.fixture
def written(tmp_path):
    """A file with three noise episodes (chunk 8)."""
    return write_noise_file(tmp_path / "data.h5", 3)


@pytest.mark.parametrize(("call", "match"), [
    (lambda w: w.add_step(0, 0.0, OBS), "begin_episode"),
    (lambda w: w.begin_episode(OBS[:, :, :15]), r"shape \(3, 16, 15\) does not fit"),
    (lambda w: w.begin_episode(OBS.astype(np.float32)), "dtype float32 does not fit"),
    (lambda w: w.begin_episode(OBS.astype(np.int64) + 256), "outside Box"),
    (lambda w: w.begin_episode(OBS, env_id="Pong-v5"), "unknown env id 'Pong-v5'"),
    (lambda w: w.begin_episode(OBS, seed=-1), "seed must be"),
    (lambda w: w.begin_episode(OBS, blank=True), "no blank_frame flags"),
    (lambda w: w.commit_episode(), "no episode in progress"),
    (lambda w: w.add_episode(np.stack([OBS] * 3), [1, 9], [0.0, 0.0]), r"actions\[1\] is outside"),
    (lambda w: w.add_episode(np.stack([OBS] * 3), [1, 1], [0.0, np.nan]), "finite"),
    (lambda w: w.add_episode(np.stack([OBS] * 2), [1, 1], [0.0, 0.0]), "expected 3"),
    (lambda w: w.add_episode(np.stack([OBS] * 3), [1, 1], [0, 0], [True, False]),
     "set before the last step"),
    (lambda w: w.add_episode(OBS[None], [], []), "at least one step"),
])
def test_bad_values_raise_and_write_nothing(written, call, match):
    with RolloutWriter(written, resume=True) as writer:
        with pytest.raises(DatasetError, match=match) as err:
            call(writer)
        _one_line(err, written)
        ep = make_episode(3)  # the writer still works after a rejected value
        writer.add_episode(ep["observations"], ep["actions"], ep["rewards"])
    with RolloutReader(written) as reader:
        assert reader.num_episodes == 4
        assert_episode_equal(reader.episode(3), {k: v for k, v in ep.items()
                                                 if k in ("observations", "actions")})
    assert verify(written).ok


def test_bad_step_values_keep_the_episode_in_progress(tmp_path):
    path = tmp_path / "s.h5"
    with RolloutWriter(path, FRAME_SPACE, ACTION_SPACE) as writer:
        writer.begin_episode(OBS)
        for bad in [dict(action=7), dict(reward=float("inf")), dict(terminated=2),
                    dict(observation=OBS[0])]:
            args = {"action": 1, "reward": 0.0, "observation": OBS, **bad}
            with pytest.raises(DatasetError):
                writer.add_step(**args)
        writer.add_step(1, 0.5, OBS, terminated=True)
        with pytest.raises(DatasetError, match="the episode ended at step 1"):
            writer.add_step(1, 0.5, OBS)
        assert writer.commit_episode() == 0
    with RolloutReader(path) as reader:
        assert reader.episode(0)["rewards"].tolist() == [0.5]


def test_existing_files_are_kept_unless_asked(written, tmp_path):
    with pytest.raises(FileExistsError, match="overwrite=True"):
        RolloutWriter(written, FRAME_SPACE, ACTION_SPACE)
    with pytest.raises(DatasetError, match="not both"):
        RolloutWriter(written, FRAME_SPACE, ACTION_SPACE, overwrite=True, resume=True)
    with RolloutReader(written) as reader:
        assert reader.num_episodes == 3
    with RolloutWriter(written, FRAME_SPACE, ACTION_SPACE, overwrite=True):
        pass
    with RolloutReader(written) as reader:
        assert reader.num_episodes == 0
    with pytest.raises(FileNotFoundError, match="create the folder"):
        RolloutWriter(tmp_path / "no" / "x.h5", FRAME_SPACE, ACTION_SPACE)
    # overwrite replaces a rollout file, never a link (it would cut the link and leave its
    # target) nor something that is not a file (a device, a pipe)
    link, pipe = tmp_path / "link.h5", tmp_path / "pipe.h5"
    link.symlink_to(written)
    os.mkfifo(pipe)
    for path, match in [(link, "is a symbolic link; pass the file it points to"),
                        (pipe, "is not a regular file")]:
        with pytest.raises(DatasetError, match=match) as err:
            RolloutWriter(path, FRAME_SPACE, ACTION_SPACE, overwrite=True)
        _one_line(err, path)
    assert link.is_symlink() and pipe.is_fifo()


def test_bad_writer_arguments(tmp_path, written):
    path = tmp_path / "new.h5"
    for kwargs, match in [
        (dict(compression="jpeg"), "lossless"),
        (dict(chunk_frames=0), "chunk_frames"),
        (dict(env_ids=["a", "a"]), "duplicates"),
    ]:
        with pytest.raises(DatasetError, match=match):
            RolloutWriter(path, FRAME_SPACE, ACTION_SPACE, **kwargs)
    with pytest.raises(DatasetError, match="spaces"):
        RolloutWriter(path, Dict({"a": Discrete(2)}), ACTION_SPACE)
    with pytest.raises(DatasetError, match="are needed"):
        RolloutWriter(path)
    with pytest.raises(DatasetError, match="resume with observation_space"):
        RolloutWriter(written, Box(0, 255, (3, 8, 8), np.uint8), resume=True)
    with pytest.raises(DatasetError, match="cannot add env ids"):
        RolloutWriter(written, resume=True, env_ids=["Other-v0"])
    assert not path.exists()


def test_a_second_writer_or_an_open_reader_blocks_resume(written):
    with RolloutWriter(written, resume=True):
        with pytest.raises(DatasetError, match="open in another process"):
            RolloutWriter(written, resume=True)
    with RolloutReader(written):
        with pytest.raises(DatasetError, match="another process"):
            RolloutWriter(written, resume=True)


def test_missing_and_foreign_files(tmp_path, written):
    with pytest.raises(FileNotFoundError, match=r"does not exist \(did you mean .*data.h5\?\)"):
        RolloutReader(tmp_path / "dta.h5")
    text = tmp_path / "notes.h5"
    text.write_text("hello")
    with pytest.raises(DatasetError, match="not an HDF5 file") as err:
        RolloutReader(text)
    _one_line(err, text)
    other = tmp_path / "other.h5"
    with h5py.File(other, "w") as f:
        f["x"] = np.arange(3)
    with pytest.raises(DatasetError, match="not a gan-envs rollout file") as err:
        RolloutReader(other)
    _one_line(err, other)
    changed = tmp_path / "changed.h5"  # a file another program took an array out of
    changed.write_bytes(written.read_bytes())
    with h5py.File(changed, "r+") as f:
        del f["observations"]
    with pytest.raises(DatasetError, match="has no observations dataset") as err:
        RolloutReader(changed)
    _one_line(err, changed)
    for attribute, value, match in [("env_ids", "[oops", "'env_ids' attribute is not valid JSON"),
                                    ("observation_space", "{}", "is not a space description")]:
        changed.write_bytes(written.read_bytes())
        with h5py.File(changed, "r+") as f:
            f.attrs[attribute] = value
        with pytest.raises(CorruptDatasetError, match=match) as err:
            RolloutReader(changed)
        assert _one_line(err, changed).endswith("copy it again from its source")
    with h5py.File(written, "r+") as f:
        f.attrs["format_version"] = "2.0"
    with pytest.raises(DatasetVersionError) as err:
        RolloutReader(written)
    assert _one_line(err, written).endswith(
        "format_version 2.0 is newer than this gan-envs understands (1.x); upgrade gan-envs")
    with h5py.File(written, "r+") as f:
        f.attrs["format_version"] = "1.7"  # a newer minor version still reads
    with RolloutReader(written) as reader:
        assert reader.num_episodes == 3


def test_a_named_pipe_is_refused_not_waited_on(tmp_path):
    """HDF5 opened a FIFO and waited forever for a writer (`gan-envs info` hung)."""
    fifo = tmp_path / "data.h5"
    os.mkfifo(fifo)
    code = ("import sys; from gan_envs.cli import main; "
            f"sys.exit(main(['info', {str(fifo)!r}]) + 10 * main(['verify', {str(fifo)!r}]))")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=60)
    assert proc.returncode == 2 + 10 * 2, proc.stderr
    assert proc.stderr.splitlines() == [
        f"gan-envs: {fifo} is not a regular file (a pipe, socket or device); pass the path of a "
        "rollout .h5 file (copy a stream to a file first)"] * 2


def test_an_unreadable_file_is_a_permission_error_not_a_damaged_one(tmp_path, written):
    """Permission denied read "cannot open it (...); the file is damaged, run verify"."""
    secret = tmp_path / "secret.h5"
    secret.write_bytes(written.read_bytes())
    secret.chmod(0)
    prefix: list[str] = []
    if os.geteuid() == 0:  # root reads any file: drop the capabilities that let it
        if shutil.which("setpriv") is None:
            pytest.skip("running as root without setpriv to drop file-mode overrides")
        prefix = ["setpriv", "--bounding-set=-dac_override,-dac_read_search"]
    code = ("from gan_envs.datasets import RolloutReader\n"
            f"try:\n    RolloutReader({str(secret)!r})\n"
            "except PermissionError as err:\n    print(err)")
    proc = subprocess.run([*prefix, sys.executable, "-c", code], capture_output=True,
                          text=True, timeout=60)
    assert proc.stdout.strip() == (f"{secret}: permission denied; make the file readable (and "
                                   "writable to append to it) or pass another file"), proc.stderr


def test_truncated_file(written):
    data = written.read_bytes()
    written.write_bytes(data[: len(data) // 2])
    with pytest.raises(CorruptDatasetError, match="truncated") as err:
        with RolloutReader(written) as reader:
            for k in range(reader.num_episodes):
                reader.episode(k)
    _one_line(err, written)
    report = verify(written)
    assert not report.ok


def test_flipped_bytes_inside_a_chunk_are_caught_and_located(written):
    with RolloutReader(written) as reader:
        row = reader.episode_table[1]
    with h5py.File(written, "r") as f:
        info = f["observations"].id.get_chunk_info_by_coord((int(row["obs_offset"]), 0, 0, 0))
    data = bytearray(written.read_bytes())
    middle = info.byte_offset + info.size // 2
    data[middle:middle + 4] = bytes(255 - b for b in data[middle:middle + 4])
    written.write_bytes(bytes(data))
    with RolloutReader(written) as reader:
        assert_episode_equal(reader.episode(0), make_episode(0))
        with pytest.raises(CorruptDatasetError, match="observations of episode 1") as err:
            reader.episode(1)
        _one_line(err, written)
        assert err.value.hint == ("`gan-envs verify FILE` (gan_envs.datasets.verify()) locates "
                                  "the bad episodes")
        assert str(err.value).endswith("; the file is damaged, " + err.value.hint)
        with pytest.raises(CorruptDatasetError, match="episode 1"):
            reader.frames(np.arange(reader.num_frames))
    report = verify(written)
    assert not report.ok and report.first_bad_episode == 1 and report.bad_episodes == [1]
    assert str(report).splitlines()[0].endswith("1 problem; first bad episode: 1")
    # the reader's advice to run verify() is not repeated inside verify's own report
    assert str(report).splitlines()[1].endswith("(filter returned failure during read); the "
                                                "file is damaged")


def test_reader_arguments(written):
    with RolloutReader(written) as reader:
        with pytest.raises(IndexError, match="episode 3 out of range"):
            reader.episode(3)
        with pytest.raises(IndexError, match="out of range"):
            reader.frames([reader.num_frames])
        with pytest.raises(DatasetError, match="unknown env id 'Pong'"):
            reader.sample_frames(4, env_ids=["Pong"])
        with pytest.raises(DatasetError, match="no blank_frame flags"):
            reader.sample_frames(4, exclude_blank=True)
        with pytest.raises(DatasetError, match="pass a shorter length"):
            reader.sample_windows(2, length=10_000)
        with pytest.raises(IndexError, match="does not fit episode 0"):
            reader.read_window(0, 0, 10_000)
    with pytest.raises(DatasetError, match="reader is closed"):
        reader.episode(0)


@pytest.mark.parametrize("fraction", [0.5, 0.8, 0.95])
def test_resume_refuses_a_copy_cut_where_it_held_committed_episodes(written, fraction):
    """resume=True replaced a cut copy by its episodes before the cut and appended after them,
    silently: the reader refuses the same file as truncated."""
    data = written.read_bytes()
    written.write_bytes(data[: int(len(data) * fraction)])
    cut = written.read_bytes()
    with pytest.raises(CorruptDatasetError, match="truncated"):  # what the reader says
        RolloutReader(written)
    with pytest.raises(CorruptDatasetError, match=r"the file is truncated \(.*\); copy it "
                       r"again from its source; resume=True would keep only the episodes "
                       r"before the cut$"):
        RolloutWriter(written, resume=True)
    assert written.read_bytes() == cut  # nothing written


@pytest.mark.parametrize("content", [b"", "plain"])
def test_resume_of_a_file_that_is_not_a_rollout_file_changes_nothing(tmp_path, content):
    """An empty file got an HDF5 superblock (0 -> 195 bytes) before it was refused; another
    program's HDF5 file was called damaged."""
    path = tmp_path / "other.h5"
    if content == "plain":
        with h5py.File(path, "w") as f:
            f["x"] = np.arange(3)
    else:
        path.write_bytes(content)
    before = path.read_bytes()
    with pytest.raises(DatasetError, match=r"(not an HDF5 file|not a gan-envs rollout file).*; "
                       r"resume=True appends only to such a file \(overwrite=True replaces it\)$"):
        RolloutWriter(path, FRAME_SPACE, ACTION_SPACE, resume=True)
    assert path.read_bytes() == before


@pytest.mark.parametrize("fraction", [0.2, 0.4, 0.6, 0.8, 0.95, 0.99])
def test_a_file_cut_anywhere_is_refused_not_silently_shortened(written, fraction):
    """Table rows past the end of a cut file would read as zeros: never show fewer episodes."""
    with RolloutReader(written) as reader:
        complete = reader.num_episodes
    data = written.read_bytes()
    written.write_bytes(data[: int(len(data) * fraction)])
    try:
        with RolloutReader(written) as reader:
            assert reader.num_episodes == complete  # opened only if nothing committed is lost
            for k in range(reader.num_episodes):
                reader.episode(k)
    except CorruptDatasetError as err:
        assert "truncated" in str(err) and "\n" not in str(err)


def test_no_cut_of_a_file_reads_as_fewer_episodes(written):
    """A copy cut inside its last committed table row opened and read one episode fewer,
    without a word (3 of 60 evenly spaced cuts of a collected file, all in its last ~5 %), and
    resume=True then dropped that episode for good: every cut is refused or reads them all."""
    data = written.read_bytes()
    with RolloutReader(written) as reader:
        complete = [reader.episode(k)["observations"] for k in range(reader.num_episodes)]
    sizes = sorted({int(len(data) * k / 80) for k in range(1, 80)}
                   | set(range(len(data) - 2_000, len(data), 25)))
    for size in sizes:
        written.write_bytes(data[:size])
        try:
            with RolloutReader(written) as reader:
                assert reader.num_episodes == len(complete), size
                for k, frames in enumerate(complete):
                    assert np.array_equal(reader.episode(k)["observations"], frames), size
        except CorruptDatasetError as err:
            assert "truncated" in str(err) and "\n" not in str(err), size


@pytest.mark.parametrize("size", [600, 2_000, 5_000])
def test_a_file_cut_inside_its_header_is_called_truncated(written, size):
    """Cut before its attributes, the file still opens as a SWMR reader, without them: the
    error is the cut, not "not a gan-envs rollout file"."""
    written.write_bytes(written.read_bytes()[:size])
    with pytest.raises(CorruptDatasetError, match=rf"the file is truncated \({size:,} of "):
        RolloutReader(written)
    report = verify(written)
    assert not report.ok and "the file is truncated" in str(report)


_HOLD_OPEN = ("import sys; from gan_envs.datasets import RolloutReader; "
              "r = RolloutReader(sys.argv[1]); print(r.num_episodes, flush=True); sys.stdin.read()")


def test_a_reader_that_opens_a_new_file_at_once_does_not_stop_its_writer(tmp_path, monkeypatch):
    """A reader that opens the file the moment it appears (a progress monitor, `gan-envs info`)
    must not make the writer's own open fail: HDF5 opens for writing only under an exclusive lock,
    so the writer opens and locks the file before it has its name. Covers a new file, an
    overwrite and a killed file's recovery, each of which links a fresh file into place."""
    readers = []
    publish = RolloutWriter._publish

    def publish_then_open_a_reader(writer, tmp, *, replace):
        publish(writer, tmp, replace=replace)
        reader = subprocess.Popen([sys.executable, "-c", _HOLD_OPEN, str(writer.path)],
                                  stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                  stderr=subprocess.PIPE, text=True)
        readers.append(reader)
        assert reader.stdout.readline().strip().isdigit(), reader.communicate()[1]

    def release_readers():
        while readers:
            reader = readers.pop()
            _, err = reader.communicate("", timeout=30)
            assert reader.returncode == 0, err

    monkeypatch.setattr(RolloutWriter, "_publish", publish_then_open_a_reader)
    path = tmp_path / "data.h5"
    ep = make_episode(0)
    episode = (ep["observations"], ep["actions"], ep["rewards"], ep["terminations"])
    for overwrite in (False, True):
        with RolloutWriter(path, FRAME_SPACE, ACTION_SPACE, chunk_frames=8,
                           overwrite=overwrite) as writer:
            assert len(readers) == 1  # it opened the file before the writer wrote anything
            writer.add_episode(*episode)
        release_readers()
    monkeypatch.setattr(RolloutWriter, "_publish", publish)
    path.unlink()
    child = start_child(path)  # a writer killed after its first commits needs recovering
    for line in child.stdout:
        if line.startswith("committed 1"):
            break
    child.kill()
    child.communicate()
    monkeypatch.setattr(RolloutWriter, "_publish", publish_then_open_a_reader)
    with RolloutWriter(path, resume=True) as writer:
        assert len(readers) == 1 and writer.num_episodes >= 2
        writer.add_episode(*episode)
    release_readers()
    with RolloutReader(path) as reader:
        assert_episode_equal(reader.episode(reader.num_episodes - 1), ep)
