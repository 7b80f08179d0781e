"""A writer process for the crash, disk-full and live-reading tests (run as a script).

Usage: writer_child.py PATH [--episodes N] [--delay S] [--resume] [--fsize-limit BYTES]
                       [--compression gzip|lzf|none] [--folder-lock-timeout S]
                       [--damage-after K]
Prints "started", then "committed K" after episode K commits, or "error: MESSAGE" (the disk
is full), or "in use: MESSAGE" (another process holds the file). With --damage-after K it
waits for a line on stdin once K is committed, then stretches episode K's table row past the
arrays, prints "damaged" and
waits to be killed (a live file whose table a reader's refresh() must refuse).
"""

from __future__ import annotations

import argparse
import resource
import signal
import sys
import time


def main() -> None:
    from dataset_helpers import ACTION_SPACE, FRAME_SPACE, make_episode

    from gan_envs.datasets import DatasetInUseError, DatasetWriteError, RolloutWriter, _h5

    parser = argparse.ArgumentParser()
    parser.add_argument("path")
    parser.add_argument("--episodes", type=int, default=10**6)
    parser.add_argument("--delay", type=float, default=0.0)
    parser.add_argument("--resume", action="store_true")
    parser.add_argument("--fsize-limit", type=int, default=0)
    parser.add_argument("--compression", default="gzip")
    parser.add_argument("--folder-lock-timeout", type=float, default=None)
    parser.add_argument("--damage-after", type=int, default=None)
    args = parser.parse_args()
    if args.folder_lock_timeout is not None:
        _h5.FOLDER_LOCK_TIMEOUT = args.folder_lock_timeout
    if args.fsize_limit:
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # write() then fails with EFBIG
        resource.setrlimit(resource.RLIMIT_FSIZE, (args.fsize_limit, args.fsize_limit))
    print("started", flush=True)
    try:
        with RolloutWriter(args.path, FRAME_SPACE, ACTION_SPACE, env_ids=["Noise-v0"],
                           chunk_frames=8, resume=args.resume,
                           compression=None if args.compression == "none" else args.compression
                           ) as writer:
            for k in range(writer.num_episodes, args.episodes):
                ep = make_episode(k)
                if k % 2:  # odd episodes step by step, even ones whole
                    writer.begin_episode(ep["observations"][0], seed=k)
                    for t in range(len(ep["actions"])):
                        writer.add_step(ep["actions"][t], ep["rewards"][t],
                                        ep["observations"][t + 1], ep["terminations"][t])
                    writer.commit_episode()
                else:
                    writer.add_episode(ep["observations"], ep["actions"], ep["rewards"],
                                       ep["terminations"], seed=k)
                print(f"committed {k}", flush=True)
                if k == args.damage_after:
                    sys.stdin.readline()  # the test's reader has opened the file
                    row = writer._table[k]
                    row["length"] = 10**9
                    writer._table[k] = row
                    writer._file.flush()
                    print("damaged", flush=True)
                    time.sleep(600)
                time.sleep(args.delay)
    except DatasetWriteError as err:
        print(f"error: {err}", flush=True)
    except DatasetInUseError as err:
        print(f"in use: {err}", flush=True)


if __name__ == "__main__":
    main()
