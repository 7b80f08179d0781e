"""A writer killed at random moments, or stopped by a full disk, leaves every committed episode."""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

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

from gan_envs.datasets import (
    CorruptDatasetError,
    DatasetInUseError,
    DatasetWriteError,
    RolloutReader,
    RolloutWriter,
    _h5,
    verify,
)

KILLS = 12


def _committed(lines: str) -> list[int]:
    return [int(line.split()[1]) for line in lines.splitlines() if line.startswith("committed")]


def _check_file(path, reported: list[int]) -> int:
    """Every episode the reader sees is intact, and none that was reported is missing.

    A kill can tear a block of HDF5's metadata (docs/dataset-format.md, *Crash safety*); the
    reader then refuses the file and resuming recovers it from the commit journal.
    """
    try:
        return _read_back(path, reported)
    except CorruptDatasetError as err:
        assert "resume=True" in str(err)
    with RolloutWriter(path, resume=True):
        pass
    return _read_back(path, reported)


def _read_back(path, reported: list[int]) -> int:
    with RolloutReader(path) as reader:
        n = reader.num_episodes
        assert n >= len(reported)  # a kill between commit and print may add one
        assert n <= len(reported) + 1
        for k in range(n):
            assert_episode_equal(reader.episode(k), make_episode(k))
            assert reader.episode_info(k)["seed"] == k
    with h5py.File(path, "r", swmr=True) as f:  # plain h5py, no repair step
        assert (f["episodes"]["committed"][:] == 1).sum() >= n
    return n


def test_sigkill_at_random_moments_keeps_every_committed_episode(tmp_path):
    rng = np.random.default_rng(2024)
    outcomes = []
    for trial in range(KILLS):
        path = tmp_path / f"killed-{trial}.h5"
        child = start_child(path, "--delay", str(rng.uniform(0, 0.02)))
        assert child.stdout.readline().strip() == "started"
        time.sleep(rng.uniform(0.0, 0.8))  # from before the file exists to mid-episode
        child.send_signal(signal.SIGKILL)
        out, _ = child.communicate()
        assert child.returncode == -signal.SIGKILL
        reported = _committed(out)
        if not path.exists():
            assert reported == []
            outcomes.append(0)
            continue
        n = _check_file(path, reported)
        assert verify(path).ok, str(verify(path))
        outcomes.append(n)
        if trial % 4 == 0:  # resume continues after the last committed episode
            with RolloutWriter(path, resume=True) as writer:
                assert writer.num_episodes == n
                ep = make_episode(n)
                writer.add_episode(ep["observations"], ep["actions"], ep["rewards"],
                                   ep["terminations"], seed=n)
            _check_file(path, list(range(n + 1)))
            with h5py.File(path, "r") as f:  # closed cleanly: even a plain open works
                assert f.attrs["format"] == "gan-envs-rollouts"
    assert len(set(outcomes)) > 3, outcomes  # the kills really landed at different moments
    assert max(outcomes) > 0


def test_killed_file_resumes_through_the_child(tmp_path):
    path = tmp_path / "r.h5"
    child = start_child(path, "--delay", "0.01")
    child.stdout.readline()
    while not child.stdout.readline().startswith("committed 3"):
        pass
    child.send_signal(signal.SIGKILL)
    child.communicate()
    child = start_child(path, "--resume", "--episodes", "8")
    out, err = child.communicate(timeout=60)
    assert child.returncode == 0, err
    first = _committed(out)[0]
    assert first >= 4
    _check_file(path, list(range(8)))


def _killed_after(path, episodes: int) -> None:
    """Leave at ``path`` the file of a writer killed after ``episodes`` commits."""
    child = start_child(path)
    while not child.stdout.readline().startswith(f"committed {episodes - 1}"):
        pass
    child.kill()
    child.communicate()


def test_two_resumers_of_a_killed_file_do_not_replace_each_others_copy(tmp_path, monkeypatch):
    """Two resumers of one killed file both copy its committed episodes; only the first copy
    to be put in place may stay. Here another process recovers the file (and writes to its
    copy, and closes it) while this one is still copying: this one must then give up, not put
    its copy over the other's episodes."""
    path = tmp_path / "r.h5"
    _killed_after(path, 2)
    copy = RolloutWriter._copy_committed
    outputs = []

    def copy_then_let_another_resume(writer, tmp):
        copy(writer, tmp)
        other = start_child(path, "--resume", "--episodes", "5")
        outputs.append(other.communicate(timeout=60))

    monkeypatch.setattr(RolloutWriter, "_copy_committed", copy_then_let_another_resume)
    with pytest.raises(DatasetInUseError, match="recovered or replaced by another process") \
            as err:
        RolloutWriter(path, resume=True)
    assert "\n" not in str(err.value) and str(path) in str(err.value)
    out, stderr = outputs[0]
    assert _committed(out)[-1] == 4, out + stderr
    monkeypatch.undo()
    _check_file(path, list(range(5)))  # the other's episodes, all five
    assert sorted(p.name for p in tmp_path.iterdir()) == ["r.h5"]  # no copy left behind


