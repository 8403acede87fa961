"""Node: one BitDust node, built and wired from one home folder.

Everything that lives while a node runs hangs off this object (config, automats,
services, API server, ...), never off module globals: several nodes run side by side
in one process, which is how the fast multi-node tests work.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from twisted.internet.defer import Deferred, succeed
from twisted.internet.threads import deferToThreadPool

from bitdust.api.server import ApiServer
from bitdust.automats.automat import AutomatRegistry
from bitdust.automats.initializer import Initializer
from bitdust.automats.shutdowner import Shutdowner
from bitdust.config import Config
from bitdust.crypto.keys import PrivateKey
from bitdust.crypto.packet_keys import PacketSigningKey
from bitdust.home import Home
from bitdust.identity.cache import IdentityCache
from bitdust.identity.document import Identity
from bitdust.p2p.relations import RelationshipPeers
from bitdust.services import built_services
from bitdust.services.driver import ServiceDriver, ServiceFactory
from bitdust.util.cpu_pool import CpuPool

log = logging.getLogger(__name__)


class StartupError(RuntimeError):
    """The initializer ended in FAILED; the message is its reason."""


class Node:
    def __init__(self, home: Path | str, reactor: Any = None, clock: Any = None,
                 services: Mapping[str, ServiceFactory] | None = None) -> None:
        if reactor is None:
            from twisted.internet import reactor as global_reactor

            reactor = global_reactor
        self.reactor = reactor
        self.clock = clock if clock is not None else reactor
        self.home = Home(Path(home).expanduser().resolve())
        self.home.ensure()
        self.config = Config(self.home.config)
        self.automats = AutomatRegistry()
        self.services = ServiceDriver(self, built_services() if services is None else services)
        self.api: ApiServer | None = None
        self.key: PrivateKey | None = None
        self.packet_key: PacketSigningKey | None = None
        self.identity_cache = IdentityCache(self.home.root / "identitycache", self.reactor, self.clock)
        self._my_identity: Identity | None = None
        self._identity_listeners: list[Callable[[Identity | None], None]] = []
        self.relationships = RelationshipPeers()
        self.cpu_pool = CpuPool(self.reactor)
        """Short CPU work of the packet path (hashing, framing); blocking I/O goes to the
        reactor's own thread pool."""
        self.initializer = Initializer(self)
        self.shutdowner = Shutdowner(self)
        self.shutdowner.event("init")
        self.exit_handler: Callable[[bool], None] = self._stop_in_process

    # -- my identity ------------------------------------------------------------

    @property
    def my_identity(self) -> Identity | None:
        return self._my_identity

    @my_identity.setter
    def my_identity(self, identity: Identity | None) -> None:
        """Listeners hear of every new document: an identity made after start must
        let fire_hire hire at once, new contacts must reach our peers at once."""
        old, self._my_identity = self._my_identity, identity
        if identity is old or (identity is not None and old is not None and identity == old):
            return
        for listener in list(self._identity_listeners):
            try:
                listener(identity)
            except Exception:
                log.exception("an identity listener failed")

    def add_identity_listener(self, listener: Callable[[Identity | None], None]) -> None:
        self._identity_listeners.append(listener)

    def remove_identity_listener(self, listener: Callable[[Identity | None], None]) -> None:
        self._identity_listeners = [fn for fn in self._identity_listeners if fn is not listener]

    # -- lifecycle --------------------------------------------------------------

    def start(self) -> Deferred[None]:
        """Run the initializer; fires when READY, fails with StartupError when FAILED."""
        finished = self.initializer.when_state("READY", "FAILED")
        self.initializer.event("run")

        def check(state: str) -> None:
            if state == "FAILED":
                raise StartupError(self.initializer.failure_reason)

        return finished.addCallback(check)

    def stop(self) -> Deferred[None]:
        """Run the shutdowner; fires when everything is stopped."""
        finished = self.shutdowner.when_state("FINISHED")
        self.shutdowner.event("stop")
        return finished.addCallback(lambda _: self.cpu_pool.stop())

    def request_exit(self, restart: bool = False) -> None:
        """Asked through the API (``stop()``/``restart()``); the daemon decides how."""
        log.info("exit requested (restart=%s)", restart)
        self.exit_handler(restart)

    def _stop_in_process(self, restart: bool) -> None:
        self.stop()

    # -- stages driven by initializer / shutdowner ------------------------------

    def prepare_local(self) -> Deferred[None]:
        """Folders, API secret, the node's RSA key (made on first start, in a thread:
        a 3072-bit key takes up to a second or two) and its Ed25519 packet key (made in
        microseconds, so right here)."""
        self.home.ensure()
        self.home.api_secret(create=True)
        self.packet_key = PacketSigningKey.load_or_create(self.home.packet_key_file)
        if self.home.key_file.is_file():
            self.key = PrivateKey.load(self.home.key_file)
            return succeed(None)
        bits = self.config.get("personal/private-key-size")

        def created(key: PrivateKey) -> None:
            key.save(self.home.key_file)
            self.key = key
            log.info("created a %d-bit RSA key in %s", bits, self.home.key_file)

        pool = self.reactor.getThreadPool()
        return deferToThreadPool(self.reactor, pool, PrivateKey.generate, bits).addCallback(created)

    def start_interfaces(self) -> Deferred[None]:
        self.api = ApiServer(self)
        return self.api.start()

    def stop_interfaces(self) -> Deferred[None]:
        api, self.api = self.api, None
        return api.stop() if api is not None else succeed(None)

    @property
    def api_port(self) -> int:
        """The port the API really listens on (differs from config when it was 0)."""
        if self.api is None:
            raise RuntimeError("the API is not running")
        return self.api.port
