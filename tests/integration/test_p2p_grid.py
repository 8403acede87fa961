"""Five whole nodes in this process over real loopback sockets: pings, private messages
(by idurl and by nickname), a broadcast that reaches every other node exactly once, and
forgeries (a packet with a wrong signature, a DHT record of the wrong publisher, a
message that does not decrypt) rejected and counted."""

from __future__ import annotations

import dataclasses
import json
import time
from collections.abc import Generator
from pathlib import Path
from typing import Any

import pytest
import pytest_twisted
from twisted.internet import reactor, threads

from bitdust.api.client import ApiClient
from bitdust.api.results import ok
from bitdust.config import Config
from bitdust.crypto.keys import PrivateKey
from bitdust.dht.records import nickname_key, sign_record
from bitdust.identity.idurl import make_idurl
from bitdust.node import Node
from bitdust.p2p.broadcast import make_envelope
from bitdust.p2p.messages import seal_message
from bitdust.services.identity_propagate import IdentityPropagateService
from bitdust.transport.packet import Command, new_packet_id
from tests.integration.grid import (
    broadcasting,
    configure,
    dht_of,
    gateway_of,
    hookups,
    make_grid,
    messages,
    service,
    wait_until,
)

COUNT = 5


@pytest.fixture(scope="module")
def grid(tmp_path_factory: pytest.TempPathFactory) -> Generator[list[Node], None, None]:
    keys = [PrivateKey.generate(2048) for _ in range(COUNT + 1)]
    root: Path = tmp_path_factory.mktemp("grid")
    nodes = pytest_twisted.blockon(make_grid(reactor, root, keys[:COUNT]))
    for node in nodes:
        node.test_spare_key = keys[COUNT]  # type: ignore[attr-defined]
    yield nodes
    for node in reversed(nodes):
        pytest_twisted.blockon(node.stop())


def api(node: Node, method: str, *args: Any, **kwargs: Any) -> Any:
    assert node.api is not None
    method_fn = node.api.methods.lookup(method)
    assert method_fn is not None
    return method_fn(*args, **kwargs)


def idurl(node: Node) -> str:
    assert node.my_identity is not None
    return node.my_identity.idurl


def dropped(node: Node, reason: str) -> int:
    return int(api(node, "packets_stats")["result"][0]["in"]["dropped"].get(reason, 0))


@pytest_twisted.inlineCallbacks
def test_ping_between_nodes(grid: list[Node]) -> Any:
    alice, bob = grid[1], grid[2]
    states = {row["name"]: row["state"] for row in api(alice, "automats_list")["result"]}
    assert states["p2p_connector"] == "CONNECTED"
    answer = yield api(alice, "ping", idurl(bob))
    assert answer["status"] == "OK", answer
    assert answer["result"].startswith("(signed.Packet[Ack(Identity) node2|node2 for node1], in_")
    assert answer["result"].endswith("(DONE))")
    assert idurl(bob) in hookups(alice).running_connector().contacts
    nobody = make_idurl("127.0.0.1", service_port(grid[0]), "nobody")
    missing = yield api(alice, "ping", nobody, 3)
    assert missing["status"] == "ERROR" and "identity of" in missing["errors"][0]
    bad = yield api(alice, "ping", "not an idurl")
    assert bad["status"] == "ERROR" and "bad idurl" in bad["errors"][0]


def service_port(seed: Node) -> int:
    return int(seed.config.get("services/identity-server/web-port"))


@pytest_twisted.inlineCallbacks
def test_messages_by_idurl_and_by_nickname(grid: list[Node]) -> Any:
    alice, bob, carol = grid[1], grid[2], grid[3]
    empty = yield api(bob, "receive_one_message", 0.1)
    assert empty == ok([])
    waiting = api(bob, "receive_one_message", 10)  # waits: nothing is queued yet
    sent = yield api(alice, "send_message", idurl(bob), "hello")
    assert sent["status"] == "OK", sent
    assert sent["result"][0].startswith("signed.Packet[Message(") and sent["recipient"] == idurl(bob)
    got = yield waiting
    assert got == ok([{"from": idurl(alice), "message": "hello"}])

    registered = yield api(carol, "set_my_nickname", "Carol")
    assert registered["status"] == "OK", registered
    body = {"text": "hi carol", "n": [1, 2, 3]}
    sent = yield api(alice, "send_message", "carol", body)
    assert sent["status"] == "OK", sent
    got = yield api(carol, "receive_one_message", 5)  # already queued: answered at once
    assert got == ok([{"from": idurl(alice), "message": body}])

    unknown = yield api(alice, "send_message", "nobody-here", "x")
    assert unknown["status"] == "ERROR" and "no node holds that nickname" in unknown["errors"][0]
    not_json = yield messages(alice).send(idurl(bob), "x" * 70_000).addErrback(lambda f: f.getErrorMessage())
    assert "over the limit" in not_json


