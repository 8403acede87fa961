"""An in-process BitDust network (the approach of Tahoe-LAFS's no_network grid, but over
real loopback sockets): node 0 runs the identity server and is the DHT seed; every node
has every built service, its own home and ports, and an identity registered on node 0's
server, exactly as ``bitdust identity create`` does it."""

from __future__ import annotations

import socket
from collections.abc import Callable, Generator
from pathlib import Path
from typing import Any, TypeVar

import pytest_twisted
from twisted.internet.defer import Deferred, inlineCallbacks
from twisted.internet.task import deferLater
from twisted.python.failure import Failure

from bitdust.api.results import error_from_exception
from bitdust.config import Config
from bitdust.crypto.keys import PrivateKey
from bitdust.node import Node
from bitdust.services.broadcasting import BroadcastingService
from bitdust.services.dht import DhtService
from bitdust.services.identity_propagate import IdentityPropagateService
from bitdust.services.identity_server import IdentityServerService
from bitdust.services.p2p_hookups import P2PHookupsService
from bitdust.services.private_messages import PrivateMessagesService
from bitdust.services.service import Service
from bitdust.services.supplier import SupplierService
from bitdust.transport.gateway import Gateway
from bitdust.util.net import free_port

S = TypeVar("S", bound=Service)
POLL_SECONDS = 0.05


def configure(home: Path, key: PrivateKey, id_server_port: int, dht_seed_port: int | None) -> Path:
    """Free ports for every listener, node 0's servers as seeds, a ready key (no keygen)."""
    config = Config(home / "config")
    config.set("interface/api/json-rpc-port", free_port())
    config.set("personal/private-key-size", 2048)
    config.set("services/tcp-connections/tcp-port", free_port())
    config.set("services/udp-transport/udp-port", free_port(socket.SOCK_DGRAM))
    config.set("services/dht/udp-port", free_port(socket.SOCK_DGRAM))
    config.set("services/identity-propagate/known-servers", f"127.0.0.1:{id_server_port}")
    if dht_seed_port is None:
        config.set("services/identity-server/enabled", True)
        config.set("services/identity-server/web-port", id_server_port)
    else:
        config.set("services/dht/known-nodes", f"127.0.0.1:{dht_seed_port}")
    metadata = home / "metadata"
    metadata.mkdir(parents=True, exist_ok=True, mode=0o700)
    key.save(metadata / "mykeyfile")
    return home


def market_grid(reactor: Any, root: Path, count: int, customer: int, share: int, block: int) -> Generator[
        list[Node], None, None]:
    """A started grid of ``count`` nodes where node ``customer`` is the only customer and
    the others only suppliers; hiring waits (employer off) until the test turns it on
    once the suppliers are announced. Stops every node still running at the end."""
    keys = [PrivateKey.generate(2048) for _ in range(count)]
    for n in range(count):
        config = Config(root / f"node{n}" / "config")
        config.set("services/customer/enabled", n == customer)
        config.set("services/employer/enabled", False)
        config.set("services/supplier/enabled", n != customer)
        config.set("services/supplier/donated-space", 64 * share)
        config.set("services/customer/needed-space", 4 * share)
        config.set("services/customer/recheck-seconds", 1)
        config.set("services/customer/request-timeout-seconds", 1)
        config.set("services/employer/critically-offline-seconds", 3600)
        config.set("services/backups/block-size", block)
    nodes = pytest_twisted.blockon(make_grid(reactor, root, keys))
    yield nodes
    for node in reversed(nodes):
        if node.shutdowner.state != "FINISHED":  # some tests stop nodes themselves
            pytest_twisted.blockon(node.stop())


def api(node: Node, method: str, *args: Any) -> Any:
    """Call an API method as the JSON-RPC server does: an exception becomes the ERROR answer."""
    assert node.api is not None
    call = node.api.methods.lookup(method)
    assert call is not None
    try:
        answer = call(*args)
    except Exception:
        return error_from_exception(method, Failure())
    if isinstance(answer, Deferred):
        return answer.addErrback(lambda failure: error_from_exception(method, failure))
    return answer


