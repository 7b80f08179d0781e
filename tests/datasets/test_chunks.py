"""Chunks encoded in Python: byte-for-byte HDF5's own (exact) or zlib-ng's, read back alike."""

from __future__ import annotations

import h5py
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from gan_envs.datasets.chunks import ChunkEncoder, fletcher32

SETTINGS = settings(max_examples=40, deadline=None,
                    suppress_health_check=[HealthCheck.function_scoped_fixture])
DTYPES = [np.uint8, np.float32, np.int64]


def _stored(tmp_path, rows: np.ndarray, **filters) -> tuple[bytes, ChunkEncoder | None]:
    with h5py.File(tmp_path / "hdf5.h5", "w") as f:
        ds = f.create_dataset("x", data=rows, chunks=rows.shape, fletcher32=True, **filters)
        mask, stored = ds.id.read_direct_chunk((0,) * rows.ndim)
        assert mask == 0
        return stored, ChunkEncoder.for_dataset(ds, exact=True)


def _read_back(tmp_path, rows: np.ndarray, stored: bytes, **filters) -> np.ndarray:
    """Write ``stored`` as the only chunk of a fresh dataset and read it through HDF5."""
    with h5py.File(tmp_path / "direct.h5", "w") as f:
        ds = f.create_dataset("x", shape=rows.shape, dtype=rows.dtype, chunks=rows.shape,
                              fletcher32=True, **filters)
        ds.id.write_direct_chunk((0,) * rows.ndim, stored)
    with h5py.File(tmp_path / "direct.h5", "r") as f:
        return f["x"][...]


@SETTINGS
@given(seed=st.integers(0, 2**32 - 1), dtype=st.sampled_from(DTYPES),
       shape=st.lists(st.integers(1, 9), min_size=1, max_size=3),
       level=st.one_of(st.none(), st.integers(0, 9)), runs=st.booleans())
def test_encoder_matches_hdf5_filters(tmp_path, seed, dtype, shape, level, runs):
    rng = np.random.default_rng(seed)
    rows = rng.integers(0, 4 if runs else 256, shape).astype(dtype)  # compressible or not
    filters = {} if level is None else {"compression": "gzip", "compression_opts": level}
    stored, encoder = _stored(tmp_path, rows, **filters)
    assert encoder is not None and encoder.level == level and encoder.exact
    assert encoder.encode(rows) == stored
    fast = ChunkEncoder(level)  # zlib-ng: other bytes, same rows, valid checksum
    np.testing.assert_array_equal(_read_back(tmp_path, rows, fast.encode(rows), **filters), rows)


@pytest.mark.parametrize("nbytes", [1, 2, 3, 5, 720, 721, 1441])
def test_fletcher32_matches_hdf5_on_odd_and_block_sized_lengths(tmp_path, nbytes):
    rows = np.random.default_rng(nbytes).integers(0, 256, nbytes).astype(np.uint8)
    stored, _ = _stored(tmp_path, rows)
    assert int.from_bytes(stored[-4:], "little") == fletcher32(rows.tobytes())
    assert fletcher32(bytes(nbytes)) == 0  # all-zero data sums to zero
    assert fletcher32(b"\xff\xff") == 0xFFFFFFFF  # a multiple of 65535 reads 65535, not 0


@pytest.mark.parametrize("filters", [{"compression": "lzf"},
                                     {"compression": "gzip", "shuffle": True}])
def test_pipelines_it_cannot_reproduce_are_left_to_hdf5(tmp_path, filters):
    _, encoder = _stored(tmp_path, np.zeros((4, 3), np.uint8), **filters)
    assert encoder is None


def test_direct_chunks_read_back_and_a_flipped_byte_is_caught(tmp_path):
    rows = np.random.default_rng(0).integers(0, 3, (16, 3, 8, 8)).astype(np.uint8)
    path = tmp_path / "direct.h5"
    with h5py.File(path, "w") as f:
        ds = f.create_dataset("x", shape=(0, 3, 8, 8), maxshape=(None, 3, 8, 8),
                              chunks=(16, 3, 8, 8), dtype=np.uint8, compression="gzip",
                              compression_opts=3, fletcher32=True)
        ds.resize(32, axis=0)
        encoder = ChunkEncoder.for_dataset(ds)
        ds.id.write_direct_chunk((0, 0, 0, 0), encoder.encode(rows))
        ds.id.write_direct_chunk((16, 0, 0, 0), encoder.encode(rows[::-1]))
    with h5py.File(path, "r") as f:
        np.testing.assert_array_equal(f["x"][:16], rows)
        np.testing.assert_array_equal(f["x"][16:], rows[::-1])
        offset = f["x"].id.get_chunk_info(1).byte_offset
    with open(path, "r+b") as raw:
        raw.seek(offset + 5)
        byte = raw.read(1)
        raw.seek(offset + 5)
        raw.write(bytes([byte[0] ^ 0xFF]))
    with h5py.File(path, "r") as f:
        np.testing.assert_array_equal(f["x"][:16], rows)
        with pytest.raises(OSError):
            f["x"][16:]
