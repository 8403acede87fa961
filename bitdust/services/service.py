"""The service base class and the table of all services of DESIGN.md.

A service is a named part of the daemon that can be switched on and off at run time
(``services/<name-with-dashes>/enabled``). The table lists every service with its
dependencies, built or not: the driver orders and reports all of them, and those
whose code is not in this build show as ``NOT_INSTALLED``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, ClassVar, TypeVar

from twisted.internet.defer import Deferred, succeed

if TYPE_CHECKING:
    from bitdust.node import Node


class ServiceError(RuntimeError):
    """Unknown service, dependency cycle, or a service that cannot be switched."""


class ServiceUnavailable(RuntimeError):
    """An API call needs a service that is not running; the message says which."""


T = TypeVar("T")


def while_running(get: Callable[[], T]) -> T | None:
    """``get()`` (which looks up a running service), or None while that service is
    stopped: for background workers that skip a turn instead of failing."""
    try:
        return get()
    except ServiceUnavailable:
        return None


@dataclass(frozen=True)
class ServiceSpec:
    name: str
    depends: tuple[str, ...]
    description: str

    @property
    def config_path(self) -> str:
        return f"services/{self.name.removeprefix('service_').replace('_', '-')}/enabled"


SERVICE_TABLE: tuple[ServiceSpec, ...] = (
    ServiceSpec("service_network", (), "network_connector; knows whether the node is online"),
    ServiceSpec("service_tcp_connections", ("service_network",), "TCP listener"),
    ServiceSpec("service_gateway", ("service_network",), "packet in/out, ack/timeout/retry, per-peer stats"),
    ServiceSpec("service_tcp_transport", ("service_tcp_connections", "service_gateway"), "TCP transport"),
    ServiceSpec("service_udp_transport", ("service_gateway",), "UDP transport (QUIC streams)"),
    ServiceSpec("service_dht", ("service_network",), "Kademlia DHT"),
    # DESIGN.md lists tcp_connections, but the identity server runs its own HTTP listener,
    # not the peer TCP listener, so it needs only the network.
    ServiceSpec("service_identity_server", ("service_network",), "serves identity documents over HTTP"),
    ServiceSpec("service_identity_propagate", ("service_gateway",), "identity cache and publishing"),
    ServiceSpec("service_p2p_hookups", ("service_gateway", "service_identity_propagate"),
                "p2p_connector; commands dispatch"),
    ServiceSpec("service_nodes_lookup", ("service_dht", "service_p2p_hookups"), "random node discovery"),
    ServiceSpec("service_private_messages", ("service_p2p_hookups", "service_dht"),
                "encrypted messages, nickname"),
    ServiceSpec("service_broadcasting", ("service_p2p_hookups",), "broadcast messages"),
    ServiceSpec("service_supplier", ("service_p2p_hookups",), "donated space, customer store, quotas"),
    ServiceSpec("service_customer_patrol", ("service_supplier",), "reject idle or over-quota customers"),
    ServiceSpec("service_customer", ("service_p2p_hookups",), "supplier connectors"),
    ServiceSpec("service_employer", ("service_customer", "service_nodes_lookup"),
                "fire_hire: keeps the wanted number of good suppliers"),
    ServiceSpec("service_data_disintegration", ("service_customer",), "erasure coding worker"),
    ServiceSpec("service_data_motion", ("service_employer", "service_data_disintegration"),
                "sending and receiving pieces, throttling"),
    ServiceSpec("service_list_files", ("service_employer",), "what each supplier holds"),
    ServiceSpec("service_rebuilding", ("service_data_motion", "service_list_files"),
                "rebuild missing pieces onto new suppliers"),
    ServiceSpec("service_backup_db", ("service_list_files", "service_data_motion"),
                "catalog, its encrypted copy on suppliers"),
    ServiceSpec("service_backups", ("service_backup_db", "service_rebuilding"), "backup_monitor, backup jobs"),
    ServiceSpec("service_restores", ("service_backups",), "restore jobs"),
    ServiceSpec("service_keys_storage", ("service_restores",), "encrypted key backup for disaster recovery"),
)


def normalize_name(name: str) -> str:
    """Accept ``backups``, ``backup-db``, ``service_backup_db``: give ``service_backup_db``."""
    if not isinstance(name, str):
        raise ServiceError(f"service name must be text, not {type(name).__name__}")
    plain = name.strip().replace("-", "_")
    return plain if plain.startswith("service_") else "service_" + plain


class Service:
    """Base of a built service. ``start``/``stop`` return Deferreds; the driver calls
    them in dependency order and never twice in a row."""

    name: ClassVar[str]

    def __init__(self, node: Node) -> None:
        self.node = node

    def start(self) -> Deferred[None]:
        return succeed(None)

    def stop(self) -> Deferred[None]:
        return succeed(None)
