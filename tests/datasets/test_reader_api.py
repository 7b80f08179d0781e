"""RolloutReader's API corners: negative frame numbers, checked sampling
arguments, documented error classes for non-integer indices, pickling by path, empty files, a
closed reader that refuses every read, and a chunk cache shared between threads."""

from __future__ import annotations

import copy
import multiprocessing
import pickle
import sys
import threading
from pathlib import Path

import numpy as np
import pytest
from dataset_helpers import ACTION_SPACE, FRAME_SPACE, write_noise_file
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from gan_envs.datasets import ChunkIndex, DatasetError, RolloutReader, RolloutWriter
from gan_envs.datasets.reader import _ChunkCache

SETTINGS = settings(max_examples=40, deadline=None,
                    suppress_health_check=[HealthCheck.function_scoped_fixture])


def _one_line(err: pytest.ExceptionInfo) -> str:
    text = str(err.value)
    assert "\n" not in text, text
    return text


@pytest.fixture(scope="module")
def written(tmp_path_factory) -> Path:
    """Three noise episodes (chunk 8)."""
    return write_noise_file(tmp_path_factory.mktemp("review28") / "data.h5", 3)


@pytest.fixture(scope="module")
def all_frames(written) -> np.ndarray:
    with RolloutReader(written) as reader:
        return np.concatenate([reader.episode(i)["observations"]
                               for i in range(reader.num_episodes)])


@pytest.fixture
def empty(tmp_path) -> Path:
    path = tmp_path / "empty.h5"
    RolloutWriter(path, FRAME_SPACE, ACTION_SPACE, env_ids=["Noise-v0"]).close()
    return path


# 1. Negative frame numbers
@SETTINGS
@given(data=st.data(), in_memory=st.booleans())
def test_frames_takes_negative_numbers_as_numpy_does(written, all_frames, data, in_memory):
    n = len(all_frames)
    picks = data.draw(st.lists(st.integers(-n, n - 1), max_size=40))
    one = data.draw(st.integers(-n, n - 1))
    with RolloutReader(written, in_memory=in_memory, cache_bytes=4096) as reader:
        np.testing.assert_array_equal(reader.frames(np.array(picks, np.int64)),
                                      all_frames[np.array(picks, np.int64)])
        np.testing.assert_array_equal(reader.frames(one), all_frames[one])
        np.testing.assert_array_equal(reader.frames(np.int32(one)), all_frames[one])


@pytest.mark.parametrize("bad", ["low", "high", "uint64"])
def test_frames_still_refuses_numbers_out_of_range(written, bad):
    with RolloutReader(written) as reader:
        n = reader.num_frames
        index = {"low": [0, -n - 1], "high": [n], "uint64": np.array([2**64 - 1], np.uint64)}
        with pytest.raises(IndexError, match="out of range") as err:
            reader.frames(index[bad])
        assert str(written) in _one_line(err) and f"{-n}..{n - 1}" in str(err.value)


# 2. chunks_per_batch and rng
@pytest.mark.parametrize(("options", "match"), [
    ({"chunks_per_batch": 2.7}, "chunks_per_batch must be a whole number, got 2.7"),
    ({"chunks_per_batch": "2"}, "chunks_per_batch must be a whole number, got '2'"),
    ({"chunks_per_batch": "x"}, "chunks_per_batch must be a whole number, got 'x'"),
    ({"chunks_per_batch": 0}, "chunks_per_batch must be >= 1, got 0"),
])
def test_sample_frames_checks_chunks_per_batch(written, options, match):
    with RolloutReader(written) as reader:
        with pytest.raises(DatasetError, match=match) as err:
            reader.sample_frames(4, **options)
        assert _one_line(err).startswith(f"{written}: ")


