"""API calls of backup jobs (``service_backups``): start, watch, cancel, abort, delete.

Kept apart from ``methods.py`` so that file stays a table. Answers follow the spec word
for word; where it is silent:

* ``backup_start_id``/``backup_start_path`` answer once the task is queued; the job
  itself waits (at most a minute) until every supplier position has a connected
  supplier, then runs. A task for an item already queued is not queued twice.
* ``backup_abort_running`` answers once the job has ended: its partial pieces were
  deleted from the suppliers and the version is gone from the catalog.
* Deleting (``backup_delete_id``, ``backup_delete_path``) takes the versions out of the
  catalog first, then asks every supplier to delete them; a supplier that does not
  confirm is named in the answer, and backup_monitor deletes the leftovers on its next
  check. An item with a running job has it aborted first.
* Bad input (a malformed or unknown ID, a path that does not exist or cannot be read)
  is an ERROR saying so; the catalog is left as it was.
"""

from __future__ import annotations

import logging
from collections.abc import Generator
from typing import TYPE_CHECKING, Any

from twisted.internet.defer import DeferredList, inlineCallbacks

from bitdust.api.results import error, ok
from bitdust.services.backups import BackupsService, running_backups
from bitdust.storage.backups.io import Parts, delete_remote, local_files
from bitdust.storage.catalog.localpath import check_local_path, normalize_local_path
from bitdust.storage.catalog.model import CatalogError, CatalogItem, ItemType
from bitdust.storage.ids import IdError, is_backup_id, make_backup_id, parse_backup_id, parse_path_id
from bitdust.storage.supplier import disk
from bitdust.util.units import format_size

if TYPE_CHECKING:
    from bitdust.node import Node

log = logging.getLogger(__name__)


def _service(node: Node, method: str) -> tuple[BackupsService, Parts]:
    service = running_backups(node, method)
    return service, service.parts()


def backups_update(node: Node) -> dict[str, Any]:
    service, _parts = _service(node, "backups_update")
    if service.monitor is not None:
        service.monitor.restart()
    return ok("the main loop has been restarted")


def backups_queue(node: Node) -> dict[str, Any]:
    service, _parts = _service(node, "backups_queue")
    return ok([task.as_api() for task in service.running_jobs("backups_queue").queue])


def backups_running(node: Node) -> dict[str, Any]:
    service, _parts = _service(node, "backups_running")
    return ok([job.progress() for job in service.running_jobs("backups_running").running.values()])


def backup_cancel_pending(node: Node, path_id: Any) -> dict[str, Any]:
    service, _parts = _service(node, "backup_cancel_pending")
    try:
        task = service.running_jobs("backup_cancel_pending").cancel(str(path_id))
    except CatalogError as exc:
        return error(str(exc))
    return ok(f"item {task.path_id} cancelled")


@inlineCallbacks
def backup_abort_running(node: Node, backup_id: Any) -> Generator[Any, Any, dict[str, Any]]:
    service, _parts = _service(node, "backup_abort_running")
    try:
        job = service.running_jobs("backup_abort_running").job(parse_backup_id(backup_id))
    except (IdError, CatalogError) as exc:
        return error(str(exc))
    job.abort()
    yield job.finished
    return ok(f"backup {job.backup_id} aborted")


@inlineCallbacks
def backup_start_id(node: Node, path_id: Any) -> Generator[Any, Any, dict[str, Any]]:
    service, parts = _service(node, "backup_start_id")
    try:
        item = parts.catalog.item(parse_path_id(path_id))
    except (IdError, CatalogError) as exc:
        return error(f"backup_start_id: {exc}")
    if item.type is ItemType.PARENT:
        return error(f"item {item.path_id} is a parent folder; add it with backup_dir_add to back it up as a whole")
    try:
        yield parts.worker.run(check_local_path, item.local_path, None if item.is_folder else ItemType.FILE)
    except CatalogError as exc:
        return error(f"backup_start_id: {exc}")
    jobs = service.running_jobs("backup_start_id")
    jobs.add(item.path_id, item.local_path)
    return ok(f"uploading {item.path_id} {_started(service, item.path_id)}, local path is: {item.local_path}")


@inlineCallbacks
def backup_start_path(node: Node, path: Any, bind_local_path: Any = True) -> Generator[Any, Any, dict[str, Any]]:
    service, parts = _service(node, "backup_start_path")
    try:
        local = yield parts.worker.run(check_local_path, path)
    except CatalogError as exc:
        return error(f"backup_start_path: {exc}")
    catalog = parts.catalog
    try:
        item, _created = catalog.map_path(local) if bind_local_path else catalog.add_path(local)
    except CatalogError as exc:
        return error(f"backup_start_path: {exc}")
    yield catalog.save()
    service.running_jobs("backup_start_path").add(item.path_id, item.local_path)
    return ok(f"uploading of item {item.path_id} {_started(service, item.path_id)}, local path is: "
              f"{item.local_path}", id=item.path_id, type=item.type.value)


