"""The self-signed TLS certificate a node's QUIC listener presents.

QUIC requires TLS 1.3, so a server needs a certificate; nobody checks it. Peers are
authenticated by the RSA signature on every packet against the identity document
(fetched from the peer's identity server), which a certificate authority could add
nothing to: a node has no DNS name to certify, and a man in the middle who could read
or alter QUIC traffic still cannot forge or alter a signed packet. TLS here gives
confidentiality of packet headers on the wire and QUIC's reliability and congestion
control, not identity.

The key is EC P-256 (fast to make and to handshake with), stored 0600 beside the
node's other secrets and reused across restarts.
"""

from __future__ import annotations

import datetime
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from bitdust.util.fs import atomic_write

CERT_FILE = "quic-cert.pem"
KEY_FILE = "quic-key.pem"
SERVER_NAME = "bitdust-node"
VALID_DAYS = 3650


def ensure_certificate(metadata: Path) -> tuple[Path, Path]:
    """Paths of (certificate, key) under ``metadata``, made on first use."""
    cert_path, key_path = metadata / CERT_FILE, metadata / KEY_FILE
    if cert_path.is_file() and key_path.is_file():
        return cert_path, key_path
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, SERVER_NAME)])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(days=1))
        .not_valid_after(now + datetime.timedelta(days=VALID_DAYS))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName(SERVER_NAME)]), critical=False)
        .sign(key, hashes.SHA256())
    )
    key_pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                serialization.NoEncryption())
    atomic_write(key_path, key_pem, mode=0o600)
    atomic_write(cert_path, cert.public_bytes(serialization.Encoding.PEM), mode=0o600)
    return cert_path, key_path
