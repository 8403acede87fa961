"""Piece failures per supplier, added up so that fire_hire can replace a supplier that keeps failing.

A supplier can answer every RequestService (its connector stays CONNECTED, it is never
OFFLINE, so fire_hire's offline rule never sees it) and still fail at the one thing it is
there for: it sends pieces that do not verify (wrong bytes, truncated, a piece of another
version or of another customer), a piece under another name, or nothing at all in time.
Restore and rebuild see that one piece at a time; :class:`PieceStrikes` adds those failures
up per idurl over a sliding window, and once a supplier reaches the limit it calls
``on_failing`` (service_customer tells fire_hire, which replaces it under its safety rule).

What counts (:data:`STRIKE_KINDS`): ``corrupt`` (a piece proven wrong by verification of its
block), ``wrong-answer`` (a bad piece frame, or a piece under another name), ``no-answer``
(a timeout while the supplier was CONNECTED: an offline one is the offline rule's business).
What does not: ``not-found`` (a new supplier before the rebuilder refilled it; missing
pieces are the rebuilder's work, not a reason to fire), ``busy``/``over-quota``, and our own
limits. A good piece does not wipe out failures: a supplier that corrupts one piece in two
reaches the limit as well, only later.

Memory is bounded: at most ``limit`` timestamps per supplier, at most :data:`MAX_SUPPLIERS`
suppliers (the oldest forgotten first).
"""

from __future__ import annotations

import logging
from collections import OrderedDict, deque
from collections.abc import Callable
from typing import Any

from twisted.internet.interfaces import IReactorTime

log = logging.getLogger(__name__)

MAX_SUPPLIERS = 256
STRIKE_KINDS = ("corrupt", "wrong-answer", "no-answer")


class PieceStrikes:
    """Failed piece requests per supplier idurl, within the last ``window()`` seconds."""

    def __init__(self, clock: IReactorTime, limit: Callable[[], int], window: Callable[[], float],
                 on_failing: Callable[[str], None] = lambda _idurl: None) -> None:
        self.clock = clock
        self.limit = limit
        self.window = window
        self.on_failing = on_failing
        self._strikes: OrderedDict[str, deque[tuple[float, str]]] = OrderedDict()
        self.counts: dict[str, int] = {kind: 0 for kind in STRIKE_KINDS}
        """Every strike ever recorded by kind (what the tests and the logs read)."""

    def record(self, idurl: str, kind: str, why: str = "") -> None:
        """One failed piece request of ``idurl``; ``on_failing`` once it reaches the limit."""
        if kind not in STRIKE_KINDS:
            raise ValueError(f"unknown strike kind {kind!r}")
        self.counts[kind] += 1
        limit = self.limit()
        if limit <= 0 or not idurl:
            return  # 0: piece failures never fire anyone
        was_failing = self.failing(idurl) is not None
        history = self._strikes.pop(idurl, None)
        if history is None or history.maxlen != limit:
            history = deque(history or (), maxlen=limit)
        history.append((self.clock.seconds(), kind))
        self._strikes[idurl] = history
        while len(self._strikes) > MAX_SUPPLIERS:
            self._strikes.popitem(last=False)
        log.info("supplier %s: %s piece (%s)", idurl, kind, why)
        if not was_failing and self.failing(idurl) is not None:
            log.warning("supplier %s failed %d piece requests in %g s: to be replaced", idurl, limit,
                        self.window())
            self.on_failing(idurl)

    def failing(self, idurl: str) -> str | None:
        """Why ``idurl`` should be replaced, or None while it is within the limit."""
        limit = self.limit()
        history = self._strikes.get(idurl)
        if limit <= 0 or history is None or len(history) < limit:
            return None
        recent = [kind for when, kind in history if when >= self.clock.seconds() - self.window()]
        if len(recent) < limit:
            return None
        kinds = ", ".join(f"{recent.count(kind)} {kind}" for kind in STRIKE_KINDS if kind in recent)
        return f"{len(recent)} failed piece requests in {self.window():g} s ({kinds})"

    def forget(self, idurl: str) -> None:
        self._strikes.pop(idurl, None)

    def as_dict(self) -> dict[str, Any]:
        return {"counts": dict(self.counts), "suppliers": {idurl: len(h) for idurl, h in self._strikes.items()}}
