"""What customers and suppliers say to each other: the payloads of the storage market.

Both sides import only this module to speak the protocol, so the formats live in one
place. Control messages are small JSON objects (validated strictly, bounded in size);
pieces travel as raw bytes behind a short binary header (no base64).

| command        | from     | payload                                  | answer                        |
|----------------|----------|------------------------------------------|-------------------------------|
| RequestService | customer | ServiceRequest JSON                      | Ack(ServiceOffer) or Fail     |
| CancelService  | customer | ``{}``                                   | Ack; supplier drops our data  |
| Data           | customer | piece frame (1-8 pieces: IDs + bytes)    | Ack or Fail (over quota, ...) |
| Retrieve       | customer | ``{"piece": <piece ID>}``                | Data(piece frame) or Fail     |
| ListFiles      | customer | ``{}``                                   | Files(FileList JSON)          |
| DeleteFile     | customer | ``{"pieces": [<piece ID>, ...]}``        | Ack                           |
| DeleteBackup   | customer | ``{"backups": [<backup ID>, ...]}``      | Ack                           |
| Fail           | either   | ``{"reason": "..."}``                    |                               |

A supplier tells a customer it was rejected (``customer_reject``) with a CancelService of
its own. Fail reasons are text for people; ``code`` gives machines a stable word
(``no-space``, ``over-quota``, ``not-found``, ``not-owner``, ``rejected``, ``bad-request``).

Who is who, since one node is both a customer and a supplier and both sides register
handlers for ``Data`` and ``CancelService`` (the gateway calls every handler):

| packet                        | OwnerID  | CreatorID | payload                 | who acts          |
|-------------------------------|----------|-----------|-------------------------|-------------------|
| Data, customer stores a piece | customer | customer  | piece frame             | supplier (stores) |
| Data, answer to Retrieve      | customer | supplier  | piece frame             | customer          |
| CancelService, customer quits | customer | customer  | ``{}``                  | supplier          |
| CancelService, supplier quits | supplier | supplier  | Fail JSON (``code``)    | customer          |

- A Data answer to Retrieve reuses the Retrieve's PacketID; the supplier stores a Data
  only when OwnerID == CreatorID, so a node never files a Retrieve answer as a customer's
  upload. The customer waits for that Data itself (a Data does not resolve the outbox).
- A supplier ending a contract (``customer_reject``, customer_patrol) sends CancelService
  with Fail JSON (:class:`~bitdust.transport.fail.FailReason`): ``code`` is ``rejected`` (the user, or the customer idle
  longer than ``services/customer-patrol/customer-idle-days``) or ``over-quota``; its data
  is already deleted. The customer Acks it; the supplier does not wait for that Ack.
  A payload with a ``code`` key is this notice; ``{}`` is a customer leaving: each side
  acts on (and Acks) only its own kind. :func:`is_supplier_notice` tells them apart.
- A customer repeats the same RequestService every ``services/customer/recheck-seconds``
  (and after its own restart): that is its liveness check, so a supplier answers a
  request from a current customer with Ack again (quota updated). ``Files`` answers
  ``ListFiles`` under its PacketID and is not acknowledged. (customer side:
  :mod:`bitdust.storage.customer.link`)
- Fail codes a supplier uses: ``no-space`` (RequestService beyond the donated space),
  ``over-quota`` (Data beyond the quota; nothing is written), ``not-found`` (Retrieve of a
  piece it does not hold), ``not-owner`` (OwnerID != CreatorID on any request: a node
  acts only on its own folder), ``rejected`` (the sender has no contract: not a customer,
  or no longer),
  ``busy`` (too many requests of that customer queued), ``bad-request`` (bad payload).
- ``unavailable`` is not sent by a supplier: it is the gateway's own Fail code for a command
  no running service handles (:mod:`bitdust.transport.fail`: its supplier service is off;
  while a node is starting its gateway stays silent instead). Customers treat it as
  "offline for now", never as a refusal: a supplier whose service is restarting must not be
  fired because it was asked a moment too early.
"""

from __future__ import annotations

import json
import struct
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from bitdust.identity.idurl import IdurlError, parse_idurl
from bitdust.storage.ecc import SUPPLIER_COUNTS
from bitdust.storage.ids import IdError, parse_backup_id, parse_piece_id
from bitdust.transport.fail import UNAVAILABLE, FailReason, fail_reason

if TYPE_CHECKING:
    from bitdust.transport.packet import Buffer, Packet

MAX_CONTROL_BYTES = 64 * 1024
MAX_LIST_BYTES = 8 * 1024 * 1024
_PIECE_COUNT = struct.Struct(">B")
_PIECE_HEADER = struct.Struct(">H")  # the length of a piece ID, before it
_PIECE_SIZE = struct.Struct(">I")  # the size of a piece, after its ID
MAX_PIECES_PER_PACKET = 8
"""A backup sends a supplier its Data and Parity piece of a block in one packet."""

