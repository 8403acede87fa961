"""service_rebuilding: the backup_rebuilder (:mod:`bitdust.storage.rebuild.rebuilder`).

It hears every change of supplier from service_customer, reads what suppliers hold
from service_list_files, moves pieces through service_data_motion, and plugs its
``unrebuilt`` positions into fire_hire, so a second supplier is not fired while the
pieces of the first are still being regenerated.

The catalog (service_backup_db) is not a dependency in the service table (backup_db
itself comes later in the order), so it is looked up at each pass; while it is not
loaded nothing is planned and replaced positions stay ``unrebuilt``. Redundancy is
written into the in-memory catalog only when it changed; it is derived data, saved with
the catalog's next save and counted again by every pass anyway.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

from twisted.internet.defer import Deferred, maybeDeferred, succeed
from twisted.internet.threads import deferToThreadPool

from bitdust.services.customer import CustomerService, running_customer
from bitdust.services.service import Service, ServiceUnavailable, while_running
from bitdust.storage.customer.connector import CONNECTED
from bitdust.storage.customer.fire_hire import FireHire
from bitdust.storage.pipeline.block_crypto import VersionKey
from bitdust.storage.rebuild.block_job import PieceMover
from bitdust.storage.rebuild.plan import VersionInfo
from bitdust.storage.rebuild.rebuilder import BackupRebuilder

if TYPE_CHECKING:
    from bitdust.node import Node
    from bitdust.storage.catalog.tree import Catalog

log = logging.getLogger(__name__)


class RebuildingService(Service):
    name = "service_rebuilding"

    def __init__(self, node: Node) -> None:
        super().__init__(node)
        self.rebuilder: BackupRebuilder | None = None
        self._customer: CustomerService | None = None
        self._replaced_listener = self._on_replaced
        self._change_listener = self._on_change
        self._connected: frozenset[int] = frozenset()
        self._hooked: FireHire | None = None  # the fire_hire whose unrebuilt hook is ours

    def start(self) -> Deferred[None]:
        return maybeDeferred(self._start)

    def _start(self) -> None:
        from bitdust.services.employer import running_employer

        self._customer = running_customer(self.node, self.name)
        self.rebuilder = BackupRebuilder(self.node.clock, self.node.automats, self)
        self._customer.add_replaced_listener(self._replaced_listener)
        self._customer.add_change_listener(self._change_listener)
        fire_hire = running_employer(self.node, self.name).running_fire_hire(self.name)
        fire_hire.unrebuilt = self.rebuilder.unrebuilt
        self._hooked = fire_hire
        self.rebuilder.event("init")

    def stop(self) -> Deferred[None]:
        if self._customer is not None:
            self._customer.remove_replaced_listener(self._replaced_listener)
            self._customer.remove_change_listener(self._change_listener)
        self._customer = None
        rebuilder, self.rebuilder = self.rebuilder, None
        if self._hooked is not None and rebuilder is not None and self._hooked.unrebuilt == rebuilder.unrebuilt:
            self._hooked.unrebuilt = set
        self._hooked = None
        if rebuilder is not None:
            rebuilder.event("shutdown")
        return succeed(None)

    def _on_replaced(self, position: int, old_idurl: str, new_idurl: str) -> None:
        log.info("position %d: %s replaced by %s: its pieces will be rebuilt", position, old_idurl, new_idurl)
        if self.rebuilder is not None:
            self.rebuilder.event("replaced", position)

    def _on_change(self) -> None:
        """A supplier came online or went away: count again (only then: this listener
        also hears every periodic re-check of the suppliers)."""
        customer = self._customer
        if customer is None or self.rebuilder is None:
            return
        connected = frozenset(v.position for v in customer.positions() if v.state == CONNECTED)
        if connected != self._connected:
            self._connected = connected
            self.rebuilder.event("check")

    # -- RebuildEnv: what the rebuilder reads and uses -----------------------------------------

    def _catalog(self) -> Catalog | None:
        from bitdust.services.backup_db import BackupDbService

        name = "service_backup_db"
        if not self.node.services.installed(name) or not self.node.services.is_on(name):
            return None
        service = self.node.services.instance(name)
        return service.catalog if isinstance(service, BackupDbService) and service.loaded else None

    def versions(self) -> list[VersionInfo] | None:
        catalog = self._catalog()
        if catalog is None:
            return None
        return [VersionInfo(f"{item.path_id}/{v.version}", v.ecc, v.blocks, v.wrapped_key, v.storage_id(item.path_id))
                for item, v in catalog.complete_backups()]

    def catalog_revision(self) -> int | None:
        catalog = self._catalog()
        return catalog.revision if catalog is not None else None

    def size(self) -> int:
        return running_customer(self.node, self.name).running_list().size

    def held(self, position: int) -> Mapping[str, int] | None:
        from bitdust.services.list_files import running_list_files

        return while_running(lambda: running_list_files(self.node, self.name).held(position))

    def refresh(self) -> Deferred[None]:
        from bitdust.services.list_files import running_list_files

        try:
            return running_list_files(self.node, self.name).refresh()
        except ServiceUnavailable:
            return succeed(None)

    def mover(self) -> PieceMover | None:
        from bitdust.services.data_motion import running_motion

        return while_running(lambda: running_motion(self.node, self.name))

    def open_key(self, wrapped: bytes) -> bytes:
        key = self.node.key
        if key is None:
            raise ValueError("this node has no private key loaded")
        return VersionKey.open(key, wrapped).key

    def set_redundancy(self, redundancy: dict[str, list[int]]) -> None:
        catalog = self._catalog()
        if catalog is None:
            return
        for backup_id, counts in redundancy.items():
            found = catalog.get(backup_id.rpartition("/")[0])
            version = found.versions.get(backup_id.rpartition("/")[2]) if found is not None else None
            if version is not None and version.redundancy != counts:
                catalog.update_version(backup_id, redundancy=counts)

    def online(self, position: int) -> bool:
        customer = self._customer
        connector = customer.connectors.get(position) if customer is not None else None
        return connector is not None and connector.state == CONNECTED

    def run(self, fn: Callable[[], Any]) -> Deferred[Any]:
        reactor = self.node.reactor
        return deferToThreadPool(reactor, reactor.getThreadPool(), fn)
