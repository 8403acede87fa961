"""supplier_finder: one random candidate supplier from the DHT, at fire_hire's request.

It never proposes this node itself, a node already in the supplier list (the caller
passes those as ``exclude``), nor one that refused or dropped us recently
(:class:`RecentRefusals`). Whether the candidate really has room is for the candidate
to say: the free space in a DHT offer may be old, so the lookup filters only on the
ECC map and fire_hire asks the node (a supplier_connector) before hiring it.

A lookup that returns nothing usable is tried again up to :data:`LOOKUP_ATTEMPTS`
times (the DHT may answer a partial bucket set), then ``nothing`` is reported.
"""

from __future__ import annotations

import logging
from collections import OrderedDict
from collections.abc import Callable, Iterable
from typing import Any

from twisted.internet.defer import Deferred
from twisted.internet.interfaces import IReactorTime
from twisted.python.failure import Failure

from bitdust.automats.automat import ANY, Automat, AutomatRegistry, Transition

log = logging.getLogger(__name__)

LOOKUP_ATTEMPTS = 3
CANDIDATES_PER_LOOKUP = 8
REFUSAL_SECONDS = 3600.0
MAX_REFUSALS = 256

Lookup = Callable[[int, set[str]], Deferred[list[str]]]
"""(how many, idurls to leave out) -> random available idurls."""
Report = Callable[[str | None, str], None]
"""(idurl or None, why none) -> None: the finder's answer to whoever started it."""


class RecentRefusals:
    """Nodes that refused, dropped us or went offline while serving us, with when.

    Bounded (oldest forgotten first) and timed: a node that had no room an hour ago
    may have room now.
    """

    def __init__(self, clock: IReactorTime, seconds: float = REFUSAL_SECONDS, limit: int = MAX_REFUSALS) -> None:
        self.clock = clock
        self.seconds = seconds
        self.limit = limit
        self._when: OrderedDict[str, float] = OrderedDict()

    def add(self, idurl: str) -> None:
        self._when.pop(idurl, None)
        self._when[idurl] = self.clock.seconds()
        while len(self._when) > self.limit:
            self._when.popitem(last=False)

    def discard(self, idurl: str) -> None:
        self._when.pop(idurl, None)

    def current(self) -> set[str]:
        cutoff = self.clock.seconds() - self.seconds
        for idurl in [i for i, t in self._when.items() if t < cutoff]:
            del self._when[idurl]
        return set(self._when)


class SupplierFinder(Automat):
    name = "supplier_finder"
    initial_state = "AT_STARTUP"
    transitions = {
        ("AT_STARTUP", "init"): [Transition("READY")],
        ("READY", "start"): [Transition("LOOKUP", ("begin", "lookup"))],
        ("LOOKUP", "found"): [Transition("READY", ("report_found",))],
        ("LOOKUP", "none"): [Transition("LOOKUP", ("lookup",), guard="more_attempts"),
                             Transition("READY", ("report_nothing",))],
        (ANY, "shutdown"): [Transition("CLOSED", ("destroy_me",))],
    }

    def __init__(self, clock: IReactorTime, registry: AutomatRegistry | None, lookup: Lookup,
                 my_idurl: Callable[[], str | None], refusals: RecentRefusals) -> None:
        self.lookup_fn = lookup
        self.my_idurl = my_idurl
        self.refusals = refusals
        self.attempts = 0
        self.last_error = ""
        self._exclude: set[str] = set()
        self._report: Report = _no_report
        super().__init__(clock, registry)
        self.event("init")

    def find(self, exclude: Iterable[str], report: Report) -> bool:
        """Start a search; False (and nothing reported) when one is already running."""
        if self.state != "READY":
            return False
        self.event("start", set(exclude), report)
        return True

    # -- guards and actions -------------------------------------------------------------

    def is_more_attempts(self, *_args: Any) -> bool:
        return self.attempts < LOOKUP_ATTEMPTS

    def do_begin(self, exclude: set[str], report: Report) -> None:
        self.attempts = 0
        self.last_error = ""
        self._exclude = exclude
        self._report = report

    def do_lookup(self, *_args: Any) -> None:
        self.attempts += 1
        me = self.my_idurl()
        skip = self._exclude | self.refusals.current() | ({me} if me else set())

        def got(found: list[str]) -> None:
            usable = [idurl for idurl in found if idurl not in skip]
            if usable:
                self.event("found", usable[0])
            else:
                self.last_error = "no available node found in the DHT"
                self.event("none")

        def failed(failure: Failure) -> None:
            self.last_error = f"DHT lookup failed: {failure.getErrorMessage()}"
            log.info("supplier_finder: %s", self.last_error)
            self.event("none")

        self.lookup_fn(CANDIDATES_PER_LOOKUP, skip).addCallbacks(got, failed)

    def do_report_found(self, idurl: str) -> None:
        report, self._report = self._report, _no_report
        report(idurl, "")

    def do_report_nothing(self, *_args: Any) -> None:
        report, self._report = self._report, _no_report
        report(None, self.last_error)

    def do_destroy_me(self, *_args: Any) -> None:
        self._report = _no_report
        self.destroy()


def _no_report(_idurl: str | None, _why: str) -> None:
    """Placeholder report while no search runs."""
