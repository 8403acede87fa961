"""The read-only modes of the filemanager gate: stats, settings rows, local folders,
network views and debug information. See :mod:`bitdust.api.filemanager` for the table."""

from __future__ import annotations

import math
import os
import platform
import stat
import sys
import time
from contextlib import suppress
from pathlib import Path
from typing import TYPE_CHECKING, Any

import psutil
from twisted.internet.defer import Deferred
from twisted.internet.threads import deferToThreadPool

from bitdust import __version__
from bitdust.api.results import ApiError, ok
from bitdust.config import Config
from bitdust.services.service import ServiceUnavailable
from bitdust.util.units import format_size

if TYPE_CHECKING:
    from bitdust.node import Node

STATS_FIELDS = (
    "bytes_donated", "bytes_indexed", "bytes_needed", "bytes_used_supplier", "bytes_used_total", "customers",
    "files_count", "folders_count", "items_count", "max_suppliers", "online_suppliers", "suppliers",
    "timestamp", "value_donated", "value_needed", "value_used_total",
)
MAX_LOCAL_ENTRIES = 2000
"""listlocal stops there (and says ``truncated``): a page cannot show more usefully."""


def stats(node: Node, params: dict[str, Any]) -> dict[str, Any]:
    """The spec's figures, each from the running service that knows it (0 when that
    service is off, so a supplier-only node still gets a dashboard):

    * ``bytes_donated``: space offered to customers (service_supplier's store);
      ``value_donated`` the same, human-readable.
    * ``customers``: customers with a contract here (service_supplier).
    * ``bytes_needed``: services/customer/needed-space while service_customer runs;
      ``value_needed`` human-readable.
    * ``bytes_used_total``: bytes the current suppliers said they hold for us in their
      last ListFiles answers (space_consumed's ``used``); ``value_used_total`` readable.
    * ``bytes_used_supplier``: that total over the supplier count, rounded up (what one
      supplier holds on average, space_consumed's ``usedpersupplier``).
    * ``max_suppliers``: positions of the ecc map (suppliers wanted); ``suppliers``:
      positions with a hired supplier; ``online_suppliers``: those connected now.
    * ``items_count``: catalog items of every kind (parent folders too); ``files_count``:
      file items; ``folders_count``: folders added as a whole (``dir`` items);
      ``bytes_indexed``: local bytes the catalog covers, as ``list`` shows them: the sizes
      of the top-level items, a folder counting what is below it (service_backup_db).
    * ``timestamp``: when the figures were taken (epoch seconds).
    """
    donated = customers = needed = used = max_suppliers = hired = online = 0
    files = folders = items = indexed = 0
    with suppress(ServiceUnavailable):  # service_supplier off: nothing donated
        from bitdust.services.supplier import running_supplier

        store = running_supplier(node, "stats").running_store("stats")
        donated, customers = store.donated(), len(store.customers())
    with suppress(ServiceUnavailable):  # service_customer off: no suppliers
        from bitdust.services.customer import running_customer
        from bitdust.storage.customer.connector import CONNECTED

        customer = running_customer(node, "stats")
        suppliers = customer.running_list()
        needed = int(node.config.get("services/customer/needed-space"))
        max_suppliers = suppliers.size
        hired_ids = [idurl for idurl in suppliers.idurls() if idurl]
        hired = len(hired_ids)
        connectors = [c for c in customer.connectors.values() if c.idurl in hired_ids]
        used = sum(c.used_bytes or 0 for c in connectors)
        online = sum(1 for c in connectors if c.state == CONNECTED)
    with suppress(ServiceUnavailable):  # service_backup_db off: no catalog
        from bitdust.api.catalog_calls import running_catalog

        catalog = running_catalog(node, "stats")
        for item in catalog.items():
            items += 1
            if item.type.value == "file":
                files += 1
            elif item.type.value == "dir":
                folders += 1
            if item.parent_id is None:
                indexed += catalog.shown_size(item)
    figures = {
        "bytes_donated": donated, "bytes_indexed": indexed, "bytes_needed": needed,
        "bytes_used_supplier": math.ceil(used / max_suppliers) if max_suppliers else 0,
        "bytes_used_total": used, "customers": customers, "files_count": files, "folders_count": folders,
        "items_count": items, "max_suppliers": max_suppliers, "online_suppliers": online, "suppliers": hired,
        "timestamp": time.time(), "value_donated": format_size(donated), "value_needed": format_size(needed),
        "value_used_total": format_size(used),
    }
    assert tuple(sorted(figures)) == STATS_FIELDS
    return ok(figures)


