"""Signed packets between in-process nodes over real loopback TCP and QUIC sockets."""

from __future__ import annotations

import dataclasses
import os
import threading
from collections.abc import Callable, Generator
from pathlib import Path
from typing import Any

import pytest
import pytest_twisted
from twisted.internet import reactor, threads
from twisted.internet.defer import Deferred
from twisted.internet.endpoints import TCP4ClientEndpoint, connectProtocol
from twisted.internet.protocol import Protocol
from twisted.internet.task import deferLater

from bitdust.api.client import ApiClient
from bitdust.api.methods import ApiMethods
from bitdust.crypto.keys import PrivateKey
from bitdust.crypto.packet_keys import PacketSigningKey
from bitdust.identity.document import make_contact
from bitdust.node import Node
from bitdust.transport import gateway as gateway_module
from bitdust.transport.fail import UNAVAILABLE, FailReason
from bitdust.transport.outbox import GatewayTimeout
from bitdust.transport.packet import Command, Packet, encode_frame, new_packet_id, now_ms
from tests.integration.grid import wait_until
from tests.integration.transport_net import (
    acking_handler,
    free_port,
    gateway,
    introduce,
    prepare_home,
    start_nodes,
    tcp_of,
)


@pytest.fixture(scope="module")
def keys() -> list[PrivateKey]:
    return [PrivateKey.generate(2048) for _ in range(3)]


@pytest.fixture
def running() -> Generator[list[Node], None, None]:
    nodes: list[Node] = []
    yield nodes
    for node in nodes:
        pytest_twisted.blockon(node.stop())


@pytest_twisted.inlineCallbacks
def make_nodes(running: list[Node], make_home: Callable[[str], Path], keys: list[PrivateKey], count: int = 2,
               tcp: bool = True, udp: bool = True) -> Any:
    names = ["alice", "bob", "carol"][:count]
    homes = [(name, prepare_home(make_home(name), keys[i], tcp=tcp, udp=udp)) for i, name in enumerate(names)]
    nodes = yield start_nodes(reactor, homes)
    running.extend(nodes)
    return nodes


def wait(seconds: float) -> Deferred[None]:
    return deferLater(reactor, seconds, lambda: None)


class _Probe(Protocol):
    """A raw TCP client: writes bytes, notices when the node hangs up."""

    def __init__(self) -> None:
        self.closed: Deferred[None] = Deferred()

    def connectionLost(self, reason: Any = None) -> None:
        self.closed.callback(None)


@pytest_twisted.inlineCallbacks
def raw_send(port: int, data: bytes) -> Any:
    probe = yield connectProtocol(TCP4ClientEndpoint(reactor, "127.0.0.1", port), _Probe())
    probe.transport.write(data)
    return probe


@pytest_twisted.inlineCallbacks
def test_signed_packet_over_tcp_is_acked(running: list[Node], make_home: Any, keys: list[PrivateKey]) -> Any:
    alice, bob = yield make_nodes(running, make_home, keys)
    got: list[Packet] = []
    gateway(bob).add_handler(Command.Data, acking_handler(gateway(bob), got))
    packet = gateway(alice).make_packet(Command.Data, b"x" * 100_000, bob.my_identity.idurl)
    reply = yield gateway(alice).outbox(packet, timeout=5, retries=0)
    assert reply.command is Command.Ack and reply.packet_id == packet.packet_id
    assert reply.creator_id == bob.my_identity.idurl
    assert len(got) == 1 and got[0].payload == packet.payload
    stats = ApiMethods(bob).packets_stats()
    assert stats["status"] == "OK"
    incoming = stats["result"][0]["in"]
    assert incoming["totalpackets"] == 1 and incoming[alice.my_identity.idurl] == 1
    assert {"failedpackets", "totalbytes", "unknownbytes", "unknownpackets"} <= set(incoming)
    out = ApiMethods(alice).packets_stats()["result"][0]["out"]
    assert out["totalpackets"] == 1 and out["totalbytes"] == len(packet.serialize())
    sent = [p for p in ApiMethods(alice).packets_list()["result"]
            if p["packet_id"] == packet.packet_id and p["direction"] == "out"]
    assert sent[0]["direction"] == "out" and sent[0]["state"] == "acked" and sent[0]["proto"] == "tcp"
    # one connection each way: alice dialled bob, bob's Ack came over the one bob dialled
    conns = [c for c in ApiMethods(alice).connections_list(["tcp"])["result"] if c["direction"] == "out"]
    assert len(conns) == 1 and conns[0]["port"] == tcp_of(bob).port and conns[0]["bytes_out"] > 100_000
    assert conns[0]["idurl"] == bob.my_identity.idurl
    assert ApiMethods(alice).connections_list(["udp"])["result"] == []
    assert ApiMethods(alice).streams_list()["status"] == "OK"
    # A second packet reuses the connection.
    yield gateway(alice).outbox(gateway(alice).make_packet(Command.Data, b"y", bob.my_identity.idurl))
    assert len(ApiMethods(alice).connections_list("tcp")["result"]) == 2


