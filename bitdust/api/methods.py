"""The method table of the JSON-RPC API: every call of the spec, by name.

Methods return ``ok(...)``/``error(...)`` dicts (or Deferreds of them); any exception
becomes an ERROR answer in the server. Calls whose subsystem is not built yet come from
:mod:`bitdust.api.unbuilt`.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import psutil
from twisted.internet.defer import Deferred, inlineCallbacks
from twisted.internet.threads import deferToThreadPool

from bitdust.api.results import ApiError, error, ok
from bitdust.api.unbuilt import UNBUILT, make_unbuilt
from bitdust.config import views as config_views
from bitdust.services.service import ServiceUnavailable
from bitdust.util.fs import folder_size
from bitdust.util.units import format_size, percent

if TYPE_CHECKING:
    from bitdust.automats.network_connector import NetworkConnector
    from bitdust.node import Node

log = logging.getLogger(__name__)

FILEMANAGER_MODES = (
    "stats", "config", "list", "listlocal", "listall", "upload", "delete", "deleteversion",
    "download", "tasks", "packets", "connections", "streams", "debuginfo",
)

EXIT_DELAY = 0.1
"""Seconds between answering stop()/restart() and acting, so the answer reaches the client."""

_IMPLEMENTED = (
    "stop", "restart", "reconnect", "show", "config_get", "config_set", "config_list", "filemanager",
    "automats_list", "services_list", "service_info", "service_start", "service_stop", "space_local",
)


class ApiMethods:
    def __init__(self, node: Node) -> None:
        self.node = node
        self._table: dict[str, Callable[..., Any]] = {name: getattr(self, name) for name in _IMPLEMENTED}
        for name, params, service in UNBUILT:
            self._table[name] = make_unbuilt(name, params, service, node.services.installed)
        for mode in FILEMANAGER_MODES:
            self._table["filemanager_" + mode] = self._filemanager_alias(mode)

    def lookup(self, name: str) -> Callable[..., Any] | None:
        return self._table.get(name)

    def names(self) -> list[str]:
        return sorted(self._table)

    # -- process ------------------------------------------------------------------

    def stop(self) -> dict[str, Any]:
        self.node.reactor.callLater(EXIT_DELAY, self.node.request_exit, False)
        return ok("stopped")

    def restart(self, showgui: bool = False) -> dict[str, Any]:
        if showgui:
            return error("restart(showgui=True) is not available: the browser GUI is not built yet")
        self.node.reactor.callLater(EXIT_DELAY, self.node.request_exit, True)
        return ok("restarted")

    def reconnect(self) -> dict[str, Any]:
        connector = self._network_connector()
        connector.event("reconnect")
        return ok(f"reconnect event has been sent to network_connector, now {connector.state}")

    def show(self) -> dict[str, Any]:
        return error("show is not available: the browser GUI is not built yet")

    def _network_connector(self) -> NetworkConnector:
        from bitdust.services.network import NetworkService

        service = self.node.services.instance("service_network")
        if not self.node.services.is_on("service_network") or not isinstance(service, NetworkService) \
                or service.connector is None:
            raise ServiceUnavailable("reconnect is not available: service_network is not running")
        return service.connector

    # -- config -------------------------------------------------------------------

    def config_get(self, key: str, default: Any = None) -> dict[str, Any]:
        """``default`` is accepted as in the original API; every option has its own
        default, so an unknown key is an ERROR rather than an invented value. A folder
        key (``services/backups``) returns every option below it."""
        return ok(config_views.describe(self.node.config, key))

    def config_set(self, key: str, value: Any) -> dict[str, Any]:
        return ok(config_views.change(self.node.config, key, value))

    def config_list(self, sort: bool = False) -> dict[str, Any]:
        return ok(config_views.listing(self.node.config, bool(sort)))

    # -- automats and services -----------------------------------------------------

    def automats_list(self) -> dict[str, Any]:
        return ok(self.node.automats.as_api())

    def services_list(self) -> dict[str, Any]:
        return ok(self.node.services.all_info())

    def service_info(self, service_name: str) -> dict[str, Any]:
        return ok([self.node.services.info(service_name)])

    @inlineCallbacks
    def service_start(self, service_name: str) -> Any:
        driver = self.node.services
        name = driver.resolve(service_name)
        yield driver.start_service(name)
        info = driver.info(name)
        if info["state"] != "ON":
            return error(f"{name} did not start: {info.get('error', 'state is ' + info['state'])}")
        return ok(f"{name} was switched on")

    @inlineCallbacks
    def service_stop(self, service_name: str) -> Any:
        driver = self.node.services
        name = driver.resolve(service_name)
        yield driver.stop_service(name)
        return ok(f"{name} was switched off")

    # -- space ----------------------------------------------------------------------

    def space_local(self) -> Deferred[dict[str, Any]]:
        """Disk figures of the filesystem that holds the home folder; folder sizes are
        summed in a thread since a supplier's customers folder can be large."""
        home = self.node.home
        reactor = self.node.reactor

        def measure() -> dict[str, Any]:
            disk = psutil.disk_usage(str(home.root))
            backups = folder_size(home.backups)
            customers = folder_size(home.customers)
            temp = folder_size(home.temp)
            total = folder_size(home.root)
            return {
                "backups": backups, "backupsstr": format_size(backups),
                "customers": customers, "customersstr": format_size(customers),
                "diskfree": disk.free, "diskfreepercent": percent(disk.free, disk.total),
                "diskfreestr": format_size(disk.free),
                "disktotal": disk.total, "disktotalstr": format_size(disk.total),
                "temp": temp, "tempstr": format_size(temp),
                "total": total, "totalpercent": percent(total, disk.total), "totalstr": format_size(total),
            }

        return deferToThreadPool(reactor, reactor.getThreadPool(), measure).addCallback(lambda r: ok([r]))

    # -- GUI gate ---------------------------------------------------------------------

    def filemanager(self, json_request: Any) -> dict[str, Any]:
        request = json_request
        if isinstance(request, str):
            try:
                request = json.loads(request)
            except ValueError as exc:
                raise ApiError(f"filemanager: json_request is not JSON: {exc}") from None
        params = request.get("params") if isinstance(request, dict) else None
        mode = params.get("mode") if isinstance(params, dict) else None
        if not isinstance(mode, str):
            raise ApiError('filemanager: expected {"params": {"mode": ...}}')
        if mode not in FILEMANAGER_MODES:
            raise ApiError(f"filemanager: unknown mode {mode!r}; modes are {', '.join(FILEMANAGER_MODES)}")
        return error(f"filemanager mode {mode!r} is not available: the GUI gate is not built yet")

    def _filemanager_alias(self, mode: str) -> Callable[..., dict[str, Any]]:
        def alias(**params: Any) -> dict[str, Any]:
            return self.filemanager({"params": {**params, "mode": mode}})

        alias.__name__ = "filemanager_" + mode
        return alias
