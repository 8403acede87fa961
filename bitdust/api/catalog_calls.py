"""API calls answered by the catalog (``service_backup_db``): listing and adding items.

Kept apart from ``methods.py`` so that file stays a table. Each call takes the node (for
its reactor and thread pool) and the running service's catalog. Checking a path, and
above all walking a folder, touches the disk and can take long, so that part runs in
the reactor's thread pool and only the (fast) change of the in-memory catalog runs on
the reactor thread, followed by an atomic save, so an answer of OK means the change is
on disk.

Results follow the spec word for word; where the spec is silent:

* Adding a path the catalog already holds is not an error: the answer says so and names
  the existing item (``file is already in the catalog: 0/0/3/0, ...``).
* Paths must be absolute (see :mod:`bitdust.storage.catalog.localpath` for why), valid
  UTF-8, without NUL bytes or ``..``; anything else is an ERROR saying what is wrong.
* ``backup_tree_add`` refuses a folder with more than a million entries as a whole, and
  appends to its answer how many entries it skipped (unreadable, special files, symlinks
  to folders, names that are not UTF-8).
* Only complete versions are listed, by ``backups_list`` as well as ``backups_id_list``:
  a version whose pieces are not all acknowledged cannot be restored yet
  (``backups_running`` shows those).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, TypeVar

from twisted.internet.defer import Deferred
from twisted.internet.threads import deferToThreadPool
from twisted.python.failure import Failure

from bitdust.api.results import error, ok
from bitdust.services.service import ServiceUnavailable
from bitdust.storage.catalog.localpath import LocalPath, TreeScan, check_local_path, measure_folder, scan_tree
from bitdust.storage.catalog.model import CatalogError, CatalogItem, ItemType, LocalPathError
from bitdust.storage.catalog.tree import Catalog
from bitdust.util.units import format_size

if TYPE_CHECKING:
    from bitdust.node import Node

log = logging.getLogger(__name__)

T = TypeVar("T")

MEASURE_LIMIT = 100_000
"""Entries counted when measuring a folder added as a whole (the answer waits for it)."""


def running_catalog(node: Node, method: str) -> Catalog:
    """The catalog of the running service_backup_db; ServiceUnavailable (an ERROR
    answer naming the service) otherwise."""
    from bitdust.services.backup_db import BackupDbService

    name = "service_backup_db"
    if not node.services.installed(name) or not node.services.is_on(name):
        raise ServiceUnavailable(f"{method} is not available: {name} is not running")
    service = node.services.instance(name)
    if not isinstance(service, BackupDbService) or not service.loaded:
        raise ServiceUnavailable(f"{method} is not available: {name} is not running")
    return service.catalog


def backups_list(node: Node, catalog: Catalog) -> dict[str, Any]:
    """``[{'path', 'versions': [{'version', 'blocks', 'size': '11 MB', 'redundancy'}], 'type', 'id',
    'size'}]`` in tree order; ``size`` of an item is in bytes, of a version human-readable.
    ``redundancy``: pieces the suppliers hold per block (index = block), 2N when whole, as
    last counted by backup_rebuilder (empty until it has counted; see
    :mod:`bitdust.storage.rebuild.plan`). ``eccmap``: the map the version is coded with now;
    ``reencoding``: ``""``, or ``"ecc/2x2 3/10"`` while it is being re-encoded to another
    map after ``suppliers-number`` changed (blocks done of all; see :mod:`bitdust.storage.reencode`)."""
    return ok([
        {
            "path": item.local_path,
            "versions": [
                {"version": v.version, "blocks": v.blocks, "size": format_size(v.size),
                 "redundancy": list(v.redundancy), "eccmap": v.ecc,
                 "reencoding": f"{v.reencode.ecc} {v.reencode.done}/{v.blocks}" if v.reencode is not None else ""}
                for v in item.sorted_versions(complete_only=True)
            ],
            "type": item.type.value,
            "id": item.path_id,
            "size": catalog.shown_size(item),
        }
        for item in catalog.items()
    ])


def backups_id_list(node: Node, catalog: Catalog) -> dict[str, Any]:
    """``[{'backupid', 'path', 'size': '8.27 MB'}]``: complete versions only."""
    return ok([
        {"backupid": f"{item.path_id}/{v.version}", "path": item.local_path, "size": format_size(v.size)}
        for item, v in catalog.complete_backups()
    ])


def backup_map_path(node: Node, catalog: Catalog, path: Any) -> Deferred[dict[str, Any]]:
    """``{'result': ['new file was added: 1, local path is ...'], 'id': '1', 'type': 'file'}``."""

    def apply(local: LocalPath) -> dict[str, Any]:
        item, created = catalog.map_path(local)
        return ok([_added(item, created)], id=item.path_id, type=item.type.value)

    return _run(node, catalog, "backup_map_path", lambda: _measured(check_local_path(path)), apply)


def backup_dir_add(node: Node, catalog: Catalog, dirpath: Any) -> Deferred[dict[str, Any]]:
    """``'new folder was added: 0/0/2, local path is /Users/veselin/Movies'``."""

    def apply(local: LocalPath) -> dict[str, Any]:
        item, created = catalog.add_path(local)
        return ok(_added(item, created))

    return _run(node, catalog, "backup_dir_add", lambda: _measured(_mirrorable_dir(dirpath)), apply)


def backup_file_add(node: Node, catalog: Catalog, filepath: Any) -> Deferred[dict[str, Any]]:
    """``'new file was added: 0/0/3/0, local path is /Users/veselin/Downloads/...'``."""

    def apply(local: LocalPath) -> dict[str, Any]:
        item, created = catalog.add_path(local)
        return ok(_added(item, created))

    return _run(node, catalog, "backup_file_add", lambda: check_local_path(filepath, ItemType.FILE), apply)


def backup_tree_add(node: Node, catalog: Catalog, dirpath: Any) -> Deferred[dict[str, Any]]:
    """``'21 items were added to catalog, parent path ID is 0/0/1/2, root folder is ...'``."""

    def apply(scan: TreeScan) -> dict[str, Any]:
        root, created, conflicts = catalog.add_tree(scan)
        text = f"{created} items were added to catalog, parent path ID is {root.path_id}, " \
               f"root folder is {root.local_path}"
        if scan.skipped:
            text += f"; {scan.skipped} entries were skipped (unreadable, special files, symlinks " \
                    "to folders, or names that are not UTF-8)"
            log.info("backup_tree_add %s skipped %d entries, e.g. %s", root.local_path, scan.skipped,
                     "; ".join(scan.skipped_examples))
        if conflicts:
            text += f"; {conflicts} entries were not added because the catalog holds a file where " \
                    "there is now a folder (or the reverse), or they are nested too deep"
        return ok(text)

    return _run(node, catalog, "backup_tree_add", lambda: scan_tree(_mirrorable_dir(dirpath)), apply)


# -- helpers ----------------------------------------------------------------------------


def _added(item: CatalogItem, created: bool) -> str:
    kind = "file" if item.type is ItemType.FILE else "folder"
    if created:
        return f"new {kind} was added: {item.path_id}, local path is {item.local_path}"
    return f"{kind} is already in the catalog: {item.path_id}, local path is {item.local_path}"


def _mirrorable_dir(dirpath: Any) -> LocalPath:
    """Refuses ``/`` before anything walks it (the catalog would refuse it anyway)."""
    local = check_local_path(dirpath, ItemType.DIR)
    if not local.parts:
        raise LocalPathError("the root folder / cannot become a catalog folder; use backup_map_path for it")
    return local


def _measured(local: LocalPath) -> LocalPath:
    """A folder's size, for ``backups_list`` (a file's comes with the check). Only a
    first figure, so the walk is capped; a complete backup records the real size."""
    if local.type is ItemType.DIR:
        return LocalPath(local.path, local.type, measure_folder(local.path, MEASURE_LIMIT))
    return local


def _run(node: Node, catalog: Catalog, method: str, check: Callable[[], T],
         apply: Callable[[T], dict[str, Any]]) -> Deferred[dict[str, Any]]:
    """``check`` in a worker thread, then ``apply`` on the reactor thread; the answer
    comes once the change is saved. A refused path or change becomes an ERROR answer."""
    reactor = node.reactor
    checking: Deferred[T] = deferToThreadPool(reactor, reactor.getThreadPool(), check)

    def changed(value: T) -> Deferred[dict[str, Any]]:
        answer = apply(value)

        def not_saved(failure: Failure) -> dict[str, Any]:
            failure.trap(OSError)
            exc = failure.value
            log.error("%s: the catalog could not be saved: %s", method, exc)
            return error(f"{method}: the change was made but the catalog could not be saved: "
                         f"{getattr(exc, 'strerror', None) or exc}; it will be saved with the next change")

        return catalog.save().addCallbacks(lambda _: answer, not_saved)

    def refused(failure: Any) -> dict[str, Any]:
        failure.trap(CatalogError)
        return error(str(failure.value))

    return checking.addCallback(changed).addErrback(refused)
