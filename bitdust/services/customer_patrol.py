"""service_customer_patrol: rejects idle or over-quota customers (the rules are in
:mod:`bitdust.storage.supplier.patrol`)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from twisted.internet.defer import Deferred, maybeDeferred, succeed

from bitdust.services.service import Service
from bitdust.services.supplier import running_supplier
from bitdust.storage.supplier.patrol import CHECK_SECONDS, CustomerPatrol

if TYPE_CHECKING:
    from bitdust.node import Node

IDLE_DAYS = "services/customer-patrol/customer-idle-days"


class CustomerPatrolService(Service):
    name = "service_customer_patrol"

    def __init__(self, node: Node) -> None:
        super().__init__(node)
        self.patrol: CustomerPatrol | None = None
        self.interval = CHECK_SECONDS
        """Seconds between rounds; tests set a small one before starting."""

    def start(self) -> Deferred[None]:
        return maybeDeferred(self._start)

    def _start(self) -> None:
        supplier = running_supplier(self.node, self.name)
        store = supplier.running_store(self.name)
        self.patrol = CustomerPatrol(self.node.clock, store, supplier.reject_customer,
                                     lambda: int(self.node.config.get(IDLE_DAYS)), self.interval)
        self.patrol.start()

    def stop(self) -> Deferred[None]:
        patrol, self.patrol = self.patrol, None
        if patrol is not None:
            patrol.stop()
        return succeed(None)