FAIL_CODES = ("no-space", "over-quota", "not-found", "not-owner", "rejected", "bad-request", "busy", UNAVAILABLE)


class ProtocolError(ValueError):
    """A payload does not follow this module's formats; the message says how."""


def _load(payload: bytes | memoryview, limit: int = MAX_CONTROL_BYTES) -> dict[str, Any]:
    if len(payload) > limit:
        raise ProtocolError(f"payload of {len(payload)} bytes is over the {limit} byte limit")
    try:
        value = json.loads(str(payload, "utf-8"))
    except (UnicodeDecodeError, ValueError) as exc:
        raise ProtocolError(f"payload is not JSON: {exc}") from None
    if not isinstance(value, dict):
        raise ProtocolError("payload must be a JSON object")
    return value


def _dump(value: dict[str, Any]) -> bytes:
    return json.dumps(value, separators=(",", ":"), sort_keys=True).encode("utf-8")


def _int(value: dict[str, Any], key: str, minimum: int = 0) -> int:
    item = value.get(key)
    if not isinstance(item, int) or isinstance(item, bool) or item < minimum:
        raise ProtocolError(f"{key!r} must be a whole number >= {minimum}")
    return item


@dataclass(frozen=True)
class ServiceRequest:
    """A customer asks a supplier for space: how much, for which ECC map, at which position."""

    needed_bytes: int
    ecc_map: str
    position: int

    def encode(self) -> bytes:
        return _dump({"needed_bytes": self.needed_bytes, "ecc_map": self.ecc_map, "position": self.position})

    @classmethod
    def decode(cls, payload: bytes | memoryview) -> ServiceRequest:
        value = _load(payload)
        ecc_map = value.get("ecc_map")
        if not isinstance(ecc_map, str) or ecc_map not in {f"ecc/{n}x{n}" for n in SUPPLIER_COUNTS}:
            raise ProtocolError(f"unknown ECC map {ecc_map!r}")
        request = cls(_int(value, "needed_bytes", 1), ecc_map, _int(value, "position"))
        if request.position >= int(ecc_map.split("x")[1]):
            raise ProtocolError(f"position {request.position} is outside {ecc_map}")
        return request


@dataclass(frozen=True)
class ServiceOffer:
    """The supplier's yes: the quota it grants (bytes) for this customer."""

    quota_bytes: int

    def encode(self) -> bytes:
        return _dump({"quota_bytes": self.quota_bytes})

    @classmethod
    def decode(cls, payload: bytes | memoryview) -> ServiceOffer:
        return cls(_int(_load(payload), "quota_bytes"))


def decode_failure(payload: bytes | memoryview) -> FailReason:
    """A supplier's CancelService notice (its payload is a Fail's)."""
    return _in_market_codes(FailReason.decode(payload))


def refusal(reply: Packet | None) -> FailReason:
    """What a supplier's answer that is not an Ack says."""
    return _in_market_codes(fail_reason(reply))


def _in_market_codes(failure: FailReason) -> FailReason:
    """A code this market does not know counts as ``bad-request``: the peer does not
    speak this protocol."""
    return failure if failure.code in FAIL_CODES else FailReason("bad-request", failure.reason)


def pieces_parts(pieces: Sequence[tuple[str, Buffer]]) -> list[Buffer]:
    """The payload of a Data packet carrying ``pieces`` (piece ID, bytes), as parts: a
    header naming every piece and its size, then the pieces' bytes as they are.
    ``Packet.create`` joins the parts where it signs (a pool thread, for big pieces)."""
    _check_count(len(pieces))
    _check_distinct([piece_id for piece_id, _data in pieces])
    header = [_PIECE_COUNT.pack(len(pieces))]
    for piece_id, data in pieces:
        raw_id = str(parse_piece_id(piece_id)).encode("ascii")
        header.append(_PIECE_HEADER.pack(len(raw_id)) + raw_id + _PIECE_SIZE.pack(len(data)))
    return [b"".join(header), *(data for _piece_id, data in pieces)]


def piece_parts(piece_id: str, data: Buffer) -> list[Buffer]:
    return pieces_parts([(piece_id, data)])


def encode_piece(piece_id: str, data: Buffer) -> bytes:
    """One piece's Data payload as bytes, for whoever wants it whole (tests, tools);
    senders hand :func:`piece_parts` to ``Packet.create`` instead."""
    return b"".join(piece_parts(piece_id, data))


