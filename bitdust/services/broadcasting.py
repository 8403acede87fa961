"""service_broadcasting: a signed JSON object delivered once to every online node.

How a broadcast spreads: the origin signs an envelope (:mod:`bitdust.p2p.broadcast`)
and sends it to every node it knows, up to :data:`ORIGIN_TARGETS` of them: the nodes
listed in the DHT presence index (:mod:`bitdust.p2p.presence`, which this service keeps
this node listed in) and its recent contacts. Every node that receives a broadcast for
the first time verifies the origin's signature against the origin's identity, delivers
it to the inbox (``receive_one_message()`` returns it with ``'broadcast': True``), Acks,
and, while hops are left, forwards it to up to :data:`FORWARD_FANOUT` random nodes it
knows, except the origin and the node it came from. Copies already seen (by origin and
id, a bounded memory) are Acked and not delivered again.

Limits: "every online node" means every node the origin or a forwarder within
``DEFAULT_HOPS`` hops knows. Networks up to ``ORIGIN_TARGETS`` nodes listed in the
index are reached directly; larger ones rely on forwarding (random fan-out: very likely,
not certain, to reach all). A node that joined after the index was last read by its
neighbours can miss a broadcast. There is no store-and-forward for offline nodes.
"""

from __future__ import annotations

import hashlib
import logging
import random
from collections import Counter
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

from twisted.internet.defer import Deferred, DeferredList, inlineCallbacks, maybeDeferred, succeed
from twisted.internet.threads import deferToThreadPool

from bitdust.automats.automat import Automat
from bitdust.dht.kad import DhtNode
from bitdust.p2p.broadcast import (
    DEFAULT_HOPS,
    BroadcastError,
    Envelope,
    SeenBroadcasts,
    make_envelope,
    parse_packet_payload,
)
from bitdust.p2p.presence import PresencePublisher, online_nodes
from bitdust.services.service import Service, ServiceUnavailable
from bitdust.transport.fail import REFUSED
from bitdust.transport.gateway import Gateway
from bitdust.transport.packet import Command, Packet

if TYPE_CHECKING:
    from bitdust.node import Node
    from bitdust.services.p2p_hookups import P2PHookupsService

log = logging.getLogger(__name__)

ORIGIN_TARGETS = 64
FORWARD_FANOUT = 8
SEND_TIMEOUT = 5.0
SEND_RETRIES = 1
PEERS_CACHE_SECONDS = 30.0
"""A forwarder re-reads the presence index at most this often."""
MAX_CHECKING = 1000
"""Broadcasts being verified at once (identity fetches); beyond it new ones are refused."""


