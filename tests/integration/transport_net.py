"""Helpers for in-process transport tests and the transport bench: nodes that run only
the network, TCP, gateway and QUIC services, on free loopback ports, with each other's
identities put straight into their caches (the test stands in for the identity servers)."""

from __future__ import annotations

from collections.abc import Callable, Generator
from pathlib import Path
from typing import Any

from twisted.internet.defer import inlineCallbacks

from bitdust.config import Config
from bitdust.crypto.keys import PrivateKey
from bitdust.identity.document import Identity, make_contact
from bitdust.identity.idurl import make_idurl
from bitdust.node import Node
from bitdust.services.gateway import GatewayService, running_gateway
from bitdust.services.network import NetworkService
from bitdust.services.tcp_connections import TcpConnectionsService
from bitdust.services.tcp_transport import TcpTransportService
from bitdust.services.udp_transport import UdpTransportService
from bitdust.transport.gateway import Gateway
from bitdust.transport.tcp import TcpConnections
from bitdust.util.net import free_port, free_udp_port

SERVICES: dict[str, Any] = {
    cls.name: cls
    for cls in (NetworkService, TcpConnectionsService, GatewayService, TcpTransportService, UdpTransportService)
}


def prepare_home(home: Path, key: PrivateKey, tcp: bool = True, udp: bool = True,
                 api_port: int | None = None) -> Path:
    """Ports, switches and a ready-made key (so the node skips key generation)."""
    config = Config(home / "config")
    if api_port is not None:
        config.set("interface/api/json-rpc-port", api_port)
    config.set("personal/private-key-size", 2048)
    config.set("services/tcp-connections/tcp-port", free_port())
    config.set("services/udp-transport/udp-port", free_udp_port())
    config.set("services/tcp-connections/enabled", tcp)
    config.set("services/tcp-transport/enabled", tcp)
    config.set("services/udp-transport/enabled", udp)
    metadata = home / "metadata"
    metadata.mkdir(parents=True, exist_ok=True, mode=0o700)
    key.save(metadata / "mykeyfile")
    return home


def give_identity(node: Node, name: str, contacts: tuple[str, ...] | None = None) -> Identity:
    """Sign an identity for the node; its idurl points at a server nobody runs."""
    assert node.key is not None and node.packet_key is not None
    config = node.config
    if contacts is None:
        host = config.get("network/host")
        contacts = (
            make_contact("tcp", host, config.get("services/tcp-connections/tcp-port")),
            make_contact("udp", host, config.get("services/udp-transport/udp-port")),
        )
    identity = Identity.create(node.key, [make_idurl("127.0.0.1", 1, name)], contacts, packet_key=node.packet_key)
    node.my_identity = identity
    node.identity_cache.add(identity)
    return identity


def introduce(nodes: list[Node], identities: dict[str, Identity] | None = None) -> None:
    """Every node learns every other node's identity (``identities`` overrides by idurl)."""
    for node in nodes:
        for other in nodes:
            if other is not node and other.my_identity is not None:
                doc = (identities or {}).get(other.my_identity.idurl, other.my_identity)
                node.identity_cache.add(doc)


def gateway(node: Node) -> Gateway:
    return running_gateway(node)


def tcp_of(node: Node) -> TcpConnections:
    service = node.services.instance("service_tcp_connections")
    assert isinstance(service, TcpConnectionsService) and service.connections is not None
    return service.connections


@inlineCallbacks
def start_nodes(reactor: Any, homes: list[tuple[str, Path]]) -> Generator[Any, Any, list[Node]]:
    nodes: list[Node] = []
    for name, home in homes:
        node = Node(home, reactor=reactor, services=SERVICES)
        yield node.start()
        give_identity(node, name)
        nodes.append(node)
    introduce(nodes)
    return nodes


def acking_handler(gw: Gateway, seen: list[Any] | None = None) -> Callable[[Any], Any]:
    """A Data handler that records the packet and Acks it."""

    def handle(packet: Any) -> Any:
        if seen is not None:
            seen.append(packet)
        return gw.ack(packet)

    return handle
