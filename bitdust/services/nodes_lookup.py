"""service_nodes_lookup: random available nodes from the DHT (for supplier_finder).

Reads the availability index that suppliers publish (:mod:`bitdust.dht.availability`):
only nodes whose own signed offer verifies are returned, shuffled. Filtering on free
space is left to the candidate itself (it answers RequestService with Fail
``no-space``): an offer in the DHT may be up to its republish interval old.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

from twisted.internet.defer import Deferred, fail

from bitdust.dht.availability import Availability, find_available
from bitdust.services.service import Service, ServiceUnavailable

if TYPE_CHECKING:
    from bitdust.node import Node

MAX_COUNT = 64


class NodesLookupService(Service):
    name = "service_nodes_lookup"

    def __init__(self, node: Node) -> None:
        super().__init__(node)
        self.running = False

    def start(self) -> Deferred[None]:
        self.running = True
        return super().start()

    def stop(self) -> Deferred[None]:
        self.running = False
        return super().stop()

    def find(self, count: int, exclude: Iterable[str] = (), ecc_map: str | None = None) -> Deferred[list[str]]:
        """Up to ``count`` random available idurls, never this node's nor ``exclude``'s."""
        from bitdust.services.dht import DhtService

        if not self.running:
            return fail(ServiceUnavailable(f"{self.name} is not running"))
        dht_service = self.node.services.instance("service_dht")
        try:
            if not isinstance(dht_service, DhtService):
                raise ServiceUnavailable("service_dht is not running")
            dht = dht_service.running_dht()
        except ServiceUnavailable as exc:
            return fail(exc)
        skip = set(exclude)
        me = self.node.my_identity
        if me is not None:
            skip.update(me.sources)
        finding: Deferred[Any] = find_available(dht, max(1, min(count, MAX_COUNT)), exclude=skip, ecc_map=ecc_map)
        return finding.addCallback(lambda offers: [offer.idurl for offer in offers if _usable(offer)])


def _usable(offer: Availability) -> bool:
    return bool(offer.idurl)
