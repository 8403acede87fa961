"""Peers that misbehave (issue 7, item 2), on a six-node in-process grid over loopback.

node0 is the seed (identity server, DHT seed) and a supplier, node1 the customer,
node2..node5 suppliers: four are hired, one is the spare. The tests run in file order on
one grid:

* suppliers that serve wrong bytes, truncated pieces, a piece of another version or of
  another customer, nothing at all, or a piece under another name, two at a time (the
  most ``ecc/4x4`` can lose): the restore is byte for byte, the bad pieces are counted, and
  the failures are held against the bad suppliers only, never against an honest one;
* a supplier that keeps serving bad pieces is fired by fire_hire (the piece-failure
  limit) and replaced, its position rebuilt, and the data restores without it;
* a raw TCP peer (blocking sockets in its own threads, so it holds one frame at a time)
  sends the customer oversized and half-sent frames, random bytes, valid frames of
  garbage, a flood of replays of a genuine packet, 3,000 small genuine packets, a stale
  packet and packets with a forged or unknown creator: each bad one is dropped and counted
  under its reason, the customer's memory stays bounded while over 100 MB arrive (RSS
  sampled every 20 ms), and it still restores afterwards;
* many connections each holding the first megabytes of a big frame (TCP) or of a QUIC
  stream never ended: past the all-connections budget the stalled one is hung up on.

The tracker of piece failures is also tested alone on a fake clock.
"""

from __future__ import annotations

import asyncio
import dataclasses
import gc
import itertools
import random
from collections.abc import Callable, Generator, Iterator
from functools import partial
from pathlib import Path
from typing import Any

import psutil
import pytest
import pytest_twisted
from twisted.internet import reactor
from twisted.internet.defer import Deferred, DeferredList
from twisted.internet.task import Clock, LoopingCall
from twisted.internet.threads import deferToThreadPool
from twisted.python.threadpool import ThreadPool

from bitdust.api.methods import ApiMethods
from bitdust.crypto.packet_keys import PacketSigningKey
from bitdust.identity.idurl import make_idurl
from bitdust.node import Node
from bitdust.services.customer import CustomerService
from bitdust.services.employer import EmployerService
from bitdust.services.rebuilding import RebuildingService
from bitdust.services.restores import RestoresService
from bitdust.services.tcp_connections import TcpConnectionsService
from bitdust.services.udp_transport import UdpTransportService
from bitdust.storage.ecc import EccMap
from bitdust.storage.restore.strikes import PieceStrikes
from bitdust.transport.packet import Command, Packet, encode_frame, new_packet_id, now_ms
from bitdust.transport.tcp import TcpConnections
from bitdust.transport.udp_quic import PacketQuicProtocol, QuicTransport
from tests.integration.grid import announce_suppliers, api, gateway_of, idurl, market_grid, ok, service, wait_until
from tests.integration.test_customer_grid import all_online, by_idurl, hired
from tests.reliability.evil import (
    EvilSupplier,
    RawPeer,
    blocking_connect,
    blocking_send,
    raw_connect,
    wait_hung_up,
)
from tests.restore_helpers import encode_pieces, make_tree, snapshot

COUNT = 6
CUSTOMER = 1
BLOCK = 64 * 1024
SHARE = 2 * 1024 * 1024
WAIT = 60.0
PIECE_TIMEOUT = 5.0
MB = 1024 * 1024

shared: dict[str, Any] = {}


@pytest.fixture(scope="module")
def grid(tmp_path_factory: pytest.TempPathFactory) -> Generator[list[Node], None, None]:
    yield from market_grid(reactor, tmp_path_factory.mktemp("badpeers"), COUNT, CUSTOMER, SHARE, BLOCK)


def strikes_of(customer: Node) -> Any:
    return service(customer, CustomerService).strikes


def restore_row(customer: Node, backup_id: str) -> dict[str, Any] | None:
    rows = ok(api(customer, "restores_running"))
    return next((row for row in rows if row["backupid"] == backup_id), None)


@pytest_twisted.inlineCallbacks
def restored(customer: Node, backup_id: str, dest: Path) -> Any:
    """restore_single of ``backup_id`` into ``dest``; the job's last row once it ended."""
    ok((yield api(customer, "restore_single", backup_id, str(dest))))
    yield wait_until(reactor, lambda: (restore_row(customer, backup_id) or {}).get("done") is True, WAIT,
                     f"restore of {backup_id} ended")
    return restore_row(customer, backup_id)


