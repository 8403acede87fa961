"""fire_hire: keeps ``services/customer/suppliers-number`` good suppliers, one change at a time.

Each decision picks at most one job, in this order:

1. an empty position: hire (find a random node, ask it, put it there once it Acks);
2. a replacement asked through the API (``supplier_replace``/``supplier_change``);
3. a supplier that refused us, dropped us (CancelService), stayed OFFLINE longer
   than ``services/employer/critically-offline-seconds``, or failed
   ``services/employer/piece-failures-limit`` piece requests (corrupt pieces, wrong or
   no answers: :mod:`bitdust.storage.restore.strikes`, read through ``failing``): replace it.

A candidate is asked first and takes the position only once it answered Ack, so a
position is never left empty waiting for a node that says no. Only one job runs at a
time; the next decision follows when it ends.

Decisions are driven by events rather than by the 60 s timer: a supplier's state change
or a resize (the customer service's change listeners) and a new identity of this node
(service_employer listens to it) ask for one at once. A job that found nobody waits
:data:`RETRY_FIRST` seconds, then twice as long each further time up to
:data:`RETRY_MAX` (reset by a hire): on a fresh network the DHT availability index is
empty for the first seconds, and a new localnet must not wait a minute for its suppliers.

**The safety rule** (:func:`may_replace`): with ``ecc/NxN`` any N of the 2N shares of a
block decode it and each supplier holds two shares, so the data survives while at most
``N // 2`` positions are missing. A replaced position counts as missing (its new
supplier holds nothing until the rebuilder refills it), as does every position that is
not CONNECTED right now. A replacement is started only if, counting it, no more than
``N // 2`` positions would be missing. When more are down at once (say a long outage
of half the network) fire_hire waits: an OFFLINE supplier that comes back still has our
pieces, a fired one does not. Hiring into an empty position is always allowed.

``unrebuilt`` is the rebuilder's hook (service_rebuilding sets it to
``BackupRebuilder.unrebuilt``): the positions whose pieces are not
rebuilt yet (they count as missing). ``on_supplier_replaced(position, old, new)``
listeners live on the customer service, which makes every position change.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from twisted.internet.defer import Deferred
from twisted.internet.interfaces import IDelayedCall, IReactorTime

from bitdust.automats.automat import ANY, Automat, AutomatRegistry, Timer, Transition
from bitdust.storage.customer.connector import CONNECTED, DISCONNECTED, OFFLINE, REFUSED, SupplierConnector
from bitdust.storage.customer.finder import RecentRefusals, SupplierFinder

log = logging.getLogger(__name__)

MAX_CANDIDATES = 5
"""Candidates asked for one job before it waits for ``timer-retry``."""
RETRY_FIRST = 2.0
RETRY_MAX = 60.0
MAX_BACKOFF_STEPS = 10
"""Failed jobs counted for the backoff (2 s doubled 5 times passes the cap already)."""


class ReplaceRefused(Exception):
    """A named replacement did not happen; the message says why."""


@dataclass(frozen=True)
class PositionView:
    position: int
    idurl: str
    state: str
    offline_for: float


class Team(Protocol):
    """What fire_hire needs from the customer service."""

    def positions(self) -> list[PositionView]:
        ...

    def ready(self) -> bool:
        """False while the node cannot ask anyone (no identity yet): nothing is decided,
        or every candidate would look offline and be shunned."""

    def probe(self, idurl: str, position: int) -> SupplierConnector:
        """A new connector for a candidate, not yet in the list (it has not asked yet)."""

    def commit(self, position: int, connector: SupplierConnector) -> None:
        """Give ``position`` to the candidate that Acked; the old supplier is told goodbye."""


@dataclass
class Job:
    position: int
    candidate: str | None = None
    """A node named by the user (supplier_change); None: ask the finder."""
    reason: str = ""
    result: Deferred[str] | None = None
    tried: set[str] = field(default_factory=set)
    bad: bool = False
    """The old supplier failed us: it is kept out of the next lookups for a while."""


def missing_positions(views: Sequence[PositionView], unrebuilt: set[int]) -> set[int]:
    return {v.position for v in views if v.state != CONNECTED or not v.idurl or v.position in unrebuilt}


def may_replace(views: Sequence[PositionView], position: int, unrebuilt: set[int] | None = None) -> bool:
    """True when replacing ``position`` keeps at most N // 2 positions missing."""
    others = missing_positions(views, unrebuilt or set()) - {position}
    return len(others) + 1 <= len(views) // 2


