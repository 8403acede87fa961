"""QUIC connections to a peer that died are dropped without errors.

aioquic keeps a timer (retransmits, the closing period) and ``call_soon`` transmits per
connection. A dial to a dead peer gave up after ``CONNECT_TIMEOUT`` and closed its
socket while the handshake's retransmit timer was still armed; when it fired, asyncio
raised AttributeError ('NoneType' object has no attribute 'sendto' /
'call_exception_handler') into the loop. Nothing may reach the loop's exception
handler or the error log.
"""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path
from typing import Any

import pytest
import pytest_twisted
from twisted.internet import reactor
from twisted.internet.defer import Deferred, succeed
from twisted.internet.task import deferLater

from bitdust.transport import udp_quic
from bitdust.transport.gateway import InboxResult
from bitdust.transport.packet import Frame
from bitdust.transport.udp_quic import QuicError, QuicTransport
from tests.conftest import free_udp_port

MAX_PACKET = 4 * 1024 * 1024


class Receiver:
    """The gateway as the transport sees it: takes every packet."""

    def __init__(self) -> None:
        self.packets: list[bytes] = []

    def inbox(self, data: bytes, _proto: str, _peer: Any = None) -> Deferred[InboxResult]:
        self.packets.append(data)
        return succeed(InboxResult("http://127.0.0.1:8084/peer.xml"))

    def reject(self, _reason: str, _size: int) -> None:
        pass


def pause(seconds: float) -> Deferred[None]:
    return deferLater(reactor, seconds, lambda: None)


def quic(tmp_path: Path, name: str) -> QuicTransport:
    transport = QuicTransport(reactor, "127.0.0.1", 0, MAX_PACKET, tmp_path / name)
    (tmp_path / name).mkdir()
    transport.receiver = Receiver()  # type: ignore[assignment]
    return transport


@pytest_twisted.inlineCallbacks
def test_dead_peers_leave_no_error_in_the_loop(tmp_path: Path, caplog: pytest.LogCaptureFixture,
                                               monkeypatch: pytest.MonkeyPatch) -> Any:
    monkeypatch.setattr(udp_quic, "CONNECT_TIMEOUT", 0.3)  # give up before the first retransmit
    loop = asyncio.get_event_loop()
    reported: list[dict[str, Any]] = []
    previous_handler = loop.get_exception_handler()
    loop.set_exception_handler(lambda _loop, context: reported.append(context))
    caplog.set_level(logging.ERROR)
    sender, peer = quic(tmp_path, "sender"), quic(tmp_path, "peer")
    try:
        yield sender.start()
        yield peer.start()
        port = peer.port
        yield sender.send("127.0.0.1", port, Frame.of(b"hello"), "")
        big = sender.send("127.0.0.1", port, Frame.of(b"x" * (MAX_PACKET - 1)), "")
        big.addErrback(lambda failure: failure.trap(QuicError, asyncio.CancelledError))
        dead = sender.send("127.0.0.1", free_udp_port(), Frame.of(b"nobody there"), "")
        dead.addErrback(lambda failure: failure.trap(QuicError))
        yield dead
        yield pause(0.01)  # mid-stream
        yield peer.stop()
        yield pause(0.3)
        yield sender.stop()  # closes the dialled connection while its timers are armed
        yield pause(2.5)  # past the retransmit and closing-period timers
        late = sender.send("127.0.0.1", port, Frame.of(b"late"), "")
        late.addErrback(lambda failure: failure.trap(QuicError))
        yield late
    finally:
        loop.set_exception_handler(previous_handler)
    # Other tests' DHT nodes may still time out in the background: only QUIC's count.
    quic_reports = [c for c in reported if "quic" in f"{c.get('message')} {c.get('handle')}".lower()]
    assert quic_reports == [], [c.get("message") for c in quic_reports]
    errors = [r for r in caplog.records if r.levelno >= logging.ERROR and not r.name.startswith("rpcudp")]
    assert errors == [], [r.getMessage() for r in errors]
    assert sender.connections() == [] and peer.connections() == []
