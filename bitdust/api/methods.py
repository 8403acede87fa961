"""The method table of the JSON-RPC API: every call of the spec, by name.

Methods return ``ok(...)``/``error(...)`` dicts (or Deferreds of them); any exception
becomes an ERROR answer in the server. Calls whose subsystem is not built yet come from
:mod:`bitdust.api.unbuilt`.
"""

from __future__ import annotations

import inspect
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
    "identity_get", "identity_create",
    "packets_stats", "packets_list", "connections_list", "streams_list",
    "set_my_nickname", "find_peer_by_nickname",
)


class ApiMethods:
    def __init__(self, node: Node) -> None:
        self.node = node
        self._table: dict[str, Callable[..., Any]] = {name: getattr(self, name) for name in _IMPLEMENTED}
        self._signatures: dict[str, inspect.Signature] = {}
        for name, params, service in UNBUILT:
            self._table[name] = make_unbuilt(name, params, service, node.services.installed)
        for mode in FILEMANAGER_MODES:
            self._table["filemanager_" + mode] = self._filemanager_alias(mode)

    def lookup(self, name: str) -> Callable[..., Any] | None:
        return self._table.get(name)

    def signature(self, name: str) -> inspect.Signature:
        """Cached: computing a signature costs more than a typical call."""
        if name not in self._signatures:
            self._signatures[name] = inspect.signature(self._table[name])
        return self._signatures[name]

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

    @inlineCallbacks
    def config_set(self, key: str, value: Any) -> Any:
        """Answers after any service switch the change caused has finished."""
        changed = config_views.change(self.node.config, key, value)
        yield self.node.services.idle()
        return ok(changed)

    def config_list(self, sort: bool = False) -> dict[str, Any]:
        return ok(config_views.listing(self.node.config, bool(sort)))

    # -- identity (not in the seed API; ``bitdust identity`` uses them while the daemon runs) --

    def identity_get(self) -> dict[str, Any]:
        from bitdust.identity.my_id import describe

        if self.node.my_identity is None:
            return error("this node has no identity yet: run `bitdust identity create NAME`")
        return ok(describe(self.node.my_identity))

    @inlineCallbacks
    def identity_create(self, name: str) -> Any:
        from bitdust.identity.document import IdentityError
        from bitdust.identity.idurl import IdurlError
        from bitdust.identity.my_id import describe

        if not self.node.services.is_on("service_identity_propagate"):
            raise ServiceUnavailable("identity_create needs service_identity_propagate, which is not running")
        service: Any = self.node.services.instance("service_identity_propagate")
        try:
            identity = yield service.register(name)
        except (IdentityError, IdurlError) as exc:
            return error(str(exc))
        return ok(describe(identity))

    # -- nicknames (DHT) -------------------------------------------------------------

    def set_my_nickname(self, nickname: str) -> Deferred[dict[str, Any]]:
        """Register ``nickname`` for this node in the DHT and keep it while the node runs
        (re-published every 10 minutes, and again after a restart: it is saved in
        ``personal/nickname``). Nicknames are 3-32 of ``A-Z a-z 0-9 . _ -``, without case.

        ``{'status': 'OK', 'result': 'nickname X registered', 'nickname': X, 'idurl': mine}``;
        ``{'status': 'ERROR', 'errors': ['nickname X is already taken by <idurl>']}`` when
        another node holds it. The spec puts this call under service_private_messages;
        this build needs only service_dht (and an identity), so it works before messaging.
        """
        from bitdust.api import dht_calls

        return dht_calls.set_my_nickname(self.node, nickname)

    def find_peer_by_nickname(self, nickname: str) -> Deferred[dict[str, Any]]:
        """Who holds ``nickname``: ``{'status': 'OK', 'result': {'nickname': X, 'idurl': ...}}``,
        or ERROR ``nickname X was not found``. Only records whose signature and publisher
        identity verify are believed. Needs service_dht (not service_private_messages, as
        the spec's table says: that service is not built yet)."""
        from bitdust.api import dht_calls

        return dht_calls.find_peer_by_nickname(self.node, nickname)

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

    # -- network (service_gateway) -------------------------------------------------------

    def packets_stats(self) -> dict[str, Any]:
        """Counters as defined in :mod:`bitdust.transport.stats`, in the spec's one-item list."""
        from bitdust.services.gateway import running_gateway

        return ok([running_gateway(self.node, "packets_stats").stats.as_api()])

    def packets_list(self) -> dict[str, Any]:
        """Packets in flight and the recent ones, oldest first: dicts with direction,
        command, packet_id, remote, size, state, proto, attempts, started."""
        from bitdust.services.gateway import running_gateway

        return ok(running_gateway(self.node, "packets_list").packet_log.as_api())

    def connections_list(self, wanted_protos: Any = None) -> dict[str, Any]:
        """Open connections: proto, direction, host, port, idurl ('' until a verified
        packet names the peer), state, bytes_in/out, packets_in/out, queued_bytes, started."""
        from bitdust.services.gateway import running_gateway

        gateway = running_gateway(self.node, "connections_list")
        return ok(gateway.connections(_protos(wanted_protos)))

    def streams_list(self, wanted_protos: Any = None) -> dict[str, Any]:
        """Packets being moved right now: proto, direction, host, port, idurl, size and
        done in bytes (None where the transport cannot tell: a QUIC stream's total size
        is unknown until it ends, its acknowledged part is not exposed by aioquic)."""
        from bitdust.services.gateway import running_gateway

        gateway = running_gateway(self.node, "streams_list")
        return ok(gateway.streams(_protos(wanted_protos)))

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


def _protos(wanted: Any) -> list[str] | None:
    """``['tcp', 'udp']``, ``'tcp,udp'`` or None (all)."""
    if wanted is None or wanted == "":
        return None
    if isinstance(wanted, str):
        wanted = wanted.split(",")
    if not isinstance(wanted, list | tuple) or not all(isinstance(p, str) for p in wanted):
        raise ApiError("wanted_protos must be a list of protocol names like ['tcp', 'udp']")
    return [p.strip().lower() for p in wanted if p.strip()]
