"""list_files_orator: asks suppliers what they hold for us, one round at a time.

A round asks every wanted position at once (each supplier answers its own ListFiles)
and ends when all have answered or failed; ``refresh`` during a round is remembered
and served by the next round, so a burst of refreshes costs at most two rounds. The
last answer of each position is kept with the idurl that gave it: a listing is never
attributed to the supplier that replaced its author. A supplier that fails to answer
loses its listing (unknown, not empty: it may still hold everything).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from typing import Any

from twisted.internet.defer import Deferred
from twisted.internet.interfaces import IReactorTime
from twisted.python.failure import Failure

from bitdust.automats.automat import ANY, Automat, AutomatRegistry, Transition

log = logging.getLogger(__name__)

READY = "READY"
ASKING = "ASKING"
CLOSED = "CLOSED"

Lister = Callable[[str], Deferred[dict[str, int]]]


class ListFilesOrator(Automat):
    name = "list_files_orator"
    transitions = {
        ("AT_STARTUP", "init"): [Transition(READY)],
        (READY, "refresh"): [Transition(ASKING, ("want", "ask_round"))],
        (ASKING, "refresh"): [Transition(ASKING, ("want",))],
        (ASKING, "answer"): [Transition(ASKING, ("remember",))],
        (ASKING, "round-done"): [Transition(ASKING, ("finish_round", "ask_round"), guard="more_wanted"),
                                 Transition(READY, ("finish_round",))],
        (ANY, "shutdown"): [Transition(CLOSED, ("abort",))],
    }

    def __init__(self, clock: IReactorTime, registry: AutomatRegistry | None, lister: Lister,
                 supplier_at: Callable[[int], str | None], size: Callable[[], int]) -> None:
        super().__init__(clock, registry)
        self._lister = lister
        self._supplier_at = supplier_at
        self._size = size
        self.listings: dict[int, tuple[str, dict[str, int]]] = {}
        self.errors: dict[int, str] = {}
        self._wanted: set[int] = set()
        self._next_waiters: list[Deferred[None]] = []
        self._round_waiters: list[Deferred[None]] = []
        self._outstanding = 0
        self._round = 0
        self._listeners: list[Callable[[int], None]] = []

    # -- what others call ------------------------------------------------------------------

    def refresh(self, positions: Iterable[int] | None = None) -> Deferred[None]:
        """Fires (never fails) once a round that asked these positions (all when None) ended."""
        done: Deferred[None] = Deferred()
        if self.state == CLOSED:
            done.callback(None)
            return done
        self._next_waiters.append(done)
        wanted = set(range(self._size())) if positions is None else set(positions)
        self.event("refresh", wanted)
        return done

    def held(self, position: int) -> dict[str, int] | None:
        entry = self.listings.get(position)
        if entry is None or not entry[0] or entry[0] != self._supplier_at(position):
            return None
        return dict(entry[1])

    def size(self) -> int:
        """Positions there are now (the suppliers number)."""
        return self._size()

    def known_idurl(self, position: int) -> str | None:
        entry = self.listings.get(position)
        return entry[0] if entry is not None else None

    def add_listener(self, listener: Callable[[int], None]) -> None:
        """``listener(position)`` after a new listing of ``position`` arrived."""
        self._listeners.append(listener)

    def remove_listener(self, listener: Callable[[int], None]) -> None:
        self._listeners = [fn for fn in self._listeners if fn is not listener]

    # -- guards and actions ----------------------------------------------------------------

    def is_more_wanted(self, *_args: Any) -> bool:
        return bool(self._wanted)

    def do_want(self, positions: set[int]) -> None:
        self._wanted |= {p for p in positions if 0 <= p < self._size()}

    def do_ask_round(self, *_args: Any) -> None:
        asked, self._wanted = sorted(self._wanted), set()
        self._round += 1
        self._round_waiters, self._next_waiters = self._next_waiters, []
        self._outstanding = 0
        round_number = self._round
        for position in asked:
            idurl = self._supplier_at(position)
            if not idurl:
                self.listings.pop(position, None)
                continue
            self._outstanding += 1
            self._lister(idurl).addCallbacks(
                self._answered, self._not_answered, callbackArgs=(round_number, position, idurl),
                errbackArgs=(round_number, position, idurl))
        if self._outstanding == 0:
            self.event("round-done")

    def _answered(self, pieces: dict[str, int], round_number: int, position: int, idurl: str) -> None:
        if round_number == self._round and self.state == ASKING:
            self.event("answer", position, idurl, pieces, None)

    def _not_answered(self, failure: Failure, round_number: int, position: int, idurl: str) -> None:
        if round_number == self._round and self.state == ASKING:
            self.event("answer", position, idurl, None, failure.getErrorMessage())

    def do_remember(self, position: int, idurl: str, pieces: dict[str, int] | None, error: str | None) -> None:
        if pieces is not None:
            self.listings[position] = (idurl, pieces)
            self.errors.pop(position, None)
        else:
            log.info("position %d (%s) did not list its files: %s", position, idurl, error)
            self.listings.pop(position, None)
            self.errors[position] = error or "no answer"
        self._outstanding -= 1
        if pieces is not None:
            for listener in list(self._listeners):
                listener(position)
        if self._outstanding <= 0:
            self.event("round-done")

    def do_finish_round(self, *_args: Any) -> None:
        waiters, self._round_waiters = self._round_waiters, []
        for waiter in waiters:
            waiter.callback(None)

    def do_abort(self, *_args: Any) -> None:
        self._round += 1  # late answers are ignored
        waiters = self._round_waiters + self._next_waiters
        self._round_waiters, self._next_waiters = [], []
        for waiter in waiters:
            waiter.callback(None)
        self.destroy()
