"""The method table of the JSON-RPC API: every call of the spec, by name.

Methods return ``ok(...)``/``error(...)`` dicts (or Deferreds of them); any exception
becomes an ERROR answer in the server. Calls whose subsystem is not built yet come from
:mod:`bitdust.api.unbuilt`.
"""

from __future__ import annotations

import inspect
import logging
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import psutil
from twisted.internet.defer import Deferred, inlineCallbacks, succeed
from twisted.internet.threads import deferToThreadPool
from twisted.python.failure import Failure

from bitdust.api.results import ApiError, error, ok
from bitdust.api.unbuilt import UNBUILT, make_unbuilt
from bitdust.config import views as config_views
from bitdust.services.service import ServiceUnavailable
from bitdust.util.fs import folder_size
from bitdust.util.units import format_size, percent

if TYPE_CHECKING:
    from bitdust.api.gui_access import GuiAccess
    from bitdust.automats.network_connector import NetworkConnector
    from bitdust.node import Node

log = logging.getLogger(__name__)

FILEMANAGER_MODES = (
    "stats", "config", "list", "listlocal", "listall", "upload", "delete", "deleteversion",
    "download", "tasks", "packets", "connections", "streams", "debuginfo",
)

SPACE_FRESH = 2.0
"""Seconds a space_local result is answered again without walking the home (GUIs poll it)."""

EXIT_DELAY = 0.1
"""Seconds between answering stop()/restart() and acting, so the answer reaches the client."""

_IMPLEMENTED = (
    "stop", "restart", "reconnect", "show", "config_get", "config_set", "config_list", "filemanager",
    "automats_list", "services_list", "service_info", "service_start", "service_stop", "space_local",
    "identity_get", "identity_create",
    "packets_stats", "packets_list", "connections_list", "streams_list",
    "set_my_nickname", "find_peer_by_nickname",
    "ping", "send_message", "receive_one_message", "broadcast_send_message",
    "customers_list", "customer_reject", "customers_ping", "space_donated",
    "suppliers_list", "supplier_replace", "supplier_change", "suppliers_ping", "space_consumed",
    "restore_single", "restores_running", "restore_abort",
    "backups_list", "backups_id_list", "backup_map_path", "backup_dir_add", "backup_file_add", "backup_tree_add",
    "backups_update", "backup_start_id", "backup_start_path", "backup_delete_local", "backup_delete_id",
    "backup_delete_path", "backups_queue", "backups_running", "backup_cancel_pending", "backup_abort_running",
)