def rpc(node: Node, method: str, *args: Any, **kwargs: Any) -> Deferred[Any]:
    """A real JSON-RPC call over HTTP, made from a thread like an outside client."""
    client = ApiClient.from_home(node.home.root, timeout=10.0)
    return threads.deferToThread(client.call, method, *args, **kwargs)


@pytest_twisted.inlineCallbacks
def test_api_over_json_rpc(running: list[Node], make_home: Any, keys: list[PrivateKey]) -> Any:
    (alice,) = yield make_nodes(running, make_home, keys, count=1)
    answer = yield rpc(alice, "packets_stats")
    assert answer["status"] == "OK" and set(answer["result"][0]) == {"in", "out"}
    answer = yield rpc(alice, "connections_list", wanted_protos=["tcp", "udp"])
    assert answer == {"status": "OK", "result": []}
    answer = yield rpc(alice, "streams_list")
    assert answer == {"status": "OK", "result": []}
    yield alice.services.stop_service("service_gateway")
    for name in ("packets_stats", "packets_list", "connections_list", "streams_list"):
        answer = yield rpc(alice, name)
        assert answer == {"status": "ERROR",
                          "errors": [f"{name} is not available: service_gateway is not running"]}


@pytest_twisted.inlineCallbacks
def test_unserved_command_gets_fail(running: list[Node], make_home: Any, keys: list[PrivateKey]) -> Any:
    """Fail once the node is up; silence while it starts (its service may be a moment
    away: a Fail then would end the sender's request, a drop lets its retry find it)."""
    alice, bob = yield make_nodes(running, make_home, keys)
    bob.initializer.state = "SERVICES"  # as if bob's services were still starting
    try:
        early = gateway(alice).make_packet(Command.ListFiles, b"", bob.my_identity.idurl)
        with pytest.raises(GatewayTimeout):
            yield gateway(alice).outbox(early, timeout=0.3, retries=0)
        assert gateway(bob).stats.as_api()["in"]["dropped"]["starting"] == 1
        assert gateway(bob).stats.as_api()["in"]["failedpackets"] == 0
    finally:
        bob.initializer.state = "READY"
    packet = gateway(alice).make_packet(Command.ListFiles, b"", bob.my_identity.idurl)
    reply = yield gateway(alice).outbox(packet, timeout=5, retries=0)
    assert reply.command is Command.Fail
    assert FailReason.decode(reply.payload) == FailReason(UNAVAILABLE, "ListFiles is not served by this node")


@pytest_twisted.inlineCallbacks
def test_forged_packet_is_dropped_and_counted(running: list[Node], make_home: Any, keys: list[PrivateKey]) -> Any:
    alice, bob, carol = yield make_nodes(running, make_home, keys, count=3)
    got: list[Packet] = []
    gateway(bob).add_handler(Command.Data, acking_handler(gateway(bob), got))
    me, target = alice.my_identity.idurl, bob.my_identity.idurl
    # carol signs a packet claiming to be alice: framing is valid, the signature is not alice's.
    assert carol.packet_key is not None and alice.key is not None
    forged = Packet.create(Command.Data, me, me, new_packet_id(), b"evil", target, carol.packet_key)
    yield tcp_of(carol).send("127.0.0.1", tcp_of(bob).port, forged.frame())
    # alice's own key id with carol's signature bytes: still refused.
    genuine = gateway(alice).make_packet(Command.Data, b"evil", target)
    tampered = dataclasses.replace(genuine, payload=b"EVIL")
    yield tcp_of(carol).send("127.0.0.1", tcp_of(bob).port, tampered.frame())
    # alice's RSA identity key does not sign packets: an RSA-signed packet is refused too.
    unsigned = dataclasses.replace(genuine, packet_id=new_packet_id(), signature=b"")
    rsa_signed = dataclasses.replace(unsigned, signature=alice.key.sign_digest(unsigned.digest()))
    yield tcp_of(carol).send("127.0.0.1", tcp_of(bob).port, rsa_signed.frame())
    # carol's KeyID makes bob re-fetch alice's identity first (its server is down: ~0.3 s).
    for _ in range(50):
        if gateway(bob).stats.as_api()["in"]["failedpackets"] >= 3:
            break
        yield wait(0.1)
    stats = gateway(bob).stats.as_api()["in"]
    assert stats["dropped"]["bad_signature"] == 3 and stats["failedpackets"] == 3, stats
    assert got == [] and stats["totalpackets"] == 0


