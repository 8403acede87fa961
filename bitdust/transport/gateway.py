"""The gateway: every packet in or out of a node goes through here.

Inbox order of checks, cheapest first, so a flood of junk costs little: size cap, parse,
freshness, recipient, duplicate, the creator's identity (may fetch over HTTP), then the
signature: Ed25519 by the packet key the creator's identity lists. Parsing reads only the
header (TCP hands a big frame over as the buffer it was read into, and the payload stays
a view of it), so it is done on the reactor; a big packet's signature is checked in the
node's CPU pool, since hashing a few MB (~0.3 ms per MB) and the Ed25519 check (~0.06 ms;
both release the GIL) must not stall the reactor; a small one's inline, cheaper than the
hop. A KeyID
that is not the packet key of the cached identity makes the gateway re-fetch that identity
(at most once a minute per creator): the peer may have a new packet key that our copy
predates.
A packet is remembered as seen only after its signature verified, so a forger cannot
pre-empt a real PacketID. Anything wrong is dropped and counted under a reason; the
inbox never raises into the transport that called it.

Replies (Ack/Fail) carry the PacketID of the request and resolve the matching
:meth:`Gateway.outbox` call; other commands go to handlers registered per Command. A
command nobody handles is answered with Fail (code ``unavailable``, see
:mod:`bitdust.transport.fail`), so the sender does not wait for a timeout and can tell
"not served here" (that service is off) from a refusal by the service itself. While the
node is still starting such a packet is dropped instead (counted as ``starting``): its
service may be a moment away, and the sender's own retry will find it, where a Fail
would end the sender's request.
``Identity`` packets are handled here: the enclosed document must carry the same key
the cache knows for the creator; from a creator not cached yet it is verified against
itself and the cache keeps it as unconfirmed (the idurl's own server wins later). The
same goes for a newer revision of a cached identity that lists a new packet key (the
RSA signature of the document vouches for it). The cache decides about revisions; an
accepted document is Acked.
"""

from __future__ import annotations

import logging
from collections import OrderedDict
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, NamedTuple, Protocol

from twisted.internet.defer import Deferred, fail, inlineCallbacks, maybeDeferred, succeed
from twisted.python.failure import Failure

from bitdust.identity.document import Identity, IdentityError
from bitdust.transport.dedupe import SeenKey, SeenPackets
from bitdust.transport.fail import BAD_IDENTITY, UNAVAILABLE, FailReason
from bitdust.transport.outbox import DEFAULT_RETRIES, DEFAULT_TIMEOUT, GatewayError, Outbox
from bitdust.transport.packet import (
    Command,
    Frame,
    Packet,
    PacketError,
    Payload,
    new_packet_id,
    payload_size,
)
from bitdust.transport.stats import PacketLog, PacketRecord, PacketStats

if TYPE_CHECKING:
    from bitdust.config import Config
    from bitdust.node import Node

log = logging.getLogger(__name__)

