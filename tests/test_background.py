"""BackgroundCalls: in order, errors surface in the caller, every submitted call finishes."""

from __future__ import annotations

import os
import sys
import threading
import time

import pytest

from gan_envs.background import BackgroundCalls


def test_calls_run_in_order_on_another_thread():
    seen: list[tuple[int, str]] = []
    with BackgroundCalls(lambda i: seen.append((i, threading.current_thread().name))) as calls:
        for i in range(50):
            calls.submit(i)
    assert [i for i, _ in seen] == list(range(50))
    assert all(name != threading.current_thread().name for _, name in seen)


def test_a_failed_call_raises_at_the_next_submit_or_at_exit():
    def boom(i: int) -> None:
        if i == 2:
            raise OSError("disk full")

    calls = BackgroundCalls(boom)
    for i in range(3):
        calls.submit(i)
    time.sleep(0.2)
    with pytest.raises(OSError, match="disk full"):
        calls.submit(3)
    calls.finish()
    with pytest.raises(OSError, match="disk full"), BackgroundCalls(boom) as calls:
        for i in range(3):
            calls.submit(i)


def test_calls_queued_after_a_failed_one_are_skipped():
    """The calls that ran are a prefix of those submitted: after episode 2 failed, episodes 3
    and 4 (already queued) were still committed, leaving a gap in the file."""
    done: list[int] = []
    gate = threading.Event()

    def write(i: int) -> None:
        gate.wait(5)
        if i == 2:
            raise OSError("disk full")
        done.append(i)

    with pytest.raises(OSError, match="disk full"), BackgroundCalls(write) as calls:
        for i in range(5):
            calls.submit(i)  # all queued before the first one runs
        gate.set()
    assert done == [0, 1]


def test_leaving_on_an_error_finishes_submitted_calls_and_keeps_the_error():
    done: list[int] = []

    def slow(i: int) -> None:
        time.sleep(0.02)
        done.append(i)

    with pytest.raises(KeyboardInterrupt), BackgroundCalls(slow) as calls:
        for i in range(5):
            calls.submit(i)
        raise KeyboardInterrupt
    assert done == [0, 1, 2, 3, 4]


def test_submit_waits_when_max_pending_calls_are_queued():
    release = threading.Event()
    started: list[int] = []

    def blocked(i: int) -> None:
        started.append(i)
        release.wait(5)

    calls = BackgroundCalls(blocked, max_pending=2)
    calls.submit(0)
    calls.submit(1)
    waiter = threading.Thread(target=calls.submit, args=(2,))
    waiter.start()
    waiter.join(0.2)
    assert waiter.is_alive()  # the third call waits for the first to finish
    release.set()
    waiter.join(5)
    calls.finish()
    assert started == [0, 1, 2]
    with pytest.raises(ValueError, match="max_pending"):
        BackgroundCalls(print, max_pending=0)


@pytest.mark.skipif(sys.platform != "linux", reason="per-thread niceness is a Linux feature")
def test_nice_lowers_only_the_worker_threads_priority():
    def niceness() -> int:
        return os.getpriority(os.PRIO_PROCESS, threading.get_native_id())

    before = niceness()
    seen: list[int] = []
    with BackgroundCalls(lambda: seen.append(niceness()), nice=5) as calls:
        calls.submit()
    assert seen == [min(19, before + 5)]
    assert niceness() == before  # the submitting thread keeps its priority


def test_nice_out_of_range_is_refused():
    with pytest.raises(ValueError, match="nice must be 0-19"):
        BackgroundCalls(print, nice=20)