def versions(customer: Node, path_id: str) -> list[str]:
    rows = ok(api(customer, "backups_id_list"))
    return sorted(r["backupid"] for r in rows if r["backupid"].startswith(path_id + "/"))


def supplier_at(grid: list[Node], position: int) -> Node:
    return by_idurl(grid, hired(grid[CUSTOMER])[position])


def evil_positions(grid: list[Node]) -> list[int]:
    """Positions whose supplier is not node0 (it serves the identities: it stays honest)."""
    return [p for p, who in enumerate(hired(grid[CUSTOMER])) if who != idurl(grid[0])]


def test_piece_strikes_count_within_the_window_and_call_once() -> None:
    """The tracker alone, on a fake clock: the limit, the window, the kinds, the bound."""
    clock = Clock()
    limit = [3]
    called: list[str] = []
    strikes = PieceStrikes(clock, lambda: limit[0], lambda: 100.0, called.append)
    bad, good = "http://127.0.0.1:1/bad.xml", "http://127.0.0.1:1/good.xml"
    strikes.record(bad, "corrupt", "block 0")
    strikes.record(bad, "no-answer", "block 1")
    assert strikes.failing(bad) is None and called == []
    clock.advance(150)  # the first two are too old to count with a third
    strikes.record(bad, "wrong-answer", "block 2")
    assert strikes.failing(bad) is None
    strikes.record(bad, "corrupt", "block 3")
    strikes.record(bad, "corrupt", "block 4")
    assert strikes.failing(bad) == "3 failed piece requests in 100 s (2 corrupt, 1 wrong-answer)"
    assert called == [bad]
    strikes.record(bad, "corrupt", "block 5")
    assert called == [bad], "told once, not at every further failure"
    assert strikes.failing(good) is None
    assert strikes.counts == {"corrupt": 4, "wrong-answer": 1, "no-answer": 1}
    with pytest.raises(ValueError):
        strikes.record(bad, "not-found", "missing pieces are the rebuilder's work")
    limit[0] = 0  # 0: never
    assert strikes.failing(bad) is None
    limit[0] = 3
    for n in range(300):  # many suppliers: the table stays bounded
        strikes.record(f"http://127.0.0.1:1/s{n}.xml", "corrupt")
    assert len(strikes.as_dict()["suppliers"]) == 256


@pytest_twisted.inlineCallbacks
def test_backup_two_versions(grid: list[Node], tmp_path_factory: Any) -> Any:
    customer = grid[CUSTOMER]
    yield announce_suppliers(reactor, grid, WAIT)
    customer.config.set("services/employer/piece-failures-limit", 1000)  # counted, nobody fired yet
    yield customer.services.start_service("service_employer")
    yield wait_until(reactor, lambda: all_online(customer), WAIT, "4 suppliers online")
    service(customer, RestoresService).running_jobs("test").timeout = PIECE_TIMEOUT

    top = make_tree(tmp_path_factory.mktemp("work") / "src", BLOCK)
    started = yield api(customer, "backup_start_path", str(top))
    path_id = ok(started) and started["id"]
    yield wait_until(reactor, lambda: len(versions(customer, path_id)) == 1, WAIT, "first version complete")
    (top / "a" / "small.txt").write_bytes(b"changed after the first version\n")
    ok((yield api(customer, "backup_start_path", str(top))))
    yield wait_until(reactor, lambda: len(versions(customer, path_id)) == 2, WAIT, "second version complete")
    first, second = versions(customer, path_id)
    # The same files backed up by another customer (node0's key), under the same IDs.
    assert grid[0].key is not None
    foreign, _key, blocks = encode_pieces(top, second, EccMap.from_name("ecc/4x4"), grid[0].key.public_key(), BLOCK)
    assert blocks >= 5
    shared.update(top=top, tree=snapshot(top), path_id=path_id, first=first, second=second, foreign=foreign)


PAIRS = [("wrong-bytes", "truncated"), ("other-version", "other-customer"), ("silent", "wrong-name"),
         ("truncated", "truncated")]
"""Two bad suppliers at a time (ecc/4x4 decodes from the 4 shares of the other two). The last
pair truncates alike: their 4 short shares outnumber the honest ones of the first fetch, which
once made the size check blame the honest shares and fail the restore."""
KINDS = {"wrong-bytes": "corrupt", "truncated": "corrupt", "other-version": "corrupt", "other-customer": "corrupt",
         "silent": "no-answer", "wrong-name": "wrong-answer"}