def test_a_resumer_that_comes_while_another_opens_the_file_is_refused(tmp_path, monkeypatch):
    """HDF5 holds no lock once it has opened a file for SWMR writing, and marks the file "open
    for write" as a killed writer leaves it. A second resumer that came between the first's
    open and its own lock would take the file for a killed one and put a copy in its place;
    it must wait for the first to hold the file, then be refused."""
    path = write_noise_file(tmp_path / "r.h5", 2)
    open_for_write = _h5.open_for_swmr_write
    outputs = []

    def open_then_let_another_resume(file_path):
        f = open_for_write(file_path)
        if Path(file_path) == path and not outputs:  # the resume's open of the file itself
            other = start_child(path, "--resume", "--episodes", "5",
                                "--folder-lock-timeout", "1")
            outputs.append(other.communicate(timeout=60))
        return f

    monkeypatch.setattr(_h5, "open_for_swmr_write", open_then_let_another_resume)
    with RolloutWriter(path, resume=True) as writer:
        ep = make_episode(2)
        writer.add_episode(ep["observations"], ep["actions"], ep["rewards"], ep["terminations"],
                           seed=2)
    out, stderr = outputs[0]
    assert out.startswith("started\nin use: ") and "gan-envs writers' lock" in out, out + stderr
    _check_file(path, [0, 1, 2])
    with RolloutReader(path) as reader:
        assert reader.num_episodes == 3


def test_a_new_file_linked_while_an_overwriter_takes_the_path_is_refused(tmp_path, monkeypatch):
    """An overwriter checks that no one holds the path and replaces it in one step; a writer
    that linked a new file into place in between would have its file unlinked under it and
    every episode it commits lost. So creating a file waits for the overwriter, then fails."""
    path = tmp_path / "r.h5"
    open_for_write = _h5.open_for_swmr_write
    outputs = []

    def open_then_let_another_create(file_path):
        f = open_for_write(file_path)
        if not outputs:  # the overwriter's open of its new file, just before it takes the path
            other = start_child(path, "--episodes", "3", "--folder-lock-timeout", "1")
            outputs.append(other.communicate(timeout=60))
        return f

    monkeypatch.setattr(_h5, "open_for_swmr_write", open_then_let_another_create)
    with RolloutWriter(path, FRAME_SPACE, ACTION_SPACE, env_ids=["Noise-v0"], chunk_frames=8,
                       overwrite=True) as writer:
        ep = make_episode(0)
        writer.add_episode(ep["observations"], ep["actions"], ep["rewards"], ep["terminations"],
                           seed=0)
    out, stderr = outputs[0]
    assert out.startswith("started\nin use: ") and not _committed(out), out + stderr
    _check_file(path, [0])


def test_a_child_forked_while_the_folder_is_locked_does_not_keep_the_lock(tmp_path):
    """A process forked in the folder lock's milliseconds (by another thread, say) shares the
    locked open file; if it kept its copy, every writer of the folder would wait for the child
    to exit. The child's copy is closed at the fork, and the parent's lock ends with its block."""
    fcntl = pytest.importorskip("fcntl")
    with _h5.folder_lock(tmp_path / "r.h5"):
        pid = os.fork()
        if pid == 0:  # the child lives on past the parent's lock, then leaves without cleanup
            time.sleep(10)
            os._exit(0)
    try:
        fd = os.open(tmp_path, os.O_RDONLY)
        try:  # the child closes its copy as it starts: allow it a few seconds to run
            deadline = time.monotonic() + 5
            while True:
                try:
                    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                    break
                except BlockingIOError:
                    if time.monotonic() > deadline:
                        raise AssertionError("the forked child still holds the lock") from None
                    time.sleep(0.01)
        finally:
            os.close(fd)
        path = write_noise_file(tmp_path / "other.h5", 1)  # a writer takes the folder's lock
        with RolloutReader(path) as reader:
            assert reader.num_episodes == 1
    finally:
        os.kill(pid, signal.SIGKILL)
        os.waitpid(pid, 0)


def test_disk_full_while_creating_the_file_is_one_line_and_leaves_nothing(tmp_path):
    path = tmp_path / "full.h5"
    child = start_child(path, "--fsize-limit", "3000")  # not even the empty layout fits
    out, err = child.communicate(timeout=60)
    assert child.returncode == 0, err
    assert out.splitlines()[-1] == (f"error: {path}: creating the file failed, the disk is full "
                                    "(File too large); free space and run again (nothing was "
                                    "written)")
    assert list(tmp_path.iterdir()) == []


def test_disk_full_raises_and_keeps_committed_episodes(tmp_path):
    path = tmp_path / "full.h5"
    child = start_child(path, "--fsize-limit", str(600_000))
    out, err = child.communicate(timeout=60)
    assert child.returncode == 0, err
    reported = _committed(out)
    errors = [line for line in out.splitlines() if line.startswith("error: ")]
    assert reported and errors, out
    message = errors[0]
    assert str(path) in message and f"writing episode {len(reported)} failed" in message
    assert "committed and intact" in message and "\n" not in message
    with RolloutReader(path) as reader:
        assert reader.num_episodes == len(reported)
        for k in range(reader.num_episodes):
            assert_episode_equal(reader.episode(k), make_episode(k))
    # with space again, writing resumes after the last committed episode
    with RolloutWriter(path, resume=True) as writer:
        assert writer.num_episodes == len(reported)


def test_writer_error_after_failure_names_the_file(tmp_path):
    path = tmp_path / "a.h5"
    writer = RolloutWriter(path, *_spaces())
    writer.close()
    with pytest.raises(Exception, match="writer is closed"):
        writer.begin_episode(np.zeros((3, 16, 16), np.uint8))
    assert not isinstance(DatasetWriteError("x"), OSError)


def _spaces():
    from dataset_helpers import ACTION_SPACE, FRAME_SPACE

    return FRAME_SPACE, ACTION_SPACE
