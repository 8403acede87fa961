"""TCP connections carrying length-prefixed packet frames.

* One outgoing connection per remote ``host:port``, opened on the first send and reused;
  a closed one is re-opened by the next send. Incoming connections are served as long
  as the peer keeps them (or until idle for ``idle_timeout``).
* Write side backpressure: the protocol registers itself as a streaming producer of
  its transport. While the kernel socket buffer plus Twisted's buffer is full, frames
  wait in a per-connection queue bounded in bytes; a send that would exceed it fails
  at once (``SendQueueFull``) and the gateway falls back or retries later. So a slow
  peer costs at most one frame in Twisted's buffer plus the queue limit.
* Read side backpressure: at most ``MAX_INFLIGHT`` frames of one connection are being
  verified at a time; beyond that the socket stops being read, so TCP flow control
  slows the sender down instead of our memory growing.
* A frame longer than the limit, or a frame that is not a packet, closes the connection:
  the stream can no longer be trusted to be in sync.
* All connections together hold at most ``max_buffered`` bytes of frames not complete
  yet. Each alone is bounded by the frame limit, but a peer that opens many connections
  and sends each a large frame's first bytes, then nothing, would otherwise pin
  connections x frame limit (256 x 33 MB by default). Past the budget the connection
  whose partial frame has waited longest for its next byte is hung up on (counted as
  ``buffer_full``): an honest transfer keeps arriving, a stalled one is the suspect.
"""

from __future__ import annotations

import collections
import ipaddress
import logging
import time
from typing import TYPE_CHECKING, Any

from twisted.internet import protocol
from twisted.internet.defer import Deferred, fail, succeed
from twisted.internet.endpoints import HostnameEndpoint
from twisted.internet.interfaces import IPushProducer
from twisted.internet.task import LoopingCall
from twisted.python.failure import Failure
from zope.interface import implementer

from bitdust.transport.gateway import THREAD_PARSE_BYTES
from bitdust.transport.packet import FRAME_HEADER_SIZE, FrameDecoder, PacketError, frame_body

if TYPE_CHECKING:
    from bitdust.transport.gateway import Gateway, InboxResult

log = logging.getLogger(__name__)

PROTO = "tcp"
CONNECT_TIMEOUT = 10.0
IDLE_TIMEOUT = 300.0
IDLE_CHECK_INTERVAL = 30.0
MAX_INFLIGHT = 4
READ_SIZE = 256 * 1024
SEND_SIZE = 1024 * 1024
QUEUE_LIMIT = 16 * 1024**2
MAX_CONNECTIONS = 256
MAX_CONNECT_WAITERS = 1000
MIN_BUFFERED = 256 * 1024**2
"""Floor of the all-connections budget for partial frames (at least two whole frames)."""


class TcpError(ConnectionError):
    """A frame could not be handed to a TCP connection."""


class SendQueueFull(TcpError):
    """The peer reads slower than we write; refused rather than buffered without end."""


def check_listen_host(host: str) -> str:
    """Refuse the wildcard addresses: a node listens only where it is told to."""
    if not host:
        raise ValueError("network/host is empty")
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return host  # a host name: the resolver picks one address
    if address.is_unspecified:
        raise ValueError(f"refusing to listen on the wildcard address {host!r}: set network/host")
    return host


