"""The GUI's gate: ``filemanager({"params": {"mode": ..., ...}})`` and ``filemanager_<mode>()``.

The page talks to the daemon only through this gate and the plain JSON-RPC calls, so
every mode answers in the API's usual ``{'status': 'OK', 'result': ...}`` /
``{'status': 'ERROR', 'errors': [...]}`` shapes and reuses the calls the CLI uses (one
behaviour, one set of tests). Parameters, by mode:

============== ============================ ================================================
mode           params                       result
============== ============================ ================================================
stats          --                           the spec's 16 figures (:mod:`.filemanager_info`)
config         [key [, value]]              every option with type, value, default,
                                            description (choices for a combo); with
                                            ``key`` the options below it; with ``value``
                                            the change (``config_set``'s answer)
list           --                           catalog items (tree order) with their complete
                                            versions: what can be restored
listall        --                           the same with versions still in progress
listlocal      [path]                       a local folder's entries (default: the home
                                            folder of the daemon's user); absolute only
upload         path                         ``backup_start_path(path)``
delete         id | path                    ``backup_delete_id(id)``/``backup_delete_path``
deleteversion  backup_id                    ``backup_delete_id(backup_id)`` of one version
download       id [, dest]                  ``restore_single(id, dest)``: a path or backup ID
tasks          --                           running and queued backups, restores, progress
packets        --                           ``{'stats': packets_stats, 'packets': [...]}``
connections    --                           ``connections_list()``
streams        --                           ``streams_list()``
debuginfo      --                           process, services and automats in one answer
============== ============================ ================================================

A missing or ill-typed param is an ERROR naming it; a mode whose service is off answers
the same ``... is not available: service_x is not running`` ERROR as the rest of the API.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from types import MappingProxyType
from typing import TYPE_CHECKING, Any

from twisted.internet.defer import inlineCallbacks

from bitdust.api import filemanager_info as info
from bitdust.api.results import ApiError, ok
from bitdust.config import views as config_views
from bitdust.storage.catalog.index import CatalogIndex
from bitdust.storage.catalog.model import CatalogItem
from bitdust.storage.ids import is_backup_id
from bitdust.util.units import format_size

if TYPE_CHECKING:
    from bitdust.node import Node

Params = dict[str, Any]


def dispatch(node: Node, json_request: Any) -> Any:
    request = json_request
    if isinstance(request, str):
        try:
            request = json.loads(request)
        except ValueError as exc:
            raise ApiError(f"filemanager: json_request is not JSON: {exc}") from None
    params = request.get("params") if isinstance(request, dict) else None
    mode = params.get("mode") if isinstance(params, dict) else None
    if not isinstance(params, dict) or not isinstance(mode, str):
        raise ApiError('filemanager: expected {"params": {"mode": ...}}')
    handler = MODES.get(mode)
    if handler is None:
        raise ApiError(f"filemanager: unknown mode {mode!r}; modes are {', '.join(MODES)}")
    return handler(node, params)


def text_param(params: Params, name: str, mode: str, required: bool = True) -> str | None:
    value = params.get(name)
    if value is None or value == "":
        if required:
            raise ApiError(f"filemanager {mode}: missing param {name!r}")
        return None
    if not isinstance(value, str):
        raise ApiError(f"filemanager {mode}: param {name!r} must be text, not {type(value).__name__}")
    return value


# -- catalog --------------------------------------------------------------------------


def _item_row(catalog: CatalogIndex, item: CatalogItem, complete_only: bool) -> dict[str, Any]:
    """``redundancy`` per block as backup_rebuilder last counted it (2N = whole; empty
    until counted); ``redundancy_min`` the weakest block (None until counted)."""
    versions = []
    for v in item.sorted_versions(complete_only=complete_only):
        versions.append({
            "version": v.version, "backupid": f"{item.path_id}/{v.version}", "blocks": v.blocks,
            "size": v.size, "size_str": format_size(v.size), "source_size": v.source_size, "ecc": v.ecc,
            "complete": v.complete, "redundancy": list(v.redundancy),
            "redundancy_min": min(v.redundancy) if v.redundancy else None,
        })
    return {"id": item.path_id, "parent": item.parent_id, "name": item.name, "path": item.local_path,
            "type": item.type.value, "size": catalog.shown_size(item), "versions": versions}


def _listing(complete_only: bool, mode: str) -> Callable[[Node, Params], dict[str, Any]]:
    def handler(node: Node, params: Params) -> dict[str, Any]:
        from bitdust.api.catalog_calls import running_catalog

        catalog = running_catalog(node, f"filemanager {mode}")
        return ok([_item_row(catalog, item, complete_only) for item in catalog.items()])

    return handler


def _upload(node: Node, params: Params) -> Any:
    from bitdust.api import backup_calls

    return backup_calls.backup_start_path(node, text_param(params, "path", "upload"), True)


def _delete(node: Node, params: Params) -> Any:
    from bitdust.api import backup_calls

    path_id = text_param(params, "id", "delete", required=False)
    if path_id is not None:
        if is_backup_id(path_id):
            raise ApiError(f"filemanager delete: {path_id} is a version; use mode deleteversion for it")
        return backup_calls.backup_delete_id(node, path_id)
    local = text_param(params, "path", "delete", required=False)
    if local is None:
        raise ApiError("filemanager delete: missing param 'id' (or 'path')")
    return backup_calls.backup_delete_path(node, local)


def _delete_version(node: Node, params: Params) -> Any:
    from bitdust.api import backup_calls

    backup_id = text_param(params, "backup_id", "deleteversion")
    if not is_backup_id(backup_id):
        raise ApiError(f"filemanager deleteversion: {backup_id!r} is not a backup ID like 0/1/F20240101120000AM")
    return backup_calls.backup_delete_id(node, backup_id)


def _download(node: Node, params: Params) -> Any:
    from bitdust.api import restore_calls

    what = text_param(params, "id", "download")
    return restore_calls.restore_single(node, what, text_param(params, "dest", "download", required=False))


# -- settings -------------------------------------------------------------------------------


@inlineCallbacks
def _config(node: Node, params: Params) -> Any:
    key = text_param(params, "key", "config", required=False)
    if key is not None and "value" in params:
        changed = config_views.change(node.config, key, params["value"])
        yield node.services.idle()
        return ok(changed)
    keys = [k for k in sorted(node.config.keys()) if key is None or k == key.strip("/")
            or k.startswith(key.strip("/") + "/")]
    if not keys:
        raise ApiError(f"filemanager config: unknown option {key!r}")
    return ok([info.option_row(node.config, k) for k in keys])


# -- tasks ----------------------------------------------------------------------------------


def _tasks(node: Node, params: Params) -> dict[str, Any]:
    """Backups running (with progress), queued and recently ended (progress 100 when
    DONE), and restores (running and recently ended). Each part is empty when its
    service is off; both off is the usual ERROR."""
    from bitdust.services.backups import running_backups
    from bitdust.services.restores import running_restores
    from bitdust.services.service import ServiceUnavailable

    result: dict[str, Any] = {"backups": [], "queue": [], "finished": [], "restores": []}
    missing = []
    try:
        jobs = running_backups(node, "filemanager tasks").running_jobs("filemanager tasks")
        result["backups"] = [job.progress() for job in jobs.running.values()]
        result["queue"] = [task.as_api() for task in jobs.queue]
        result["finished"] = [{"backupid": backup_id, "state": state, "error": err,
                               "progress": 100.0 if state == "DONE" else None}
                              for backup_id, state, err in reversed(jobs.finished)]
    except ServiceUnavailable as exc:
        missing.append(str(exc))
    try:
        result["restores"] = running_restores(node, "filemanager tasks").running_jobs(
            "filemanager tasks").listing()
    except ServiceUnavailable as exc:
        missing.append(str(exc))
    if len(missing) == 2:
        raise ApiError(missing[0])
    return ok(result)


MODES: Mapping[str, Callable[[Node, Params], Any]] = MappingProxyType({
    "stats": info.stats,
    "config": _config,
    "list": _listing(True, "list"),
    "listlocal": info.listlocal,
    "listall": _listing(False, "listall"),
    "upload": _upload,
    "delete": _delete,
    "deleteversion": _delete_version,
    "download": _download,
    "tasks": _tasks,
    "packets": info.packets,
    "connections": info.connections,
    "streams": info.streams,
    "debuginfo": info.debuginfo,
})


def modes() -> tuple[str, ...]:
    return tuple(MODES)

