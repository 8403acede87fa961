"""supplier_connector, supplier_finder and fire_hire with fake I/O and task.Clock."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from twisted.internet.defer import Deferred, fail, succeed
from twisted.internet.task import Clock

from bitdust.automats.automat import Automat, AutomatRegistry, check_table
from bitdust.storage.customer.connector import (
    CONNECTED,
    DISCONNECTED,
    OFFLINE,
    REFUSED,
    Refused,
    SupplierConnector,
)
from bitdust.storage.customer.finder import RecentRefusals, SupplierFinder
from bitdust.storage.customer.fire_hire import FireHire, PositionView, ReplaceRefused, may_replace
from bitdust.storage.customer.suppliers import SupplierList, SupplierListError
from bitdust.storage.market import ServiceRequest
from bitdust.transport.fail import UNAVAILABLE, FailReason
from bitdust.transport.outbox import GatewayTimeout


def idurl(name: str) -> str:
    return f"http://127.0.0.1:1/node_{name}.xml"


class FakeLink:
    """Records every call; the test answers each by firing the Deferred it returned."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, str, Any]] = []
        self.requests: dict[str, list[Deferred[int]]] = {}
        self.lists: dict[str, list[Deferred[dict[str, int]]]] = {}

    def request_service(self, who: str, request: ServiceRequest) -> Deferred[int]:
        self.calls.append(("request", who, request))
        d: Deferred[int] = Deferred()
        self.requests.setdefault(who, []).append(d)
        return d

    def cancel_service(self, who: str) -> Deferred[None]:
        self.calls.append(("cancel", who, None))
        return succeed(None)

    def list_files(self, who: str) -> Deferred[dict[str, int]]:
        self.calls.append(("list", who, None))
        d: Deferred[dict[str, int]] = Deferred()
        self.lists.setdefault(who, []).append(d)
        return d

    def ack(self, who: str, quota: int = 100) -> None:
        self.requests[who].pop(0).callback(quota)

    def refuse(self, who: str, code: str = "no-space") -> None:
        self.requests[who].pop(0).errback(Refused(FailReason(code, "too small")))

    def time_out(self, who: str) -> None:
        self.requests[who].pop(0).errback(GatewayTimeout("no reply"))


def request_for(position: int) -> ServiceRequest:
    return ServiceRequest(256, "ecc/4x4", position)


def make_connector(clock: Clock, link: FakeLink, name: str = "s0", position: int = 0) -> SupplierConnector:
    return SupplierConnector(clock, AutomatRegistry(), link, idurl(name), position, request_for)


# -- tables -------------------------------------------------------------------------------

@pytest.mark.parametrize("machine", [SupplierConnector, SupplierFinder, FireHire])
def test_tables_are_complete(machine: type[Automat]) -> None:
    assert check_table(machine) == []


# -- supplier_connector -------------------------------------------------------------------

def test_connector_ack_then_files() -> None:
    clock, link = Clock(), FakeLink()
    connector = make_connector(clock, link, position=2)
    connector.event("connect")
    assert connector.state == "REQUEST"
    assert link.calls == [("request", idurl("s0"), ServiceRequest(256, "ecc/4x4", 2))]
    link.ack(idurl("s0"), 256)
    assert connector.state == CONNECTED and connector.quota_bytes == 256
    assert link.calls[-1] == ("list", idurl("s0"), None)
    link.lists[idurl("s0")].pop().callback({"0/F1/0-2-Data": 10, "0/F1/0-2-Parity": 12})
    assert (connector.numfiles, connector.used_bytes) == (2, 22)


def test_connector_refused_keeps_reason() -> None:
    clock, link = Clock(), FakeLink()
    connector = make_connector(clock, link)
    connector.event("connect")
    link.refuse(idurl("s0"))
    assert connector.state == REFUSED
    assert connector.reason == "no-space: too small"
    assert not any(call[0] == "list" for call in link.calls)


def test_connector_a_node_not_serving_yet_is_offline_not_refused() -> None:
    """A supplier restarting answers through its gateway before its supplier service is
    up: that must not look like a refusal, which fire_hire acts on at once."""
    clock, link = Clock(), FakeLink()
    connector = make_connector(clock, link)
    connector.event("connect")
    link.ack(idurl("s0"))
    connector.event("connect")
    link.requests[idurl("s0")].pop(0).errback(
        Refused(FailReason(UNAVAILABLE, "RequestService is not served by this node")))
    assert connector.state == OFFLINE and connector.reason.startswith("unavailable: RequestService")
    connector.event("connect")
    link.ack(idurl("s0"))
    assert connector.state == CONNECTED