@implementer(IPushProducer)
class PacketProtocol(protocol.Protocol):
    """One TCP connection: frames in, frames out, both directions bounded."""

    def __init__(self, manager: TcpConnections, direction: str) -> None:
        self.manager = manager
        self.direction = direction  # "in": accepted, "out": we dialled
        self.remote: tuple[str, int] = ("", 0)
        self.idurl = ""
        # Big frames go to the gateway unjoined: it parses them in a thread.
        self.decoder = FrameDecoder(manager.max_frame, chunks_from=THREAD_PARSE_BYTES)
        self.queue: collections.deque[tuple[bytes, Deferred[None]]] = collections.deque()
        self.queued_bytes = 0
        self.write_paused = False
        self.read_paused = False
        self.processing = 0
        self.bytes_in = self.bytes_out = self.packets_in = self.packets_out = 0
        self.started = time.time()
        self.last_active = time.monotonic()
        self.last_read = 0.0
        """When the partial frame being received last grew (monotonic)."""
        self.open = False
        self._flushing = False

    # -- connection ------------------------------------------------------------------

    def connectionMade(self) -> None:
        self.open = True
        peer: Any = self.transport.getPeer()  # type: ignore[union-attr]
        if self.direction == "in":
            self.remote = (str(peer.host), int(peer.port))
        # Replies are small and awaited: Nagle plus delayed ACKs would add ~40 ms to each.
        set_no_delay = getattr(self.transport, "setTcpNoDelay", None)
        if set_no_delay is not None:
            set_no_delay(True)
        # Twisted reads 64 KB at a time; a 1 MB piece then costs 16 trips through the
        # reactor and the frame decoder. Bigger reads cut that Python work per byte.
        if hasattr(self.transport, "bufferSize"):
            self.transport.bufferSize = READ_SIZE  # type: ignore[union-attr]
        # Twisted also hands the socket at most 128 KB per writable event: 8 trips through
        # the reactor to send a 1 MB piece, where the kernel takes most of it in one.
        if hasattr(self.transport, "SEND_LIMIT"):
            self.transport.SEND_LIMIT = SEND_SIZE  # type: ignore[union-attr]
        self.transport.registerProducer(self, True)  # type: ignore[union-attr]
        self.manager.added(self)

    def connectionLost(self, reason: Failure = protocol.connectionDone) -> None:
        self.open = False
        self.manager.buffered_change(-self.decoder.pending)
        self.decoder = FrameDecoder(0)  # holds nothing more; its bytes are no longer counted
        queued, self.queue = self.queue, collections.deque()
        self.queued_bytes = 0
        for _data, d in queued:
            d.errback(TcpError(f"connection to {self.remote[0]}:{self.remote[1]} closed"))
        self.manager.removed(self)

    def abort(self) -> None:
        if self.transport is not None:
            self.transport.abortConnection()  # type: ignore[attr-defined]

    # -- read --------------------------------------------------------------------------

    def dataReceived(self, data: bytes) -> None:
        self.bytes_in += len(data)
        self.last_active = self.last_read = time.monotonic()
        held = self.decoder.pending
        try:
            frames = self.decoder.feed(data)
        except PacketError as exc:
            self.manager.buffered_change(-held)
            log.info("closing tcp connection from %s:%s: %s", *self.remote, exc)
            self.manager.reject("oversize", len(data))
            self.abort()
            return
        self.manager.buffered_change(self.decoder.pending - held)
        if self.decoder.pending > held:
            self.manager.shed()
            if not self.open:
                return
        receiver = self.manager.receiver
        for frame in frames:
            if not self.open:
                return
            if receiver is None:  # tcp_transport is off: nobody takes packets
                self.abort()
                return
            self.packets_in += 1
            self.processing += 1
            receiver.inbox(frame, PROTO, self.remote).addBoth(self._processed)
        if self.processing >= MAX_INFLIGHT and not self.read_paused and self.open:
            self.read_paused = True
            self.transport.pauseProducing()  # type: ignore[union-attr]

    def _processed(self, result: InboxResult | Failure) -> None:
        self.processing -= 1
        if isinstance(result, Failure) or result.stream_broken:
            self.abort()
        elif result.creator and not self.idurl:
            self.idurl = result.creator
        if self.read_paused and self.processing < MAX_INFLIGHT and self.open:
            self.read_paused = False
            self.transport.resumeProducing()  # type: ignore[union-attr]

    # -- write -------------------------------------------------------------------------

    def send(self, frame: bytes) -> Deferred[None]:
        """Fire when the frame (:meth:`Packet.frame`, written as it is) is handed to the
        socket; fail at once when it is not one frame or over the limit."""
        if not self.open:
            return fail(TcpError(f"connection to {self.remote[0]}:{self.remote[1]} is closed"))
        try:
            size = len(frame_body(frame))
        except PacketError as exc:
            return fail(TcpError(str(exc)))
        if size > self.manager.max_frame:
            return fail(TcpError(f"packet of {size} bytes exceeds the frame limit {self.manager.max_frame}"))
        if self.queue and self.queued_bytes + len(frame) > self.manager.queue_limit:
            return fail(SendQueueFull(f"{self.queued_bytes} bytes already queued to {self.remote[0]}:{self.remote[1]}"))
        d: Deferred[None] = Deferred()
        self.queue.append((frame, d))
        self.queued_bytes += len(frame)
        self._flush()
        return d

    def _flush(self) -> None:
        if self._flushing:
            return  # a callback fired below sent more: the outer loop takes it
        self._flushing = True
        try:
            while self.queue and not self.write_paused and self.open:
                data, d = self.queue.popleft()
                self.queued_bytes -= len(data)
                self.transport.write(data)  # type: ignore[union-attr]
                self.bytes_out += len(data)
                self.packets_out += 1
                self.last_active = time.monotonic()
                d.callback(None)
        finally:
            self._flushing = False

    # IPushProducer: the transport tells us when its buffer is full / drained.
    def pauseProducing(self) -> None:
        self.write_paused = True

    def resumeProducing(self) -> None:
        self.write_paused = False
        self._flush()

    def stopProducing(self) -> None:
        self.write_paused = True

    # -- views -------------------------------------------------------------------------

    def as_api(self) -> dict[str, Any]:
        return {
            "proto": PROTO, "direction": self.direction, "host": self.remote[0], "port": self.remote[1],
            "idurl": self.idurl, "state": "paused" if self.write_paused else "open",
            "bytes_in": self.bytes_in, "bytes_out": self.bytes_out,
            "packets_in": self.packets_in, "packets_out": self.packets_out,
            "queued_bytes": self.queued_bytes, "started": self.started,
        }

    def streams(self) -> list[dict[str, Any]]:
        base = {"proto": PROTO, "host": self.remote[0], "port": self.remote[1], "idurl": self.idurl}
        found = [{**base, "direction": "out", "size": len(data) - FRAME_HEADER_SIZE, "done": 0}
                 for data, _d in self.queue]
        size = self.decoder.next_frame_size
        if size is not None:
            found.append({**base, "direction": "in", "size": size,
                          "done": self.decoder.pending - FRAME_HEADER_SIZE})
        return found


