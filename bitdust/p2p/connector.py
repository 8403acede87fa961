"""p2p_connector: is this node reachable by its peers right now?

The node is CONNECTED for peers when it has an identity, its gateway runs and the
network_connector says the network is up. On entering CONNECTED (at start, after the
network came back, after ``reconnect`` or after the identity changed: new contacts,
new revision) it sends its Identity packet to its recent contacts and to the peers it
has a lasting relationship with (suppliers, customers: ``node.relationships``), so they
learn the new contacts at once instead of failing on the old ones. A relationship peer
that did not Ack (offline, or hired later) is sent it again on the next check, so a
supplier that comes back after our restart still hears about our new ports.

The checks are cheap attribute reads, so the machine simply re-checks on timers
(every 2 s while DISCONNECTED, every 30 s while CONNECTED) rather than being wired to
every part that could change them.
"""

from __future__ import annotations

import logging
from collections import OrderedDict
from collections.abc import Callable
from typing import Any

from twisted.internet.defer import DeferredList
from twisted.internet.interfaces import IReactorTime

from bitdust.automats.automat import ANY, Automat, AutomatRegistry, Timer, Transition
from bitdust.identity.document import Identity
from bitdust.transport.gateway import Gateway
from bitdust.transport.packet import Command

log = logging.getLogger(__name__)

MAX_CONTACTS = 100
"""Recent peers remembered (oldest forgotten first)."""
PROPAGATE_TO = 20
"""Recent peers told about a new identity; the rest learn it from the idurl's server."""
PROPAGATE_TIMEOUT = 5.0
MAX_RELATIONSHIP_PEERS = 200
"""Relationship peers (suppliers + customers) told about a new identity at most."""

PeerList = Callable[[int], list[str]]

Readiness = Callable[[], str | None]
"""None when the node can be online, else the reason why not."""


