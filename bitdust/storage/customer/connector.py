"""supplier_connector: one machine per supplier, what that supplier says about us.

It asks with ``RequestService`` (:class:`bitdust.storage.market.ServiceRequest`) and
reads the answer: ``Ack`` -> CONNECTED, ``Fail`` -> REFUSED (the reason is kept),
no answer, or the node's gateway saying it serves no RequestService (code
``unavailable``: its supplier service is off; a node still starting stays silent
instead) -> OFFLINE (the time it
went offline is kept: fire_hire compares it with
``services/employer/critically-offline-seconds``). The customer service sends
``connect`` again every ``services/customer/recheck-seconds`` and on
``suppliers_ping()``: asking again is how a customer checks that a supplier is alive
and still serves it (the supplier answers an existing customer with Ack again).
After each Ack it asks ``ListFiles`` to learn how many pieces and bytes it holds.

A supplier that drops us (``customer_reject`` on its side) sends CancelService: the
service feeds ``rejected`` and the machine goes DISCONNECTED until fire_hire replaces
it. ``disconnect`` is our own goodbye (CancelService to the supplier), ``shutdown``
just stops the machine (node stopping: the supplier keeps our data).

All I/O goes through a :class:`SupplierLink`, so the table is tested with a fake one.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any, Protocol

from twisted.internet.defer import Deferred
from twisted.internet.interfaces import IReactorTime
from twisted.python.failure import Failure

from bitdust.automats.automat import ANY, Automat, AutomatRegistry, Transition
from bitdust.storage.market import ServiceRequest
from bitdust.transport.fail import UNAVAILABLE, FailReason
from bitdust.transport.outbox import GatewayError

log = logging.getLogger(__name__)

REQUEST = "REQUEST"
CONNECTED = "CONNECTED"
REFUSED = "REFUSED"
OFFLINE = "OFFLINE"
DISCONNECTED = "DISCONNECTED"
CLOSED = "CLOSED"


class Refused(Exception):
    """The supplier answered Fail; ``failure`` is its reason."""

    def __init__(self, failure: FailReason) -> None:
        super().__init__(f"{failure.code}: {failure.reason}")
        self.failure = failure


class SupplierLink(Protocol):
    """What a connector needs from the network (the customer service provides it)."""

    def request_service(self, idurl: str, request: ServiceRequest) -> Deferred[int]:
        """Fire with the granted quota in bytes; fail with Refused on a Fail answer,
        with GatewayError when the supplier cannot be reached."""

    def cancel_service(self, idurl: str) -> Deferred[None]:
        """Tell the supplier we no longer need it; never fails."""

    def list_files(self, idurl: str) -> Deferred[dict[str, int]]:
        """What the supplier holds for us: piece ID -> bytes."""


class SupplierConnector(Automat):
    name = "supplier_connector"
    initial_state = "AT_STARTUP"
    transitions = {
        ("AT_STARTUP", "connect"): [Transition(REQUEST, ("send_request",))],
        (REQUEST, "ack"): [Transition(CONNECTED, ("remember_offer", "ask_files"))],
        (REQUEST, "fail"): [Transition(REFUSED, ("remember_refusal",))],
        (REQUEST, "timeout"): [Transition(OFFLINE, ("remember_offline",))],
        (CONNECTED, "connect"): [Transition(CONNECTED, ("send_request",))],
        (CONNECTED, "ack"): [Transition(CONNECTED, ("remember_offer", "ask_files"))],
        (CONNECTED, "fail"): [Transition(REFUSED, ("remember_refusal",))],
        (CONNECTED, "timeout"): [Transition(OFFLINE, ("remember_offline",))],
        (CONNECTED, "files"): [Transition(CONNECTED, ("remember_files",))],
        (OFFLINE, "connect"): [Transition(OFFLINE, ("send_request",))],
        (OFFLINE, "ack"): [Transition(CONNECTED, ("remember_offer", "ask_files"))],
        (OFFLINE, "fail"): [Transition(REFUSED, ("remember_refusal",))],
        (REFUSED, "connect"): [Transition(REQUEST, ("send_request",))],
        (ANY, "rejected"): [Transition(DISCONNECTED, ("remember_rejection",))],
        (ANY, "disconnect"): [Transition(CLOSED, ("send_cancel", "destroy_me"))],
        (ANY, "shutdown"): [Transition(CLOSED, ("destroy_me",))],
    }

    def __init__(self, clock: IReactorTime, registry: AutomatRegistry | None, link: SupplierLink, idurl: str,
                 position: int, request_for: Callable[[int], ServiceRequest]) -> None:
        self.link = link
        self.idurl = idurl
        self.position = position
        self.request_for = request_for
        self.quota_bytes = 0
        self.numfiles: int | None = None
        self.used_bytes: int | None = None
        self.reason = ""
        self.offline_since: float | None = None
        self.last_answer: float | None = None
        self._asking = False
        self._asking_files = False
        super().__init__(clock, registry, instance_name=f"supplier_connector[{position}:{idurl}]")

    # -- what fire_hire and the API read -----------------------------------------------

    def offline_for(self) -> float:
        """Seconds since the supplier stopped answering (0 when it answers)."""
        if self.state != OFFLINE or self.offline_since is None:
            return 0.0
        return max(0.0, self.clock.seconds() - self.offline_since)

    # -- actions -------------------------------------------------------------------------

    def do_send_request(self, *_args: Any) -> None:
        if self._asking:
            return  # one question at a time; its answer serves this `connect` too
        self._asking = True
        request = self.request_for(self.position)
        self.link.request_service(self.idurl, request).addCallbacks(self._answered, self._not_answered)

    def _answered(self, quota: int) -> None:
        self._asking = False
        self.event("ack", quota)

    def _not_answered(self, failure: Failure) -> None:
        self._asking = False
        refused = failure.value
        if isinstance(refused, Refused) and refused.failure.code == UNAVAILABLE:
            self.event("timeout", str(refused))
        elif isinstance(refused, Refused):
            self.event("fail", refused.failure)
        elif failure.check(GatewayError):
            self.event("timeout", failure.getErrorMessage())
        else:
            log.error("%s: request failed:\n%s", self.instance_name, failure.getTraceback())
            self.event("timeout", failure.getErrorMessage())

    def do_remember_offer(self, quota: int) -> None:
        self.quota_bytes = quota
        self.reason = ""
        self.offline_since = None
        self.last_answer = self.clock.seconds()

    def do_remember_refusal(self, failure: FailReason) -> None:
        self.reason = f"{failure.code}: {failure.reason}"
        self.offline_since = None
        self.last_answer = self.clock.seconds()

    def do_remember_offline(self, reason: str) -> None:
        self.reason = reason
        if self.offline_since is None:
            self.offline_since = self.clock.seconds()

    def do_remember_rejection(self, reason: str = "") -> None:
        self.reason = "rejected" + (f": {reason}" if reason else "")
        self.offline_since = None

    def do_ask_files(self, *_args: Any) -> None:
        if self._asking_files:
            return
        self._asking_files = True

        def got(pieces: dict[str, int]) -> None:
            self._asking_files = False
            self.event("files", pieces)

        def missed(failure: Failure) -> None:
            self._asking_files = False
            log.info("%s: file list not received: %s", self.instance_name, failure.getErrorMessage())

        self.link.list_files(self.idurl).addCallbacks(got, missed)

    def do_remember_files(self, pieces: dict[str, int]) -> None:
        self.numfiles = len(pieces)
        self.used_bytes = sum(pieces.values())

    def do_send_cancel(self, *_args: Any) -> None:
        self.link.cancel_service(self.idurl)

    def do_destroy_me(self, *_args: Any) -> None:
        self.destroy()
