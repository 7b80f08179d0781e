"""Crash-state replay: every state a killed writer can leave, checked for its committed episodes.

Runs tests/datasets/writer_child.py under ``strace`` (the writer's ``pwrite64`` calls with their
bytes, its "committed K" lines and the ``link`` that publishes the file), then rebuilds the file as
it stood before each write and, for every write that crosses a 4 KiB page boundary, as it stands
when the write is torn at that boundary (the kernel copies a write one page at a time and a
SIGKILL stops it between pages). Each state is read with RolloutReader; a state the reader refuses
is resumed with ``RolloutWriter(resume=True)`` and read again. Every episode reported committed
before the state must read back bit for bit.

Prints the number of states, how many the reader refused (by kind), and how many were lost
(committed episodes missing even after a resume): 0 is the requirement.

Usage: python benchmarks/crash_replay.py [--episodes 40] [--every 1] [--no-torn] [--jobs 2]
                                        [--compression gzip|lzf|none]
Needs ``strace`` (Debian: apt-get install strace).
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import re
import shutil
import subprocess
import sys
import tempfile
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
CHILD = ROOT / "tests" / "datasets" / "writer_child.py"
sys.path.insert(0, str(CHILD.parent))
PAGE = 4096
_HEX = re.compile(r'"((?:\\x[0-9a-f]{2})*)"')

#: ("write", offset, data), ("truncate", size, b"") or ("commit", episode, b"")
Op = tuple[str, int, bytes]


def trace(episodes: int, folder: Path, compression: str = "gzip") -> Path:
    """Run the writer child under strace; returns the trace file."""
    if shutil.which("strace") is None:
        sys.exit("crash_replay: strace is not installed (apt-get install strace)")
    out = folder / "trace.txt"
    subprocess.run(["strace", "-f", "-o", str(out), "-xx", "-s", "100000000", "-e",
                    "trace=openat,close,pwrite64,write,ftruncate,link", sys.executable,
                    str(CHILD), str(folder / "w.h5"), "--episodes", str(episodes),
                    "--compression", compression],
                   check=True, cwd=CHILD.parent, stdout=subprocess.DEVNULL)
    return out


def _bytes(args: str) -> bytes:
    return bytes.fromhex(_HEX.search(args).group(1).replace("\\x", ""))


def parse(path: Path, name: str) -> tuple[list[Op], int]:
    """The writer's operations on its file (and commit marks), and the index of the link."""
    fds: dict[int, str] = {}
    ops: list[Op] = []
    linked = -1
    main_pid = None
    for line in path.read_text().splitlines():
        m = re.match(r"(\d+)\s+(\w+)\((.*)\)\s+=\s+(-?\d+)", line)
        if not m:
            continue
        pid, call, args, ret = m.group(1), m.group(2), m.group(3), int(m.group(4))
        main_pid = main_pid or pid
        if pid != main_pid:
            continue
        ours = lambda fd: os.path.basename(fds.get(fd, "")).lstrip(".").startswith(name)  # noqa: E731
        if call == "openat" and ret >= 0:
            fds[ret] = _bytes(args).decode()
        elif call == "close":
            fds.pop(int(args.split(",")[0]), None)
        elif call == "pwrite64" and ours(int(args.split(",")[0])):
            ops.append(("write", int(args.rsplit(",", 1)[1]), _bytes(args)))
        elif call == "ftruncate" and ours(int(args.split(",")[0])):
            ops.append(("truncate", int(args.split(",")[1]), b""))
        elif call == "write" and args.startswith("1,"):
            for k in re.findall(r"committed (\d+)", _bytes(args).decode()):
                ops.append(("commit", int(k), b""))
        elif call == "link":
            linked = len(ops)
    return ops, linked


