"""Outgoing packets: route over the peer's contacts, wait for the reply, retry, time out.

Kept apart from the inbox side of the gateway: this is the only part with timers.
A send tries each transport in preference order (TCP first, then UDP/QUIC) using the
contact the peer's identity lists for it; the first transport that accepts the bytes
wins. With ``wait_ack`` the attempt is repeated every ``timeout`` seconds, at most
``retries`` more times, until an Ack or Fail with the same PacketID arrives from that
peer. A repeat sends the very same bytes (same PacketID), so a receiver that already
got the packet recognises it and re-sends its reply rather than acting twice.

Written as plain callbacks, not ``inlineCallbacks``: this runs for every packet and
every Ack, and a peer's identity is nearly always cached, so the usual send goes from
:meth:`Outbox.send` to the socket with one Deferred (the transport's) on the way. A
generator-driven attempt cost about 25 more Python calls per packet.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Iterator, Sequence
from typing import TYPE_CHECKING, Any

from twisted.internet.defer import Deferred, fail
from twisted.python.failure import Failure

from bitdust.transport.packet import Frame, Packet
from bitdust.transport.stats import PacketLog, PacketRecord, PacketStats

if TYPE_CHECKING:
    from bitdust.identity.document import Identity
    from bitdust.transport.gateway import Transport

log = logging.getLogger(__name__)

DEFAULT_TIMEOUT = 10.0
DEFAULT_RETRIES = 2
MAX_RETRIES = 10
MAX_PENDING = 4096  # outgoing packets waiting for a reply, per node


class GatewayError(RuntimeError):
    """A packet could not be sent (no route, peer unknown, gateway stopped)."""


class GatewayTimeout(GatewayError):
    """No Ack or Fail arrived after every retry."""


class GatewayBusy(GatewayError):
    """Too many packets are waiting for replies; refused instead of queueing without end."""


class _Outgoing:
    def __init__(self, packet: Packet, frame: Frame, remote: str, wait_ack: bool, timeout: float,
                 retries: int, record: PacketRecord) -> None:
        self.packet = packet
        self.frame = frame
        self.size = record.size
        """The packet's bytes, as stats count them (the frame's length header is not)."""
        self.remote = remote
        self.wait_ack = wait_ack
        self.timeout = timeout
        self.retries = retries
        self.record = record
        self.identity: Identity | None = None
        self.timer: Any = None
        self.done = False
        self.deferred: Deferred[Packet | None] = Deferred(self._cancel)
        self.on_cancel: Callable[[_Outgoing], None] = lambda _o: None

    def _cancel(self, _d: Deferred[Packet | None]) -> None:
        self.on_cancel(self)


class Outbox:
    """Pending sends of one gateway, keyed by (recipient idurl, PacketID)."""

    def __init__(self, clock: Any, stats: PacketStats, packet_log: PacketLog,
                 transports: Callable[[], Sequence[Transport]],
                 find_identity: Callable[[str], Identity | Deferred[Identity]]) -> None:
        self._clock = clock
        self._stats = stats
        self._log = packet_log
        self._transports = transports
        self._find_identity = find_identity
        self._pending: dict[tuple[str, str], _Outgoing] = {}

    def __len__(self) -> int:
        return len(self._pending)

    def send(self, packet: Packet, remote: str, wait_ack: bool, timeout: float,
             retries: int) -> Deferred[Packet | None]:
        if timeout <= 0:
            raise ValueError("timeout must be > 0")
        retries = max(0, min(int(retries), MAX_RETRIES))
        key = (remote, packet.packet_id)
        if wait_ack and key in self._pending:
            raise GatewayError(f"packet {packet.packet_id} to {remote} is already waiting for a reply")
        if len(self._pending) >= MAX_PENDING:
            raise GatewayBusy(f"{MAX_PENDING} packets are already waiting for replies")
        frame = packet.frame()
        record = self._log.start(PacketRecord("out", packet.command.value, packet.packet_id, remote,
                                              frame.body_size, "sending"))
        out = _Outgoing(packet, frame, remote, wait_ack, timeout, retries, record)
        out.on_cancel = lambda o: self._finish(o, "cancelled")
        if wait_ack:
            self._pending[key] = out
        identity = self._find_identity(remote)
        if isinstance(identity, Deferred):
            identity.addCallbacks(self._got_identity, self._no_identity, callbackArgs=(out,), errbackArgs=(out,))
        else:
            self._got_identity(identity, out)
        return out.deferred

    def resolve(self, reply: Packet) -> bool:
        """An Ack or Fail arrived: fire the matching send. False if nothing waited for it."""
        out = self._pending.get((reply.creator_id, reply.packet_id))
        if out is None or out.done:
            return False
        self._finish(out, "acked" if reply.command.value == "Ack" else "failed-reply")
        out.deferred.callback(reply)
        return True

    def stop(self) -> None:
        for out in list(self._pending.values()):
            self._fail(out, GatewayError("the gateway stopped"), "failed")

    # -- steps -------------------------------------------------------------------

    def _got_identity(self, identity: Identity, out: _Outgoing) -> None:
        if out.done:
            return
        out.identity = identity
        self._attempt(out)

    def _no_identity(self, failure: Failure, out: _Outgoing) -> None:
        if out.done:
            return
        self._stats.send_unknown(out.size)
        out.done = True  # counted above, not again in _fail
        self._finish(out, "failed")
        out.deferred.errback(GatewayError(f"identity of {out.remote} is not available: "
                                          f"{failure.getErrorMessage()}"))

    def _attempt(self, out: _Outgoing) -> None:
        out.record.attempts += 1
        if out.wait_ack:
            out.record.state = "sending"
            out.timer = self._clock.callLater(out.timeout, self._timed_out, out)
        self._try(out, iter(self._transports()), [], out.record.attempts > out.retries)

    def _try(self, out: _Outgoing, transports: Iterator[Transport], errors: list[str], last_attempt: bool) -> None:
        """Hand the frame to the next transport the peer has a contact for; on failure
        the one after (from the errback), until none is left."""
        for transport in transports:
            if out.done:
                return
            contact = out.identity.contact_for(transport.proto) if out.identity else None
            if contact is None:
                continue
            # Named before the send completes: the reply can arrive first (QUIC fires its
            # send late, and an Ed25519-signed Ack is quick), and the record must not show
            # an answered packet as carried by no transport.
            out.record.proto = transport.proto
            try:
                sending = transport.send(contact[0], contact[1], out.frame, out.remote)
            except Exception:
                sending = fail()
            sending.addCallbacks(self._sent, self._send_failed, callbackArgs=(out,),
                                 errbackArgs=(out, f"{transport.proto}://{contact[0]}:{contact[1]}",
                                              transports, errors, last_attempt))
            return
        if out.done:
            return
        reason = "; ".join(errors) or "no transport is running that the peer has a contact for"
        if not out.wait_ack or last_attempt:
            self._fail(out, GatewayError(f"cannot send {out.packet} to {out.remote}: {reason}"), "failed")
        else:
            out.record.state = "retry-wait"

    def _sent(self, _result: object, out: _Outgoing) -> None:
        self._stats.sent(out.remote, out.size)
        if out.done:
            return
        if out.wait_ack:
            out.record.state = "waiting-ack"
        else:
            self._finish(out, "sent")
            out.deferred.callback(None)

    def _send_failed(self, failure: Failure, out: _Outgoing, where: str, transports: Iterator[Transport],
                     errors: list[str], last_attempt: bool) -> Failure | None:
        if not failure.check(Exception, asyncio.CancelledError):  # CancelledError: a QUIC connect at shutdown
            return failure
        errors.append(f"{where}: {failure.getErrorMessage()}")
        log.debug("send %s over %s failed: %s", out.packet, where, failure.getErrorMessage())
        if not out.done:
            out.record.proto = ""
        self._try(out, transports, errors, last_attempt)
        return None

    def _timed_out(self, out: _Outgoing) -> None:
        out.timer = None
        if out.done:
            return
        if out.record.attempts <= out.retries:
            self._attempt(out)
            return
        self._fail(out, GatewayTimeout(
            f"no reply to {out.packet.command.value}({out.packet.packet_id}) from {out.remote} "
            f"after {out.record.attempts} attempts of {out.timeout}s"), "timeout")

    def _fail(self, out: _Outgoing, exc: Exception, state: str) -> None:
        if out.done:
            return
        self._stats.send_failed()
        self._finish(out, state)
        out.deferred.errback(exc)

    def _finish(self, out: _Outgoing, state: str) -> None:
        out.done = True
        if out.timer is not None and out.timer.active():
            out.timer.cancel()
        out.timer = None
        if self._pending.get((out.remote, out.packet.packet_id)) is out:
            del self._pending[(out.remote, out.packet.packet_id)]
        self._log.finish(out.record, state)
