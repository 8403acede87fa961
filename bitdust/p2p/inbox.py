"""The bounded queue behind ``receive_one_message()``.

Private messages and broadcasts land here until an API caller takes them. A caller that
finds the queue empty waits, but never longer than its timeout; a message that arrives
while callers wait goes to the oldest waiter. Both the queue and the number of waiting
callers are bounded, so a flood of messages or of API calls cannot grow memory: when the
queue is full the oldest unread message is dropped (and counted).
"""

from __future__ import annotations

from collections import deque
from typing import Any

from twisted.internet.defer import Deferred
from twisted.internet.interfaces import IDelayedCall, IReactorTime

MAX_QUEUED = 1000
MAX_WAITERS = 100
MAX_WAIT_SECONDS = 600.0

Item = dict[str, Any]


class InboxBusy(RuntimeError):
    """Too many callers are already waiting for a message."""


class Inbox:
    def __init__(self, clock: IReactorTime, max_queued: int = MAX_QUEUED, max_waiters: int = MAX_WAITERS) -> None:
        self._clock = clock
        self._queue: deque[Item] = deque()
        self._max_queued = max_queued
        self._max_waiters = max_waiters
        self._waiters: deque[tuple[Deferred[list[Item]], IDelayedCall]] = deque()
        self.overflowed = 0
        self.delivered = 0

    def __len__(self) -> int:
        return len(self._queue)

    def put(self, item: Item) -> None:
        """Hand ``item`` to the oldest waiter, else queue it (dropping the oldest if full)."""
        self.delivered += 1
        while self._waiters:
            waiter, timer = self._waiters.popleft()
            if waiter.called:
                continue
            timer.cancel()
            waiter.callback([item])
            return
        self._queue.append(item)
        while len(self._queue) > self._max_queued:
            self._queue.popleft()
            self.overflowed += 1

    def take(self, timeout: float) -> Deferred[list[Item]]:
        """Fire with ``[item]`` at once if one is queued, else with the next one to arrive,
        or with ``[]`` after ``timeout`` seconds (bounded by :data:`MAX_WAIT_SECONDS`)."""
        if self._queue:
            ready: Deferred[list[Item]] = Deferred()
            ready.callback([self._queue.popleft()])
            return ready
        self._waiters = deque((d, t) for d, t in self._waiters if not d.called)
        if len(self._waiters) >= self._max_waiters:
            raise InboxBusy(f"{self._max_waiters} callers are already waiting for a message")
        waiter: Deferred[list[Item]] = Deferred()
        timer = self._clock.callLater(max(0.0, min(float(timeout), MAX_WAIT_SECONDS)), self._expire, waiter)
        self._waiters.append((waiter, timer))
        return waiter

    def close(self) -> None:
        """Release every waiter with ``[]`` (the service is stopping)."""
        waiters, self._waiters = self._waiters, deque()
        for waiter, timer in waiters:
            if timer.active():
                timer.cancel()
            if not waiter.called:
                waiter.callback([])

    def _expire(self, waiter: Deferred[list[Item]]) -> None:
        if not waiter.called:
            waiter.callback([])
