"""Encryption of blocks: a per-version data key and AES-256-GCM with a bound header.

Each backup version gets a fresh 32-byte data key, kept only wrapped with the owner's
public key (RSA-OAEP); the catalog records ``VersionKey.wrapped``, so the private key
alone opens a version. A sealed block is::

    header (24 bytes, big-endian struct ">4sBBHQII"):
        magic b"BDBK" | format 1 | flags (bit 0 = last block) | reserved 0 |
        block number (u64) | plaintext length (u32) | ciphertext length (u32)
    ciphertext: nonce (12) || AES-GCM ciphertext || tag (16)   (bitdust.crypto.aead)

The associated data is ``b"bitdust-block-1\\0" + backup ID + b"\\0" + header``. The
backup ID (path ID and version) and block number come from what the restorer asked for,
not from the block, so a block moved to another number or version fails; the last flag
is authenticated too, so a backup cut before its last block is noticed by the reader
(:class:`~bitdust.storage.pipeline.decoder.RestoreDecoder` insists on seeing it).
The header goes first so the padded output of zfec can be cut to length without any
other record of it.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

from bitdust.crypto import aead
from bitdust.crypto.aead import AuthenticationError
from bitdust.crypto.keys import PrivateKey, PublicKey
from bitdust.storage.ids import parse_backup_id

MAGIC = b"BDBK"
FORMAT = 1
FLAG_LAST = 0x01
_HEADER = struct.Struct(">4sBBHQII")
HEADER_SIZE = _HEADER.size
_AD_PREFIX = b"bitdust-block-1\x00"
MAX_PLAIN = 0xFFFFFFFF - aead.OVERHEAD


class BlockFormatError(AuthenticationError):
    """A sealed block is malformed: to a restorer, one more way of failing verification."""


@dataclass(frozen=True)
class BlockHeader:
    number: int
    last: bool
    plain_len: int
    cipher_len: int

    def pack(self) -> bytes:
        return _HEADER.pack(
            MAGIC, FORMAT, FLAG_LAST if self.last else 0, 0, self.number, self.plain_len, self.cipher_len
        )

    @classmethod
    def unpack(cls, data: bytes | memoryview) -> BlockHeader:
        if len(data) < HEADER_SIZE:
            raise BlockFormatError(f"block of {len(data)} bytes is shorter than its header")
        magic, fmt, flags, reserved, number, plain_len, cipher_len = _HEADER.unpack_from(data)
        if magic != MAGIC or fmt != FORMAT:
            raise BlockFormatError(f"not a BitDust block (magic {magic!r}, format {fmt})")
        if flags & ~FLAG_LAST or reserved:
            raise BlockFormatError(f"unknown block flags {flags:#x}/{reserved:#x}")
        if cipher_len != plain_len + aead.OVERHEAD:
            raise BlockFormatError(f"ciphertext length {cipher_len} does not match plaintext {plain_len}")
        return cls(number, bool(flags & FLAG_LAST), plain_len, cipher_len)

    @property
    def sealed_len(self) -> int:
        return HEADER_SIZE + self.cipher_len


@dataclass(frozen=True, repr=False)  # repr=False: keep the data key out of logs
class VersionKey:
    key: bytes
    wrapped: bytes

    @classmethod
    def create(cls, owner: PublicKey) -> VersionKey:
        key = aead.new_key()
        return cls(key, owner.wrap(key))

    @classmethod
    def open(cls, owner: PrivateKey, wrapped: bytes) -> VersionKey:
        key = owner.unwrap(wrapped)
        if len(key) != aead.KEY_SIZE:
            raise BlockFormatError(f"data key of {len(key)} bytes, expected {aead.KEY_SIZE}")
        return cls(key, wrapped)


@dataclass(frozen=True)
class OpenedBlock:
    header: BlockHeader
    plaintext: bytes


def _associated_data(backup_id: str, header: bytes) -> bytes:
    return _AD_PREFIX + parse_backup_id(backup_id).encode("ascii") + b"\x00" + header


def seal_block(key: bytes, backup_id: str, number: int, last: bool, plaintext: bytes) -> bytearray:
    """Encrypt block ``number`` of ``backup_id``; returns header || ciphertext."""
    if len(plaintext) > MAX_PLAIN:
        raise ValueError(f"block of {len(plaintext)} bytes is too large")
    header = BlockHeader(number, last, len(plaintext), len(plaintext) + aead.OVERHEAD).pack()
    return aead.encrypt_after(header, key, plaintext, _associated_data(backup_id, header))


def open_block(key: bytes, backup_id: str, number: int, sealed: bytes | memoryview) -> OpenedBlock:
    """Verify and decrypt what should be block ``number`` of ``backup_id``.

    ``sealed`` may carry trailing zero padding (zfec output); the header says where the
    block ends. Raises AuthenticationError (BlockFormatError for a garbled header).
    """
    view = memoryview(sealed)
    header = BlockHeader.unpack(view)
    if len(view) < header.sealed_len:
        raise BlockFormatError(f"block is truncated: {len(view)} of {header.sealed_len} bytes")
    if header.number != number:
        raise AuthenticationError(f"expected block {number}, got a block numbered {header.number}")
    raw_header = bytes(view[:HEADER_SIZE])
    plaintext = aead.decrypt(key, view[HEADER_SIZE : header.sealed_len], _associated_data(backup_id, raw_header))
    return OpenedBlock(header, plaintext)