def test_connector_offline_time_counts_from_first_miss() -> None:
    clock, link = Clock(), FakeLink()
    connector = make_connector(clock, link)
    connector.event("connect")
    link.ack(idurl("s0"))
    clock.advance(100)
    connector.event("connect")  # the periodic re-check
    assert connector.state == CONNECTED, "stays connected while it is asked again"
    link.time_out(idurl("s0"))
    assert connector.state == OFFLINE and connector.offline_for() == 0
    clock.advance(30)
    connector.event("connect")
    link.time_out(idurl("s0"))
    assert connector.offline_for() == 30, "a second miss does not restart the count"
    connector.event("connect")
    link.ack(idurl("s0"))
    assert connector.state == CONNECTED and connector.offline_for() == 0


def test_connector_asks_once_at_a_time() -> None:
    clock, link = Clock(), FakeLink()
    connector = make_connector(clock, link)
    connector.event("connect")
    link.ack(idurl("s0"))
    connector.event("connect")
    connector.event("connect")
    assert [c[0] for c in link.calls].count("request") == 2


def test_connector_rejected_disconnect_and_shutdown() -> None:
    clock, link = Clock(), FakeLink()
    registry = AutomatRegistry()
    connector = SupplierConnector(clock, registry, link, idurl("s0"), 0, request_for)
    connector.event("connect")
    link.ack(idurl("s0"))
    connector.event("rejected", "rejected: idle")
    assert connector.state == DISCONNECTED and connector.reason == "rejected: rejected: idle"
    connector.event("disconnect")
    assert connector.state == "CLOSED"
    assert link.calls[-1] == ("cancel", idurl("s0"), None)
    assert registry.all() == []
    quiet = SupplierConnector(clock, registry, link, idurl("s1"), 1, request_for)
    quiet.event("shutdown")
    assert not any(call == ("cancel", idurl("s1"), None) for call in link.calls), "shutdown says no goodbye"


def test_connector_ignores_answers_after_close() -> None:
    clock, link = Clock(), FakeLink()
    connector = make_connector(clock, link)
    connector.event("connect")
    connector.event("shutdown")
    link.ack(idurl("s0"))
    assert connector.state == "CLOSED"


# -- supplier_finder ----------------------------------------------------------------------

class FakeLookup:
    def __init__(self, answers: list[Any]) -> None:
        self.answers = answers
        self.asked: list[set[str]] = []

    def __call__(self, count: int, exclude: set[str]) -> Deferred[list[str]]:
        self.asked.append(set(exclude))
        answer = self.answers.pop(0) if self.answers else []
        return fail(answer) if isinstance(answer, Exception) else succeed(list(answer))


def test_finder_skips_me_suppliers_and_refusals() -> None:
    clock = Clock()
    refusals = RecentRefusals(clock, seconds=60)
    refusals.add(idurl("bad"))
    lookup = FakeLookup([[idurl("me"), idurl("s1"), idurl("bad"), idurl("new")]])
    finder = SupplierFinder(clock, None, lookup, lambda: idurl("me"), refusals)
    results: list[tuple[str | None, str]] = []
    assert finder.find({idurl("s1")}, lambda who, why: results.append((who, why)))
    assert results == [(idurl("new"), "")]
    assert lookup.asked == [{idurl("me"), idurl("s1"), idurl("bad")}]
    assert finder.state == "READY"


def test_finder_retries_then_reports_nothing() -> None:
    clock = Clock()
    lookup = FakeLookup([[], RuntimeError("dht down"), []])
    finder = SupplierFinder(clock, None, lookup, lambda: None, RecentRefusals(clock))
    results: list[tuple[str | None, str]] = []
    finder.find(set(), lambda who, why: results.append((who, why)))
    assert len(lookup.asked) == 3
    assert results == [(None, "no available node found in the DHT")]


def test_finder_runs_one_search_at_a_time() -> None:
    clock = Clock()
    pending: Deferred[list[str]] = Deferred()
    finder = SupplierFinder(clock, None, lambda _c, _e: pending, lambda: None, RecentRefusals(clock))
    assert finder.find(set(), lambda _w, _y: None)
    assert not finder.find(set(), lambda _w, _y: None)
    pending.callback([idurl("x")])
    assert finder.state == "READY"