def option_row(config: Config, key: str) -> dict[str, Any]:
    """What the settings view needs to show and edit one option."""
    option = config.option(key)
    row: dict[str, Any] = {**config.info(key).as_api(), "default": option.type.render(option.default),
                           "description": option.description}
    choices = getattr(option.type, "choices", None)
    if choices:
        row["choices"] = list(choices)
    return row


def listlocal(node: Node, params: dict[str, Any]) -> Deferred[dict[str, Any]]:
    """``{'path', 'parent', 'entries': [{'name', 'path', 'type': 'dir'|'file', 'size',
    'modified'}], 'truncated'}``: folders first, then by name; hidden entries included.
    Read in a worker thread (a folder can be large or on a slow disk)."""
    raw = params.get("path") or str(Path.home())
    if not isinstance(raw, str) or not os.path.isabs(raw) or "\x00" in raw:
        raise ApiError(f"filemanager listlocal: path must be an absolute path, not {raw!r}")
    folder = os.path.normpath(raw)
    reactor = node.reactor
    return deferToThreadPool(reactor, reactor.getThreadPool(), _read_folder, folder).addCallback(ok)


def _read_folder(folder: str) -> dict[str, Any]:
    entries: list[dict[str, Any]] = []
    truncated = False
    try:
        with os.scandir(folder) as found:
            for entry in found:
                if len(entries) >= MAX_LOCAL_ENTRIES:
                    truncated = True
                    break
                try:
                    info = entry.stat()
                except OSError:
                    continue
                kind = "dir" if stat.S_ISDIR(info.st_mode) else "file" if stat.S_ISREG(info.st_mode) else None
                if kind is None:
                    continue
                entries.append({"name": entry.name, "path": os.path.join(folder, entry.name), "type": kind,
                                "size": info.st_size if kind == "file" else 0, "modified": int(info.st_mtime)})
    except FileNotFoundError:
        raise ApiError(f"filemanager listlocal: {folder} does not exist") from None
    except NotADirectoryError:
        raise ApiError(f"filemanager listlocal: {folder} is not a folder") from None
    except PermissionError:
        raise ApiError(f"filemanager listlocal: {folder} cannot be read (permission denied)") from None
    entries.sort(key=lambda e: (e["type"] != "dir", e["name"].lower()))
    parent = os.path.dirname(folder)
    return {"path": folder, "parent": parent if parent != folder else None, "entries": entries,
            "truncated": truncated}


def packets(node: Node, params: dict[str, Any]) -> dict[str, Any]:
    from bitdust.services.gateway import running_gateway

    gateway = running_gateway(node, "filemanager packets")
    return ok({"stats": gateway.stats.as_api(), "packets": gateway.packet_log.as_api()})


def connections(node: Node, params: dict[str, Any]) -> dict[str, Any]:
    from bitdust.services.gateway import running_gateway

    return ok(running_gateway(node, "filemanager connections").connections(None))


def streams(node: Node, params: dict[str, Any]) -> dict[str, Any]:
    from bitdust.services.gateway import running_gateway

    return ok(running_gateway(node, "filemanager streams").streams(None))


def network_state(node: Node) -> str:
    """network_connector's state ('CONNECTED', 'DISCONNECTED'...), '' when it is off."""
    service: Any = node.services.instance("service_network") if node.services.installed("service_network") else None
    connector = getattr(service, "connector", None) if node.services.is_on("service_network") else None
    return str(connector.state) if connector is not None else ""


def debuginfo(node: Node, params: dict[str, Any]) -> dict[str, Any]:
    """What a bug report needs first, and what the dashboard shows besides the stats."""
    process = psutil.Process()
    identity = node.my_identity
    return ok({
        "version": __version__, "python": sys.version.split()[0], "platform": platform.platform(),
        "pid": os.getpid(), "uptime": round(time.time() - process.create_time(), 1),
        "memory_rss": process.memory_info().rss, "home": str(node.home.root),
        "idurl": identity.idurl if identity is not None else "",
        "network_state": network_state(node),
        "services": {row["name"]: row["state"] for row in node.services.all_info()},
        "automats": node.automats.as_api(),
    })
