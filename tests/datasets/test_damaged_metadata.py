"""Files whose attributes, arrays or episode table were damaged by another program: opening
refuses them with one line, `verify` reports them (exit 1) and `info` does not crash.

Before session 24 most of these were tracebacks (IndexError, ZeroDivisionError, TypeError,
AttributeError) in `verify` and `info`, an episode table reaching past the arrays crashed every
reader (or, with a length of 10**9, allocated 7 GiB), and an `env_ids` stored as one string was
read as one env per letter.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable
from pathlib import Path

import h5py
import numpy as np
import numpy.lib.recfunctions as rfn
import pytest
from dataset_helpers import write_noise_file

from gan_envs.cli import main
from gan_envs.datasets import CorruptDatasetError, DatasetError, RolloutReader, verify
from gan_envs.info import dataset_info


def _set(key: str, value) -> Callable[[h5py.File], None]:
    def damage(f: h5py.File) -> None:
        f.attrs[key] = value
    return damage


def _table(field: str, episode: int, value) -> Callable[[h5py.File], None]:
    def damage(f: h5py.File) -> None:
        table = f["episodes"][:]
        table[field][episode] = value
        f["episodes"][:] = table
    return damage


def _replace(name: str, make: Callable[[np.ndarray], np.ndarray], **options
             ) -> Callable[[h5py.File], None]:
    def damage(f: h5py.File) -> None:
        data = f[name][:]
        del f[name]
        f.create_dataset(name, data=make(data), **options)
    return damage


def _as_group(name: str) -> Callable[[h5py.File], None]:
    def damage(f: h5py.File) -> None:
        del f[name]
        f.create_group(name)
    return damage


DAMAGES = {  # name: (damage, what the one line says)
    "episode of length 0": (_table("length", 0, 0), "episode 0: length 0"),
    "episode past the arrays": (_table("length", 1, 1000), "episode 1: reaches past the end"),
    "episode of 10**9 steps": (_table("length", 0, 10**9), "episode 0: reaches past the end"),
    "negative length": (_table("length", 0, -5), "episode 0: length -5"),
    "huge offset": (_table("obs_offset", 0, 10**12), "episode 0: reaches past the end"),
    "unknown env index": (_table("env_index", 0, 5), "env_index 5 is not one of 1 env ids"),
    "negative env index": (_table("env_index", 0, -7), "env_index -7 is not one of 1 env ids"),
    "chunk_frames 0": (_set("chunk_frames", 0), "chunk_frames attribute is 0, not a whole"),
    "chunk_frames text": (_set("chunk_frames", "abc"), "chunk_frames attribute is 'abc'"),
    "env_ids one string": (_set("env_ids", '"Noise-v0"'),
                           "env_ids attribute is 'Noise-v0', not a list of env id strings"),
    "env_ids null": (_set("env_ids", "null"), "env_ids attribute is 'None'"),
    "space a number": (_set("observation_space", "5"), "observation_space attribute '5' is not"),
    "space a list": (_set("observation_space", "[1, 2]"), "is not a space description"),
    "space of no dtype": (_set("observation_space", json.dumps(
        {"type": "Box", "shape": [3, 16, 16], "dtype": "foo", "low": 0, "high": 255})),
        "data type 'foo' not understood"),
    "Discrete n text": (_set("action_space", '{"type": "Discrete", "n": "x", "start": 0}'),
                        "action_space attribute"),
    "Discrete n 0": (_set("action_space", '{"type": "Discrete", "n": 0, "start": 0}'),
                     "action_space attribute"),
    "format an array": (_set("format", np.array([1, 2])), "not a gan-envs rollout file"),
    "observations a group": (_as_group("observations"), "'observations' is not a dataset"),
    "table without committed": (_replace("episodes", lambda t: rfn.drop_fields(
        t, ["committed"]), maxshape=(None,), chunks=(1,)), "lacks the field(s) committed"),
    "table of plain floats": (_replace("episodes", lambda t: np.zeros(3)),
                              "lacks the field(s) obs_offset"),
    "rewards as text": (_replace("rewards", lambda r: np.full(len(r), b"a"), chunks=True,
                                 maxshape=(None,), fletcher32=True),
                        "rewards are stored as |S1, not floats"),
    "blank flags of two columns": (_replace("blank_frame", lambda b: np.stack([b, b], 1)),
                                   "has shape"),
    # arrays stored unlike their space (read as they were: float frames, 1-D "frames")
    "observations as floats": (_replace("observations", lambda o: o.astype(np.float32),
                                        chunks=True, maxshape=(None, 3, 16, 16), fletcher32=True),
                               "observations are stored as rows of shape (3, 16, 16) and dtype "
                               "float32, but its observation_space attribute is Box(0, 255"),
    "observations of one number": (_replace("observations", lambda o: o[:, 0, 0, 0]),
                                   "observations are stored as rows of shape () and dtype uint8"),
    "actions of two columns": (_replace("actions", lambda a: np.stack([a, a], 1)),
                               "actions are stored as rows of shape (2,) and dtype int64, but its "
                               "action_space attribute is Discrete(4)"),
    "space of another shape": (_set("observation_space", json.dumps(
        {"type": "Box", "shape": [3, 8, 8], "dtype": "uint8", "low": 0, "high": 255})),
        "observation_space attribute is Box(0, 255, (3, 8, 8), uint8)"),
}


@pytest.fixture(scope="module")
def sound(tmp_path_factory) -> Path:
    """A sound file of three episodes with blank flags (written by the real writer)."""
    from gymnasium.spaces import Box, Discrete

    from gan_envs.datasets import RolloutWriter

    path = tmp_path_factory.mktemp("sound") / "sound.h5"
    rng = np.random.default_rng(0)
    with RolloutWriter(path, Box(0, 255, (3, 16, 16), np.uint8), Discrete(4),
                       env_ids=["Noise-v0"], blank_frames=True) as writer:
        for k in range(3):
            n = 20 + k
            writer.add_episode(rng.integers(0, 256, (n + 1, 3, 16, 16), dtype=np.uint8),
                               rng.integers(0, 4, n), rng.normal(size=n).astype(np.float32),
                               np.arange(n) == n - 1, blank=np.zeros(n + 1, bool))
    return path


def _damaged(sound: Path, tmp_path: Path, damage: Callable[[h5py.File], None]) -> Path:
    path = tmp_path / "damaged.h5"
    shutil.copyfile(sound, path)
    with h5py.File(path, "r+") as f:
        damage(f)
    return path


@pytest.mark.parametrize("name", list(DAMAGES))
def test_damage_is_one_line_everywhere(sound: Path, tmp_path: Path, capsys, name: str):
    damage, words = DAMAGES[name]
    path = _damaged(sound, tmp_path, damage)
    with pytest.raises(DatasetError) as error:
        RolloutReader(path)
    message = str(error.value)
    assert words in message and "\n" not in message and message.startswith(str(path))
    report = verify(path)  # a report, not a traceback
    assert not report.ok and words in str(report)
    assert main(["verify", str(path)]) == 1
    assert words in capsys.readouterr().out
    assert main(["info", str(path)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and words in err


def test_table_damage_is_refused_as_corrupt_and_names_verify(sound: Path, tmp_path: Path):
    path = _damaged(sound, tmp_path, _table("length", 1, 1000))
    with pytest.raises(CorruptDatasetError) as error:
        RolloutReader(path)
    assert str(error.value).endswith(f"; the episode table is damaged: `gan-envs verify {path}` "
                                     "lists every problem; copy the file again from its source")
    with RolloutReader(path, check_table=False) as reader:  # opened to inspect it
        # episode 1 reaches past the arrays; episode 2 now overlaps it
        assert [episode for episode, _ in reader.table_problems()] == [1, 2]
        assert reader.episode(0)["actions"].shape == (20,)
    report = verify(path)
    assert report.bad_episodes == [1, 2]


def test_arrays_without_checksums_are_reported(sound: Path, tmp_path: Path):
    """verify said 'every checksum verified' of arrays another program stored without them."""
    path = _damaged(sound, tmp_path, _replace("actions", lambda a: a, chunks=True,
                                              maxshape=(None,)))
    report = verify(path)
    assert not report.ok
    assert "actions carry no checksums" in str(report)
    assert "every checksum verified" not in str(report)


@pytest.mark.parametrize("versions", ['"x"', "[1, 2]"])
def test_info_shows_odd_informational_metadata(sound: Path, tmp_path: Path, capsys, versions):
    """`info` raised AttributeError on a 'versions' attribute that is not a dict."""
    path = _damaged(sound, tmp_path, _set("versions", versions))
    assert main(["info", str(path)]) == 0
    assert "versions: " in capsys.readouterr().out


def test_info_json_has_no_nan(sound: Path, tmp_path: Path, capsys):
    """A NaN return in the table printed `"mean": NaN`, which is not JSON."""
    path = _damaged(sound, tmp_path, _table("return", 0, np.nan))
    assert dataset_info(path)["envs"][0]["return"]["mean"] is None
    assert main(["info", "--json", str(path)]) == 0
    json.loads(capsys.readouterr().out, parse_constant=lambda c: pytest.fail(f"JSON has {c}"))


def test_a_sound_file_still_opens_and_verifies(sound: Path, tmp_path: Path):
    assert verify(sound).ok
    noise = write_noise_file(tmp_path / "noise.h5", 5)
    with RolloutReader(noise) as reader:
        assert reader.table_problems() == [] and reader.num_episodes == 5
