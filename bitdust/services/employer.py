"""service_employer: fire_hire and supplier_finder on top of service_customer.

fire_hire hires until every position has a CONNECTED supplier and replaces bad ones,
one at a time and never beyond what the erasure coding can lose (the rule is written
at the top of :mod:`bitdust.storage.customer.fire_hire`). It is woken when this node's
identity appears or changes: a node started before ``bitdust identity create`` can ask
nobody until then, and must not wait for the next timer to start hiring.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from twisted.internet.defer import Deferred, fail, maybeDeferred, succeed

from bitdust.services.customer import CustomerService, running_customer
from bitdust.services.nodes_lookup import NodesLookupService
from bitdust.services.service import Service, ServiceUnavailable
from bitdust.storage.customer.finder import SupplierFinder
from bitdust.storage.customer.fire_hire import FireHire

if TYPE_CHECKING:
    from bitdust.node import Node


class EmployerService(Service):
    name = "service_employer"

    def __init__(self, node: Node) -> None:
        super().__init__(node)
        self.fire_hire: FireHire | None = None
        self.finder: SupplierFinder | None = None
        self._customer: CustomerService | None = None
        self._change_listener = self._on_change

    def start(self) -> Deferred[None]:
        return maybeDeferred(self._start)

    def _start(self) -> None:
        customer = running_customer(self.node, self.name)
        config = self.node.config
        self._customer = customer
        self.finder = SupplierFinder(self.node.clock, self.node.automats, self._lookup, customer.my_idurl,
                                     customer.refusals)
        self.fire_hire = FireHire(self.node.clock, self.node.automats, customer, self.finder, customer.refusals,
                                  lambda: float(config.get("services/employer/critically-offline-seconds")))
        self.fire_hire.failing = customer.strikes.failing
        customer.add_change_listener(self._change_listener)
        self.node.add_identity_listener(self._change_listener)
        self.fire_hire.event("init")

    def stop(self) -> Deferred[None]:
        self.node.remove_identity_listener(self._change_listener)
        if self._customer is not None:
            self._customer.remove_change_listener(self._change_listener)
        self._customer = None
        fire_hire, self.fire_hire = self.fire_hire, None
        if fire_hire is not None:
            fire_hire.event("shutdown")
        finder, self.finder = self.finder, None
        if finder is not None:
            finder.event("shutdown")
        return succeed(None)

    def running_fire_hire(self, what: str) -> FireHire:
        if self.fire_hire is None:
            raise ServiceUnavailable(f"{what} is not available: service_employer is not running")
        return self.fire_hire

    def _on_change(self, *_args: object) -> None:
        if self.fire_hire is not None:
            self.fire_hire.event("check")

    def _lookup(self, count: int, exclude: set[str]) -> Deferred[list[str]]:
        if not self.node.services.installed("service_nodes_lookup") \
                or not self.node.services.is_on("service_nodes_lookup"):
            return fail(ServiceUnavailable("service_nodes_lookup is not running"))
        service = self.node.services.instance("service_nodes_lookup")
        customer = self._customer
        if not isinstance(service, NodesLookupService) or customer is None:
            return fail(ServiceUnavailable("service_nodes_lookup is not running"))
        suppliers = customer.running_list()
        retained = {slot.idurl for slot in suppliers.retained() if slot.idurl}  # hold one position each already
        return service.find(count, exclude | retained, suppliers.ecc_map)


def running_employer(node: Node, what: str) -> EmployerService:
    return node.services.running("service_employer", EmployerService, what, lambda s: s.fire_hire is not None)