@pytest.mark.parametrize("modes", PAIRS, ids=["-and-".join(pair) for pair in PAIRS])
@pytest_twisted.inlineCallbacks
def test_two_misbehaving_suppliers_are_bypassed_and_counted(grid: list[Node], tmp_path_factory: Any,
                                                             modes: tuple[str, str]) -> Any:
    customer = grid[CUSTOMER]
    strikes = strikes_of(customer)
    for who in hired(customer):
        strikes.forget(who)
    counts_before = dict(strikes.counts)
    before = hired(customer)
    positions = evil_positions(grid)[:2]
    evil = [EvilSupplier(supplier_at(grid, position), mode, shared["first"], shared["foreign"])
            for position, mode in zip(positions, modes, strict=True)]
    try:
        dest = tmp_path_factory.mktemp("restored")
        row = yield restored(customer, shared["second"], dest)
    finally:
        for supplier in evil:
            supplier.undo()
    assert row["state"] == "DONE" and row["errors"] == [], row
    assert snapshot(dest / "Docs") == shared["tree"]
    assert all(supplier.served >= 1 for supplier in evil), "each evil supplier was asked at least once"
    corrupt = sum(KINDS[mode] == "corrupt" for mode in modes)
    assert (row["badpieces"] >= corrupt) and (corrupt or row["badpieces"] == 0), row
    for mode in modes:  # every kind of misbehaviour is counted as such ...
        kind = KINDS[mode]
        assert strikes.counts[kind] > counts_before[kind], (mode, strikes.counts, counts_before)
    blamed = set(strikes.as_dict()["suppliers"])  # ... against the bad suppliers and nobody else
    assert blamed == {idurl(supplier.node) for supplier in evil}, (blamed, modes)
    assert hired(customer) == before, "nobody is fired while the limit is not reached"


def rebuilder_settled(customer: Node) -> bool:
    rebuilder = service(customer, RebuildingService).rebuilder
    return rebuilder is not None and rebuilder.state == "READY" and not rebuilder.unrebuilt()


def whole(customer: Node) -> bool:
    items = {item["id"]: item for item in ok(api(customer, "backups_list"))}
    return all(count == 8 for version in items[shared["path_id"]]["versions"] for count in version["redundancy"])


@pytest_twisted.inlineCallbacks
def test_a_supplier_that_keeps_failing_is_fired_and_replaced(grid: list[Node], tmp_path_factory: Any) -> Any:
    customer = grid[CUSTOMER]
    strikes = strikes_of(customer)
    before = hired(customer)
    for who in before:
        strikes.forget(who)
    customer.config.set("services/employer/piece-failures-limit", 3)
    position = evil_positions(grid)[0]
    bad = supplier_at(grid, position)
    evil = EvilSupplier(bad, "wrong-bytes")
    try:
        for attempt in range(5):  # each restore learns afresh, so each one meets the bad supplier again
            if idurl(bad) not in hired(customer):
                break
            row = yield restored(customer, shared["second"], tmp_path_factory.mktemp(f"attempt{attempt}"))
            assert row["state"] == "DONE", row
        yield wait_until(reactor, lambda: idurl(bad) not in hired(customer) and all_online(customer), WAIT,
                         "the failing supplier replaced")
        fire_hire = service(customer, EmployerService).fire_hire
        assert fire_hire is not None
        assert f"instead of {idurl(bad)}" in fire_hire.last_outcome, fire_hire.last_outcome
        after = hired(customer)
        assert [who for p, who in enumerate(after) if p != position] == [
            who for p, who in enumerate(before) if p != position], "only the bad position changed hands"
        assert after[position] not in before
        assert idurl(bad) in service(customer, CustomerService).refusals.current(), "not hired again soon"
        yield wait_until(reactor, lambda: rebuilder_settled(customer) and whole(customer), WAIT,
                         "the new supplier rebuilt")
        dest = tmp_path_factory.mktemp("after-fire")
        row = yield restored(customer, shared["second"], dest)  # the fired one is still evil: not asked
        assert row["state"] == "DONE" and row["badpieces"] == 0, row
        assert snapshot(dest / "Docs") == shared["tree"]
        served = evil.served
        assert served >= 3
    finally:
        evil.undo()
        customer.config.set("services/employer/piece-failures-limit", 1000)


# -- the transport side ---------------------------------------------------------------------


def tcp_port(node: Node) -> int:
    tcp = service(node, TcpConnectionsService).connections
    assert tcp is not None
    return tcp.port


