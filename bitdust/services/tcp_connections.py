"""service_tcp_connections: the TCP listener on <network/host>:<tcp-port> and the
connection pool; what arrives is handed to the gateway once tcp_transport is on."""

from __future__ import annotations

from typing import TYPE_CHECKING

from twisted.internet.defer import Deferred, fail, succeed

from bitdust.services.service import Service
from bitdust.transport.gateway import max_packet_size
from bitdust.transport.tcp import TcpConnections

if TYPE_CHECKING:
    from bitdust.node import Node


class TcpConnectionsService(Service):
    name = "service_tcp_connections"

    def __init__(self, node: Node) -> None:
        super().__init__(node)
        self.connections: TcpConnections | None = None

    def start(self) -> Deferred[None]:
        config = self.node.config
        try:
            connections = TcpConnections(self.node.reactor, config.get("network/host"),
                                         config.get("services/tcp-connections/tcp-port"), max_packet_size(config))
            listening = connections.listen()
        except Exception as exc:
            return fail(exc)
        self.connections = connections
        return listening

    def stop(self) -> Deferred[None]:
        connections, self.connections = self.connections, None
        return connections.close() if connections is not None else succeed(None)
