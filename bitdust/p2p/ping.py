"""ping: is a peer reachable? Fetch its identity, send it mine, wait for its Ack.

Every node Acks a valid incoming Identity packet (the gateway does), so this works
against any node without a dedicated command.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from twisted.internet.defer import inlineCallbacks

from bitdust.identity.cache import IdentityFetchError
from bitdust.identity.document import Identity
from bitdust.identity.idurl import IdurlError, parse_idurl
from bitdust.transport.fail import fail_reason
from bitdust.transport.packet import Command, Packet

if TYPE_CHECKING:
    from bitdust.node import Node
    from bitdust.transport.gateway import Gateway

ATTEMPTS = 3
"""Sends within one ping's timeout: a lost first packet does not fail the ping."""
MIN_ATTEMPT_SECONDS = 0.5


class PingError(RuntimeError):
    """The peer could not be reached; the message says at which step."""


@inlineCallbacks
def fresh_identity(node: Node, idurl: str, timeout: float) -> Any:
    """The peer's identity as its server serves it now, else the cached copy (the server
    may be down while the peer is up). IdentityFetchError when neither is there."""
    try:
        identity = yield node.identity_cache.fetch(idurl, timeout)
    except IdentityFetchError:
        identity = node.identity_cache.get_cached(idurl)
        if identity is None:
            raise
    return identity


@inlineCallbacks
def ping(node: Node, gateway: Gateway, idurl: str, timeout: float) -> Any:
    """Fire with the peer's Ack packet; PingError otherwise."""
    try:
        parse_idurl(idurl)
    except (IdurlError, TypeError) as exc:
        raise PingError(f"bad idurl {idurl!r}: {exc}") from None
    me: Identity | None = node.my_identity
    if me is None:
        raise PingError("this node has no identity yet: run `bitdust identity create NAME`")
    clock = node.clock
    deadline = clock.seconds() + timeout
    try:
        yield fresh_identity(node, idurl, timeout)
    except IdentityFetchError as exc:
        raise PingError(f"identity of {idurl} is not available: {exc}") from None
    packet = yield gateway.sign_packet(Command.Identity, me.to_xml(), idurl)
    per_attempt = max(MIN_ATTEMPT_SECONDS, (deadline - clock.seconds()) / ATTEMPTS)
    try:
        reply = yield gateway.outbox(packet, idurl, timeout=per_attempt, retries=ATTEMPTS - 1)
    except Exception as exc:
        raise PingError(f"{idurl} did not answer: {exc}") from None
    if reply is None or reply.command is not Command.Ack:
        raise PingError(f"{idurl} refused my identity: {fail_reason(reply).reason}")
    return reply


def describe_ack(reply: Packet) -> str:
    """The spec's short form: ``(signed.Packet[Ack(Identity) bob|bob for alice], in_<id>(DONE))``."""
    return (f"(signed.Packet[{reply.command.value}(Identity) {_name(reply.creator_id)}|{_name(reply.owner_id)} "
            f"for {_name(reply.remote_id)}], in_{reply.packet_id}(DONE))")


def _name(idurl: str) -> str:
    try:
        return parse_idurl(idurl).name
    except IdurlError:
        return idurl
