"""service_network: runs network_connector, which knows whether the node is online."""

from __future__ import annotations

from typing import TYPE_CHECKING

from twisted.internet.defer import Deferred, succeed

from bitdust.automats.network_connector import NetworkConnector, interface_probe
from bitdust.services.service import Service

if TYPE_CHECKING:
    from bitdust.node import Node


class NetworkService(Service):
    name = "service_network"

    def __init__(self, node: Node) -> None:
        super().__init__(node)
        self.connector: NetworkConnector | None = None

    def start(self) -> Deferred[None]:
        host = self.node.config.get("network/host")
        self.connector = NetworkConnector(self.node.clock, self.node.automats, [interface_probe(host)])
        self.connector.event("init")
        return succeed(None)

    def stop(self) -> Deferred[None]:
        if self.connector is not None:
            self.connector.event("shutdown")
            self.connector = None
        return succeed(None)

