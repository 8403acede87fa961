"""Ed25519 packet keys: the per-node key that signs packets.

Why a second key: every packet and every Ack is signed, and an RSA-3072 signature costs
~4.7 ms here, which capped signed traffic at a fraction of what the socket carries. An
Ed25519 signature costs ~45 µs and its verification ~70 µs. The RSA key stays the
node's identity (identity documents, key wrapping, data keys); the identity document
lists the packet key's public half and the RSA signature over the document certifies
it, so trusting an identity means trusting its packet key too.

The private half lives at ``<home>/metadata/packetkey`` (unencrypted PKCS#8 PEM, mode
0600, like ``mykeyfile``). Generation takes microseconds, so it needs no thread.

These wrappers sign and verify whatever bytes they are given; the packet layer decides
what those bytes are (domain separation and pre-hashing, see
:mod:`bitdust.transport.packet`).

Signing and verifying go through libsodium (PyNaCl): its Ed25519 verification takes
~70 µs of CPU here against ~180 µs for OpenSSL's (through ``cryptography``), and every
packet received is verified, Acks included. ``cryptography`` still reads and writes the
key files (PKCS#8 PEM), so the format on disk did not change.
"""

from __future__ import annotations

import base64
import hashlib
import os
from pathlib import Path

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519
from nacl.exceptions import BadSignatureError
from nacl.signing import SigningKey, VerifyKey

from bitdust.crypto.keys import BadKeyError
from bitdust.util.fs import atomic_write

RAW_KEY_BYTES = 32
SIGNATURE_BYTES = 64


class PacketVerifyKey:
    """The public half: checks packet signatures. Compared and hashed by its raw bytes."""

    __slots__ = ("_fingerprint", "_key", "_raw", "_sodium")

    def __init__(self, key: ed25519.Ed25519PublicKey) -> None:
        self._key = key
        self._raw = key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
        self._sodium = VerifyKey(self._raw)
        der = key.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
        # Cached: the KeyID of every outgoing packet and every verification uses it.
        self._fingerprint = hashlib.sha256(der).hexdigest()

    @classmethod
    def from_raw(cls, raw: bytes) -> PacketVerifyKey:
        if not isinstance(raw, bytes) or len(raw) != RAW_KEY_BYTES:
            raise BadKeyError(f"an Ed25519 public key is {RAW_KEY_BYTES} raw bytes")
        try:
            return cls(ed25519.Ed25519PublicKey.from_public_bytes(raw))
        except ValueError as exc:
            raise BadKeyError(f"not an Ed25519 public key: {exc}") from exc

    @classmethod
    def from_b64(cls, text: str) -> PacketVerifyKey:
        """The form identity documents carry: base64 of the 32 raw bytes."""
        try:
            raw = base64.b64decode(text.encode("ascii"), validate=True)
        except (ValueError, UnicodeEncodeError) as exc:
            raise BadKeyError(f"bad base64: {exc}") from exc
        return cls.from_raw(raw)

    @classmethod
    def from_pem(cls, pem: bytes | str) -> PacketVerifyKey:
        data = pem.encode("ascii") if isinstance(pem, str) else pem
        try:
            key = serialization.load_pem_public_key(data)
        except (ValueError, TypeError) as exc:
            raise BadKeyError(f"not a PEM public key: {exc}") from exc
        if not isinstance(key, ed25519.Ed25519PublicKey):
            raise BadKeyError("only Ed25519 packet keys are accepted")
        return cls(key)

    def to_raw(self) -> bytes:
        return self._raw

    def to_b64(self) -> str:
        return base64.b64encode(self._raw).decode("ascii")

    def to_pem(self) -> bytes:
        return self._key.public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)

    def fingerprint(self) -> str:
        """SHA-256 of the DER SubjectPublicKeyInfo, hex: a packet's KeyID. Same rule as
        the RSA key's fingerprint, and the DER names the algorithm, so the two kinds of
        key can never share a fingerprint."""
        return self._fingerprint

    def verify(self, data: bytes, signature: bytes) -> bool:
        """True only if ``signature`` is this key's Ed25519 signature of ``data``."""
        if not isinstance(signature, bytes) or len(signature) != SIGNATURE_BYTES:
            return False
        try:
            self._sodium.verify(data, signature)
        except (BadSignatureError, ValueError, TypeError):
            return False
        return True

    def __eq__(self, other: object) -> bool:
        return isinstance(other, PacketVerifyKey) and self._raw == other._raw

    def __hash__(self) -> int:
        return hash(self._raw)

    def __repr__(self) -> str:
        return f"PacketVerifyKey({self._fingerprint[:16]})"


class PacketSigningKey:
    """The private half: signs this node's packets. Never leaves the node's home."""

    __slots__ = ("_key", "_public", "_sodium")

    def __init__(self, key: ed25519.Ed25519PrivateKey) -> None:
        self._key = key
        self._public = PacketVerifyKey(key.public_key())
        self._sodium = SigningKey(self.to_raw())

    @classmethod
    def generate(cls) -> PacketSigningKey:
        return cls(ed25519.Ed25519PrivateKey.generate())

    @classmethod
    def from_raw(cls, seed: bytes) -> PacketSigningKey:
        if not isinstance(seed, bytes) or len(seed) != RAW_KEY_BYTES:
            raise BadKeyError(f"an Ed25519 private key is a {RAW_KEY_BYTES}-byte seed")
        return cls(ed25519.Ed25519PrivateKey.from_private_bytes(seed))

    @classmethod
    def from_pem(cls, pem: bytes) -> PacketSigningKey:
        try:
            key = serialization.load_pem_private_key(pem, password=None)
        except (ValueError, TypeError) as exc:
            raise BadKeyError(f"cannot load packet key: {exc}") from exc
        if not isinstance(key, ed25519.Ed25519PrivateKey):
            raise BadKeyError("only Ed25519 packet keys are accepted")
        return cls(key)

    def to_raw(self) -> bytes:
        return self._key.private_bytes(serialization.Encoding.Raw, serialization.PrivateFormat.Raw,
                                       serialization.NoEncryption())

    def to_pem(self) -> bytes:
        return self._key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                       serialization.NoEncryption())

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> PacketSigningKey:
        return cls.from_pem(Path(path).read_bytes())

    def save(self, path: str | os.PathLike[str]) -> None:
        """Unencrypted PEM, mode 0600: the home folder is the trust boundary (as for the RSA key)."""
        atomic_write(path, self.to_pem(), mode=0o600)

    @classmethod
    def load_or_create(cls, path: str | os.PathLike[str]) -> PacketSigningKey:
        """The key at ``path``, made and saved (0600) when missing. Cheap: no thread needed."""
        target = Path(path)
        if target.is_file():
            return cls.load(target)
        key = cls.generate()
        key.save(target)
        return key

    def public_key(self) -> PacketVerifyKey:
        return self._public

    def fingerprint(self) -> str:
        return self._public.fingerprint()

    def sign(self, data: bytes) -> bytes:
        return bytes(self._sodium.sign(data).signature)

    def __repr__(self) -> str:
        return f"PacketSigningKey({self.fingerprint()[:16]})"
