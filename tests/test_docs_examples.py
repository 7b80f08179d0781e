"""Every ```python block of README.md and docs/*.md runs against the current API.

Each block is run with ``exec`` in ``tmp_path`` (the working directory), on real inputs: a
three-game rollout file ``atari3.h5`` from ``collect``, a GAN run trained by the gan.md block
itself, an agent's ``agent.pt`` weights that then collect. Sizes are shrunk by textual
substitutions (``SHRINK``); each must match its block, so a docs edit that drops the string
fails here instead of running the full-size example. A block that is an excerpt on purpose is
listed in ``SKIPPED`` with the reason; a new block that is neither run nor skipped fails
:func:`test_every_block_is_covered`.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pytest
import torch

from gan_envs.collect import CollectConfig, collect
from gan_envs.datasets import RolloutReader

ROOT = Path(__file__).resolve().parents[1]
DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
_BLOCK = re.compile(r"^```python\n(.*?)^```", re.S | re.M)

#: (file relative to the repository, index of its python block) -> why it is not run
SKIPPED = {
    ("docs/gan.md", 3): "an excerpt of benchmarks/gan_quality.py's budget loop (reached, "
                        "imports left out); the script itself is what runs",
}

#: (file, block) -> [(text in the block, its smaller replacement)], each applied exactly once
SHRINK: dict[tuple[str, int], list[tuple[str, str]]] = {
    ("README.md", 0): [("num_envs=8", "num_envs=2")],
    ("README.md", 1): [],
    ("docs/collect.md", 0): [],
    ("docs/dataset-format.md", 0): [],
    ("docs/gan.md", 0): [("iterations=5000, width=128", "iterations=12, width=16, "
                          "sample_every=6, checkpoint_every=6")],
    ("docs/gan.md", 1): [],
    ("docs/gan.md", 2): [("n=1000, seed=0)", "n=48, seed=0, classifier_steps=15)"),
                         ("seeds=range(5))", "seeds=range(2), n=48, classifier_steps=15)")],
    ("docs/world-models.md", 0): [("episodes=4, max_steps=200", "episodes=2, max_steps=40"),
                                  ("WorldModelConfig(quick=True)",
                                   "WorldModelConfig(quick=True, workers=0)"),
                                  ("steps=200,", "steps=6,")],
}


def _blocks() -> dict[tuple[str, int], str]:
    found = {}
    for doc in DOCS:
        for i, match in enumerate(_BLOCK.finditer(doc.read_text())):
            found[(str(doc.relative_to(ROOT)), i)] = match.group(1)
    return found


BLOCKS = _blocks()


def _run(key: tuple[str, int], namespace: dict[str, Any] | None = None) -> dict[str, Any]:
    """Exec the block ``key`` after its substitutions; return its namespace."""
    code = BLOCKS[key]
    for old, new in SHRINK[key]:
        assert code.count(old) == 1, f"{key}: {old!r} is no longer in the block: update SHRINK"
        code = code.replace(old, new)
    namespace = {"__name__": "__main__", **(namespace or {})}
    exec(compile(code, f"{key[0]}[python block {key[1]}]", "exec"), namespace)
    return namespace


def test_every_block_is_covered():
    assert set(BLOCKS) == set(SHRINK) | set(SKIPPED), (
        "a python block of the docs is neither run nor skipped here (or one listed is gone): "
        f"blocks {sorted(BLOCKS)}")
    assert not set(SHRINK) & set(SKIPPED)


@pytest.fixture(scope="module")
def workdir(tmp_path_factory) -> Iterator[Path]:
    """A folder holding ``atari3.h5`` (Breakout, AirRaid, Pong; episodes of ≥ 32 steps), the
    working directory of every block of this module."""
    root = tmp_path_factory.mktemp("docs")
    collect(CollectConfig(["GanAtari/Breakout-v0", "GanAtari/AirRaid-v0", "GanAtari/Pong-v0"],
                          root / "atari3.h5", steps=600, num_envs=3))
    with pytest.MonkeyPatch.context() as patch:
        patch.chdir(root)
        yield root


def test_readme_make_and_read(workdir):
    ns = _run(("README.md", 0))
    assert ns["obs"].shape == (3, 64, 64) and ns["obs"].dtype == np.float32
    assert -1 <= ns["obs"].min() and ns["obs"].max() <= 1
    assert ns["env"].observation_space.shape == (3, 32, 32)
    assert ns["envs"].num_envs == 2
    ns["envs"].close()
    ns = _run(("README.md", 1))
    assert ns["batch"].shape == (256, 3, 64, 64) and ns["batch"].dtype == np.uint8
    assert ns["windows"]["observations"].shape[:2] == (16, 33)
    assert len(ns["episode"]["actions"]) >= 1


def test_dataset_format_reads_with_plain_h5py(workdir):
    ns = _run(("docs/dataset-format.md", 0), {"path": "atari3.h5"})
    assert ns["batch"].shape == (256, 3, 64, 64) and ns["batch"].dtype == np.uint8


def test_collect_policy_agent(workdir, monkeypatch):
    """The agent factory of docs/collect.md, with a real network and weights, collects."""
    import sys
    import types

    class PolicyNet(torch.nn.Sequential):
        def __init__(self, n_actions: int) -> None:
            super().__init__(torch.nn.Flatten(), torch.nn.Linear(3 * 64 * 64, n_actions))

    torch.manual_seed(0)
    torch.save(PolicyNet(n_actions=6).state_dict(), workdir / "agent.pt")  # Pong: 6 actions
    monkeypatch.setitem(sys.modules, "my_training", types.SimpleNamespace(PolicyNet=PolicyNet))
    agent = _run(("docs/collect.md", 0))["Agent"]
    collect(CollectConfig(["GanAtari/Pong-v0"], workdir / "pong-agent.h5", steps=40, num_envs=2,
                          policy=agent))
    with RolloutReader(workdir / "pong-agent.h5") as reader:
        actions = np.concatenate([reader.episode(i)["actions"]
                                  for i in range(reader.num_episodes)])
    assert len(actions) == 40 and set(actions.tolist()) <= set(range(6))


def test_gan_train_sample_evaluate(workdir):
    ns = _run(("docs/gan.md", 0))
    assert ns["summary"].last_grid is not None
    run = workdir / "runs" / "atari-gan"
    assert (run / "checkpoint.pt").is_file()
    _run(("docs/gan.md", 1))
    for name in ("grid.png", "zeros.png", "dim7.png", "sweep.png", "lerp.png", "pong.png"):
        image = cv2.imread(str(workdir / name))
        assert image is not None and image.size > 0, name
    ns = _run(("docs/gan.md", 2), {"source": ns["source"]})
    assert {"generated", "real_vs_real", "noise"} <= set(ns["report"])
    assert np.isfinite(ns["report"]["generated"]["fd"])


def test_world_models_quick_run(workdir):
    _run(("docs/world-models.md", 0))
    for name in ("vae.pt", "mdrnn.pt", "controller.pt", "dream.mp4"):
        assert (workdir / "runs" / "wm" / name).is_file(), name
