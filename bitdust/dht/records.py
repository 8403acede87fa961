"""Signed DHT records: what a node publishes under a key, and the rules readers apply.

A record is one JSON object::

    {"type": "nickname", "key": "nickname:alice", "data": {...},
     "publisher": "<idurl>", "public_key": "<PEM>", "revision": 1712345678901,
     "expires": 1712347478, "signature": "<b64>"}

The signature (RSA-PSS/SHA-256, the publisher's node key) covers a magic prefix and the
canonical JSON (``sort_keys``, compact separators, ASCII) of every field but the
signature, so the same bytes are rebuilt from the parsed object on any node.

Why each rule exists:

- ``key`` is inside the signed part, and must equal the DHT key a reader asked for:
  otherwise a valid record could be replayed under another key.
- The type decides who may own a key. ``nickname:<name>`` belongs to the first
  publisher whose valid record holds it until that record expires (first come, first
  served). ``supplier:<idurl>`` embeds the publisher, so only that idurl's key can sign it.
- ``expires`` (epoch seconds) bounds the life of a record; a publisher keeps it alive by
  re-publishing. An expiry further than :data:`MAX_TTL` ahead is refused, so nobody can
  grab a nickname for ever. ``revision`` (milliseconds at signing) orders re-publications:
  an older record of the same publisher never replaces a newer one (replays).
- The key in the record only proves who signed; that it is the key of ``publisher`` is
  checked against the identity cache by :mod:`bitdust.dht.kad` (asynchronous).
"""

from __future__ import annotations

import dataclasses
import json
import re
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

from bitdust.crypto.keys import BadKeyError, PrivateKey, PublicKey, b64, unb64
from bitdust.identity.idurl import is_idurl

MAX_RECORD_BYTES = 6000
"""kademlia/rpcudp refuse an RPC over 8 KB; this leaves room for the key and framing."""

MAX_TTL = 24 * 3600
"""Longest life a record may claim, in seconds from now."""

DEFAULT_TTL = 30 * 60
"""Life of a record unless its publisher asks otherwise; re-published well before."""

_MAGIC = b"bitdust-dht-record-v1\x00"
_FIELDS = ("type", "key", "data", "publisher", "public_key", "revision", "expires", "signature")
NICKNAME_RE = re.compile(r"[A-Za-z0-9._-]{3,32}", re.ASCII)

FIRST_COME = "first-come"
KEY_EMBEDS_PUBLISHER = "key-embeds-publisher"
OWNERSHIP: Mapping[str, str] = MappingProxyType({"nickname": FIRST_COME, "supplier": KEY_EMBEDS_PUBLISHER})
"""Record types and how their keys are owned (read-only table)."""


class RecordRejected(ValueError):
    """A record failed a check; ``reason`` is a short stable word used for counting."""

    def __init__(self, reason: str, detail: str = "") -> None:
        super().__init__(f"{reason}: {detail}" if detail else reason)
        self.reason = reason


class RejectCounter:
    """Counts refused records by reason, for tests and ``stats``."""

    def __init__(self) -> None:
        self.by_reason: Counter[str] = Counter()

    def add(self, reason: str) -> None:
        self.by_reason[reason] += 1

    @property
    def total(self) -> int:
        return sum(self.by_reason.values())

    def as_dict(self) -> dict[str, int]:
        return dict(self.by_reason)


def canonical_json(obj: Any) -> bytes:
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=True, allow_nan=False).encode("ascii")


def normalize_nickname(nickname: str) -> str:
    """Nicknames compare without case (``Alice`` and ``alice`` are one name, so one
    cannot be used to impersonate the other); RecordRejected if not 3-32 of [A-Za-z0-9._-]."""
    if not isinstance(nickname, str) or not NICKNAME_RE.fullmatch(nickname):
        raise RecordRejected("bad-nickname", f"{nickname!r}: expected 3-32 characters of A-Z a-z 0-9 . _ -")
    return nickname.lower()


def nickname_key(nickname: str) -> str:
    return "nickname:" + normalize_nickname(nickname)


def supplier_key(idurl: str) -> str:
    return "supplier:" + idurl


