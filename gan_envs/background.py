"""Run one function's calls in order on a worker thread (the collector's episode writer).

The stepping thread hands each finished episode over and goes on; the worker gathers, compresses
(``zlib`` releases the GIL) and commits it. Calls run one at a time, in submission order. A
failure in the worker is raised in the submitting thread at its next :meth:`~BackgroundCalls.submit`
or when the block exits, and the calls queued after the failed one are skipped, so the calls that
ran are always a prefix of those submitted (no episode after a failed one is committed, leaving
no gap). Leaving the block (normally, on an error, or on Ctrl-C) first finishes every call
already submitted, so every finished episode is committed.

Example:
    >>> done = []
    >>> with BackgroundCalls(done.append) as calls:
    ...     for i in range(3):
    ...         calls.submit(i)
    >>> done
    [0, 1, 2]
"""

from __future__ import annotations

import os
import sys
import threading
from collections import deque
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any

__all__ = ["BackgroundCalls"]


class BackgroundCalls:
    """Calls of ``function`` on one worker thread, at most ``max_pending`` queued at a time.

    With ``max_pending`` calls waiting, :meth:`submit` blocks until the oldest has finished, so
    a slow disk slows the producer instead of filling the memory. ``nice`` (Linux) lowers the
    worker thread's scheduling priority by that much, so that it runs mostly when the
    producer's threads leave a core idle; the producer still waits for it when the queue is full.
    """

    def __init__(self, function: Callable[..., Any], max_pending: int = 64, *,
                 nice: int = 0) -> None:
        if max_pending < 1:
            raise ValueError(f"max_pending must be >= 1, got {max_pending}")
        if not 0 <= nice <= 19:
            raise ValueError(f"nice must be 0-19, got {nice}")
        self.function = function
        self.max_pending = max_pending
        self._pool = ThreadPoolExecutor(1, thread_name_prefix="gan-envs-writer",
                                        initializer=_lower_priority, initargs=(nice,))
        self._pending: deque[Future[Any]] = deque()
        self._failed = False  # set on the worker thread by the first failing call

    def submit(self, *args: Any) -> None:
        """Queue ``function(*args)``; raises the error of an earlier call that failed."""
        self._collect(block=len(self._pending) >= self.max_pending)
        self._pending.append(self._pool.submit(self._call, *args))

    def _call(self, *args: Any) -> Any:
        if self._failed:
            return None  # a call before this one failed: its error is the one raised
        try:
            return self.function(*args)
        except BaseException:
            self._failed = True
            raise

    def finish(self) -> None:
        """Wait for every queued call; raise the first error among them."""
        try:
            while self._pending:
                self._pending.popleft().result()
        finally:
            self._pool.shutdown(wait=True, cancel_futures=True)

    def _collect(self, *, block: bool) -> None:
        while self._pending and (block or self._pending[0].done()):
            self._pending.popleft().result()
            block = False

    def __enter__(self) -> BackgroundCalls:
        return self

    def __exit__(self, exc_type: object, *exc: object) -> None:
        if exc_type is None:
            self.finish()
            return
        try:  # already failing: commit what was submitted, but keep the original error
            self.finish()
        except Exception:
            pass


def _lower_priority(nice: int) -> None:
    """Raise the calling thread's niceness by ``nice`` (Linux: a thread has its own)."""
    if nice and sys.platform == "linux":
        tid = threading.get_native_id()
        try:
            os.setpriority(os.PRIO_PROCESS, tid, min(19, os.getpriority(os.PRIO_PROCESS, tid)
                                                     + nice))
        except OSError:  # a sandbox that forbids it: run at the normal priority
            pass
