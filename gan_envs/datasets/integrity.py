"""Structure checks of a rollout file, run when a reader opens it (and by ``verify``).

A damaged file (a copy cut short, bits flipped, attributes or tables rewritten by another
program) must be refused with one line naming the file, what is wrong and the fix, not read as
an IndexError three calls later or a 7 GiB allocation. These checks look only at what opening
reads anyway (the attributes, the dataset kinds and shapes, the episode table), vectorised over
the table: no chunk is read.

- :func:`metadata_fields` checks the attributes the reader relies on and returns them typed;
- :func:`check_datasets` checks that the arrays are datasets and the table has its fields;
- :func:`check_storage` checks that observations and actions are stored as their spaces say;
- :func:`table_problems` lists every episode whose row does not fit the arrays.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import gymnasium as gym
import numpy as np

from gan_envs.datasets.errors import CorruptDatasetError, DatasetError
from gan_envs.datasets.format import (
    EPISODE_DTYPE,
    OBSERVATION_ARRAYS,
    STEP_ARRAYS,
    space_from_json,
    space_storage,
)

__all__ = ["check_datasets", "check_storage", "metadata_fields", "table_problems"]

_COPY_AGAIN = "the file is damaged: copy it again from its source"


def metadata_fields(metadata: Mapping[str, Any], path: str
                    ) -> tuple[gym.Space, gym.Space, list[str], int]:
    """The observation space, action space, env ids and chunk length a file records.

    Raises:
        CorruptDatasetError: one of them is missing or is not what a writer stores.
        DatasetError: a space type this gan-envs does not know (a newer writer's).
    """
    spaces = []
    for key in ("observation_space", "action_space"):
        if metadata.get(key) is None:
            raise CorruptDatasetError(f"{path}: it has no {key} attribute; {_COPY_AGAIN}")
        try:
            spaces.append(space_from_json(metadata[key]))
        except DatasetError as err:
            raise type(err)(f"{path}: {err}") from None
        except Exception as err:  # noqa: BLE001 - any malformed description: damaged
            raise CorruptDatasetError(
                f"{path}: its {key} attribute {str(metadata.get(key))[:60]!r} is not a space "
                f"description ({type(err).__name__}: {str(err).splitlines()[0] if str(err) else ''}"
                f"); {_COPY_AGAIN}") from None
    env_ids = metadata.get("env_ids")
    if not isinstance(env_ids, list) or not all(isinstance(e, str) and e for e in env_ids):
        raise CorruptDatasetError(f"{path}: its env_ids attribute is {str(env_ids)[:60]!r}, not "
                                  f"a list of env id strings; {_COPY_AGAIN}")
    chunk_frames = metadata.get("chunk_frames")
    if isinstance(chunk_frames, bool) or not isinstance(chunk_frames, (int, np.integer)) \
            or chunk_frames < 1:
        raise CorruptDatasetError(f"{path}: its chunk_frames attribute is {chunk_frames!r}, not "
                                  f"a whole number >= 1; {_COPY_AGAIN}")
    return spaces[0], spaces[1], list(env_ids), int(chunk_frames)


def check_datasets(datasets: Mapping[str, Any], path: str) -> None:
    """Each array is an HDF5 dataset with one row per frame or step, and the episode table a
    dataset with every field the format defines."""
    for name, ds in datasets.items():
        shape = getattr(ds, "shape", None)
        if shape is None or getattr(ds, "dtype", None) is None:
            raise CorruptDatasetError(f"{path}: its {name!r} is not a dataset (an HDF5 "
                                      f"{type(ds).__name__}); {_COPY_AGAIN}")
        if len(shape) == 0:
            raise CorruptDatasetError(f"{path}: its {name!r} dataset holds a single value, not "
                                      f"rows; {_COPY_AGAIN}")
    table = datasets["episodes"]
    missing = [f for f in EPISODE_DTYPE.names if table.dtype.names is None
               or f not in table.dtype.names]
    if missing or len(table.shape) != 1:
        raise CorruptDatasetError(f"{path}: its episode table lacks the field(s) "
                                  f"{', '.join(missing) or '(it is not one row per episode)'}; "
                                  f"{_COPY_AGAIN}")
    for name in ("blank_frame", "terminations", "truncations"):
        if name in datasets and len(datasets[name].shape) != 1:
            raise CorruptDatasetError(f"{path}: its {name!r} dataset has shape "
                                      f"{datasets[name].shape}, not one flag per row; "
                                      f"{_COPY_AGAIN}")
    if "rewards" in datasets and datasets["rewards"].dtype.kind != "f":
        raise CorruptDatasetError(f"{path}: its rewards are stored as {datasets['rewards'].dtype}"
                                  f", not floats; {_COPY_AGAIN}")


def check_storage(datasets: Mapping[str, Any], observation_space: gym.Space,
                  action_space: gym.Space, path: str) -> None:
    """Refuse observations or actions stored with another row shape or kind of number than
    the spaces the file records (the writer stores them as :func:`space_storage` says)."""
    for name, key, space in (("observations", "observation_space", observation_space),
                             ("actions", "action_space", action_space)):
        shape, dtype = space_storage(space)
        ds = datasets[name]
        got_shape, got = tuple(ds.shape[1:]), np.dtype(ds.dtype)
        if got_shape != shape or (got.kind, got.itemsize) != (dtype.kind, dtype.itemsize):
            raise CorruptDatasetError(
                f"{path}: its {name} are stored as rows of shape {got_shape} and dtype {got}, "
                f"but its {key} attribute is {space} (rows of shape {shape}, {dtype}); the "
                "file is damaged: copy it again from its source")


def table_problems(table: np.ndarray, extents: Mapping[str, int], chunk_frames: int,
                   num_env_ids: int) -> list[tuple[int, str]]:
    """``(episode, problem)`` for every committed row that does not fit the arrays.

    ``extents``: the number of rows of each array. Each episode starts on a chunk boundary at
    or after the previous one's end and stays inside the arrays; its length is at least one
    step; its env index names one of the file's env ids (or is -1: none).

    Example:
        >>> table = np.zeros(2, dtype=[("obs_offset", "<i8"), ("step_offset", "<i8"),
        ...                            ("length", "<i8"), ("env_index", "<i4")])
        >>> table["length"] = [3, 1000]
        >>> table["obs_offset"], table["step_offset"] = [0, 16], [0, 16]
        >>> [(episode, problem[:45]) for episode, problem in table_problems(
        ...     table, {"observations": 32, "actions": 32}, 16, 1)]
        [(1, 'episode 1: reaches past the end of the arrays')]
    """
    t = int(chunk_frames)
    n = table["length"].astype(np.int64)
    obs0 = table["obs_offset"].astype(np.int64)
    step0 = table["step_offset"].astype(np.int64)
    env = table["env_index"].astype(np.int64)
    obs_rows = int(min(extents[a] for a in OBSERVATION_ARRAYS if a in extents))
    step_rows = int(min(extents[a] for a in STEP_ARRAYS if a in extents))
    found: list[tuple[int, str]] = []
    for i in np.flatnonzero(n < 1):
        found.append((int(i), f"episode {i}: length {n[i]} (an episode has at least one step)"))
    ok = n >= 1
    obs_end, step_end = obs0 + n + 1, step0 + n
    free_obs = np.concatenate([[0], -(-obs_end // t) * t])[:-1]  # the previous end, aligned up
    free_step = np.concatenate([[0], -(-step_end // t) * t])[:-1]
    misplaced = ok & ((obs0 % t != 0) | (step0 % t != 0) | (obs0 < free_obs)
                      | (step0 < free_step))
    for i in np.flatnonzero(misplaced):
        found.append((int(i), f"episode {i}: offsets {obs0[i]}/{step0[i]} overlap the previous "
                              f"episode or miss a chunk boundary ({t} rows)"))
    past = ok & ((obs0 < 0) | (step0 < 0) | (obs_end > obs_rows) | (step_end > step_rows))
    for i in np.flatnonzero(past):
        found.append((int(i), f"episode {i}: reaches past the end of the arrays "
                              f"({obs_end[i] - obs0[i]:,} observation rows from row {obs0[i]}, "
                              f"the file has {obs_rows:,})"))
    for i in np.flatnonzero((env < -1) | (env >= num_env_ids)):
        found.append((int(i), f"episode {i}: env_index {env[i]} is not one of {num_env_ids} env "
                              "ids"))
    return sorted(found, key=lambda item: item[0])


def first_problem_message(path: str, problems: list[tuple[int, str]]) -> str:
    """The reader's one line for a table with ``problems``."""
    more = f" (and {len(problems) - 1} more)" if len(problems) > 1 else ""
    return (f"{path}: {problems[0][1]}{more}; the episode table is damaged: `gan-envs verify "
            f"{path}` lists every problem; copy the file again from its source")

