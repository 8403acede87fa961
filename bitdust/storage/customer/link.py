"""The customer's side of the market protocol on the wire (see :mod:`bitdust.storage.market`).

One object per running customer service; connectors call it through the
:class:`~bitdust.storage.customer.connector.SupplierLink` protocol. ``ListFiles`` is
answered with a ``Files`` packet under the same PacketID, which the gateway hands to
handlers rather than to the waiting send: :meth:`MarketLink.on_files` resolves the
question and cancels that send. A ``Fail`` (not a customer there any more) resolves the
send itself. At most one file-list question per supplier is in flight, and at most
:data:`MAX_PENDING_LISTS` in all.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Generator
from typing import Any

from twisted.internet.defer import CancelledError, Deferred, fail, inlineCallbacks
from twisted.python.failure import Failure

from bitdust.storage import market
from bitdust.storage.customer.connector import Refused
from bitdust.transport.gateway import Gateway
from bitdust.transport.outbox import GatewayBusy
from bitdust.transport.packet import Command, Packet

log = logging.getLogger(__name__)

ATTEMPTS = 3
MAX_PENDING_LISTS = 256


class MarketLink:
    def __init__(self, gateway: Gateway, timeout: Callable[[], float]) -> None:
        self.gateway = gateway
        self.timeout = timeout
        self._lists: dict[str, tuple[str, Deferred[dict[str, int]], Deferred[Packet | None]]] = {}

    # -- SupplierLink ---------------------------------------------------------------------

    @inlineCallbacks
    def request_service(self, idurl: str, request: market.ServiceRequest) -> Generator[Any, Any, int]:
        reply = yield self._ask(Command.RequestService, request.encode(), idurl)
        if reply is None or reply.command is not Command.Ack:
            raise Refused(market.refusal(reply))
        try:
            return market.ServiceOffer.decode(reply.payload).quota_bytes
        except market.ProtocolError:
            # An Ack is a yes even when its offer is unreadable: assume what we asked for.
            log.info("Ack of %s carries no readable offer", idurl)
            return request.needed_bytes

    def cancel_service(self, idurl: str) -> Deferred[None]:
        def failed(failure: Failure) -> None:
            log.info("CancelService to %s: %s", idurl, failure.getErrorMessage())

        return self._ask(Command.CancelService, b"{}", idurl).addCallbacks(lambda _reply: None, failed)

    def list_files(self, idurl: str) -> Deferred[dict[str, int]]:
        if idurl in self._lists:
            return fail(GatewayBusy(f"a file list of {idurl} is being asked already"))
        if len(self._lists) >= MAX_PENDING_LISTS:
            return fail(GatewayBusy(f"{MAX_PENDING_LISTS} file lists are being asked already"))
        result: Deferred[dict[str, int]] = Deferred()

        def sign_and_send(packet: Packet) -> None:
            sending = self.gateway.outbox(packet, idurl, timeout=self.timeout(), retries=ATTEMPTS - 1)
            self._lists[idurl] = (packet.packet_id, result, sending)
            sending.addCallbacks(self._list_answered, self._list_failed, callbackArgs=(idurl, packet.packet_id),
                                 errbackArgs=(idurl, packet.packet_id))

        def not_signed(failure: Failure) -> None:
            self._lists.pop(idurl, None)
            if not result.called:
                result.errback(failure)

        self.gateway.sign_packet(Command.ListFiles, b"{}", idurl).addCallbacks(sign_and_send, not_signed)
        return result

    # -- incoming ----------------------------------------------------------------------

    def on_files(self, packet: Packet) -> None:
        """A Files packet: the answer to our ListFiles (anything else is ignored)."""
        pending = self._lists.get(packet.creator_id)
        if pending is None or pending[0] != packet.packet_id:
            log.debug("Files from %s answers nothing we asked", packet.creator_id)
            return
        del self._lists[packet.creator_id]
        _packet_id, result, sending = pending
        try:
            pieces = market.decode_file_list(packet.payload)
        except market.ProtocolError as exc:
            result.errback(exc)
        else:
            result.callback(pieces)
        sending.cancel()  # the Files was the answer; stop repeating the question

    def _list_answered(self, reply: Packet | None, idurl: str, packet_id: str) -> None:
        pending = self._lists.get(idurl)
        if pending is None or pending[0] != packet_id:
            return
        del self._lists[idurl]
        failure = market.refusal(reply)
        pending[1].errback(Refused(failure))

    def _list_failed(self, failure: Failure, idurl: str, packet_id: str) -> None:
        if failure.check(CancelledError):
            return  # we cancelled it: the Files arrived
        pending = self._lists.get(idurl)
        if pending is None or pending[0] != packet_id:
            return
        del self._lists[idurl]
        pending[1].errback(failure)

    def close(self) -> None:
        pending, self._lists = self._lists, {}
        for _packet_id, result, sending in pending.values():
            sending.cancel()
            if not result.called:
                result.errback(CancelledError("the customer service stopped"))

    # -- helpers ----------------------------------------------------------------------------

    def _ask(self, command: Command, payload: bytes, idurl: str) -> Deferred[Packet | None]:
        timeout = self.timeout()
        return self.gateway.sign_packet(command, payload, idurl).addCallback(
            lambda packet: self.gateway.outbox(packet, idurl, timeout=timeout, retries=ATTEMPTS - 1))