PROTO_ORDER = ("tcp", "udp")  # TCP carries bulk data; QUIC on UDP is the fallback
MAX_SKEW_SECONDS = 600.0
THREAD_VERIFY_BYTES = 256 * 1024
THREAD_SIGN_BYTES = 256 * 1024
"""Below these sizes a packet is signed, or verified, inline: BLAKE3 of a small packet
costs well under a hop to the CPU pool and back."""
REFETCH_INTERVAL = 60.0
MAX_REFETCH_MEMORY = 1000
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

    def send(self, host: str, port: int, frame: Frame, idurl: str) -> Deferred[None]:
        """Fire once the packet (its :meth:`Packet.frame`) is accepted for delivery; fail
        if it cannot be."""

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
        self._refetched: OrderedDict[str, float] = OrderedDict()
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

    def _find_identity(self, idurl: str) -> Identity | Deferred[Identity]:
        """The cached identity itself (the usual case, so the packet path makes no
        Deferred for it), else a Deferred of the fetch."""
        cache = getattr(self.node, "identity_cache", None)
        if cache is None:
            return fail(GatewayError("the identity cache is not running"))
        cached: Identity | None = cache.get_cached(idurl)
        if cached is not None:
            return cached
        return maybeDeferred(cache.get, idurl)

    # -- out ---------------------------------------------------------------------

    def make_packet(self, command: Command | str, payload: Payload, remote_idurl: str,
                    packet_id: str | None = None) -> Packet:
        """A packet signed by this node's packet key (owner = creator = me), on the
        calling thread."""
        key = self.node.packet_key
        if key is None:
            raise GatewayError("this node has no packet key yet")
        me = self.my_idurl
        return Packet.create(command, me, me, packet_id or new_packet_id(), payload, remote_idurl, key)

    def sign_packet(self, command: Command | str, payload: Payload, remote_idurl: str,
                    packet_id: str | None = None) -> Deferred[Packet]:
        """:meth:`make_packet` without stalling the reactor: big payloads are signed in
        the thread pool (BLAKE3 of 1 MB is ~0.3 ms and releases the GIL, so it uses
        the second core); small ones inline, where the ~60 µs signature is cheaper than
        the hop to a thread and back. A payload given in parts is joined where it is
        signed."""
        key = self.node.packet_key
        if key is None:
            return fail(GatewayError("this node has no packet key yet"))
        try:
            me = self.my_idurl
        except GatewayError as exc:
            return fail(exc)
        args = (command, me, me, packet_id or new_packet_id(), payload, remote_idurl, key)
        if payload_size(payload) < THREAD_SIGN_BYTES or not self.node.cpu_pool.worth_a_thread():
            try:
                return succeed(Packet.create(*args))
            except Exception as exc:
                return fail(exc)
        return self.node.cpu_pool.run(Packet.create, *args)

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
            self._seen.set_reply(_seen_key(request), answer)
            return self.outbox(answer, wait_ack=False)

        signing = self.sign_packet(command, payload, request.creator_id, request.packet_id)
        return signing.addCallback(send).addErrback(self._reply_failed, request)

    def ack(self, request: Packet, payload: bytes = b"") -> Deferred[Packet | None]:
        return self.reply(request, Command.Ack, payload)

    def fail(self, request: Packet, code: str, reason: str) -> Deferred[Packet | None]:
        """Answer ``request`` with Fail: ``code`` for the sender's logic, ``reason`` for
        people (:mod:`bitdust.transport.fail`)."""
        return self.reply(request, Command.Fail, FailReason(code, reason).encode())

    def _reply_failed(self, failure: Failure, request: Packet) -> None:
        log.info("reply to %s not delivered: %s", request, failure.getErrorMessage())

    # -- in ----------------------------------------------------------------------

    def inbox(self, data: bytes | bytearray, proto: str, peer: tuple[str, int] | None = None) -> Deferred[InboxResult]:
        """Take raw packet bytes from a transport; never fails. A ``bytearray`` is taken
        over (:meth:`Packet.parse`): the transport must not reuse it."""
        size = len(data)
        try:
            result = self._inbox(data, size, proto)
        except Exception:
            return succeed(self._inbox_crashed(Failure(), size))
        if isinstance(result, Deferred):
            return result.addErrback(self._inbox_crashed, size)
        return succeed(result)

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

    # The inbox steps are plain functions that return a result, or a Deferred only where
    # they must wait (a big packet's check in the pool, an identity not cached yet): a small
    # packet from a known peer goes through without one. ``inlineCallbacks`` here cost
    # about 25 Python calls per packet, on every packet and every Ack.

    def _inbox(self, data: bytes | bytearray, size: int, proto: str) -> InboxResult | Deferred[InboxResult]:
        if not self.running:
            return InboxResult(None, "stopped")
        if size > self.max_packet:
            return self._drop("oversize", size, proto=proto)
        try:
            packet = Packet.parse(data, self.max_packet)
        except PacketError:
            return self._drop("garbage", size, proto=proto)
        return self._parsed(packet, size, proto)

    def _parsed(self, packet: Packet, size: int, proto: str) -> InboxResult | Deferred[InboxResult]:
        """Checks that need no identity, then the creator's identity (cached, or fetched)."""
        if not self.running:
            return InboxResult(None, "stopped")
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
            introduced = self._introduced(packet)
            identity = introduced if introduced is not None else self._find_identity(packet.creator_id)
        except BaseException:
            self._in_progress.discard(key)
            raise
        if isinstance(identity, Deferred):
            return identity.addCallbacks(self._identified, self._unidentified, callbackArgs=(packet, key, size, proto),
                                         errbackArgs=(packet, key, size, proto))
        return self._identified(identity, packet, key, size, proto)

    def _unidentified(self, failure: Failure, packet: Packet, key: SeenKey, size: int, proto: str) -> InboxResult:
        self._in_progress.discard(key)
        log.debug("creator %s unknown: %s", packet.creator_id, failure.getErrorMessage())
        return self._drop("unknown_creator", size, packet, proto)

    def _identified(self, identity: Identity, packet: Packet, key: SeenKey, size: int,
                    proto: str) -> InboxResult | Deferred[InboxResult]:
        if packet.key_id == identity.packet_key_id:
            return self._accept(identity, packet, key, size, proto)
        try:
            refetching = self._refetch(packet.creator_id, identity)
        except BaseException:
            self._in_progress.discard(key)
            raise
        return refetching.addCallbacks(self._accept, self._abandoned, callbackArgs=(packet, key, size, proto),
                                       errbackArgs=(key,))

    def _abandoned(self, failure: Failure, key: SeenKey) -> Failure:
        self._in_progress.discard(key)
        return failure

    def _accept(self, identity: Identity, packet: Packet, key: SeenKey, size: int,
                proto: str) -> InboxResult | Deferred[InboxResult]:
        """The signature check (in the pool for a big packet), then :meth:`_verified`."""
        if len(packet.payload) < THREAD_VERIFY_BYTES or not self.node.cpu_pool.worth_a_thread():
            try:
                verified = self._verify(packet, identity)
            except BaseException:
                self._in_progress.discard(key)
                raise
            return self._verified(verified, identity, packet, key, size, proto)
        checking = self.node.cpu_pool.run(self._verify, packet, identity)
        checking.addErrback(self._abandoned, key)
        return checking.addCallback(self._verified, identity, packet, key, size, proto)

    def _verified(self, verified: bool, identity: Identity, packet: Packet, key: SeenKey, size: int,
                  proto: str) -> InboxResult:
        """The packet counts as seen and goes to its handlers, if its signature held."""
        self._in_progress.discard(key)
        if not self.running:
            return InboxResult(None, "stopped")
        if not verified:
            return self._drop("bad_signature", size, packet, proto)
        self._seen.add(key)
        self.stats.received(packet.creator_id, size)
        self.packet_log.add_finished(PacketRecord("in", packet.command.value, packet.packet_id,
                                                  packet.creator_id, size, "received", proto))
        self._dispatch(packet, identity, size)
        return InboxResult(packet.creator_id)

    def _introduced(self, packet: Packet) -> Identity | None:
        """An Identity packet that vouches for its own signing key: verify it against
        the document it carries. Two cases: a first contact from a creator we have never
        cached (the cache keeps the document as unconfirmed until the idurl's server is
        asked; the server's document wins on conflict), and a cached creator whose newer
        revision, signed by the same RSA key, lists a new packet key."""
        cache = getattr(self.node, "identity_cache", None)
        if packet.command is not Command.Identity or cache is None:
            return None
        cached = cache.get_cached(packet.creator_id)
        if cached is not None and cached.packet_key_id == packet.key_id:
            return None  # the usual case: the cached identity checks the packet
        try:
            enclosed = Identity.from_xml(packet.payload)
        except IdentityError:
            return None
        if packet.creator_id not in enclosed.sources or enclosed.packet_key_id != packet.key_id:
            return None
        if cached is not None and (enclosed.public_key != cached.public_key or enclosed.revision <= cached.revision):
            return None
        return enclosed if enclosed.verify() else None

    @inlineCallbacks
    def _refetch(self, idurl: str, cached: Identity) -> Any:
        """A newer identity of ``idurl`` from its server, or ``cached`` when none is to be
        had. Rate-limited per creator, so forged KeyIDs cannot turn us into an HTTP
        flooder; the set of remembered creators is bounded too."""
        cache = getattr(self.node, "identity_cache", None)
        now = self.node.reactor.seconds()
        if cache is None or now < self._refetched.get(idurl, float("-inf")):
            return cached
        self._refetched[idurl] = now + REFETCH_INTERVAL
        self._refetched.move_to_end(idurl)
        while len(self._refetched) > MAX_REFETCH_MEMORY:
            self._refetched.popitem(last=False)
        try:
            fresh = yield cache.fetch(idurl)
        except Exception as exc:
            log.debug("re-fetch of %s failed: %s", idurl, exc)
            return cached
        return fresh

    @staticmethod
    def _verify(packet: Packet, identity: Identity) -> bool:
        """BLAKE3 of the packet and one Ed25519 check: on the reactor for a small packet,
        in a pool thread for a big one (both release the GIL)."""
        return packet.key_id == identity.packet_key_id and packet.verify(identity)

    def _resend_reply(self, reply: Packet, remote: str) -> None:
        self.outbox(reply, remote, wait_ack=False).addErrback(self._reply_failed, reply)

    def _dispatch(self, packet: Packet, identity: Identity, size: int) -> None:
        if packet.command in (Command.Ack, Command.Fail):
            self.outbox_queue.resolve(packet)
        elif packet.command is Command.Identity:
            self._on_identity(packet, identity, size)
            return
        handlers = list(self._handlers.get(packet.command, ()))
        if not handlers:
            if packet.command in (Command.Ack, Command.Fail):
                return
            if self.node.initializer.starting:
                log.debug("%s arrived while starting, before a service handles it: dropped", packet)
                self.stats.dropped_in("starting", size)
                return
            self.fail(packet, UNAVAILABLE, f"{packet.command.value} is not served by this node")
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
            self.fail(packet, BAD_IDENTITY, f"bad identity document: {exc}")
            return
        if enclosed.public_key != known.public_key or packet.creator_id not in enclosed.sources \
                or not enclosed.verify():
            self._drop("bad_identity", size, packet)
            self.fail(packet, BAD_IDENTITY, "identity document does not match the creator")
            return
        cache = getattr(self.node, "identity_cache", None)
        if cache is not None and not cache.add(enclosed):
            self._drop("bad_identity", size, packet)
            self.fail(packet, BAD_IDENTITY, "identity document refused (older revision or another key)")
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

