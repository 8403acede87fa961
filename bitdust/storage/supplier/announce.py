"""Keeps this supplier's availability record in the DHT while service_supplier is ON.

service_supplier needs no DHT (the table says p2p_hookups only), so the DHT may come up
after it, go down and come back: every :data:`CHECK_SECONDS` the announcer looks for a
running DHT and an identity, and keeps an :class:`AvailabilityPublisher` on the DHT it
finds (that one republishes every ``REPUBLISH_SECONDS``). It also looks as soon as the
node's identity appears (``bitdust identity create`` after start): customers of a fresh
network find no supplier until the first record is out. When the granted space
changes (a customer came, changed its request or left, or the donation changed) the
offer is republished within :data:`CHANGE_DELAY` seconds, changes in between folded
into one publication.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from twisted.internet.defer import Deferred
from twisted.internet.task import LoopingCall
from twisted.python.failure import Failure

from bitdust.dht.availability import AvailabilityPublisher, publish_availability
from bitdust.dht.kad import DhtNode
from bitdust.storage.ecc import SUPPLIER_COUNTS

if TYPE_CHECKING:
    from bitdust.node import Node

log = logging.getLogger(__name__)

CHECK_SECONDS = 30.0
CHANGE_DELAY = 1.0
ECC_MAPS: tuple[str, ...] = tuple(f"ecc/{n}x{n}" for n in SUPPLIER_COUNTS)
"""Every map is accepted: a supplier stores opaque pieces whatever the map."""


def running_dht(node: Node) -> DhtNode | None:
    from bitdust.services.dht import DhtService

    if not node.services.installed("service_dht") or not node.services.is_on("service_dht"):
        return None
    service = node.services.instance("service_dht")
    if not isinstance(service, DhtService) or service.dht is None or not service.dht.running:
        return None
    return service.dht


class AvailabilityAnnouncer:
    def __init__(self, node: Node, free: Callable[[], int], interval: float = CHECK_SECONDS) -> None:
        self.node = node
        self.free = free
        self.publisher: AvailabilityPublisher | None = None
        self._dht: DhtNode | None = None
        self._loop = LoopingCall(self.check)
        self._loop.clock = node.clock
        self._interval = interval
        self._change_timer: Any = None
        self._identity_listener = self._on_identity

    def start(self) -> None:
        self.node.add_identity_listener(self._identity_listener)
        self._loop.start(self._interval, now=True)

    def stop(self) -> None:
        """Stop refreshing and, best effort, tell the DHT we offer nothing any more."""
        self.node.remove_identity_listener(self._identity_listener)
        if self._loop.running:
            self._loop.stop()
        if self._change_timer is not None and self._change_timer.active():
            self._change_timer.cancel()
        publisher, self.publisher, self._dht = self.publisher, None, None
        if publisher is not None:
            publisher.stop()
            dht = running_dht(self.node)
            if dht is not None:
                publish_availability(dht, publisher.key, publisher.idurl, 0, ()).addErrback(
                    self._log_failure, "withdrawal")

    def check(self) -> None:
        """Follow the DHT service: start publishing on a new DHT, stop on a gone one."""
        dht = running_dht(self.node)
        if dht is self._dht and (dht is None or self.publisher is not None):
            return
        if self.publisher is not None:
            self.publisher.stop()
            self.publisher = None
        self._dht = dht
        identity, key = self.node.my_identity, self.node.key
        if dht is None or identity is None or key is None:
            self._dht = None  # try again on the next check (an identity may come later)
            return
        self.publisher = AvailabilityPublisher(self.node.clock, dht, key, identity.idurl, self._measure)
        self.publisher.start().addErrback(self._log_failure, "first publication")

    def _on_identity(self, *_args: object) -> None:
        if self._loop.running:
            self.check()

    def changed(self) -> None:
        if self._change_timer is None or not self._change_timer.active():
            self._change_timer = self.node.clock.callLater(CHANGE_DELAY, self._publish_change)

    def _publish_change(self) -> Deferred[None] | None:
        self._change_timer = None
        if self.publisher is None:
            return None
        return self.publisher.publish_now()

    def _measure(self) -> tuple[int, tuple[str, ...]]:
        return self.free(), ECC_MAPS

    def _log_failure(self, failure: Failure, what: str) -> None:
        log.warning("availability %s: %s", what, failure.getErrorMessage())
