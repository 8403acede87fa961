"""Broadcast envelopes: a JSON object signed by its origin, forwarded hop by hop.

A ``Broadcast`` packet's payload is canonical JSON ``{"envelope": <text>, "signature":
<b64>, "hops": n}``. The envelope ``{"v", "id", "origin", "created", "payload"}`` is
signed by the origin's key, so a forwarder (who signs only the outer packet) cannot
alter the message or its origin; ``hops`` (how many more times it may be forwarded) is
outside the signature because forwarders lower it, and a receiver caps it at
:data:`MAX_HOPS`, so lying about it only buys a bounded number of extra forwards.

``created`` lets receivers refuse envelopes older than :data:`MAX_AGE_SECONDS`: the
duplicate filter (:class:`SeenBroadcasts`) is bounded, and a replay of an old broadcast
after it was forgotten must not be delivered twice.
"""

from __future__ import annotations

import json
import secrets
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any

from bitdust.crypto.keys import BadKeyError, PrivateKey, PublicKey, b64, unb64
from bitdust.dht.records import canonical_json
from bitdust.identity.idurl import is_idurl

VERSION = 1
MAX_PAYLOAD_BYTES = 4096
MAX_HOPS = 4
DEFAULT_HOPS = 2
MAX_AGE_SECONDS = 600.0
MAX_PACKET_PAYLOAD = 16 * 1024
SEEN_LIMIT = 10_000
_MAGIC = b"bitdust-broadcast-v1\x00"


class BroadcastError(ValueError):
    """A payload that cannot be broadcast, or a received envelope that does not check out."""


@dataclass(frozen=True)
class Envelope:
    broadcast_id: str
    origin: str
    created: int  # epoch milliseconds
    payload: dict[str, Any]
    text: str  # the exact signed JSON
    signature: bytes

    @property
    def key(self) -> tuple[str, str]:
        return (self.origin, self.broadcast_id)

    def verify(self, public_key: PublicKey) -> bool:
        return public_key.verify(_MAGIC + self.text.encode("ascii"), self.signature)

    def is_fresh(self, now: float) -> bool:
        return abs(now * 1000.0 - self.created) <= MAX_AGE_SECONDS * 1000.0

    def to_payload(self, hops: int) -> bytes:
        """Payload of a Broadcast packet carrying this envelope with ``hops`` forwards left."""
        return canonical_json({"envelope": self.text, "signature": b64(self.signature), "hops": int(hops)})


def check_payload(payload: Any) -> bytes:
    """Canonical JSON of ``payload``; BroadcastError unless a JSON object of at most 4 KB."""
    if isinstance(payload, str):
        try:
            payload = json.loads(payload)
        except ValueError:
            raise BroadcastError("payload must be a JSON object") from None
    if not isinstance(payload, dict):
        raise BroadcastError(f"payload must be a JSON object, not {type(payload).__name__}")
    try:
        data = canonical_json(payload)
    except (TypeError, ValueError) as exc:
        raise BroadcastError(f"payload is not JSON: {exc}") from None
    if len(data) > MAX_PAYLOAD_BYTES:
        raise BroadcastError(f"payload of {len(data)} bytes is over the limit of {MAX_PAYLOAD_BYTES}")
    return data


def make_envelope(key: PrivateKey, origin: str, payload: Any, now: float) -> Envelope:
    data = check_payload(payload)
    body = json.loads(data)
    broadcast_id = secrets.token_hex(12)
    created = int(now * 1000)
    text = canonical_json({"v": VERSION, "id": broadcast_id, "origin": origin, "created": created,
                           "payload": body}).decode("ascii")
    return Envelope(broadcast_id, origin, created, body, text, key.sign(_MAGIC + text.encode("ascii")))


def parse_packet_payload(data: bytes | memoryview) -> tuple[Envelope, int]:
    """(envelope, hops left) of a received Broadcast packet; BroadcastError if malformed.
    The signature is not checked here: that needs the origin's identity."""
    if len(data) > MAX_PACKET_PAYLOAD:
        raise BroadcastError("broadcast packet is too large")
    try:
        outer = json.loads(bytes(data))
        inner = json.loads(outer["envelope"]) if isinstance(outer, dict) and isinstance(outer.get("envelope"), str) \
            else None
    except ValueError:
        raise BroadcastError("broadcast packet is not JSON") from None
    if not isinstance(outer, dict) or not isinstance(inner, dict):
        raise BroadcastError("broadcast packet has no envelope")
    hops, signature = outer.get("hops"), outer.get("signature")
    if isinstance(hops, bool) or not isinstance(hops, int) or hops < 0 or not isinstance(signature, str):
        raise BroadcastError("broadcast packet has bad hops or signature fields")
    fields = (inner.get("v"), inner.get("id"), inner.get("origin"), inner.get("created"), inner.get("payload"))
    version, broadcast_id, origin, created, payload = fields
    if version != VERSION or not isinstance(broadcast_id, str) or not 0 < len(broadcast_id) <= 64:
        raise BroadcastError("broadcast envelope has a bad version or id")
    if not isinstance(origin, str) or not is_idurl(origin):
        raise BroadcastError("broadcast envelope has a bad origin")
    if isinstance(created, bool) or not isinstance(created, int) or not isinstance(payload, dict):
        raise BroadcastError("broadcast envelope has a bad date or payload")
    try:
        raw_signature = unb64(signature)
    except BadKeyError:
        raise BroadcastError("broadcast signature is not base64") from None
    text = outer["envelope"]
    return Envelope(broadcast_id, origin, created, payload, text, raw_signature), min(hops, MAX_HOPS)


class SeenBroadcasts:
    """Broadcasts already delivered, by (origin, id); the oldest forgotten beyond ``limit``."""

    def __init__(self, limit: int = SEEN_LIMIT) -> None:
        self._limit = limit
        self._seen: OrderedDict[tuple[str, str], None] = OrderedDict()

    def __contains__(self, key: object) -> bool:
        return key in self._seen

    def __len__(self) -> int:
        return len(self._seen)

    def add(self, key: tuple[str, str]) -> None:
        self._seen[key] = None
        self._seen.move_to_end(key)
        while len(self._seen) > self._limit:
            self._seen.popitem(last=False)
