"""Every option of the settings tree: key, type, default and a one-line description.

The tuple is immutable; a node's current values live in its :class:`~bitdust.config.store.Config`.
Keys follow the original BitDust tree (``services/<service-name>/<option>``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from bitdust.config import types as t

SUPPLIERS_NUMBERS = ("2", "4", "7", "13", "18", "26", "64")


@dataclass(frozen=True)
class Option:
    key: str
    type: t.OptionType
    default: Any
    description: str


def _service_switch(name: str, description: str, default: bool = True) -> Option:
    return Option(f"services/{name}/enabled", t.BOOLEAN, default, description)


OPTIONS: tuple[Option, ...] = (
    Option("logs/debug-level", t.IntegerType(name="positive integer", minimum=0, maximum=20), 4,
           "log verbosity: 0 warnings and errors, 1-5 informative lines, 6 and above debugging detail"),
    Option("interface/api/json-rpc-port", t.PORT, 8083, "TCP port of the JSON-RPC API and GUI on 127.0.0.1"),
    Option("interface/api/host", t.STRING, "127.0.0.1",
           "address the API listens on; loopback unless you know why it should be otherwise"),
    Option("personal/private-key-size", t.ComboType(choices=("2048", "3072", "4096"), integer=True), 3072,
           "size in bits of the RSA key created on first start"),
    Option("personal/nickname", t.STRING, "", "nickname registered in the DHT"),
    Option("network/host", t.STRING, "127.0.0.1", "address this node's transports listen on and advertise"),
    _service_switch("network", "network_connector: knows whether the node is online"),
    _service_switch("tcp-connections", "listen for TCP connections"),
    Option("services/tcp-connections/tcp-port", t.PORT, 7771, "TCP port for peer connections"),
    _service_switch("gateway", "packet in/out, acks, timeouts, retries, per-peer stats"),
    _service_switch("tcp-transport", "send and receive packets over TCP"),
    _service_switch("udp-transport", "send and receive packets over QUIC on UDP"),
    Option("services/udp-transport/udp-port", t.PORT, 8882, "UDP port for QUIC peer connections"),
    _service_switch("dht", "Kademlia distributed hash table"),
    Option("services/dht/udp-port", t.PORT, 14441, "UDP port of the DHT node"),
    Option("services/dht/known-nodes", t.TEXT_LIST, (), "DHT seed nodes as host:port"),
    _service_switch("identity-server", "serve identity documents over HTTP", default=False),
    Option("services/identity-server/web-port", t.PORT, 8084, "HTTP port of the identity server"),
    _service_switch("identity-propagate", "identity cache and publishing of own identity"),
    Option("services/identity-propagate/known-servers", t.TEXT_LIST, (),
           "identity servers as host:port where this node registers"),
    _service_switch("p2p-hookups", "p2p_connector and dispatch of incoming commands"),
    _service_switch("nodes-lookup", "random node discovery in the DHT"),
    _service_switch("private-messages", "encrypted messages between nodes, nickname"),
    _service_switch("broadcasting", "broadcast messages to all online nodes"),
    _service_switch("supplier", "donate disk space to other nodes"),
    Option("services/supplier/donated-space", t.DISK_SPACE, 8 * 1024**3, "disk space offered to customers"),
    _service_switch("customer-patrol", "reject idle or over-quota customers"),
    Option("services/customer-patrol/customer-idle-days", t.POSITIVE_INTEGER, 30,
           "days without contact after which a customer is rejected (0 never)"),
    _service_switch("customer", "hire suppliers to store own data"),
    Option("services/customer/suppliers-number", t.ComboType(choices=SUPPLIERS_NUMBERS, integer=True), 4,
           "how many suppliers hold this node's data (ecc/NxN)"),
    Option("services/customer/needed-space", t.DISK_SPACE, 1024**3, "space wanted from all suppliers together"),
    Option("services/customer/recheck-seconds", t.IntegerType(name="positive integer", minimum=1), 600,
           "how often every supplier is asked again whether it still serves this node"),
    Option("services/customer/request-timeout-seconds", t.IntegerType(name="positive integer", minimum=1), 10,
           "seconds to wait for a supplier's answer (asked 3 times) before it counts as offline"),
    _service_switch("employer", "fire_hire: keep the wanted number of good suppliers"),
    Option("services/employer/critically-offline-seconds", t.POSITIVE_INTEGER, 3600,
           "a supplier offline that long is replaced"),
    Option("services/employer/piece-failures-limit", t.POSITIVE_INTEGER, 10,
           "a supplier that failed that many piece requests (corrupt, wrong or no answer) is replaced (0 never)"),
    Option("services/employer/piece-failures-seconds", t.IntegerType(name="positive integer", minimum=1), 3600,
           "the window in which piece-failures-limit failures are counted"),
    _service_switch("data-disintegration", "erasure coding worker"),
    _service_switch("data-motion", "send and receive pieces, throttling"),
    Option("services/data-motion/max-in-flight", t.IntegerType(name="positive integer", minimum=1), 16,
           "pieces being sent (and, apart, being retrieved) at once, all suppliers together"),
    Option("services/data-motion/max-per-supplier", t.IntegerType(name="positive integer", minimum=1), 4,
           "pieces being sent (and, apart, being retrieved) at once to one supplier"),
    Option("services/data-motion/send-timeout-seconds", t.IntegerType(name="positive integer", minimum=1), 30,
           "seconds to wait for a supplier's Ack of one piece (asked 3 times)"),
    _service_switch("list-files", "what each supplier holds"),
    Option("services/list-files/refresh-seconds", t.IntegerType(name="positive integer", minimum=1), 600,
           "how often every supplier is asked which pieces it holds"),
    _service_switch("rebuilding", "rebuild missing pieces onto new suppliers"),
    _service_switch("backup-db", "catalog and its encrypted copy on suppliers"),
    _service_switch("backups", "backup_monitor and backup jobs"),
    Option("services/backups/block-size", t.DiskSpaceType(minimum=64 * 1024), 4 * 1024**2,
           "size of one block before erasure coding"),
    Option("services/backups/max-block-size", t.DiskSpaceType(minimum=64 * 1024), 128 * 1024**2,
           "upper limit for the block size"),
    Option("services/backups/keep-local-copies-enabled", t.BOOLEAN, False,
           "also keep the pieces of every backup under <home>/backups/"),
    Option("services/backups/max-copies", t.IntegerType(name="positive integer", minimum=1), 2,
           "versions kept per item; older ones are deleted from suppliers"),
    _service_switch("restores", "restore jobs"),
    _service_switch("keys-storage", "encrypted key backup for disaster recovery"),
)


def cross_check(values: dict[str, Any]) -> None:
    """Rules that involve more than one option; raise ConfigValueError when broken."""
    if values["services/backups/block-size"] > values["services/backups/max-block-size"]:
        raise t.ConfigValueError("services/backups/block-size cannot be larger than services/backups/max-block-size")
