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

A thread pays only when a core is idle to run it on. With every core busy (several nodes on
a small machine, a backup and its suppliers) the hand-off cost each side of a signed 1 MB
packet 0.15-0.2 ms of CPU (wake-ups, preemption, the GIL changing hands) and bought no
parallelism: two nodes in two processes on 2 cores moved 926 MB/s with the checks done on
the reactor against 756 through the pool. With an idle core the pool is what lets a node
hash while its reactor moves bytes (two nodes in one process: 57-68% of a raw socket
through the pool, 38-48% without). So :meth:`CpuPool.worth_a_thread` tells callers whose job
could run either way (the gateway's packet hashing) whether the machine had a core to
spare lately (``/proc/stat``), with hysteresis so the answer does not flap.

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
import time
from collections.abc import Callable
from typing import Any, Literal, TypeVar

from twisted.internet.defer import Deferred
from twisted.python.failure import Failure

log = logging.getLogger(__name__)

T = TypeVar("T")
STOP_WAIT_SECONDS = 10.0
IDLE_SAMPLE_SECONDS = 0.2
STOP_THREADS_BELOW_IDLE = 0.33
"""Cores idle (over the last sample) under which jobs run on the caller's thread..."""
RESUME_THREADS_ABOVE_IDLE = 0.7
"""...and over which they go to the pool again (between the two, the answer holds).
Measured on 2 cores, two nodes moving 1 MB packets: through the pool, in one process the
machine kept 0.44-0.52 cores idle (threads pay: the reactor is the bottleneck), in two
processes 0.15-0.24 (they do not); on the reactor, 0.99 and 0.06."""
_Job = tuple[Callable[..., Any], tuple[Any, ...], "Deferred[Any]"]


def default_size() -> int:
    return max(1, min(4, os.cpu_count() or 2))


def read_cpu_times(path: str = "/proc/stat") -> tuple[int, int] | None:
    """(idle, total) clock ticks of all CPUs since boot, or None where there is no such file."""
    try:
        with open(path, "rb") as stat:
            fields = stat.readline().split()
    except OSError:
        return None
    if len(fields) < 6 or fields[0] != b"cpu":
        return None
    ticks = [int(field) for field in fields[1:9]]
    return ticks[3] + ticks[4], sum(ticks)  # idle + iowait, of user..steal


class IdleCores:
    """How many cores the machine left idle over the last sample (at most every
    ``IDLE_SAMPLE_SECONDS``, read when asked: no timer to run)."""

    def __init__(self, read: Callable[[], tuple[int, int] | None] = read_cpu_times,
                 now: Callable[[], float] = time.monotonic, cpus: int | None = None) -> None:
        self._read = read
        self._now = now
        self._cpus = cpus or os.cpu_count() or 1
        self._last: tuple[float, tuple[int, int]] | None = None
        self._idle: float | None = None

    def __call__(self) -> float | None:
        """Idle cores over the last full sample; None until one is known (or never, off Linux)."""
        at = self._now()
        if self._last is None or at - self._last[0] >= IDLE_SAMPLE_SECONDS:
            ticks = self._read()
            if ticks is None:
                return None
            if self._last is not None:
                idle, total = ticks[0] - self._last[1][0], ticks[1] - self._last[1][1]
                if total > 0:
                    self._idle = self._cpus * idle / total
            self._last = (at, ticks)
        return self._idle


class CpuPool:
    def __init__(self, reactor: Any, size: int | None = None, name: str = "cpu",
                 idle_cores: Callable[[], float | None] | None = None) -> None:
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
        self._idle_cores = idle_cores if idle_cores is not None else IdleCores()
        self._threads_pay = True
        self.mode: Literal["auto", "threads", "inline"] = "auto"
        """What :meth:`worth_a_thread` answers: from the idle cores, or always yes, or no."""

    @property
    def threads(self) -> int:
        """Threads running now (0 before the first job and after :meth:`stop`)."""
        return len(self._threads)

    def worth_a_thread(self) -> bool:
        """Whether a job that could run on the caller's thread is better sent to the pool:
        yes while the machine has a core to spare (see the module docstring)."""
        if self.mode != "auto":
            return self.mode == "threads"
        idle = self._idle_cores()
        if idle is None:
            return True
        if self._threads_pay and idle < STOP_THREADS_BELOW_IDLE:
            self._threads_pay = False
        elif not self._threads_pay and idle > RESUME_THREADS_ABOVE_IDLE:
            self._threads_pay = True
        return self._threads_pay

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
