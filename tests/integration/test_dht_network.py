"""Five DHT nodes in this process over real loopback UDP: records, forgeries, nicknames,
availability. Each node has its own key and idurl; a dictionary stands in for the
identity cache (the service uses the real one)."""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Generator
from typing import Any

import pytest
import pytest_twisted
from kademlia.utils import digest
from twisted.internet import reactor
from twisted.internet.defer import CancelledError, fail, gatherResults, succeed

from bitdust.crypto.keys import PrivateKey, PublicKey
from bitdust.dht import availability, index
from bitdust.dht.kad import DhtNode
from bitdust.dht.nicknames import NicknameHolder, lookup_nickname
from bitdust.dht.records import Record, nickname_key, sign_record
from bitdust.dht.storage import _Item
from bitdust.identity.idurl import make_idurl

COUNT = 5


class Peer:
    def __init__(self, index: int, key: PrivateKey, keys: dict[str, PublicKey]) -> None:
        self.idurl = make_idurl("127.0.0.1", 8084, f"node{index}")
        self.key = key
        keys[self.idurl] = key.public_key()

        def lookup(idurl: str) -> Any:
            return succeed(keys[idurl]) if idurl in keys else fail(KeyError(f"no identity for {idurl}"))

        self.dht = DhtNode(reactor, rpc_timeout=0.5, op_timeout=5.0, identity_lookup=lookup)

    def whoami(self) -> tuple[str, PrivateKey]:
        return self.idurl, self.key

    def nickname(self, name: str, now: float | None = None) -> Record:
        return sign_record(self.key, self.idurl, "nickname", nickname_key(name), {"nickname": name},
                           time.time() if now is None else now)


@pytest.fixture(scope="module")
def keys() -> list[PrivateKey]:
    return [PrivateKey.generate(2048) for _ in range(COUNT + 1)]


@pytest.fixture
def peers(keys: list[PrivateKey]) -> Generator[list[Peer], None, None]:
    identities: dict[str, PublicKey] = {}
    started = [Peer(n, keys[n], identities) for n in range(COUNT)]
    seed = started[0].dht
    pytest_twisted.blockon(seed.start(0, "127.0.0.1"))
    for peer in started[1:]:
        pytest_twisted.blockon(peer.dht.start(0, "127.0.0.1", [f"127.0.0.1:{seed.port}"]))
    yield started
    for peer in started:
        pytest_twisted.blockon(peer.dht.stop())


def plant(peers: list[Peer], key: str, value: str) -> None:
    """What a dishonest storing node does: keep any value, bypassing the guard."""
    for peer in peers:
        peer.dht.storage._data[digest(key)] = _Item(time.monotonic(), time.time() + 600, value)


@pytest_twisted.inlineCallbacks
def test_record_set_on_one_node_is_read_on_another(peers: list[Peer]) -> Any:
    assert all(peer.dht.neighbours() for peer in peers)
    record = peers[1].nickname("Alice")
    stored = yield peers[1].dht.set(record.key, record)
    assert stored
    got = yield peers[4].dht.get("nickname:alice")
    assert got == record
    assert got.identity_verified
    missing = yield peers[3].dht.get("nickname:nobody")
    assert missing is None


@pytest_twisted.inlineCallbacks
def test_forged_records_are_refused_by_storing_nodes_and_readers(peers: list[Peer]) -> Any:
    alice = peers[1].nickname("alice")
    yield peers[1].dht.set(alice.key, alice)
    # Bad signature: honest storing nodes refuse it.
    tampered = dataclasses.replace(alice, data={"nickname": "alice", "evil": True})
    yield peers[2].dht.set(alice.key, tampered)
    refused = sum(peer.dht.stats.store_refused.by_reason["bad-signature"] for peer in peers)
    assert refused >= 1
    # Another publisher's valid record for a held nickname: refused as well.
    stolen = peers[2].nickname("alice")
    yield peers[2].dht.set(stolen.key, stolen)
    assert sum(peer.dht.stats.store_refused.by_reason["owner"] for peer in peers) >= 1
    got = yield peers[3].dht.get(alice.key)
    assert got == alice

    # Dishonest storing nodes: every copy but the reader's own is the tampered one.
    reader = peers[3]
    plant([p for p in peers if p is not reader], alice.key, tampered.to_json())
    before = reader.dht.stats.read_rejected.by_reason["bad-signature"]
    got = yield reader.dht.get(alice.key)
    assert got == alice
    assert reader.dht.stats.read_rejected.by_reason["bad-signature"] > before

    # Every copy is another publisher's validly signed record: the reader saw Alice
    # hold it, so it ignores the usurper (trust on first use) and counts it.
    plant(peers, alice.key, stolen.to_json())
    got = yield reader.dht.get(alice.key)
    assert got is None
    assert reader.dht.stats.read_rejected.by_reason["owner"] >= 1


