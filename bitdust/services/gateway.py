"""service_gateway: the packet hub every other network service sends and receives through."""

from __future__ import annotations

from typing import TYPE_CHECKING

from twisted.internet.defer import Deferred, succeed

from bitdust.services.service import Service
from bitdust.transport.gateway import Gateway, max_packet_size

if TYPE_CHECKING:
    from bitdust.node import Node


class GatewayService(Service):
    name = "service_gateway"

    def __init__(self, node: Node) -> None:
        super().__init__(node)
        self.gateway: Gateway | None = None

    def start(self) -> Deferred[None]:
        self.gateway = Gateway(self.node, max_packet_size(self.node.config))
        return succeed(None)

    def stop(self) -> Deferred[None]:
        gateway, self.gateway = self.gateway, None
        if gateway is not None:
            gateway.stop()
        return succeed(None)


def running_gateway(node: Node, what: str = "this call") -> Gateway:
    """The node's gateway; ServiceUnavailable (the API's ERROR answer) when it is off."""
    service = node.services.running("service_gateway", GatewayService, what, lambda s: s.gateway is not None)
    assert service.gateway is not None
    return service.gateway
