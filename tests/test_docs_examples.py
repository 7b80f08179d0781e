"""Every ```python block of README.md and docs/*.md runs against the current API.

The blocks are found by a small parser (a line ```python up to the next line ```) and keyed by
``(file, index)``: the file relative to the repository and the block's index among that file's
python blocks. Each key is either run by a test here (it has an entry in ``SHRINK``) or listed
in ``SKIPPED`` with the reason; :func:`test_every_block_is_run_or_skipped` fails when the docs
gain a python block that is neither, or lose one that is listed.

A block runs with ``exec`` in a fresh namespace, in a module-scoped temporary folder that is
the working directory, at one torch thread, on real inputs: ``atari3.h5``, 600 steps of
Breakout, AirRaid and Pong written by ``collect`` (and ``atari3-32.h5``, 300 steps of them at
32x32, for the GAN); the GAN run ``runs/atari-gan`` that gan.md's training block itself
trains; ``agent.pt``, real weights of a small network for collect.md's agent. ``__name__`` is
``"__main__"`` when the block has an ``if __name__ == "__main__":`` guard, the module's name
when its first line names its file (``# my_agent.py``), else ``"docs_example"``. Names a block
uses without defining them (dataset-format.md's ``path``, gan.md's ``source`` from the block
before) are injected into its namespace.

Sizes are shrunk by textual substitutions, ``SHRINK[key]``: a list of ``(text, replacement)``
pairs. Each text must occur exactly once in its block, so a docs edit that drops or changes it
fails here loudly instead of silently running the full-size example. Beyond running, each test
asserts a few things its block promises (shapes, dtypes, files written and readable).

Error messages the docs quote are checked too (``QUOTED``): each is still in its doc and is
what the code raises, word for word.
"""

from __future__ import annotations

import json
import re
import sys
import types
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import cv2
import gymnasium as gym
import numpy as np
import pytest
import torch

from gan_envs.collect import CollectConfig, collect
from gan_envs.datasets import RolloutReader

Key = tuple[str, int]

ROOT = Path(__file__).resolve().parents[1]
DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
_BLOCK = re.compile(r"^```python\n(.*?)^```", re.S | re.M)
_GUARD = 'if __name__ == "__main__":'
_FILE_HEADER = re.compile(r"\A# (\w+)\.py\n")

#: blocks deliberately not run: (file, index) -> why
SKIPPED: dict[Key, str] = {
    ("docs/gan.md", 3): "an excerpt of the quality run's driver script, shown to document the "
                        "protocol: its imports and `reached` (the iteration the first, "
                        "30-CPU-minute call stopped at) are left out",
}

#: blocks that run: (file, index) -> [(text in the block, its smaller replacement)]
SHRINK: dict[Key, list[tuple[str, str]]] = {
    ("README.md", 0): [("num_envs=8", "num_envs=2")],
    ("README.md", 1): [],
    ("docs/collect.md", 0): [],
    ("docs/dataset-format.md", 0): [],
    # the three games at 32x32: the trainer's start (k-means over a probe of 4,096 frames for
    # the templates) costs ~4x less than at 64x64, ~8 of the module's ~27 CPU-seconds; then
    # 12 iterations of narrow networks (stages of 16, 8 and 4 channels)
    ("docs/gan.md", 0): [('DatasetFrameSource("atari3.h5")',
                          'DatasetFrameSource("atari3-32.h5")'),
                         ("iterations=5000, width=128", "iterations=12, width=16")],
    ("docs/gan.md", 1): [],
    # 48 frames per set and a feature network of 15 steps (the two calls share its cache)
    ("docs/gan.md", 2): [("n=1000, seed=0)", "n=48, seed=0, classifier_steps=15)"),
                         ("seeds=range(5))", "seeds=range(2), n=48, classifier_steps=15)")],
    # quick=True as documented, on fewer and shorter episodes; workers=0 plays the controller's
    # candidates in this process (two spawned workers each import torch: seconds under load)
    ("docs/world-models.md", 0): [("episodes=4, max_steps=200", "episodes=2, max_steps=40"),
                                  ("WorldModelConfig(quick=True)",
                                   "WorldModelConfig(quick=True, workers=0)"),
                                  ("steps=200,", "steps=6,")],
}

