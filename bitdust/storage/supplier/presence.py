"""Which customers answer: ``online`` / ``offline`` for ``customers_list()``.

A customer is online when the last thing we know about it is good (any verified packet
from it, or an Ack to our Identity ping) and that was less than :data:`ONLINE_SECONDS`
ago; a ping that got no Ack makes it offline at once. Nothing is persisted: after a
restart every customer is offline until heard from or pinged (``customers_ping``).
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

from twisted.internet.defer import Deferred, DeferredList, succeed

from bitdust.transport.packet import Command, Packet

if TYPE_CHECKING:
    from bitdust.identity.document import Identity
    from bitdust.transport.gateway import Gateway

log = logging.getLogger(__name__)

ONLINE_SECONDS = 600.0
PING_TIMEOUT = 10.0
PING_RETRIES = 1


class CustomerPresence:
    def __init__(self, clock: Any) -> None:
        self._clock = clock
        self._good: dict[str, float] = {}
        self._bad: dict[str, float] = {}
        self._pinging: dict[str, list[Deferred[bool]]] = {}

    def heard_from(self, idurl: str) -> None:
        self._good[idurl] = self._clock.seconds()

    def lost(self, idurl: str) -> None:
        self._bad[idurl] = self._clock.seconds()

    def forget(self, idurl: str) -> None:
        for table in (self._good, self._bad):
            table.pop(idurl, None)

    def status(self, idurl: str) -> str:
        good, bad = self._good.get(idurl), self._bad.get(idurl)
        if good is None or (bad is not None and bad >= good):
            return "offline"
        return "online" if self._clock.seconds() - good < ONLINE_SECONDS else "offline"

    def ping(self, gateway: Gateway, me: Identity, idurl: str, timeout: float = PING_TIMEOUT) -> Deferred[bool]:
        """Send our Identity; fires True on its Ack, False otherwise (never fails). A ping
        to a customer already being pinged joins that one: at most one each in flight."""
        waiter: Deferred[bool] = Deferred()
        if idurl in self._pinging:
            self._pinging[idurl].append(waiter)
            return waiter
        self._pinging[idurl] = [waiter]
        signing = gateway.sign_packet(Command.Identity, me.to_xml(), idurl)
        sending = signing.addCallback(lambda packet: gateway.outbox(packet, idurl, timeout=timeout,
                                                                    retries=PING_RETRIES))
        sending.addCallbacks(self._answered, self._unanswered, callbackArgs=(idurl,), errbackArgs=(idurl,))
        sending.addCallback(self._done, idurl)
        return waiter

    def ping_all(self, gateway: Gateway, me: Identity, idurls: list[str],
                 timeout: float = PING_TIMEOUT) -> Deferred[Any]:
        if not idurls:
            return succeed([])
        return DeferredList([self.ping(gateway, me, idurl, timeout) for idurl in idurls], consumeErrors=True)

    def _answered(self, reply: Packet | None, idurl: str) -> bool:
        if reply is not None and reply.command is Command.Ack:
            self.heard_from(idurl)
            return True
        self.lost(idurl)
        return False

    def _unanswered(self, failure: Any, idurl: str) -> bool:
        log.info("customer %s did not answer a ping: %s", idurl, failure.getErrorMessage())
        self.lost(idurl)
        return False

    def _done(self, result: bool, idurl: str) -> None:
        for waiter in self._pinging.pop(idurl, []):
            waiter.callback(result)