class BroadcastingService(Service):
    name = "service_broadcasting"

    def __init__(self, node: Node) -> None:
        super().__init__(node)
        self.seen = SeenBroadcasts()
        self.counts: Counter[str] = Counter()
        self.presence: PresencePublisher | None = None
        self._gateway: Gateway | None = None
        self._hookups: P2PHookupsService | None = None
        self._checking: set[bytes] = set()
        self._peers: tuple[float, list[str]] | None = None
        self._handler = self._on_broadcast
        self._connector_listener = self._on_connector_state

    def start(self) -> Deferred[None]:
        return maybeDeferred(self._start)

    def _start(self) -> None:
        from bitdust.services.p2p_hookups import P2PHookupsService

        hookups = self.node.services.instance("service_p2p_hookups")
        if not isinstance(hookups, P2PHookupsService) or hookups.connector is None:
            raise ServiceUnavailable("service_p2p_hookups is not running")
        self._hookups = hookups
        self._gateway = hookups.gateway()
        self._gateway.add_handler(Command.Broadcast, self._handler)
        self.presence = PresencePublisher(self.node.clock, self._dht, self._my_idurl)
        self.presence.start()
        hookups.running_connector().add_state_listener(self._connector_listener)

    def stop(self) -> Deferred[None]:
        if self._hookups is not None and self._hookups.connector is not None:
            self._hookups.connector.remove_state_listener(self._connector_listener)
        if self._gateway is not None:
            self._gateway.remove_handler(Command.Broadcast, self._handler)
        if self.presence is not None:
            self.presence.stop()
        self.presence = None
        self._gateway = self._hookups = None
        self._peers = None
        return succeed(None)

    # -- sending -----------------------------------------------------------------------

    @inlineCallbacks
    def send(self, payload: Any) -> Any:
        """Broadcast ``payload``; fires with (envelope, acked, targets) once every first
        send got its Ack or gave up. BroadcastError for a bad payload."""
        gateway = self._running_gateway()
        me, key = self.node.my_identity, self.node.key
        if me is None or key is None:
            raise BroadcastError("this node has no identity yet: run `bitdust identity create NAME`")
        pool = self.node.reactor.getThreadPool()
        envelope = yield deferToThreadPool(self.node.reactor, pool, make_envelope, key, me.idurl, payload,
                                           self.node.reactor.seconds())
        self.seen.add(envelope.key)
        peers = yield self.known_peers(fresh=True)
        targets = _sample([p for p in peers if p not in me.sources], ORIGIN_TARGETS)
        acked = yield self._send_to(gateway, envelope, DEFAULT_HOPS, targets)
        self.counts["sent"] += 1
        return envelope, acked, targets

    @inlineCallbacks
    def known_peers(self, fresh: bool = False) -> Any:
        """Nodes listed in the presence index (re-read at most every
        :data:`PEERS_CACHE_SECONDS` unless ``fresh``) plus recent contacts."""
        now = self.node.clock.seconds()
        cached = self._peers
        if fresh or cached is None or now - cached[0] > PEERS_CACHE_SECONDS:
            dht = self._dht()
            listed: list[str] = []
            if dht is not None:
                try:
                    listed = yield online_nodes(dht)
                except Exception as exc:  # the DHT is a help, not a must: fall back to contacts
                    log.info("presence index not read: %s", exc)
            cached = (now, listed)
            self._peers = cached
        contacts = self._hookups.running_connector().recent_contacts(ORIGIN_TARGETS) if self._hookups else []
        return sorted({*cached[1], *contacts})

    def _send_to(self, gateway: Gateway, envelope: Envelope, hops: int, targets: Iterable[str]) -> Deferred[int]:
        payload = envelope.to_payload(hops)

        @inlineCallbacks
        def one(target: str) -> Any:
            packet = yield gateway.sign_packet(Command.Broadcast, payload, target)
            reply = yield gateway.outbox(packet, target, timeout=SEND_TIMEOUT, retries=SEND_RETRIES)
            return reply is not None and reply.command is Command.Ack

        def count(results: list[tuple[bool, Any]]) -> int:
            for success, outcome in results:
                if not success:
                    log.debug("broadcast %s not delivered: %s", envelope.broadcast_id, outcome.getErrorMessage())
            return sum(1 for success, outcome in results if success and outcome)

        return DeferredList([one(t) for t in targets], consumeErrors=True).addCallback(count)

    # -- receiving ---------------------------------------------------------------------

    @inlineCallbacks
    def _on_broadcast(self, packet: Packet) -> Any:
        gateway = self._gateway
        if gateway is None:
            return
        try:
            envelope, hops = parse_packet_payload(packet.payload)
        except BroadcastError as exc:
            return self._drop(gateway, packet, "bad_broadcast", str(exc))
        digest = hashlib.sha256(envelope.text.encode("ascii") + envelope.signature).digest()
        if envelope.key in self.seen or digest in self._checking:
            self.counts["duplicates"] += 1
            gateway.ack(packet)
            return
        if not envelope.is_fresh(self.node.reactor.seconds()):
            return self._drop(gateway, packet, "stale_broadcast", "envelope is too old or from the future")
        if len(self._checking) >= MAX_CHECKING:
            return self._drop(gateway, packet, "busy_broadcast", "too many broadcasts being checked")
        self._checking.add(digest)
        try:
            identity = self.node.identity_cache.get_cached(envelope.origin) \
                if envelope.origin == packet.creator_id else None
            if identity is None:
                identity = yield self.node.identity_cache.get(envelope.origin, timeout=SEND_TIMEOUT)
        except Exception as exc:
            return self._drop(gateway, packet, "bad_broadcast", f"origin {envelope.origin} unknown: {exc}")
        finally:
            self._checking.discard(digest)
        if not envelope.verify(identity.public_key):
            return self._drop(gateway, packet, "bad_broadcast", f"not signed by {envelope.origin}")
        if envelope.key in self.seen:  # another copy finished checking first
            self.counts["duplicates"] += 1
            gateway.ack(packet)
            return
        self._deliver(gateway, packet, envelope, hops)

    def _deliver(self, gateway: Gateway, packet: Packet, envelope: Envelope, hops: int) -> None:
        self.seen.add(envelope.key)
        self.counts["delivered"] += 1
        hookups = self._hookups
        if hookups is not None and hookups.inbox is not None:
            hookups.inbox.put({"from": envelope.origin, "message": envelope.payload, "broadcast": True,
                               "id": envelope.broadcast_id})
            hookups.touch(packet.creator_id)
        gateway.ack(packet)
        if hops > 0:
            self._forward(gateway, envelope, hops - 1, exclude={envelope.origin, packet.creator_id})

    def _forward(self, gateway: Gateway, envelope: Envelope, hops: int, exclude: set[str]) -> None:
        me = self.node.my_identity
        skip = exclude | set(me.sources if me is not None else ())

        def chosen(peers: list[str]) -> Deferred[int]:
            targets = _sample([p for p in peers if p not in skip], FORWARD_FANOUT)
            self.counts["forwarded"] += len(targets)
            return self._send_to(gateway, envelope, hops, targets)

        self.known_peers().addCallback(chosen).addErrback(
            lambda failure: log.info("broadcast %s not forwarded: %s", envelope.broadcast_id,
                                     failure.getErrorMessage()))

    def _drop(self, gateway: Gateway, packet: Packet, reason: str, detail: str) -> None:
        log.info("dropped broadcast %s from %s: %s", packet.packet_id, packet.creator_id, detail)
        self.counts[reason] += 1
        gateway.stats.dropped_in(reason, len(packet.payload))
        gateway.fail(packet, REFUSED, f"broadcast refused: {detail}")

    # -- internals ---------------------------------------------------------------------

    def _running_gateway(self) -> Gateway:
        if self._gateway is None or not self._gateway.running:
            raise ServiceUnavailable(f"{self.name} is not running")
        return self._gateway

    def _dht(self) -> DhtNode | None:
        from bitdust.services.dht import DhtService

        if not self.node.services.installed("service_dht") or not self.node.services.is_on("service_dht"):
            return None
        service = self.node.services.instance("service_dht")
        dht = service.dht if isinstance(service, DhtService) else None
        return dht if dht is not None and dht.running else None

    def _my_idurl(self) -> str | None:
        me = self.node.my_identity
        return me.idurl if me is not None else None

    def _on_connector_state(self, _machine: Automat, _old: str, new: str, _event: str) -> None:
        if new == "CONNECTED" and self.presence is not None:
            self.presence.publish_now()


def _sample(peers: list[str], limit: int) -> list[str]:
    return peers if len(peers) <= limit else random.sample(peers, limit)