GAMES = ["GanAtari/Breakout-v0", "GanAtari/AirRaid-v0", "GanAtari/Pong-v0"]
GAN_RUN = Path("runs") / "atari-gan"
WM_RUN = Path("runs") / "wm"


def _blocks() -> dict[Key, str]:
    """Every python block of the docs, by (file relative to the repository, index)."""
    found = {}
    for doc in DOCS:
        for i, match in enumerate(_BLOCK.finditer(doc.read_text(encoding="utf-8"))):
            found[(doc.relative_to(ROOT).as_posix(), i)] = match.group(1)
    return found


BLOCKS = _blocks()


def _shrunk(key: Key) -> str:
    """The code of block ``key`` after its substitutions, each of which must match once."""
    code = BLOCKS[key]
    for old, new in SHRINK[key]:
        assert code.count(old) == 1, (
            f"{key}: {old!r} occurs {code.count(old)} times in the block (once expected): "
            "update SHRINK in tests/test_docs_examples.py")
        code = code.replace(old, new)
    return code


def _module_name(code: str) -> str:
    if _GUARD in code:
        return "__main__"
    header = _FILE_HEADER.match(code)
    return header.group(1) if header else "docs_example"


def _run(key: Key, inject: dict[str, Any] | None = None,
         namespace: dict[str, Any] | None = None) -> dict[str, Any]:
    """Exec block ``key`` (shrunk) in ``namespace`` (a fresh dict by default) with ``inject``'s
    names defined; return the namespace."""
    code = _shrunk(key)
    namespace = {} if namespace is None else namespace
    namespace.update({"__name__": _module_name(code), **(inject or {})})
    exec(compile(code, f"{key[0]} (python block {key[1]})", "exec"), namespace)
    return namespace


def test_every_block_is_run_or_skipped() -> None:
    for doc in DOCS:  # the parser misses no python block (an indented or unclosed fence)
        fences = sum(line.strip().startswith("```py")
                     for line in doc.read_text(encoding="utf-8").splitlines())
        parsed = sum(file == doc.relative_to(ROOT).as_posix() for file, _ in BLOCKS)
        assert fences == parsed, f"{doc.name}: {fences} python fences, {parsed} blocks parsed"
    unhandled = set(BLOCKS) - set(SHRINK) - set(SKIPPED)
    assert not unhandled, (f"python blocks of the docs that are neither run nor skipped here: "
                           f"{sorted(unhandled)}; run them (add a SHRINK entry and a test) or "
                           "add them to SKIPPED with a reason")
    gone = (set(SHRINK) | set(SKIPPED)) - set(BLOCKS)
    assert not gone, f"listed here but no longer in the docs: {sorted(gone)}"
    assert not set(SHRINK) & set(SKIPPED)
    assert all(reason.strip() for reason in SKIPPED.values())


def test_substitutions_match_once() -> None:
    for key in SHRINK:
        _shrunk(key)


