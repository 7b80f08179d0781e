"""The commit journal: a killed writer's committed episodes survive damaged HDF5 metadata."""

from __future__ import annotations

import io
import shutil
import signal
import struct
import subprocess
import sys
import time
import zlib

import h5py
import numpy as np
import pytest
from dataset_helpers import (
    ACTION_SPACE,
    FRAME_SPACE,
    assert_episode_equal,
    make_episode,
    start_child,
)
from hypothesis import given, settings
from hypothesis import strategies as st

from gan_envs.collect import CollectConfig, collect
from gan_envs.datasets import (
    CorruptDatasetError,
    DatasetError,
    RolloutReader,
    RolloutWriter,
    verify,
)
from gan_envs.datasets.format import EPISODE_DTYPE, FORMAT_VERSION
from gan_envs.datasets.journal import (
    CHUNK_DTYPE,
    INLINE_DTYPE,
    USERBLOCK_SIZE,
    Head,
    Record,
    _decode,
    _encode,
    chunk_locations,
    read_head,
    read_heads,
    read_records,
    write_head,
)
from gan_envs.datasets.reader import RECOVER_HINT

#: Signatures of the HDF5 metadata blocks a writer rewrites in place (object headers and their
#: continuation chunks; the extensible-array chunk index's header, index, super and data blocks).
METADATA_SIGNATURES = (b"OHDR", b"OCHK", b"EAHD", b"EAIB", b"EASB", b"EADB")


def _write(path, episodes, **kwargs):
    with RolloutWriter(path, FRAME_SPACE, ACTION_SPACE, env_ids=["Noise-v0"], chunk_frames=8,
                       **kwargs) as writer:
        for k in range(episodes):
            ep = make_episode(k)
            writer.add_episode(ep["observations"], ep["actions"], ep["rewards"],
                               ep["terminations"], seed=k)


def _read_all(path) -> int:
    with RolloutReader(path) as reader:
        for k in range(reader.num_episodes):
            assert_episode_equal(reader.episode(k), make_episode(k))
            assert reader.episode_info(k)["seed"] == k
        return reader.num_episodes


def _kill_after_25_commits(path, *args: str):
    child = start_child(path, *args)
    assert child.stdout.readline().strip() == "started"
    for line in child.stdout:
        if line.strip() == "committed 24":
            break
    child.send_signal(signal.SIGKILL)
    child.communicate()
    return path


@pytest.fixture(scope="module")
def killed_file(tmp_path_factory):
    """A writer killed mid-stream, after reporting episodes 0-24 committed."""
    return _kill_after_25_commits(tmp_path_factory.mktemp("killed") / "killed.h5")


def _header_chunks(data: bytes, base: int, header: int) -> list[int]:
    """Offsets of an object header (format 2) and of its continuation chunks."""
    flags = data[header + 5]  # the header's flags also shape its continuation chunks' messages
    chunks, todo = [], [(header, 0)]
    while todo:
        at, length = todo.pop()
        chunks.append(at)
        if not length:  # "OHDR", version, flags, [times], [phase change], chunk size, messages
            p = at + 6 + (16 if flags & 0x20 else 0) + (4 if flags & 0x10 else 0)
            width = 1 << (flags & 3)
            end = p + width + int.from_bytes(data[p:p + width], "little")
            p += width
        else:  # "OCHK", messages, checksum
            p, end = at + 4, at + length - 4
        while p + 4 <= end:
            kind, size = data[p], int.from_bytes(data[p + 1:p + 3], "little")
            p += 4 + (2 if flags & 0x04 else 0)
            if kind == 0x10:  # continuation: offset and length of the next chunk
                offset, size_next = struct.unpack_from("<QQ", data, p)
                todo.append((base + offset, size_next))
            p += size
    return chunks