@pytest_twisted.inlineCallbacks
def test_records_not_matching_the_publisher_identity_are_rejected(peers: list[Peer],
                                                                  keys: list[PrivateKey]) -> Any:
    outsider = keys[COUNT]
    # Signed correctly, but by a key that is not node2's according to its identity.
    claim = sign_record(outsider, peers[2].idurl, "nickname", "nickname:imposter", {}, time.time())
    yield peers[0].dht.set(claim.key, claim)
    got = yield peers[4].dht.get(claim.key)
    assert got is None
    assert peers[4].dht.stats.read_rejected.by_reason["identity-mismatch"] == 1
    # A publisher nobody can resolve.
    ghost = "http://127.0.0.1:8084/ghost.xml"
    unknown = sign_record(outsider, ghost, "nickname", "nickname:ghost", {}, time.time())
    yield peers[0].dht.set(unknown.key, unknown)
    got = yield peers[4].dht.get(unknown.key)
    assert got is None
    assert peers[4].dht.stats.read_rejected.by_reason["identity-unresolved"] == 1


@pytest_twisted.inlineCallbacks
def test_nickname_register_lookup_and_taken(peers: list[Peer]) -> Any:
    holder = NicknameHolder(reactor, None, peers[1].dht, peers[1].whoami)
    result = yield holder.register("Carol")
    assert result == ("registered", peers[1].idurl)
    assert holder.state == "REGISTERED"
    assert holder.active_timers() == ["timer-republish"]
    info = yield lookup_nickname(peers[3].dht, "carol")
    assert info is not None and (info.nickname, info.idurl) == ("Carol", peers[1].idurl)

    rival = NicknameHolder(reactor, None, peers[2].dht, peers[2].whoami)
    result = yield rival.register("CAROL")
    assert result == ("taken", peers[1].idurl)
    assert rival.state == "TAKEN"

    # The republish timer signs a newer revision and stays registered.
    first = holder.record
    assert first is not None
    holder.event("timer-republish")
    yield holder.when_state("REGISTERED")
    assert holder.record is not None and holder.record.revision >= first.revision
    # Events raised from a state listener run once the current one completes.
    stopped = holder.when_state("STOPPED")
    holder.event("stop")
    rival.event("stop")
    yield stopped
    assert holder.active_timers() == []


@pytest_twisted.inlineCallbacks
def test_holder_without_identity_retries(peers: list[Peer]) -> Any:
    holder = NicknameHolder(reactor, None, peers[1].dht, lambda: None)
    result = yield holder.register("dave")
    assert result == ("failed", "this node has no identity yet")
    assert holder.state == "RETRY" and holder.active_timers() == ["timer-retry"]
    holder.event("stop")


@pytest_twisted.inlineCallbacks
def test_availability_lookup_finds_the_published_nodes(peers: list[Peer]) -> Any:
    yield gatherResults([
        availability.publish_availability(peer.dht, peer.key, peer.idurl, free=(n + 1) * 10**9,
                                          ecc_maps=["ecc/2x2", "ecc/4x4"] if n % 2 else ["ecc/2x2"])
        for n, peer in enumerate(peers)
    ])
    # An index entry without a signed offer behind it is dropped and counted.
    junk = "http://127.0.0.1:8084/junk.xml"
    yield peers[0].dht.add_to_bucket(index.bucket_key_for(junk), {junk: int(time.time()) + 60})

    reader = peers[2].dht
    found = yield availability.find_available(reader, 10)
    assert sorted(offer.idurl for offer in found) == sorted(peer.idurl for peer in peers)
    assert all(offer.identity_verified for offer in found)
    assert reader.stats.read_rejected.by_reason["index-without-offer"] == 1

    fours = yield availability.find_available(reader, 10, ecc_map="ecc/4x4", exclude=[peers[1].idurl])
    assert sorted(offer.idurl for offer in fours) == [peers[3].idurl]
    big = yield availability.find_available(reader, 2, min_free=3 * 10**9)
    assert len(big) == 2 and all(offer.free >= 3 * 10**9 for offer in big)

    # Nobody can publish an offer for somebody else.
    forged = dataclasses.replace(
        sign_record(peers[4].key, peers[4].idurl, "supplier", f"supplier:{peers[4].idurl}", {}, time.time()),
        key=f"supplier:{peers[0].idurl}")
    yield peers[4].dht.set(forged.key, forged)
    offer = yield availability.read_availability(peers[3].dht, peers[0].idurl)
    assert offer is not None and offer.free == 10**9