class FireHire(Automat):
    name = "fire_hire"
    initial_state = "AT_STARTUP"
    transitions = {
        ("AT_STARTUP", "init"): [Transition("READY", ("decide",))],
        ("READY", "check"): [Transition("READY", ("decide",))],
        ("READY", "timer-60sec"): [Transition("READY", ("decide",))],
        ("READY", "hire"): [Transition("PROBE", ("start_job", "probe"), guard="named"),
                            Transition("FIND", ("start_job", "find"))],
        ("FIND", "found"): [Transition("PROBE", ("probe",))],
        ("FIND", "nothing"): [Transition("WAIT", ("fail_job",))],
        ("PROBE", "probe-connected"): [Transition("READY", ("commit", "check_again"))],
        ("PROBE", "probe-failed"): [Transition("FIND", ("drop_probe", "find"), guard="more_candidates"),
                                    Transition("WAIT", ("drop_probe", "fail_job"), guard="automatic"),
                                    Transition("READY", ("drop_probe", "fail_job", "check_again"))],
        ("WAIT", "timer-retry"): [Transition("READY", ("decide",))],
        ("WAIT", "check"): [Transition("READY", ("decide",))],
        ("WAIT", "request"): [Transition("READY", ("decide",))],
        ("READY", "request"): [Transition("READY", ("decide",))],
        (ANY, "shutdown"): [Transition("CLOSED", ("stop_all",))],
    }
    timers = {"timer-60sec": Timer(60.0, ("READY",)), "timer-retry": Timer(RETRY_FIRST, ("WAIT",))}

    def __init__(self, clock: IReactorTime, registry: AutomatRegistry | None, team: Team, finder: SupplierFinder,
                 refusals: RecentRefusals, offline_limit: Callable[[], float]) -> None:
        self.team = team
        self.finder = finder
        self.refusals = refusals
        self.offline_limit = offline_limit
        self.unrebuilt: Callable[[], set[int]] = set
        self.failing: Callable[[str], str | None] = lambda _idurl: None
        """Why a supplier that answers pings should still go (piece failures), or None."""
        self.job: Job | None = None
        self.last_outcome = ""
        self._requests: dict[int, Job] = {}
        self._probe: SupplierConnector | None = None
        self._deadline: IDelayedCall | None = None
        self.failed_jobs = 0
        """Jobs in a row that ended without a hire: the retry backoff."""
        super().__init__(clock, registry)

    def timer_seconds(self, name: str) -> float:
        if name == "timer-retry":
            return min(RETRY_MAX, RETRY_FIRST * 2 ** self.failed_jobs)
        return super().timer_seconds(name)

    # -- asked by the API --------------------------------------------------------------

    def replace(self, position: int) -> None:
        """Queue a replacement by a random node (one per position, the latest wins)."""
        self._enqueue(Job(position, reason="asked by the user"))

    def change(self, position: int, idurl: str) -> Deferred[str]:
        """Queue a replacement by ``idurl``; fires with the new idurl once it Acked,
        fails with ReplaceRefused when it did not."""
        result: Deferred[str] = Deferred()
        self._enqueue(Job(position, candidate=idurl, reason="asked by the user", result=result))
        return result

    def safe_to_replace(self, position: int) -> bool:
        return may_replace(self.team.positions(), position, self.unrebuilt())

    def _enqueue(self, job: Job) -> None:
        earlier = self._requests.pop(job.position, None)
        if earlier is not None and earlier.result is not None:
            earlier.result.errback(ReplaceRefused("replaced by a newer request for the same position"))
        self._requests[job.position] = job
        self.event("request")

    # -- guards ----------------------------------------------------------------------------

    def is_named(self, job: Job) -> bool:
        return job.candidate is not None

    def is_automatic(self, *_args: Any) -> bool:
        return self.job is not None and self.job.candidate is None

    def is_more_candidates(self, *_args: Any) -> bool:
        return self.is_automatic() and self.job is not None and len(self.job.tried) < MAX_CANDIDATES

    # -- actions ---------------------------------------------------------------------------

    def do_decide(self, *_args: Any) -> None:
        if not self.team.ready():
            return
        views = self.team.positions()
        job = self._next_job(views)
        self._schedule_offline_check(views)
        if job is not None:
            self.event("hire", job)

    def _next_job(self, views: list[PositionView]) -> Job | None:
        by_position = {v.position: v for v in views}
        for position in [p for p in self._requests if p not in by_position]:
            self._drop_request(position, "the position no longer exists (suppliers-number changed)")
        for view in views:
            if not view.idurl:
                self._drop_request(view.position, "")
                return Job(view.position, reason="empty position")
        unrebuilt = self.unrebuilt()
        for position, job in list(self._requests.items()):
            if may_replace(views, position, unrebuilt):
                del self._requests[position]
                return job
        limit = self.offline_limit()
        bad = [v for v in views if v.state in (DISCONNECTED, REFUSED)]
        bad += [v for v in views if v.state == OFFLINE and v.offline_for >= limit]
        for view in bad:
            if may_replace(views, view.position, unrebuilt):
                return Job(view.position, reason=f"{view.idurl} is {view.state}", bad=True)
        for view in views:
            why = self.failing(view.idurl) if view.state == CONNECTED else None
            if why and may_replace(views, view.position, unrebuilt):
                return Job(view.position, reason=f"{view.idurl} {why}", bad=True)
        return None

    def _drop_request(self, position: int, why: str) -> None:
        job = self._requests.pop(position, None)
        if job is not None and job.result is not None:
            job.result.errback(ReplaceRefused(why or "the position became empty and is hired anew"))

    def _schedule_offline_check(self, views: list[PositionView]) -> None:
        """Wake up when the next OFFLINE supplier passes the limit (no polling)."""
        if self._deadline is not None and self._deadline.active():
            self._deadline.cancel()
        self._deadline = None
        limit = self.offline_limit()
        waits = [limit - v.offline_for for v in views if v.state == OFFLINE and v.offline_for < limit]
        if waits:
            self._deadline = self.clock.callLater(max(0.0, min(waits)) + 0.01, self.event, "check")

    def do_start_job(self, job: Job) -> None:
        self.job = job
        log.info("fire_hire: position %d: %s", job.position, job.reason)

    def do_find(self, *_args: Any) -> None:
        assert self.job is not None
        exclude = {v.idurl for v in self.team.positions() if v.idurl} | self.job.tried
        if not self.finder.find(exclude, self._found):
            self.event("nothing", "supplier_finder is busy")

    def _found(self, idurl: str | None, why: str) -> None:
        if idurl is None:
            self.event("nothing", why)
        else:
            self.event("found", idurl)

    def do_probe(self, arg: Job | str) -> None:
        assert self.job is not None
        idurl = arg if isinstance(arg, str) else self.job.candidate
        assert idurl is not None
        self.job.tried.add(idurl)
        probe = self.team.probe(idurl, self.job.position)
        self._probe = probe
        probe.add_state_listener(self._on_probe_state)
        probe.event("connect")

    def _on_probe_state(self, machine: Automat, _old: str, new: str, _event: str) -> None:
        if machine is not self._probe:
            return
        if new == CONNECTED:
            self.event("probe-connected")
        elif new in (REFUSED, OFFLINE, DISCONNECTED):
            self.event("probe-failed")

    def do_commit(self, *_args: Any) -> None:
        job, probe = self.job, self._probe
        assert job is not None and probe is not None
        self.job, self._probe = None, None
        probe.remove_state_listener(self._on_probe_state)
        old = next((v.idurl for v in self.team.positions() if v.position == job.position), "")
        if old and job.bad:
            self.refusals.add(old)
        self.failed_jobs = 0
        self.team.commit(job.position, probe)
        self.last_outcome = f"position {job.position}: {probe.idurl} hired" + (f" instead of {old}" if old else "")
        log.info("fire_hire: %s", self.last_outcome)
        if job.result is not None:
            job.result.callback(probe.idurl)

    def do_drop_probe(self, *_args: Any) -> None:
        probe, self._probe = self._probe, None
        if probe is None:
            return
        probe.remove_state_listener(self._on_probe_state)
        if self.job is not None:
            self.job.reason = f"{probe.idurl}: {probe.state.lower()} ({probe.reason})"
        if probe.state in (REFUSED, OFFLINE, DISCONNECTED):
            self.refusals.add(probe.idurl)
        # OFFLINE: it may have said yes too late; tell it we do not need it after all.
        probe.event("disconnect" if probe.state == OFFLINE else "shutdown")

    def do_fail_job(self, why: str = "") -> None:
        job, self.job = self.job, None
        if job is None:
            return
        self.failed_jobs = min(MAX_BACKOFF_STEPS, self.failed_jobs + 1)
        self.last_outcome = f"position {job.position}: not replaced: {why or job.reason}"
        log.info("fire_hire: %s", self.last_outcome)
        if job.result is not None:
            job.result.errback(ReplaceRefused(why or job.reason))

    def do_check_again(self, *_args: Any) -> None:
        self.event("check")

    def do_stop_all(self, *_args: Any) -> None:
        if self._deadline is not None and self._deadline.active():
            self._deadline.cancel()
        self._deadline = None
        self.do_drop_probe()
        self.do_fail_job("fire_hire stopped")
        for position in list(self._requests):
            self._drop_request(position, "fire_hire stopped")
        self.destroy()
