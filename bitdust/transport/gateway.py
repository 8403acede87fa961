"""The gateway: every packet in or out of a node goes through here.

Inbox order of checks, cheapest first, so a flood of junk costs little: size cap, parse,
freshness, recipient, duplicate, the creator's identity (may fetch over HTTP), then the
RSA signature (in a thread for big packets: hashing a few MB must not stall the reactor).
A packet is remembered as seen only after its signature verified, so a forger cannot
pre-empt a real PacketID. Anything wrong is dropped and counted under a reason; the
inbox never raises into the transport that called it.

Replies (Ack/Fail) carry the PacketID of the request and resolve the matching
:meth:`Gateway.outbox` call; other commands go to handlers registered per Command. A
command nobody handles is answered with Fail, so the sender does not wait for a timeout.
``Identity`` packets are handled here: the enclosed document must carry the same key
the cache knows for the creator; from a creator not cached yet it is verified against
itself and the cache keeps it as unconfirmed (the idurl's own server wins later). The
cache decides about revisions; an accepted document is Acked.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, NamedTuple, Protocol

from twisted.internet.defer import Deferred, fail, inlineCallbacks, maybeDeferred, succeed
from twisted.internet.threads import deferToThreadPool
from twisted.python.failure import Failure

from bitdust.identity.document import Identity, IdentityError
from bitdust.transport.dedupe import SeenKey, SeenPackets
from bitdust.transport.outbox import DEFAULT_RETRIES, DEFAULT_TIMEOUT, GatewayError, Outbox
from bitdust.transport.packet import Command, Packet, PacketError, new_packet_id
from bitdust.transport.stats import PacketLog, PacketRecord, PacketStats

if TYPE_CHECKING:
    from bitdust.config import Config
    from bitdust.node import Node

log = logging.getLogger(__name__)

PROTO_ORDER = ("tcp", "udp")  # TCP carries bulk data; QUIC on UDP is the fallback
MAX_SKEW_SECONDS = 600.0
THREAD_VERIFY_BYTES = 256 * 1024
MIN_PACKET_LIMIT = 8 * 1024**2
PACKET_HEADER_ALLOWANCE = 1024**2


def max_packet_size(config: Config) -> int:
    """Largest packet accepted on any transport.

    The biggest payload is one erasure-coded piece: a block split in N >= 2 shares, so at
    most half of ``services/backups/max-block-size`` (64 MB by default); 1 MB is left for
    the header fields, the signature and a piece header.
    """
    return max(MIN_PACKET_LIMIT, int(config.get("services/backups/max-block-size")) // 2 + PACKET_HEADER_ALLOWANCE)


class Transport(Protocol):
    """What the gateway needs from a transport (TCP, QUIC)."""

    proto: str

    def send(self, host: str, port: int, data: bytes, idurl: str) -> Deferred[None]:
        """Fire once the packet bytes are accepted for delivery; fail if they cannot be."""

    def connections(self) -> list[dict[str, Any]]:
        ...

    def streams(self) -> list[dict[str, Any]]:
        ...


Handler = Callable[[Packet], Any]


class InboxResult(NamedTuple):
    """What became of incoming bytes: the verified creator, or why they were dropped."""

    creator: str | None
    reason: str | None = None

    @property
    def stream_broken(self) -> bool:
        """Bytes that are not packets at all: a stream transport should hang up."""
        return self.reason in ("garbage", "oversize")


class Gateway:
    def __init__(self, node: Node, max_packet: int, max_skew: float = MAX_SKEW_SECONDS,
                 seen_limit: int = 10_000) -> None:
        self.node = node
        self.max_packet = max_packet
        self.max_skew = max_skew
        self.stats = PacketStats()
        self.packet_log = PacketLog()
        self._seen = SeenPackets(seen_limit)
        self._in_progress: set[SeenKey] = set()
        self._handlers: dict[Command, list[Handler]] = {}
        self._transports: dict[str, Transport] = {}
        self.outbox_queue = Outbox(node.clock, self.stats, self.packet_log, self.transports, self._find_identity)
        self.running = True

    # -- wiring ------------------------------------------------------------------

    def add_transport(self, transport: Transport) -> None:
        self._transports[transport.proto] = transport

    def remove_transport(self, proto: str) -> None:
        self._transports.pop(proto, None)

    def transports(self) -> list[Transport]:
        """Running transports, preferred first."""
        known = [self._transports[p] for p in PROTO_ORDER if p in self._transports]
        return known + [t for p, t in self._transports.items() if p not in PROTO_ORDER]

    def add_handler(self, command: Command | str, callback: Handler) -> None:
        self._handlers.setdefault(Command(command), []).append(callback)

    def remove_handler(self, command: Command | str, callback: Handler) -> None:
        handlers = self._handlers.get(Command(command), [])
        if callback in handlers:
            handlers.remove(callback)

    def stop(self) -> None:
        self.running = False
        self.outbox_queue.stop()

    # -- identity ----------------------------------------------------------------

    @property
    def my_idurl(self) -> str:
        me: Identity | None = getattr(self.node, "my_identity", None)
        if me is None:
            raise GatewayError("this node has no identity yet")
        return me.idurl

    def _find_identity(self, idurl: str) -> Deferred[Identity]:
        cache = getattr(self.node, "identity_cache", None)
        if cache is None:
            return fail(GatewayError("the identity cache is not running"))
        return maybeDeferred(cache.get, idurl)

    # -- out ---------------------------------------------------------------------

    def make_packet(self, command: Command | str, payload: bytes, remote_idurl: str,
                    packet_id: str | None = None) -> Packet:
        """A packet signed by this node (owner = creator = me), on the calling thread."""
        if self.node.key is None:
            raise GatewayError("this node has no key yet")
        me = self.my_idurl
        return Packet.create(command, me, me, packet_id or new_packet_id(), payload, remote_idurl, self.node.key)

    def sign_packet(self, command: Command | str, payload: bytes, remote_idurl: str,
                    packet_id: str | None = None) -> Deferred[Packet]:
        """:meth:`make_packet` in the thread pool. An RSA-3072 signature costs ~5 ms and
        hashing a 1 MB payload ~1.5 ms; both release the GIL, so off the reactor they
        use the second core instead of stalling every connection."""
        if self.node.key is None:
            return fail(GatewayError("this node has no key yet"))
        try:
            me = self.my_idurl
        except GatewayError as exc:
            return fail(exc)
        reactor = self.node.reactor
        return deferToThreadPool(reactor, reactor.getThreadPool(), Packet.create, command, me, me,
                                 packet_id or new_packet_id(), payload, remote_idurl, self.node.key)

    def outbox(self, packet: Packet, remote_idurl: str | None = None, wait_ack: bool = True,
               timeout: float = DEFAULT_TIMEOUT, retries: int = DEFAULT_RETRIES) -> Deferred[Packet | None]:
        """Send ``packet``; with ``wait_ack`` fire with the Ack or Fail reply packet (check
        its command), else with None once a transport took it. Fails with GatewayTimeout
        after ``retries`` repeats without reply, GatewayError when there is no route."""
        if not self.running:
            return fail(GatewayError("the gateway is not running"))
        try:
            return self.outbox_queue.send(packet, remote_idurl or packet.remote_id, wait_ack, timeout, retries)
        except Exception as exc:
            return fail(exc)

    def reply(self, request: Packet, command: Command | str, payload: bytes = b"") -> Deferred[Packet | None]:
        """Answer ``request`` (same PacketID); the bytes are kept to answer a retry of it."""
        def send(answer: Packet) -> Deferred[Packet | None]:
            self._seen.set_reply(_seen_key(request), answer.serialize())
            return self.outbox(answer, wait_ack=False)

        signing = self.sign_packet(command, payload, request.creator_id, request.packet_id)
        return signing.addCallback(send).addErrback(self._reply_failed, request)

    def ack(self, request: Packet, payload: bytes = b"") -> Deferred[Packet | None]:
        return self.reply(request, Command.Ack, payload)

    def fail(self, request: Packet, reason: str) -> Deferred[Packet | None]:
        return self.reply(request, Command.Fail, reason.encode("utf-8", "replace")[:1024])

    def _reply_failed(self, failure: Failure, request: Packet) -> None:
        log.info("reply to %s not delivered: %s", request, failure.getErrorMessage())

    # -- in ----------------------------------------------------------------------

    def inbox(self, data: bytes, proto: str, peer: tuple[str, int] | None = None) -> Deferred[InboxResult]:
        """Take raw packet bytes from a transport; never fails."""
        return self._inbox(data, proto, peer).addErrback(self._inbox_crashed, len(data))

    def reject(self, reason: str, size: int) -> None:
        """A transport threw away input before it became a packet (garbage, oversize)."""
        self.stats.dropped_in(reason, size)

    def _inbox_crashed(self, failure: Failure, size: int) -> InboxResult:
        log.error("inbox failed: %s", failure.getTraceback())
        self.stats.dropped_in("internal_error", size)
        return InboxResult(None, "internal_error")

    def _drop(self, reason: str, size: int, packet: Packet | None = None, proto: str = "") -> InboxResult:
        self.stats.dropped_in(reason, size)
        if packet is not None:
            self.packet_log.add_finished(PacketRecord("in", packet.command.value, packet.packet_id,
                                                      packet.creator_id, size, f"dropped-{reason}", proto))
        log.debug("dropped incoming %s (%s): %s", packet or f"{size} bytes", proto, reason)
        return InboxResult(None, reason)

    @inlineCallbacks
    def _inbox(self, data: bytes, proto: str, peer: tuple[str, int] | None) -> Any:
        size = len(data)
        if not self.running:
            return InboxResult(None, "stopped")
        if size > self.max_packet:
            return self._drop("oversize", size, proto=proto)
        try:
            packet = Packet.parse(data, self.max_packet)
        except PacketError:
            return self._drop("garbage", size, proto=proto)
        if not packet.is_fresh(self.node.reactor.seconds(), self.max_skew):
            return self._drop("stale", size, packet, proto)
        me = getattr(self.node, "my_identity", None)
        if me is not None and packet.remote_id not in me.sources:
            return self._drop("wrong_recipient", size, packet, proto)
        key = _seen_key(packet)
        if key in self._seen or key in self._in_progress:
            earlier_reply = self._seen.reply_for(key)
            if earlier_reply is not None:
                self._resend_reply(earlier_reply, packet.creator_id)
            return self._drop("duplicate", size, packet, proto)
        self._in_progress.add(key)
        try:
            identity = self._introduced(packet)
            if identity is None:
                try:
                    identity = yield self._find_identity(packet.creator_id)
                except Exception as exc:
                    log.debug("creator %s unknown: %s", packet.creator_id, exc)
                    return self._drop("unknown_creator", size, packet, proto)
            verified = yield self._verify(packet, identity, size)
            if not verified:
                return self._drop("bad_signature", size, packet, proto)
            self._seen.add(key)
        finally:
            self._in_progress.discard(key)
        self.stats.received(packet.creator_id, size)
        self.packet_log.add_finished(PacketRecord("in", packet.command.value, packet.packet_id,
                                                  packet.creator_id, size, "received", proto))
        self._dispatch(packet, identity, size)
        return InboxResult(packet.creator_id)

    def _introduced(self, packet: Packet) -> Identity | None:
        """A first-contact Identity packet from a creator we have never cached: verify
        it against the document it carries (the cache keeps that as unconfirmed until
        the idurl's server is asked; the server's document wins on conflict)."""
        cache = getattr(self.node, "identity_cache", None)
        if packet.command is not Command.Identity or cache is None or cache.get_cached(packet.creator_id):
            return None
        try:
            enclosed = Identity.from_xml(packet.payload)
        except IdentityError:
            return None
        if packet.creator_id not in enclosed.sources or not enclosed.verify():
            return None
        return enclosed

    def _verify(self, packet: Packet, identity: Identity, size: int) -> Deferred[bool]:
        if packet.key_id != identity.key_id:
            return succeed(False)
        if size < THREAD_VERIFY_BYTES:
            return succeed(packet.verify(identity.public_key))
        reactor = self.node.reactor
        return deferToThreadPool(reactor, reactor.getThreadPool(), packet.verify, identity.public_key)

    def _resend_reply(self, data: bytes, remote: str) -> None:
        try:
            reply = Packet.parse(data, self.max_packet)
        except PacketError:
            return
        self.outbox(reply, remote, wait_ack=False).addErrback(self._reply_failed, reply)

    def _dispatch(self, packet: Packet, identity: Identity, size: int) -> None:
        if packet.command in (Command.Ack, Command.Fail):
            self.outbox_queue.resolve(packet)
        elif packet.command is Command.Identity:
            self._on_identity(packet, identity, size)
            return
        handlers = list(self._handlers.get(packet.command, ()))
        if not handlers:
            if packet.command not in (Command.Ack, Command.Fail):
                self.fail(packet, f"{packet.command.value} is not served by this node")
            return
        for handler in handlers:
            maybeDeferred(handler, packet).addErrback(self._handler_failed, packet, size)

    def _handler_failed(self, failure: Failure, packet: Packet, size: int) -> None:
        log.error("handler of %s failed: %s", packet, failure.getTraceback())
        self.stats.dropped_in("handler_error", size)

    def _on_identity(self, packet: Packet, known: Identity, size: int) -> None:
        """The enclosed document may update contacts/revision, never the key."""
        try:
            enclosed = Identity.from_xml(packet.payload)
        except IdentityError as exc:
            self._drop("bad_identity", size, packet)
            self.fail(packet, f"bad identity document: {exc}")
            return
        if enclosed.public_key != known.public_key or packet.creator_id not in enclosed.sources \
                or not enclosed.verify():
            self._drop("bad_identity", size, packet)
            self.fail(packet, "identity document does not match the creator")
            return
        cache = getattr(self.node, "identity_cache", None)
        if cache is not None and not cache.add(enclosed):
            self._drop("bad_identity", size, packet)
            self.fail(packet, "identity document refused (older revision or another key)")
            return
        for handler in list(self._handlers.get(Command.Identity, ())):
            maybeDeferred(handler, packet).addErrback(self._handler_failed, packet, size)
        self.ack(packet)

    # -- API views ----------------------------------------------------------------

    def connections(self, wanted_protos: list[str] | None = None) -> list[dict[str, Any]]:
        return [c for t in self.transports() if _wanted(t.proto, wanted_protos) for c in t.connections()]

    def streams(self, wanted_protos: list[str] | None = None) -> list[dict[str, Any]]:
        return [s for t in self.transports() if _wanted(t.proto, wanted_protos) for s in t.streams()]


def _wanted(proto: str, wanted: list[str] | None) -> bool:
    return not wanted or proto in wanted


def _seen_key(packet: Packet) -> SeenKey:
    # A reply reuses the PacketID of its request, so the command is part of the key.
    return (packet.creator_id, packet.command.value, packet.packet_id)

