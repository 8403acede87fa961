"""customer_patrol's verdicts and rounds on a Clock: idle, over quota, shrunk donation."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest_twisted
from twisted.internet import reactor
from twisted.internet.defer import Deferred, succeed
from twisted.internet.task import Clock

from bitdust.storage.market import ServiceRequest
from bitdust.storage.supplier.patrol import DAY, CustomerPatrol
from bitdust.storage.supplier.store import SupplierStore

A, B, C = (f"http://127.0.0.1:8084/{name}.xml" for name in ("alice", "bob", "carol"))


@pytest_twisted.inlineCallbacks
def contracted(tmp_path: Path, clock: Clock, donated: list[int]) -> Any:
    store = SupplierStore(reactor, clock, tmp_path / "customers", tmp_path / "contracts.json", lambda: donated[0])
    yield store.load()
    for idurl in (A, B, C):
        clock.advance(1)
        yield store.request_service(idurl, ServiceRequest(100, "ecc/2x2", 0))
    return store


@pytest_twisted.inlineCallbacks
def test_verdicts(tmp_path: Path) -> Any:
    clock, donated, idle_days = Clock(), [1000], [0]
    store = yield contracted(tmp_path, clock, donated)
    patrol = CustomerPatrol(clock, store, lambda *_a: succeed(0), lambda: idle_days[0])
    patrol.start()
    clock.advance(10 * DAY)
    assert patrol.verdicts() == [], "idle days 0: silence never counts"
    idle_days[0] = 30
    assert patrol.verdicts() == [], "idle time counts from the patrol's start"
    store.touch(A)
    clock.advance(25 * DAY)
    assert [v.idurl for v in patrol.verdicts()] == [B, C]
    idle_days[0] = 0
    donated[0] = 150  # 300 granted: the two newest contracts must go
    assert [(v.idurl, v.code) for v in patrol.verdicts()] == [(C, "rejected"), (B, "rejected")]
    patrol.stop()
    yield store.close()


@pytest_twisted.inlineCallbacks
def test_rounds_reject_through_the_callback(tmp_path: Path) -> Any:
    clock, donated = Clock(), [1000]
    store = yield contracted(tmp_path, clock, donated)
    calls: list[tuple[str, str, str]] = []

    def reject(idurl: str, code: str, reason: str) -> Deferred[int]:
        calls.append((idurl, code, reason))
        return store.drop_customer(idurl, reason)

    patrol = CustomerPatrol(clock, store, reject, lambda: 1, interval=60)
    patrol.start()
    store.touch(A)
    clock.advance(DAY - 30)
    store.touch(B)
    for _ in range(200):  # LoopingCall rounds every 60 s of Clock time
        clock.advance(60)
    assert [(c[0], c[1]) for c in calls] == [(A, "rejected"), (C, "rejected")]
    assert patrol.rounds >= 2
    if patrol.running_round is not None:
        yield patrol.running_round
    assert [c.idurl for c in store.customers()] == [B]
    patrol.stop()
    yield store.close()
