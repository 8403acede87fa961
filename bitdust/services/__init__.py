"""Services: switchable parts of the daemon, started in dependency order.

:func:`built_services` maps each service whose code exists to its class; the rest of
the table in :mod:`bitdust.services.service` shows as NOT_INSTALLED.
"""

from __future__ import annotations

from bitdust.services.service import Service


def built_services() -> dict[str, type[Service]]:
    from bitdust.services.dht import DhtService
    from bitdust.services.gateway import GatewayService
    from bitdust.services.identity_propagate import IdentityPropagateService
    from bitdust.services.identity_server import IdentityServerService
    from bitdust.services.network import NetworkService
    from bitdust.services.tcp_connections import TcpConnectionsService
    from bitdust.services.tcp_transport import TcpTransportService
    from bitdust.services.udp_transport import UdpTransportService

    return {cls.name: cls for cls in (NetworkService, IdentityServerService, IdentityPropagateService,
                                      DhtService,
                                      TcpConnectionsService, GatewayService, TcpTransportService,
                                      UdpTransportService)}