@pytest.fixture(scope="module")
def workdir(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """The working directory of every block: a folder holding ``atari3.h5`` and its 32x32
    sibling ``atari3-32.h5``."""
    root = tmp_path_factory.mktemp("docs")
    collect(CollectConfig(GAMES, root / "atari3.h5", steps=600, num_envs=3))
    collect(CollectConfig(GAMES, root / "atari3-32.h5", steps=300, num_envs=2, size=32))
    with pytest.MonkeyPatch.context() as patch:
        patch.chdir(root)
        yield root


# ------------------------------------------------------------------------------ README.md
def test_readme_environments(workdir: Path) -> None:
    ns = _run(("README.md", 0))
    obs = ns["obs"]
    assert obs.shape == (3, 64, 64) and obs.dtype == np.float32
    assert obs.min() >= -1 and obs.max() <= 1
    space = ns["env"].observation_space  # the Pong env of size 32 on [0, 1]
    assert space.shape == (3, 32, 32) and space.low.min() == 0 and space.high.max() == 1
    envs = ns["envs"]
    try:
        assert envs.num_envs == 2
        assert envs.single_observation_space.shape == (3, 64, 64)
        observations, _ = envs.reset(seed=0)
        assert observations.shape == (2, 3, 64, 64) and observations.dtype == np.float32
    finally:
        envs.close()
        ns["env"].close()


def test_readme_datasets(workdir: Path) -> None:
    ns = _run(("README.md", 1))
    assert ns["batch"].shape == (256, 3, 64, 64) and ns["batch"].dtype == np.uint8
    windows = ns["windows"]
    assert windows["observations"].shape == (16, 33, 3, 64, 64)  # length steps, length + 1 obs
    assert windows["actions"].shape == (16, 32)
    # "never crossing episodes": no termination or truncation before a window's last step
    assert not (windows["terminations"][:, :-1] | windows["truncations"][:, :-1]).any()
    episode = ns["episode"]
    assert len(episode["observations"]) == len(episode["actions"]) + 1


# ---------------------------------------------------------------------- dataset-format.md
def test_dataset_format_plain_h5py(workdir: Path) -> None:
    ns = _run(("docs/dataset-format.md", 0), {"path": "atari3.h5"})
    batch = ns["batch"]
    assert batch.shape == (256, 3, 64, 64) and batch.dtype == np.uint8
    # each frame read through the episode table is the frame the reader gives for that row
    table = ns["ep"]  # the committed rows, in file order
    with RolloutReader("atari3.h5") as reader:
        assert np.array_equal(reader.episode_table["obs_offset"], table["obs_offset"])
        for frame, row in zip(batch[::8], ns["pick"][::8], strict=True):
            e = int(np.searchsorted(table["obs_offset"] + table["length"], row))
            step = int(row - table["obs_offset"][e])
            assert np.array_equal(frame, reader.episode(e)["observations"][step])


# ----------------------------------------------------------------------------- collect.md
class PolicyNet(torch.nn.Sequential):
    """The network of the collect.md agent's ``my_training`` module: a linear policy."""

    def __init__(self, n_actions: int) -> None:
        super().__init__(torch.nn.Flatten(), torch.nn.Linear(3 * 64 * 64, n_actions))


@pytest.fixture(scope="module")
def my_agent(workdir: Path) -> Iterator[types.ModuleType]:
    """collect.md's ``my_agent.py``, importable as ``my_agent``, beside real ``agent.pt``
    weights of a Pong ``PolicyNet`` (6 actions)."""
    torch.manual_seed(0)
    net = PolicyNet(n_actions=6)
    torch.nn.init.normal_(net[1].weight, std=0.01)  # actions that vary with the frame
    torch.save(net.state_dict(), workdir / "agent.pt")
    my_training = types.ModuleType("my_training")
    my_training.PolicyNet = PolicyNet  # type: ignore[attr-defined]
    module = types.ModuleType("my_agent")
    with pytest.MonkeyPatch.context() as patch:
        patch.setitem(sys.modules, "my_training", my_training)
        patch.setitem(sys.modules, "my_agent", module)
        _run(("docs/collect.md", 0), namespace=module.__dict__)
        yield module


def test_collect_agent_acts_on_real_frames(my_agent: types.ModuleType) -> None:
    envs = gym.make_vec("GanAtari/Pong-v0", num_envs=3, scale=None)  # collect's uint8 frames
    try:
        agent = my_agent.Agent(envs)
        observations, infos = envs.reset(seed=0)
        for _ in range(20):
            observations, _, _, _, infos = envs.step(envs.action_space.sample())
        assert observations.shape == (3, 3, 64, 64) and observations.dtype == np.uint8
        actions = agent(observations, infos)
        reference = PolicyNet(n_actions=6)
        reference.load_state_dict(torch.load("agent.pt", weights_only=True))
        with torch.no_grad():
            x = torch.from_numpy(observations).float() / 127.5 - 1
            expected = reference(x).argmax(dim=1).numpy()
        assert actions.shape == (3,) and np.issubdtype(actions.dtype, np.integer)
        assert np.array_equal(actions, expected)
        envs.step(actions)  # actions the vector env takes
    finally:
        envs.close()


def test_collect_agent_as_policy(my_agent: types.ModuleType) -> None:
    """``collect --policy my_agent:Agent``: the factory is called with the vector env and its
    actions are what the file records."""
    collect(CollectConfig(["GanAtari/Pong-v0"], "pong-agent.h5", steps=40, num_envs=2,
                          policy="my_agent:Agent"))
    with RolloutReader("pong-agent.h5") as reader:
        assert reader.metadata["policy"] == "my_agent:Agent"
        episodes = [reader.episode(i) for i in range(reader.num_episodes)]
    actions = np.concatenate([ep["actions"] for ep in episodes])
    assert len(actions) == 40 and set(actions.tolist()) <= set(range(6))
    envs = gym.make_vec("GanAtari/Pong-v0", num_envs=2, scale=None)
    try:
        agent = my_agent.Agent(envs)
    finally:
        envs.close()
    for ep in episodes:  # the agent is deterministic: each action is its answer to the frame
        assert np.array_equal(agent(ep["observations"][:-1], {}), ep["actions"])


# --------------------------------------------------------------------------------- gan.md
@pytest.fixture(scope="module")
def gan_run(workdir: Path) -> dict[str, Any]:
    """The namespace of gan.md's training block, which trains ``runs/atari-gan``."""
    return _run(("docs/gan.md", 0))


def test_gan_train(gan_run: dict[str, Any], workdir: Path) -> None:
    summary = gan_run["summary"]
    assert summary.iterations == 12 and summary.iterations_per_second > 0
    assert {"loss_d", "loss_g", "d_real", "d_fake"} <= set(summary.metrics)
    run = workdir / GAN_RUN
    assert summary.last_grid is not None and cv2.imread(str(summary.last_grid)) is not None
    for name in ("checkpoint.pt", "config.json", "log.jsonl", "training.mp4"):
        assert (run / name).is_file(), name
    config = json.loads((run / "config.json").read_text())
    assert config["width"] == 16 and config["conditional"] is True  # three games
    assert gan_run["source"].frame_shape == (3, 32, 32)


def test_gan_sample_and_explore(gan_run: dict[str, Any], workdir: Path) -> None:
    _run(("docs/gan.md", 1))
    shapes = {}
    for name in ("grid.png", "zeros.png", "dim7.png", "sweep.png", "lerp.png", "pong.png"):
        image = cv2.imread(str(workdir / name))
        assert image is not None and image.ndim == 3 and image.shape[2] == 3, name
        shapes[name] = image.shape[:2]
    assert shapes["zeros.png"] == shapes["dim7.png"]  # one frame each
    assert shapes["grid.png"][0] == shapes["grid.png"][1]  # 64 frames, 8 by 8
    assert shapes["grid.png"][0] > 7 * shapes["zeros.png"][0]
    for row in ("sweep.png", "lerp.png"):  # 8 frames in one row
        assert shapes[row][0] == shapes["zeros.png"][0] and shapes[row][1] > 7 * shapes[row][0]


def test_gan_evaluate(gan_run: dict[str, Any], workdir: Path) -> None:
    ns = _run(("docs/gan.md", 2), {"source": gan_run["source"]})
    report = ns["report"]
    json.dumps(report)  # "JSON-serialisable dict"
    for row in ("generated", "real_vs_real", "noise"):
        assert np.isfinite(report[row]["fd"]), row
    assert report["n"] == 48 and report["env_ids"] == GAMES
    summary = ns["summary"]
    assert summary["seeds"] == [0, 1] and len(summary["reports"]) == 2
    assert np.isfinite(summary["fd"]["median"])
    assert (workdir / GAN_RUN / "eval_classifier.pt").is_file()  # the cached feature network


# ------------------------------------------------------------------------ world-models.md
def test_world_models_quick_run(workdir: Path) -> None:
    ns = _run(("docs/world-models.md", 0))
    assert ns["source"].num_episodes == 2
    run = workdir / WM_RUN
    for name in ("vae.pt", "mdrnn.pt", "controller.pt", "metrics.json"):
        assert (run / name).is_file(), name
    video = cv2.VideoCapture(str(run / "dream.mp4"))
    try:
        frames = 0
        while True:
            ok, frame = video.read()
            if not ok:
                break
            frames += 1
            assert frame.shape[1] > 1.9 * frame.shape[0]  # the real episode beside the dream
        assert frames == 7  # steps + 1
    finally:
        video.release()


# ------------------------------------------------------------- messages the docs quote
def _doc_text(name: str) -> str:
    """A doc's text with its line breaks and runs of spaces folded into single spaces."""
    return " ".join((ROOT / name).read_text(encoding="utf-8").split())


def _small_writer(path: Path, env_ids: tuple[str, ...] = ()) -> Any:
    from gan_envs.datasets import RolloutWriter

    return RolloutWriter(path, gym.spaces.Box(0, 255, (3, 8, 8), np.uint8),
                         gym.spaces.Discrete(3), env_ids=env_ids)


def _one_episode(path: Path, steps: int = 10, env_ids: tuple[str, ...] = ()) -> Path:
    """``path``: a file of one ``steps``-step episode (of the first env id, if any)."""
    with _small_writer(path, env_ids) as writer:
        writer.add_episode(np.zeros((steps + 1, 3, 8, 8), np.uint8), np.zeros(steps, np.int64),
                           np.zeros(steps), env_id=env_ids[0] if env_ids else None)
    return path


def _vector_resize(_: Path) -> None:
    from frame_env import FrameEnv

    from gan_envs.wrappers import ResizeFrame

    ResizeFrame(gym.vector.SyncVectorEnv([lambda: FrameEnv([np.zeros((20, 20, 3), np.uint8)])]))


def _float_resize(_: Path) -> None:
    from frame_env import FrameEnv

    from gan_envs.wrappers import ResizeFrame

    ResizeFrame(FrameEnv([np.zeros((10, 10, 3), np.float32)], high=1))


def _int64_spec(_: Path) -> None:
    env = gym.make("GanAtari/Pong-v0", size=np.int64(32))
    try:
        gym.make(env.spec).close()  # works
        env.spec.to_json()
    finally:
        env.close()


def _vector_action(_: Path) -> None:
    envs = gym.make_vec("GanAtari/Breakout-v0", num_envs=8)
    try:
        envs.reset(seed=0)
        envs.step([0] * 7 + [4])
    finally:
        envs.close()


def _newer_format(tmp: Path) -> None:
    import h5py

    path = _one_episode(tmp / "data.h5")
    with h5py.File(path, "r+") as f:
        f.attrs["format_version"] = "2.0"
    RolloutReader(path)


def _empty_file(tmp: Path) -> None:
    _small_writer(tmp / "data.h5").close()
    with RolloutReader(tmp / "data.h5") as reader:
        reader.sample_frames(1)


def _closed_reader(tmp: Path) -> None:
    reader = RolloutReader(_one_episode(tmp / "data.h5"))
    reader.close()
    reader.close()  # may be called again
    assert reader.num_frames is None  # raises first


def _cut_copy(tmp: Path) -> None:
    import os

    from gan_envs.datasets import RolloutWriter

    path = _one_episode(tmp / "data.h5")
    os.truncate(path, os.path.getsize(path) // 2)
    RolloutWriter(path, resume=True)


def _long_window(tmp: Path) -> None:
    from gan_envs.datasets.torch import WindowDataset

    WindowDataset(_one_episode(tmp / "data.h5", steps=10), 11)


def _filtered_out(tmp: Path) -> None:
    from gan_envs.datasets.torch import FrameDataset

    FrameDataset(_one_episode(tmp / "data.h5", env_ids=("A", "B")), env_ids=["B"])


def _policy_file(tmp: Path) -> None:
    collect(CollectConfig(["GanAtari/Pong-v0"], tmp / "x.h5", steps=10, policy="./agent.py:act"))


def _policy_import_fails(tmp: Path) -> None:
    (tmp / "agent.py").write_text('raise RuntimeError("weights file agent.pt not found")\n')
    with pytest.MonkeyPatch.context() as patch:
        patch.syspath_prepend(str(tmp))
        patch.delitem(sys.modules, "agent", raising=False)
        collect(CollectConfig(["GanAtari/Pong-v0"], tmp / "x.h5", steps=10,
                              policy="agent:act"))


#: (doc, text it quotes, a call that raises an error whose message holds that text)
QUOTED = [
    ("docs/wrappers.md", "ResizeFrame requires uint8 frames, got dtype float32 "
                         "(Box(0.0, 1.0, (10, 10, 3), float32))", _float_resize),
    ("docs/wrappers.md", "ResizeFrame wraps a single gymnasium.Env, got the vector env "
                         "SyncVectorEnv: use VectorResizeFrame for a vector env", _vector_resize),
    ("docs/wrappers.md", "Object of type int64 is not JSON serializable", _int64_spec),
    ("docs/wrappers.md", "GanAtari vector env: actions must be 8 whole numbers in [0, 4), got",
     _vector_action),
    ("docs/wrappers.md", "GanAtari scale low and high must be numbers",
     lambda _: gym.make("GanAtari/Pong-v0", scale=("a", 1))),
    ("docs/wrappers.md", "GanAtari flicker_max_skip must be a whole number >= 1",
     lambda _: gym.make_vec("GanAtari/Pong-v0", num_envs=2, flicker_max_skip=0)),
    ("docs/dataset-format.md", "data.h5: format_version 2.0 is newer than this gan-envs "
                               "understands (1.x); upgrade gan-envs", _newer_format),
    ("docs/dataset-format.md", "data.h5: no frames to sample (the file holds no committed "
                               "episodes yet); ", _empty_file),
    ("docs/dataset-format.md", "the reader is closed; open a new RolloutReader", _closed_reader),
    ("docs/dataset-format.md", "copy it again from its source; resume=True would keep only the "
                               "episodes before the cut", _cut_copy),
    ("docs/dataset-format.md", "no episode has 11 steps (the longest has 10); pass a shorter "
                               "length", _long_window),
    ("docs/dataset-format.md", "no frames to sample (env_ids=['B'] exclude every frame); pass "
                               "other filters", _filtered_out),
    ("docs/collect.md", "give a module name, not a file: put the file's folder on PYTHONPATH "
                        "and pass agent:act", _policy_file),
    ("docs/collect.md", "importing 'agent' raised RuntimeError: weights file agent.pt not "
                        "found; fix the module", _policy_import_fails),
]


@pytest.mark.parametrize(("doc", "text", "call"), QUOTED,
                         ids=[f"{doc}:{text[:30]}" for doc, text, _ in QUOTED])
def test_quoted_message(doc: str, text: str, call: Any, tmp_path: Path,
                        monkeypatch: pytest.MonkeyPatch) -> None:
    """The doc quotes ``text`` and the code raises it, word for word."""
    assert text in _doc_text(doc), f"{doc} no longer quotes {text!r}: update QUOTED"
    monkeypatch.chdir(tmp_path)  # messages name the file as it was given
    with pytest.raises(Exception) as raised:
        call(Path("."))
    assert text in str(raised.value)
    assert "\n" not in str(raised.value).strip()  # one line