def test_refusals_expire_and_are_bounded() -> None:
    clock = Clock()
    refusals = RecentRefusals(clock, seconds=10, limit=2)
    for name in ("a", "b", "c"):
        refusals.add(idurl(name))
    assert refusals.current() == {idurl("b"), idurl("c")}
    clock.advance(11)
    assert refusals.current() == set()


# -- the safety rule ---------------------------------------------------------------------

def views(*states: str) -> list[PositionView]:
    return [PositionView(n, idurl(f"s{n}") if s else "", s, 0.0) for n, s in enumerate(states)]


def test_may_replace_keeps_half_the_positions() -> None:
    assert may_replace(views(CONNECTED, CONNECTED, CONNECTED, OFFLINE), 3)
    assert may_replace(views(CONNECTED, CONNECTED, OFFLINE, OFFLINE), 3), "2 of 4 missing is still decodable"
    assert not may_replace(views(CONNECTED, OFFLINE, OFFLINE, OFFLINE), 3)
    assert not may_replace(views(CONNECTED, CONNECTED, OFFLINE, OFFLINE), 0), "a healthy one would make 3"
    assert may_replace(views(CONNECTED, REFUSED), 1)
    assert not may_replace(views(OFFLINE, REFUSED), 1)
    assert not may_replace(views(CONNECTED, CONNECTED, CONNECTED, CONNECTED), 0, unrebuilt={1, 2})
    assert may_replace(views(*([CONNECTED] * 4 + [OFFLINE] * 3)), 6), "7 suppliers: 3 may be missing"
    assert not may_replace(views(*([CONNECTED] * 4 + [OFFLINE] * 3)), 0)
    assert not may_replace(views(*([CONNECTED] * 3 + [OFFLINE] * 4)), 6)


# -- fire_hire ----------------------------------------------------------------------------

class FakeTeam:
    """The customer service as fire_hire sees it, with connectors on a FakeLink."""

    def __init__(self, clock: Clock, size: int) -> None:
        self.clock = clock
        self.link = FakeLink()
        self.slots: dict[int, SupplierConnector | None] = {n: None for n in range(size)}
        self.events: list[tuple[str, int, str]] = []

    def ready(self) -> bool:
        return True

    def positions(self) -> list[PositionView]:
        return [PositionView(n, c.idurl if c else "", c.state if c else "", c.offline_for() if c else 0.0)
                for n, c in sorted(self.slots.items())]

    def probe(self, who: str, position: int) -> SupplierConnector:
        self.events.append(("probe", position, who))
        return SupplierConnector(self.clock, None, self.link, who, position, request_for)

    def commit(self, position: int, connector: SupplierConnector) -> None:
        old = self.slots[position]
        if old is not None:
            old.event("disconnect")
        self.events.append(("commit", position, connector.idurl))
        self.slots[position] = connector

    def put(self, position: int, name: str, state: str) -> SupplierConnector:
        connector = SupplierConnector(self.clock, None, self.link, idurl(name), position, request_for)
        connector.event("connect")
        if state == CONNECTED:
            self.link.ack(idurl(name))
        elif state == OFFLINE:
            self.link.time_out(idurl(name))
        elif state == REFUSED:
            self.link.refuse(idurl(name))
        self.slots[position] = connector
        return connector


def make_fire_hire(size: int, candidates: list[list[str]], limit: float = 60.0
                   ) -> tuple[Clock, FakeTeam, FireHire, FakeLookup]:
    clock = Clock()
    team = FakeTeam(clock, size)
    refusals = RecentRefusals(clock)
    lookup = FakeLookup([[idurl(n) for n in names] for names in candidates])
    finder = SupplierFinder(clock, None, lookup, lambda: idurl("me"), refusals)
    fire_hire = FireHire(clock, None, team, finder, refusals, lambda: limit)
    return clock, team, fire_hire, lookup


def test_fire_hire_fills_empty_positions_one_at_a_time() -> None:
    _clock, team, fire_hire, lookup = make_fire_hire(2, [["a"], ["b"]])
    fire_hire.event("init")
    assert team.events == [("probe", 0, idurl("a"))], "one job at a time"
    assert fire_hire.state == "PROBE"
    team.link.ack(idurl("a"))
    assert team.events[1:] == [("commit", 0, idurl("a")), ("probe", 1, idurl("b"))]
    assert lookup.asked[1] >= {idurl("a"), idurl("me")}, "never an existing supplier or itself"
    team.link.ack(idurl("b"))
    assert team.events[-1] == ("commit", 1, idurl("b"))
    assert fire_hire.state == "READY"


