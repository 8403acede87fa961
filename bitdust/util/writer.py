"""Saving a file that changes often without blocking the reactor on its fsync."""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any

from twisted.internet.defer import Deferred
from twisted.internet.threads import deferToThreadPool
from twisted.python.failure import Failure

from bitdust.util.fs import atomic_write

log = logging.getLogger(__name__)


class CoalescingWriter:
    """Writes ``snapshot()`` to ``path`` in the thread pool, one write at a time.

    A save asked for while a write runs is folded into one more write after it, so the
    file always ends with the newest state and the number of writes stays bounded no
    matter how often callers ask. :meth:`save` fires once a write that started after
    the call (so it includes the caller's change) is on disk. The snapshot is taken on
    the reactor thread when a write starts; only the write itself (temp file, fsync,
    rename, see :func:`atomic_write`) runs in the pool. ``point`` names its crash points.
    """

    def __init__(self, reactor: Any, path: Path, snapshot: Callable[[], bytes], mode: int = 0o600,
                 point: str | None = None) -> None:
        self._reactor = reactor
        self._path = path
        self._snapshot = snapshot
        self._mode = mode
        self._point = point
        self._writing = False
        self._next: list[Deferred[None]] = []

    def save(self) -> Deferred[None]:
        waiter: Deferred[None] = Deferred()
        self._next.append(waiter)
        if not self._writing:
            self._write_round()
        return waiter

    def _write_round(self) -> None:
        waiters, self._next = self._next, []
        self._writing = True
        try:
            data = self._snapshot()
        except Exception:
            self._written(Failure(), waiters)
            return
        pool = self._reactor.getThreadPool()
        writing = deferToThreadPool(self._reactor, pool, atomic_write, self._path, data, self._mode, self._point)
        writing.addBoth(self._written, waiters)

    def _written(self, result: Failure | None, waiters: list[Deferred[None]]) -> None:
        self._writing = False
        if isinstance(result, Failure):
            log.error("%s not saved: %s", self._path, result.getErrorMessage())
        for waiter in waiters:
            if isinstance(result, Failure):
                waiter.errback(result)
            else:
                waiter.callback(None)
        if self._next:
            self._write_round()
