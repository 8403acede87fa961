"""service_customer: this node's suppliers, one supplier_connector each.

The list of positions lives in ``<home>/customer/suppliers.json``
(:mod:`bitdust.storage.customer.suppliers`), so a restarted customer asks the very same
suppliers for the very same positions. Each supplier is asked for
``ceil(services/customer/needed-space / N)`` bytes under ``ecc/NxN``, and asked again
every ``services/customer/recheck-seconds`` (and on ``suppliers_ping()``): that is the
liveness check. When ``services/customer/suppliers-number`` changes the list is resized:
new positions start empty (fire_hire hires for them), and positions past a smaller N are
*retained* -- still connected and asked for their space under the old map -- because the
versions coded with that map live on them until the re-encoder (run by service_backups,
:mod:`bitdust.storage.reencode`) has moved every version to the new map; it then calls
:meth:`CustomerService.release_retained`, and only then are they let go.

This service never hires or fires on its own: fire_hire (service_employer) decides
and uses :meth:`CustomerService.probe` and :meth:`CustomerService.commit`. Listeners
given to :meth:`add_replaced_listener` hear ``on_supplier_replaced(position, old_idurl,
new_idurl)`` after every change of hands (the rebuilder subscribes there).
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from twisted.internet.defer import Deferred, maybeDeferred, succeed
from twisted.internet.task import LoopingCall

from bitdust.automats.automat import Automat
from bitdust.services.gateway import running_gateway
from bitdust.services.service import Service, ServiceUnavailable
from bitdust.storage import market
from bitdust.storage.customer.connector import CLOSED, CONNECTED, SupplierConnector
from bitdust.storage.customer.finder import RecentRefusals
from bitdust.storage.customer.fire_hire import PositionView
from bitdust.storage.customer.link import MarketLink
from bitdust.storage.customer.suppliers import SupplierList
from bitdust.storage.restore.strikes import PieceStrikes
from bitdust.transport.gateway import Gateway
from bitdust.transport.packet import Command, Packet

if TYPE_CHECKING:
    from bitdust.node import Node

log = logging.getLogger(__name__)

ReplacedListener = Callable[[int, str, str], None]


class CustomerService(Service):
    name = "service_customer"

    def __init__(self, node: Node) -> None:
        super().__init__(node)
        self.suppliers: SupplierList | None = None
        self.connectors: dict[int, SupplierConnector] = {}
        self.refusals = RecentRefusals(node.clock)
        config = node.config
        self.strikes = PieceStrikes(node.clock, lambda: int(config.get("services/employer/piece-failures-limit")),
                                    lambda: float(config.get("services/employer/piece-failures-seconds")),
                                    lambda _idurl: self._changed())
        """Piece failures per supplier (restores report them): fire_hire replaces a supplier
        that reaches the limit even while it answers every ping."""
        self.link: MarketLink | None = None
        self._gateway: Gateway | None = None
        self._recheck: LoopingCall | None = None
        self._change_listeners: list[Callable[[], None]] = []
        self._replaced_listeners: list[ReplacedListener] = []
        # Bound once, so remove_* gets the very objects add_* got.
        self._files_handler = self._on_files
        self._cancel_handler = self._on_cancel_service
        self._config_listener = self._on_config_change
        self._state_listener = self._on_connector_state

    # -- lifecycle ----------------------------------------------------------------------

    def start(self) -> Deferred[None]:
        return maybeDeferred(self._start)

    def _start(self) -> None:
        config = self.node.config
        self.suppliers = SupplierList.load(self.node.home.root / "customer" / "suppliers.json",
                                           int(config.get("services/customer/suppliers-number")))
        self._gateway = running_gateway(self.node, self.name)
        self.link = MarketLink(self._gateway, lambda: float(config.get("services/customer/request-timeout-seconds")))
        self._gateway.add_handler(Command.Files, self._files_handler)
        self._gateway.add_handler(Command.CancelService, self._cancel_handler)
        config.listen("services/customer/", self._config_listener)
        for slot in self.suppliers.slots() + self.suppliers.retained():
            if slot.idurl:
                self._install(slot.position, self._new_connector(slot.idurl, slot.position))
        self._recheck = LoopingCall(self._recheck_all)
        self._recheck.clock = self.node.clock
        self._recheck.start(float(config.get("services/customer/recheck-seconds")), now=True)
        # Our suppliers must learn our new contacts after a restart on other ports.
        self.node.relationships.add_source(self.name, self._supplier_idurls)

    def stop(self) -> Deferred[None]:
        self.node.relationships.remove_source(self.name)
        self.node.config.unlisten(self._config_listener)
        if self._recheck is not None and self._recheck.running:
            self._recheck.stop()
        self._recheck = None
        if self._gateway is not None:
            self._gateway.remove_handler(Command.Files, self._files_handler)
            self._gateway.remove_handler(Command.CancelService, self._cancel_handler)
        self._gateway = None
        connectors, self.connectors = self.connectors, {}
        for connector in connectors.values():
            connector.event("shutdown")  # the suppliers keep our data while we are away
        if self.link is not None:
            self.link.close()
        self.link = None
        self.suppliers = None
        return succeed(None)

    # -- what others read -----------------------------------------------------------------

    def running_list(self) -> SupplierList:
        if self.suppliers is None:
            raise ServiceUnavailable(f"{self.name} is not running")
        return self.suppliers

    def request_for(self, position: int) -> market.ServiceRequest:
        """What each supplier is asked for: an equal part of the needed space."""
        suppliers = self.running_list()
        needed = int(self.node.config.get("services/customer/needed-space"))
        count = suppliers.size if position < suppliers.size else suppliers.span  # retained: the old share
        return market.ServiceRequest(max(1, math.ceil(needed / count)), suppliers.request_map(position), position)

    def all_connected(self) -> bool:
        """Every position has a supplier and it is connected right now."""
        views = self.positions()
        return bool(views) and all(v.idurl and v.state == CONNECTED for v in views)

    def positions(self) -> list[PositionView]:
        suppliers = self.running_list()
        views = []
        for slot in suppliers.slots():
            connector = self.connectors.get(slot.position)
            state = connector.state if connector is not None and slot.idurl else ""
            offline = connector.offline_for() if connector is not None else 0.0
            views.append(PositionView(slot.position, slot.idurl, state, offline))
        return views

    def connector_of(self, idurl: str) -> SupplierConnector | None:
        return next((c for c in self.connectors.values() if c.idurl == idurl), None)

    def ready(self) -> bool:
        return self.node.my_identity is not None and self._gateway is not None and self._gateway.running

    def my_idurl(self) -> str | None:
        me = self.node.my_identity
        return me.idurl if me is not None else None

    def add_change_listener(self, listener: Callable[[], None]) -> None:
        """Called after any supplier's state or the list itself changed (fire_hire listens)."""
        self._change_listeners.append(listener)

    def remove_change_listener(self, listener: Callable[[], None]) -> None:
        self._change_listeners = [fn for fn in self._change_listeners if fn is not listener]

    def add_replaced_listener(self, listener: ReplacedListener) -> None:
        """``listener(position, old_idurl, new_idurl)`` after a supplier was replaced."""
        self._replaced_listeners.append(listener)

    def remove_replaced_listener(self, listener: ReplacedListener) -> None:
        self._replaced_listeners = [fn for fn in self._replaced_listeners if fn is not listener]

    # -- actions ------------------------------------------------------------------------------

    def ping_all(self) -> None:
        """Ask every supplier again (RequestService): the answer refreshes its state."""
        for connector in list(self.connectors.values()):
            connector.event("connect")

    def _recheck_all(self) -> None:
        """The periodic round: every supplier asked again, fire_hire reminded (an
        identity made since the last round lets it start hiring)."""
        self.ping_all()
        self._changed()

    def probe(self, idurl: str, position: int) -> SupplierConnector:
        """A connector for a candidate at ``position``; it joins the list only by :meth:`commit`."""
        self.running_list()
        return self._new_connector(idurl, position)

    def commit(self, position: int, connector: SupplierConnector) -> None:
        """``connector`` (which Acked) takes ``position``; the former supplier gets CancelService."""
        suppliers = self.running_list()
        old_idurl = suppliers.idurl(position)
        old = self.connectors.pop(position, None)
        if old is not None:
            old.remove_state_listener(self._state_listener)
            old.event("disconnect" if old.idurl != connector.idurl else "shutdown")
        suppliers.assign(position, connector.idurl, time.time() if connector.state == CONNECTED else None)
        self._install(position, connector)
        if old_idurl and old_idurl != connector.idurl:
            for listener in list(self._replaced_listeners):
                listener(position, old_idurl, connector.idurl)
        self._changed()

    # -- internals -----------------------------------------------------------------------------

    def _supplier_idurls(self) -> list[str]:
        return [idurl for idurl in self.suppliers.idurls() if idurl] if self.suppliers is not None else []

    def _new_connector(self, idurl: str, position: int) -> SupplierConnector:
        if self.link is None:
            raise ServiceUnavailable(f"{self.name} is not running")
        return SupplierConnector(self.node.clock, self.node.automats, self.link, idurl, position, self.request_for)

    def _install(self, position: int, connector: SupplierConnector) -> None:
        self.connectors[position] = connector
        connector.add_state_listener(self._state_listener)
        if connector.state == "AT_STARTUP":
            connector.event("connect")

    def _on_connector_state(self, machine: Automat, _old: str, new: str, _event: str) -> None:
        if not isinstance(machine, SupplierConnector) or self.connectors.get(machine.position) is not machine:
            return
        if new == CONNECTED and self.suppliers is not None:
            self.suppliers.mark_connected(machine.position, time.time())
        if new == CLOSED:
            return
        self._changed()

    def _changed(self) -> None:
        for listener in list(self._change_listeners):
            listener()

    def _on_files(self, packet: Packet) -> None:
        if self.link is not None:
            self.link.on_files(packet)

    def _on_cancel_service(self, packet: Packet) -> Deferred[Any] | None:
        """A supplier ended our contract (market: CancelService with Failure JSON)."""
        if not market.is_supplier_notice(packet.payload):
            return None  # a customer of ours leaving: the supplier side's business
        notice = market.decode_failure(packet.payload)
        connector = self.connector_of(packet.creator_id)
        if connector is not None:
            log.info("supplier %s dropped us: %s: %s", packet.creator_id, notice.code, notice.reason)
            self.refusals.add(packet.creator_id)
            connector.event("rejected", f"{notice.code}: {notice.reason}")
        if self._gateway is None:
            return None
        return self._gateway.ack(packet)

    def _on_config_change(self, key: str, old: Any, new: Any) -> None:
        if key == "services/customer/suppliers-number" and self.suppliers is not None:
            self._resize(int(new))
        elif key == "services/customer/needed-space":
            self.ping_all()  # ask everyone for the new share
        elif key == "services/customer/recheck-seconds" and self._recheck is not None:
            if self._recheck.running:
                self._recheck.stop()
            self._recheck.start(float(new), now=False)

    def _resize(self, size: int) -> None:
        suppliers = self.running_list()
        kept = suppliers.resize(size)
        log.info("suppliers-number is now %d; kept until their versions are re-encoded: %s", size,
                 ", ".join(kept) or "nobody")
        self.ping_all()  # the ECC map in every request changed
        self._changed()

    def release_retained(self, needed: int) -> list[str]:
        """Let go of the retained suppliers (positions past N) that no version coded with
        ``ecc/<needed>x<needed>`` or narrower uses; they get CancelService. The re-encoder
        calls this once the versions that needed them were switched to the new map."""
        suppliers = self.running_list()
        dropped = suppliers.release(needed)
        for position in [p for p in self.connectors if p >= suppliers.span]:
            connector = self.connectors.pop(position)
            connector.remove_state_listener(self._state_listener)
            connector.event("disconnect")
        if dropped:
            log.info("retained suppliers released (no version needs them any more): %s", ", ".join(dropped))
            self._changed()
        return dropped


def running_customer(node: Node, what: str) -> CustomerService:
    """The running service_customer; ServiceUnavailable (an ERROR answer) otherwise."""
    return node.services.running("service_customer", CustomerService, what, lambda s: s.suppliers is not None)
