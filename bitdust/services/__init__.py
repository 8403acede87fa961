"""Services: switchable parts of the daemon, started in dependency order.

:func:`built_services` maps each service whose code exists to its class; the rest of
the table in :mod:`bitdust.services.service` shows as NOT_INSTALLED.
"""

from __future__ import annotations

from bitdust.services.service import Service


def built_services() -> dict[str, type[Service]]:
    from bitdust.services.backup_db import BackupDbService
    from bitdust.services.backups import BackupsService
    from bitdust.services.broadcasting import BroadcastingService
    from bitdust.services.customer import CustomerService
    from bitdust.services.customer_patrol import CustomerPatrolService
    from bitdust.services.data_disintegration import DataDisintegrationService
    from bitdust.services.data_motion import DataMotionService
    from bitdust.services.dht import DhtService
    from bitdust.services.employer import EmployerService
    from bitdust.services.gateway import GatewayService
    from bitdust.services.identity_propagate import IdentityPropagateService
    from bitdust.services.identity_server import IdentityServerService
    from bitdust.services.list_files import ListFilesService
    from bitdust.services.network import NetworkService
    from bitdust.services.nodes_lookup import NodesLookupService
    from bitdust.services.p2p_hookups import P2PHookupsService
    from bitdust.services.private_messages import PrivateMessagesService
    from bitdust.services.rebuilding import RebuildingService
    from bitdust.services.restores import RestoresService
    from bitdust.services.supplier import SupplierService
    from bitdust.services.tcp_connections import TcpConnectionsService
    from bitdust.services.tcp_transport import TcpTransportService
    from bitdust.services.udp_transport import UdpTransportService

    return {cls.name: cls for cls in (NetworkService, IdentityServerService, IdentityPropagateService,
                                      DhtService,
                                      TcpConnectionsService, GatewayService, TcpTransportService,
                                      UdpTransportService,
                                      P2PHookupsService, PrivateMessagesService, BroadcastingService,
                                      SupplierService, CustomerPatrolService,
                                      NodesLookupService, CustomerService, EmployerService,
                                      DataDisintegrationService, DataMotionService, ListFilesService,
                                      BackupDbService, BackupsService, RebuildingService, RestoresService)}