@pytest_twisted.inlineCallbacks
def test_new_packet_key_is_taken_from_a_newer_identity_packet(running: list[Node], make_home: Any,
                                                              keys: list[PrivateKey]) -> Any:
    alice, bob = yield make_nodes(running, make_home, keys)
    got: list[Packet] = []
    gateway(bob).add_handler(Command.Data, acking_handler(gateway(bob), got))
    assert alice.key is not None and alice.my_identity is not None
    old_identity = alice.my_identity
    # alice's packet key file was re-made: her identity lists the new key, revision + 1,
    # and bob still holds the old revision.
    alice.packet_key = PacketSigningKey.generate()
    alice.my_identity = old_identity.with_packet_key(alice.packet_key, alice.key)
    target = bob.my_identity.idurl
    refused = yield gateway(alice).outbox(gateway(alice).make_packet(Command.Data, b"early", target),
                                          timeout=0.5, retries=0).addErrback(lambda f: f.value)
    assert isinstance(refused, GatewayTimeout) and got == []
    # The Identity packet carries the RSA-signed document that certifies the new key.
    hello = gateway(alice).make_packet(Command.Identity, alice.my_identity.to_xml(), target)
    reply = yield gateway(alice).outbox(hello, timeout=5, retries=0)
    assert reply.command is Command.Ack
    assert bob.identity_cache.get_cached(alice.my_identity.idurl) == alice.my_identity
    reply = yield gateway(alice).outbox(gateway(alice).make_packet(Command.Data, b"late", target),
                                        timeout=5, retries=0)
    assert reply.command is Command.Ack and [p.payload for p in got] == [b"late"]
    # A document with a new packet key but no newer revision does not get through.
    thief = PacketSigningKey.generate()
    same_revision = dataclasses.replace(alice.my_identity, packet_key=thief.public_key()).sign(alice.key)
    alice.packet_key = thief
    sneaky = gateway(alice).make_packet(Command.Identity, same_revision.to_xml(), target)
    refused = yield gateway(alice).outbox(sneaky, timeout=0.5, retries=0).addErrback(lambda f: f.value)
    assert isinstance(refused, GatewayTimeout)
    assert bob.identity_cache.get_cached(alice.my_identity.idurl) == alice.my_identity


