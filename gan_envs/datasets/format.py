"""The rollout file format, version 1.0: names, the episode table, spaces as JSON, the layout.

``docs/dataset-format.md`` describes the format for readers outside gan-envs; this module is
its single source of truth inside gan-envs. One dataset is one HDF5 file:

* time arrays ``observations``, ``actions``, ``rewards``, ``terminations``, ``truncations`` and
  the optional ``blank_frame``, resizable along axis 0 and chunked ``chunk_frames`` rows at a time;
* ``episodes``, the episode table and commit record (:data:`EPISODE_DTYPE`, one row per chunk);
* root attributes with the metadata (:data:`METADATA_KEYS`).

Every episode starts on a chunk boundary, so a chunk never holds data of two episodes and the
chunks of a committed episode are never written again.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from importlib import metadata as importlib_metadata
from typing import Any

import gymnasium as gym
import numpy as np
from gymnasium import spaces

from gan_envs.datasets.errors import CorruptDatasetError, DatasetError, DatasetVersionError

__all__ = [
    "EPISODE_DTYPE",
    "FORMAT_NAME",
    "FORMAT_VERSION",
    "METADATA_KEYS",
    "OBSERVATION_ARRAYS",
    "STEP_ARRAYS",
    "align_up",
    "check_format",
    "check_values",
    "committed_rows",
    "create_layout",
    "library_versions",
    "read_metadata",
    "space_from_json",
    "space_storage",
    "space_to_dict",
    "space_to_json",
    "write_metadata",
]

FORMAT_NAME = "gan-envs-rollouts"
FORMAT_VERSION = "1.2"
SUPPORTED_MAJOR = 1

#: Arrays with one row per observation (N + 1 per episode).
OBSERVATION_ARRAYS = ("observations", "blank_frame")
#: Arrays with one row per step (N per episode).
STEP_ARRAYS = ("actions", "rewards", "terminations", "truncations")

#: One row per committed episode; a row counts only when ``committed == 1``.
EPISODE_DTYPE = np.dtype(
    [
        ("obs_offset", "<i8"),
        ("step_offset", "<i8"),
        ("length", "<i8"),
        ("return", "<f8"),
        ("terminated", "u1"),
        ("truncated", "u1"),
        ("env_index", "<i4"),
        ("seed", "<i8"),
        ("committed", "u1"),
    ]
)

#: Root attributes; those in ``JSON_KEYS`` hold JSON text, the others plain strings or ints.
METADATA_KEYS = (
    "format",
    "format_version",
    "chunk_frames",
    "created",
    "command",
    "policy",
    "seed",
    "env_ids",
    "env_specs",
    "observation_space",
    "action_space",
    "wrappers",
    "versions",
    "user_metadata",
)
JSON_KEYS = frozenset(
    {"seed", "env_ids", "env_specs", "observation_space", "action_space", "wrappers",
     "versions", "user_metadata"}
)

SUPPORTED_SPACES = "Box, Discrete, MultiDiscrete and MultiBinary"


# ---------------------------------------------------------------------------------------------
# Spaces as JSON
# ---------------------------------------------------------------------------------------------
def _bound_to_json(values: np.ndarray) -> Any:
    """A Box bound as one number when uniform, else nested lists (inf as JSON Infinity)."""
    flat = values.reshape(-1)
    if flat.size and np.all(flat == flat[0]):
        return flat[0].item()
    return values.tolist()


def space_to_json(space: gym.Space) -> str:
    """Describe a Box, Discrete, MultiDiscrete or MultiBinary space as JSON text.

    Example:
        >>> from gymnasium.spaces import Box
        >>> space_to_json(Box(0, 255, (3, 64, 64), "uint8"))
        '{"type": "Box", "shape": [3, 64, 64], "dtype": "uint8", "low": 0, "high": 255}'
    """
    return json.dumps(space_to_dict(space))


def space_to_dict(space: gym.Space) -> dict[str, Any]:
    """The JSON-friendly dict behind :func:`space_to_json`."""
    if isinstance(space, spaces.Box):
        doc: dict[str, Any] = {
            "type": "Box", "shape": list(space.shape), "dtype": space.dtype.name,
            "low": _bound_to_json(space.low), "high": _bound_to_json(space.high),
        }
    elif isinstance(space, spaces.Discrete):
        doc = {"type": "Discrete", "n": int(space.n), "start": int(space.start)}
    elif isinstance(space, spaces.MultiDiscrete):
        doc = {"type": "MultiDiscrete", "nvec": space.nvec.tolist(),
               "start": space.start.tolist(), "dtype": space.dtype.name}
    elif isinstance(space, spaces.MultiBinary):
        n = space.n
        doc = {"type": "MultiBinary", "n": int(n) if np.ndim(n) == 0 else np.asarray(n).tolist()}
    else:
        raise DatasetError(f"rollout files store {SUPPORTED_SPACES} spaces, got {space}")
    return doc


def space_from_json(text: str | bytes | Mapping[str, Any]) -> gym.Space:
    """Rebuild the space written by :func:`space_to_json` (from its text or its parsed dict).

    Example:
        >>> space_from_json('{"type": "Discrete", "n": 4, "start": 0}')
        Discrete(4)
    """
    doc = dict(text) if isinstance(text, Mapping) else json.loads(text)
    kind = doc.get("type") if isinstance(doc, dict) else None
    if kind == "Box":
        dtype = np.dtype(doc["dtype"])
        shape = tuple(doc["shape"])
        low = np.broadcast_to(np.asarray(doc["low"]), shape).astype(dtype)
        high = np.broadcast_to(np.asarray(doc["high"]), shape).astype(dtype)
        return spaces.Box(low=low, high=high, shape=shape, dtype=dtype)
    if kind == "Discrete":
        return spaces.Discrete(doc["n"], start=doc.get("start", 0))
    if kind == "MultiDiscrete":
        return spaces.MultiDiscrete(np.asarray(doc["nvec"]), dtype=doc.get("dtype", "int64"),
                                    start=np.asarray(doc["start"]))
    if kind == "MultiBinary":
        return spaces.MultiBinary(doc["n"])
    if not isinstance(kind, str) or not kind:
        raise CorruptDatasetError(f"{json.dumps(doc)[:80]} is not a space description; the "
                                  "file's metadata is damaged, copy it again from its source")
    raise DatasetError(f"unknown space type {kind!r} in {json.dumps(doc)[:80]}; upgrade gan-envs")


def space_storage(space: gym.Space) -> tuple[tuple[int, ...], np.dtype]:
    """The (per-row shape, dtype) an array of values of ``space`` is stored with."""
    if isinstance(space, spaces.Box):
        return tuple(space.shape), space.dtype
    if isinstance(space, spaces.Discrete):
        return (), np.dtype(np.int64)
    if isinstance(space, spaces.MultiDiscrete):
        return tuple(space.nvec.shape), space.dtype
    if isinstance(space, spaces.MultiBinary):
        return tuple(space.shape), np.dtype(np.int8)
    raise DatasetError(f"rollout files store {SUPPORTED_SPACES} spaces, got {space}")


# ---------------------------------------------------------------------------------------------
# Validation of values against spaces (vectorised over a leading batch axis)
# ---------------------------------------------------------------------------------------------
_KINDS_ACCEPTED = {"u": "uib", "i": "uib", "f": "uif", "b": "b"}


def check_values(space: gym.Space, values: Any, what: str, *, single: bool = False) -> np.ndarray:
    """Return ``values`` (a batch: leading axis = rows) as the stored dtype, or raise.

    With ``single=True`` ``values`` is one value and a batch of one row comes back. Raises
    :class:`DatasetError` naming ``what`` (and the first offending row of a batch) when the
    shape, the kind of number or a bound does not fit ``space``; nothing is changed or clipped.
    """
    shape, dtype = space_storage(space)
    try:
        arr = np.asarray(values)[None] if single else np.asarray(values)
    except ValueError:  # numpy: "inhomogeneous shape"
        raise DatasetError(f"{what}: rows of different shapes (a ragged list); pass rows of shape "
                           f"{shape} for {space}") from None
    if arr.ndim != len(shape) + 1 or arr.shape[1:] != shape:
        got = arr.shape[1:] if arr.ndim else ()
        raise DatasetError(f"{what} of shape {got} does not fit {space} (rows of shape {shape})")
    if arr.dtype.kind not in _KINDS_ACCEPTED.get(dtype.kind, dtype.kind):
        raise DatasetError(f"{what} of dtype {arr.dtype} does not fit {space}")
    if arr.shape[0] == 0:
        return arr.astype(dtype, copy=False)
    if isinstance(space, spaces.Box):
        low, high = space.low, space.high
        info = np.iinfo(arr.dtype) if arr.dtype.kind in "ui" else None
        if info is not None and arr.dtype == dtype and (low <= info.min).all() and (
                high >= info.max).all():
            return arr  # every value of this dtype is inside (uint8 frames in [0, 255])
    elif isinstance(space, spaces.Discrete):
        low, high = space.start, space.start + space.n - 1
    elif isinstance(space, spaces.MultiDiscrete):
        low, high = space.start, space.start + space.nvec - 1
    else:
        low, high = 0, 1
    inside = (arr >= low) & (arr <= high)
    if not inside.all():
        row = int(np.argmin(inside.reshape(len(arr), -1).all(axis=1)))
        where = what if single else f"{what}[{row}]"
        if arr.dtype.kind == "f" and np.isnan(arr[row]).any():
            raise DatasetError(f"{where} holds NaN, which {space} does not contain")
        raise DatasetError(f"{where} is outside {space}")
    with np.errstate(over="ignore"):
        stored = arr.astype(dtype, copy=False)
    if dtype.kind == "f" and arr.dtype != dtype:  # finite float64 beyond float32's range
        lost = np.isinf(stored) & ~np.isinf(arr)
        if lost.any():
            row = int(np.argmax(lost.reshape(len(arr), -1).any(axis=1)))
            where = what if single else f"{what}[{row}]"
            raise DatasetError(f"{where} holds a value too large for {dtype} (the dtype of "
                               f"{space})")
    return stored


# ---------------------------------------------------------------------------------------------
# Layout, metadata, versions
# ---------------------------------------------------------------------------------------------
def create_layout(
    h5file: Any,
    observation_space: gym.Space,
    action_space: gym.Space,
    *,
    chunk_frames: int,
    compression: str | None,
    compression_level: int | None,
    blank_frames: bool,
) -> None:
    """Create the empty arrays and the episode table of a version 1.0 file in ``h5file``."""
    filters: dict[str, Any] = {"fletcher32": True}
    if compression is not None:
        filters["compression"] = compression
        if compression == "gzip":
            filters["compression_opts"] = compression_level

    def time_array(name: str, shape: tuple[int, ...], dtype: Any) -> None:
        h5file.create_dataset(name, shape=(0, *shape), maxshape=(None, *shape), dtype=dtype,
                              chunks=(chunk_frames, *shape), fillvalue=0, **filters)

    time_array("observations", *space_storage(observation_space))
    if blank_frames:
        time_array("blank_frame", (), np.uint8)
    time_array("actions", *space_storage(action_space))
    time_array("rewards", (), np.float32)
    time_array("terminations", (), np.uint8)
    time_array("truncations", (), np.uint8)
    h5file.create_dataset("episodes", shape=(0,), maxshape=(None,), dtype=EPISODE_DTYPE,
                          chunks=(1,), fletcher32=True)


def write_metadata(h5file: Any, values: Mapping[str, Any]) -> None:
    """Write the root attributes (JSON-encoding those in ``JSON_KEYS``)."""
    for key in METADATA_KEYS:
        value = values[key]
        h5file.attrs[key] = json.dumps(value) if key in JSON_KEYS else value


def read_metadata(attrs: Mapping[str, Any], name: str = "the file") -> dict[str, Any]:
    """Decode the root attributes into a dict (JSON ones parsed); unknown keys are kept.

    ``name`` (the file's path) starts the error raised for a damaged JSON attribute."""
    out: dict[str, Any] = {}
    for key, value in attrs.items():
        if isinstance(value, bytes):
            value = value.decode()
        elif isinstance(value, np.generic):
            value = value.item()
        try:
            out[key] = json.loads(value) if key in JSON_KEYS and isinstance(value, str) else value
        except ValueError as err:  # a damaged attribute
            raise CorruptDatasetError(f"{name}: its {key!r} attribute is not valid JSON ({err}); "
                                      "the file is damaged, copy it again from its source"
                                      ) from None
    return out


def check_format(attrs: Mapping[str, Any], name: str) -> None:
    """Raise unless ``attrs`` belong to a gan-envs rollout file of a supported major version."""
    fmt = attrs.get("format")
    fmt = fmt.decode() if isinstance(fmt, bytes) else fmt
    if not isinstance(fmt, str) or fmt != FORMAT_NAME:
        raise DatasetError(f"{name}: not a gan-envs rollout file (its 'format' attribute is "
                           f"{fmt!r}, not {FORMAT_NAME!r}); pass a file written by RolloutWriter")
    version = attrs.get("format_version")
    version = version.decode() if isinstance(version, bytes) else str(version)
    try:
        major = int(version.split(".")[0])
    except ValueError:
        raise DatasetError(f"{name}: unreadable format_version {version!r}; the file is "
                           "damaged or was not written by gan-envs") from None
    if major > SUPPORTED_MAJOR:
        raise DatasetVersionError(f"{name}: format_version {version} is newer than this gan-envs "
                                  f"understands ({SUPPORTED_MAJOR}.x); upgrade gan-envs")
    if major < SUPPORTED_MAJOR:
        raise DatasetVersionError(f"{name}: format_version {version} is older than this gan-envs "
                                  f"understands ({SUPPORTED_MAJOR}.x); install an older gan-envs")


def library_versions() -> dict[str, str | None]:
    """Versions of the packages that shape the data (None for one that is not installed)."""
    import h5py

    out: dict[str, str | None] = {}
    for dist in ("gan-envs", "gymnasium", "ale-py", "h5py", "numpy"):
        try:
            out[dist] = importlib_metadata.version(dist)
        except importlib_metadata.PackageNotFoundError:
            out[dist] = None
    out["hdf5"] = h5py.version.hdf5_version
    return out


def align_up(value: int, chunk: int) -> int:
    """The smallest multiple of ``chunk`` that is >= ``value``."""
    return int(math.ceil(value / chunk) * chunk)


def committed_rows(table: np.ndarray) -> np.ndarray:
    """The committed prefix of an episode table: rows up to the first with ``committed != 1``."""
    flags = np.asarray(table["committed"]) == 1
    end = len(flags) if flags.all() else int(np.argmin(flags))
    return np.asarray(table[:end])
