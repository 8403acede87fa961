"""API calls of service_restores: ``restore_single``, ``restores_running``, ``restore_abort``.

Kept apart from ``methods.py`` so that file stays a table. ``restore_single`` answers
once the job has started (the spec: "downloading of version X has been started to Y"):
the target was found, its data key opened and the destination created, so a bad ID or
an unwritable destination is an ERROR right away; how the job ends is shown by
``restores_running`` (``done``, ``state``, ``errors``).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from twisted.internet.defer import inlineCallbacks

from bitdust.api.results import error, ok
from bitdust.services.restores import running_restores
from bitdust.storage.catalog.model import CatalogError
from bitdust.storage.restore.target import RestoreError
from bitdust.storage.restore.worker import RestoreWorker

if TYPE_CHECKING:
    from bitdust.node import Node


@inlineCallbacks
def restore_single(node: Node, what: Any, destination: Any = None) -> Any:
    service = running_restores(node, "restore_single")
    try:
        worker: RestoreWorker = yield service.restore(what, destination)
    except (RestoreError, CatalogError) as exc:
        return error(f"restore_single: {exc}")
    dest = worker.target.dest.rstrip("/") + "/"
    return ok(f"downloading of version {worker.target.backup_id} has been started to {dest}")


def restores_running(node: Node) -> dict[str, Any]:
    return ok(running_restores(node, "restores_running").running_jobs("restores_running").listing())


def restore_abort(node: Node, backup_id: Any) -> dict[str, Any]:
    jobs = running_restores(node, "restore_abort").running_jobs("restore_abort")
    if not isinstance(backup_id, str) or not backup_id:
        return error(f"restore_abort: expected a backup ID, got {backup_id!r}")
    try:
        worker = jobs.abort(backup_id)
    except RestoreError as exc:
        return error(f"restore_abort: {exc}")
    return ok(f"restoring of item {worker.target.backup_id} aborted")