class ApiMethods:
    def __init__(self, node: Node, access: GuiAccess | None = None) -> None:
        self.node = node
        self._access = access
        self._space_waiters: list[Deferred[dict[str, Any]]] = []
        self._space_cache: tuple[float, dict[str, Any] | None] = (0.0, None)
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
        """``showgui``: the next daemon opens the GUI once it listens (a flag file in
        ``<home>/metadata`` tells it, since nothing else survives the restart)."""
        if showgui:
            from bitdust.api.gui_launch import flag_path

            flag_path(self.node.home.metadata).touch()
        self.node.reactor.callLater(EXIT_DELAY, self.node.request_exit, True)
        return ok("restarted")

    def reconnect(self) -> dict[str, Any]:
        connector = self._network_connector()
        connector.event("reconnect")
        return ok(f"reconnect event has been sent to network_connector, now {connector.state}")

    def show(self, open_browser: bool = True) -> Deferred[dict[str, Any]]:
        """Opens the GUI at a one-time link (see :mod:`bitdust.api.gui_access`); the answer
        adds ``url`` and ``opened`` to the spec's. ``open_browser=False`` only makes the
        link (for a caller that opens it itself)."""
        from bitdust.api.gui_launch import show

        return show(self.node, self._access, bool(open_browser))

    def show_after_restart(self) -> None:
        from bitdust.api.gui_launch import show_if_flagged

        show_if_flagged(self.node, self._access)

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

    # -- peers: ping, private messages, broadcasts ----------------------------------------

    def ping(self, idurl: str, timeout: Any = 10) -> Deferred[dict[str, Any]]:
        """Fetch the peer's identity from its server (the cached copy if the server is
        down), send it my Identity packet, wait for its Ack (every node Acks a valid
        Identity) at most ``timeout`` seconds in all, with up to 3 sends.
        ``{'status': 'OK', 'result': '(signed.Packet[Ack(Identity) bob|bob for alice],
        in_<packet id>(DONE))'}``: the Ack's command, creator|owner names, recipient name
        and PacketID. ERROR on an identity fetch error, a Fail reply or a timeout."""
        from bitdust.api import p2p_calls

        return p2p_calls.ping(self.node, idurl, timeout)

    def send_message(self, recipient: str, message_body: Any) -> Deferred[dict[str, Any]]:
        """``recipient``: an idurl or a nickname (looked up in the DHT). ``message_body``:
        any JSON value up to 64 KB, encrypted to the recipient's key inside a signed
        packet. Answers once the recipient Acked it:
        ``{'status': 'OK', 'result': ['signed.Packet[Message(<packet id>)]'], 'recipient': idurl}``;
        ERROR if the recipient is unknown, refuses it, or does not answer (offline)
        within about 30 s."""
        from bitdust.api import p2p_calls

        return p2p_calls.send_message(self.node, recipient, message_body)

    def receive_one_message(self, timeout: Any = None) -> Any:
        """The oldest message received and not read yet, at once if there is one; else
        wait for the next, at most ``timeout`` seconds (default 20, under the CLI's 30 s).
        ``{'status': 'OK', 'result': [{'from': idurl, 'message': body}]}``; a broadcast
        comes as ``{'from': origin, 'message': payload, 'broadcast': True, 'id': ...}``.
        Nothing within the timeout is not an error: ``{'status': 'OK', 'result': []}``.
        A message is handed to one caller only; up to 1000 wait unread (oldest dropped)."""
        from bitdust.api import p2p_calls

        return p2p_calls.receive_one_message(self.node, timeout)

    def broadcast_send_message(self, payload: Any) -> Deferred[dict[str, Any]]:
        """Send a JSON object of at most 4 KB (canonical JSON) to every online node,
        once each (see :mod:`bitdust.services.broadcasting` for how and the limits).
        ``{'status': 'OK', 'result': 'broadcast message <id> was sent to N of M known
        node(s)', 'id': ..., 'acked': N, 'peers': M}``; ERROR for a payload that is not a
        JSON object or is too large."""
        from bitdust.api import p2p_calls

        return p2p_calls.broadcast_send_message(self.node, payload)

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

        # The walk runs in the reactor's thread pool, behind the backup's reads and the
        # supplier store's fsyncs: with 200 GUIs polling, each call queued a walk there and
        # waited (issue 7, load test: space_local had the worst p99 by far). So callers
        # that arrive during a walk share it, and a result younger than SPACE_FRESH
        # seconds is answered at once.
        cached_at, cached = self._space_cache
        if cached is not None and 0 <= reactor.seconds() - cached_at < SPACE_FRESH:
            return succeed(ok([cached]))
        waiter: Deferred[dict[str, Any]] = Deferred()
        self._space_waiters.append(waiter)
        if len(self._space_waiters) == 1:
            def deliver(result: Any) -> None:
                waiters, self._space_waiters = self._space_waiters, []
                if not isinstance(result, Failure):
                    self._space_cache = (reactor.seconds(), result)
                for each in waiters:
                    if isinstance(result, Failure):
                        each.errback(result)
                    else:
                        each.callback(result)

            deferToThreadPool(reactor, reactor.getThreadPool(), measure).addBoth(deliver)
        return waiter.addCallback(lambda r: ok([r]))

    # -- supplier: customers and donated space (service_supplier) -------------------------

    def customers_list(self) -> dict[str, Any]:
        """Customers storing data here, oldest contract first: the spec's ``idurl``,
        ``position`` (its index among the customer's suppliers) and ``status``
        (``online`` when heard from in the last 10 minutes and not failing a ping since,
        else ``offline``), plus ``ecc_map``, ``quota``/``quotastr`` (bytes granted),
        ``used``/``usedstr`` (bytes of pieces held), ``numfiles`` (pieces held) and
        ``first_contact``/``last_contact`` (epoch seconds)."""
        from bitdust.api import supplier_calls

        return supplier_calls.customers_list(self.node)

    def customer_reject(self, idurl: str) -> Deferred[dict[str, Any]]:
        """Delete everything held for ``idurl``, end its contract and tell it (a
        CancelService notice, not waited for): ``['customer X rejected, N bytes were
        freed']``; ERROR when ``idurl`` is not a customer."""
        from bitdust.api import supplier_calls

        return supplier_calls.customer_reject(self.node, idurl)

    def customers_ping(self) -> dict[str, Any]:
        """Send my Identity to every customer; each Ack (or its absence, after about
        20 s) sets the ``status`` customers_list shows. Answers at once."""
        from bitdust.api import supplier_calls

        return supplier_calls.customers_ping(self.node)

    def space_donated(self) -> Deferred[dict[str, Any]]:
        """The spec's one-item list. ``donated``: services/supplier/donated-space;
        ``consumed``: bytes granted to customers (sum of quotas), ``consumedpercent`` of
        the donation; ``free``: donated - consumed (what the DHT offer announces);
        ``used``: bytes of pieces held, ``usedpercent`` of the donation, ``used_str``;
        ``real``: bytes on disk under <home>/customers (also files without a contract);
        ``customers``: their idurls; ``oldcustomers``: the last customers that left or
        were rejected."""
        from bitdust.api import supplier_calls

        return supplier_calls.space_donated(self.node)

    # -- customer: suppliers and consumed space (service_customer, service_employer) --------

    def suppliers_list(self) -> dict[str, Any]:
        """One row per position of ``ecc/NxN``, in position order: the spec's
        ``connected`` (local time the supplier first accepted us there, '' if never),
        ``idurl`` ('' for a position still being hired), ``numfiles`` (pieces it said it
        holds in its last ListFiles answer; 0 until one arrived), ``position`` and
        ``status`` ('online' when its last answer was an Ack, else 'offline')."""
        from bitdust.api import customer_calls

        return customer_calls.suppliers_list(self.node)

    def supplier_replace(self, index_or_idurl: Any) -> dict[str, Any]:
        """Queue the replacement of a supplier (by position or idurl) with a random node;
        fire_hire does it as soon as no other change runs. ERROR when that would leave
        more than N/2 positions without a connected supplier (data could be lost)."""
        from bitdust.api import customer_calls

        return customer_calls.supplier_replace(self.node, index_or_idurl)

    def supplier_change(self, index_or_idurl: Any, new_idurl: Any) -> Deferred[dict[str, Any]]:
        """Put ``new_idurl`` at the supplier's position. Answers once ``new_idurl``
        accepted (OK, the old supplier is let go) or did not (ERROR naming its reason:
        a Fail such as no-space, or no answer; the old supplier is kept)."""
        from bitdust.api import customer_calls

        return customer_calls.supplier_change(self.node, index_or_idurl, new_idurl)

    def suppliers_ping(self) -> dict[str, Any]:
        """Ask every supplier again (RequestService, then ListFiles); answers at once,
        suppliers_list shows the outcome."""
        from bitdust.api import customer_calls

        return customer_calls.suppliers_ping(self.node)

    def space_consumed(self) -> dict[str, Any]:
        """The spec's one-item list. ``needed``: services/customer/needed-space;
        ``neededpersupplier``: what each supplier is asked for (needed / N, rounded up);
        ``used``: bytes the suppliers said they hold for us in their last ListFiles
        answers; ``usedpersupplier``: used / N; ``available``: needed - used;
        ``usedpercent``: used of needed."""
        from bitdust.api import customer_calls

        return customer_calls.space_consumed(self.node)

    # -- catalog (service_backup_db; bodies in catalog_calls) ---------------------------------

    def backups_list(self) -> dict[str, Any]:
        from bitdust.api import catalog_calls

        return catalog_calls.backups_list(self.node, catalog_calls.running_catalog(self.node, "backups_list"))

    def backups_id_list(self) -> dict[str, Any]:
        from bitdust.api import catalog_calls

        return catalog_calls.backups_id_list(self.node, catalog_calls.running_catalog(self.node, "backups_id_list"))

    def backup_map_path(self, path: Any) -> Deferred[dict[str, Any]]:
        from bitdust.api import catalog_calls

        return catalog_calls.backup_map_path(self.node, catalog_calls.running_catalog(self.node, "backup_map_path"),
                                             path)

    def backup_dir_add(self, dirpath: Any) -> Deferred[dict[str, Any]]:
        from bitdust.api import catalog_calls

        return catalog_calls.backup_dir_add(self.node, catalog_calls.running_catalog(self.node, "backup_dir_add"),
                                            dirpath)

    def backup_file_add(self, filepath: Any) -> Deferred[dict[str, Any]]:
        from bitdust.api import catalog_calls

        return catalog_calls.backup_file_add(self.node, catalog_calls.running_catalog(self.node, "backup_file_add"),
                                             filepath)

    def backup_tree_add(self, dirpath: Any) -> Deferred[dict[str, Any]]:
        from bitdust.api import catalog_calls

        return catalog_calls.backup_tree_add(self.node, catalog_calls.running_catalog(self.node, "backup_tree_add"),
                                             dirpath)

    # -- backup jobs (service_backups; bodies in backup_calls) ---------------------------------

    def backups_update(self) -> Any:
        from bitdust.api import backup_calls

        return backup_calls.backups_update(self.node)

    def backup_start_id(self, pathID: Any) -> Any:
        from bitdust.api import backup_calls

        return backup_calls.backup_start_id(self.node, pathID)

    def backup_start_path(self, path: Any, bind_local_path: Any = True) -> Any:
        from bitdust.api import backup_calls

        return backup_calls.backup_start_path(self.node, path, bind_local_path)

    def backup_delete_local(self, backupID: Any) -> Any:
        from bitdust.api import backup_calls

        return backup_calls.backup_delete_local(self.node, backupID)

    def backup_delete_id(self, pathID_or_backupID: Any) -> Any:
        from bitdust.api import backup_calls

        return backup_calls.backup_delete_id(self.node, pathID_or_backupID)

    def backup_delete_path(self, localPath: Any) -> Any:
        from bitdust.api import backup_calls

        return backup_calls.backup_delete_path(self.node, localPath)

    def backups_queue(self) -> Any:
        from bitdust.api import backup_calls

        return backup_calls.backups_queue(self.node)

    def backups_running(self) -> Any:
        from bitdust.api import backup_calls

        return backup_calls.backups_running(self.node)

    def backup_cancel_pending(self, path_id: Any) -> Any:
        from bitdust.api import backup_calls

        return backup_calls.backup_cancel_pending(self.node, path_id)

    def backup_abort_running(self, backup_id: Any) -> Any:
        from bitdust.api import backup_calls

        return backup_calls.backup_abort_running(self.node, backup_id)

    # -- restores (service_restores) -----------------------------------------------------

    def restore_single(self, pathID_or_backupID_or_localPath: Any, destinationPath: Any = None) -> Any:
        """Starts restoring a path ID (its newest complete version), a backup ID or a
        local path the catalog knows, into the catalog's location or ``destinationPath``;
        answers 'downloading of version X has been started to Y/' once the job runs."""
        from bitdust.api import restore_calls

        return restore_calls.restore_single(self.node, pathID_or_backupID_or_localPath, destinationPath)

    def restores_running(self) -> dict[str, Any]:
        """The spec's fields per job, plus state, destination, blocks, progress,
        badpieces and errors; ended jobs stay listed a while with ``done: True``."""
        from bitdust.api import restore_calls

        return restore_calls.restores_running(self.node)

    def restore_abort(self, backup_id: Any) -> dict[str, Any]:
        from bitdust.api import restore_calls

        return restore_calls.restore_abort(self.node, backup_id)

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

    def filemanager(self, json_request: Any) -> Any:
        """The GUI's gate; modes and their answers are in :mod:`bitdust.api.filemanager`."""
        from bitdust.api import filemanager

        return filemanager.dispatch(self.node, json_request)

    def _filemanager_alias(self, mode: str) -> Callable[..., Any]:
        def alias(**params: Any) -> Any:
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
