"""service_identity_server: hosts identity documents over HTTP.

It runs its own HTTP listener (``services/identity-server/web-port`` on
``network/host``), separate from the peer TCP listener of ``service_tcp_connections``,
so it only needs ``service_network`` (the table says so too).
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import TYPE_CHECKING, Any

from twisted.internet.defer import Deferred, maybeDeferred, succeed

from bitdust.identity.server import IdentityServerResource, IdentityStore, make_site
from bitdust.services.service import Service

if TYPE_CHECKING:
    from bitdust.node import Node

log = logging.getLogger(__name__)


class IdentityServerService(Service):
    name = "service_identity_server"

    def __init__(self, node: Node) -> None:
        super().__init__(node)
        self.listening: Any = None
        self.resource: IdentityServerResource | None = None

    @property
    def folder(self) -> Path:
        return self.node.home.root / "identityserver"

    @property
    def port(self) -> int:
        """The port really listened on (differs from config when that was 0)."""
        if self.listening is None:
            raise RuntimeError("the identity server is not running")
        return int(self.listening.getHost().port)

    def start(self) -> Deferred[None]:
        host = self.node.config.get("network/host")
        wanted = self.node.config.get("services/identity-server/web-port")
        self.resource = IdentityServerResource(IdentityStore(self.folder), host, wanted)
        site = make_site(self.resource)
        # listenTCP raises CannotListenError synchronously; maybeDeferred turns it into a
        # failed start the driver reports.
        return maybeDeferred(self._listen, site, wanted, host)

    def _listen(self, site: Any, port: int, host: str) -> None:
        self.listening = self.node.reactor.listenTCP(port, site, interface=host)
        if self.resource is not None:
            self.resource.port = self.port
        log.info("identity server listens on http://%s:%d/", host, self.port)

    def stop(self) -> Deferred[None]:
        listening, self.listening = self.listening, None
        self.resource = None
        if listening is None:
            return succeed(None)
        return maybeDeferred(listening.stopListening).addCallback(lambda _: None)
