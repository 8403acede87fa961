"""The key backup file: everything a fresh machine needs to become this node again.

``bitdust identity backup FILE`` writes it, ``bitdust identity restore FILE`` reads it.
One UTF-8 JSON object, mode 0600 (format version 1)::

    {
      "format": "bitdust-key-backup",
      "version": 1,
      "created": "2026-11-26T18:40:00Z",
      "idurl": "http://id.example.net:8084/alice.xml",
      "key": {"encrypted": true, "pem": "-----BEGIN ENCRYPTED PRIVATE KEY-----..."},
      "packet_key": "<base64>",
      "identity": "<the signed identity document, XML>",
      "suppliers": {"ecc_map": "ecc/4x4", "positions": ["<idurl of position 0>", "", ...]},
      "signature": "<base64>"
    }

Why each part:

- ``key.pem``: the RSA private key, PKCS#8; with a passphrase it is encrypted with the
  best scheme ``cryptography`` offers (``BestAvailableEncryption``), so the file can be
  kept somewhere less trusted than the home folder.
- ``packet_key``: the Ed25519 packet key's 32-byte seed wrapped (RSA-OAEP) with the
  node's own public key: only the RSA key opens it, so it is exactly as protected as
  the RSA key, passphrase or not. Keeping it means the identity document (which
  certifies it) stays valid and suppliers keep verifying our packets.
- ``identity``: the signed document as it was, so the name, sources and revision
  sequence go on; the daemon re-signs it with its new contacts on the first start.
- ``suppliers``: who held our data when the file was written (how a fresh machine finds
  its suppliers; see :mod:`bitdust.identity.key_backup_cli`). Null when there were none.
- ``signature``: RSA-PSS of the canonical JSON of every other field, by the key inside:
  any change to the file (a swapped supplier list, an edited idurl) is refused. A changed
  encrypted key already fails to decrypt.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from bitdust.crypto.keys import BadKeyError, PrivateKey, b64, unb64
from bitdust.crypto.packet_keys import PacketSigningKey
from bitdust.identity.document import Identity, IdentityError

FORMAT = "bitdust-key-backup"
VERSION = 1
MAX_FILE_BYTES = 1024 * 1024
_FIELDS = ("format", "version", "created", "idurl", "key", "packet_key", "identity", "suppliers", "signature")


class KeyBackupError(ValueError):
    """The file cannot be written or used; the message says why, for the user."""


@dataclass
class KeyBackup:
    key: PrivateKey
    packet_key: PacketSigningKey
    identity: Identity
    suppliers: dict[str, Any] | None
    created: str = ""

    @property
    def idurl(self) -> str:
        return self.identity.idurl


def _canonical(fields: dict[str, Any]) -> bytes:
    return json.dumps(fields, sort_keys=True, separators=(",", ":"), ensure_ascii=True).encode("ascii")


def _check_suppliers(suppliers: Any) -> dict[str, Any] | None:
    if suppliers is None:
        return None
    if not isinstance(suppliers, dict) or not isinstance(suppliers.get("ecc_map"), str) \
            or not isinstance(suppliers.get("positions"), list) \
            or not all(isinstance(p, str) for p in suppliers["positions"]):
        raise KeyBackupError("the supplier list in the file is malformed")
    return {"ecc_map": suppliers["ecc_map"], "positions": list(suppliers["positions"])}


def dump(backup: KeyBackup, passphrase: bytes | None) -> bytes:
    """The file's bytes; the key is encrypted with ``passphrase`` when one is given."""
    if backup.identity.public_key != backup.key.public_key():
        raise KeyBackupError("the identity was not made with this key")
    fields: dict[str, Any] = {
        "format": FORMAT,
        "version": VERSION,
        "created": backup.created or datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "idurl": backup.idurl,
        "key": {"encrypted": bool(passphrase), "pem": backup.key.to_pem(passphrase).decode("ascii")},
        "packet_key": b64(backup.key.public_key().wrap(backup.packet_key.to_raw())),
        "identity": backup.identity.to_xml().decode("utf-8"),
        "suppliers": _check_suppliers(backup.suppliers),
    }
    fields["signature"] = b64(backup.key.sign(_canonical(fields)))
    return (json.dumps(fields, indent=1, ensure_ascii=False) + "\n").encode("utf-8")


def is_encrypted(data: bytes) -> bool:
    """Does the file need a passphrase? (A malformed file says no; :func:`load` says why.)"""
    try:
        fields = json.loads(data)
        return bool(fields["key"]["encrypted"])
    except (ValueError, KeyError, TypeError):
        return False


def load(data: bytes, passphrase: bytes | None) -> KeyBackup:
    """Parse and check everything; KeyBackupError naming the first problem."""
    if len(data) > MAX_FILE_BYTES:
        raise KeyBackupError(f"the file is larger than {MAX_FILE_BYTES} bytes: not a key backup")
    try:
        fields = json.loads(data.decode("utf-8"))
    except (UnicodeDecodeError, ValueError):
        raise KeyBackupError("not a BitDust key backup (not JSON)") from None
    if not isinstance(fields, dict) or fields.get("format") != FORMAT:
        raise KeyBackupError("not a BitDust key backup")
    if fields.get("version") != VERSION:
        raise KeyBackupError(f"key backup format version {fields.get('version')!r} is not supported "
                             f"(this build reads version {VERSION})")
    if set(fields) != set(_FIELDS):
        raise KeyBackupError("the key backup is damaged: its fields are not the expected ones")
    key_part = fields["key"]
    if not isinstance(key_part, dict) or not isinstance(key_part.get("pem"), str):
        raise KeyBackupError("the key backup is damaged: no private key")
    encrypted = bool(key_part.get("encrypted"))
    if encrypted and not passphrase:
        raise KeyBackupError("this key backup is protected by a passphrase: give --passphrase-file or "
                             "--passphrase-env")
    try:
        key = PrivateKey.from_pem(key_part["pem"].encode("ascii"), passphrase if encrypted else None)
    except (BadKeyError, UnicodeEncodeError):
        if encrypted:
            raise KeyBackupError("wrong passphrase, or the key in the file is damaged") from None
        raise KeyBackupError("the private key in the file is damaged") from None
    unsigned = {name: fields[name] for name in _FIELDS if name != "signature"}
    try:
        signature = unb64(str(fields["signature"]))
    except BadKeyError:
        raise KeyBackupError("the key backup is damaged: bad signature encoding") from None
    if not key.public_key().verify(_canonical(unsigned), signature):
        raise KeyBackupError("the key backup was changed after it was written (its signature does not verify)")
    try:
        packet_key = PacketSigningKey.from_raw(key.unwrap(unb64(str(fields["packet_key"]))))
        identity = Identity.from_xml(str(fields["identity"]).encode("utf-8"))
    except (BadKeyError, IdentityError, ValueError) as exc:
        raise KeyBackupError(f"the key backup is damaged: {exc}") from None
    if not identity.verify() or identity.public_key != key.public_key():
        raise KeyBackupError("the identity in the key backup does not belong to its key")
    if identity.idurl != fields["idurl"]:
        raise KeyBackupError("the identity in the key backup is not the one its idurl names")
    return KeyBackup(key, packet_key, identity, _check_suppliers(fields["suppliers"]), str(fields["created"]))
