"""The queue of backup tasks and the jobs running them.

One job per item at a time, at most :data:`MAX_RUNNING` jobs at once (each holds its
window of blocks in memory); other tasks wait in the queue in the order they came, and
a task for an item that is queued already is not queued twice. When a job ends well,
versions of its item beyond ``services/backups/max-copies`` are deleted, oldest first.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from twisted.internet.defer import Deferred

from bitdust.storage.backups.io import Parts, RealJobIO, delete_remote
from bitdust.storage.backups.job import DONE, BackupJob, JobIO
from bitdust.storage.catalog.model import CatalogError
from bitdust.storage.ids import make_backup_id, new_version

log = logging.getLogger(__name__)

MAX_RUNNING = 1
MAX_QUEUED = 10_000
KEEP_FINISHED = 20


@dataclass
class Task:
    number: int
    path_id: str
    local_path: str
    created: float

    def as_api(self) -> dict[str, Any]:
        return {"created": time.asctime(time.localtime(self.created)), "id": self.number,
                "localpath": self.local_path, "pathid": self.path_id}


class BackupJobs:
    def __init__(self, parts: Callable[[], Parts], make_io: Callable[[Parts], JobIO] | None = None,
                 max_running: int = MAX_RUNNING) -> None:
        self._parts = parts
        self._make_io = make_io or RealJobIO
        self.max_running = max_running
        self.queue: list[Task] = []
        self.running: dict[str, BackupJob] = {}
        self.finished: list[tuple[str, str, str]] = []  # (backup ID, end state, error), newest last
        self._next_task = 1
        self._listeners: list[Callable[[BackupJob], None]] = []
        self._closed = False

    # -- what the API calls ----------------------------------------------------------------

    def add(self, path_id: str, local_path: str) -> Task:
        """Queue a backup of ``path_id`` (runs at once when nothing holds it back)."""
        for task in self.queue:
            if task.path_id == path_id:
                return task
        if len(self.queue) >= MAX_QUEUED:
            raise CatalogError(f"{MAX_QUEUED} backups are queued already; wait or cancel some")
        task = Task(self._next_task, path_id, local_path, time.time())
        self._next_task += 1
        self.queue.append(task)
        self.run_next()
        return task

    def cancel(self, path_id_or_number: str) -> Task:
        for task in self.queue:
            if task.path_id == path_id_or_number or str(task.number) == path_id_or_number:
                self.queue.remove(task)
                return task
        raise CatalogError(f"no pending backup of {path_id_or_number} in the queue")

    def job(self, backup_id: str) -> BackupJob:
        job = self.running.get(backup_id)
        if job is None:
            raise CatalogError(f"backup {backup_id} is not running")
        return job

    def running_for(self, path_id: str) -> BackupJob | None:
        return next((j for j in self.running.values() if j.path_id == path_id), None)

    def add_listener(self, listener: Callable[[BackupJob], None]) -> None:
        """``listener(job)`` after a job ended (DONE, FAILED or ABORTED)."""
        self._listeners.append(listener)

    def when_done(self, backup_id: str) -> Deferred[str]:
        return self.job(backup_id).finished

    # -- scheduling ----------------------------------------------------------------------------

    def run_next(self) -> None:
        if self._closed:
            return
        for task in list(self.queue):
            if len(self.running) >= self.max_running:
                return
            if self.running_for(task.path_id) is not None:
                continue
            self.queue.remove(task)
            try:
                self._start(task)
            except Exception as exc:  # the item vanished, or services went away: next task
                log.warning("backup of %s not started: %s", task.path_id, exc)
                self.finished.append((task.path_id, "FAILED", str(exc)))

    def _start(self, task: Task) -> BackupJob:
        parts = self._parts()
        item = parts.catalog.item(task.path_id)
        version = new_version(datetime.now(UTC), set(item.versions))
        backup_id = make_backup_id(item.path_id, version)
        job = BackupJob(parts.node.clock, parts.node.automats, self._make_io(parts), item.path_id, backup_id,
                        item.local_path)
        self.running[backup_id] = job
        job.finished.addCallback(self._ended, job)
        job.event("start")
        return job

    def _ended(self, state: str, job: BackupJob) -> str:
        self.running.pop(job.backup_id, None)
        self.finished.append((job.backup_id, state, job.error))
        del self.finished[:-KEEP_FINISHED]
        log.info("backup %s ended: %s %s", job.backup_id, state, job.error)
        if state == DONE:
            self._prune(job.path_id)
        for listener in list(self._listeners):
            listener(job)
        self.run_next()
        return state  # others wait on job.finished too

    def _prune(self, path_id: str) -> None:
        """Keep ``max-copies`` complete versions of the item; delete the older ones."""
        try:
            parts = self._parts()
            item = parts.catalog.item(path_id)
        except Exception as exc:
            log.info("max-copies of %s not checked: %s", path_id, exc)
            return
        keep = max(1, int(parts.node.config.get("services/backups/max-copies")))
        old = item.sorted_versions(complete_only=True)[:-keep]
        if not old:
            return
        gone = [where for v in old for where in v.storage_ids(path_id)]  # re-encoded generations too
        for version in old:
            parts.catalog.remove_version(make_backup_id(path_id, version.version))
        # pieces are deleted only once the catalog no longer lists them: never the other way
        parts.catalog.save().addCallback(lambda _: delete_remote(parts, gone)).addErrback(
            lambda f: log.info("older versions %s: %s (backup_monitor retries)", gone, f.getErrorMessage()))

    def close(self) -> list[Deferred[str]]:
        """Abort every running job and empty the queue; the Deferreds fire as jobs end."""
        self._closed = True
        self.queue.clear()
        endings = []
        for job in list(self.running.values()):
            endings.append(job.finished)
            job.abort()
        return endings
