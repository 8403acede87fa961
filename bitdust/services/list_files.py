"""service_list_files: what each supplier holds for us, refreshed.

A :class:`~bitdust.storage.motion.orator.ListFilesOrator` asks every
``services/list-files/refresh-seconds``, after a supplier is replaced, and when a
supplier (re)connects under an idurl we hold no listing from. Backup, monitor and
rebuild read ``held(position)`` (piece ID -> size, or None when unknown) and call
``refresh(position)`` when they need it fresh.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from twisted.internet.defer import Deferred, maybeDeferred, succeed
from twisted.internet.task import LoopingCall

from bitdust.services.customer import CustomerService, running_customer
from bitdust.services.gateway import running_gateway
from bitdust.services.service import Service, ServiceUnavailable
from bitdust.storage.customer.connector import CONNECTED
from bitdust.storage.motion.listing import FileLister
from bitdust.storage.motion.orator import ListFilesOrator

if TYPE_CHECKING:
    from bitdust.node import Node


class ListFilesService(Service):
    name = "service_list_files"

    def __init__(self, node: Node) -> None:
        super().__init__(node)
        self.orator: ListFilesOrator | None = None
        self._lister: FileLister | None = None
        self._customer: CustomerService | None = None
        self._loop: LoopingCall | None = None
        self._change_listener = self._on_change
        self._replaced_listener = self._on_replaced
        self._config_listener = self._on_config

    def start(self) -> Deferred[None]:
        return maybeDeferred(self._start)

    def _start(self) -> None:
        gateway = running_gateway(self.node, self.name)
        customer = running_customer(self.node, self.name)
        config = self.node.config
        self._customer = customer
        self._lister = FileLister(gateway, lambda: float(config.get("services/customer/request-timeout-seconds")))
        self._lister.start()
        self.orator = ListFilesOrator(self.node.clock, self.node.automats, self._lister.list_files,
                                      self._supplier_at, lambda: customer.running_list().span)
        self.orator.event("init")
        customer.add_change_listener(self._change_listener)
        customer.add_replaced_listener(self._replaced_listener)
        config.listen("services/list-files/", self._config_listener)
        self._loop = LoopingCall(self.refresh)
        self._loop.clock = self.node.clock
        self._loop.start(float(config.get("services/list-files/refresh-seconds")), now=True)

    def stop(self) -> Deferred[None]:
        self.node.config.unlisten(self._config_listener)
        if self._loop is not None and self._loop.running:
            self._loop.stop()
        self._loop = None
        if self._customer is not None:
            self._customer.remove_change_listener(self._change_listener)
            self._customer.remove_replaced_listener(self._replaced_listener)
        self._customer = None
        orator, self.orator = self.orator, None
        if orator is not None:
            orator.event("shutdown")
        lister, self._lister = self._lister, None
        if lister is not None:
            lister.close()
        return succeed(None)

    # -- what others call --------------------------------------------------------------------

    def held(self, position: int) -> dict[str, int] | None:
        """Piece ID -> size the supplier now at ``position`` last reported; None if unknown."""
        return self.orator.held(position) if self.orator is not None else None

    def refresh(self, position: int | None = None) -> Deferred[None]:
        """Ask again (one position or all); fires once the answers are in (never fails)."""
        if self.orator is None:
            return succeed(None)
        return self.orator.refresh(None if position is None else [position])

    # -- internals -----------------------------------------------------------------------------

    def _supplier_at(self, position: int) -> str | None:
        try:
            suppliers = running_customer(self.node, self.name).running_list()
        except ServiceUnavailable:
            return None
        # retained positions too (kept for versions not re-encoded yet): their redundancy counts
        return suppliers.idurl(position) or None if 0 <= position < suppliers.span else None

    def _on_replaced(self, position: int, _old: str, _new: str) -> None:
        self.refresh(position)

    def _on_change(self) -> None:
        """A supplier that connected under an idurl we have no listing from is asked."""
        orator, customer = self.orator, self._customer
        if orator is None or customer is None:
            return
        stale = [view.position for view in customer.positions()
                 if view.idurl and view.state == CONNECTED and orator.known_idurl(view.position) != view.idurl]
        if stale:
            orator.refresh(stale)

    def _on_config(self, key: str, _old: object, new: object) -> None:
        if key == "services/list-files/refresh-seconds" and self._loop is not None:
            if self._loop.running:
                self._loop.stop()
            self._loop.start(float(str(new)), now=False)


def running_list_files(node: Node, what: str) -> ListFilesService:
    return node.services.running("service_list_files", ListFilesService, what, lambda s: s.orator is not None)
