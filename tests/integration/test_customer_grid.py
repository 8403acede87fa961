"""The customer side on a six-node in-process grid with the real supplier service.

node0 is the seed (identity server, DHT seed) and a supplier, node1 the customer,
node2..node5 suppliers; node5 donates less than one supplier's share, so it refuses.
The tests run in file order on one grid, each starting from where the last one left
it: hire, change, customer_reject, a killed supplier, a restarted customer. Timers are
short through the config (recheck 1 s, request timeout 1 s, offline limit 2 s).
"""

from __future__ import annotations

import socket
from collections.abc import Generator
from pathlib import Path
from typing import Any

import pytest
import pytest_twisted
from twisted.internet import reactor
from twisted.internet.defer import Deferred

from bitdust.config import Config
from bitdust.crypto.keys import PrivateKey
from bitdust.node import Node
from bitdust.services.customer import CustomerService
from bitdust.services.employer import EmployerService
from bitdust.services.nodes_lookup import NodesLookupService
from tests.integration.grid import announce_suppliers, api, free_port, idurl, make_grid, service, wait_until

COUNT = 6
CUSTOMER = 1
SMALL = 5
WAIT = 30.0
SHARE = 1024 * 1024  # needed-space 4 MB over 4 suppliers


@pytest.fixture(scope="module")
def grid(tmp_path_factory: pytest.TempPathFactory) -> Generator[list[Node], None, None]:
    keys = [PrivateKey.generate(2048) for _ in range(COUNT)]
    root: Path = tmp_path_factory.mktemp("market")
    for n in range(COUNT):
        config = Config(root / f"node{n}" / "config")
        config.set("services/customer/enabled", False)  # only node1 hires, and only when told to
        config.set("services/employer/enabled", False)
        config.set("services/supplier/enabled", n != CUSTOMER)
        config.set("services/supplier/donated-space", SHARE // 2 if n == SMALL else 64 * SHARE)
        config.set("services/customer/needed-space", 4 * SHARE)
        config.set("services/customer/recheck-seconds", 1)
        config.set("services/customer/request-timeout-seconds", 1)
        config.set("services/employer/critically-offline-seconds", 2)
    nodes = pytest_twisted.blockon(make_grid(reactor, root, keys))
    yield nodes
    for node in reversed(nodes):
        if node.shutdowner.state != "FINISHED":  # the tests stop some themselves
            pytest_twisted.blockon(node.stop())




def customer_of(node: Node) -> CustomerService:
    return service(node, CustomerService)


def rows(node: Node) -> list[dict[str, Any]]:
    answer = api(node, "suppliers_list")
    assert answer["status"] == "OK", answer
    return list(answer["result"])


def all_online(node: Node) -> bool:
    listed = rows(node)
    return len(listed) == 4 and all(r["status"] == "online" and r["idurl"] for r in listed)


def hired(node: Node) -> list[str]:
    return [r["idurl"] for r in rows(node)]


def fire_hire_idle(node: Node) -> bool:
    fire_hire = service(node, EmployerService).fire_hire
    return fire_hire is not None and fire_hire.state in ("READY", "WAIT")


def by_idurl(grid: list[Node], who: str) -> Node:
    return next(n for n in grid if n.my_identity is not None and idurl(n) == who)


@pytest_twisted.inlineCallbacks
def test_customer_hires_four_distinct_suppliers_and_the_small_one_refuses(grid: list[Node]) -> Any:
    customer = grid[CUSTOMER]
    answer = api(customer, "suppliers_list")
    assert answer == {"status": "ERROR", "errors": ["suppliers_list is not available: service_customer is not running"]}
    answer = api(customer, "supplier_replace", 0)
    assert answer["errors"] == ["supplier_replace is not available: service_employer is not running"]
    yield announce_suppliers(reactor, grid, WAIT)
    small = idurl(grid[SMALL])
    lookup = service(customer, NodesLookupService)
    real_find = lookup.find

    def small_first(count: int, exclude: Any = (), ecc_map: str | None = None) -> Deferred[list[str]]:
        """Put the small node first so that it is surely asked (the DHT order is random)."""
        return real_find(count, exclude, ecc_map).addCallback(
            lambda found: sorted(found, key=lambda who: who != small))

    lookup.find = small_first  # type: ignore[method-assign]
    try:
        yield customer.services.start_service("service_employer")
        assert customer.services.is_on("service_customer")
        yield wait_until(reactor, lambda: all_online(customer), WAIT, "4 suppliers online")
    finally:
        lookup.find = real_find  # type: ignore[method-assign]
    suppliers = hired(customer)
    assert len(set(suppliers)) == 4 and idurl(customer) not in suppliers
    assert small not in suppliers
    assert small in customer_of(customer).refusals.current(), "the small node was asked and refused"
    assert sorted(suppliers) == sorted(idurl(n) for i, n in enumerate(grid) if i not in (CUSTOMER, SMALL))
    for position, who in enumerate(suppliers):
        contracts = api(by_idurl(grid, who), "customers_list")["result"]
        assert [(c["idurl"], c["position"]) for c in contracts] == [(idurl(customer), position)]
    listed = rows(customer)
    assert [r["position"] for r in listed] == [0, 1, 2, 3]
    assert all(len(r["connected"]) == 19 for r in listed), listed  # dd-mm-YYYY HH:MM:SS
    space = api(customer, "space_consumed")["result"][0]
    assert space["needed"] == 4 * SHARE and space["neededpersupplier"] == SHARE
    assert space["suppliersnum"] == 4 and space["used"] == 0 and space["usedpercent"] == "0%"
    assert set(space) == {"available", "availablepersupplier", "availablepersupplierstr", "availablestr", "needed",
                          "neededpersupplier", "neededpersupplierstr", "neededstr", "suppliersnum", "used",
                          "usedpersupplier", "usedpersupplierstr", "usedpercent", "usedstr"}
    assert api(customer, "suppliers_ping") == {"status": "OK", "result": "requests to all suppliers was sent"}


@pytest_twisted.inlineCallbacks
def test_supplier_change_to_a_named_node(grid: list[Node]) -> Any:
    customer, small = grid[CUSTOMER], grid[SMALL]
    before = hired(customer)
    refused = yield api(customer, "supplier_change", 0, idurl(small))
    assert refused["status"] == "ERROR" and "no-space" in refused["errors"][0], refused
    assert hired(customer) == before, "the old supplier is kept"
    yield wait_until(reactor, lambda: fire_hire_idle(customer), WAIT, "fire_hire idle")

    small.config.set("services/supplier/donated-space", 64 * SHARE)
    customer_of(customer).refusals.discard(idurl(small))
    answer = yield api(customer, "supplier_change", before[0], idurl(small))
    assert answer == {"status": "OK", "result": f"supplier {before[0]} will be replaced by {idurl(small)}"}
    assert hired(customer) == [idurl(small), *before[1:]]
    released = by_idurl(grid, before[0])
    yield wait_until(reactor, lambda: api(released, "customers_list")["result"] == [], WAIT,
                     "the released supplier dropped our contract")
    yield wait_until(reactor, lambda: all_online(customer), WAIT, "4 suppliers online")
    again = yield api(customer, "supplier_change", 1, idurl(small))
    assert again["status"] == "ERROR" and "already the supplier at position 0" in again["errors"][0]


@pytest_twisted.inlineCallbacks
def test_customer_reject_makes_the_customer_replace_that_supplier(grid: list[Node]) -> Any:
    customer = grid[CUSTOMER]
    before = hired(customer)
    rejecting = by_idurl(grid, before[1])
    spare = next(idurl(n) for i, n in enumerate(grid) if i != CUSTOMER and idurl(n) not in before)
    answer = yield api(rejecting, "customer_reject", idurl(customer))
    assert answer["status"] == "OK", answer
    yield wait_until(reactor, lambda: hired(customer)[1] == spare and all_online(customer), WAIT,
                     "the rejecting supplier replaced")
    assert hired(customer) == [before[0], spare, *before[2:]]
    assert idurl(rejecting) in customer_of(customer).refusals.current()


@pytest_twisted.inlineCallbacks
def test_killed_supplier_is_replaced_after_the_offline_limit(grid: list[Node]) -> Any:
    customer = grid[CUSTOMER]
    before = hired(customer)
    position = next(p for p, who in enumerate(before) if who != idurl(grid[0]))  # node0 serves identities
    victim = by_idurl(grid, before[position])
    replacements = set(customer_of(customer).refusals.current()) - set(before)
    for who in replacements:  # the only spare left is the node that rejected us: forgive it for the test
        customer_of(customer).refusals.discard(who)
    yield victim.stop()
    yield wait_until(reactor, lambda: rows(customer)[position]["status"] == "offline", WAIT, "supplier offline")
    yield wait_until(reactor, lambda: hired(customer)[position] != idurl(victim) and all_online(customer), WAIT,
                     "the dead supplier replaced")
    after = hired(customer)
    assert [who for p, who in enumerate(after) if p != position] == [w for p, w in enumerate(before) if p != position]
    assert idurl(victim) in customer_of(customer).refusals.current()


@pytest_twisted.inlineCallbacks
def test_restarted_customer_keeps_its_suppliers_and_positions(grid: list[Node]) -> Any:
    customer = grid[CUSTOMER]
    before = hired(customer)
    yield customer.stop()
    again = Node(customer.home.root, reactor=reactor)
    grid[CUSTOMER] = again  # stopped by the fixture at the end
    yield again.start()
    assert again.services.is_on("service_employer")
    assert hired(again) == before, "positions come back from customer/suppliers.json"
    yield wait_until(reactor, lambda: all_online(again), WAIT, "suppliers online after the restart")
    assert hired(again) == before
    for position, who in enumerate(before):
        contracts = api(by_idurl(grid, who), "customers_list")["result"]
        assert [(c["idurl"], c["position"]) for c in contracts] == [(idurl(again), position)]


@pytest_twisted.inlineCallbacks
def test_customer_restarted_on_new_ports_is_answered_there_at_once(grid: list[Node]) -> Any:
    """The suppliers keep our identity cached; only our Identity packet (sent by the
    p2p_connector to every supplier) makes them answer to the new ports."""
    customer = grid[CUSTOMER]
    before = hired(customer)
    old_contacts = customer.my_identity.contacts if customer.my_identity is not None else None
    yield customer.stop()
    config = Config(customer.home.config)
    config.set("services/tcp-connections/tcp-port", free_port())
    config.set("services/udp-transport/udp-port", free_port(socket.SOCK_DGRAM))
    again = Node(customer.home.root, reactor=reactor)
    grid[CUSTOMER] = again
    yield again.start()
    assert again.my_identity is not None and again.my_identity.contacts != old_contacts
    # Well under any cache expiry or 30 s re-check: the suppliers learn it from the packet.
    yield wait_until(reactor, lambda: all_online(again), 10.0, "suppliers answer on the new ports")
    assert hired(again) == before
    for who in before:
        cached = by_idurl(grid, who).identity_cache.get_cached(idurl(again))
        assert cached is not None and cached.contacts == again.my_identity.contacts
