"""A bounded gate: at most ``total`` holders at once, at most ``per_key`` per supplier,
at most ``max_waiting`` callers queued (FIFO); beyond that :class:`MotionBusy` at once.

A waiter whose supplier is at its own cap does not block those behind it for other
suppliers (no head-of-line blocking by one slow supplier). A waiter may cancel its
Deferred; it then leaves the queue.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable
from typing import Any

from twisted.internet.defer import Deferred, fail, succeed

from bitdust.storage.motion.errors import MotionBusy


class Slot:
    """One admission; :meth:`release` exactly once (extra calls are harmless)."""

    def __init__(self, release: Callable[[], None]) -> None:
        self._release: Callable[[], None] | None = release

    def release(self) -> None:
        release, self._release = self._release, None
        if release is not None:
            release()


class Throttle:
    def __init__(self, total: Callable[[], int], per_key: Callable[[], int], max_waiting: int) -> None:
        self._total = total
        self._per_key = per_key
        self.max_waiting = max_waiting
        self.in_flight = 0
        self._by_key: dict[str, int] = {}
        self._waiting: deque[tuple[str, Deferred[Slot]]] = deque()

    @property
    def waiting(self) -> int:
        return len(self._waiting)

    def in_flight_for(self, key: str) -> int:
        return self._by_key.get(key, 0)

    def acquire(self, key: str) -> Deferred[Slot]:
        # Every waiter is blocked by a cap (a release wakes all that fit), so one that
        # fits now jumps no fair queue: a waiter of the same supplier would not fit either.
        if self._fits(key):
            return succeed(self._take(key))
        if len(self._waiting) >= self.max_waiting:
            raise MotionBusy(f"{len(self._waiting)} pieces are already waiting to move")
        entry: tuple[str, Deferred[Slot]]

        def cancelled(_d: Deferred[Slot]) -> None:
            if entry in self._waiting:
                self._waiting.remove(entry)

        waiter: Deferred[Slot] = Deferred(cancelled)
        entry = (key, waiter)
        self._waiting.append(entry)
        return waiter

    def run(self, key: str, work: Callable[[], Deferred[Any]]) -> Deferred[Any]:
        """``work()`` once admitted; the slot is released when its Deferred ends."""
        try:
            admitted = self.acquire(key)
        except MotionBusy as exc:
            return fail(exc)

        def go(slot: Slot) -> Deferred[Any]:
            try:
                running = work()
            except Exception:
                slot.release()
                raise

            def done(result: Any) -> Any:
                slot.release()
                return result

            return running.addBoth(done)

        return admitted.addCallback(go)

    def _fits(self, key: str) -> bool:
        return self.in_flight < max(1, self._total()) and self._by_key.get(key, 0) < max(1, self._per_key())

    def _take(self, key: str) -> Slot:
        self.in_flight += 1
        self._by_key[key] = self._by_key.get(key, 0) + 1
        return Slot(lambda: self._give_back(key))

    def _give_back(self, key: str) -> None:
        self.in_flight -= 1
        left = self._by_key.get(key, 0) - 1
        if left > 0:
            self._by_key[key] = left
        else:
            self._by_key.pop(key, None)
        self._wake()

    def _wake(self) -> None:
        """Admit every waiter that fits, oldest first. An admitted waiter's work may end
        at once (a piece failed before anything was sent) and release its slot, which
        wakes waiters from inside this loop: after each admission the scan starts over
        on the queue as it is now."""
        index = 0
        while index < len(self._waiting) and self.in_flight < max(1, self._total()):
            key, waiter = self._waiting[index]
            if not self._fits(key):
                index += 1
                continue
            del self._waiting[index]
            waiter.callback(self._take(key))
            index = 0
