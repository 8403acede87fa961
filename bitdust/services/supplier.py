"""service_supplier: donates ``services/supplier/donated-space`` to customers.

While ON it answers the market commands (:mod:`bitdust.storage.supplier.handlers`),
keeps the contracts and pieces under ``<home>/supplier/contracts.json`` and
``<home>/customers/`` (:mod:`bitdust.storage.supplier.store`), and announces its free
space in the DHT when service_dht runs (:mod:`bitdust.storage.supplier.announce`).
Switching it off keeps everything on disk: switching it on again (or a restart) picks
the same customers and data up.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import TYPE_CHECKING, Any

from twisted.internet.defer import Deferred, inlineCallbacks

from bitdust.services.gateway import running_gateway
from bitdust.services.service import Service, ServiceUnavailable
from bitdust.storage.supplier.announce import AvailabilityAnnouncer
from bitdust.storage.supplier.handlers import SupplierHandlers
from bitdust.storage.supplier.presence import PING_TIMEOUT, CustomerPresence
from bitdust.storage.supplier.store import SupplierStore
from bitdust.transport.fail import FailReason
from bitdust.transport.gateway import Gateway
from bitdust.transport.packet import Command

if TYPE_CHECKING:
    from bitdust.node import Node

log = logging.getLogger(__name__)

DONATED_SPACE = "services/supplier/donated-space"
NOTICE_TIMEOUT = 10.0
NOTICE_RETRIES = 2


class SupplierService(Service):
    name = "service_supplier"

    def __init__(self, node: Node) -> None:
        super().__init__(node)
        self.store: SupplierStore | None = None
        self.presence: CustomerPresence | None = None
        self.announcer: AvailabilityAnnouncer | None = None
        self._handlers: SupplierHandlers | None = None
        self._gateway: Gateway | None = None
        self._donation_listener = self._on_donation_change

    @property
    def contracts_file(self) -> Path:
        return self.node.home.root / "supplier" / "contracts.json"

    @inlineCallbacks
    def start(self) -> Any:
        gateway = running_gateway(self.node, self.name)
        store = SupplierStore(self.node.reactor, self.node.clock, self.node.home.customers, self.contracts_file,
                              lambda: int(self.node.config.get(DONATED_SPACE)))
        yield store.load()
        presence = CustomerPresence(self.node.clock)
        handlers = SupplierHandlers(self.node, gateway, store, presence)
        announcer = AvailabilityAnnouncer(self.node, store.free)
        store.space_listeners.append(announcer.changed)
        self.store, self.presence, self.announcer = store, presence, announcer
        self._gateway, self._handlers = gateway, handlers
        handlers.register()
        announcer.start()
        self.node.config.listen(DONATED_SPACE, self._donation_listener)
        # Our customers must learn our new contacts after a restart on other ports.
        self.node.relationships.add_source(self.name, self._customer_idurls)
        log.info("supplier: %d customer(s), %d bytes held", len(store.customers()), store.used())

    @inlineCallbacks
    def stop(self) -> Any:
        self.node.relationships.remove_source(self.name)
        self.node.config.unlisten(self._donation_listener)
        if self._handlers is not None:
            self._handlers.unregister()
        if self.announcer is not None:
            self.announcer.stop()
        store = self.store
        self.store = self.presence = self.announcer = None
        self._handlers = self._gateway = None
        if store is not None:
            yield store.close()

    # -- for the API and customer_patrol ------------------------------------------------

    def running_store(self, what: str = "this call") -> SupplierStore:
        if self.store is None:
            raise ServiceUnavailable(f"{what} is not available: service_supplier is not running")
        return self.store

    def reject_customer(self, idurl: str, code: str = "rejected",
                        reason: str = "the supplier rejected you") -> Deferred[int]:
        """Delete the customer's data and contract, then tell it (without waiting for
        its Ack: an offline customer must not hold up the rejection). Fires with the
        bytes freed."""
        store = self.running_store("customer_reject")
        gateway = self._gateway

        def notify(freed: int) -> int:
            if self.presence is not None:
                self.presence.forget(idurl)
            if gateway is not None:
                self._send_notice(gateway, idurl, code, reason)
            return freed

        return store.drop_customer(idurl, reason).addCallback(notify)

    def ping_customers(self, timeout: float = PING_TIMEOUT) -> Deferred[Any]:
        """Identity to every customer; statuses follow the Acks. Fires when all answered
        or timed out (the API does not wait for that)."""
        store = self.running_store("customers_ping")
        me = self.node.my_identity
        if me is None or self._gateway is None or self.presence is None:
            raise ServiceUnavailable("customers_ping is not available: this node has no identity yet")
        return self.presence.ping_all(self._gateway, me, [c.idurl for c in store.customers()], timeout)

    # -- internals ----------------------------------------------------------------------

    def _customer_idurls(self) -> list[str]:
        return [contract.idurl for contract in self.store.customers()] if self.store is not None else []

    def _send_notice(self, gateway: Gateway, idurl: str, code: str, reason: str) -> None:
        payload = FailReason(code, reason).encode()
        sending = gateway.sign_packet(Command.CancelService, payload, idurl)
        sending.addCallback(lambda packet: gateway.outbox(packet, idurl, timeout=NOTICE_TIMEOUT,
                                                          retries=NOTICE_RETRIES))
        sending.addErrback(lambda f: log.info("rejection notice to %s not delivered: %s", idurl,
                                              f.getErrorMessage()))

    def _on_donation_change(self, _key: str, _old: Any, _new: Any) -> None:
        if self.announcer is not None:
            self.announcer.changed()


def running_supplier(node: Node, what: str) -> SupplierService:
    """The running service_supplier; ServiceUnavailable (the API's ERROR) otherwise."""
    return node.services.running("service_supplier", SupplierService, what, lambda s: s.store is not None)