@pytest_twisted.inlineCallbacks
def test_availability_publisher_keeps_publishing(peers: list[Peer]) -> Any:
    publisher = availability.AvailabilityPublisher(reactor, peers[1].dht, peers[1].key, peers[1].idurl,
                                                   lambda: (5000, ["ecc/2x2"]))
    first = yield publisher.start()
    assert first.data["free"] == 5000
    publisher.stop()
    offer = yield availability.read_availability(peers[4].dht, peers[1].idurl)
    assert offer is not None and offer.free == 5000


@pytest_twisted.inlineCallbacks
def test_lone_node_and_dead_seed_finish_quickly(keys: list[PrivateKey]) -> Any:
    lone = DhtNode(reactor, rpc_timeout=0.3, op_timeout=3.0)
    dead_seed = DhtNode(reactor)
    yield dead_seed.start(0, "127.0.0.1")
    dead_port = dead_seed.port
    assert dead_port is not None
    yield dead_seed.stop()
    began = time.monotonic()
    neighbours = yield lone.start(0, "127.0.0.1", [("127.0.0.1", dead_port)])
    try:
        assert neighbours == 0
        missing = yield lone.get("nickname:alice")
        assert missing is None
        record = sign_record(keys[0], "http://127.0.0.1:8084/lone.xml", "nickname", "nickname:lone", {},
                             time.time())
        sent = yield lone.set(record.key, record)
        assert sent is False, "nobody else took it"
        got = yield lone.get(record.key)
        assert got == record, "but the lone node keeps it"
        assert time.monotonic() - began < 3.0
    finally:
        yield lone.stop()


@pytest_twisted.inlineCallbacks
def test_garbage_datagrams_are_counted(peers: list[Peer]) -> Any:
    import socket

    target = peers[0].dht
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.sendto(b"\x00" + b"m" * 20 + b"\xc1\xc1garbage", ("127.0.0.1", target.port))
    # Prove the node still answers, and that the garbage was seen before that answer.
    record = peers[1].nickname("still-alive")
    yield peers[1].dht.set(record.key, record)
    got = yield peers[3].dht.get(record.key)
    assert got == record
    assert target.stats.store_refused.by_reason["garbage-datagram"] == 1


def test_listening_on_every_interface_is_refused() -> None:
    from bitdust.dht.kad import DhtError

    node = DhtNode(reactor)
    for host in ("0.0.0.0", "::", "localhost"):
        with pytest.raises(DhtError):
            node.start(0, host)



@pytest_twisted.inlineCallbacks
def test_stop_ends_requests_in_flight_and_sends_nothing_after(keys: list[PrivateKey], caplog: Any) -> Any:
    """A request waiting for a silent peer ends with the node, and kademlia's own tasks
    still scheduled at stop (welcome_if_new's stores to a newcomer) send nothing through
    the closed socket: that used to raise inside orphaned asyncio tasks."""
    import asyncio
    import contextlib
    import gc
    import socket

    from kademlia.node import Node as KadNode
    from twisted.internet.task import deferLater

    silent = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    silent.bind(("127.0.0.1", 0))
    silent.settimeout(1.0)
    newcomer = KadNode(digest("newcomer"), "127.0.0.1", silent.getsockname()[1])
    node = DhtNode(reactor, rpc_timeout=5.0, op_timeout=10.0)
    try:
        yield node.start(0, "127.0.0.1")
        record = sign_record(keys[0], "http://127.0.0.1:8084/stop.xml", "nickname", "nickname:stop", {},
                             time.time())
        assert (yield node.set(record.key, record)) is False, "alone: kept only here"
        protocol = node._server.protocol
        assert protocol is not None
        protocol.router.add_contact(KadNode(digest("silent"), "127.0.0.1", silent.getsockname()[1]))
        storing = node.set(record.key, record)
        yield deferLater(reactor, 0.2, lambda: None)
        assert silent.recv(65536), "the request reached the silent peer"
        silent.setblocking(False)
        with contextlib.suppress(BlockingIOError):
            while silent.recv(65536):  # whatever else was sent before the stop
                pass
        caplog.clear()
        protocol.welcome_if_new(newcomer)  # schedules a store to the newcomer...
        yield node.stop()  # ...which runs only after this
        outcome = yield storing.addErrback(lambda failure: failure.value)
        assert isinstance(outcome, (CancelledError, asyncio.CancelledError)), outcome
        yield deferLater(reactor, 0.2, lambda: None)
        gc.collect()  # a failed orphaned task is reported when collected
        yield deferLater(reactor, 0.05, lambda: None)
        errors = [r.getMessage() for r in caplog.records if r.levelname == "ERROR" and r.name == "asyncio"]
        assert errors == []
        with pytest.raises(BlockingIOError):
            silent.recv(65536)
    finally:
        silent.close()
        if node.running:
            yield node.stop()
