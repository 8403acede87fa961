"""Packet stats, duplicate table and the TCP frame protocol, without sockets."""

from __future__ import annotations

from typing import Any

import pytest
from twisted.internet.defer import Deferred

from bitdust.crypto.packet_keys import PacketSigningKey
from bitdust.transport.dedupe import SeenPackets
from bitdust.transport.gateway import InboxResult
from bitdust.transport.packet import Command, Frame, FrameDecoder, Packet, encode_frame
from bitdust.transport.stats import PacketLog, PacketRecord, PacketStats
from bitdust.transport.tcp import (
    WRITE_BUFFER_HIGH,
    WRITE_BUFFER_LOW,
    PacketProtocol,
    SendQueueFull,
    TcpError,
    check_listen_host,
)

PEER = "http://127.0.0.1:8084/bob.xml"


def test_stats_shape_and_reasons() -> None:
    stats = PacketStats()
    stats.received(PEER, 100)
    stats.dropped_in("bad_signature", 50)
    stats.dropped_in("garbage", 7)
    stats.dropped_in("duplicate", 100)
    stats.sent(PEER, 30)
    stats.send_failed()
    stats.send_unknown(9)
    api = stats.as_api()
    assert api["in"] == {PEER: 1, "failedpackets": 1, "totalbytes": 100, "totalpackets": 1,
                         "unknownbytes": 7, "unknownpackets": 1,
                         "dropped": {"bad_signature": 1, "duplicate": 1, "garbage": 1}}
    assert api["out"] == {PEER: 1, "failedpackets": 2, "totalbytes": 30, "totalpackets": 1,
                          "unknownbytes": 9, "unknownpackets": 1}


