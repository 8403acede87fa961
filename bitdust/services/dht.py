"""service_dht: this node's Kademlia DHT, its nickname holder, and the records API.

Listens on UDP ``network/host``:``services/dht/udp-port`` (never on every interface)
and bootstraps from ``services/dht/known-nodes``. A node that found nobody (the seed
was not up yet) tries the seeds again every :data:`REJOIN_SECONDS` while alone.

Records are checked against the publisher's identity through ``node.identity_cache``
(a record whose publisher cannot be resolved is rejected; see
:class:`bitdust.dht.kad.DhtNode`). The nickname saved in ``personal/nickname`` is
registered again on every start, so it stays held while the node runs.

``service_nodes_lookup`` (random node discovery over p2p_hookups) is a separate service
of the table and is not part of this one.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

from twisted.internet.defer import Deferred, maybeDeferred, succeed
from twisted.internet.task import LoopingCall
from twisted.python.failure import Failure

from bitdust.crypto.keys import PrivateKey, PublicKey
from bitdust.dht.kad import DhtError, DhtNode
from bitdust.dht.nicknames import NicknameHolder
from bitdust.dht.protocol import parse_seeds, set_library_log_level
from bitdust.services.service import Service, ServiceUnavailable

if TYPE_CHECKING:
    from bitdust.node import Node

log = logging.getLogger(__name__)

REJOIN_SECONDS = 60.0
IDENTITY_TIMEOUT = 5.0


class DhtService(Service):
    name = "service_dht"

    def __init__(self, node: Node) -> None:
        super().__init__(node)
        self.dht: DhtNode | None = None
        self.nickname_holder: NicknameHolder | None = None
        self._rejoin: LoopingCall | None = None
        self._log_listener = self._on_debug_level

    # -- lifecycle ----------------------------------------------------------------

    def start(self) -> Deferred[None]:
        config = self.node.config
        set_library_log_level(config.get("logs/debug-level"))
        config.listen("logs/debug-level", self._log_listener)
        seeds = parse_seeds(config.get("services/dht/known-nodes"))
        dht = DhtNode(self.node.reactor, identity_lookup=self._identity_key)

        def started(neighbours: int) -> None:
            self.dht = dht
            log.info("DHT is up on %s:%s with %d neighbour(s)", dht.host, dht.port, neighbours)
            self._rejoin = LoopingCall(self._rejoin_if_alone)
            self._rejoin.clock = self.node.clock
            self._rejoin.start(REJOIN_SECONDS, now=False)
            nickname = config.get("personal/nickname")
            if nickname:
                maybeDeferred(self.hold_nickname, nickname).addErrback(self._log_failure, "nickname " + nickname)

        def failed(failure: Failure) -> Failure:
            dht.stop()  # the socket may be open even though bootstrapping failed
            return failure

        port, host = config.get("services/dht/udp-port"), config.get("network/host")
        return dht.start(port, host, seeds).addCallbacks(started, failed)

    def stop(self) -> Deferred[None]:
        self.node.config.unlisten(self._log_listener)
        if self._rejoin is not None and self._rejoin.running:
            self._rejoin.stop()
        self._rejoin = None
        if self.nickname_holder is not None:
            self.nickname_holder.event("stop")
            self.nickname_holder = None
        dht, self.dht = self.dht, None
        return dht.stop() if dht is not None else succeed(None)

    # -- for the API and other services ----------------------------------------------

    def running_dht(self) -> DhtNode:
        if self.dht is None or not self.dht.running:
            raise ServiceUnavailable("service_dht is not running")
        return self.dht

    def hold_nickname(self, nickname: str) -> Deferred[tuple[str, str]]:
        """Register ``nickname`` and keep it; fires with the holder's first result."""
        dht = self.running_dht()
        if self.nickname_holder is None:
            self.nickname_holder = NicknameHolder(self.node.clock, self.node.automats, dht, self.whoami)
        return self.nickname_holder.register(nickname)

    def whoami(self) -> tuple[str, PrivateKey] | None:
        identity, key = self.node.my_identity, self.node.key
        if identity is None or key is None:
            return None
        return identity.idurl, key

    # -- internals ----------------------------------------------------------------

    def _identity_key(self, idurl: str) -> Deferred[PublicKey]:
        return self.node.identity_cache.get(idurl, timeout=IDENTITY_TIMEOUT).addCallback(
            lambda identity: identity.public_key)

    def _rejoin_if_alone(self) -> Deferred[Any] | None:
        dht = self.dht
        if dht is None or not dht.seeds or dht.neighbours():
            return None
        return dht.bootstrap().addErrback(self._log_failure, "rejoin")

    def _on_debug_level(self, _key: str, _old: Any, new: Any) -> None:
        set_library_log_level(int(new))

    def _log_failure(self, failure: Failure, what: str) -> None:
        if failure.check(DhtError):
            log.warning("DHT %s: %s", what, failure.getErrorMessage())
        else:
            log.error("DHT %s failed:\n%s", what, failure.getTraceback())
