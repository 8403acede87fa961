"""TCP connections carrying length-prefixed packet frames.

* One outgoing connection per remote ``host:port``, opened on the first send and reused;
  a closed one is re-opened by the next send. Incoming connections are served as long
  as the peer keeps them (or until idle for ``idle_timeout``).
* Built on the event loop's own streams (asyncio protocols; the node's reactor is
  Twisted's asyncio reactor on uvloop), not on Twisted's TCP: uvloop reads and writes in
  C, with ``recv_into`` and vectored writes, where Twisted runs Python for every read and
  write and joins what it sends. A raw Twisted socket moving 1 MB blocks costs the
  process about twice the CPU of a uvloop one on this machine, and a big frame is
  read straight into a buffer of its size (:class:`FrameDecoder`) and written from its
  parts (:class:`Frame`), so neither end copies it. The rest of the node sees Deferreds.
* Write side backpressure: the transport tells the protocol when its buffer passes
  ``WRITE_BUFFER_HIGH``; until it drains, frames wait in a per-connection queue bounded
  in bytes; a send that would exceed it fails at once (``SendQueueFull``) and the
  gateway falls back or retries later. So a slow peer costs at most the transport's
  buffer plus the queue limit.
* Read side backpressure: at most ``MAX_INFLIGHT`` frames of one connection are being
  verified at a time; beyond that the socket stops being read, so TCP flow control
  slows the sender down instead of our memory growing.
* A frame longer than the limit, or a frame that is not a packet, closes the connection:
  the stream can no longer be trusted to be in sync.
* All connections together hold at most ``max_buffered`` bytes for frames not complete
  yet (a big frame's whole buffer counts from its length header on: it is allocated
  then). Each alone is bounded by the frame limit, but a peer that opens many
  connections and sends each a large frame's header, then nothing, would otherwise pin
  connections x frame limit (256 x 33 MB by default). Past the budget the connection
  whose partial frame has waited longest for its next byte is hung up on (counted as
  ``buffer_full``): an honest transfer keeps arriving, a stalled one is the suspect.
"""

from __future__ import annotations

import asyncio
import collections
import ipaddress
import logging
import socket
import time
from collections.abc import Coroutine
from typing import TYPE_CHECKING, Any, TypeVar, cast

from twisted.internet.defer import Deferred, fail, succeed
from twisted.internet.task import LoopingCall
from twisted.python.failure import Failure

from bitdust.transport.packet import FRAME_HEADER_SIZE, Frame, FrameDecoder, PacketError

if TYPE_CHECKING:
    from bitdust.transport.gateway import Gateway, InboxResult

log = logging.getLogger(__name__)

T = TypeVar("T")

PROTO = "tcp"
CONNECT_TIMEOUT = 10.0
IDLE_TIMEOUT = 300.0
IDLE_CHECK_INTERVAL = 30.0
MAX_INFLIGHT = 4
WRITE_BUFFER_HIGH = 1024 * 1024
WRITE_BUFFER_LOW = 256 * 1024
QUEUE_LIMIT = 16 * 1024**2
MAX_CONNECTIONS = 256
MAX_CONNECT_WAITERS = 1000
LISTEN_BACKLOG = 128
MIN_BUFFERED = 256 * 1024**2
"""Floor of the all-connections budget for partial frames (at least two whole frames)."""


class TcpError(ConnectionError):
    """A frame could not be handed to a TCP connection."""


class SendQueueFull(TcpError):
    """The peer reads slower than we write; refused rather than buffered without end."""


def event_loop(reactor: Any) -> asyncio.AbstractEventLoop:
    """The asyncio loop under Twisted's asyncio reactor (the daemon's, and the tests')."""
    loop = getattr(reactor, "_asyncioEventloop", None)
    if loop is None:
        raise RuntimeError("the transports need Twisted's asyncio reactor (asyncio streams, aioquic)")
    return loop