@pytest_twisted.inlineCallbacks
def test_big_packets_are_read_in_place_and_verified_in_a_thread(
        running: list[Node], make_home: Any, keys: list[PrivateKey], monkeypatch: pytest.MonkeyPatch) -> Any:
    """A 1 MB packet reaches the gateway as the buffer TCP read it into (its payload a
    view of that buffer, never copied), is verified in a pool thread and Acked; a 1 MB
    frame of junk is dropped as garbage before any thread is asked to check it; a 1 MB
    packet with one byte changed is checked the same way and dropped for its signature.
    When the pool says threads do not pay (no idle core), the check runs on the reactor."""
    alice, bob = yield make_nodes(running, make_home, keys)
    bob.cpu_pool.mode = "threads"  # whatever the machine's idle cores say now
    got: list[Packet] = []
    gateway(bob).add_handler(Command.Data, acking_handler(gateway(bob), got))
    checked_in: list[tuple[str, str]] = []

    def spy(packet: Packet, identity: Any) -> bool:
        checked_in.append((type(packet.payload).__name__, threading.current_thread().name))
        return bool(real_verify(packet, identity))

    real_verify = gateway_module.Gateway._verify
    monkeypatch.setattr(gateway_module.Gateway, "_verify", staticmethod(spy))
    payload = os.urandom(1024 * 1024)
    packet = gateway(alice).make_packet(Command.Data, payload, bob.my_identity.idurl)
    reply = yield gateway(alice).outbox(packet, timeout=10, retries=0)
    assert reply.command is Command.Ack and len(got) == 1 and got[0].payload == payload
    assert isinstance(got[0].payload, memoryview) and isinstance(got[0].payload.obj, bytearray)
    big = [entry for entry in checked_in if entry[0] == "memoryview"]
    assert len(big) == 1 and big[0][1] != threading.current_thread().name  # not the reactor's thread
    assert all(thread == threading.current_thread().name for kind, thread in checked_in if kind == "bytes"), \
        "small packets (the Ack) are checked inline"
    probe = yield raw_send(tcp_of(bob).port, encode_frame(os.urandom(1024 * 1024)))
    yield probe.closed
    assert gateway(bob).stats.as_api()["in"]["dropped"] == {"garbage": 1}
    assert len([entry for entry in checked_in if entry[0] == "memoryview"]) == 1
    tampered = dataclasses.replace(packet, packet_id=new_packet_id(), payload=b"X" + payload[1:])
    yield tcp_of(alice).send("127.0.0.1", tcp_of(bob).port, tampered.frame())
    yield wait_until(reactor, lambda: gateway(bob).stats.as_api()["in"]["dropped"].get("bad_signature") == 1,
                     10, "the tampered packet dropped")
    assert len([entry for entry in checked_in if entry[0] == "memoryview"]) == 2 and len(got) == 1
    bob.cpu_pool.mode = "inline"
    again = gateway(alice).make_packet(Command.Data, payload, bob.my_identity.idurl)
    reply = yield gateway(alice).outbox(again, timeout=10, retries=0)
    assert reply.command is Command.Ack and len(got) == 2
    big = [entry for entry in checked_in if entry[0] == "memoryview"]
    assert len(big) == 3 and big[-1][1] == threading.current_thread().name, "checked on the reactor"


