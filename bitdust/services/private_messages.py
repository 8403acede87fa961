"""service_private_messages: encrypted, signed messages between two nodes.

Sending: resolve the recipient (an idurl, or a nickname looked up in the DHT), seal the
body to its public key (:mod:`bitdust.p2p.messages`), sign a ``Message`` packet, and
wait for the recipient's Ack. Receiving: open the message off the reactor thread, check
that it names its signer as sender, Ack it and queue it in the p2p_hookups inbox for
``receive_one_message()``. A message that fails is answered with Fail (so the sender
hears at once) and counted, both here (``dropped``) and in the gateway's
``packets_stats`` under ``dropped``.
"""

from __future__ import annotations

import logging
from collections import Counter
from typing import TYPE_CHECKING, Any

from twisted.internet.defer import Deferred, inlineCallbacks, maybeDeferred, succeed
from twisted.internet.threads import deferToThreadPool

from bitdust.dht.nicknames import lookup_nickname
from bitdust.identity.idurl import is_idurl
from bitdust.p2p.messages import MessageError, open_message, seal_message
from bitdust.services.service import Service, ServiceUnavailable
from bitdust.transport.fail import REFUSED, fail_reason
from bitdust.transport.gateway import Gateway
from bitdust.transport.outbox import GatewayError, GatewayTimeout
from bitdust.transport.packet import Command, Packet, new_packet_id

if TYPE_CHECKING:
    from bitdust.node import Node
    from bitdust.services.p2p_hookups import P2PHookupsService

log = logging.getLogger(__name__)

SEND_TIMEOUT = 10.0
"""Seconds per attempt; with the retries a message to an offline node fails in ~30 s."""
SEND_RETRIES = 2
IDENTITY_TIMEOUT = 10.0
DROP_REASON = "bad_message"


class SendError(RuntimeError):
    """A message could not be delivered; the message says why (for the API answer)."""


class PrivateMessagesService(Service):
    name = "service_private_messages"

    def __init__(self, node: Node) -> None:
        super().__init__(node)
        self.dropped: Counter[str] = Counter()
        self.received = 0
        self._gateway: Gateway | None = None
        self._handler = self._on_message

    def start(self) -> Deferred[None]:
        return maybeDeferred(self._start)

    def _start(self) -> None:
        self._gateway = self._hookups().gateway()
        self._gateway.add_handler(Command.Message, self._handler)

    def stop(self) -> Deferred[None]:
        if self._gateway is not None:
            self._gateway.remove_handler(Command.Message, self._handler)
        self._gateway = None
        return succeed(None)

    # -- sending -----------------------------------------------------------------------

    @inlineCallbacks
    def resolve(self, recipient: Any) -> Any:
        """An idurl as it is, a nickname through the DHT; SendError if neither."""
        if not isinstance(recipient, str) or not recipient:
            raise SendError(f"recipient must be an idurl or a nickname, not {recipient!r}")
        if is_idurl(recipient):
            return recipient
        from bitdust.api.dht_calls import dht_service
        from bitdust.dht.kad import DhtError
        from bitdust.dht.records import RecordRejected

        try:
            dht = dht_service(self.node, "send_message").running_dht()
            info = yield lookup_nickname(dht, recipient)
        except (DhtError, RecordRejected, ServiceUnavailable) as exc:
            raise SendError(f"recipient {recipient!r} is not an idurl and not a known nickname: {exc}") from None
        if info is None:
            raise SendError(f"recipient {recipient!r} is not an idurl and no node holds that nickname")
        return info.idurl

    @inlineCallbacks
    def send(self, recipient: Any, body: Any, timeout: float = SEND_TIMEOUT, retries: int = SEND_RETRIES) -> Any:
        """Deliver ``body``; fires with the sent packet once the recipient Acked it."""
        gateway = self._running_gateway()
        me, key = self.node.my_identity, self.node.key
        if me is None or key is None:
            raise SendError("this node has no identity yet: run `bitdust identity create NAME`")
        idurl = yield self.resolve(recipient)
        try:
            identity = yield self.node.identity_cache.get(idurl, timeout=IDENTITY_TIMEOUT)
        except Exception as exc:
            raise SendError(f"recipient {idurl} is unknown: {exc}") from None
        packet_id = new_packet_id()
        pool = self.node.reactor.getThreadPool()
        try:
            payload = yield deferToThreadPool(self.node.reactor, pool, seal_message, identity.public_key,
                                              me.idurl, idurl, packet_id, body)
        except MessageError as exc:
            raise SendError(str(exc)) from None
        packet = yield gateway.sign_packet(Command.Message, payload, idurl, packet_id)
        try:
            reply = yield gateway.outbox(packet, idurl, timeout=timeout, retries=retries)
        except GatewayTimeout:
            raise SendError(f"recipient {idurl} is offline: no answer to the message") from None
        except GatewayError as exc:
            raise SendError(f"message to {idurl} not delivered: {exc}") from None
        if reply is None or reply.command is not Command.Ack:
            raise SendError(f"{idurl} refused the message: {fail_reason(reply).reason}")
        self._hookups().touch(idurl)
        return packet

    # -- receiving ---------------------------------------------------------------------

    def _on_message(self, packet: Packet) -> Deferred[None]:
        key = self.node.key
        if key is None:
            return self._drop(packet, "this node has no key")
        pool = self.node.reactor.getThreadPool()
        opening: Deferred[Any] = deferToThreadPool(self.node.reactor, pool, open_message, key, packet)
        return opening.addCallbacks(self._opened, self._not_opened, callbackArgs=(packet,), errbackArgs=(packet,))

    def _opened(self, body: Any, packet: Packet) -> None:
        gateway = self._gateway
        hookups = self._hookups_or_none()
        if gateway is None or hookups is None or hookups.inbox is None:
            return  # stopped while decrypting: no Ack, the sender retries or gives up
        self.received += 1
        hookups.touch(packet.creator_id)
        hookups.inbox.put({"from": packet.creator_id, "message": body})
        gateway.ack(packet)

    def _not_opened(self, failure: Any, packet: Packet) -> Deferred[None]:
        failure.trap(MessageError)
        return self._drop(packet, failure.getErrorMessage())

    def _drop(self, packet: Packet, reason: str) -> Deferred[None]:
        log.info("dropped message %s from %s: %s", packet.packet_id, packet.creator_id, reason)
        self.dropped[DROP_REASON] += 1
        gateway = self._gateway
        if gateway is not None:
            gateway.stats.dropped_in(DROP_REASON, len(packet.payload))
            gateway.fail(packet, REFUSED, f"message refused: {reason}")
        return succeed(None)

    # -- internals ---------------------------------------------------------------------

    def _running_gateway(self) -> Gateway:
        if self._gateway is None or not self._gateway.running:
            raise ServiceUnavailable(f"{self.name} is not running")
        return self._gateway

    def _hookups(self) -> P2PHookupsService:
        hookups = self._hookups_or_none()
        if hookups is None:
            raise ServiceUnavailable("service_p2p_hookups is not running")
        return hookups

    def _hookups_or_none(self) -> P2PHookupsService | None:
        from bitdust.services.p2p_hookups import P2PHookupsService

        service = self.node.services.instance("service_p2p_hookups") \
            if self.node.services.installed("service_p2p_hookups") else None
        return service if isinstance(service, P2PHookupsService) and service.connector is not None else None
