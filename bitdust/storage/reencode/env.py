"""The re-encoder's view of a node: catalog, supplier list, data motion, restores, rebuilder.

The re-encoder runs inside service_backups (which needs the catalog, data motion and the
customer), so those are looked up at each use and answer None while they are stopped;
service_restores and service_rebuilding come later in the service order or beside it,
and are only asked when they run.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from twisted.internet.defer import Deferred
from twisted.internet.threads import deferToThreadPool

from bitdust.services.service import ServiceUnavailable, while_running
from bitdust.storage.customer.connector import CONNECTED
from bitdust.storage.pipeline.block_crypto import VersionKey

if TYPE_CHECKING:
    from bitdust.node import Node
    from bitdust.storage.catalog.tree import Catalog
    from bitdust.storage.customer.suppliers import SupplierList
    from bitdust.storage.reencode.reencoder import PieceMover


class NodeReencodeEnv:
    def __init__(self, node: Node, what: str) -> None:
        self.node = node
        self.what = what

    def catalog(self) -> Catalog | None:
        from bitdust.services.backup_db import running_backup_db

        return while_running(lambda: running_backup_db(self.node, self.what).catalog)

    def suppliers(self) -> SupplierList | None:
        from bitdust.services.customer import running_customer

        return while_running(lambda: running_customer(self.node, self.what).running_list())

    def mover(self) -> PieceMover | None:
        from bitdust.services.data_motion import running_motion

        return while_running(lambda: running_motion(self.node, self.what))

    def online(self, position: int) -> bool:
        from bitdust.services.customer import running_customer

        try:
            connector = running_customer(self.node, self.what).connectors.get(position)
        except ServiceUnavailable:
            return False
        return connector is not None and connector.state == CONNECTED

    def open_key(self, wrapped: bytes) -> bytes:
        key = self.node.key
        if key is None:
            raise ValueError("this node has no private key loaded")
        return VersionKey.open(key, wrapped).key

    def run(self, fn: Callable[[], Any]) -> Deferred[Any]:
        reactor = self.node.reactor
        return deferToThreadPool(reactor, reactor.getThreadPool(), fn)

    def restoring(self) -> set[str]:
        from bitdust.services.restores import RestoresService

        name = RestoresService.name
        if not self.node.services.installed(name) or not self.node.services.is_on(name):
            return set()
        service = self.node.services.instance(name)
        jobs = service.jobs if isinstance(service, RestoresService) else None
        if jobs is None:
            return set()
        return {backup_id for backup_id, worker in jobs.jobs.items() if not worker.done}

    def release(self, needed: int) -> list[str]:
        from bitdust.services.customer import running_customer

        try:
            return running_customer(self.node, self.what).release_retained(needed)
        except ServiceUnavailable:
            return []

    def rebuild(self) -> None:
        from bitdust.services.rebuilding import RebuildingService

        name = RebuildingService.name
        if not self.node.services.installed(name) or not self.node.services.is_on(name):
            return
        service = self.node.services.instance(name)
        rebuilder = service.rebuilder if isinstance(service, RebuildingService) else None
        if rebuilder is not None:
            rebuilder.event("check")
