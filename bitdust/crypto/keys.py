"""RSA keys of a node.

Signatures are RSA-PSS with SHA-256 (salt of digest length, so signatures are
deterministic in size and verification is strict); key wrapping is RSA-OAEP with
SHA-256. No SHA-1 anywhere. Key generation is slow (about a second for 3072 bits):
call :meth:`PrivateKey.generate` off the reactor thread.
"""

from __future__ import annotations

import base64
import hashlib
import os
from pathlib import Path

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa, utils

from bitdust.util.fs import atomic_write

MIN_KEY_BITS = 2048

_PSS = padding.PSS(mgf=padding.MGF1(hashes.SHA256()), salt_length=padding.PSS.DIGEST_LENGTH)
_PREHASHED = utils.Prehashed(hashes.SHA256())
_OAEP = padding.OAEP(mgf=padding.MGF1(algorithm=hashes.SHA256()), algorithm=hashes.SHA256(), label=None)


class BadKeyError(ValueError):
    """A key could not be loaded or used (bad PEM, wrong type, too small)."""


class PublicKey:
    """An RSA public key: verifies signatures and wraps secrets for its owner."""

    def __init__(self, key: rsa.RSAPublicKey) -> None:
        self._key = key

    @classmethod
    def from_pem(cls, pem: bytes | str) -> PublicKey:
        data = pem.encode("ascii") if isinstance(pem, str) else pem
        try:
            key = serialization.load_pem_public_key(data)
        except (ValueError, TypeError) as exc:
            raise BadKeyError(f"not a PEM public key: {exc}") from exc
        if not isinstance(key, rsa.RSAPublicKey):
            raise BadKeyError("only RSA public keys are accepted")
        if key.key_size < MIN_KEY_BITS:
            raise BadKeyError(f"RSA key of {key.key_size} bits is too small (minimum {MIN_KEY_BITS})")
        return cls(key)

    def to_pem(self) -> bytes:
        return self._key.public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )

    @property
    def bits(self) -> int:
        return self._key.key_size

    def fingerprint(self) -> str:
        """SHA-256 of the DER form, hex: a short stable name for the key (KeyID)."""
        der = self._key.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
        return hashlib.sha256(der).hexdigest()

    def verify(self, data: bytes, signature: bytes) -> bool:
        """True only if ``signature`` is this key's RSA-PSS signature of ``data``."""
        try:
            self._key.verify(signature, data, _PSS, hashes.SHA256())
        except (InvalidSignature, ValueError):
            return False
        return True

    def verify_digest(self, digest: bytes, signature: bytes) -> bool:
        """As :meth:`verify`, given SHA-256(data): lets big data be hashed in pieces,
        without joining it into one more copy first. Same signatures as :meth:`verify`."""
        try:
            self._key.verify(signature, digest, _PSS, _PREHASHED)
        except (InvalidSignature, ValueError):
            return False
        return True

    def wrap(self, secret: bytes) -> bytes:
        """Encrypt a short secret (a symmetric key) so only the private key opens it."""
        return self._key.encrypt(secret, _OAEP)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, PublicKey) and self.to_pem() == other.to_pem()

    def __hash__(self) -> int:
        return hash(self.to_pem())


class PrivateKey:
    """A node's RSA private key. Never leaves the node except in a key backup."""

    def __init__(self, key: rsa.RSAPrivateKey) -> None:
        self._key = key

    @classmethod
    def generate(cls, bits: int = 3072) -> PrivateKey:
        if bits < MIN_KEY_BITS:
            raise BadKeyError(f"RSA key of {bits} bits is too small (minimum {MIN_KEY_BITS})")
        return cls(rsa.generate_private_key(public_exponent=65537, key_size=bits))

    @classmethod
    def from_pem(cls, pem: bytes, passphrase: bytes | None = None, validate: bool = True) -> PrivateKey:
        try:
            key = serialization.load_pem_private_key(pem, password=passphrase,
                                                     unsafe_skip_rsa_key_validation=not validate)
        except (ValueError, TypeError) as exc:
            raise BadKeyError(f"cannot load private key: {exc}") from exc
        if not isinstance(key, rsa.RSAPrivateKey):
            raise BadKeyError("only RSA private keys are accepted")
        return cls(key)

    def to_pem(self, passphrase: bytes | None = None) -> bytes:
        encryption: serialization.KeySerializationEncryption = (
            serialization.BestAvailableEncryption(passphrase) if passphrase else serialization.NoEncryption()
        )
        return self._key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, encryption)

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> PrivateKey:
        """Load the node's own key file (written by :meth:`save`, 0600 in a 0700 folder).

        The full RSA consistency check costs about 0.15 s for 3072 bits at every start;
        it guards against malformed keys from elsewhere, so :meth:`from_pem` (key
        backups, imports) keeps it, and only our own file skips it."""
        return cls.from_pem(Path(path).read_bytes(), validate=False)

    def save(self, path: str | os.PathLike[str]) -> None:
        """Store unencrypted PEM with mode 0600 (the home folder is the trust boundary)."""
        atomic_write(path, self.to_pem(), mode=0o600)

    @property
    def bits(self) -> int:
        return self._key.key_size

    def public_key(self) -> PublicKey:
        return PublicKey(self._key.public_key())

    def sign(self, data: bytes) -> bytes:
        return self._key.sign(data, _PSS, hashes.SHA256())

    def sign_digest(self, digest: bytes) -> bytes:
        """Sign SHA-256(data) given the digest: the same signature :meth:`sign` makes."""
        return self._key.sign(digest, _PSS, _PREHASHED)

    def unwrap(self, wrapped: bytes) -> bytes:
        """Open a secret made by :meth:`PublicKey.wrap`; ValueError if it is not ours."""
        try:
            return self._key.decrypt(wrapped, _OAEP)
        except ValueError as exc:
            raise BadKeyError("wrapped key does not open with this private key") from exc


def b64(data: bytes) -> str:
    """Base64 text for keys and signatures inside text documents (XML, JSON)."""
    return base64.b64encode(data).decode("ascii")


def unb64(text: str) -> bytes:
    try:
        return base64.b64decode(text.encode("ascii"), validate=True)
    except (ValueError, UnicodeEncodeError) as exc:
        raise BadKeyError(f"bad base64: {exc}") from exc
