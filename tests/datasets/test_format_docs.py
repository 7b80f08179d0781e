"""The plain-h5py snippet of docs/dataset-format.md runs, on clean and on killed files."""

from __future__ import annotations

import re
import signal
from pathlib import Path

import numpy as np
from dataset_helpers import make_episode, start_child

DOC = Path(__file__).parents[2] / "docs" / "dataset-format.md"


def _snippet() -> str:
    text = DOC.read_text()
    section = text.split("## Reading a batch with plain h5py", 1)[1]
    return re.search(r"```python\n(.*?)```", section, re.S).group(1)


def test_snippet_is_at_most_ten_lines():
    assert len(_snippet().strip().splitlines()) <= 10


def test_snippet_reads_a_batch_from_a_killed_writers_file(tmp_path):
    path = tmp_path / "killed.h5"
    child = start_child(path)
    child.stdout.readline()
    while not child.stdout.readline().startswith("committed 4"):
        pass
    child.send_signal(signal.SIGKILL)
    child.communicate()
    scope = {"path": path}
    exec(_snippet(), scope)
    batch = scope["batch"]
    assert batch.shape == (256, 3, 16, 16) and batch.dtype == np.uint8
    known = {frame.tobytes() for k in range(len(scope["ep"]))
             for frame in make_episode(k)["observations"]}
    assert all(frame.tobytes() in known for frame in batch)