def test_rng_takes_what_numpy_takes_and_names_itself_otherwise(written):
    with RolloutReader(written) as reader:
        want = reader.sample_frames(8, rng=3, chunks_per_batch=np.int64(2))
        for rng in (np.random.default_rng(3), np.random.SeedSequence(3), np.uint8(3)):
            np.testing.assert_array_equal(reader.sample_frames(8, rng=rng, chunks_per_batch=2),
                                          want)
        assert reader.sample_frames(8, rng=None).shape == (8, *FRAME_SPACE.shape)
        for bad in (-1, 1.5, "seed", True, np.float64(2.0), [1, -1]):
            for sample in (lambda rng=bad: reader.sample_frames(4, rng=rng),
                           lambda rng=bad: reader.sample_windows(2, 3, rng=rng)):
                with pytest.raises(DatasetError, match=r"rng must be None, a seed \(a whole "
                                   r"number >= 0\) or a numpy Generator, got ") as err:
                    sample()
                assert _one_line(err).startswith(f"{written}: ")


def test_chunk_index_checks_chunks_per_batch(written):
    with RolloutReader(written) as reader:
        index = reader.chunk_index()
    with pytest.raises(DatasetError, match="chunks_per_batch must be a whole number, got 2.7"):
        index.sample(4, np.random.default_rng(0), 2.7)


# 3. Non-integer episode numbers and window bounds
@pytest.mark.parametrize(("call", "match"), [
    (lambda r: r.episode(1.0), "the episode number must be a whole number, got 1.0"),
    (lambda r: r.episode(True), "the episode number must be a whole number, got True"),
    (lambda r: r.episode("0"), "the episode number must be a whole number, got '0'"),
    (lambda r: r.episode_info(1.0), "the episode number must be a whole number"),
    (lambda r: r.read_window(1.0, 0, 2), "the episode number must be a whole number"),
    (lambda r: r.read_window(0, 1.5, 2), "start must be a whole number, got 1.5"),
    (lambda r: r.read_window(0, np.True_, 2), "start must be a whole number"),
    (lambda r: r.frames([1.5]), "frames\\(\\) takes whole frame numbers"),
])
def test_non_integer_indices_raise_the_documented_index_error(written, call, match):
    """An IndexError as documented (and as numpy's ``a[1.0]``), still a TypeError as before."""
    with RolloutReader(written) as reader:
        with pytest.raises(IndexError, match=match) as err:
            call(reader)
        assert isinstance(err.value, TypeError)
        assert _one_line(err).startswith(f"{written}: ")


# 4. Pickling
def _summary(reader: RolloutReader) -> tuple:
    return (reader.num_frames, reader.frames(-1).tobytes(), reader.in_memory,
            reader._cache.max_bytes, reader.check_table)


@SETTINGS
@given(in_memory=st.booleans(), cache_bytes=st.integers(0, 2**20), check_table=st.booleans())
def test_a_pickled_reader_reopens_its_file_with_the_same_options(written, in_memory,
                                                                 cache_bytes, check_table):
    with RolloutReader(written, in_memory=in_memory, cache_bytes=cache_bytes,
                       check_table=check_table) as reader:
        copied = pickle.loads(pickle.dumps(reader))
        twin = copy.deepcopy(reader)
    with copied, twin:  # the copies outlive the original
        assert copied is not reader and copied._file is not None
        assert _summary(copied) == _summary(twin)
        assert copied.path == written and _summary(copied)[2:] == (in_memory, cache_bytes,
                                                                   check_table)


def test_a_reader_goes_to_a_spawned_process(written, all_frames):
    with RolloutReader(written) as reader:
        context = multiprocessing.get_context("spawn")
        with context.Pool(1) as pool:
            got = pool.apply(_last_frame, (reader,))
    np.testing.assert_array_equal(got, all_frames[-1])


def _last_frame(reader: RolloutReader) -> np.ndarray:
    return reader.frames(-1)


def test_a_closed_reader_is_not_pickled(written):
    reader = RolloutReader(written)
    reader.close()
    with pytest.raises(DatasetError, match="the reader is closed"):
        pickle.dumps(reader)


# 5. Empty files
@pytest.mark.parametrize("in_memory", [False, True])
def test_sampling_no_frames_from_an_empty_file(empty, in_memory):
    with RolloutReader(empty, in_memory=in_memory) as reader:
        got = reader.sample_frames(0, rng=0)
        assert got.shape == (0, *FRAME_SPACE.shape) and got.dtype == np.uint8
        windows = reader.sample_windows(0, 3)
        assert windows["observations"].shape == (0, 4, *FRAME_SPACE.shape)
        with pytest.raises(DatasetError, match="no frames to sample .the file holds no "
                                               "committed episodes") as err:
            reader.sample_frames(4, rng=0)
        assert _one_line(err).startswith(f"{empty}: ")