def test_fire_hire_waits_for_an_identity() -> None:
    clock, team, fire_hire, lookup = make_fire_hire(2, [["a"]])
    team.ready = lambda: False  # type: ignore[method-assign]
    fire_hire.event("init")
    clock.advance(61)
    assert team.events == [] and lookup.asked == [], "nobody is asked (and shunned) without an identity"
    team.ready = lambda: True  # type: ignore[method-assign]
    fire_hire.event("check")
    assert team.events == [("probe", 0, idurl("a"))]


def test_fire_hire_tries_another_candidate_after_a_refusal() -> None:
    _clock, team, fire_hire, _lookup = make_fire_hire(2, [["small"], ["good"]])
    team.put(1, "s1", CONNECTED)
    fire_hire.event("init")
    team.link.refuse(idurl("small"))
    assert fire_hire.state == "PROBE"
    assert fire_hire.refusals.current() == {idurl("small")}
    team.link.ack(idurl("good"))
    assert [e for e in team.events if e[0] == "commit"] == [("commit", 0, idurl("good"))]


def test_fire_hire_waits_when_nobody_is_found() -> None:
    clock, team, fire_hire, _lookup = make_fire_hire(2, [[], [], [], ["late"]])
    team.put(1, "s1", CONNECTED)
    fire_hire.event("init")
    assert fire_hire.state == "WAIT"
    assert "no available node" in fire_hire.last_outcome
    clock.advance(15)
    assert team.events == [("probe", 0, idurl("late"))]


def test_fire_hire_replaces_offline_supplier_after_the_limit() -> None:
    clock, team, fire_hire, _lookup = make_fire_hire(4, [["new"]], limit=30)
    for n in range(4):
        team.put(n, f"s{n}", CONNECTED)
    fire_hire.event("init")
    old = team.slots[2]
    assert old is not None
    old.event("connect")
    team.link.time_out(idurl("s2"))
    fire_hire.event("check")
    assert team.events == [], "not before the limit"
    clock.advance(29)
    assert team.events == []
    clock.advance(1.1)  # fire_hire woke up by itself at the deadline
    assert team.events == [("probe", 2, idurl("new"))]
    team.link.ack(idurl("new"))
    assert team.events[-1] == ("commit", 2, idurl("new"))
    assert ("cancel", idurl("s2"), None) in team.link.calls, "the fired supplier is told"
    assert idurl("s2") in fire_hire.refusals.current(), "and not hired again right away"


def test_fire_hire_never_fires_too_many() -> None:
    clock, team, fire_hire, _lookup = make_fire_hire(4, [["n1"], ["n2"]], limit=10)
    team.put(0, "s0", CONNECTED)
    for n in (1, 2, 3):
        team.put(n, f"s{n}", OFFLINE)
    fire_hire.event("init")
    clock.advance(100)
    fire_hire.event("check")
    assert team.events == [], "3 of 4 down: firing any of them could lose data"
    team.slots[1] = team.put(1, "s1", CONNECTED)  # one came back: now 2 of 4 are down
    fire_hire.event("check")
    assert team.events == [("probe", 2, idurl("n1"))]


def test_fire_hire_replaces_refused_and_rejected_suppliers() -> None:
    _clock, team, fire_hire, _lookup = make_fire_hire(4, [["n1"], ["n2"]])
    for n in range(4):
        team.put(n, f"s{n}", CONNECTED)
    fire_hire.event("init")
    rejected = team.slots[3]
    assert rejected is not None
    rejected.event("rejected", "rejected: by the user")
    fire_hire.event("check")
    assert team.events == [("probe", 3, idurl("n1"))]
    team.link.ack(idurl("n1"))
    assert team.events[-1] == ("commit", 3, idurl("n1"))


def test_fire_hire_change_to_named_node() -> None:
    _clock, team, fire_hire, lookup = make_fire_hire(2, [])
    team.put(0, "s0", CONNECTED)
    team.put(1, "s1", CONNECTED)
    fire_hire.event("init")
    outcome: list[Any] = []
    fire_hire.change(1, idurl("named")).addBoth(outcome.append)
    assert team.events == [("probe", 1, idurl("named"))]
    assert lookup.asked == [], "a named node needs no lookup"
    team.link.ack(idurl("named"))
    assert outcome == [idurl("named")]
    assert team.events[-1] == ("commit", 1, idurl("named"))


