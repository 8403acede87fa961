"""service_dht inside whole nodes: seeds from the config, nicknames through the API.

Identities are made in the test and handed to each node's identity cache as a peer
would (no identity server needed): the DHT checks every record against them.
"""

from __future__ import annotations

from collections.abc import Callable, Generator
from pathlib import Path
from typing import Any

import pytest
import pytest_twisted
from twisted.internet import reactor, threads

from bitdust.api.client import ApiClient
from bitdust.config import Config
from bitdust.identity.document import Identity
from bitdust.identity.idurl import make_idurl
from bitdust.node import Node
from bitdust.services.dht import DhtService


def dht_service(node: Node) -> DhtService:
    service = node.services.instance("service_dht")
    assert isinstance(service, DhtService)
    return service


def api(node: Node, method: str, *args: Any) -> Any:
    method_fn = node.api.methods.lookup(method) if node.api is not None else None
    assert method_fn is not None
    return method_fn(*args)


@pytest.fixture
def network(make_home: Callable[[str], Path]) -> Generator[Callable[[int], Any], None, None]:
    nodes: list[Node] = []

    @pytest_twisted.inlineCallbacks
    def start(count: int) -> Any:
        homes = [make_home(f"node{n}") for n in range(count)]
        seed_port = Config(homes[0] / "config").get("services/dht/udp-port")
        for home in homes[1:]:
            Config(home / "config").set("services/dht/known-nodes", [f"127.0.0.1:{seed_port}"])
        for n, home in enumerate(homes):
            node = Node(home, reactor=reactor)
            nodes.append(node)
            yield node.start()
            assert node.key is not None and node.packet_key is not None
            node.my_identity = Identity.create(node.key, [make_idurl("127.0.0.1", 8084, f"node{n}")], [],
                                               packet_key=node.packet_key)
        for node in nodes:
            for other in nodes:
                assert other.my_identity is not None
                node.identity_cache.add(other.my_identity)
        return nodes

    yield start
    for node in nodes:
        pytest_twisted.blockon(node.stop())


@pytest_twisted.inlineCallbacks
def test_nicknames_through_the_api(network: Callable[[int], Any]) -> Any:
    first, second, third = yield network(3)
    for node in (first, second, third):
        assert node.services.state("service_dht") == "ON"
    assert dht_service(second).running_dht().neighbours(), "bootstrapped from services/dht/known-nodes"

    answer = yield api(second, "set_my_nickname", "Bob")
    assert answer == {"status": "OK", "result": "nickname Bob registered", "nickname": "Bob",
                      "idurl": second.my_identity.idurl}
    assert second.config.get("personal/nickname") == "Bob"
    holder = dht_service(second).nickname_holder
    assert holder is not None and holder.state == "REGISTERED"
    assert any(row["name"] == "nickname_holder" for row in second.automats.as_api())

    # Through the real JSON-RPC client, as the CLI does.
    client = ApiClient.from_home(third.home.root, timeout=10.0)
    found = yield threads.deferToThread(client.call, "find_peer_by_nickname", "bob")
    assert found == {"status": "OK", "result": {"nickname": "Bob", "idurl": second.my_identity.idurl}}

    taken = yield api(first, "set_my_nickname", "BOB")
    assert taken == {"status": "ERROR", "errors": [f"nickname BOB is already taken by {second.my_identity.idurl}"]}
    missing = yield api(first, "find_peer_by_nickname", "nobody")
    assert missing == {"status": "ERROR", "errors": ["nickname nobody was not found"]}
    bad = yield api(first, "find_peer_by_nickname", "x y")
    assert bad["status"] == "ERROR" and "bad nickname" in bad["errors"][0]


@pytest_twisted.inlineCallbacks
def test_nickname_calls_need_the_dht_and_an_identity(network: Callable[[int], Any]) -> Any:
    (node,) = yield network(1)
    node.my_identity = None
    answer = yield api(node, "set_my_nickname", "alice")
    assert answer["status"] == "ERROR" and "no identity yet" in answer["errors"][0]
    yield node.services.stop_service("service_dht")
    answer = yield threads.deferToThread(ApiClient.from_home(node.home.root, timeout=10.0).call,
                                         "find_peer_by_nickname", "alice")
    assert answer == {"status": "ERROR",
                      "errors": ["find_peer_by_nickname is not available: service_dht is not running"]}


@pytest_twisted.inlineCallbacks
def test_saved_nickname_is_registered_again_on_start(network: Callable[[int], Any]) -> Any:
    first, second = yield network(2)
    first.config.set("personal/nickname", "carol")
    yield first.services.stop_service("service_dht")
    yield first.services.start_service("service_dht")
    holder = dht_service(first).nickname_holder
    assert holder is not None
    yield holder.when_state("REGISTERED")
    found = yield api(second, "find_peer_by_nickname", "carol")
    assert found["result"]["idurl"] == first.my_identity.idurl
