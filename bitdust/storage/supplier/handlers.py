"""Gateway handlers of a supplier: market packets in, store operations, answers out.

The formats and the who-is-who rules are in :mod:`bitdust.storage.market`; in short,
a customer's requests are honoured only when OwnerID == CreatorID (a node signs only
for itself, so nobody reaches another customer's folder), the customer is always the
packet's creator, and every refusal is a Fail with a market code (:data:`market.FAIL_CODES`).
Packets meant for the customer side of this same node (a Data answering our own
Retrieve, a supplier's CancelService notice) are left alone, unanswered.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, cast

from twisted.internet.defer import Deferred, DeferredList, inlineCallbacks, maybeDeferred
from twisted.python.failure import Failure

from bitdust.storage import market
from bitdust.storage.ids import IdError
from bitdust.storage.supplier.store import Refused
from bitdust.transport.outbox import GatewayError
from bitdust.transport.packet import Command, Packet

if TYPE_CHECKING:
    from bitdust.node import Node
    from bitdust.storage.supplier.presence import CustomerPresence
    from bitdust.storage.supplier.store import SupplierStore
    from bitdust.transport.gateway import Gateway

log = logging.getLogger(__name__)


class SupplierHandlers:
    def __init__(self, node: Node, gateway: Gateway, store: SupplierStore, presence: CustomerPresence,
                 customer_left: Callable[[str], None] = lambda _idurl: None) -> None:
        self.node = node
        self.gateway = gateway
        self.store = store
        self.presence = presence
        self._customer_left = customer_left
        # Bound once, so remove_handler gets the very objects add_handler got.
        self._table: dict[Command, Callable[[Packet], Any]] = {
            Command.RequestService: self.on_request_service,
            Command.CancelService: self.on_cancel_service,
            Command.Data: self.on_data,
            Command.Retrieve: self.on_retrieve,
            Command.ListFiles: self.on_list_files,
            Command.DeleteFile: self.on_delete_file,
            Command.DeleteBackup: self.on_delete_backup,
            Command.Identity: self.on_identity,
        }

    def register(self) -> None:
        for command, handler in self._table.items():
            self.gateway.add_handler(command, handler)

    def unregister(self) -> None:
        for command, handler in self._table.items():
            self.gateway.remove_handler(command, handler)

    # -- handlers -------------------------------------------------------------------------

    def on_identity(self, packet: Packet) -> None:
        self._heard(packet.creator_id)

    def on_request_service(self, packet: Packet) -> Deferred[Any]:
        def work() -> Deferred[Any]:
            request = market.ServiceRequest.decode(packet.payload)
            granting = self.store.request_service(packet.creator_id, request)

            def granted(offer: market.ServiceOffer) -> Deferred[Any]:
                self.presence.heard_from(packet.creator_id)
                return self.gateway.ack(packet, offer.encode())

            return granting.addCallback(granted)

        return self._serve(packet, work)

    def on_cancel_service(self, packet: Packet) -> Deferred[Any] | None:
        if market.is_supplier_notice(packet.payload):
            return None  # a supplier of ours ends our contract: the customer side's business
        customer = packet.creator_id

        def left(_freed: int) -> Deferred[Any]:
            self.presence.forget(customer)
            self._customer_left(customer)
            return self.gateway.ack(packet)

        return self._serve(packet, lambda: self.store.drop_customer(customer, "the customer left").addCallback(left))

    def on_data(self, packet: Packet) -> Deferred[Any] | None:
        if packet.owner_id != packet.creator_id and self._is_me(packet.owner_id):
            return None  # a piece a supplier of ours sends back to us: not for the store

        def work() -> Deferred[Any]:
            """Every piece of the packet is stored (views: no copies), then one Ack. The
            answer waits for every piece either way; if one was refused, the first refusal
            is the answer and the pieces that were stored stay (a resend replaces them,
            and the customer deletes what a failed backup left)."""
            storing = [self.store.store_piece(packet.creator_id, piece_id, data)
                       for piece_id, data in market.decode_pieces(packet.payload)]
            return DeferredList(storing, consumeErrors=True).addCallback(answer)

        def answer(results: list[tuple[bool, Any]]) -> Deferred[Any] | Failure:
            for stored, outcome in results:
                if not stored:
                    return cast(Failure, outcome)
            return self.gateway.ack(packet)

        return self._serve(packet, work)

    def on_retrieve(self, packet: Packet) -> Deferred[Any]:
        return self._serve(packet, lambda: self._retrieve(packet))

    @inlineCallbacks
    def _retrieve(self, request: Packet) -> Any:
        piece_id = market.decode_retrieve(request.payload)
        data = yield self.store.read_piece(request.creator_id, piece_id)
        answer = yield self.node.cpu_pool.run(self._piece_packet, request, piece_id, data)
        try:
            yield self.gateway.outbox(answer, request.creator_id, wait_ack=False)
        except GatewayError as exc:
            log.info("piece %s not sent back to %s: %s", piece_id, request.creator_id, exc)

    def _piece_packet(self, request: Packet, piece_id: str, data: bytes) -> Packet:
        """The answer to Retrieve: a Data owned by the customer, made and signed by us,
        under the Retrieve's PacketID, framed (runs in a thread: it copies and hashes
        megabytes)."""
        key = self.node.packet_key
        if key is None:
            raise RuntimeError("this node has no packet key")
        return Packet.create(Command.Data, request.creator_id, self.gateway.my_idurl, request.packet_id,
                             market.piece_parts(piece_id, data), request.creator_id, key)

    def on_list_files(self, packet: Packet) -> Deferred[Any]:
        def work() -> Deferred[Any]:
            if not self.store.is_customer(packet.creator_id):
                raise Refused("rejected", "you are not a customer of this supplier")
            listing = market.encode_file_list(self.store.list_pieces(packet.creator_id))
            return self.gateway.reply(packet, Command.Files, listing)

        return self._serve(packet, work)

    def on_delete_file(self, packet: Packet) -> Deferred[Any]:
        def work() -> Deferred[Any]:
            pieces = market.decode_delete_pieces(packet.payload)
            deleting = self.store.delete_pieces(packet.creator_id, pieces)
            return deleting.addCallback(lambda _freed: self.gateway.ack(packet))

        return self._serve(packet, work)

    def on_delete_backup(self, packet: Packet) -> Deferred[Any]:
        def work() -> Deferred[Any]:
            backups = market.decode_delete_backups(packet.payload)
            deleting = self.store.delete_backups(packet.creator_id, backups)
            return deleting.addCallback(lambda _freed: self.gateway.ack(packet))

        return self._serve(packet, work)

    # -- common ---------------------------------------------------------------------------

    def _serve(self, packet: Packet, work: Callable[[], Deferred[Any]]) -> Deferred[Any]:
        """Run ``work`` for a customer's request; every refusal becomes a Fail."""
        if packet.owner_id != packet.creator_id:
            return self._refuse(packet, "not-owner", "a node may only act on its own data")
        self._heard(packet.creator_id)
        return maybeDeferred(work).addErrback(self._failed, packet)

    def _failed(self, failure: Failure, packet: Packet) -> Deferred[Any]:
        refused = failure.value
        if isinstance(refused, Refused):
            return self._refuse(packet, refused.code, refused.reason)
        if failure.check(market.ProtocolError, IdError):
            return self._refuse(packet, "bad-request", failure.getErrorMessage())
        log.error("serving %s failed:\n%s", packet, failure.getTraceback())
        return self._refuse(packet, "busy", "the supplier could not do it now, try again later")

    def _refuse(self, packet: Packet, code: str, reason: str) -> Deferred[Any]:
        log.info("refused %s: %s (%s)", packet, reason, code)
        return self.gateway.fail(packet, code, reason)

    def _heard(self, idurl: str) -> None:
        if self.store.is_customer(idurl):
            self.store.touch(idurl)
            self.presence.heard_from(idurl)

    def _is_me(self, idurl: str) -> bool:
        me = self.node.my_identity
        return me is not None and idurl in me.sources
