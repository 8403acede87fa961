"""API calls of the p2p services: ping, private messages, broadcasts. Kept apart from
``methods.py`` so that file stays a table; the shapes are documented on the methods there."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, TypeVar

from twisted.internet.defer import inlineCallbacks

from bitdust.api.results import error, ok
from bitdust.p2p.broadcast import BroadcastError
from bitdust.p2p.inbox import InboxBusy
from bitdust.p2p.ping import PingError, describe_ack
from bitdust.services.service import Service, ServiceUnavailable

if TYPE_CHECKING:
    from bitdust.node import Node

S = TypeVar("S", bound=Service)

MAX_PING_TIMEOUT = 300.0
RECEIVE_TIMEOUT = 20.0
"""Default wait of receive_one_message: under the 30 s the CLI and client wait for an answer."""


def running(node: Node, name: str, cls: type[S], method: str) -> S:
    """The service ``name`` if it is ON; ServiceUnavailable (an ERROR answer) otherwise."""
    if not node.services.installed(name) or not node.services.is_on(name):
        raise ServiceUnavailable(f"{method} is not available: {name} is not running")
    service = node.services.instance(name)
    if not isinstance(service, cls):
        raise ServiceUnavailable(f"{method} is not available: {name} is not running")
    return service


def _seconds(value: Any, what: str, default: float, limit: float) -> float:
    if value is None:
        return default
    if isinstance(value, bool) or not isinstance(value, int | float) or not 0 < value <= limit:
        raise ValueError(f"{what} must be a number of seconds between 0 and {limit:g}, not {value!r}")
    return float(value)


@inlineCallbacks
def ping(node: Node, idurl: Any, timeout: Any) -> Any:
    from bitdust.services.p2p_hookups import P2PHookupsService

    service = running(node, "service_p2p_hookups", P2PHookupsService, "ping")
    try:
        seconds = _seconds(timeout, "timeout", 10.0, MAX_PING_TIMEOUT)
    except ValueError as exc:
        return error(str(exc))
    if not isinstance(idurl, str):
        return error(f"bad idurl {idurl!r}")
    try:
        reply = yield service.ping(idurl, seconds)
    except PingError as exc:
        return error(f"ping {idurl} failed: {exc}")
    return ok(describe_ack(reply))


@inlineCallbacks
def send_message(node: Node, recipient: Any, message_body: Any) -> Any:
    from bitdust.services.private_messages import PrivateMessagesService, SendError

    service = running(node, "service_private_messages", PrivateMessagesService, "send_message")
    try:
        packet = yield service.send(recipient, message_body)
    except SendError as exc:
        return error(str(exc))
    return ok([f"signed.Packet[Message({packet.packet_id})]"], recipient=packet.remote_id)


def receive_one_message(node: Node, timeout: Any) -> Any:
    from bitdust.services.p2p_hookups import P2PHookupsService
    from bitdust.services.private_messages import PrivateMessagesService

    running(node, "service_private_messages", PrivateMessagesService, "receive_one_message")
    hookups = running(node, "service_p2p_hookups", P2PHookupsService, "receive_one_message")
    try:
        seconds = _seconds(timeout, "timeout", RECEIVE_TIMEOUT, 600.0)
        return hookups.running_inbox().take(seconds).addCallback(ok)
    except (ValueError, InboxBusy) as exc:
        return error(str(exc))


@inlineCallbacks
def broadcast_send_message(node: Node, payload: Any) -> Any:
    from bitdust.services.broadcasting import BroadcastingService

    service = running(node, "service_broadcasting", BroadcastingService, "broadcast_send_message")
    try:
        envelope, acked, targets = yield service.send(payload)
    except BroadcastError as exc:
        return error(f"broadcast_send_message: {exc}")
    return ok(f"broadcast message {envelope.broadcast_id} was sent to {acked} of {len(targets)} known node(s)",
              id=envelope.broadcast_id, acked=acked, peers=len(targets))
