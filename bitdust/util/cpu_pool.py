"""A few threads for the short CPU work of the packet path, handed back cheaply.

Hashing and copying a 1 MB piece takes ~0.5 ms and releases the GIL, so it belongs off
the reactor thread; but Twisted's general thread pool costs about as much again per
job on the reactor: its submit goes through a team of lock-guarded workers and a
``threading.Condition``, and on the asyncio reactor its answer comes back by
``callFromThread``, which schedules a ``callLater(0)`` from an asyncio callback (two
trips through two schedulers). Measured with ``bench/transport.py``: signed 1 MB
packets at 2.1-2.4 ms of reactor CPU per MB through Twisted's pool, 1.7-2.0 through
this one.

So this pool is the smallest hand-off that works: a ``queue.SimpleQueue`` (C) of jobs,
and each answer delivered with the asyncio loop's own ``call_soon_threadsafe`` (C in
uvloop) straight to the job's Deferred. Other reactors (tests' own) get it through
``callFromThread``.

The node's pool (``node.cpu_pool``) takes only short CPU-bound jobs; blocking I/O
(fsync, reading files) goes elsewhere, so a slow disk cannot hold up the packets of every
peer: to Twisted's pool, or to a pool of its own where there is a lot of it (the
supplier's piece files, :mod:`bitdust.storage.supplier.store`).
Threads start with the first job and stop with :meth:`stop` (the node's shutdown);
a job given after that starts them again.
"""

from __future__ import annotations

import logging
import os
import queue
import threading
from collections.abc import Callable
from typing import Any, TypeVar

from twisted.internet.defer import Deferred
from twisted.python.failure import Failure

log = logging.getLogger(__name__)

T = TypeVar("T")
STOP_WAIT_SECONDS = 10.0
_Job = tuple[Callable[..., Any], tuple[Any, ...], "Deferred[Any]"]


def default_size() -> int:
    return max(1, min(4, os.cpu_count() or 2))


class CpuPool:
    def __init__(self, reactor: Any, size: int | None = None, name: str = "cpu") -> None:
        self._reactor = reactor
        self._size = size if size is not None else default_size()
        if self._size < 1:
            raise ValueError(f"a pool needs at least one thread, got {self._size}")
        self._name = name
        self._jobs: queue.SimpleQueue[_Job | None] = queue.SimpleQueue()
        self._threads: list[threading.Thread] = []
        self._call_soon: Callable[..., Any] | None = None
        """How answers reach the reactor thread; found with the first job, so a node
        built on a test's bare clock, which never runs jobs, needs none."""

    @property
    def threads(self) -> int:
        """Threads running now (0 before the first job and after :meth:`stop`)."""
        return len(self._threads)

    def run(self, fn: Callable[..., T], *args: Any) -> Deferred[T]:
        """``fn(*args)`` in a pool thread; the Deferred fires on the reactor thread."""
        if not self._threads:
            self._start()
        result: Deferred[T] = Deferred()
        self._jobs.put((fn, args, result))
        return result

    def stop(self) -> None:
        """Let the jobs already given finish, then end the threads (bounded wait)."""
        threads, self._threads = self._threads, []
        for _ in threads:
            self._jobs.put(None)
        for thread in threads:
            thread.join(STOP_WAIT_SECONDS)
            if thread.is_alive():
                log.error("%s did not finish its job within %.0f s", thread.name, STOP_WAIT_SECONDS)

    def _start(self) -> None:
        if self._call_soon is None:
            loop = getattr(self._reactor, "_asyncioEventloop", None)  # Twisted's AsyncioSelectorReactor
            self._call_soon = loop.call_soon_threadsafe if loop is not None else self._reactor.callFromThread
        for number in range(self._size):
            thread = threading.Thread(target=self._work, name=f"{self._name}-{number}", daemon=True)
            thread.start()
            self._threads.append(thread)

    def _work(self) -> None:
        while True:
            job = self._jobs.get()
            if job is None:
                return
            fn, args, result = job
            try:
                value = fn(*args)
            except BaseException:
                self._deliver(result.errback, Failure())
            else:
                self._deliver(result.callback, value)

    def _deliver(self, fire: Callable[[Any], Any], value: Any) -> None:
        assert self._call_soon is not None  # set before any thread started
        try:
            self._call_soon(fire, value)
        except RuntimeError as exc:  # the loop closed under a job that outlived the node
            log.warning("a %s job finished after the reactor stopped: %s", self._name, exc)