@dataclass(frozen=True)
class Record:
    type: str
    key: str
    data: dict[str, Any]
    publisher: str
    public_key: str
    revision: int
    expires: int
    signature: str = ""
    identity_verified: bool = field(default=False, compare=False)
    """Set by the reader once the publisher's identity confirmed ``public_key``; not signed."""

    def unsigned(self) -> dict[str, Any]:
        return {
            "type": self.type, "key": self.key, "data": self.data, "publisher": self.publisher,
            "public_key": self.public_key, "revision": self.revision, "expires": self.expires,
        }

    def signed_bytes(self) -> bytes:
        return _MAGIC + canonical_json(self.unsigned())

    def to_json(self) -> str:
        return canonical_json({**self.unsigned(), "signature": self.signature}).decode("ascii")

    def verify_signature(self) -> bool:
        try:
            key = PublicKey.from_pem(self.public_key)
            signature = unb64(self.signature)
        except BadKeyError:
            return False
        return key.verify(self.signed_bytes(), signature)

    def owner_name(self) -> str:
        """The part of the key after ``<type>:`` (a nickname, an idurl, ...)."""
        return self.key.partition(":")[2]

    def with_identity_verified(self) -> Record:
        return dataclasses.replace(self, identity_verified=True)


def sign_record(private_key: PrivateKey, publisher: str, rtype: str, key: str, data: dict[str, Any],
                now: float, ttl: float = DEFAULT_TTL) -> Record:
    """A new signed record; refuses what readers would refuse, so a bug shows here."""
    unsigned = Record(
        type=rtype, key=key, data=data, publisher=publisher,
        public_key=private_key.public_key().to_pem().decode("ascii"),
        revision=int(now * 1000), expires=int(now + min(ttl, MAX_TTL)),
    )
    record = dataclasses.replace(unsigned, signature=b64(private_key.sign(unsigned.signed_bytes())))
    check_record(record.to_json(), key, now)
    return record


def parse_record(value: Any) -> Record:
    """Parse a stored value; RecordRejected('malformed'/'too-large') for anything odd."""
    if isinstance(value, bytes):
        try:
            value = value.decode("utf-8")
        except UnicodeDecodeError:
            raise RecordRejected("malformed", "not UTF-8") from None
    if not isinstance(value, str):
        raise RecordRejected("malformed", f"value of type {type(value).__name__}")
    if len(value) > MAX_RECORD_BYTES:
        raise RecordRejected("too-large", f"{len(value)} bytes")
    try:
        obj = json.loads(value)
    except ValueError:
        raise RecordRejected("malformed", "not JSON") from None
    if not isinstance(obj, dict) or set(obj) != set(_FIELDS):
        raise RecordRejected("malformed", "wrong fields")
    text_fields = ("type", "key", "publisher", "public_key", "signature")
    if not all(isinstance(obj[name], str) for name in text_fields) or not isinstance(obj["data"], dict):
        raise RecordRejected("malformed", "wrong field types")
    for name in ("revision", "expires"):
        if isinstance(obj[name], bool) or not isinstance(obj[name], int):
            raise RecordRejected("malformed", f"{name} must be an integer")
    return Record(**obj)


def check_record(value: Any, expected_key: str | None, now: float) -> Record:
    """Every check a reader or a storing node can make without the network.

    Raises RecordRejected with the first failing reason; returns the parsed record.
    """
    record = parse_record(value)
    rule = OWNERSHIP.get(record.type)
    if rule is None:
        raise RecordRejected("unknown-type", record.type)
    if not record.key.startswith(record.type + ":"):
        raise RecordRejected("wrong-key", f"{record.key!r} is not a {record.type} key")
    if expected_key is not None and record.key != expected_key:
        raise RecordRejected("wrong-key", f"record for {record.key!r} found under {expected_key!r}")
    if not is_idurl(record.publisher):
        raise RecordRejected("malformed", f"publisher {record.publisher!r} is not an idurl")
    if rule == KEY_EMBEDS_PUBLISHER and record.owner_name() != record.publisher:
        raise RecordRejected("publisher-mismatch", f"{record.publisher} cannot publish {record.key}")
    if record.type == "nickname" and record.key != nickname_key(record.owner_name()):
        raise RecordRejected("wrong-key", f"{record.key!r} is not a normalized nickname key")
    if record.expires <= now:
        raise RecordRejected("expired", f"{record.key} expired at {record.expires}")
    if record.expires > now + MAX_TTL + 60:  # a minute of clock skew
        raise RecordRejected("ttl-too-long", f"{record.key} claims to live until {record.expires}")
    if not record.verify_signature():
        raise RecordRejected("bad-signature", f"{record.key} from {record.publisher}")
    return record


def check_overwrite(old: Record | None, new: Record, now: float) -> None:
    """May ``new`` replace ``old`` under the same key? RecordRejected('owner'/'stale') if not.

    An expired ``old`` never blocks: the key is free again once its owner stops
    re-publishing.
    """
    if old is None or old.expires <= now:
        return
    if old.publisher != new.publisher or old.public_key != new.public_key:
        raise RecordRejected("owner", f"{new.key} is held by {old.publisher}")
    if new.revision < old.revision:
        raise RecordRejected("stale", f"{new.key} revision {new.revision} < {old.revision}")