def test_stats_per_peer_table_is_bounded(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("bitdust.transport.stats.MAX_PEERS", 3)
    stats = PacketStats()
    for i in range(10):
        stats.received(f"http://h/{i}.xml", 1)
    peers = [k for k in stats.as_api()["in"] if k.startswith("http")]
    assert peers == ["http://h/7.xml", "http://h/8.xml", "http://h/9.xml"]


def test_packet_log_keeps_active_and_bounded_recent() -> None:
    log = PacketLog(recent=2)
    active = log.start(PacketRecord("out", "Data", "1", PEER, 10, "sending"))
    for i in range(3):
        log.add_finished(PacketRecord("in", "Ack", str(i), PEER, 5, "received"))
    assert [r["packet_id"] for r in log.as_api()] == ["1", "2", "1"]
    log.finish(active, "acked")
    assert [(r["packet_id"], r["state"]) for r in log.as_api()] == [("2", "received"), ("1", "acked")]
    assert set(log.as_api()[0]) == {"direction", "command", "packet_id", "remote", "size", "state", "proto",
                                    "attempts", "started"}


def test_seen_packets_lru_and_replies() -> None:
    seen = SeenPackets(limit=2)
    a, b, c = (PEER, "Data", "a"), (PEER, "Data", "b"), (PEER, "Data", "c")
    seen.add(a)
    seen.add(b)
    ack_a = Packet.create(Command.Ack, PEER, PEER, "a", b"", PEER, PacketSigningKey.generate())
    seen.set_reply(a, ack_a)
    seen.add(a)  # touch: b becomes the oldest
    seen.add(c)
    assert a in seen and c in seen and b not in seen and len(seen) == 2
    assert seen.reply_for(a) is ack_a and seen.reply_for(c) is None
    seen.set_reply(b, ack_a)  # not in the table any more
    assert seen.reply_for(b) is None
    with pytest.raises(ValueError):
        SeenPackets(0)


def test_frame_decoder_reports_the_frame_in_progress() -> None:
    decoder = FrameDecoder(1000)
    assert decoder.next_frame_size is None
    frame = encode_frame(b"x" * 300)
    assert decoder.feed(frame[:100]) == []
    assert decoder.next_frame_size == 300
    assert decoder.feed(frame[100:]) == [b"x" * 300]
    assert decoder.next_frame_size is None


def test_listen_host_refuses_wildcards() -> None:
    assert check_listen_host("127.0.0.1") == "127.0.0.1"
    assert check_listen_host("node.example") == "node.example"
    for bad in ("0.0.0.0", "::", ""):
        with pytest.raises(ValueError):
            check_listen_host(bad)


class _Manager:
    """The parts of TcpConnections a PacketProtocol uses."""

    def __init__(self, max_frame: int = 1000, queue_limit: int = 500, max_connections: int = 10) -> None:
        self.max_frame = max_frame
        self.queue_limit = queue_limit
        self.max_connections = max_connections
        self.receiver: Any = self
        self.frames: list[bytes] = []
        self.rejected: list[str] = []
        self.answers: list[Deferred[InboxResult]] = []
        self.buffered = 0
        self.pool: list[PacketProtocol] = []

    def buffered_change(self, delta: int) -> None:
        self.buffered += delta

    def shed(self) -> None:
        pass

    def inbox(self, data: bytes, proto: str, peer: Any) -> Deferred[InboxResult]:
        self.frames.append(data)
        answer: Deferred[InboxResult] = Deferred()
        self.answers.append(answer)
        return answer

    def reject(self, reason: str, size: int) -> None:
        self.rejected.append(reason)

    def count(self, direction: str) -> int:
        return len(self.pool)

    def added(self, conn: PacketProtocol) -> None:
        self.pool.append(conn)

    def removed(self, conn: PacketProtocol) -> None:
        self.pool.remove(conn)


class _Transport:
    """What a PacketProtocol uses of an asyncio transport, recording what it is told."""

    def __init__(self) -> None:
        self.written = bytearray()
        self.reading = True
        self.aborted = self.closed = False
        self.limits: tuple[int, int] | None = None

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return {"peername": ("127.0.0.1", 40000)}.get(name, default)

    def set_write_buffer_limits(self, high: int, low: int) -> None:
        self.limits = (high, low)

    def writelines(self, parts: Any) -> None:
        for part in parts:
            self.written += part

    def pause_reading(self) -> None:
        self.reading = False

    def resume_reading(self) -> None:
        self.reading = True

    def abort(self) -> None:
        self.aborted = True

    def close(self) -> None:
        self.closed = True


def _connected(manager: _Manager) -> tuple[PacketProtocol, _Transport]:
    proto = PacketProtocol(manager, "in")  # type: ignore[arg-type]
    transport = _Transport()
    proto.connection_made(transport)  # type: ignore[arg-type]
    return proto, transport


def _received(proto: PacketProtocol, data: bytes) -> None:
    """As the event loop reads a socket: into the protocol's buffer, as much as fits."""
    view = memoryview(data)
    while view:
        target = proto.get_buffer(-1)
        size = min(len(target), len(view))
        target[:size] = view[:size]
        view = view[size:]
        proto.buffer_updated(size)


def test_write_queue_is_bounded_while_the_peer_is_slow() -> None:
    manager = _Manager(queue_limit=500)
    proto, transport = _connected(manager)
    assert transport.limits == (WRITE_BUFFER_HIGH, WRITE_BUFFER_LOW)
    first = proto.send(Frame.of(b"a" * 100))
    assert first.called and transport.written == encode_frame(b"a" * 100)
    proto.pause_writing()  # what the transport does when its buffer is full
    queued = [proto.send(Frame.of(b"b" * 200)), proto.send(Frame.of(b"c" * 200))]
    assert not any(d.called for d in queued) and proto.queued_bytes == 2 * 204
    refused = proto.send(Frame.of(b"d" * 200))
    failures: list[Any] = []
    refused.addErrback(failures.append)
    assert failures and failures[0].check(SendQueueFull)
    assert len(proto.streams()) == 2
    proto.resume_writing()
    assert all(d.called for d in queued) and proto.queued_bytes == 0
    assert transport.written.endswith(encode_frame(b"c" * 200))
    too_big: list[Any] = []
    proto.send(Frame.of(b"z" * 2000)).addErrback(too_big.append)
    assert too_big and too_big[0].check(TcpError)


def test_queued_sends_fail_when_the_connection_drops() -> None:
    manager = _Manager()
    proto, _transport = _connected(manager)
    proto.pause_writing()
    failures: list[Any] = []
    proto.send(Frame.of(b"x")).addErrback(failures.append)
    proto.connection_lost(None)
    assert failures and failures[0].check(TcpError) and manager.pool == []
    later: list[Any] = []
    proto.send(Frame.of(b"y")).addErrback(later.append)
    assert later


def test_reading_pauses_while_too_many_frames_are_verified() -> None:
    manager = _Manager()
    proto, transport = _connected(manager)
    _received(proto, b"".join(encode_frame(bytes([i]) * 10) for i in range(5)))
    assert len(manager.frames) == 5 and not transport.reading
    assert manager.buffered == 0, "whole frames are not counted as held"
    for answer in manager.answers[:2]:
        answer.callback(InboxResult("http://127.0.0.1:8084/alice.xml"))
    assert transport.reading
    assert proto.idurl == "http://127.0.0.1:8084/alice.xml"


def test_a_big_frame_is_counted_whole_from_its_header() -> None:
    """Its buffer is allocated when the length arrives, so that is what the budget counts."""
    manager = _Manager(max_frame=10**6)
    proto, _transport = _connected(manager)
    frame = encode_frame(b"q" * 500_000)
    _received(proto, frame[:10])
    assert manager.buffered == 500_000 and proto.streams()[0]["size"] == 500_000
    _received(proto, frame[10:])
    assert manager.buffered == 0 and manager.frames == [b"q" * 500_000]
    _received(proto, frame[:100])
    proto.connection_lost(None)
    assert manager.buffered == 0, "a lost connection gives its partial frame back"


def test_oversize_header_and_garbage_close_the_connection() -> None:
    manager = _Manager(max_frame=100)
    proto, transport = _connected(manager)
    _received(proto, b"\x00\x00\x10\x00")
    assert manager.rejected == ["oversize"] and transport.aborted
    # Until the loop reports the connection lost it may still read: into a buffer, ignored.
    _received(proto, encode_frame(b"late") + b"\x00\x00\x10\x00")
    assert manager.rejected == ["oversize"] and manager.frames == [] and manager.buffered == 0
    refused: list[Any] = []
    proto.send(Frame.of(b"x")).addErrback(refused.append)
    assert refused and refused[0].check(TcpError), "nothing is written to an aborted connection"
    manager2 = _Manager()
    proto2, transport2 = _connected(manager2)
    _received(proto2, encode_frame(b"junk"))
    manager2.answers[0].callback(InboxResult(None, "garbage"))
    assert transport2.aborted


def test_connections_past_the_limit_are_refused() -> None:
    manager = _Manager(max_connections=1)
    _connected(manager)
    proto, transport = _connected(manager)
    assert transport.aborted and len(manager.pool) == 1 and not proto.open
    proto.connection_lost(None)
    assert len(manager.pool) == 1