def _apply(buf: bytearray, op: Op, upto: int | None = None) -> None:
    kind, at, data = op
    if kind == "write":
        data = data if upto is None else data[:upto]
        if len(buf) < at + len(data):
            buf.extend(bytes(at + len(data) - len(buf)))
        buf[at:at + len(data)] = data
    elif kind == "truncate":
        del buf[at:]
        buf.extend(bytes(max(0, at - len(buf))))


def states(ops: list[Op], linked: int, torn: bool, every: int
           ) -> Iterator[tuple[bytes, int, str]]:
    """(file bytes, episodes committed by then, label) for each crash state after the link."""
    buf, committed = bytearray(), 0
    for i, op in enumerate(ops):
        if i >= linked and i % every == 0:
            yield bytes(buf), committed, "between writes"
            if torn and op[0] == "write":
                at, data = op[1], op[2]
                for cut in range((at // PAGE + 1) * PAGE, at + len(data), PAGE):
                    state = bytearray(buf)
                    _apply(state, op, upto=cut - at)
                    yield bytes(state), committed, "torn write"
        if op[0] == "commit":
            committed = op[1] + 1
        _apply(buf, op)
    yield bytes(buf), committed, "after the last write"


def check(job: tuple[bytes, int, str, str]) -> tuple[str, str]:
    """('read' | 'recovered' | 'LOST', reason) for one state."""
    from dataset_helpers import assert_episode_equal, make_episode

    from gan_envs.datasets import RolloutReader, RolloutWriter

    state, committed, label, folder = job
    with tempfile.TemporaryDirectory(dir=folder) as tmp:
        path = Path(tmp) / "state.h5"
        path.write_bytes(state)

        def read_back() -> None:
            with RolloutReader(path) as reader:
                assert reader.num_episodes >= committed, f"{reader.num_episodes} < {committed}"
                for k in range(reader.num_episodes):
                    assert_episode_equal(reader.episode(k), make_episode(k))

        try:
            read_back()
            return "read", label
        except Exception as err:  # noqa: BLE001 - any failure counts, the kind is reported
            found = re.search(r"cannot (?:read|open) (.*?) \(([^()]*)\)", str(err))
            what = re.sub(r"\d+", "K", f"{found.group(1)}: {found.group(2)}") if found else str(err)
            refused = f"{label}: {type(err).__name__}: {what[:90]}"
        try:
            with RolloutWriter(path, resume=True):
                pass
            read_back()
            return "recovered", refused
        except Exception as err:  # noqa: BLE001
            return "LOST", f"{refused} | resume: {type(err).__name__}: {str(err)[:160]}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--episodes", type=int, default=40)
    parser.add_argument("--every", type=int, default=1, help="check every Nth write only")
    parser.add_argument("--no-torn", action="store_true", help="only states between writes")
    parser.add_argument("--jobs", type=int, default=2)
    parser.add_argument("--compression", default="gzip", choices=["gzip", "lzf", "none"])
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        ops, linked = parse(trace(args.episodes, Path(folder), args.compression), "w.h5")
        writes = sum(op[0] == "write" for op in ops)
        print(f"{writes} writes, {sum(op[0] == 'commit' for op in ops)} commits")
        outcome: Counter[str] = Counter()
        reasons: Counter[str] = Counter()
        jobs = ((s, c, label, folder) for s, c, label in
                states(ops, linked, not args.no_torn, args.every))
        with multiprocessing.Pool(args.jobs) as pool:
            for result, reason in pool.imap(check, jobs, chunksize=8):
                outcome[result] += 1
                if result != "read":
                    reasons[f"{result}: {reason}"] += 1
    print(f"{sum(outcome.values())} states: {outcome['read']} read as they are, "
          f"{outcome['recovered']} refused by the reader and recovered by resume=True, "
          f"{outcome['LOST']} lost committed episodes")
    for reason, count in reasons.most_common():
        print(f"  {count:5d}  {reason}")
    sys.exit(1 if outcome["LOST"] else 0)


if __name__ == "__main__":
    main()