def dropped(node: Node) -> dict[str, int]:
    return dict(gateway_of(node).stats.as_api()["in"]["dropped"])


def grown(node: Node, before: dict[str, int]) -> dict[str, int]:
    now = dropped(node)
    return {reason: now[reason] - before.get(reason, 0) for reason in now if now[reason] != before.get(reason, 0)}


def without_retries(drops: dict[str, int]) -> dict[str, int]:
    """Drops but duplicates: the grid's own traffic may add one (a retried reply) at any time."""
    return {reason: count for reason, count in drops.items() if reason != "duplicate"}


class RssPeak:
    """The highest RSS of this process (every node of the grid lives in it), sampled every 20 ms."""

    def __init__(self) -> None:
        self.process = psutil.Process()
        gc.collect()
        self.base = self.process.memory_info().rss
        self.peak = self.base
        self._loop = LoopingCall(self._sample)
        self._loop.clock = reactor
        self._loop.start(0.02)

    def _sample(self) -> None:
        self.peak = max(self.peak, self.process.memory_info().rss)

    def stop(self) -> int:
        if self._loop.running:
            self._loop.stop()
        self._sample()
        return self.peak - self.base


@pytest.fixture
def attacker() -> Generator[ThreadPool, None, None]:
    """Threads of the hostile peer: blocking sockets, so it holds one frame at a time."""
    pool = ThreadPool(minthreads=1, maxthreads=8, name="attacker")
    pool.start()
    yield pool
    pool.stop()


def in_attacker(pool: ThreadPool, fn: Callable[..., Any], *args: Any) -> Deferred[Any]:
    clock: Any = reactor
    return deferToThreadPool(clock, pool, fn, *args)


def hang_up_after(pool: ThreadPool, port: int, data: bytes) -> Deferred[bool]:
    """Send ``data`` on a new connection; fires True once the node hung up."""
    def work() -> bool:
        sock = blocking_connect(port)
        _sent, closed = blocking_send(sock, [data])
        if closed:
            sock.close()
            return True
        return wait_hung_up(sock)

    return in_attacker(pool, work)


def forged_frames(me: str, target: str, thief: PacketSigningKey, count: int, size: int) -> Iterator[bytes]:
    """Packets with ``me`` as creator signed by another key, made one at a time (in the attacker's thread)."""
    rng = random.Random(11)
    for _ in range(count):
        yield encode_frame(Packet.create(Command.Data, me, me, new_packet_id(), rng.randbytes(size), target,
                                         thief).serialize())


def small_frames(sender: Node, target: str, count: int) -> Iterator[bytes]:
    """Genuine 100-byte packets of ``sender``, each with a new PacketID, signed one at a time."""
    gw = gateway_of(sender)
    for n in range(count):
        yield encode_frame(gw.make_packet(Command.Data, n.to_bytes(4, "big") * 25, target).serialize())