@pytest_twisted.inlineCallbacks
def test_message_to_an_offline_node_is_an_error(grid: list[Node], tmp_path: Path) -> Any:
    alice = grid[1]
    # A node that registered its identity and went away (not listed for broadcasts).
    home = configure(tmp_path / "ghost", grid[0].test_spare_key, service_port(grid[0]),  # type: ignore[attr-defined]
                     int(grid[0].config.get("services/dht/udp-port")))
    Config(home / "config").set("services/dht/enabled", False)
    ghost = Node(home, reactor=reactor)
    try:
        yield ghost.start()
        identity = yield service(ghost, IdentityPropagateService).register("ghost")
    finally:
        yield ghost.stop()
    failure = yield messages(alice).send(identity.idurl, "anyone?", timeout=1, retries=0).addErrback(
        lambda f: f.getErrorMessage())
    assert isinstance(failure, str) and identity.idurl in failure, failure


@pytest_twisted.inlineCallbacks
def test_message_failing_to_decrypt_is_dropped_and_counted(grid: list[Node]) -> Any:
    alice, bob, mallory = grid[1], grid[2], grid[4]
    assert bob.my_identity is not None
    before = dropped(bob, "bad_message")
    # Mallory lifts a sealed blob made for another packet and sender into her own packet:
    # the associated data (sender, recipient, packet id) no longer matches.
    lifted = seal_message(bob.my_identity.public_key, idurl(alice), idurl(bob), "other-id", "pay mallory")
    packet = gateway_of(mallory).make_packet(Command.Message, lifted, idurl(bob))
    reply = yield gateway_of(mallory).outbox(packet, timeout=5, retries=0)
    assert reply.command is Command.Fail and b"does not decrypt" in reply.payload
    # A message whose inner sender is not its signer.
    packet_id = new_packet_id()
    liar = seal_message(bob.my_identity.public_key, idurl(alice), idurl(bob), packet_id, "from alice, honest")
    packet = gateway_of(mallory).make_packet(Command.Message, liar, idurl(bob), packet_id)
    reply = yield gateway_of(mallory).outbox(packet, timeout=5, retries=0)
    assert reply.command is Command.Fail
    assert dropped(bob, "bad_message") == before + 2
    assert messages(bob).dropped["bad_message"] >= 2
    nothing = yield api(bob, "receive_one_message", 0.1)
    assert nothing == ok([]), "no dropped message reached the inbox"


@pytest_twisted.inlineCallbacks
def test_forged_packet_is_rejected_and_counted(grid: list[Node]) -> Any:
    alice, bob, mallory = grid[1], grid[2], grid[4]
    before = dropped(bob, "bad_signature")
    # Mallory's own packet relabelled as Alice's: valid framing, wrong signature.
    own = gateway_of(mallory).make_packet(Command.Message, b"send money", idurl(bob))
    forged = dataclasses.replace(own, owner_id=idurl(alice), creator_id=idurl(alice))
    # A genuine packet of Alice's with its signature bytes flipped.
    genuine = gateway_of(alice).make_packet(Command.Message, b"hi", idurl(bob))
    flipped = dataclasses.replace(genuine, signature=bytes(b ^ 0xFF for b in genuine.signature))
    tcp = gateway_of(mallory).transports()[0]
    assert tcp.proto == "tcp" and bob.my_identity is not None
    host, port = bob.my_identity.contact_for("tcp") or ("", 0)
    for packet in (forged, flipped):
        yield tcp.send(host, port, packet.frame(), idurl(bob))
    yield wait_until(reactor, lambda: dropped(bob, "bad_signature") >= before + 2, 5, "the forged packets")
    nothing = yield api(bob, "receive_one_message", 0.1)
    assert nothing == ok([])


@pytest_twisted.inlineCallbacks
def test_forged_dht_record_is_rejected_and_counted(grid: list[Node]) -> Any:
    bob, carol, mallory = grid[2], grid[3], grid[4]
    assert mallory.key is not None
    mallory_dht, carol_dht = dht_of(mallory).running_dht(), dht_of(carol).running_dht()
    # Correctly signed by Mallory's key, but published in Bob's name.
    claim = sign_record(mallory.key, idurl(bob), "nickname", nickname_key("bobby"), {"nickname": "bobby"},
                        time.time())
    yield mallory_dht.set(claim.key, claim)
    got = yield carol_dht.get(claim.key)
    assert got is None
    assert carol_dht.stats.read_rejected.by_reason["identity-mismatch"] >= 1
    # A tampered record: honest storing nodes refuse it.
    mine = sign_record(mallory.key, idurl(mallory), "nickname", nickname_key("mal"), {"nickname": "mal"},
                       time.time())
    tampered = dataclasses.replace(mine, data={"nickname": "mal", "evil": True})
    yield mallory_dht.set(tampered.key, tampered)
    refused = sum(dht_of(node).running_dht().stats.store_refused.by_reason["bad-signature"] for node in grid)
    assert refused >= 1
    answer = yield api(carol, "find_peer_by_nickname", "bobby")
    assert answer == {"status": "ERROR", "errors": ["nickname bobby was not found"]}