def _metadata_blocks(path) -> list[tuple[int, bytes]]:
    """(offset, signature) of each rewritable metadata block (not the root group's, written once
    at creation)."""
    data = path.read_bytes()
    base = USERBLOCK_SIZE
    assert data[base:base + 8] == b"\x89HDF\r\n\x1a\n"
    (root,) = struct.unpack_from("<Q", data, base + 36)  # superblock v2/3: root header address
    root_chunks = set(_header_chunks(data, base, base + root))
    raw = [(int(c["offset"]), int(c["offset"]) + int(c["size"]))
           for r in read_records(path) for table in r.chunks.values() for c in table]
    blocks = []
    for sig in METADATA_SIGNATURES:
        at = data.find(sig)
        while at >= 0:
            if at not in root_chunks and not any(a <= at < b for a, b in raw):
                blocks.append((at, sig))
            at = data.find(sig, at + 1)
    return sorted(blocks)


def test_resume_recovers_every_committed_episode_whichever_metadata_block_is_torn(
        killed_file, tmp_path):
    blocks = _metadata_blocks(killed_file)
    assert {sig for _, sig in blocks} >= {b"OHDR", b"EAHD", b"EAIB", b"EADB"}
    unreadable = 0
    for at, sig in blocks:
        path = tmp_path / f"torn-{at}.h5"
        shutil.copy(killed_file, path)
        with open(path, "r+b") as f:  # what a torn write leaves: the block's checksum fails
            f.seek(at + 6)
            byte = f.read(1)
            f.seek(at + 6)
            f.write(bytes([byte[0] ^ 0xFF]))
        try:
            _read_all(path)
        except CorruptDatasetError as err:
            unreadable += 1
            assert "resume=True" in str(err)
        with RolloutWriter(path, resume=True) as writer:
            assert writer.num_episodes >= 25, (at, sig)
        assert _read_all(path) >= 25, (at, sig)
        path.unlink()
    assert unreadable >= len(blocks) // 2  # most blocks hold committed data's metadata


