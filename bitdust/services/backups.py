"""service_backups: backup jobs (:mod:`bitdust.storage.backups.jobs`) and backup_monitor.

Needs the catalog (service_backup_db), data motion, the ECC worker and the customer;
service_rebuilding regenerates what local copies cannot give back. Stopping aborts the
running jobs (their partial pieces are deleted, no half version stays) and waits for
them, at most :data:`STOP_WAIT_SECONDS`.

It also runs the re-encoder (:mod:`bitdust.storage.reencode`): when
``services/customer/suppliers-number`` changes, stored versions are coded again with the
new map in the background; it needs exactly what backup jobs need, so it lives here
rather than in a service of its own.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

from twisted.internet.defer import Deferred, DeferredList, maybeDeferred, succeed

from bitdust.services.backup_db import running_backup_db
from bitdust.services.customer import running_customer
from bitdust.services.data_disintegration import running_worker
from bitdust.services.data_motion import running_motion
from bitdust.services.list_files import running_list_files
from bitdust.services.service import Service, ServiceUnavailable
from bitdust.storage.backups.io import Parts
from bitdust.storage.backups.job import BackupJob
from bitdust.storage.backups.jobs import BackupJobs
from bitdust.storage.backups.monitor import BackupMonitor
from bitdust.storage.reencode.env import NodeReencodeEnv
from bitdust.storage.reencode.reencoder import Reencoder

if TYPE_CHECKING:
    from bitdust.node import Node

log = logging.getLogger(__name__)

STOP_WAIT_SECONDS = 60.0


class BackupsService(Service):
    name = "service_backups"

    def __init__(self, node: Node) -> None:
        super().__init__(node)
        self.jobs: BackupJobs | None = None
        self.monitor: BackupMonitor | None = None
        self.reencoder: Reencoder | None = None
        self._config_listener = self._on_config_change

    def start(self) -> Deferred[None]:
        return maybeDeferred(self._start)

    def _start(self) -> None:
        self.parts()  # everything it needs is running, or the start fails saying what is not
        self.jobs = BackupJobs(self.parts)
        self.jobs.add_listener(self._job_ended)
        self.monitor = BackupMonitor(self.node.clock, self.node.automats, self.parts,
                                     lambda: running_list_files(self.node, self.name), self._busy_versions,
                                     self._ask_rebuilder, self._may_collect)
        self.monitor.event("init")
        self.monitor.restart()
        self.reencoder = Reencoder(self.node.clock, NodeReencodeEnv(self.node, self.name))
        self.reencoder.start()
        self.node.config.listen("services/customer/", self._config_listener)

    def stop(self) -> Deferred[None]:
        self.node.config.unlisten(self._config_listener)
        monitor, self.monitor = self.monitor, None
        if monitor is not None:
            monitor.event("shutdown")
        reencoder, self.reencoder = self.reencoder, None
        endings = [reencoder.stop()] if reencoder is not None else []
        jobs, self.jobs = self.jobs, None
        if jobs is None and not endings:
            return succeed(None)
        endings += jobs.close() if jobs is not None else []
        if not endings:
            return succeed(None)
        waiting = DeferredList(endings, consumeErrors=True).addTimeout(STOP_WAIT_SECONDS, self.node.clock)
        return waiting.addBoth(lambda _r: None)

    def parts(self) -> Parts:
        node = self.node
        return Parts(node, running_backup_db(node, self.name).catalog, running_motion(node, self.name),
                     running_worker(node, self.name), running_customer(node, self.name))

    def running_jobs(self, what: str) -> BackupJobs:
        if self.jobs is None:
            raise ServiceUnavailable(f"{what} is not available: service_backups is not running")
        return self.jobs

    def _busy_versions(self) -> set[str]:
        return set(self.jobs.running) if self.jobs is not None else set()

    def _may_collect(self) -> bool:
        try:
            copier = running_backup_db(self.node, self.name).copier
        except ServiceUnavailable:
            return False
        return copier is not None and copier.last_version is not None

    def _ask_rebuilder(self) -> None:
        service = self.node.services.instance("service_rebuilding") \
            if self.node.services.installed("service_rebuilding") else None
        rebuilder: Any = getattr(service, "rebuilder", None)
        if rebuilder is not None and self.node.services.is_on("service_rebuilding"):
            rebuilder.event("check")

    def _on_config_change(self, key: str, _old: Any, _new: Any) -> None:
        if key == "services/customer/suppliers-number" and self.reencoder is not None:
            reencoder = self.reencoder
            self.node.clock.callLater(0, reencoder.kick)  # after the customer resized its list

    def _job_ended(self, job: BackupJob) -> None:
        if self.monitor is not None and job.state != "DONE":
            self.monitor.restart()  # collects what an aborted job left behind


def running_backups(node: Node, what: str) -> BackupsService:
    return node.services.running("service_backups", BackupsService, what, lambda s: s.jobs is not None)
