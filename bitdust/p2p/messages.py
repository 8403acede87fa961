"""Private messages: a JSON body sealed to the recipient's key inside a signed packet.

Payload of a ``Message`` packet: ``seal(recipient key, canonical JSON {"v", "from",
"to", "body"}, associated data)``. The associated data binds the sender (packet
creator), the recipient (packet RemoteID) and the PacketID, so a sealed blob lifted out
of one packet and re-sent inside another (another sender, another id) fails to open.
The packet signature, checked by the gateway, proves the sender; the ``from`` inside
must name that same creator, otherwise the message is dropped.
"""

from __future__ import annotations

import json
from typing import Any

from bitdust.crypto.keys import PrivateKey, PublicKey
from bitdust.crypto.sealed import open_sealed, seal
from bitdust.dht.records import canonical_json
from bitdust.transport.packet import Packet

VERSION = 1
MAX_BODY_BYTES = 64 * 1024
"""Messages are chat-sized; files travel as backups, not as messages."""
_AD_MAGIC = b"bitdust-message-v1\x00"


class MessageError(ValueError):
    """A body that cannot be sent, or a received message that does not open or check out."""


def associated_data(sender: str, recipient: str, packet_id: str) -> bytes:
    return b"\x00".join((_AD_MAGIC, sender.encode("utf-8"), recipient.encode("utf-8"), packet_id.encode("utf-8")))


def encode_body(sender: str, recipient: str, body: Any) -> bytes:
    """Canonical JSON of the message; MessageError if ``body`` is not JSON or too big."""
    try:
        data = canonical_json({"v": VERSION, "from": sender, "to": recipient, "body": body})
    except (TypeError, ValueError) as exc:
        raise MessageError(f"message body must be JSON (text, number, list or object): {exc}") from None
    if len(data) > MAX_BODY_BYTES:
        raise MessageError(f"message of {len(data)} bytes is over the limit of {MAX_BODY_BYTES}")
    return data


def seal_message(recipient_key: PublicKey, sender: str, recipient: str, packet_id: str, body: Any) -> bytes:
    """The payload of a Message packet (runs RSA-OAEP and AES-GCM: call it off the reactor)."""
    return seal(recipient_key, encode_body(sender, recipient, body), associated_data(sender, recipient, packet_id))


def open_message(private_key: PrivateKey, packet: Packet) -> Any:
    """The body of a received Message packet; MessageError when it does not open or lies
    about its sender or recipient."""
    ad = associated_data(packet.creator_id, packet.remote_id, packet.packet_id)
    try:
        plain = open_sealed(private_key, packet.payload, ad)
    except ValueError as exc:
        raise MessageError(f"message does not decrypt: {exc or type(exc).__name__}") from None
    try:
        obj = json.loads(plain)
    except ValueError:
        raise MessageError("decrypted message is not JSON") from None
    if not isinstance(obj, dict) or obj.get("v") != VERSION or "body" not in obj:
        raise MessageError("decrypted message has an unknown layout")
    if obj.get("from") != packet.creator_id:
        raise MessageError(f"message claims to be from {obj.get('from')!r}, signed by {packet.creator_id}")
    if obj.get("to") != packet.remote_id:
        raise MessageError(f"message was meant for {obj.get('to')!r}")
    return obj["body"]