@pytest.mark.parametrize("record", ["newest", "oldest"])
def test_verify_reports_a_damaged_journal_and_resume_rewrites_it(tmp_path, record):
    """verify said "every checksum verified" with a journal record flipped; a resume kept the
    damaged chain, so a later kill could not be recovered past it."""
    path = tmp_path / "data.h5"
    _write(path, 5)
    records, head = read_records(path), read_head(path)
    at = (head.offset, head.size) if record == "newest" else records[1].previous
    with open(path, "r+b") as f:
        f.seek(at[0] + at[1] // 2)
        byte = f.read(1)
        f.seek(at[0] + at[1] // 2)
        f.write(bytes([byte[0] ^ 0xFF]))
    report = verify(path)
    assert not report.ok and len(report.problems) == 1
    assert report.problems[0].startswith("the commit journal")
    assert "damaged" in report.problems[0] and report.problems[0].endswith(
        "RolloutWriter(path, resume=True) (or `gan-envs collect ... --resume`) rewrites it")
    assert _read_all(path) == 5  # the reads never needed the journal
    with RolloutWriter(path, resume=True) as writer:
        assert writer.num_episodes == 5
    assert [r.episode for r in read_records(path)] == list(range(5))
    assert verify(path).ok
    with RolloutWriter(path, resume=True) as writer:  # and the chain goes on from there
        ep = make_episode(5)
        writer.add_episode(ep["observations"], ep["actions"], ep["rewards"], ep["terminations"],
                           seed=5)
    assert [r.episode for r in read_records(path)] == list(range(6)) and verify(path).ok


def test_verify_takes_a_journal_behind_or_ahead_of_a_closed_file(tmp_path):
    """A head left behind (a Ctrl-C between the row and the head) or zeroed is harmless: every
    resume brings the journal up to date first. (A first version of the check failed it.)"""
    path = tmp_path / "lagging.h5"
    _write(path, 3)
    with open(path, "r+b") as f:
        f.write(bytes(USERBLOCK_SIZE))  # the head never moved
    assert verify(path).ok
    with RolloutWriter(path, resume=True) as writer:
        assert writer.num_episodes == 3
    assert len(read_records(path)) == 3 and verify(path).ok


def test_collect_resume_recovers_a_file_readers_refuse(tmp_path):
    """docs/collect.md: a kill that tore HDF5's metadata leaves a file readers refuse "until
    --resume"; but `collect --resume` opened a reader first and stopped with its error."""
    killed = tmp_path / "killed.h5"
    child = subprocess.Popen([sys.executable, "-m", "gan_envs.cli", "collect", "CartPole-v1",
                              "--out", str(killed), "--steps", "1000000", "--num-envs", "2"],
                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        time.sleep(0.05)
        try:
            with RolloutReader(killed) as reader:
                if reader.num_episodes >= 4:
                    break
        except (DatasetError, FileNotFoundError, OSError):
            pass  # not created yet
    child.send_signal(signal.SIGKILL)
    child.wait()
    with RolloutReader(killed) as reader:
        kept = reader.num_steps
    for at, _ in _metadata_blocks(killed):  # tear blocks until one makes readers refuse it
        torn = tmp_path / "torn.h5"
        shutil.copy(killed, torn)
        with open(torn, "r+b") as f:
            f.seek(at + 6)
            byte = f.read(1)
            f.seek(at + 6)
            f.write(bytes([byte[0] ^ 0xFF]))
        try:
            RolloutReader(torn).close()
        except CorruptDatasetError as err:
            assert err.hint == RECOVER_HINT and "--resume" in str(err)
            break
    else:
        pytest.fail("no torn block made the reader refuse the file")
    summary = collect(CollectConfig(["CartPole-v1"], torn, steps=kept + 100, num_envs=2,
                                    resume=True))
    assert summary.steps == kept + 100 and summary.resumed_from_steps <= kept
    assert verify(torn).ok


@pytest.mark.parametrize("compression", ["none", "lzf"])
def test_the_journal_recovers_chunks_it_keeps_inline(tmp_path, compression):
    """Uncompressed flags and lzf's all-zero chunks have almost no non-zero bytes; their
    records keep them, and a recovery through the journal rebuilds them."""
    path = _kill_after_25_commits(tmp_path / "killed.h5", "--compression", compression)
    assert sum(len(t) for r in read_records(path) for t in r.inline.values()) > 0
    blocks = [at for at, sig in _metadata_blocks(path) if sig in (b"EAIB", b"EADB", b"EASB")]
    with open(path, "r+b") as f:  # every block of every chunk index torn: HDF5 finds nothing
        for at in blocks:
            f.seek(at + 6)
            byte = f.read(1)
            f.seek(at + 6)
            f.write(bytes([byte[0] ^ 0xFF]))
    with pytest.raises(CorruptDatasetError):
        _read_all(path)
    with RolloutWriter(path, resume=True) as writer:
        assert writer.num_episodes >= 25
    assert _read_all(path) >= 25


def test_a_format_1_1_file_resumed_keeps_records_a_1_1_reader_can_follow(tmp_path):
    path = tmp_path / "old.h5"
    with RolloutWriter(path, FRAME_SPACE, ACTION_SPACE, env_ids=["Noise-v0"], chunk_frames=8,
                       compression=None):
        pass
    with h5py.File(path, "r+") as f:
        f.attrs["format_version"] = "1.1"
    _write(path, 3, resume=True)  # uncompressed flag chunks: inline in a 1.2 file
    for record in read_records(path):
        assert not record.inline
        assert all((table["offset"] > 0).all() for table in record.chunks.values())
    head = read_head(path)
    with open(path, "rb") as f:
        f.seek(head.offset)
        assert zlib.decompress(f.read(head.size))[:8] == b"GEJREC01"
    assert _read_all(path) == 3


def test_a_recovered_file_keeps_a_journal_that_recovers_it_again(killed_file, tmp_path):
    path = tmp_path / "again.h5"
    shutil.copy(killed_file, path)
    with RolloutWriter(path, resume=True) as writer:
        n = writer.num_episodes
        ep = make_episode(n)
        writer.add_episode(ep["observations"], ep["actions"], ep["rewards"], ep["terminations"],
                           seed=n)
    records = read_records(path)
    with RolloutReader(path) as reader:
        assert len(records) == reader.num_episodes == n + 1
        np.testing.assert_array_equal(np.array([r.row for r in records]), reader.episode_table)
        assert reader.metadata["format_version"] == FORMAT_VERSION


def test_without_a_journal_a_damaged_file_is_a_one_line_error(killed_file, tmp_path):
    path = tmp_path / "nojournal.h5"
    shutil.copy(killed_file, path)
    with h5py.File(path, "r", swmr=True) as f:
        table_header = h5py.h5o.get_info(f["episodes"].id).addr + USERBLOCK_SIZE
    with open(path, "r+b") as f:
        f.write(bytes(USERBLOCK_SIZE))  # as in a format 1.0 file: no head
        f.seek(table_header + 6)
        f.write(b"\xff")
    with pytest.raises(CorruptDatasetError, match="no commit journal") as info:
        RolloutWriter(path, resume=True)
    assert "\n" not in str(info.value)


def test_resume_brings_a_lagging_journal_up_to_date(tmp_path):
    path = tmp_path / "lagging.h5"
    _write(path, 5)
    with open(path, "r+b") as f:
        f.write(bytes(USERBLOCK_SIZE))  # the head never moved
    with RolloutWriter(path, resume=True) as writer:
        assert writer.num_episodes == 5
    assert [r.episode for r in read_records(path)] == [0, 1, 2, 3, 4]
    assert read_head(path).episodes == 5


def test_resume_rewinds_a_journal_ahead_of_the_table(tmp_path):
    path = tmp_path / "ahead.h5"
    _write(path, 6)
    with h5py.File(path, "r+") as f:  # episode 5's row never landed
        row = f["episodes"][5]
        row["committed"] = 0
        f["episodes"][5] = row
    with RolloutWriter(path, resume=True) as writer:  # the journal moves back for good ...
        assert writer.num_episodes == 5
    assert read_head(path).episodes == 5
    with RolloutWriter(path, resume=True) as writer:  # ... and goes on from there
        assert writer.num_episodes == 5
        ep = make_episode(5)
        writer.add_episode(ep["observations"], ep["actions"], ep["rewards"], ep["terminations"],
                           seed=5)
    records = read_records(path)
    assert [r.episode for r in records] == list(range(6))
    assert _read_all(path) == 6


rows = st.builds(
    lambda values: np.array(tuple(values), dtype=EPISODE_DTYPE)[()],
    st.tuples(*(st.integers(0, 2**40) for _ in range(3)), st.floats(allow_nan=False),
              st.integers(0, 1), st.integers(0, 1), st.integers(-1, 100), st.integers(-1, 2**40),
              st.just(1)))
chunk_tables = st.lists(st.tuples(st.integers(0, 2**40), st.integers(0, 2**50),
                                  st.integers(0, 2**31), st.integers(0, 2**31),
                                  st.integers(0, 2**32 - 1)), max_size=40)


inline_tables = st.lists(st.tuples(st.integers(0, 2**32 - 1), st.integers(0, 2**32 - 1),
                                   st.integers(1, 255)), max_size=20)


@settings(max_examples=60, deadline=None)
@given(episode=st.integers(0, 10**6), row=rows,
       tables=st.dictionaries(st.sampled_from(["observations", "actions", "rewards"]),
                              chunk_tables),
       inline=st.dictionaries(st.sampled_from(["rewards", "terminations"]), inline_tables),
       previous=st.none() | st.tuples(st.integers(0, 2**50), st.integers(1, 2**22)))
def test_records_round_trip(episode, row, tables, inline, previous):
    chunks = {name: np.array(t, CHUNK_DTYPE) for name, t in tables.items()}
    kept = {name: np.array(t, INLINE_DTYPE) for name, t in inline.items()}
    layout = {"chunk_frames": 8, "compression": "gzip", "compression_level": 2,
              "blank_frames": False}
    got = _decode(_encode(Record(episode, row, chunks, layout, previous, kept)), "test")
    assert (got.episode, got.layout, got.previous) == (episode, layout, previous)
    assert got.row.tobytes() == row.tobytes()
    assert list(got.chunks) == list(chunks) and list(got.inline) == list(kept)
    for name in chunks:
        np.testing.assert_array_equal(got.chunks[name], chunks[name])
    for name in kept:
        np.testing.assert_array_equal(got.inline[name], kept[name])


@settings(max_examples=60, deadline=None)
@given(sizes=st.lists(st.integers(1, 300), min_size=1, max_size=6), data=st.data())
def test_chunks_kept_inline_come_back_byte_for_byte(sizes, data):
    """A record keeps chunks with fewer than 8 non-zero bytes as those bytes; stored_chunks
    rebuilds each exactly."""
    from gan_envs.datasets.journal import _nonzero_bytes

    chunks, by_address = [], data.draw(st.lists(st.booleans(), min_size=len(sizes),
                                                max_size=len(sizes)))
    for size in sizes:
        raw = np.zeros(size, np.uint8)
        where = data.draw(st.lists(st.integers(0, size - 1), max_size=7, unique=True))
        raw[where] = data.draw(st.lists(st.integers(1, 255), min_size=len(where),
                                        max_size=len(where)))
        chunks.append(raw.tobytes())
    file = io.BytesIO(bytes(512))  # chunks kept by address sit after a user block
    rows, kept = [], []
    for k, (chunk, addressed) in enumerate(zip(chunks, by_address, strict=True)):
        offset = 0
        if addressed:
            offset = file.seek(0, io.SEEK_END)
            file.write(chunk)
        else:
            kept.append(_nonzero_bytes(k, chunk))
        rows.append((8 * k, offset, len(chunk), 0, zlib.crc32(chunk)))
    inline = {"rewards": np.concatenate(kept)} if kept else {}
    record = Record(0, np.zeros((), EPISODE_DTYPE)[()], {"rewards": np.array(rows, CHUNK_DTYPE)},
                    {}, None, inline)
    stored = _encode(record)
    assert stored and zlib.decompress(stored)[:8] == (b"GEJREC02" if kept else b"GEJREC01")
    got = _decode(stored, "test")
    rebuilt = [data for _, data, _, _ in got.stored_chunks("rewards", file)]
    assert rebuilt == chunks


@settings(max_examples=60, deadline=None)
@given(first=st.integers(1, 10**6), flip=st.integers(0, 35))
def test_the_newest_intact_head_slot_wins(tmp_path_factory, first, flip):
    path = tmp_path_factory.mktemp("head") / "head.bin"
    path.write_bytes(bytes(USERBLOCK_SIZE))
    fd = open(path, "r+b")
    try:
        write_head(fd.fileno(), Head(first, 4096, 100))
        write_head(fd.fileno(), Head(first + 1, 8192, 200))
        assert read_head(path) == Head(first + 1, 8192, 200)
        slot = 256 * ((first + 1) % 2)  # tear the newest slot: the older one is read
        data = bytearray(path.read_bytes())
        data[slot + flip] ^= 0x01
        path.write_bytes(bytes(data))
        assert read_head(path) == Head(first, 4096, 100)
    finally:
        fd.close()


def test_an_episode_too_long_for_its_journal_record_is_refused_before_any_write(tmp_path,
                                                                                monkeypatch):
    from gymnasium.spaces import Box

    from gan_envs.datasets import journal

    monkeypatch.setattr(journal, "LOG_CHUNK", 1 << 14)  # records of at most 16 KiB
    path = tmp_path / "long.h5"
    state = Box(-1, 1, (2,), np.float32)
    limit = journal.max_steps(1, 5)
    assert 10 < limit < 30
    with RolloutWriter(path, state, ACTION_SPACE, chunk_frames=1) as writer:
        n = limit + 1
        with pytest.raises(DatasetError, match=f"episode of {n} steps .* chunk_frames=1"):
            writer.add_episode(np.zeros((n + 1, 2), np.float32), np.zeros(n, np.int64),
                               np.zeros(n, np.float32))
        writer.begin_episode(np.zeros(2, np.float32))
        for _ in range(limit):
            writer.add_step(0, 0.0, np.zeros(2, np.float32))
        with pytest.raises(DatasetError, match=f"episode of {n} steps"):
            writer.add_step(0, 0.0, np.zeros(2, np.float32))
        writer.commit_episode()
    with RolloutReader(path) as reader:
        assert reader.num_episodes == 1 and reader.episode_info(0)["length"] == limit
    assert len(read_records(path)[0].chunks["observations"]) == limit + 1


@pytest.mark.parametrize("compression", ["gzip", "lzf", None])
def test_every_journaled_chunk_address_holds_that_chunks_stored_bytes(tmp_path, compression):
    path = tmp_path / "where.h5"
    with RolloutWriter(path, FRAME_SPACE, ACTION_SPACE, chunk_frames=8,
                       compression=compression) as writer:
        for k in range(12):  # whole and step-by-step episodes; many equal all-zero chunks
            ep = make_episode(k)
            if k == 4:  # a discarded longer episode: its chunks get rewritten by the next ones
                long = make_episode(40)
                writer.begin_episode(long["observations"][0])
                for t in range(len(long["actions"])):
                    writer.add_step(long["actions"][t], 0.0, long["observations"][t + 1])
                writer.discard_episode()
            if k % 2:
                writer.begin_episode(ep["observations"][0])
                for t in range(len(ep["actions"])):
                    writer.add_step(ep["actions"][t], 0.0, ep["observations"][t + 1])
                writer.commit_episode()
            else:
                writer.add_episode(ep["observations"], ep["actions"], ep["rewards"])
    records = read_records(path)
    assert len(records) == 12
    inline = 0
    with h5py.File(path, "r") as f, open(path, "rb") as raw:
        for record in records:
            for name, table in record.chunks.items():
                hdf5 = chunk_locations(f[name])
                offsets = dict(zip(table["row"].tolist(), table["offset"].tolist(), strict=True))
                for first, data, mask, crc in record.stored_chunks(name, raw):
                    stored_mask, stored = f[name].id.read_direct_chunk(
                        (first, *(0,) * (f[name].ndim - 1)))
                    assert data == stored and mask == stored_mask
                    assert crc == zlib.crc32(stored)
                    if offsets[first] == 0:  # kept in the record: almost no non-zero bytes
                        assert len(stored) - stored.count(0) < 8
                        inline += 1
                    if name == "observations":  # noise frames: every chunk is unique
                        assert (offsets[first], len(data)) == hdf5[first][:2]
    # all-zero reward chunks, stored as they are or as lzf's few bytes (gzip's have more)
    assert (inline > 0) == (compression != "gzip")


def test_recovery_checks_each_chunk_against_its_journal_crc(killed_file, tmp_path):
    path = tmp_path / "badchunk.h5"
    shutil.copy(killed_file, path)
    chunk = read_records(path)[3].chunks["observations"][0]
    with h5py.File(path, "r", swmr=True) as f:
        table_header = h5py.h5o.get_info(f["episodes"].id).addr + USERBLOCK_SIZE
    with open(path, "r+b") as f:
        for at in (table_header + 6, int(chunk["offset"]) + 20):  # HDF5's table and one chunk
            f.seek(at)
            byte = f.read(1)
            f.seek(at)
            f.write(bytes([byte[0] ^ 0xFF]))
    with pytest.raises(CorruptDatasetError, match="observations chunk at row .* of episode 3 "
                                                  "does not match its commit journal"):
        RolloutWriter(path, resume=True)


def test_a_damaged_newest_head_falls_back_to_the_older_slot(tmp_path):
    path = tmp_path / "heads.h5"
    _write(path, 5)
    assert [h.episodes for h in read_heads(path)] == [5, 4]
    with open(path, "r+b") as f:  # the newest slot now points at garbage (with a valid CRC)
        write_head(f.fileno(), Head(5, USERBLOCK_SIZE, 40))
    assert [r.episode for r in read_records(path)] == [0, 1, 2, 3]


def test_a_recovery_without_space_for_its_copy_is_a_one_line_error(killed_file, tmp_path):
    path = tmp_path / "nospace.h5"
    shutil.copy(killed_file, path)
    before = path.read_bytes()
    limit = len(before) // 2  # the copy cannot grow past half the original's size
    child = start_child(path, "--resume", "--episodes", "40", "--fsize-limit", str(limit))
    out, err = child.communicate(timeout=60)
    assert child.returncode == 0, err
    errors = [line for line in out.splitlines() if line.startswith("error: ")]
    assert errors, out
    assert str(path) in errors[0] and "needs space for a copy" in errors[0]
    assert "the file is unchanged" in errors[0]
    assert path.read_bytes() == before
    assert not list(tmp_path.glob(".nospace.h5.*.tmp"))
    with RolloutWriter(path, resume=True) as writer:  # with space again it recovers
        assert writer.num_episodes >= 25
