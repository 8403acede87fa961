"""QUIC (aioquic) on UDP: the fallback transport.

Each packet travels on its own unidirectional QUIC stream: the stream's end marks the
end of the packet, so no framing is needed, and one lost datagram only delays its own
packet. One client connection is kept per remote ``host:port`` and reused; a dead one
is re-dialled by the next send. Clients do not verify the server certificate: identity
is proven by the packet signatures (see :mod:`bitdust.transport.quic_cert`).

A send completes when the peer has acknowledged every byte of the stream (aioquic has
no public signal for that, so the connection's stream table is checked after each
transmit). Bounds: a connection holds at most ``queue_limit`` unacknowledged bytes
(beyond: ``SendQueueFull``), and buffers at most ``max_packet`` bytes per incoming
stream and twice that per connection (beyond: the connection is closed). All connections
together hold at most ``max_buffered`` bytes of packets not complete yet; past that the
connection whose partial packet waited longest for more bytes is closed (``buffer_full``,
as for TCP: a stalled stream is the suspect, an honest one keeps arriving), and at most
:data:`MAX_CONNECTIONS` peers may be connected to us at once.

aioquic runs on asyncio; the node's reactor is Twisted's asyncio reactor on that same
loop, so the coroutines below run on the reactor thread and are bridged with
``Deferred.fromFuture``.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import socket
import ssl
import time
from collections.abc import Coroutine
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar, cast

from aioquic.asyncio.protocol import QuicConnectionProtocol
from aioquic.asyncio.server import QuicServer, serve
from aioquic.quic import events
from aioquic.quic.configuration import QuicConfiguration
from aioquic.quic.connection import QuicConnection
from twisted.internet.defer import Deferred
from twisted.python.failure import Failure

from bitdust.transport.packet import Frame
from bitdust.transport.quic_cert import SERVER_NAME, ensure_certificate
from bitdust.transport.tcp import SendQueueFull, check_listen_host, event_loop, run_on_loop

if TYPE_CHECKING:
    from bitdust.transport.gateway import Gateway, InboxResult

log = logging.getLogger(__name__)

PROTO = "udp"
ALPN = "bitdust"
CONNECT_TIMEOUT = 5.0
DELIVERY_TIMEOUT = 120.0
IDLE_TIMEOUT = 60.0
QUEUE_LIMIT = 16 * 1024**2
MAX_INCOMING_STREAMS = 64
MAX_CONNECTIONS = 256
MIN_BUFFERED = 256 * 1024**2
"""Floor of the all-connections budget for partial packets (at least two whole packets)."""
ERROR_PROTOCOL_VIOLATION = 0x0A
MAX_DATAGRAM_SIZE = 1350
"""UDP payload of our QUIC packets: aioquic's default is the protocol's floor (1200), and
its cost is per datagram (~0.15 ms of CPU for each one sent and received), so fewer,
larger datagrams move more bytes. 1350 is what Chromium sends without path-MTU probing:
it fits the paths of the Internet (tunnels included) that 1500-byte Ethernet minus
headers would not always."""

T = TypeVar("T")


class QuicError(ConnectionError):
    """A packet could not be delivered over QUIC."""


class PacketQuicProtocol(QuicConnectionProtocol):
    """One QUIC connection, either accepted by our server or dialled by us."""

    def __init__(self, quic: QuicConnection, stream_handler: Any = None, *,
                 owner: QuicTransport, direction: str) -> None:
        self.owner = owner
        self.direction = direction
        self.remote: tuple[str, int] = ("", 0)
        self.idurl = ""
        self.closed = False
        self.started = time.time()
        self.bytes_in = self.bytes_out = self.packets_in = self.packets_out = 0
        self._incoming: dict[int, bytearray] = {}
        self._incoming_bytes = 0
        self.last_read = 0.0
        """When a partial packet of this connection last grew (monotonic)."""
        self._outgoing: dict[int, tuple[int, asyncio.Future[None]]] = {}
        self.outgoing_bytes = 0
        super().__init__(quic, stream_handler)

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        super().connection_made(transport)
        self.owner.added(self)
        if self.direction == "in" and self.owner.count("in") > self.owner.max_connections:
            log.warning("refusing a quic connection: %d connections open", self.owner.max_connections)
            self.owner.reject("too_many_connections", 0)
            self.close(ERROR_PROTOCOL_VIOLATION, "too many connections")

    def datagram_received(self, data: bytes | str, addr: Any) -> None:
        """As aioquic's, but the answer is sent once per turn of the loop, not once per
        datagram: the loop hands over every datagram waiting in the socket in one turn,
        and each transmit walks every stream of the connection to build a reply (an ACK,
        mostly). One per datagram was most of the CPU of a transfer."""
        if not self.remote[0]:
            self.remote = (str(addr[0]), int(addr[1]))
        self._quic.receive_datagram(cast(bytes, data), addr, now=self._loop.time())
        self._process_events()
        self._transmit_soon()

    def quic_event_received(self, event: events.QuicEvent) -> None:
        if isinstance(event, events.StreamDataReceived):
            self._stream_data(event)
        elif isinstance(event, events.StreamReset):
            self._held(-len(self._incoming.pop(event.stream_id, b"")))
        elif isinstance(event, events.ConnectionTerminated):
            self._terminated(event.reason_phrase or f"error {event.error_code}")

    # -- receiving -------------------------------------------------------------------

    def _stream_data(self, event: events.StreamDataReceived) -> None:
        buffer = self._incoming.get(event.stream_id)
        if buffer is None:
            if len(self._incoming) >= MAX_INCOMING_STREAMS:
                self._violation("too many streams at once", len(event.data))
                return
            buffer = self._incoming[event.stream_id] = bytearray()
        buffer += event.data
        self._held(len(event.data))
        self.bytes_in += len(event.data)
        if len(buffer) > self.owner.max_packet or self._incoming_bytes > 2 * self.owner.max_packet:
            self._violation("packet exceeds the size limit", len(buffer))
            return
        if not event.end_stream:
            self.last_read = time.monotonic()
            self.owner.shed()
            return
        del self._incoming[event.stream_id]
        self._held(-len(buffer))
        self.packets_in += 1
        receiver = self.owner.receiver
        if receiver is not None:
            receiver.inbox(buffer, PROTO, self.remote).addBoth(self._processed)  # handed over, not copied

    def _processed(self, result: InboxResult | Failure) -> None:
        if isinstance(result, Failure) or result.stream_broken:
            self.close(ERROR_PROTOCOL_VIOLATION, "not a packet")
        elif result.creator and not self.idurl:
            self.idurl = result.creator

    def _violation(self, why: str, size: int, reason: str = "oversize") -> None:
        log.info("closing quic connection with %s:%s: %s", *self.remote, why)
        self.owner.reject(reason, size)
        self._drop_incoming()
        self.close(ERROR_PROTOCOL_VIOLATION, why)

    def _held(self, delta: int) -> None:
        """Bytes of partial packets held, here and in the transport's total."""
        self._incoming_bytes += delta
        self.owner.buffered += delta

    def _drop_incoming(self) -> None:
        self._incoming.clear()
        self._held(-self._incoming_bytes)

    @property
    def incoming_bytes(self) -> int:
        return self._incoming_bytes

    # -- sending ---------------------------------------------------------------------

    def send_packet(self, parts: list[memoryview]) -> asyncio.Future[None]:
        """A future that completes when the peer acknowledged the whole packet (given as
        the parts of its bytes)."""
        if self.closed:
            raise QuicError(f"quic connection to {self.remote[0]}:{self.remote[1]} is closed")
        size = sum(len(part) for part in parts)
        if self._outgoing and self.outgoing_bytes + size > self.owner.queue_limit:
            raise SendQueueFull(f"{self.outgoing_bytes} bytes unacknowledged to {self.remote[0]}:{self.remote[1]}")
        stream_id = self._quic.get_next_available_stream_id(is_unidirectional=True)
        # aioquic appends the data to a bytearray: views of the frame serve, uncopied.
        for number, part in enumerate(parts, 1):
            self._quic.send_stream_data(stream_id, part, end_stream=number == len(parts))  # type: ignore[arg-type]
        done: asyncio.Future[None] = self._loop.create_future()
        self._outgoing[stream_id] = (size, done)
        self.outgoing_bytes += size
        self.transmit()
        return done

    def transmit(self) -> None:
        """aioquic transmits from its timer and from ``call_soon`` callbacks that outlive
        the socket: a dialled connection's own socket is closed when it terminates, the
        server's shared one when the transport stops. A closed unconnected datagram
        transport does not ignore ``sendto`` (asyncio crashes inside its own error path
        with AttributeError), so a connection whose socket is gone is dropped here, its
        timer with it, instead of sending."""
        transport = self._transport
        if transport is None or transport.is_closing():
            self._stop_timer()
            self._terminated("the socket is closed")
            return
        super().transmit()
        if self._outgoing:
            self._check_delivered()

    def connection_lost(self, exc: Exception | None) -> None:
        self._stop_timer()
        self._terminated(f"the socket is closed: {exc}" if exc else "the socket is closed")

    def _stop_timer(self) -> None:
        timer, self._timer, self._timer_at = self._timer, None, None
        if timer is not None:
            timer.cancel()
        pending, self._transmit_task = self._transmit_task, None
        if pending is not None:
            pending.cancel()

    def _check_delivered(self) -> None:
        streams = self._quic._streams  # private, but the only place delivery shows
        for stream_id in list(self._outgoing):
            stream = streams.get(stream_id)
            if stream is None or stream.sender.is_finished:
                size, done = self._outgoing.pop(stream_id)
                self.outgoing_bytes -= size
                self.bytes_out += size
                self.packets_out += 1
                if not done.done():
                    done.set_result(None)

    def _terminated(self, reason: str) -> None:
        if self.closed:
            return
        self.closed = True
        for _size, done in self._outgoing.values():
            if not done.done():
                done.set_exception(QuicError(f"quic connection closed: {reason}"))
        self._outgoing.clear()
        self.outgoing_bytes = 0
        self._drop_incoming()
        self.owner.removed(self)
        if self.direction == "out" and self._transport is not None:
            self._stop_timer()  # nothing more is sent on a socket about to close
            self._transport.close()  # our own socket; the server's one is shared

    # -- views -----------------------------------------------------------------------

    def as_api(self) -> dict[str, Any]:
        return {
            "proto": PROTO, "direction": self.direction, "host": self.remote[0], "port": self.remote[1],
            "idurl": self.idurl, "state": "closed" if self.closed else "open",
            "bytes_in": self.bytes_in, "bytes_out": self.bytes_out,
            "packets_in": self.packets_in, "packets_out": self.packets_out,
            "queued_bytes": self.outgoing_bytes, "started": self.started,
        }

    def streams(self) -> list[dict[str, Any]]:
        base = {"proto": PROTO, "host": self.remote[0], "port": self.remote[1], "idurl": self.idurl}
        found = [{**base, "direction": "out", "stream_id": sid, "size": size, "done": None}
                 for sid, (size, _d) in self._outgoing.items()]
        found += [{**base, "direction": "in", "stream_id": sid, "size": None, "done": len(buf)}
                  for sid, buf in self._incoming.items()]
        return found