@pytest_twisted.inlineCallbacks
def test_broadcast_reaches_every_other_node_once(grid: list[Node]) -> Any:
    origin = grid[1]
    for node in grid:  # earlier tests may have left messages: start from an empty inbox
        while (yield api(node, "receive_one_message", 0.01))["result"]:
            pass
    others = [node for node in grid if node is not origin]
    before = {id(node): broadcasting(node).counts["delivered"] for node in grid}
    copies_before = [sum(broadcasting(node).counts[what] for node in grid) for what in ("forwarded", "duplicates")]
    answer = yield api(origin, "broadcast_send_message", {"type": "hello", "text": "to all"})
    assert answer["status"] == "OK", answer
    assert answer["acked"] == answer["peers"] == COUNT - 1

    def settled() -> bool:
        forwarded = sum(broadcasting(node).counts["forwarded"] for node in grid) - copies_before[0]
        duplicates = sum(broadcasting(node).counts["duplicates"] for node in grid) - copies_before[1]
        return all(broadcasting(n).counts["delivered"] == before[id(n)] + 1 for n in others) \
            and forwarded > 0 and duplicates >= forwarded

    yield wait_until(reactor, settled, 15, "every copy of the broadcast")
    assert broadcasting(origin).counts["delivered"] == before[id(origin)], "not delivered back to its origin"
    for node in others:
        got = yield api(node, "receive_one_message", 1)
        assert got["result"] == [{"from": idurl(origin), "message": {"type": "hello", "text": "to all"},
                                  "broadcast": True, "id": answer["id"]}]
        again = yield api(node, "receive_one_message", 0.05)
        assert again == ok([]), "delivered exactly once"

    too_big = yield api(origin, "broadcast_send_message", {"blob": "x" * 5000})
    assert too_big["status"] == "ERROR" and "over the limit of 4096" in too_big["errors"][0]
    not_object = yield api(origin, "broadcast_send_message", [1, 2])
    assert not_object["status"] == "ERROR" and "JSON object" in not_object["errors"][0]


@pytest_twisted.inlineCallbacks
def test_forged_broadcast_is_dropped(grid: list[Node]) -> Any:
    alice, bob, mallory = grid[1], grid[2], grid[4]
    assert mallory.key is not None
    # Mallory signs an envelope in Alice's name with her own key.
    envelope = make_envelope(mallory.key, idurl(alice), {"fake": True}, time.time())
    packet = gateway_of(mallory).make_packet(Command.Broadcast, envelope.to_payload(1), idurl(bob))
    reply = yield gateway_of(mallory).outbox(packet, timeout=5, retries=0)
    assert reply.command is Command.Fail and b"not signed by" in reply.payload
    assert broadcasting(bob).counts["bad_broadcast"] >= 1 and dropped(bob, "bad_broadcast") >= 1
    garbage = gateway_of(mallory).make_packet(Command.Broadcast, json.dumps({"hops": 1}).encode(), idurl(bob))
    reply = yield gateway_of(mallory).outbox(garbage, timeout=5, retries=0)
    assert reply.command is Command.Fail
    nothing = yield api(bob, "receive_one_message", 0.1)
    assert nothing == ok([])


@pytest_twisted.inlineCallbacks
def test_calls_answer_error_while_their_service_is_off(grid: list[Node]) -> Any:
    node = grid[4]
    yield node.services.stop_service("service_p2p_hookups")
    try:
        for method, args, service_name in (
                ("ping", (idurl(grid[1]),), "service_p2p_hookups"),
                ("send_message", (idurl(grid[1]), "x"), "service_private_messages"),
                ("receive_one_message", (), "service_private_messages"),
                ("broadcast_send_message", ({"a": 1},), "service_broadcasting")):
            client = ApiClient.from_home(node.home.root, timeout=10.0)
            answer = yield threads.deferToThread(client.call, method, *args)
            expected = f"{method} is not available: {service_name} is not running"
            assert answer == {"status": "ERROR", "errors": [expected]}
    finally:
        yield node.services.start_service("service_private_messages")
        yield node.services.start_service("service_broadcasting")
    assert node.services.is_on("service_p2p_hookups") and node.services.is_on("service_broadcasting")
