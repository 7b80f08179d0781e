"""Reading while a writer appends; random batches and windows honour their guarantees."""

from __future__ import annotations

import time

import numpy as np
import pytest
from dataset_helpers import assert_episode_equal, make_episode, start_child
from gymnasium.spaces import Box, Discrete

from gan_envs.datasets import RolloutReader, RolloutWriter


def test_reader_sees_committed_episodes_while_a_writer_appends(tmp_path):
    path = tmp_path / "live.h5"
    # a writer slow enough to be seen growing on a loaded machine (with 0.05 s between
    # episodes the test failed once while two training runs held both cores)
    child = start_child(path, "--episodes", "12", "--delay", "0.2")
    try:
        assert child.stdout.readline().strip() == "started"
        assert child.stdout.readline().startswith("committed 0")
        with RolloutReader(path) as reader:
            seen = [reader.num_episodes]
            while child.poll() is None or seen[-1] < 12:
                reader.refresh()
                seen.append(reader.num_episodes)
                for k in range(seen[-2] if len(seen) > 1 else 0, seen[-1]):
                    assert_episode_equal(reader.episode(k), make_episode(k))
                if reader.num_episodes:  # random access while it grows
                    assert reader.sample_frames(32, rng=len(seen)).shape == (32, 3, 16, 16)
                time.sleep(0.01)
                assert len(seen) < 5000
        assert seen[-1] == 12 and len(set(seen)) > 2, seen
    finally:
        child.kill()
        child.communicate()


def _numbered(tmp_path, lengths, env_ids=("A-v0", "B-v0")):
    """Frames whose pixels encode their frame number; episode k from env k % 2."""
    path = tmp_path / "numbered.h5"
    space = Box(0, 255, (2, 2, 2), np.uint8)
    frame = 0
    with RolloutWriter(path, space, Discrete(2), env_ids=list(env_ids), chunk_frames=8,
                       blank_frames=True) as writer:
        for k, n in enumerate(lengths):
            ids = np.arange(frame, frame + n + 1)
            obs = np.zeros((n + 1, 2, 2, 2), np.uint8)
            obs[:, 0, 0, 0], obs[:, 0, 0, 1] = ids % 256, ids // 256
            obs[:, 0, 1, 0] = k
            writer.add_episode(obs, np.zeros(n, int), np.arange(n, dtype=float),
                               env_id=env_ids[k % 2], blank=ids % 5 == 0)
            frame += n + 1
    return path, frame


def _ids(frames):
    return frames[..., 0, 0, 0].astype(int) + 256 * frames[..., 0, 0, 1].astype(int)


def test_sample_frames_is_uniform_and_respects_filters(tmp_path):
    path, total = _numbered(tmp_path, [30, 7, 50, 12, 41])
    with RolloutReader(path) as reader:
        assert reader.num_frames == total
        rng = np.random.default_rng(0)
        counts = np.bincount(_ids(np.concatenate(
            [reader.sample_frames(256, rng) for _ in range(400)])), minlength=total)
        expected = 400 * 256 / total
        assert counts.min() > expected - 6 * expected**0.5
        assert counts.max() < expected + 6 * expected**0.5
        batch = reader.sample_frames(256, rng, env_ids=["B-v0"], exclude_blank=True)
        assert set(batch[:, 0, 1, 0].tolist()) <= {1, 3}
        assert (_ids(batch) % 5 != 0).all()
        keep = reader.frame_indices(env_ids=["A-v0"], exclude_blank=True)
        np.testing.assert_array_equal(_ids(reader.frames(keep)), keep)
        assert len(keep) == sum(1 for i in range(total) if i % 5 and
                                reader.frames([i])[0, 0, 1, 0] % 2 == 0)
        few = reader.sample_frames(64, rng, chunks_per_batch=1)
        assert len(np.unique(_ids(few) // 8)) <= 2  # one chunk (a chunk may not align to 8)
        assert reader.sample_frames(0, rng).shape == (0, 2, 2, 2)


def test_windows_never_cross_an_episode_boundary(tmp_path):
    lengths = [30, 7, 50, 12, 41]
    path, _ = _numbered(tmp_path, lengths)
    with RolloutReader(path) as reader:
        windows = reader.sample_windows(300, length=10, rng=1)
        obs = windows["observations"]
        assert obs.shape == (300, 11, 2, 2, 2) and windows["rewards"].shape == (300, 10)
        ids = _ids(obs)
        assert (np.diff(ids, axis=1) == 1).all()
        episode = obs[:, :, 0, 1, 0]
        assert (episode == episode[:, :1]).all()
        assert 1 not in set(episode[:, 0].tolist())  # episode 1 has only 7 steps
        # rewards are the step index inside the episode: windows start anywhere that fits
        starts = windows["rewards"][:, 0].astype(int)
        assert starts.min() == 0 and starts.max() >= 35
        only_a = reader.sample_windows(50, length=5, rng=2, env_ids=["A-v0"])
        assert set(only_a["observations"][:, 0, 0, 1, 0].tolist()) <= {0, 2, 4}


@pytest.mark.parametrize("in_memory", [False, True])
def test_cache_bound_and_in_memory_give_the_same_frames(tmp_path, in_memory):
    path, total = _numbered(tmp_path, [30, 7, 50, 12, 41])
    with RolloutReader(path, in_memory=in_memory, cache_bytes=200) as reader:
        order = np.random.default_rng(3).permutation(total)
        np.testing.assert_array_equal(_ids(reader.frames(order)), order)
        if not in_memory:
            assert reader._cache.bytes <= 200


def test_a_refresh_that_finds_a_damaged_table_leaves_the_reader_as_it_was(tmp_path):
    """refresh() refusing a damaged table replaced the reader's table but not the offsets
    derived from it, so the episodes it had already seen were read with the damaged row."""
    from gan_envs.datasets import CorruptDatasetError

    path = tmp_path / "live.h5"
    child = start_child(path, "--episodes", "5", "--damage-after", "3")
    try:
        lines = [child.stdout.readline().strip() for _ in range(5)]
        assert lines == ["started"] + [f"committed {k}" for k in range(4)]
        with RolloutReader(path) as reader:
            assert reader.num_episodes == 4
            frames = reader.num_frames
            child.stdin.write("go\n")
            child.stdin.flush()
            assert child.stdout.readline().strip() == "damaged"
            with pytest.raises(CorruptDatasetError, match="episode 3: reaches past the end"):
                reader.refresh()
            assert (reader.num_episodes, reader.num_frames) == (4, frames)
            for k in range(4):
                assert_episode_equal(reader.episode(k), make_episode(k))
            assert reader.sample_frames(16, rng=0).shape == (16, 3, 16, 16)
    finally:
        child.kill()
        child.communicate()