def run_on_loop(loop: asyncio.AbstractEventLoop, coro: Coroutine[Any, Any, T]) -> Deferred[T]:
    """A coroutine of the asyncio world as a Deferred of Twisted's."""
    return Deferred.fromFuture(asyncio.ensure_future(coro, loop=loop))


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


class PacketProtocol(asyncio.BufferedProtocol):
    """One TCP connection: frames in, frames out, both directions bounded."""

    def __init__(self, manager: TcpConnections, direction: str) -> None:
        self.manager = manager
        self.direction = direction  # "in": accepted, "out": we dialled
        self.transport: asyncio.Transport | None = None
        self.remote: tuple[str, int] = ("", 0)
        self.idurl = ""
        self.decoder = FrameDecoder(manager.max_frame)
        self.queue: collections.deque[tuple[Frame, Deferred[None]]] = collections.deque()
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
        self._in_pool = False  # accepted into the pool: connection_lost has work to do
        self._flushing = False

    # -- connection ------------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports are not asyncio.Transport subclasses, but have its methods
        self.transport = cast(asyncio.Transport, transport)
        if self.direction == "in":
            peer = transport.get_extra_info("peername") or ("", 0)
            self.remote = (str(peer[0]), int(peer[1]))
            if self.manager.count("in") >= self.manager.max_connections:
                log.warning("refusing tcp connection from %s:%s: %d connections open",
                            *self.remote, self.manager.max_connections)
                self.transport.abort()
                return
        # Replies are small and awaited: Nagle plus delayed ACKs would add ~40 ms to each.
        sock = transport.get_extra_info("socket")
        if sock is not None:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.transport.set_write_buffer_limits(high=WRITE_BUFFER_HIGH, low=WRITE_BUFFER_LOW)
        self.open = self._in_pool = True
        self.manager.added(self)

    def connection_lost(self, exc: Exception | None) -> None:
        if not self._in_pool:
            return  # refused in connection_made
        self.open = self._in_pool = False
        self.manager.buffered_change(-self.decoder.discard())
        queued, self.queue = self.queue, collections.deque()
        self.queued_bytes = 0
        for _frame, d in queued:
            d.errback(TcpError(f"connection to {self.remote[0]}:{self.remote[1]} closed"))
        self.manager.removed(self)

    def eof_received(self) -> bool:
        return False  # the peer is done: close our side too

    def abort(self) -> None:
        """Drop the connection now; nothing more is read from it or written to it."""
        self.open = False
        if self.transport is not None:
            self.transport.abort()

    def close(self) -> None:
        """Close once what is written has gone out; nothing more is read or written."""
        self.open = False
        if self.transport is not None:
            self.transport.close()

    # -- read --------------------------------------------------------------------------

    def get_buffer(self, sizehint: int) -> memoryview:
        return self.decoder.buffer()

    def buffer_updated(self, nbytes: int) -> None:
        if not self.open:
            return  # given up on (aborted, shed, closing): what still arrives is ignored
        self.bytes_in += nbytes
        self.last_active = self.last_read = time.monotonic()
        held = self.decoder.held
        try:
            frames = self.decoder.filled(nbytes)
        except PacketError as exc:
            self.manager.buffered_change(-held)  # the failed decoder dropped it all
            self.decoder.discard()  # and, reset, still gives buffers to late reads
            log.info("closing tcp connection from %s:%s: %s", *self.remote, exc)
            self.manager.reject("oversize", nbytes)
            self.abort()
            return
        self.manager.buffered_change(self.decoder.held - held)
        if self.decoder.held > held:
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
            assert self.transport is not None
            self.transport.pause_reading()

    def _processed(self, result: InboxResult | Failure) -> None:
        self.processing -= 1
        if isinstance(result, Failure) or result.stream_broken:
            self.abort()
        elif result.creator and not self.idurl:
            self.idurl = result.creator
        if self.read_paused and self.processing < MAX_INFLIGHT and self.open:
            self.read_paused = False
            assert self.transport is not None
            self.transport.resume_reading()

    # -- write -------------------------------------------------------------------------

    def send(self, frame: Frame) -> Deferred[None]:
        """Fire when the frame (:meth:`Packet.frame`) is handed to the transport; fail at
        once when it is over the limit or the queue is full."""
        if not self.open:
            return fail(TcpError(f"connection to {self.remote[0]}:{self.remote[1]} is closed"))
        if frame.body_size > self.manager.max_frame:
            return fail(TcpError(f"packet of {frame.body_size} bytes exceeds the frame limit {self.manager.max_frame}"))
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
                frame, d = self.queue.popleft()
                self.queued_bytes -= len(frame)
                assert self.transport is not None
                self.transport.writelines(frame.parts)
                self.bytes_out += len(frame)
                self.packets_out += 1
                self.last_active = time.monotonic()
                d.callback(None)
        finally:
            self._flushing = False

    # The transport tells us when its buffer passes the high mark, and when it drained.
    def pause_writing(self) -> None:
        self.write_paused = True

    def resume_writing(self) -> None:
        self.write_paused = False
        self._flush()

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
        found = [{**base, "direction": "out", "size": frame.body_size, "done": 0} for frame, _d in self.queue]
        size = self.decoder.next_frame_size
        if size is not None:
            found.append({**base, "direction": "in", "size": size,
                          "done": self.decoder.pending - FRAME_HEADER_SIZE})
        return found


