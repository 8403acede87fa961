"""Misbehaving peers for the reliability tests: suppliers that serve bad pieces, and a raw
TCP client that sends a node whatever bytes a test wants.

An :class:`EvilSupplier` patches one running supplier node in place (its store's
``read_piece`` or its handlers' ``_piece_packet``), so everything else of the node stays
genuine: it is hired, answers pings, signs its packets. Only what it serves is wrong,
which is exactly what a customer cannot tell from the outside before it verifies.
"""

from __future__ import annotations

import socket
from collections.abc import Generator, Iterable
from typing import Any

from twisted.internet.defer import Deferred, inlineCallbacks, maybeDeferred
from twisted.internet.endpoints import TCP4ClientEndpoint, connectProtocol
from twisted.internet.protocol import Protocol

from bitdust.node import Node
from bitdust.services.supplier import SupplierService
from bitdust.storage.ids import make_piece_id, parse_piece_id
from bitdust.storage.supplier.handlers import SupplierHandlers
from bitdust.transport.packet import Packet

MODES = ("wrong-bytes", "truncated", "other-version", "other-customer", "silent", "wrong-name")
"""What an evil supplier sends for a Retrieve:

* ``wrong-bytes``: the piece with its first bytes flipped (same size: only the AEAD tag tells);
* ``truncated``: the first half of the piece;
* ``other-version``: the same piece (block, position, kind) of another version of the same
  path, under the name asked for;
* ``other-customer``: the same piece ID as another customer's backup of the same files has it
  (same size, made by the real encoder under another key);
* ``silent``: nothing at all, ever (the Retrieve is neither answered nor refused);
* ``wrong-name``: the genuine bytes, labelled as another piece.
"""


class EvilSupplier:
    """One supplier node made to misbehave with ``mode`` until :meth:`undo`."""

    def __init__(self, node: Node, mode: str, other_backup_id: str = "",
                 foreign: dict[str, bytes] | None = None) -> None:
        if mode not in MODES:
            raise ValueError(f"unknown mode {mode!r}")
        supplier = node.services.instance("service_supplier")
        assert isinstance(supplier, SupplierService) and supplier.store is not None
        handlers = supplier._handlers
        assert isinstance(handlers, SupplierHandlers)
        self.node = node
        self.mode = mode
        self.store = supplier.store
        self.handlers = handlers
        self.other_backup_id = other_backup_id
        self.foreign = foreign or {}
        self.served = 0
        """Retrieves answered (or swallowed) the evil way."""
        self._read = self.store.read_piece
        self._make = handlers._piece_packet
        if mode == "wrong-name":
            handlers._piece_packet = self._mislabel  # type: ignore[method-assign]
        else:
            self.store.read_piece = self._evil_read  # type: ignore[method-assign]

    def undo(self) -> None:
        """Back to honest: the instance attributes go, the class methods show through again."""
        for owner, name in ((self.store, "read_piece"), (self.handlers, "_piece_packet")):
            owner.__dict__.pop(name, None)

    def _evil_read(self, idurl: str, piece_id: str) -> Deferred[bytes]:
        self.served += 1
        if self.mode == "silent":
            return Deferred()  # never fires: the customer only sees its timeout
        if self.mode == "other-version":
            piece = parse_piece_id(piece_id)
            other = make_piece_id(self.other_backup_id, piece.block, piece.supplier, piece.kind)
            return maybeDeferred(self._read, idurl, other)
        if self.mode == "other-customer":
            reading = maybeDeferred(self._read, idurl, piece_id)
            return reading.addCallback(lambda data: self.foreign.get(piece_id, _flipped(data)))
        reading = maybeDeferred(self._read, idurl, piece_id)
        if self.mode == "truncated":
            return reading.addCallback(lambda data: data[:len(data) // 2])
        return reading.addCallback(_flipped)

    def _mislabel(self, request: Packet, piece_id: str, data: bytes) -> Packet:
        self.served += 1
        piece = parse_piece_id(piece_id)
        other = make_piece_id(piece.backup_id, piece.block + 1, piece.supplier, piece.kind)
        return self._make(request, other, data)


def _flipped(data: bytes) -> bytes:
    head = bytes(b ^ 0x5A for b in data[:64])
    return head + data[64:]


class RawPeer(Protocol):
    """A raw TCP client: writes what it is told, notices when the node hangs up."""

    def __init__(self) -> None:
        self.closed: Deferred[None] = Deferred()
        self.open = True

    def connectionLost(self, reason: Any = None) -> None:
        self.open = False
        self.closed.callback(None)


@inlineCallbacks
def raw_connect(reactor: Any, port: int) -> Generator[Any, Any, RawPeer]:
    peer = yield connectProtocol(TCP4ClientEndpoint(reactor, "127.0.0.1", port), RawPeer())
    return peer



def blocking_connect(port: int, timeout: float = 30.0) -> socket.socket:
    return socket.create_connection(("127.0.0.1", port), timeout=timeout)


def blocking_send(sock: socket.socket, frames: Iterable[bytes]) -> tuple[int, bool]:
    """In a worker thread: write ``frames`` one by one with blocking sends, so the attacker
    holds one frame at a time (an in-process Twisted client would buffer the whole flood
    in this very process and spoil the memory figure). Returns the bytes written and
    whether the node hung up meanwhile."""
    sent = 0
    try:
        for frame in frames:
            sock.sendall(frame)
            sent += len(frame)
    except (ConnectionResetError, BrokenPipeError):
        return sent, True
    return sent, False


def wait_hung_up(sock: socket.socket, timeout: float = 30.0, limit: int = 1024**2) -> bool:
    """In a worker thread: True once the node closed ``sock`` (EOF or reset), reading at
    most ``limit`` bytes; socket.timeout when it does not in ``timeout``. Closes ``sock``."""
    sock.settimeout(timeout)
    received = 0
    try:
        while received <= limit:
            chunk = sock.recv(65536)
            if not chunk:
                return True
            received += len(chunk)
        return False
    except ConnectionResetError:
        return True
    finally:
        sock.close()
