"""service_backup_db: the catalog of backed-up items, loaded while the service runs.

Start reads ``<home>/catalog/catalog.json`` in a worker thread (a big catalog takes a
while to parse); a catalog that cannot be read makes the start fail with the reason,
after it was moved aside (see :mod:`bitdust.storage.catalog.store`), and is never
overwritten. Every change made through the API is saved at once by the API call; stop
saves whatever else changed (versions recorded by backup jobs).

Not registered in :func:`bitdust.services.built_services` yet: it depends on
``service_list_files`` and ``service_data_motion``, which are not built, so the driver
could never start it. Keeping a copy of the catalog on the suppliers (issue 5, item 7)
will hang off :attr:`Catalog.revision` here.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from twisted.internet.defer import Deferred, maybeDeferred, succeed
from twisted.internet.threads import deferToThreadPool

from bitdust.services.service import Service, ServiceUnavailable
from bitdust.storage.catalog.store import CatalogStore
from bitdust.storage.catalog.tree import Catalog

if TYPE_CHECKING:
    from bitdust.node import Node

log = logging.getLogger(__name__)


class BackupDbService(Service):
    name = "service_backup_db"

    def __init__(self, node: Node) -> None:
        super().__init__(node)
        self.store = CatalogStore(node.home.catalog)
        self._catalog: Catalog | None = None

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
        self._catalog = catalog
        log.info("catalog loaded from %s: %d items", self.store.path, len(catalog))

    def stop(self) -> Deferred[None]:
        """Saves on the reactor thread, not in a worker: a save still running in a thread
        could finish after a later one and put an older catalog back in place."""
        catalog, self._catalog = self._catalog, None
        if catalog is None:
            return succeed(None)
        return maybeDeferred(self.store.save_if_changed, catalog).addCallback(lambda _: None)

    def replace_catalog(self, catalog: Catalog) -> None:
        """Put a catalog recovered from the suppliers in place of the running one, saved."""
        if self._catalog is None:
            raise ServiceUnavailable("the catalog is not loaded: service_backup_db is not running")
        catalog.saver = self.store.save
        self.store.save(catalog)
        self._catalog = catalog
