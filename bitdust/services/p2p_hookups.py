"""service_p2p_hookups: the p2p_connector, ping, and the inbox of received messages.

Commands are dispatched by the gateway to handlers registered per Command; services
built on this one (private_messages, broadcasting, later supplier/customer) register
theirs on start and remove them on stop. This service handles ``Identity`` packets
only to remember who talked to us (the gateway itself checks, caches and Acks them),
so those peers hear about our next identity change.

The inbox (:class:`bitdust.p2p.inbox.Inbox`) lives here rather than in
private_messages because broadcasts land in it too, and both services depend on this
one.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from twisted.internet.defer import Deferred, maybeDeferred, succeed

from bitdust.automats.automat import Automat
from bitdust.p2p.connector import P2PConnector
from bitdust.p2p.inbox import Inbox
from bitdust.p2p.ping import ping
from bitdust.services.gateway import running_gateway
from bitdust.services.service import Service, ServiceUnavailable
from bitdust.transport.gateway import Gateway
from bitdust.transport.packet import Command, Packet

if TYPE_CHECKING:
    from bitdust.node import Node


class P2PHookupsService(Service):
    name = "service_p2p_hookups"

    def __init__(self, node: Node) -> None:
        super().__init__(node)
        self.connector: P2PConnector | None = None
        self.inbox: Inbox | None = None
        self._gateway: Gateway | None = None
        self._network_reconnecting = False
        # Bound once, so remove_* gets the very object add_* got.
        self._identity_handler = self._on_identity
        self._network_listener = self._on_network_state
        self._change_listener = self._on_identity_or_peers_change

    def start(self) -> Deferred[None]:
        return maybeDeferred(self._start)

    def _start(self) -> None:
        self._gateway = running_gateway(self.node, self.name)
        self.inbox = Inbox(self.node.clock)
        self.connector = P2PConnector(self.node.clock, self.node.automats, lambda: self.node.my_identity,
                                      self._running_gateway, self._network_problem, self.node.relationships.peers)
        self.node.add_identity_listener(self._change_listener)
        self.node.relationships.add_listener(self._change_listener)
        self._gateway.add_handler(Command.Identity, self._identity_handler)
        network = self._network_connector()
        if network is not None:
            network.add_state_listener(self._network_listener)
        self.connector.event("init")

    def stop(self) -> Deferred[None]:
        self.node.remove_identity_listener(self._change_listener)
        self.node.relationships.remove_listener(self._change_listener)
        network = self._network_connector()
        if network is not None:
            network.remove_state_listener(self._network_listener)
        if self._gateway is not None:
            self._gateway.remove_handler(Command.Identity, self._identity_handler)
        self._gateway = None
        if self.inbox is not None:
            self.inbox.close()
            self.inbox = None
        if self.connector is not None:
            self.connector.event("shutdown")
            self.connector = None
        return succeed(None)

    # -- for the API and other services --------------------------------------------------

    def running_connector(self) -> P2PConnector:
        if self.connector is None:
            raise ServiceUnavailable(f"{self.name} is not running")
        return self.connector

    def running_inbox(self) -> Inbox:
        if self.inbox is None:
            raise ServiceUnavailable(f"{self.name} is not running")
        return self.inbox

    def gateway(self) -> Gateway:
        gateway = self._running_gateway()
        if gateway is None:
            raise ServiceUnavailable("service_gateway is not running")
        return gateway

    def touch(self, idurl: str) -> None:
        """A peer we exchanged packets with: told first when our identity changes."""
        if self.connector is not None:
            self.connector.touch(idurl)

    def ping(self, idurl: str, timeout: float) -> Deferred[Packet]:
        gateway = self.gateway()
        pinging: Deferred[Packet] = ping(self.node, gateway, idurl, timeout)

        def acked(reply: Packet) -> Packet:
            self.touch(idurl)
            return reply

        return pinging.addCallback(acked)

    # -- internals -----------------------------------------------------------------------

    def _running_gateway(self) -> Gateway | None:
        gateway = self._gateway
        return gateway if gateway is not None and gateway.running else None

    def _on_identity(self, packet: Packet) -> None:
        self.touch(packet.creator_id)

    def _on_identity_or_peers_change(self, *_args: Any) -> None:
        """New contacts or a new supplier/customer: tell them now, not at the 30 s check."""
        if self.connector is not None:
            self.connector.event("changed")

    def _network_connector(self) -> Any:
        from bitdust.services.network import NetworkService

        if not self.node.services.installed("service_network"):
            return None
        service = self.node.services.instance("service_network")
        return service.connector if isinstance(service, NetworkService) else None

    def _network_problem(self) -> str | None:
        network = self._network_connector()
        if network is None or network.state in ("CONNECTED", "CONNECTING"):
            return None
        return "network is down: " + ("; ".join(network.problems) or network.state)

    def _on_network_state(self, _machine: Automat, _old: str, new: str, event: str) -> None:
        """Re-announce ourselves when the network comes back or the user asked to reconnect."""
        connector = self.connector
        if connector is None:
            return
        if event == "reconnect":
            self._network_reconnecting = True
        if new == "DISCONNECTED":
            self._network_reconnecting = True
            connector.event("network-down")
        elif new == "CONNECTED" and self._network_reconnecting:
            self._network_reconnecting = False
            connector.event("reconnect")