def decode_pieces(payload: bytes | memoryview) -> list[tuple[str, memoryview]]:
    """(piece ID, bytes) of every piece of a Data payload; the bytes are views, not
    copies. ProtocolError for anything but the exact format: a count out of range, a
    size that overruns, bytes left over, a bad or repeated piece ID."""
    view = memoryview(payload)
    try:
        (count,) = _PIECE_COUNT.unpack_from(view)
        _check_count(count)
        offset = _PIECE_COUNT.size
        named: list[tuple[str, int]] = []
        for _ in range(count):
            (id_len,) = _PIECE_HEADER.unpack_from(view, offset)
            offset += _PIECE_HEADER.size
            raw_id = bytes(view[offset:offset + id_len])
            if len(raw_id) != id_len:
                raise ProtocolError("piece frame is truncated")
            offset += id_len
            (size,) = _PIECE_SIZE.unpack_from(view, offset)
            offset += _PIECE_SIZE.size
            named.append((_piece_id_from(raw_id), size))
    except struct.error:
        raise ProtocolError("piece frame is truncated") from None
    _check_distinct([piece_id for piece_id, _size in named])
    if offset + sum(size for _piece_id, size in named) != len(view):
        raise ProtocolError("piece sizes do not add up to the payload")
    pieces = []
    for piece_id, size in named:
        pieces.append((piece_id, view[offset:offset + size]))
        offset += size
    return pieces


def decode_piece(payload: bytes | memoryview) -> tuple[str, memoryview]:
    """The one piece of a Data payload (an answer to Retrieve carries exactly one)."""
    pieces = decode_pieces(payload)
    if len(pieces) != 1:
        raise ProtocolError(f"expected one piece, got {len(pieces)}")
    return pieces[0]


def _check_count(count: int) -> None:
    if not 1 <= count <= MAX_PIECES_PER_PACKET:
        raise ProtocolError(f"a Data packet carries 1 to {MAX_PIECES_PER_PACKET} pieces, not {count}")


def _check_distinct(piece_ids: list[str]) -> None:
    if len(set(piece_ids)) != len(piece_ids):
        raise ProtocolError("a piece is named twice in one Data packet")


def _piece_id_from(raw_id: bytes) -> str:
    try:
        return str(parse_piece_id(raw_id.decode("ascii")))
    except (UnicodeDecodeError, IdError) as exc:
        raise ProtocolError(f"bad piece ID: {exc}") from None


def encode_retrieve(piece_id: str) -> bytes:
    return _dump({"piece": str(parse_piece_id(piece_id))})


def decode_retrieve(payload: bytes | memoryview) -> str:
    try:
        return str(parse_piece_id(_load(payload).get("piece")))
    except IdError as exc:
        raise ProtocolError(str(exc)) from None


def encode_delete_pieces(piece_ids: list[str]) -> bytes:
    return _dump({"pieces": [str(parse_piece_id(p)) for p in piece_ids]})


def decode_delete_pieces(payload: bytes | memoryview) -> list[str]:
    pieces = _load(payload).get("pieces")
    if not isinstance(pieces, list):
        raise ProtocolError("'pieces' must be a list")
    try:
        return [str(parse_piece_id(p)) for p in pieces]
    except IdError as exc:
        raise ProtocolError(str(exc)) from None


def encode_delete_backups(backup_ids: list[str]) -> bytes:
    return _dump({"backups": [parse_backup_id(b) for b in backup_ids]})


def decode_delete_backups(payload: bytes | memoryview) -> list[str]:
    backups = _load(payload).get("backups")
    if not isinstance(backups, list):
        raise ProtocolError("'backups' must be a list")
    try:
        return [parse_backup_id(b) for b in backups]
    except IdError as exc:
        raise ProtocolError(str(exc)) from None


def encode_file_list(pieces: dict[str, int]) -> bytes:
    """What a supplier holds for one customer: piece ID -> size in bytes."""
    return _dump({"pieces": pieces})


def decode_file_list(payload: bytes | memoryview) -> dict[str, int]:
    pieces = _load(payload, MAX_LIST_BYTES).get("pieces")
    if not isinstance(pieces, dict):
        raise ProtocolError("'pieces' must be an object")
    result = {}
    for piece_id, size in pieces.items():
        if not isinstance(size, int) or isinstance(size, bool) or size < 0:
            raise ProtocolError(f"bad size for {piece_id!r}")
        try:
            result[str(parse_piece_id(piece_id))] = size
        except IdError as exc:
            raise ProtocolError(str(exc)) from None
    return result


def is_supplier_notice(payload: bytes | memoryview) -> bool:
    """True for a supplier's CancelService (Fail JSON with ``code``), False for a
    customer's ``{}`` (see the table above); malformed payloads count as neither: False."""
    try:
        return "code" in _load(payload)
    except ProtocolError:
        return False


def customer_folder_name(idurl: str) -> str:
    """A customer's folder under ``<home>/customers/``: ``<name>@<host>_<port>``.

    Derived from the parsed idurl, so it can never contain a path separator or ``..``.
    """
    try:
        parsed = parse_idurl(idurl)
    except IdurlError:
        raise ProtocolError(f"not an idurl: {idurl!r}") from None
    host = parsed.host.replace(":", "-")  # IPv6 hosts
    return f"{parsed.name}@{host}_{parsed.port}"
