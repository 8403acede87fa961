"""service_udp_transport: QUIC on <network/host>:<udp-port>, the gateway's fallback path."""

from __future__ import annotations

from typing import TYPE_CHECKING

from twisted.internet.defer import Deferred, fail, succeed

from bitdust.services.gateway import running_gateway
from bitdust.services.service import Service
from bitdust.transport.gateway import max_packet_size
from bitdust.transport.udp_quic import PROTO, QuicTransport

if TYPE_CHECKING:
    from bitdust.node import Node


class UdpTransportService(Service):
    name = "service_udp_transport"

    def __init__(self, node: Node) -> None:
        super().__init__(node)
        self.transport: QuicTransport | None = None

    def start(self) -> Deferred[None]:
        config = self.node.config
        try:
            gateway = running_gateway(self.node, "udp transport")
            transport = QuicTransport(self.node.reactor, config.get("network/host"),
                                      config.get("services/udp-transport/udp-port"), max_packet_size(config),
                                      self.node.home.metadata)
        except Exception as exc:
            return fail(exc)

        def started(_: object) -> None:
            self.transport = transport
            transport.receiver = gateway
            gateway.add_transport(transport)

        return transport.start().addCallback(started)

    def stop(self) -> Deferred[None]:
        transport, self.transport = self.transport, None
        gateway = getattr(self.node.services.instance("service_gateway"), "gateway", None)
        if gateway is not None:
            gateway.remove_transport(PROTO)
        if transport is None:
            return succeed(None)
        transport.receiver = None
        return transport.stop()