def test_sampling_no_frames_when_the_filters_exclude_all(written):
    with RolloutReader(written) as reader:
        assert reader.sample_frames(0, env_ids=[]).shape == (0, *FRAME_SPACE.shape)
        with pytest.raises(DatasetError, match=r"env_ids=\[\] exclude every frame") as err:
            reader.sample_frames(2, env_ids=[])
        assert _one_line(err).startswith(f"{written}: ")
    index = ChunkIndex.build(np.empty(0, np.int64), np.empty(0, np.int64), 8)
    assert index.sample(0, np.random.default_rng(0)).shape == (0,)


# 6. A closed reader
def test_a_closed_reader_refuses_every_read(written):
    reader = RolloutReader(written)
    with reader:
        pass
    for read in (lambda r: r.num_frames, lambda r: r.num_steps, lambda r: r.num_episodes,
                 lambda r: r.episode_table, lambda r: r.window_index(3),
                 lambda r: r.no_windows(3), lambda r: r.table_problems(),
                 lambda r: r.episode_info(0), lambda r: r.__enter__(),
                 lambda r: r.sample_frames(0), lambda r: r.sample_windows(0, 3)):
        with pytest.raises(DatasetError, match="the reader is closed; open a new "
                                               "RolloutReader"):
            read(reader)
    reader.close()  # idempotent; the path and repr stay usable
    assert reader.path == written and repr(reader).endswith("closed)")


# 7. A reader shared between threads
def test_the_chunk_cache_counts_a_chunk_stored_twice_once():
    cache = _ChunkCache(3000)
    for _ in range(3):
        cache.put(("observations", 0), np.zeros(1000, np.uint8))
    cache.put(("observations", 1), np.zeros(1000, np.uint8))
    assert cache.bytes == 2000 and len(cache._items) == 2
    assert cache.get(("observations", 0)) is not None


def test_a_reader_shared_between_threads_keeps_caching(written, all_frames):
    chunk_bytes = 8 * int(np.prod(FRAME_SPACE.shape))
    reader = RolloutReader(written, cache_bytes=4 * chunk_bytes)
    errors: list[str] = []

    def work(seed: int) -> None:
        rng = np.random.default_rng(seed)
        try:
            for _ in range(300):
                picks = rng.integers(0, len(all_frames), 8)
                if not np.array_equal(reader.frames(picks), all_frames[picks]):
                    errors.append("wrong frames")
        except Exception as err:  # noqa: BLE001 - reported below
            errors.append(f"{type(err).__name__}: {err}")

    with reader:
        threads = [threading.Thread(target=work, args=(seed,)) for seed in range(4)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        cached = sum(item.nbytes for item in reader._cache._items.values())
        assert errors == []
        assert reader._cache.bytes == cached <= reader._cache.max_bytes
        assert cached > 0


def test_the_chunk_cache_stays_consistent_under_thread_switches():
    """Threads switching as often as the interpreter allows: without the cache's lock, one
    thread evicts the chunk another is marking as recently used (KeyError), or two updates
    of the byte count lose one."""
    cache = _ChunkCache(4 * 100)
    errors: list[str] = []

    def work(seed: int) -> None:
        rng = np.random.default_rng(seed)
        try:
            for key in rng.integers(0, 8, 20000).tolist():
                if cache.get(("observations", key)) is None:
                    cache.put(("observations", key), np.zeros(100, np.uint8))
        except Exception as err:  # noqa: BLE001 - reported below
            errors.append(f"{type(err).__name__}: {err}")

    interval = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)
    try:
        threads = [threading.Thread(target=work, args=(seed,)) for seed in range(4)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    finally:
        sys.setswitchinterval(interval)
    assert errors == []
    assert cache.bytes == sum(item.nbytes for item in cache._items.values()) <= 400
