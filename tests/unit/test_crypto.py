"""Keys, AEAD and sealed boxes: the guarantees everything else leans on."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from bitdust.crypto import aead, sealed
from bitdust.crypto.keys import MIN_KEY_BITS, BadKeyError, PrivateKey, PublicKey, b64, unb64
from bitdust.crypto.packet_keys import PacketSigningKey, PacketVerifyKey


@pytest.fixture(scope="module")
def key() -> PrivateKey:
    return PrivateKey.generate(2048)


@pytest.fixture(scope="module")
def other_key() -> PrivateKey:
    return PrivateKey.generate(2048)


# --- keys --------------------------------------------------------------------------------


def test_sign_verify(key: PrivateKey) -> None:
    sig = key.sign(b"hello")
    assert key.public_key().verify(b"hello", sig)
    assert len(sig) == 2048 // 8


def test_tampered_data_or_signature_fails(key: PrivateKey) -> None:
    sig = key.sign(b"hello")
    pub = key.public_key()
    assert not pub.verify(b"hellO", sig)
    assert not pub.verify(b"hello", sig[:-1] + bytes([sig[-1] ^ 1]))
    assert not pub.verify(b"hello", b"")
    assert not pub.verify(b"hello", sig + b"\x00")


def test_other_key_does_not_verify(key: PrivateKey, other_key: PrivateKey) -> None:
    assert not other_key.public_key().verify(b"hello", key.sign(b"hello"))


def test_wrap_unwrap(key: PrivateKey) -> None:
    secret = aead.new_key()
    wrapped = key.public_key().wrap(secret)
    assert wrapped != secret
    assert key.unwrap(wrapped) == secret


def test_unwrap_with_wrong_key_fails(key: PrivateKey, other_key: PrivateKey) -> None:
    wrapped = key.public_key().wrap(b"k" * 32)
    with pytest.raises(BadKeyError):
        other_key.unwrap(wrapped)


def test_private_pem_roundtrip_plain(key: PrivateKey) -> None:
    pem = key.to_pem()
    assert b"ENCRYPTED" not in pem
    again = PrivateKey.from_pem(pem)
    assert again.public_key() == key.public_key()
    assert key.public_key().verify(b"x", again.sign(b"x"))


def test_private_pem_roundtrip_with_passphrase(key: PrivateKey) -> None:
    pem = key.to_pem(passphrase=b"correct horse")
    assert b"ENCRYPTED" in pem
    assert PrivateKey.from_pem(pem, passphrase=b"correct horse").public_key() == key.public_key()
    with pytest.raises(BadKeyError):
        PrivateKey.from_pem(pem, passphrase=b"wrong")
    with pytest.raises(BadKeyError):
        PrivateKey.from_pem(pem)


def test_public_pem_roundtrip(key: PrivateKey) -> None:
    pub = key.public_key()
    again = PublicKey.from_pem(pub.to_pem())
    assert again == pub
    assert hash(again) == hash(pub)
    assert again.fingerprint() == pub.fingerprint()
    assert len(pub.fingerprint()) == 64
    assert PublicKey.from_pem(pub.to_pem().decode("ascii")) == pub
    assert pub.bits == 2048


def test_garbage_pem_refused() -> None:
    with pytest.raises(BadKeyError):
        PublicKey.from_pem(b"-----BEGIN PUBLIC KEY-----\nnope\n-----END PUBLIC KEY-----\n")
    with pytest.raises(BadKeyError):
        PrivateKey.from_pem(b"not a key")


def test_save_is_private_and_loads(key: PrivateKey, tmp_path: Path) -> None:
    path = tmp_path / "metadata" / "mykeyfile"
    key.save(path)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert PrivateKey.load(path).public_key() == key.public_key()


def test_small_key_refused() -> None:
    with pytest.raises(BadKeyError):
        PrivateKey.generate(MIN_KEY_BITS - 1024)
    small = rsa.generate_private_key(public_exponent=65537, key_size=1024)
    pem = small.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    with pytest.raises(BadKeyError, match="too small"):
        PublicKey.from_pem(pem)


def test_non_rsa_key_refused() -> None:
    ec_key = ec.generate_private_key(ec.SECP256R1())
    pub_pem = ec_key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    priv_pem = ec_key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    with pytest.raises(BadKeyError, match="RSA"):
        PublicKey.from_pem(pub_pem)
    with pytest.raises(BadKeyError, match="RSA"):
        PrivateKey.from_pem(priv_pem)


# --- packet keys (Ed25519) ----------------------------------------------------------------


def test_packet_key_sign_verify_and_tamper() -> None:
    key, other = PacketSigningKey.generate(), PacketSigningKey.generate()
    sig = key.sign(b"hello")
    assert len(sig) == 64
    assert key.public_key().verify(b"hello", sig)
    assert not key.public_key().verify(b"hellO", sig)
    assert not key.public_key().verify(b"hello", sig[:-1] + bytes([sig[-1] ^ 1]))
    assert not key.public_key().verify(b"hello", b"")
    assert not key.public_key().verify(b"hello", sig + b"\x00")
    assert not other.public_key().verify(b"hello", sig)


def test_packet_key_serialization_roundtrips() -> None:
    key = PacketSigningKey.generate()
    public = key.public_key()
    assert PacketSigningKey.from_pem(key.to_pem()).to_raw() == key.to_raw()
    assert PacketSigningKey.from_raw(key.to_raw()).public_key() == public
    assert PacketVerifyKey.from_raw(public.to_raw()) == public
    assert PacketVerifyKey.from_b64(public.to_b64()) == public
    assert PacketVerifyKey.from_pem(public.to_pem()) == public
    assert hash(PacketVerifyKey.from_raw(public.to_raw())) == hash(public)
    assert len(public.fingerprint()) == 64
    assert key.fingerprint() == public.fingerprint() != PacketSigningKey.generate().fingerprint()


def test_packet_key_garbage_refused(key: PrivateKey) -> None:
    for bad in (b"", b"\x00" * 31, b"\x00" * 33):
        with pytest.raises(BadKeyError):
            PacketVerifyKey.from_raw(bad)
        with pytest.raises(BadKeyError):
            PacketSigningKey.from_raw(bad)
    with pytest.raises(BadKeyError):
        PacketVerifyKey.from_b64("!!")
    with pytest.raises(BadKeyError, match="Ed25519"):
        PacketVerifyKey.from_pem(key.public_key().to_pem())
    with pytest.raises(BadKeyError, match="Ed25519"):
        PacketSigningKey.from_pem(key.to_pem())
    with pytest.raises(BadKeyError):
        PacketSigningKey.from_pem(b"not a pem")


def test_packet_key_file_is_private_and_stable(tmp_path: Path) -> None:
    path = tmp_path / "metadata" / "packetkey"
    key = PacketSigningKey.load_or_create(path)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert PacketSigningKey.load_or_create(path).to_raw() == key.to_raw()
    assert PacketSigningKey.load(path).fingerprint() == key.fingerprint()


def test_b64_roundtrip_and_garbage() -> None:
    assert unb64(b64(b"\x00\xffdata")) == b"\x00\xffdata"
    with pytest.raises(BadKeyError):
        unb64("not base64!!")


# --- aead --------------------------------------------------------------------------------


def test_aead_roundtrip() -> None:
    k = aead.new_key()
    blob = aead.encrypt(k, b"secret data", b"block-1")
    assert len(blob) == len(b"secret data") + aead.OVERHEAD
    assert b"secret data" not in blob
    assert aead.decrypt(k, blob, b"block-1") == b"secret data"


def test_aead_nonce_is_fresh() -> None:
    k = aead.new_key()
    assert aead.encrypt(k, b"same") != aead.encrypt(k, b"same")


def test_aead_tamper_fails() -> None:
    k = aead.new_key()
    blob = aead.encrypt(k, b"secret data", b"ad")
    for i in range(len(blob)):
        flipped = blob[:i] + bytes([blob[i] ^ 0x01]) + blob[i + 1 :]
        with pytest.raises(aead.AuthenticationError):
            aead.decrypt(k, flipped, b"ad")


def test_aead_aad_mismatch_fails() -> None:
    k = aead.new_key()
    blob = aead.encrypt(k, b"secret data", b"block-1")
    with pytest.raises(aead.AuthenticationError):
        aead.decrypt(k, blob, b"block-2")
    with pytest.raises(aead.AuthenticationError):
        aead.decrypt(k, blob)


def test_aead_wrong_key_and_short_blob_fail() -> None:
    blob = aead.encrypt(aead.new_key(), b"x")
    with pytest.raises(aead.AuthenticationError):
        aead.decrypt(aead.new_key(), blob)
    with pytest.raises(aead.AuthenticationError, match="shorter"):
        aead.decrypt(aead.new_key(), b"short")


# --- sealed ------------------------------------------------------------------------------


def test_sealed_roundtrip(key: PrivateKey) -> None:
    blob = sealed.seal(key.public_key(), b"for your eyes only", b"ctx")
    assert b"for your eyes only" not in blob
    assert sealed.open_sealed(key, blob, b"ctx") == b"for your eyes only"
    assert sealed.open_sealed(key, memoryview(bytearray(blob)).toreadonly(), b"ctx") == b"for your eyes only"


def test_sealed_wrong_recipient_fails(key: PrivateKey, other_key: PrivateKey) -> None:
    blob = sealed.seal(key.public_key(), b"for your eyes only")
    with pytest.raises(BadKeyError):
        sealed.open_sealed(other_key, blob)


def test_sealed_tamper_and_truncation_fail(key: PrivateKey) -> None:
    blob = sealed.seal(key.public_key(), b"payload", b"ctx")
    with pytest.raises(aead.AuthenticationError):
        sealed.open_sealed(key, blob[:-1] + bytes([blob[-1] ^ 1]), b"ctx")
    with pytest.raises(aead.AuthenticationError):
        sealed.open_sealed(key, blob, b"other ctx")
    with pytest.raises(aead.AuthenticationError, match="truncated"):
        sealed.open_sealed(key, blob[:1])
    with pytest.raises(aead.AuthenticationError, match="truncated"):
        sealed.open_sealed(key, blob[:100])
