"""Edges of the torch adapters: an empty selection refused when the dataset is
made, close() and ``with`` releasing the file, every index path taking [-n, n), samplers and
loaders refusing what they cannot use and passing DataLoader options on, loose values refused."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from gymnasium.spaces import Box, Discrete
from hypothesis import given, settings
from hypothesis import strategies as st
from torch.utils.data import Subset

from gan_envs.datasets import DatasetError, RolloutWriter
from gan_envs.datasets.torch import ChunkBatchSampler, FrameDataset, WindowDataset, frame_loader

SPACE = Box(0, 255, (3, 4, 4), np.uint8)
LENGTHS = (20, 9)  # 31 frames, numbered 0..30 in their first pixel
N = sum(n + 1 for n in LENGTHS)


def _write(path, lengths=LENGTHS, blank=lambda ids: ids % 5 == 0):
    """Frames whose first pixel is their frame number; env A only (env B has no episode)."""
    frame = 0
    with RolloutWriter(path, SPACE, Discrete(2), chunk_frames=8, env_ids=["A", "B"],
                       blank_frames=True) as writer:
        for n in lengths:
            ids = np.arange(frame, frame + n + 1)
            obs = np.zeros((n + 1, *SPACE.shape), np.uint8)
            obs[:, 0, 0, 0] = ids
            writer.add_episode(obs, [0] * n, [0.0] * n, env_id="A", blank=blank(ids))
            frame += n + 1
    return path


@pytest.fixture(scope="module")
def numbered(tmp_path_factory):
    return _write(tmp_path_factory.mktemp("edges") / "numbered.h5")


@pytest.fixture(scope="module")
def frames(numbered):
    return FrameDataset(numbered, value_range=(0.0, 1.0))


def _ids(batch: torch.Tensor) -> list[int]:
    """Frame numbers of a (value_range (0, 1)) batch."""
    return (batch[:, 0, 0, 0] * 255).round().to(torch.int64).tolist()


def _one_line(err: pytest.ExceptionInfo) -> str:
    text = str(err.value)
    assert "\n" not in text, text
    return text


# 1. A selection without frames is refused when the dataset (or loader) is made
def test_frame_dataset_refuses_filters_that_leave_no_frame(numbered, tmp_path):
    with pytest.raises(DatasetError, match=r"env_ids=\[.B.\] exclude every frame\); pass other "
                                           "filters") as err:
        FrameDataset(numbered, env_ids=["B"])
    assert _one_line(err).startswith(f"{numbered}: ")
    with pytest.raises(DatasetError, match=r"env_ids=\['B'\] exclude every frame"):
        frame_loader(numbered, 8, num_batches=3, env_ids=["B"])  # failed at the first batch
    with pytest.raises(DatasetError, match=r"env_ids=\['B'\] exclude every frame"):
        frame_loader(numbered, 8, env_ids=["B"])  # was a loader of no batch
    blank = _write(tmp_path / "blank.h5", blank=lambda ids: np.ones(len(ids), bool))
    with pytest.raises(DatasetError, match="exclude_blank=True exclude every frame"):
        FrameDataset(blank, exclude_blank=True)
    empty = tmp_path / "empty.h5"
    RolloutWriter(empty, SPACE, Discrete(2)).close()
    with pytest.raises(DatasetError, match="the file holds no committed episodes") as err:
        FrameDataset(empty)
    assert _one_line(err).startswith(f"{empty}: ")
    assert len(FrameDataset(blank)) == N  # without the filter, every frame


# 2. close() and ``with`` release this process's handle; a later read opens it again
@pytest.mark.parametrize("make", [lambda p: FrameDataset(p), lambda p: WindowDataset(p, 3),
                                  lambda p: frame_loader(p, 4, num_batches=1).dataset])
def test_close_and_with_let_a_writer_resume_the_file(tmp_path, make):
    path = _write(tmp_path / "resume.h5")
    data = make(path)
    first = data[0]
    data.close()
    data.close()  # again: nothing to do
    RolloutWriter(path, resume=True).close()  # refused while the dataset held the file
    again = data[0]  # opens the file again, as a DataLoader worker's first read does
    for a, b in zip(*(x.values() if isinstance(x, dict) else [x] for x in (first, again)),
                    strict=True):
        assert torch.equal(a, b)
    with data as same:
        assert same is data
        same[1]
    RolloutWriter(path, resume=True).close()


# 3. Every index path takes [-n, n) and raises a one-line IndexError otherwise
@pytest.mark.parametrize("call, bad", [
    (lambda d: d[2**64], 2**64),  # was an OverflowError
    (lambda d: d[-2**63 - 1], -2**63 - 1),  # said "must be >= 0"
    (lambda d: d.__getitems__([0, 2**64]), 2**64),
    (lambda d: d.__getitems__([np.uint64(2), -N - 1]), -N - 1),
])
def test_frame_positions_out_of_range_are_index_errors(frames, call, bad):
    with pytest.raises(IndexError, match=fr"a frame position must be in \[{-N}, {N - 1}\], "
                                         fr"got {bad}$") as err:
        call(frames)
    _one_line(err)


def test_mixed_signed_and_unsigned_positions_are_read(frames):
    batch = frames.__getitems__([-1, np.uint64(3), np.int8(-2), torch.tensor(4)])  # was refused
    assert _ids(torch.stack(list(batch))) == [N - 1, 3, N - 2, 4]


def test_nested_positions_are_refused_as_positions(frames):
    with pytest.raises(IndexError, match=r"^a frame position must be a whole number, got "
                                         r"\[1, 2\]$"):  # named frames() of the reader
        frames.__getitems__([[1, 2]])
    with pytest.raises(IndexError, match="__getitems__ takes a sequence of frame positions"):
        frames.__getitems__(np.array(3))


_WHOLE = st.one_of(st.integers(-N - 3, N + 3), st.integers(-2**70, 2**70))
_NOT_WHOLE = st.one_of(st.booleans(), st.just(np.bool_(True)), st.floats(-40, 40),
                       st.text(max_size=2), st.none())


@st.composite
def _position(draw: st.DrawFn) -> object:
    """A whole number as a Python int or, where it fits, a NumPy integer; now and then a value
    that is not a whole number (a bool, a float, a string, None)."""
    if draw(st.integers(0, 9)) == 0:
        return draw(_NOT_WHOLE)
    value = draw(_WHOLE)
    kinds = [int] + [kind for kind in (np.int64, np.uint64, np.int16)
                     if np.iinfo(kind).min <= value <= np.iinfo(kind).max]
    return draw(st.sampled_from(kinds))(value)


def _is_whole(p: object) -> bool:
    return isinstance(p, (int, np.integer)) and not isinstance(p, (bool, np.bool_))


@settings(max_examples=150, deadline=None)
@given(positions=st.lists(_position(), max_size=6), as_array=st.booleans())
def test_getitems_reads_positions_in_range_and_refuses_the_others(frames, positions, as_array):
    """Any mix of Python and NumPy integers, as a list or an array (int64, uint64 or object):
    in [-n, n) they read frame ``p % n``; otherwise the first position that is out of range or
    not a whole number (bools, floats, strings stay refused) is named in one IndexError."""
    if as_array:
        for dtype in (np.int64, np.uint64, object):
            try:
                positions = np.array(positions, dtype) if all(map(_is_whole, positions)) else (
                    np.array(positions + [None], object)[:-1])
                break
            except (OverflowError, ValueError, TypeError):
                continue
    bad = [p for p in positions if not (_is_whole(p) and -N <= p < N)]
    if not bad:
        batch = frames.__getitems__(positions)
        assert len(batch) == len(positions)
        if len(batch):
            assert _ids(FrameDataset.collate(batch)) == [int(p) % N for p in positions]
        return
    why = (fr"in \[{-N}, {N - 1}\], got {int(bad[0])}$" if _is_whole(bad[0])
           else "a whole number, got ")
    with pytest.raises(IndexError, match=f"^a frame position must be {why}") as err:
        frames.__getitems__(positions)
    _one_line(err)


# 4. The sampler takes a FrameDataset only; frame_loader passes DataLoader options on
@pytest.mark.parametrize("make, hint", [
    (lambda p: WindowDataset(p, 3), "got WindowDataset; shuffle windows with DataLoader"),
    (lambda p: Subset(FrameDataset(p), range(4)), "got Subset; choose frames with FrameDataset's "
                                                  "env_ids and exclude_blank"),
    (lambda p: list(range(4)), "got list"),
])
def test_chunk_batch_sampler_needs_a_frame_dataset(numbered, make, hint):
    with pytest.raises(TypeError, match="ChunkBatchSampler takes a FrameDataset .it draws from "
                                        f"its chunk_index., {hint}") as err:
        ChunkBatchSampler(make(numbered), 4)
    _one_line(err)


def _init_worker(worker_id: int) -> None:
    """A worker_init_fn (it does nothing)."""


def test_frame_loader_passes_dataloader_options_on(numbered):
    loader = frame_loader(numbered, 4, num_batches=2, num_workers=1, pin_memory=True, timeout=30,
                          worker_init_fn=_init_worker, prefetch_factor=3,
                          persistent_workers=False, value_range=(0, 1))
    assert (loader.pin_memory, loader.timeout, loader.worker_init_fn, loader.prefetch_factor,
            loader.persistent_workers) == (True, 30, _init_worker, 3, False)
    assert frame_loader(numbered, 4, num_workers=1).persistent_workers  # the default with workers
    assert not frame_loader(numbered, 4).persistent_workers
    spawned = frame_loader(numbered, 4, num_batches=2, num_workers=1, seed=3,
                           multiprocessing_context="spawn", value_range=(0, 1))
    assert spawned.multiprocessing_context.get_start_method() == "spawn"
    expected = [frames for frames in ChunkBatchSampler(spawned.dataset, 4, num_batches=2,
                                                       seed=3)]
    got = [_ids(batch) for batch in spawned]
    assert got == [spawned.dataset.chunk_index.frames[p].tolist() for p in expected]


@pytest.mark.parametrize("option, match", [
    ({"exclud_blank": True}, "unknown option 'exclud_blank'; did you mean exclude_blank\\? it "
                             "takes batch_size, num_batches, seed, chunks_per_batch, "
                             "num_workers, pin_memory, .*, cache_bytes$"),
    ({"colour": 1}, "unknown option 'colour'; it takes batch_size, "),
    ({"shuffle": True}, "frame_loader sets the DataLoader's shuffle itself"),
    ({"collate_fn": None}, "frame_loader sets the DataLoader's collate_fn itself"),
])
def test_frame_loader_names_the_options_it_takes(numbered, option, match):
    with pytest.raises(TypeError, match=match) as err:
        frame_loader(numbered, 4, **option)
    _one_line(err)


# 5. Loose values: value_range is a pair of finite numbers, the flags are bools
@pytest.mark.parametrize("value_range", ["01", b"01", (True, 2), {0, 1}, ("0", "1")])
def test_value_range_must_be_a_pair_of_numbers(numbered, value_range):
    for make in (FrameDataset, lambda p, **kw: WindowDataset(p, 3, **kw)):
        with pytest.raises(DatasetError, match=r"value_range must be \(low, high\), finite "
                                               "numbers with low < high, such as") as err:
            make(numbered, value_range=value_range)
        _one_line(err)


def _pair(container: object) -> object:
    return st.tuples(st.one_of(st.floats(), st.integers(-5, 5)),
                     st.one_of(st.floats(), st.integers(-5, 5))).map(
        lambda pair: container(list(pair)))


@settings(max_examples=120, deadline=None)
@given(value_range=st.one_of(_pair(tuple), _pair(list), _pair(np.array),
                             st.text("0123456789.", min_size=2, max_size=3),
                             st.tuples(st.booleans(), st.booleans()),
                             st.tuples(st.booleans(), st.integers(-1, 2))))
def test_value_range_is_taken_exactly_when_it_is_a_pair_of_finite_numbers(numbered,
                                                                          value_range):
    """A pair (tuple, list, array) of finite real numbers with low < high is taken as floats;
    a string (``"01"`` was (0.0, 1.0)), a bool and a bad pair are refused in one line."""
    items = value_range.tolist() if isinstance(value_range, np.ndarray) else value_range
    numbers = not isinstance(items, str) and not any(isinstance(v, bool) for v in items)
    if numbers and all(math.isfinite(v) for v in items) and items[0] < items[1]:
        data = FrameDataset(numbered, value_range=value_range)
        assert data.value_range == (float(items[0]), float(items[1]))
    else:
        with pytest.raises(DatasetError, match="value_range must be") as err:
            FrameDataset(numbered, value_range=value_range)
        _one_line(err)


@pytest.mark.parametrize("option", ["in_memory", "exclude_blank"])
@pytest.mark.parametrize("value", ["no", "yes", 1, 0, None])
def test_flags_must_be_bools(numbered, option, value):
    with pytest.raises(TypeError, match=f"{option} must be True or False, got {value!r}$") as err:
        FrameDataset(numbered, **{option: value})
    assert _one_line(err).startswith(f"{numbered}: ")
    if option == "in_memory":
        with pytest.raises(TypeError, match="in_memory must be True or False"):
            WindowDataset(numbered, 3, in_memory=value)
    assert FrameDataset(numbered, **{option: np.bool_(True)})[0].shape == SPACE.shape