class P2PConnector(Automat):
    name = "p2p_connector"
    initial_state = "AT_STARTUP"
    transitions = {
        ("AT_STARTUP", "init"): [Transition("MY_IDENTITY", ("check",))],
        ("MY_IDENTITY", "ready"): [Transition("PROPAGATE", ("propagate",))],
        ("MY_IDENTITY", "not-ready"): [Transition("DISCONNECTED", ("report_problem",))],
        ("PROPAGATE", "propagated"): [Transition("CONNECTED", ("report_connected", "repeat_if_changed"))],
        ("PROPAGATE", "changed"): [Transition("PROPAGATE", ("remember_change",))],
        ("CONNECTED", "timer-30sec"): [Transition("MY_IDENTITY", ("check",), guard="changed")],
        ("CONNECTED", "changed"): [Transition("MY_IDENTITY", ("check",), guard="changed")],
        ("DISCONNECTED", "changed"): [Transition("MY_IDENTITY", ("check",))],
        ("CONNECTED", "reconnect"): [Transition("MY_IDENTITY", ("forget_propagated", "check"))],
        ("CONNECTED", "network-down"): [Transition("DISCONNECTED", ("report_problem",))],
        ("DISCONNECTED", "timer-2sec"): [Transition("MY_IDENTITY", ("check",))],
        ("DISCONNECTED", "reconnect"): [Transition("MY_IDENTITY", ("check",))],
        (ANY, "shutdown"): [Transition("CLOSED", ("destroy_me",))],
    }
    timers = {
        "timer-2sec": Timer(2.0, ("DISCONNECTED",)),
        "timer-30sec": Timer(30.0, ("CONNECTED",)),
    }

    def __init__(self, clock: IReactorTime, registry: AutomatRegistry | None,
                 my_identity: Callable[[], Identity | None], gateway: Callable[[], Gateway | None],
                 network_problem: Readiness, relationship_peers: PeerList | None = None) -> None:
        """``relationship_peers(limit)`` lists suppliers and customers: they are told
        about every new identity along with the recent contacts."""
        super().__init__(clock, registry)
        self._my_identity = my_identity
        self._gateway = gateway
        self._network_problem = network_problem
        self._relationship_peers = relationship_peers
        self.told: set[str] = set()
        """Relationship peers that Acked the identity in ``propagated``."""
        self._changed_meanwhile = False
        self.contacts: OrderedDict[str, None] = OrderedDict()
        self.problem = ""
        self.propagated: tuple[str, int] | None = None
        """(idurl, revision) last sent to the contacts."""
        self.last_acked = 0

    @property
    def online(self) -> bool:
        return self.state == "CONNECTED"

    def touch(self, idurl: str) -> None:
        """Remember a peer we exchanged packets with (most recent last)."""
        me = self._my_identity()
        if me is not None and idurl in me.sources:
            return
        self.contacts.pop(idurl, None)
        self.contacts[idurl] = None
        while len(self.contacts) > MAX_CONTACTS:
            self.contacts.popitem(last=False)

    def recent_contacts(self, limit: int) -> list[str]:
        return list(self.contacts)[-limit:][::-1]

    # -- guards --------------------------------------------------------------------

    def is_changed(self, *_args: Any) -> bool:
        me = self._my_identity()
        current = (me.idurl, me.revision) if me is not None else None
        return current != self.propagated or self._problem() is not None or bool(self._untold())

    # -- actions -------------------------------------------------------------------

    def do_check(self, *_args: Any) -> None:
        problem = self._problem()
        if problem is None:
            self.event("ready")
        else:
            self.event("not-ready", problem)

    def do_propagate(self, *_args: Any) -> None:
        me, gateway = self._my_identity(), self._gateway()
        if me is None or gateway is None:
            self.event("propagated", 0)
            return
        version = (me.idurl, me.revision)
        if version == self.propagated:
            targets = self._untold()  # the recent contacts already have this one
        else:
            self.told = set()
            targets = list(dict.fromkeys(self.recent_contacts(PROPAGATE_TO) + self._relationships()))
        targets = [idurl for idurl in targets if idurl not in me.sources]
        if not targets:
            self.propagated = version
            self.event("propagated", 0)
            return
        payload = me.to_xml()
        sends = []
        for idurl in targets:
            # Signed in the thread pool: twenty RSA signatures would stall the reactor.
            signing = gateway.sign_packet(Command.Identity, payload, idurl)
            sends.append(signing.addCallback(
                lambda packet, to: gateway.outbox(packet, to, timeout=PROPAGATE_TIMEOUT, retries=0), idurl))

        def done(results: list[tuple[bool, Any]]) -> None:
            acked_by = [idurl for idurl, (success, reply) in zip(targets, results, strict=True)
                        if success and reply is not None and reply.command is Command.Ack]
            acked = len(acked_by)
            if self.propagated != version:
                self.told = set()
            self.told.update(acked_by)
            self.propagated = version
            self.event("propagated", acked)

        DeferredList(sends, consumeErrors=True).addCallback(done)

    def do_forget_propagated(self, *_args: Any) -> None:
        self.propagated = None

    def do_remember_change(self, *_args: Any) -> None:
        self._changed_meanwhile = True

    def do_repeat_if_changed(self, *_args: Any) -> None:
        """A change (a new identity, a supplier hired) that came in while sending."""
        if self._changed_meanwhile:
            self._changed_meanwhile = False
            self.event("changed")

    def do_report_problem(self, reason: str = "", *_args: Any) -> None:
        self.problem = reason or "network is down"
        self.propagated = None  # tell the contacts again once back
        log.info("p2p_connector: not online: %s", self.problem)

    def do_report_connected(self, acked: int = 0, *_args: Any) -> None:
        self.problem = ""
        self.last_acked = acked
        log.info("p2p_connector: online (identity acked by %d contact(s))", acked)

    def do_destroy_me(self, *_args: Any) -> None:
        self.destroy()

    # -- internals -------------------------------------------------------------------

    def _relationships(self) -> list[str]:
        return self._relationship_peers(MAX_RELATIONSHIP_PEERS) if self._relationship_peers is not None else []

    def _untold(self) -> list[str]:
        """Relationship peers that have not Acked our current identity yet."""
        me = self._my_identity()
        if self.propagated is None or me is None:
            return []
        return [idurl for idurl in self._relationships() if idurl not in self.told and idurl not in me.sources]

    def _problem(self) -> str | None:
        if self._my_identity() is None:
            return "this node has no identity yet"
        gateway = self._gateway()
        if gateway is None or not gateway.running:
            return "the gateway is not running"
        return self._network_problem()