class TcpConnections:
    """The TCP listener and the pool of connections of one node."""

    def __init__(self, reactor: Any, host: str, port: int, max_frame: int,
                 queue_limit: int = QUEUE_LIMIT, idle_timeout: float = IDLE_TIMEOUT,
                 max_connections: int = MAX_CONNECTIONS) -> None:
        self.reactor = reactor
        self.loop = event_loop(reactor)
        self.host = check_listen_host(host)
        self.wanted_port = port
        self.max_frame = max_frame
        self.queue_limit = queue_limit
        self.idle_timeout = idle_timeout
        self.max_connections = max_connections
        self.max_buffered = max(MIN_BUFFERED, 2 * max_frame)
        self.buffered = 0
        """Bytes held for partial frames by all connections together."""
        self.receiver: Gateway | None = None
        self._socket: socket.socket | None = None
        self._server: asyncio.AbstractServer | None = None
        self._all: set[PacketProtocol] = set()
        self._out: dict[tuple[str, int], PacketProtocol] = {}
        self._connecting: dict[tuple[str, int], list[Deferred[PacketProtocol]]] = {}
        self._idle_check = LoopingCall(self._close_idle)
        self._idle_check.clock = reactor

    @property
    def port(self) -> int:
        """The port really listened on (differs from the config when that was 0)."""
        if self._socket is None:
            raise TcpError("not listening")
        return int(self._socket.getsockname()[1])

    def listen(self) -> Deferred[None]:
        """Bind now (a taken port fails here, and :attr:`port` is known at once); fire
        once connections are being accepted."""
        family, kind, proto, _name, address = socket.getaddrinfo(self.host, self.wanted_port,
                                                                 type=socket.SOCK_STREAM)[0]
        sock = socket.socket(family, kind, proto)
        try:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            sock.bind(address)
            sock.listen(LISTEN_BACKLOG)
            sock.setblocking(False)
        except OSError:
            sock.close()
            raise
        self._socket = sock
        self._idle_check.start(IDLE_CHECK_INTERVAL, now=False)
        log.info("tcp listening on %s:%d", self.host, self.port)
        return run_on_loop(self.loop, self._serve(sock))

    async def _serve(self, sock: socket.socket) -> None:
        if self._socket is not sock:
            return  # closed before the loop got here
        server = await self.loop.create_server(lambda: PacketProtocol(self, "in"), sock=sock)
        if self._socket is not sock:  # closed while the server was being made
            server.close()
            return
        self._server = server

    def close(self) -> Deferred[None]:
        if self._idle_check.running:
            self._idle_check.stop()
        for waiters in self._connecting.values():
            for d in waiters:
                d.errback(TcpError("tcp connections are shutting down"))
        self._connecting.clear()
        for conn in list(self._all):
            conn.abort()
        server, self._server = self._server, None
        sock, self._socket = self._socket, None
        if server is not None:
            server.close()  # closes the listening socket too
        elif sock is not None:
            sock.close()
        return run_on_loop(self.loop, asyncio.sleep(0))  # one turn: the aborts land

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
        holders = sorted((c for c in self._all if c.open and c.decoder.held), key=lambda c: c.last_read)
        for conn in holders:
            if self.buffered <= self.max_buffered:
                break
            held = conn.decoder.discard()
            log.warning("tcp: %d bytes held for partial frames (limit %d): dropping %s:%s holding %d",
                        self.buffered, self.max_buffered, *conn.remote, held)
            self.reject("buffer_full", held)
            self.buffered_change(-held)
            conn.abort()

    def count(self, direction: str) -> int:
        return sum(1 for c in self._all if c.direction == direction)

    def connect(self, host: str, port: int) -> Deferred[PacketProtocol]:
        """The open connection to ``host:port``, dialling it if there is none."""
        key = (host, port)
        conn = self._out.get(key)
        if conn is not None and conn.open:
            return succeed(conn)
        if self._socket is None:
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
        run_on_loop(self.loop, self._dial(host, port)).addCallbacks(
            self._connected, self._connect_failed, callbackArgs=(key,), errbackArgs=(key,))
        return waiter

    async def _dial(self, host: str, port: int) -> PacketProtocol:
        _transport, conn = await asyncio.wait_for(
            self.loop.create_connection(lambda: PacketProtocol(self, "out"), host, port), CONNECT_TIMEOUT)
        return conn

    def _connected(self, conn: PacketProtocol, key: tuple[str, int]) -> None:
        conn.remote = key
        waiters = self._connecting.pop(key, [])
        if not conn.open:  # closed again at once, or the pool shut down meanwhile
            for d in waiters:
                d.errback(TcpError(f"connection to {key[0]}:{key[1]} closed"))
            return
        self._out[key] = conn
        for d in waiters:
            d.callback(conn)

    def _connect_failed(self, failure: Failure, key: tuple[str, int]) -> None:
        reason = failure.getErrorMessage() or repr(failure.value)
        for d in self._connecting.pop(key, []):
            d.errback(TcpError(f"cannot connect to {key[0]}:{key[1]}: {reason}"))

    def send(self, host: str, port: int, frame: Frame, idurl: str = "") -> Deferred[None]:
        """Write one frame (:meth:`Packet.frame`) to ``host:port``."""
        def write(conn: PacketProtocol) -> Deferred[None]:
            if idurl and not conn.idurl:
                conn.idurl = idurl
            return conn.send(frame)

        conn = self._out.get((host, port))
        if conn is not None and conn.open:  # the usual case, without a Deferred to chain
            return write(conn)
        return self.connect(host, port).addCallback(write)

    def _close_idle(self) -> None:
        limit = time.monotonic() - self.idle_timeout
        for conn in list(self._all):
            if conn.last_active < limit and not conn.queue and not conn.processing:
                log.debug("closing idle tcp connection %s:%s", *conn.remote)
                conn.close()

    # -- views -----------------------------------------------------------------------

    def as_api(self) -> list[dict[str, Any]]:
        return [c.as_api() for c in sorted(self._all, key=lambda c: c.started)]

    def streams(self) -> list[dict[str, Any]]:
        return [s for c in sorted(self._all, key=lambda c: c.started) for s in c.streams()]


class TcpTransport:
    """The gateway's view of TCP (service_tcp_transport)."""

    proto = PROTO

    def __init__(self, connections: TcpConnections) -> None:
        self.tcp = connections

    def send(self, host: str, port: int, frame: Frame, idurl: str) -> Deferred[None]:
        return self.tcp.send(host, port, frame, idurl)

    def connections(self) -> list[dict[str, Any]]:
        return self.tcp.as_api()

    def streams(self) -> list[dict[str, Any]]:
        return self.tcp.streams()
