"""ListFiles on the wire, answered by Files under the same PacketID.

service_customer's :class:`~bitdust.storage.customer.link.MarketLink` asks the same
question for its connectors (one in flight per supplier, refusing a second), so
service_list_files keeps its own asker rather than colliding with theirs: each asker
knows its own PacketIDs and ignores Files packets that answer the other.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from twisted.internet.defer import CancelledError, Deferred
from twisted.python.failure import Failure

from bitdust.storage import market
from bitdust.storage.motion.errors import MotionError, PieceRefused
from bitdust.storage.motion.motion import Wire, as_motion_error
from bitdust.transport.packet import Command, Packet


class FileLister:
    def __init__(self, wire: Wire, timeout: Callable[[], float]) -> None:
        self.wire = wire
        self.timeout = timeout
        self._pending: dict[tuple[str, str], tuple[Deferred[dict[str, int]], Deferred[Packet | None]]] = {}
        self._handler = self._on_files

    def start(self) -> None:
        self.wire.add_handler(Command.Files, self._handler)

    def close(self) -> None:
        self.wire.remove_handler(Command.Files, self._handler)
        pending, self._pending = self._pending, {}
        for result, sending in pending.values():
            sending.cancel()
            if not result.called:
                result.errback(MotionError("file listing stopped"))

    def list_files(self, idurl: str) -> Deferred[dict[str, int]]:
        """What ``idurl`` holds for us: piece ID -> size; PieceRefused on its Fail,
        PieceTimeout when it does not answer."""
        result: Deferred[dict[str, int]] = Deferred()
        timeout = max(0.1, self.timeout())

        def send(packet: Packet) -> None:
            key = (idurl, packet.packet_id)
            sending = self.wire.outbox(packet, idurl, timeout=timeout, retries=2)
            self._pending[key] = (result, sending)
            sending.addCallbacks(self._answered, self._failed, callbackArgs=(key,), errbackArgs=(key,))

        def not_signed(failure: Failure) -> None:
            if not result.called:
                result.errback(failure)

        self.wire.sign_packet(Command.ListFiles, b"{}", idurl).addCallbacks(send, not_signed)
        return result

    def _on_files(self, packet: Packet) -> None:
        pending = self._pending.pop((packet.creator_id, packet.packet_id), None)
        if pending is None:
            return  # MarketLink's question, or a stray answer
        result, sending = pending
        try:
            result.callback(market.decode_file_list(packet.payload))
        except market.ProtocolError as exc:
            result.errback(PieceRefused("bad-request", f"{packet.creator_id} sent a bad file list: {exc}"))
        sending.cancel()

    def _answered(self, reply: Packet | None, key: tuple[str, str]) -> None:
        pending = self._pending.pop(key, None)
        if pending is None:
            return
        refusal = market.refusal(reply)
        pending[0].errback(PieceRefused(refusal.code, f"ListFiles to {key[0]}: {refusal.reason}"))

    def _failed(self, failure: Failure, key: tuple[str, str]) -> Any:
        pending = self._pending.pop(key, None)
        if pending is None or failure.check(CancelledError):
            return None
        pending[0].errback(as_motion_error(failure, f"ListFiles to {key[0]}"))
        return None
