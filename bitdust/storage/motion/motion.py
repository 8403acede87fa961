"""DataMotion: pieces to and from suppliers, bounded, with answers a caller can act on.

Backup, restore and rebuild all move pieces through one object per node, so one set of
limits holds for all of them: at most ``services/data-motion/max-in-flight`` sends (and
as many retrieves) at once, at most ``services/data-motion/max-per-supplier`` to one
supplier, at most :data:`MAX_WAITING` queued behind those (then :class:`MotionBusy`).

Who is who on the wire is in :mod:`bitdust.storage.market`. A Retrieve is answered by
a Data packet under the same PacketID, owned by us and created by the supplier; the
gateway hands that Data to every Data handler (this node's supplier side ignores it,
since OwnerID != CreatorID and the owner is us), and our handler resolves the waiting
retrieve and cancels the Retrieve's own send, which would otherwise wait for an Ack
that never comes. A Fail for the Retrieve resolves that send: ``not-found`` & co.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Generator, Sequence
from typing import Any, Protocol

from twisted.internet.defer import CancelledError, Deferred, fail, inlineCallbacks
from twisted.python.failure import Failure

from bitdust.storage import market
from bitdust.storage.ids import IdError, parse_backup_id, parse_piece_id
from bitdust.storage.motion.errors import MotionBusy, MotionError, NoSupplier, PieceRefused, PieceTimeout
from bitdust.storage.motion.throttle import Throttle
from bitdust.transport.outbox import GatewayBusy, GatewayError
from bitdust.transport.packet import Buffer, Command, Packet, Payload

log = logging.getLogger(__name__)

MAX_WAITING = 1024
ATTEMPTS = 3
MAX_SILENT = 1024
"""Suppliers remembered as silent (see :meth:`DataMotion._send`); the oldest forgotten first."""
DELETE_CHUNK = 400
"""Piece IDs per DeleteFile (about 60 bytes each: well under the 64 KB control limit)."""


class Wire(Protocol):
    """What DataMotion needs from the gateway (a fake in unit tests)."""

    def sign_packet(self, command: Command | str, payload: Payload, remote_idurl: str,
                    packet_id: str | None = None) -> Deferred[Packet]: ...

    def outbox(self, packet: Packet, remote_idurl: str | None = None, wait_ack: bool = True,
               timeout: float = ..., retries: int = ...) -> Deferred[Packet | None]: ...

    def add_handler(self, command: Command | str, callback: Callable[[Packet], Any]) -> None: ...

    def remove_handler(self, command: Command | str, callback: Callable[[Packet], Any]) -> None: ...


class DataMotion:
    def __init__(self, wire: Wire, supplier_at: Callable[[int], str | None], is_me: Callable[[str], bool],
                 max_in_flight: Callable[[], int], max_per_supplier: Callable[[], int],
                 send_timeout: Callable[[], float]) -> None:
        self.wire = wire
        self._supplier_at = supplier_at
        self._is_me = is_me
        self._send_timeout = send_timeout
        self.sends = Throttle(max_in_flight, max_per_supplier, MAX_WAITING)
        self.retrieves = Throttle(max_in_flight, max_per_supplier, MAX_WAITING)
        self._awaited: dict[tuple[str, str], tuple[str, Deferred[bytes], Deferred[Packet | None]]] = {}
        self._data_handler = self._on_data
        self._closed = False
        self._queued = 0  # sends asked for so far: each send's number
        self._silent: dict[str, int] = {}  # idurl -> sends asked for when one of its sends timed out

    def start(self) -> None:
        self.wire.add_handler(Command.Data, self._data_handler)

    def close(self) -> None:
        """Stop listening; every retrieve still waiting fails (a send ends with its packet)."""
        self._closed = True
        self.wire.remove_handler(Command.Data, self._data_handler)
        awaited, self._awaited = self._awaited, {}
        for _piece_id, result, sending in awaited.values():
            sending.cancel()
            if not result.called:
                result.errback(MotionError("data motion stopped"))

    # -- who ------------------------------------------------------------------------------

    def supplier_at(self, position: int) -> str | None:
        return self._supplier_at(position)

    def _idurl(self, position: int) -> str:
        idurl = self._supplier_at(position)
        if not idurl:
            raise NoSupplier(f"no supplier holds position {position} now")
        return idurl

    # -- sending --------------------------------------------------------------------------

    def send_piece(self, position: int, piece_id: str, data: Buffer) -> Deferred[None]:
        """The piece to the supplier at ``position`` (resolved when its turn comes, so a
        piece queued across a replacement goes to the new supplier)."""
        return self.send_pieces(position, [(piece_id, data)])

    def send_pieces(self, position: int, pieces: Sequence[tuple[str, Buffer]]) -> Deferred[None]:
        """Several pieces to one supplier in one Data packet, acknowledged together: a
        backup sends a block's Data and Parity piece for the same supplier so. A packet
        costs both ends about as much CPU as a megabyte of its bytes (signing, checking,
        the Ack, its trip through Python), whatever its size."""
        if self._closed:
            return fail(MotionError("data motion stopped"))
        try:
            parts = market.pieces_parts(pieces)  # checks every piece ID, as the supplier will
        except (IdError, market.ProtocolError) as exc:
            return fail(exc)
        self._queued += 1
        number = self._queued
        what = "piece " + ", ".join(piece_id for piece_id, _data in pieces)
        return self.sends.run(f"#{position}", lambda: self._send(position, parts, what, number))

    @inlineCallbacks
    def _send(self, position: int, parts: list[Buffer], what: str, number: int) -> Generator[Any, Any, None]:
        """A supplier that let a piece time out (every retry) fails, at once, the pieces
        that were already queued for it then: each would only wait out the same timeouts
        in turn (a backup losing a supplier gave up after minutes, one round of 3 tries
        per 4 queued pieces). Pieces asked for later are sent as usual: the supplier may
        be back by then."""
        idurl = self._idurl(position)
        if self._silent.get(idurl, 0) >= number:
            raise PieceTimeout(f"{what}: {idurl} let an earlier piece time out; not sent")
        packet = yield self.wire.sign_packet(Command.Data, parts, idurl)
        try:
            reply = yield self._ask(packet, idurl, self._send_timeout())
        except PieceTimeout:
            self._silent.pop(idurl, None)
            self._silent[idurl] = self._queued
            while len(self._silent) > MAX_SILENT:
                del self._silent[next(iter(self._silent))]
            raise
        self._silent.pop(idurl, None)  # it answered (Ack or Fail): it is there
        _check_ack(reply, what)

    # -- retrieving -----------------------------------------------------------------------

    def retrieve_piece(self, position: int, piece_id: str, timeout: float = 30.0) -> Deferred[bytes]:
        try:
            idurl = self._idurl(position)
        except NoSupplier as exc:
            return fail(exc)
        return self.retrieve_from(idurl, piece_id, timeout)

    def retrieve_from(self, idurl: str, piece_id: str, timeout: float = 30.0) -> Deferred[bytes]:
        """The bytes of ``piece_id`` from ``idurl`` (a current or former supplier)."""
        if self._closed:
            return fail(MotionError("data motion stopped"))
        try:
            piece_id = str(parse_piece_id(piece_id))
        except IdError as exc:
            return fail(exc)
        return self.retrieves.run(idurl, lambda: self._retrieve(idurl, piece_id, max(0.1, timeout)))

    def _retrieve(self, idurl: str, piece_id: str, timeout: float) -> Deferred[bytes]:
        result: Deferred[bytes] = Deferred()

        def send(packet: Packet) -> None:
            key = (idurl, packet.packet_id)
            sending = self.wire.outbox(packet, idurl, timeout=timeout / 2, retries=1)
            self._awaited[key] = (piece_id, result, sending)
            sending.addCallbacks(self._retrieve_answered, self._retrieve_failed, callbackArgs=(key,),
                                 errbackArgs=(key,))

        def not_signed(failure: Failure) -> None:
            if not result.called:
                result.errback(failure)

        self.wire.sign_packet(Command.Retrieve, market.encode_retrieve(piece_id), idurl).addCallbacks(
            send, not_signed)
        return result

    def _retrieve_answered(self, reply: Packet | None, key: tuple[str, str]) -> None:
        pending = self._awaited.pop(key, None)
        if pending is None:
            return
        piece_id, result, _sending = pending
        try:
            _check_ack(reply, f"piece {piece_id}")
        except PieceRefused as exc:
            result.errback(exc)
            return
        result.errback(PieceRefused("bad-request", f"{key[0]} acknowledged Retrieve of {piece_id} "
                                                   "without sending it"))

    def _retrieve_failed(self, failure: Failure, key: tuple[str, str]) -> None:
        pending = self._awaited.pop(key, None)
        if pending is None or failure.check(CancelledError):
            return
        pending[1].errback(as_motion_error(failure, f"piece {pending[0]} from {key[0]}"))

    def _on_data(self, packet: Packet) -> None:
        """A Data answering one of our Retrieves (anything else is not ours to judge)."""
        if packet.owner_id == packet.creator_id or not self._is_me(packet.owner_id):
            return  # a customer's upload: the supplier side's business
        pending = self._awaited.pop((packet.creator_id, packet.packet_id), None)
        if pending is None:
            log.debug("Data %s from %s answers nothing we asked", packet.packet_id, packet.creator_id)
            return
        piece_id, result, sending = pending
        try:
            got_id, data = market.decode_piece(packet.payload)
        except market.ProtocolError as exc:
            result.errback(PieceRefused("bad-request", f"{packet.creator_id} sent a bad piece frame: {exc}"))
        else:
            if got_id != piece_id:
                result.errback(PieceRefused("bad-request", f"{packet.creator_id} sent {got_id} "
                                                           f"for {piece_id}"))
            else:
                result.callback(bytes(data))
        sending.cancel()  # the Data was the answer: stop repeating the Retrieve

    # -- deleting -------------------------------------------------------------------------

    def delete_pieces(self, position: int, piece_ids: list[str]) -> Deferred[None]:
        try:
            pieces = [str(parse_piece_id(p)) for p in piece_ids]
        except IdError as exc:
            return fail(exc)
        return self._delete(position, Command.DeleteFile, pieces, market.encode_delete_pieces)

    def delete_backups(self, position: int, backup_ids: list[str]) -> Deferred[None]:
        try:
            backups = [parse_backup_id(b) for b in backup_ids]
        except IdError as exc:
            return fail(exc)
        return self._delete(position, Command.DeleteBackup, backups, market.encode_delete_backups)

    @inlineCallbacks
    def _delete(self, position: int, command: Command, names: list[str],
                encode: Callable[[list[str]], bytes]) -> Generator[Any, Any, None]:
        idurl = self._idurl(position)
        for start in range(0, len(names), DELETE_CHUNK):
            chunk = names[start:start + DELETE_CHUNK]
            packet = yield self.wire.sign_packet(command, encode(chunk), idurl)
            reply = yield self._ask(packet, idurl, self._send_timeout())
            _check_ack(reply, f"{command.value} of {len(chunk)} items")

    # -- common ---------------------------------------------------------------------------

    def _ask(self, packet: Packet, idurl: str, timeout: float) -> Deferred[Packet | None]:
        what = f"{packet.command.value}({packet.packet_id}) to {idurl}"

        def failed(failure: Failure) -> Failure:
            if failure.check(CancelledError):
                return failure
            return Failure(as_motion_error(failure, what))

        return self.wire.outbox(packet, idurl, timeout=max(0.1, timeout), retries=ATTEMPTS - 1).addErrback(failed)

    def stats(self) -> dict[str, int]:
        return {"sending": self.sends.in_flight, "send_waiting": self.sends.waiting,
                "retrieving": self.retrieves.in_flight, "retrieve_waiting": self.retrieves.waiting}


def _check_ack(reply: Packet | None, what: str) -> None:
    if reply is None or reply.command is not Command.Ack:
        refusal = market.refusal(reply)
        raise PieceRefused(refusal.code, f"{what}: {refusal.reason}")


def as_motion_error(failure: Failure, what: str) -> Exception:
    if isinstance(failure.value, MotionError):
        return failure.value
    if failure.check(GatewayBusy):
        return MotionBusy(f"{what}: {failure.getErrorMessage()}")
    if failure.check(GatewayError):
        return PieceTimeout(f"{what}: {failure.getErrorMessage()}")
    return failure.value if isinstance(failure.value, Exception) else MotionError(failure.getErrorMessage())