def test_fire_hire_change_refused_keeps_old_supplier() -> None:
    _clock, team, fire_hire, _lookup = make_fire_hire(2, [])
    team.put(0, "s0", CONNECTED)
    team.put(1, "s1", CONNECTED)
    fire_hire.event("init")
    outcome: list[Any] = []
    fire_hire.change(1, idurl("small")).addBoth(outcome.append)
    team.link.refuse(idurl("small"))
    assert isinstance(outcome[0].value, ReplaceRefused)
    assert "no-space" in str(outcome[0].value)
    assert [e for e in team.events if e[0] == "commit"] == []
    assert fire_hire.state == "READY"


def test_fire_hire_shutdown_fails_pending_requests() -> None:
    clock, team, fire_hire, _lookup = make_fire_hire(2, [])
    team.put(0, "s0", CONNECTED)
    team.put(1, "s1", CONNECTED)
    fire_hire.event("init")
    outcome: list[Any] = []
    fire_hire.change(0, idurl("slow")).addBoth(outcome.append)
    fire_hire.event("shutdown")
    assert isinstance(outcome[0].value, ReplaceRefused)
    assert fire_hire.state == "CLOSED" and clock.getDelayedCalls() == []


# -- the supplier list ------------------------------------------------------------------

def test_supplier_list_survives_reload_and_resize(tmp_path: Path) -> None:
    path = tmp_path / "customer" / "suppliers.json"
    suppliers = SupplierList.load(path, 4)
    suppliers.assign(2, idurl("c"), 1000.0)
    suppliers.assign(0, idurl("a"), None)
    suppliers.mark_connected(0, 2000.0)
    again = SupplierList.load(path, 4)
    assert [(s.position, s.idurl, s.connected) for s in again.slots()] == [
        (0, idurl("a"), 2000.0), (1, "", None), (2, idurl("c"), 1000.0), (3, "", None)]
    assert again.resize(2) == [idurl("c")]  # retained (see bitdust.storage.reencode), not dropped
    assert (again.size, again.span, [s.idurl for s in again.retained()]) == (2, 4, [idurl("c"), ""])
    assert again.release(2) == [idurl("c")]
    assert SupplierList.load(path, 7).idurls() == [idurl("a")]
    with pytest.raises(SupplierListError):
        again.assign(1, idurl("a"), None)
    path.write_text("{not json")
    with pytest.raises(SupplierListError):
        SupplierList.load(path, 4)


def test_fire_hire_retries_soon_then_backs_off_up_to_a_minute() -> None:
    """A fresh network: the DHT index is empty for the first seconds, so the first retry
    comes after 2 s rather than 15 or 60; then the wait doubles, capped at 60 s."""
    lookups_per_job = 3  # supplier_finder's attempts before it reports nothing
    clock, team, fire_hire, lookup = make_fire_hire(1, [[]] * 100)
    fire_hire.event("init")
    asked = [len(lookup.asked)]
    for wait in (2.0, 4.0, 8.0, 16.0, 32.0, 60.0, 60.0):
        assert fire_hire.state == "WAIT"
        clock.advance(wait - 0.01)
        assert len(lookup.asked) == asked[-1], f"no retry before {wait} s"
        clock.advance(0.01)
        asked.append(len(lookup.asked))
        assert asked[-1] == asked[-2] + lookups_per_job, f"a retry after {wait} s"
    lookup.answers = [[idurl("late")]]
    clock.advance(60)
    team.link.ack(idurl("late"))
    assert team.events[-1] == ("commit", 0, idurl("late"))
    assert fire_hire.failed_jobs == 0, "a hire resets the backoff"


def test_node_tells_identity_listeners_only_about_a_new_document(tmp_path: Path) -> None:
    """fire_hire and the p2p_connector hear of an identity made or re-signed while running."""
    from types import SimpleNamespace
    from typing import cast

    from bitdust.identity.document import Identity
    from bitdust.node import Node

    node = Node(tmp_path / "home", reactor=Clock(), services={})
    heard: list[object] = []
    listener = heard.append
    node.add_identity_listener(listener)
    first = cast(Identity, SimpleNamespace(idurl="http://127.0.0.1:8084/alice.xml", revision=1))
    node.my_identity = first
    node.my_identity = cast(Identity, SimpleNamespace(idurl="http://127.0.0.1:8084/alice.xml", revision=1))
    assert heard == [first]
    node.remove_identity_listener(listener)
    node.my_identity = None
    assert heard == [first]