@pytest_twisted.inlineCallbacks
def test_garbage_and_oversize_frames_close_the_connection(running: list[Node], make_home: Any,
                                                           keys: list[PrivateKey]) -> Any:
    (bob,) = yield make_nodes(running, make_home, keys, count=1)
    port = tcp_of(bob).port
    probe = yield raw_send(port, encode_frame(b"this is not a packet"))
    yield probe.closed
    probe = yield raw_send(port, b"\xff\xff\xff\xf0" + b"z" * 100)
    yield probe.closed
    probe = yield raw_send(port, b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
    yield probe.closed
    stats = gateway(bob).stats.as_api()["in"]
    assert stats["dropped"] == {"garbage": 1, "oversize": 2}
    assert stats["unknownpackets"] == 3
    yield wait(0.05)
    assert ApiMethods(bob).connections_list()["result"] == []


@pytest_twisted.inlineCallbacks
def test_duplicate_and_stale_packets_are_dropped(running: list[Node], make_home: Any,
                                                 keys: list[PrivateKey]) -> Any:
    alice, bob = yield make_nodes(running, make_home, keys)
    got: list[Packet] = []
    gateway(bob).add_handler(Command.Data, acking_handler(gateway(bob), got))
    packet = gateway(alice).make_packet(Command.Data, b"once", bob.my_identity.idurl)
    yield gateway(alice).outbox(packet, timeout=5, retries=0)
    yield tcp_of(alice).send("127.0.0.1", tcp_of(bob).port, packet.frame())
    me = alice.my_identity.idurl
    assert alice.packet_key is not None
    stale = Packet.create(Command.Data, me, me, new_packet_id(), b"old", bob.my_identity.idurl, alice.packet_key,
                          date=now_ms() - 3600_000)
    yield tcp_of(alice).send("127.0.0.1", tcp_of(bob).port, stale.frame())
    yield wait(0.3)
    dropped = gateway(bob).stats.as_api()["in"]["dropped"]
    assert dropped["duplicate"] == 1 and dropped["stale"] == 1
    assert len(got) == 1
    # The duplicate was answered with the Ack already given (alice drops it as a duplicate).
    assert gateway(alice).stats.as_api()["in"]["dropped"].get("duplicate") == 1


@pytest_twisted.inlineCallbacks
def test_quic_alone(running: list[Node], make_home: Any, keys: list[PrivateKey]) -> Any:
    alice, bob = yield make_nodes(running, make_home, keys, tcp=False)
    assert alice.services.state("service_tcp_transport") != "ON"
    got: list[Packet] = []
    gateway(bob).add_handler(Command.Data, acking_handler(gateway(bob), got))
    for size in (10, 300_000):
        packet = gateway(alice).make_packet(Command.Data, b"q" * size, bob.my_identity.idurl)
        reply = yield gateway(alice).outbox(packet, timeout=10, retries=0)
        assert reply.command is Command.Ack
    assert [len(p.payload) for p in got] == [10, 300_000]
    conns = ApiMethods(alice).connections_list(["udp"])["result"]
    assert conns and conns[0]["proto"] == "udp" and conns[0]["bytes_out"] > 300_000
    records = [r for r in gateway(alice).packet_log.as_api() if r["direction"] == "out"]
    assert {r["proto"] for r in records} == {"udp"}
    cert = alice.home.metadata / "quic-key.pem"
    assert cert.stat().st_mode & 0o777 == 0o600


@pytest_twisted.inlineCallbacks
def test_falls_back_to_quic_when_tcp_port_is_dead(running: list[Node], make_home: Any,
                                                  keys: list[PrivateKey]) -> Any:
    alice, bob = yield make_nodes(running, make_home, keys)
    gateway(bob).add_handler(Command.Data, acking_handler(gateway(bob)))
    dead = make_contact("tcp", "127.0.0.1", free_port())
    udp = make_contact("udp", "127.0.0.1", bob.config.get("services/udp-transport/udp-port"))
    moved = bob.my_identity.with_contacts((dead, udp), bob.key)
    introduce([alice, bob], {moved.idurl: moved})
    packet = gateway(alice).make_packet(Command.Data, b"via quic", bob.my_identity.idurl)
    reply = yield gateway(alice).outbox(packet, timeout=10, retries=0)
    assert reply.command is Command.Ack
    record = next(r for r in gateway(alice).packet_log.as_api()
                  if r["packet_id"] == packet.packet_id and r["direction"] == "out")
    assert record["proto"] == "udp" and record["state"] == "acked"


@pytest_twisted.inlineCallbacks
def test_timeout_after_retries(running: list[Node], make_home: Any, keys: list[PrivateKey]) -> Any:
    alice, bob = yield make_nodes(running, make_home, keys)
    got: list[Packet] = []
    gateway(bob).add_handler(Command.Data, got.append)  # takes it, never answers
    packet = gateway(alice).make_packet(Command.Data, b"anyone?", bob.my_identity.idurl)
    started = reactor.seconds()
    with pytest.raises(GatewayTimeout):
        yield gateway(alice).outbox(packet, timeout=0.3, retries=2)
    assert 0.8 < reactor.seconds() - started < 5
    assert len(got) == 1
    assert gateway(bob).stats.as_api()["in"]["dropped"]["duplicate"] == 2
    record = next(r for r in gateway(alice).packet_log.as_api()
                  if r["packet_id"] == packet.packet_id and r["direction"] == "out")
    assert record["attempts"] == 3 and record["state"] == "timeout"
    assert gateway(alice).stats.as_api()["out"]["failedpackets"] == 1
    assert len(gateway(alice).outbox_queue) == 0


@pytest_twisted.inlineCallbacks
def test_identity_packet_introduces_a_stranger(running: list[Node], make_home: Any,
                                               keys: list[PrivateKey]) -> Any:
    alice, bob = yield make_nodes(running, make_home, keys)
    bob.identity_cache.remove(alice.my_identity.idurl)
    packet = gateway(alice).make_packet(Command.Identity, alice.my_identity.to_xml(), bob.my_identity.idurl)
    reply = yield gateway(alice).outbox(packet, timeout=5, retries=0)
    assert reply.command is Command.Ack
    assert bob.identity_cache.get_cached(alice.my_identity.idurl) == alice.my_identity
