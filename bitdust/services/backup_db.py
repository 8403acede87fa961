"""service_backup_db: the catalog of backed-up items, loaded while the service runs,
and its encrypted copy on every supplier.

Start reads ``<home>/catalog/catalog.json`` in a worker thread (a big catalog takes a
while to parse); a catalog that cannot be read makes the start fail with the reason,
after it was moved aside (see :mod:`bitdust.storage.catalog.store`), and is never
overwritten. Every change made through the API is saved before the call answers, a
backup job's version before the job ends; stop saves whatever else changed. Saves run in
the thread pool (:class:`~bitdust.storage.catalog.store.CatalogStore`).

The copy on the suppliers is kept by a :class:`~bitdust.storage.backups.catalog_sync.
CatalogCopier` (debounced: at most one upload every few seconds); a fresh machine
gets the catalog back with :func:`~bitdust.storage.backups.catalog_sync.fetch_catalog_copy`
and puts it in place with :meth:`BackupDbService.replace_catalog`.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from twisted.internet.defer import Deferred, maybeDeferred, succeed
from twisted.internet.threads import deferToThreadPool

from bitdust.services.customer import running_customer
from bitdust.services.service import Service, ServiceUnavailable
from bitdust.storage.backups.catalog_sync import CatalogCopier
from bitdust.storage.catalog.store import CatalogStore
from bitdust.storage.catalog.tree import Catalog

if TYPE_CHECKING:
    from bitdust.node import Node
    from bitdust.storage.backups.recovery import CatalogRecovery

log = logging.getLogger(__name__)

FINAL_COPY_SECONDS = 5.0
"""How long stopping waits for the last catalog copy to reach the suppliers."""


class BackupDbService(Service):
    name = "service_backup_db"

    def __init__(self, node: Node) -> None:
        super().__init__(node)
        self.store = CatalogStore(node.home.catalog, reactor=node.reactor)
        self._catalog: Catalog | None = None
        self.copier: CatalogCopier | None = None
        self.recovery: CatalogRecovery | None = None

    @property
    def catalog(self) -> Catalog:
        """The running catalog; ServiceUnavailable (an ERROR answer) when stopped, so an
        API call can never work on a catalog that is not the saved one."""
        if self._catalog is None:
            raise ServiceUnavailable("the catalog is not loaded: service_backup_db is not running")
        return self._catalog

    @property
    def loaded(self) -> bool:
        return self._catalog is not None

    def start(self) -> Deferred[None]:
        reactor = self.node.reactor
        loading: Deferred[Catalog] = deferToThreadPool(reactor, reactor.getThreadPool(), self.store.load)
        return loading.addCallback(self._loaded)

    def _loaded(self, catalog: Catalog) -> None:
        from bitdust.services.data_motion import running_motion
        from bitdust.services.list_files import running_list_files

        self._catalog = catalog
        log.info("catalog loaded from %s: %d items", self.store.path, len(catalog))
        node = self.node
        self.copier = CatalogCopier(node, lambda: self.catalog, lambda: running_motion(node, self.name),
                                    lambda: running_list_files(node, self.name),
                                    lambda: running_customer(node, self.name).running_list().size)
        self.copier.start()
        from bitdust.storage.backups.recovery import start_if_requested

        self.recovery = start_if_requested(node, self)  # after ``bitdust identity restore``

    def stop(self) -> Deferred[None]:
        """Copies a catalog changed since its last copy to the suppliers first (bounded by
        :data:`FINAL_COPY_SECONDS`; data motion stops after us): the copier looks only every
        few seconds, and a daemon stopped right after a backup finished would otherwise
        leave the suppliers a copy in which that version is still in progress, which a
        disaster recovery would then drop. The last save goes through the store's one
        writer like every other, so it lands after any save still running."""
        recovery, self.recovery = self.recovery, None
        if recovery is not None:
            recovery.stop()
        copier, self.copier = self.copier, None
        if copier is not None:
            copier.stop()
        if copier is None or (recovery is not None and recovery.state == "WAITING"):
            return self._save_and_drop()  # still recovering: the copies on the suppliers are the truth
        if not self._suppliers_connected():
            # A supplier gone: a copy now would wait for it (the copier retries once running).
            return self._save_and_drop()
        def copied(done: bool) -> Deferred[None]:
            if not done:
                log.warning("the latest catalog was not copied to every supplier before stopping")
            return self._save_and_drop()

        return copier.final_copy(FINAL_COPY_SECONDS).addCallback(copied)

    def _suppliers_connected(self) -> bool:
        try:
            return running_customer(self.node, self.name).all_connected()
        except ServiceUnavailable:
            return False

    def _save_and_drop(self) -> Deferred[None]:
        catalog, self._catalog = self._catalog, None
        if catalog is None:
            return succeed(None)
        return maybeDeferred(self.store.save_if_changed, catalog).addCallback(lambda _: None)

    def replace_catalog(self, catalog: Catalog) -> Deferred[None]:
        """Put a catalog recovered from the suppliers in place of the running one; fires
        once it is saved."""
        if self._catalog is None:
            raise ServiceUnavailable("the catalog is not loaded: service_backup_db is not running")
        self.store.bind(catalog)
        self._catalog = catalog
        if self.copier is not None:
            self.copier.forget()
        return catalog.save()


def running_backup_db(node: Node, what: str) -> BackupDbService:
    return node.services.running("service_backup_db", BackupDbService, what, lambda s: s.loaded)