class QuicTransport:
    """QUIC server and client pool of one node (service_udp_transport)."""

    proto = PROTO

    def __init__(self, reactor: Any, host: str, port: int, max_packet: int, metadata: Path,
                 queue_limit: int = QUEUE_LIMIT) -> None:
        self._loop = event_loop(reactor)
        self.host = check_listen_host(host)
        self.wanted_port = port
        self.max_packet = max_packet
        self.queue_limit = queue_limit
        self.metadata = metadata
        self.max_connections = MAX_CONNECTIONS
        self.max_buffered = max(MIN_BUFFERED, 2 * max_packet)
        self.buffered = 0
        """Bytes of partial packets held by all connections together."""
        self.receiver: Gateway | None = None
        self._server: QuicServer | None = None
        self._all: set[PacketQuicProtocol] = set()
        self._out: dict[tuple[str, int], PacketQuicProtocol] = {}
        self._connecting: dict[tuple[str, int], asyncio.Future[PacketQuicProtocol]] = {}

    def _run(self, coro: Coroutine[Any, Any, T]) -> Deferred[T]:
        return run_on_loop(self._loop, coro)

    @property
    def port(self) -> int:
        if self._server is None or self._server._transport is None:
            raise QuicError("not listening")
        return int(self._server._transport.get_extra_info("sockname")[1])

    # -- life --------------------------------------------------------------------------

    def start(self) -> Deferred[None]:
        return self._run(self._start())

    async def _start(self) -> None:
        cert, key = ensure_certificate(self.metadata)
        config = QuicConfiguration(is_client=False, alpn_protocols=[ALPN], idle_timeout=IDLE_TIMEOUT,
                                   max_datagram_size=MAX_DATAGRAM_SIZE)
        config.load_cert_chain(cert, key)
        self._server = await serve(self.host, self.wanted_port, configuration=config,
                                   create_protocol=functools.partial(PacketQuicProtocol, owner=self, direction="in"))
        log.info("quic listening on %s:%d (udp)", self.host, self.port)

    def stop(self) -> Deferred[None]:
        for pending in self._connecting.values():
            pending.cancel()
        self._connecting.clear()
        for conn in list(self._all):
            conn.close()
            conn._terminated("shutting down")
        server, self._server = self._server, None
        if server is not None:
            server.close()
        return self._run(asyncio.sleep(0))

    def added(self, conn: PacketQuicProtocol) -> None:
        self._all.add(conn)

    def removed(self, conn: PacketQuicProtocol) -> None:
        self._all.discard(conn)
        for key, known in list(self._out.items()):
            if known is conn:
                del self._out[key]

    def reject(self, reason: str, size: int) -> None:
        if self.receiver is not None:
            self.receiver.reject(reason, size)

    def count(self, direction: str) -> int:
        return sum(1 for c in self._all if c.direction == direction and not c.closed)

    def shed(self) -> None:
        """Over the budget for partial packets: close the connections whose partial
        packet waited longest for more bytes until the rest fits."""
        if self.buffered <= self.max_buffered:
            return
        holders = sorted((c for c in self._all if c.incoming_bytes and not c.closed), key=lambda c: c.last_read)
        for conn in holders:
            if self.buffered <= self.max_buffered:
                break
            log.warning("quic: %d bytes of partial packets held (limit %d)", self.buffered, self.max_buffered)
            conn._violation("too many bytes of partial packets held", conn.incoming_bytes, "buffer_full")

    # -- sending -----------------------------------------------------------------------

    def send(self, host: str, port: int, frame: Frame, idurl: str) -> Deferred[None]:
        """Send a packet's frame (:meth:`Packet.frame`): one stream carries the packet
        bytes after the length, its end marks the packet's."""
        return self._run(self._send(host, port, frame, idurl))

    async def _send(self, host: str, port: int, frame: Frame, idurl: str) -> None:
        if frame.body_size > self.max_packet:
            raise QuicError(f"packet of {frame.body_size} bytes exceeds the limit {self.max_packet}")
        conn = await self._connection(host, port)
        if idurl and not conn.idurl:
            conn.idurl = idurl
        await asyncio.wait_for(conn.send_packet(frame.body_parts()), DELIVERY_TIMEOUT)

    async def _connection(self, host: str, port: int) -> PacketQuicProtocol:
        if self._server is None:
            raise QuicError("udp transport is not running")
        key = (host, port)
        conn = self._out.get(key)
        if conn is not None and not conn.closed:
            return conn
        pending = self._connecting.get(key)
        if pending is None:
            pending = asyncio.ensure_future(self._dial(host, port), loop=self._loop)
            self._connecting[key] = pending
            pending.add_done_callback(lambda _f: self._connecting.pop(key, None))
        conn = await asyncio.shield(pending)
        self._out[key] = conn
        return conn

    async def _dial(self, host: str, port: int) -> PacketQuicProtocol:
        config = QuicConfiguration(is_client=True, alpn_protocols=[ALPN], verify_mode=ssl.CERT_NONE,
                                   server_name=SERVER_NAME, idle_timeout=IDLE_TIMEOUT,
                                   max_datagram_size=MAX_DATAGRAM_SIZE)
        infos = await self._loop.getaddrinfo(host, port, type=socket.SOCK_DGRAM)
        address = infos[0][4]
        transport, conn = await self._loop.create_datagram_endpoint(
            lambda: PacketQuicProtocol(QuicConnection(configuration=config), owner=self, direction="out"),
            local_addr=(self.host, 0))
        conn.remote = (host, port)
        try:
            conn.connect(address)
            await asyncio.wait_for(conn.wait_connected(), CONNECT_TIMEOUT)
        except BaseException as exc:
            conn._terminated("connect failed")
            transport.close()
            if isinstance(exc, (asyncio.TimeoutError, ConnectionError)):
                raise QuicError(f"cannot connect to {host}:{port} over quic") from None
            raise
        return conn

    # -- views -------------------------------------------------------------------------

    def connections(self) -> list[dict[str, Any]]:
        return [c.as_api() for c in sorted(self._all, key=lambda c: c.started)]

    def streams(self) -> list[dict[str, Any]]:
        return [s for c in sorted(self._all, key=lambda c: c.started) for s in c.streams()]