def ok(answer: Any) -> Any:
    """The result of an API answer that must be OK (the whole answer in the failure)."""
    assert answer["status"] == "OK", answer
    return answer["result"]


def idurl(node: Node) -> str:
    assert node.my_identity is not None
    return node.my_identity.idurl


def service(node: Node, cls: type[S]) -> S:
    instance = node.services.instance(cls.name)
    assert isinstance(instance, cls), f"{cls.name} is not built"
    return instance


def gateway_of(node: Node) -> Gateway:
    return service(node, P2PHookupsService).gateway()


def hookups(node: Node) -> P2PHookupsService:
    return service(node, P2PHookupsService)


def messages(node: Node) -> PrivateMessagesService:
    return service(node, PrivateMessagesService)


def broadcasting(node: Node) -> BroadcastingService:
    return service(node, BroadcastingService)


def dht_of(node: Node) -> DhtService:
    return service(node, DhtService)


def within(deferred: Deferred[Any], seconds: float, reactor: Any) -> Deferred[Any]:
    """``deferred``, failing with TimeoutError after ``seconds``: every wait is bounded."""
    return deferred.addTimeout(seconds, reactor)


@inlineCallbacks
def wait_until(reactor: Any, predicate: Callable[[], bool], timeout: float, what: str) -> Generator[Any, Any, None]:
    """Re-check ``predicate`` every 50 ms until it holds; AssertionError after ``timeout``."""
    deadline = reactor.seconds() + timeout
    while not predicate():
        if reactor.seconds() > deadline:
            raise AssertionError(f"timed out after {timeout:g} s waiting for {what}")
        yield deferLater(reactor, POLL_SECONDS, lambda: None)


def published(node: Node) -> bool:
    """The supplier's availability record is in the DHT."""
    announcer = service(node, SupplierService).announcer
    return announcer is not None and announcer.publisher is not None and announcer.publisher.last is not None


@inlineCallbacks
def announce_suppliers(reactor: Any, grid: list[Node], timeout: float) -> Generator[Any, Any, list[Node]]:
    """Make every node running service_supplier announce itself now (rather than at its
    announcer's next 30 s check) and wait until every record is published; returns them."""
    donors = [node for node in grid if node.services.is_on("service_supplier")]
    for node in donors:
        announcer = service(node, SupplierService).announcer
        assert announcer is not None
        announcer.check()
    yield wait_until(reactor, lambda: all(published(node) for node in donors), timeout, "availability published")
    return donors


@inlineCallbacks
def make_grid(reactor: Any, root: Path, keys: list[PrivateKey]) -> Generator[Any, Any, list[Node]]:
    """Start ``len(keys)`` nodes named node0..; fires with them once each is registered,
    p2p-connected and listed in the DHT presence index. The caller stops them; on a
    failure here, the nodes started so far are stopped before the error goes up."""
    id_port = free_port()
    homes = [configure(root / "node0", keys[0], id_port, None)]
    seed_port = Config(homes[0] / "config").get("services/dht/udp-port")
    homes += [configure(root / f"node{n}", keys[n], id_port, seed_port) for n in range(1, len(keys))]
    nodes: list[Node] = []
    try:
        for home in homes:
            node = Node(home, reactor=reactor)
            nodes.append(node)
            yield node.start()
        assert service(nodes[0], IdentityServerService).port == id_port
        for n, node in enumerate(nodes):
            yield service(node, IdentityPropagateService).register(f"node{n}")
        for node in nodes:
            connector = hookups(node).running_connector()
            connector.event("reconnect")  # do not wait for its 2 s re-check
            yield within(connector.when_state("CONNECTED"), 10, reactor)
            presence = broadcasting(node).presence
            assert presence is not None
            yield presence.publish_now()
    except BaseException:
        for node in reversed(nodes):
            yield node.stop()
        raise
    return nodes
