"""service_restores: restore jobs (one restore_worker each), see :mod:`bitdust.storage.restore`.

Pieces come through service_data_motion and the catalog from service_backup_db; both
are looked up when a job starts, not kept, so a restart of either is picked up. Stopping
the service aborts the running jobs and waits until each has rolled back, so nothing is
left half-written behind a stopped daemon.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from twisted.internet.defer import Deferred, DeferredList, maybeDeferred, succeed
from twisted.internet.threads import deferToThreadPool

from bitdust.services.service import Service, ServiceUnavailable
from bitdust.storage.customer.connector import CONNECTED
from bitdust.storage.pipeline.tar_extract import clean_up_journals
from bitdust.storage.restore.jobs import RestoreJobs
from bitdust.storage.restore.target import RestoreError, resolve
from bitdust.storage.restore.worker import DEPTH, PIECE_TIMEOUT, RestoreWorker

if TYPE_CHECKING:
    from bitdust.node import Node

log = logging.getLogger(__name__)


class RestoresService(Service):
    name = "service_restores"

    def __init__(self, node: Node) -> None:
        super().__init__(node)
        self.jobs: RestoreJobs | None = None
        self.depth = DEPTH
        self.piece_timeout = PIECE_TIMEOUT

    def start(self) -> Deferred[None]:
        return maybeDeferred(self._start)

    def _start(self) -> None:
        journals = self.node.home.temp / "restores"
        for leftover in clean_up_journals(journals):  # restores a crash cut short (see tar_extract)
            log.info("removed %s, left by a restore cut short by a crash", leftover)
        self.jobs = RestoreJobs(self.node.clock, self.node.automats, self._run_in_thread, lambda: self.node.key,
                                self._my_idurl, self._online, self.depth, self.piece_timeout, self._strike,
                                journals=journals)

    def stop(self) -> Deferred[None]:
        jobs, self.jobs = self.jobs, None
        if jobs is None:
            return succeed(None)
        waits = jobs.abort_all()
        return DeferredList(waits).addCallback(lambda _: None) if waits else succeed(None)

    # -- what the API calls --------------------------------------------------------------

    def running_jobs(self, what: str) -> RestoreJobs:
        if self.jobs is None:
            raise ServiceUnavailable(f"{what} is not available: service_restores is not running")
        return self.jobs

    def restore(self, what: object, destination: object = None) -> Deferred[RestoreWorker]:
        """Start restoring; fires with the worker once it runs (RestoreError otherwise)."""
        from bitdust.services.backup_db import running_backup_db
        from bitdust.services.data_motion import running_motion

        jobs = self.running_jobs("restore_single")
        catalog = running_backup_db(self.node, "restore_single").catalog
        if destination is not None and not isinstance(destination, str):
            raise RestoreError(f"destination must be a path, not {type(destination).__name__}")
        target = resolve(catalog, what, destination)
        return jobs.start(target, running_motion(self.node, "restore_single"))

    # -- internals -------------------------------------------------------------------------

    def _run_in_thread(self, fn: Callable[[], Any]) -> Deferred[Any]:
        reactor = self.node.reactor
        return deferToThreadPool(reactor, reactor.getThreadPool(), fn)

    def _my_idurl(self) -> str:
        me = self.node.my_identity
        return me.idurl if me is not None else ""

    def _strike(self, idurl: str, kind: str, why: str) -> None:
        """A piece failure that counts against a supplier: service_customer adds them up
        for fire_hire (nothing to tell when the customer service is off)."""
        from bitdust.services.customer import CustomerService

        service = self.node.services.instance("service_customer") \
            if self.node.services.installed("service_customer") else None
        if isinstance(service, CustomerService):
            service.strikes.record(idurl, kind, why)

    def _online(self, position: int) -> bool:
        """Whether the supplier at ``position`` is CONNECTED now: asked first when it is."""
        from bitdust.services.customer import CustomerService

        service = self.node.services.instance("service_customer") \
            if self.node.services.installed("service_customer") else None
        if not isinstance(service, CustomerService):
            return True
        connector = service.connectors.get(position)
        return connector is not None and connector.state == CONNECTED


def running_restores(node: Node, what: str) -> RestoresService:
    return node.services.running("service_restores", RestoresService, what, lambda s: s.jobs is not None)
