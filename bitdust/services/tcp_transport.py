"""service_tcp_transport: packets over the TCP connections, the gateway's first choice."""

from __future__ import annotations

from twisted.internet.defer import Deferred, fail, succeed

from bitdust.services.gateway import running_gateway
from bitdust.services.service import Service
from bitdust.services.tcp_connections import TcpConnectionsService
from bitdust.transport.tcp import PROTO, TcpTransport


class TcpTransportService(Service):
    name = "service_tcp_transport"

    def start(self) -> Deferred[None]:
        listener = self.node.services.instance("service_tcp_connections")
        if not isinstance(listener, TcpConnectionsService) or listener.connections is None:
            return fail(RuntimeError("service_tcp_connections is not running"))
        gateway = running_gateway(self.node, "tcp transport")
        listener.connections.receiver = gateway
        gateway.add_transport(TcpTransport(listener.connections))
        return succeed(None)

    def stop(self) -> Deferred[None]:
        listener = self.node.services.instance("service_tcp_connections")
        if isinstance(listener, TcpConnectionsService) and listener.connections is not None:
            listener.connections.receiver = None
        gateway_service = self.node.services.instance("service_gateway")
        gateway = getattr(gateway_service, "gateway", None)
        if gateway is not None:
            gateway.remove_transport(PROTO)
        return succeed(None)
