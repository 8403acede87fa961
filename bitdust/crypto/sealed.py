"""Hybrid encryption of a message to one recipient's public key.

``seal`` wraps a fresh AES-256 key with RSA-OAEP and encrypts the message with GCM. The
layout is ``len(wrapped) (2 bytes, big endian) || wrapped key || aead blob``.
"""

from __future__ import annotations

import struct

from bitdust.crypto import aead
from bitdust.crypto.keys import PrivateKey, PublicKey

_LEN = struct.Struct(">H")


def seal(recipient: PublicKey, plaintext: bytes, associated_data: bytes = b"") -> bytes:
    key = aead.new_key()
    wrapped = recipient.wrap(key)
    return _LEN.pack(len(wrapped)) + wrapped + aead.encrypt(key, plaintext, associated_data)


def open_sealed(private_key: PrivateKey, blob: bytes | memoryview, associated_data: bytes = b"") -> bytes:
    """Raise ValueError (BadKeyError or AuthenticationError) if the blob is not for us or altered."""
    blob = bytes(blob)  # a message, small: its parts go to the RSA and AEAD wrappers as bytes
    if len(blob) < _LEN.size:
        raise aead.AuthenticationError("sealed blob is truncated")
    (wrapped_len,) = _LEN.unpack_from(blob)
    wrapped = blob[_LEN.size : _LEN.size + wrapped_len]
    if len(wrapped) != wrapped_len:
        raise aead.AuthenticationError("sealed blob is truncated")
    key = private_key.unwrap(wrapped)
    return aead.decrypt(key, blob[_LEN.size + wrapped_len :], associated_data)