@pytest_twisted.inlineCallbacks
def test_hostile_tcp_input_is_dropped_counted_and_memory_stays_bounded(grid: list[Node], tmp_path_factory: Any,
                                                                       attacker: ThreadPool) -> Any:
    customer, peer = grid[CUSTOMER], grid[2]
    port = tcp_port(customer)
    rng = random.Random(7)
    start = dropped(customer)
    stats_before = gateway_of(customer).stats.as_api()["in"]
    memory = RssPeak()
    flooded = 0

    # 1. A length prefix far over the limit: refused at the header, nothing of that size allocated.
    limit = gateway_of(customer).max_packet
    for data in [(limit + 1).to_bytes(4, "big") + b"z" * 1000, b"\xff\xff\xff\xff" + b"z" * 1000,
                 # 2. Random bytes and an HTTP request: their first 4 bytes read as a length over the limit.
                 rng.randbytes(MB), b"GET / HTTP/1.1\r\nHost: x\r\n\r\n"]:
        assert (yield hang_up_after(attacker, port, data))
        flooded += len(data)
    # 3. Valid frames of garbage, 1 MB each, 48 connections, 8 at a time: each is hung up on.
    junk = encode_frame(rng.randbytes(MB))
    for _batch in range(6):
        closed = yield DeferredList([hang_up_after(attacker, port, junk) for _ in range(8)], fireOnOneErrback=True)
        assert all(result for _ok, result in closed)
        flooded += 8 * len(junk)
    assert without_retries(grown(customer, start)) == {"oversize": 4, "garbage": 48}, grown(customer, start)

    # 4. A frame that announces 30 MB and sends 1 KB: held as 1 KB, not as 30 MB.
    slow: RawPeer = yield raw_connect(reactor, port)
    wire: Any = slow.transport
    wire.write((30 * MB).to_bytes(4, "big") + b"s" * 1024)
    yield wait_until(reactor, lambda: any(s["direction"] == "in" and s["size"] == 30 * MB and s["done"] == 1024
                                          for s in ok(ApiMethods(customer).streams_list())), WAIT,
                     "the half-sent frame listed")
    wire.abortConnection()

    # 5. A genuine 1 MB packet of node2, then 48 replays of it on one connection: one is
    #    taken, the replays are duplicates (answered from memory, never dispatched again).
    target, me = idurl(customer), idurl(peer)
    original = gateway_of(peer).make_packet(Command.Data, rng.randbytes(MB), target)
    genuine = encode_frame(original.serialize())
    sock = yield in_attacker(attacker, blocking_connect, port)
    try:
        yield in_attacker(attacker, blocking_send, sock, [genuine])
        yield wait_until(reactor, lambda: any(r["packet_id"] == original.packet_id and r["state"] == "received"
                                              for r in gateway_of(customer).packet_log.as_api()), WAIT,
                         "the genuine packet accepted")
        sent, closed = yield in_attacker(attacker, blocking_send, sock, itertools.repeat(genuine, 48))
        flooded += sent
        yield wait_until(reactor, lambda: grown(customer, start).get("duplicate", 0) >= 48, WAIT,
                         "48 replays dropped")
        assert not closed, "replays do not break the stream: the peer may have lost our Ack"
        # 6. A flood of 3,000 small genuine packets of node2, each new: taken (they are
        #    valid), the duplicate table stays within its bound, nothing piles up.
        received_before = gateway_of(customer).stats.as_api()["in"]["totalpackets"]
        sent, closed = yield in_attacker(attacker, blocking_send, sock, small_frames(peer, target, 3000))
        assert not closed
        yield wait_until(reactor, lambda: gateway_of(customer).stats.as_api()["in"]["totalpackets"] >=
                         received_before + 3000, WAIT, "3,000 small packets taken")
        assert len(gateway_of(customer)._seen) <= 10_000
        # 7. The same sender's packet dated an hour ago: stale.
        assert peer.packet_key is not None
        stale = Packet.create(Command.Data, me, me, new_packet_id(), b"old", target, peer.packet_key,
                              date=now_ms() - 3600_000)
        # node2's genuine key id on a packet whose payload was changed after signing.
        honest = gateway_of(peer).make_packet(Command.Data, b"pay 10", target)
        # A creator nobody knows (the identity server has no such name).
        nobody = make_idurl("127.0.0.1", grid[0].config.get("services/identity-server/web-port"), "nobody-here")
        thief = PacketSigningKey.generate()
        stranger = Packet.create(Command.Data, nobody, nobody, new_packet_id(), b"?", target, thief)
        frames = [encode_frame(p.serialize()) for p in (stale, dataclasses.replace(honest, payload=b"pay 99"),
                                                        stranger)]
        sent, closed = yield in_attacker(attacker, blocking_send, sock, frames)
        # 8. Twenty 1 MB packets with node2 as creator, signed by another key.
        sent, closed = yield in_attacker(attacker, blocking_send, sock, forged_frames(me, target, thief, 20, MB))
        flooded += sent
        assert not closed
        yield wait_until(reactor, lambda: grown(customer, start).get("bad_signature", 0) == 21
                         and grown(customer, start).get("unknown_creator", 0) == 1, WAIT, "forgeries dropped")
    finally:
        growth = memory.stop()
        sock.close()

    drops = grown(customer, start)
    # a retry between the customer and its suppliers may add a duplicate of its own meanwhile
    assert drops.pop("duplicate") >= 48, drops
    assert drops == {"oversize": 4, "garbage": 48, "stale": 1, "bad_signature": 21, "unknown_creator": 1}, drops
    stats = gateway_of(customer).stats.as_api()["in"]
    assert stats["unknownpackets"] - stats_before["unknownpackets"] == 4 + 48 + 1
    assert stats["failedpackets"] - stats_before["failedpackets"] == 1 + 21
    print(f"\nflooded {flooded / MB:.0f} MB into the customer; RSS grew by at most {growth / MB:.1f} MB")
    assert flooded > 100 * MB
    assert growth < 48 * MB, f"RSS grew by {growth / MB:.1f} MB while {flooded / MB:.0f} MB arrived"

    # The customer still serves: every supplier online, and a restore is byte for byte.
    yield wait_until(reactor, lambda: all_online(customer), WAIT, "suppliers still online")
    dest = tmp_path_factory.mktemp("after-flood")
    row = yield restored(customer, shared["second"], dest)
    assert row["state"] == "DONE" and row["badpieces"] == 0, row
    assert snapshot(dest / "Docs") == shared["tree"]