class _Factory(protocol.Factory):
    def __init__(self, manager: TcpConnections, direction: str) -> None:
        self.manager = manager
        self.direction = direction

    def buildProtocol(self, addr: Any) -> PacketProtocol | None:
        if self.direction == "in" and self.manager.count("in") >= self.manager.max_connections:
            log.warning("refusing tcp connection from %s: %d connections open", addr, self.manager.max_connections)
            return None
        return PacketProtocol(self.manager, self.direction)


class TcpConnections:
    """The TCP listener and the pool of connections of one node."""

    def __init__(self, reactor: Any, host: str, port: int, max_frame: int,
                 queue_limit: int = QUEUE_LIMIT, idle_timeout: float = IDLE_TIMEOUT,
                 max_connections: int = MAX_CONNECTIONS) -> None:
        self.reactor = reactor
        self.host = check_listen_host(host)
        self.wanted_port = port
        self.max_frame = max_frame
        self.queue_limit = queue_limit
        self.idle_timeout = idle_timeout
        self.max_connections = max_connections
        self.max_buffered = max(MIN_BUFFERED, 2 * max_frame)
        self.buffered = 0
        """Bytes of partial frames held by all connections together."""
        self.receiver: Gateway | None = None
        self._listener: Any = None
        self._all: set[PacketProtocol] = set()
        self._out: dict[tuple[str, int], PacketProtocol] = {}
        self._connecting: dict[tuple[str, int], list[Deferred[PacketProtocol]]] = {}
        self._idle_check = LoopingCall(self._close_idle)
        self._idle_check.clock = reactor

    @property
    def port(self) -> int:
        """The port really listened on (differs from the config when that was 0)."""
        if self._listener is None:
            raise TcpError("not listening")
        return int(self._listener.getHost().port)

    def listen(self) -> None:
        self._listener = self.reactor.listenTCP(self.wanted_port, _Factory(self, "in"), interface=self.host)
        self._idle_check.start(IDLE_CHECK_INTERVAL, now=False)
        log.info("tcp listening on %s:%d", self.host, self.port)

    def close(self) -> Deferred[None]:
        if self._idle_check.running:
            self._idle_check.stop()
        for waiters in self._connecting.values():
            for d in waiters:
                d.errback(TcpError("tcp connections are shutting down"))
        self._connecting.clear()
        for conn in list(self._all):
            conn.abort()
        listener, self._listener = self._listener, None
        if listener is None:
            return succeed(None)
        return Deferred.fromCoroutine(_none(listener.stopListening()))

    # -- pool ----------------------------------------------------------------------

    def added(self, conn: PacketProtocol) -> None:
        self._all.add(conn)

    def removed(self, conn: PacketProtocol) -> None:
        self._all.discard(conn)
        if self._out.get(conn.remote) is conn:
            del self._out[conn.remote]

    def reject(self, reason: str, size: int) -> None:
        if self.receiver is not None:
            self.receiver.reject(reason, size)

    def buffered_change(self, delta: int) -> None:
        self.buffered += delta

    def shed(self) -> None:
        """Over the budget for partial frames: hang up on the connections whose partial
        frame waited longest for its next byte until the rest fits (at most one pass
        over the connections)."""
        if self.buffered <= self.max_buffered:
            return
        holders = sorted((c for c in self._all if c.open and c.decoder.pending), key=lambda c: c.last_read)
        for conn in holders:
            if self.buffered <= self.max_buffered:
                break
            held = conn.decoder.pending
            log.warning("tcp: %d bytes of partial frames held (limit %d): dropping %s:%s holding %d",
                        self.buffered, self.max_buffered, *conn.remote, held)
            self.reject("buffer_full", held)
            conn.open = False  # no more frames from it, even before the abort lands
            self.buffered_change(-held)
            conn.decoder = FrameDecoder(0)
            conn.abort()

    def count(self, direction: str) -> int:
        return sum(1 for c in self._all if c.direction == direction)

    def connect(self, host: str, port: int) -> Deferred[PacketProtocol]:
        """The open connection to ``host:port``, dialling it if there is none."""
        key = (host, port)
        conn = self._out.get(key)
        if conn is not None and conn.open:
            return succeed(conn)
        if self._listener is None:
            return fail(TcpError("tcp connections are not running"))
        waiter: Deferred[PacketProtocol] = Deferred()
        waiters = self._connecting.get(key)
        if waiters is not None:
            if len(waiters) >= MAX_CONNECT_WAITERS:
                return fail(TcpError(f"too many sends waiting for {host}:{port}"))
            waiters.append(waiter)
            return waiter
        if self.count("out") >= self.max_connections:
            return fail(TcpError(f"{self.max_connections} outgoing connections are open"))
        self._connecting[key] = [waiter]
        endpoint = HostnameEndpoint(self.reactor, host, port, timeout=CONNECT_TIMEOUT)
        endpoint.connect(_Factory(self, "out")).addCallbacks(
            self._connected, self._connect_failed, callbackArgs=(key,), errbackArgs=(key,))
        return waiter

    def _connected(self, conn: PacketProtocol, key: tuple[str, int]) -> None:
        conn.remote = key
        self._out[key] = conn
        for d in self._connecting.pop(key, []):
            d.callback(conn)

    def _connect_failed(self, failure: Failure, key: tuple[str, int]) -> None:
        for d in self._connecting.pop(key, []):
            d.errback(TcpError(f"cannot connect to {key[0]}:{key[1]}: {failure.getErrorMessage()}"))

    def send(self, host: str, port: int, frame: bytes, idurl: str = "") -> Deferred[None]:
        """Write one frame (:meth:`Packet.frame`) to ``host:port``."""
        def write(conn: PacketProtocol) -> Deferred[None]:
            if idurl and not conn.idurl:
                conn.idurl = idurl
            return conn.send(frame)

        return self.connect(host, port).addCallback(write)

    def _close_idle(self) -> None:
        limit = time.monotonic() - self.idle_timeout
        for conn in list(self._all):
            if conn.last_active < limit and not conn.queue and not conn.processing:
                log.debug("closing idle tcp connection %s:%s", *conn.remote)
                conn.transport.loseConnection()  # type: ignore[union-attr]

    # -- views -----------------------------------------------------------------------

    def as_api(self) -> list[dict[str, Any]]:
        return [c.as_api() for c in sorted(self._all, key=lambda c: c.started)]

    def streams(self) -> list[dict[str, Any]]:
        return [s for c in sorted(self._all, key=lambda c: c.started) for s in c.streams()]


async def _none(result: Any) -> None:
    if isinstance(result, Deferred):
        await result


class TcpTransport:
    """The gateway's view of TCP (service_tcp_transport)."""

    proto = PROTO

    def __init__(self, connections: TcpConnections) -> None:
        self.tcp = connections

    def send(self, host: str, port: int, frame: bytes, idurl: str) -> Deferred[None]:
        return self.tcp.send(host, port, frame, idurl)

    def connections(self) -> list[dict[str, Any]]:
        return self.tcp.as_api()

    def streams(self) -> list[dict[str, Any]]:
        return self.tcp.streams()