def _started(service: BackupsService, path_id: str) -> str:
    jobs = service.jobs
    return "started" if jobs is not None and jobs.running_for(path_id) is not None else "queued"


@inlineCallbacks
def backup_delete_local(node: Node, backup_id: Any) -> Generator[Any, Any, dict[str, Any]]:
    parts = _service(node, "backup_delete_local")[1]
    try:
        ids = [parse_backup_id(backup_id)] if is_backup_id(backup_id) else \
            [make_backup_id(parse_path_id(backup_id), v) for v in parts.catalog.item(parse_path_id(backup_id)).versions]
    except (IdError, CatalogError) as exc:
        return error(f"backup_delete_local: {exc}")
    count, size = yield parts.worker.run(local_files, parts.local_root, ids)
    yield parts.worker.run(disk.delete_backups, parts.local_root, ids)
    return ok(f"{count} files were removed with total size of {format_size(size)}")


@inlineCallbacks
def backup_delete_id(node: Node, path_id_or_backup_id: Any) -> Generator[Any, Any, dict[str, Any]]:
    service, parts = _service(node, "backup_delete_id")
    try:
        if is_backup_id(path_id_or_backup_id):
            backup_id = parse_backup_id(path_id_or_backup_id)
            parts.catalog.version(backup_id)
        else:
            item = parts.catalog.item(parse_path_id(path_id_or_backup_id))
    except (IdError, CatalogError) as exc:
        return error(f"backup_delete_id: {exc}")
    if is_backup_id(path_id_or_backup_id):
        job = service.jobs.running.get(backup_id) if service.jobs is not None else None
        if job is not None:
            job.abort()
            yield job.finished
            return ok(f"version {backup_id} was deleted from remote peers")
        try:
            gone = parts.catalog.remove_version(backup_id)
        except CatalogError as exc:
            return error(f"backup_delete_id: {exc}")
        yield parts.catalog.save()
        note = yield _delete_remote(parts, gone.storage_ids(backup_id.rpartition("/")[0]))  # re-encoded ones too
        return ok(f"version {backup_id} was deleted from remote peers{note}")
    note = yield _delete_items(service, parts, [item])
    return ok(f"item {item.path_id} was deleted from remote peers{note}")


@inlineCallbacks
def backup_delete_path(node: Node, local_path: Any) -> Generator[Any, Any, dict[str, Any]]:
    service, parts = _service(node, "backup_delete_path")
    try:
        items = parts.catalog.find_local(normalize_local_path(local_path))
    except CatalogError as exc:
        return error(f"backup_delete_path: {exc}")
    if not items:
        return error(f"backup_delete_path: {local_path} is not in the catalog")
    note = yield _delete_items(service, parts, items)
    return ok(f"item {', '.join(i.path_id for i in items)} was deleted from remote peers{note}")


@inlineCallbacks
def _delete_items(service: BackupsService, parts: Parts, items: list[CatalogItem]) -> Generator[Any, Any, str]:
    """Abort their jobs, drop their queued tasks, remove them (and what is below) from
    the catalog, delete every version everywhere."""
    catalog = parts.catalog
    jobs = service.running_jobs("deleting")
    doomed = {i.path_id for item in items for i in _below(item)}
    for task in [t for t in jobs.queue if t.path_id in doomed]:
        jobs.queue.remove(task)
    running = [j for j in jobs.running.values() if j.path_id in doomed]
    for job in running:
        job.abort()
    if running:
        yield DeferredList([j.finished for j in running], consumeErrors=True)
    backup_ids = []
    for item in items:
        if catalog.get(item.path_id) is None:
            continue  # below another item of the list, gone with it
        for gone in catalog.remove_item(item.path_id):
            backup_ids += [where for v in gone.versions.values() for where in v.storage_ids(gone.path_id)]
    yield catalog.save()
    note = yield _delete_remote(parts, backup_ids)
    return note


def _below(item: CatalogItem) -> list[CatalogItem]:
    found, stack = [], [item]
    while stack:
        current = stack.pop()
        found.append(current)
        stack.extend(current.children.values())
    return found


@inlineCallbacks
def _delete_remote(parts: Parts, backup_ids: list[str]) -> Generator[Any, Any, str]:
    try:
        yield delete_remote(parts, backup_ids)
    except Exception as exc:  # the catalog is already right; say what is left to the monitor
        log.info("deleting %s: %s", backup_ids, exc)
        return f"; {exc} (backup_monitor deletes the rest later)"
    return ""