@pytest_twisted.inlineCallbacks
def test_partial_frames_over_the_budget_are_shed_stalled_first(grid: list[Node]) -> Any:
    """Many connections each holding a large frame's first bytes: the oldest stalled one
    goes once all together pass the budget (8 MB here, 256 MB by default). What counts
    is the memory held: a frame's buffer once allocated (3 MB, once 1 MB of it came)."""
    customer = grid[CUSTOMER]
    tcp = service(customer, TcpConnectionsService).connections
    assert tcp is not None
    start, budget, held_before = dropped(customer), tcp.max_buffered, tcp.buffered
    tcp.max_buffered = held_before + 8 * MB
    peers: list[RawPeer] = []
    try:
        for number in range(3):  # 1 MB of 3 MB frames, 3 MB held each: the third passes the budget
            peer: RawPeer = yield raw_connect(reactor, tcp.port)
            peers.append(peer)
            wire: Any = peer.transport
            wire.write((3 * MB).to_bytes(4, "big") + bytes([number]) * MB)
            yield wait_until(reactor, partial(held_or_shed, tcp, held_before + 3 * MB * (number + 1), peers[0]),
                             WAIT, f"partial frame {number} held")
        yield within_closed(peers[0])
        assert without_retries(grown(customer, start)) == {"buffer_full": 1}, grown(customer, start)
        assert peers[1].open and peers[2].open, "the later ones are kept"
        assert tcp.buffered - held_before == 6 * MB, "the accounting follows"
    finally:
        tcp.max_buffered = budget
        for peer in peers:
            wire = peer.transport
            if peer.open:
                wire.abortConnection()
    yield wait_until(reactor, lambda: tcp.buffered == held_before, WAIT, "every held byte released")


@pytest_twisted.inlineCallbacks
def test_partial_quic_packets_over_the_budget_are_shed_stalled_first(grid: list[Node]) -> Any:
    """The same over QUIC: node3 opens three connections to the customer and sends each a
    3 MB stream it never ends; the first one is closed once they pass an 8 MB budget."""
    customer, sender = grid[CUSTOMER], grid[3]
    quic, mine = service(customer, UdpTransportService).transport, service(sender, UdpTransportService).transport
    assert quic is not None and mine is not None
    start, budget, held_before = dropped(customer), quic.max_buffered, quic.buffered
    quic.max_buffered = held_before + 8 * MB
    conns: list[PacketQuicProtocol] = []
    try:
        for number in range(3):
            conn = yield Deferred.fromFuture(asyncio.ensure_future(mine._dial("127.0.0.1", quic.port)))
            conns.append(conn)
            stream = conn._quic.get_next_available_stream_id(is_unidirectional=True)
            conn._quic.send_stream_data(stream, bytes([number]) * (3 * MB), end_stream=False)
            conn.transmit()
            yield wait_until(reactor, partial(quic_held_or_shed, quic, held_before + 3 * MB * (number + 1), conns[0]),
                             WAIT, f"partial packet {number} held")
        yield wait_until(reactor, lambda: conns[0].closed, WAIT, "the stalled connection closed")
        assert without_retries(grown(customer, start)) == {"buffer_full": 1}, grown(customer, start)
        assert not conns[1].closed and not conns[2].closed, "the later ones are kept"
        yield wait_until(reactor, lambda: quic.buffered - held_before == 6 * MB, WAIT, "the two others held whole")
    finally:
        quic.max_buffered = budget
        for conn in conns:
            conn.close()
    yield wait_until(reactor, lambda: quic.buffered == held_before, WAIT, "every held byte released")


def quic_held_or_shed(quic: QuicTransport, at_least: int, first: PacketQuicProtocol) -> bool:
    return quic.buffered >= at_least or first.closed


def held_or_shed(tcp: TcpConnections, at_least: int, first: RawPeer) -> bool:
    return tcp.buffered >= at_least or not first.open


def within_closed(peer: RawPeer) -> Deferred[None]:
    return peer.closed.addTimeout(WAIT, reactor)
