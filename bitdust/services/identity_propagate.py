"""service_identity_propagate: keeps this node's identity current on its servers.

On start it loads the saved identity (``bitdust identity create`` made it) into
``node.my_identity`` and the identity cache, re-signs it if the contacts in the config
or the packet key (``metadata/packetkey``) changed since, or if it predates packet keys
(revision + 1, one step for all of them), and POSTs it to its servers. A later change of a contact
option does the same while running. Publishing runs in the background: a server that
is down must not hold up the node's start; the outcome is logged and kept in
``last_results``.

Without a saved identity the service still starts (the node can serve, and
:meth:`IdentityPropagateService.register` can make one through the API) but
``node.my_identity`` stays None.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

from twisted.internet.defer import Deferred, inlineCallbacks, maybeDeferred

from bitdust.crypto.keys import PrivateKey
from bitdust.crypto.packet_keys import PacketSigningKey
from bitdust.identity.document import Identity, IdentityError
from bitdust.identity.idurl import valid_name
from bitdust.identity.my_id import (
    CONTACT_OPTIONS,
    build_identity,
    known_servers,
    load_current_identity,
    my_contacts,
    save_my_identity,
)
from bitdust.identity.publisher import publish
from bitdust.services.service import Service

if TYPE_CHECKING:
    from bitdust.node import Node

log = logging.getLogger(__name__)

PUBLISH_TIMEOUT = 10.0


class IdentityPropagateService(Service):
    name = "service_identity_propagate"

    def __init__(self, node: Node) -> None:
        super().__init__(node)
        self.publishing: Deferred[dict[str, str]] | None = None
        self.last_results: dict[str, str] = {}
        # One bound method, so that unlisten() finds the very object listen() got.
        self._listener = self._on_config_change

    # -- lifecycle ----------------------------------------------------------------

    def start(self) -> Deferred[None]:
        return maybeDeferred(self._start)

    def _start(self) -> None:
        identity, changed = load_current_identity(self.node.home, self._key(), self._packet_key(),
                                                  my_contacts(self.node.config))
        if identity is None:
            log.warning("no identity yet: run `bitdust identity create NAME`")
        else:
            if changed:
                log.info("re-signed my identity as revision %d (contacts or packet key changed)", identity.revision)
            self._install(identity, save=changed)
            self.publish()
        for option in CONTACT_OPTIONS:
            self.node.config.listen(option, self._listener)

    def stop(self) -> Deferred[None]:
        self.node.config.unlisten(self._listener)
        publishing, self.publishing = self.publishing, None
        if publishing is not None and not publishing.called:
            publishing.cancel()
        return maybeDeferred(lambda: None)

    # -- identity -----------------------------------------------------------------

    def refresh(self) -> Deferred[dict[str, str]] | None:
        """Re-sign and publish if the contacts changed; None when nothing changed."""
        current = self.node.my_identity
        if current is None:
            return None
        refreshed = self._with_current_contacts(current)
        if refreshed is current:
            return None
        self._install(refreshed)
        return self.publish()

    def publish(self) -> Deferred[dict[str, str]]:
        """POST my identity to its servers; fires with ``{idurl: "OK" | reason}``."""
        identity = self.node.my_identity
        if identity is None:
            raise IdentityError("no identity to publish: run `bitdust identity create NAME`")
        if self.publishing is not None and not self.publishing.called:
            self.publishing.cancel()  # an older revision: no point finishing it
        self.publishing = publish(self.node.reactor, self.node.clock, identity, PUBLISH_TIMEOUT)
        return self.publishing.addCallback(self._published, identity)

    @inlineCallbacks
    def register(self, name: str) -> Any:
        """Make (or re-make) my identity as ``name`` on every known server.

        Saved only when every server took it, so a refused name leaves the old identity.
        """
        if not valid_name(name):
            raise IdentityError(f"bad name {name!r}: expected 3-20 chars of a-z, 0-9, '-' and '_'")
        identity = build_identity(self._key(), name, known_servers(self.node.config),
                                  my_contacts(self.node.config), previous=self.node.my_identity,
                                  packet_key=self._packet_key())
        results = yield publish(self.node.reactor, self.node.clock, identity, PUBLISH_TIMEOUT)
        refused = {idurl: reason for idurl, reason in results.items() if reason != "OK"}
        if refused:
            raise IdentityError("; ".join(f"{idurl}: {reason}" for idurl, reason in refused.items()))
        self._install(identity)
        self.last_results = results
        return identity

    # -- internals ----------------------------------------------------------------

    def _key(self) -> PrivateKey:
        if self.node.key is None:
            raise IdentityError("the node has no key yet")
        return self.node.key

    def _packet_key(self) -> PacketSigningKey:
        if self.node.packet_key is None:
            raise IdentityError("the node has no packet key yet")
        return self.node.packet_key

    def _with_current_contacts(self, identity: Identity) -> Identity:
        return identity.updated(self._key(), contacts=my_contacts(self.node.config), packet_key=self._packet_key())

    def _install(self, identity: Identity, save: bool = True) -> None:
        if save:
            save_my_identity(self.node.home, identity)
        self.node.my_identity = identity
        if not self.node.identity_cache.add(identity):
            log.warning("the identity cache refused my own identity %s (revision %d)", identity.idurl,
                        identity.revision)

    def _published(self, results: dict[str, str], identity: Identity) -> dict[str, str]:
        self.last_results = results
        for idurl, outcome in results.items():
            if outcome == "OK":
                log.info("published %s revision %d", idurl, identity.revision)
            else:
                log.warning("publishing %s failed: %s", idurl, outcome)
        return results

    def _on_config_change(self, key: str, _old: Any, _new: Any) -> None:
        if key not in CONTACT_OPTIONS:
            return
        try:
            self.refresh()
        except (IdentityError, ValueError) as exc:
            log.error("cannot refresh my identity after %s changed: %s", key, exc)
