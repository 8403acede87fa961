"""AES-256-GCM with associated data: the only symmetric cipher BitDust uses.

A blob is ``nonce (12 bytes) || ciphertext || tag (16 bytes)``. Associated data is
authenticated but not stored: the caller rebuilds it from what it already knows (block
number, version, ...) so a piece moved to another place fails to open.
"""

from __future__ import annotations

import os

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

KEY_SIZE = 32
NONCE_SIZE = 12
TAG_SIZE = 16
OVERHEAD = NONCE_SIZE + TAG_SIZE


class AuthenticationError(ValueError):
    """The ciphertext, its tag or its associated data was altered, or the key is wrong."""


def new_key() -> bytes:
    return os.urandom(KEY_SIZE)


def encrypt(key: bytes, plaintext: bytes, associated_data: bytes = b"") -> bytes:
    nonce = os.urandom(NONCE_SIZE)
    return nonce + AESGCM(key).encrypt(nonce, plaintext, associated_data)


def encrypt_after(prefix: bytes, key: bytes, plaintext: bytes, associated_data: bytes = b"") -> bytearray:
    """``prefix || encrypt(key, plaintext, associated_data)`` built in one buffer: a
    multi-MB block is not copied again to be prefixed with its nonce and header."""
    out = bytearray(len(prefix) + NONCE_SIZE + len(plaintext) + TAG_SIZE)
    nonce = os.urandom(NONCE_SIZE)
    out[: len(prefix)] = prefix
    out[len(prefix) : len(prefix) + NONCE_SIZE] = nonce
    with memoryview(out) as view:
        AESGCM(key).encrypt_into(nonce, plaintext, associated_data, view[len(prefix) + NONCE_SIZE :])
    return out


def decrypt(key: bytes, blob: bytes | memoryview, associated_data: bytes = b"") -> bytes:
    if len(blob) < OVERHEAD:
        raise AuthenticationError(f"ciphertext of {len(blob)} bytes is shorter than the GCM overhead")
    view = memoryview(blob)  # slices of a view, not copies of the ciphertext
    try:
        return AESGCM(key).decrypt(view[:NONCE_SIZE], view[NONCE_SIZE:], associated_data)
    except InvalidTag as exc:
        raise AuthenticationError("AES-GCM tag does not verify") from exc
