"""This node's own identity: where it is kept, how it is built from the config, and
the blocking HTTP publish the CLI uses (the CLI has no reactor; the daemon publishes with
:mod:`bitdust.identity.publisher`).

The document is public, but it lives in ``<home>/metadata`` beside the keys it belongs
to (mode 0600 like everything there): they travel together in a key backup. It lists
the public half of ``metadata/packetkey`` (the Ed25519 key that signs packets); when the
two disagree (the packet key file was re-made) or the saved document predates packet
keys, :func:`load_current_identity` re-signs it with revision + 1.
"""

from __future__ import annotations

import logging
import urllib.error
import urllib.request
from pathlib import Path

from bitdust.config import Config
from bitdust.crypto.keys import PrivateKey
from bitdust.crypto.packet_keys import PacketSigningKey, PacketVerifyKey
from bitdust.home import Home
from bitdust.identity.document import MAX_XML_BYTES, Identity, IdentityError, document_version, make_contact
from bitdust.identity.idurl import IdurlError, make_idurl, split_host_port
from bitdust.util.fs import atomic_write

log = logging.getLogger(__name__)

CONTACT_OPTIONS = ("network/host", "services/tcp-connections/tcp-port", "services/udp-transport/udp-port")
"""Options the contacts are built from: a change of any re-publishes the identity."""


def my_identity_path(home: Home) -> Path:
    return home.metadata / "myidentity"


def load_my_identity(home: Home) -> Identity | None:
    """The saved identity, or None before ``identity create``; IdentityError if corrupt."""
    try:
        data = my_identity_path(home).read_bytes()
    except FileNotFoundError:
        return None
    identity = Identity.from_xml(data)
    if not identity.verify():
        raise IdentityError(f"{my_identity_path(home)}: the signature does not verify")
    return identity


def save_my_identity(home: Home, identity: Identity) -> None:
    atomic_write(my_identity_path(home), identity.to_xml(), mode=0o600)


def load_current_identity(home: Home, key: PrivateKey, packet_key: PacketVerifyKey | PacketSigningKey,
                          contacts: tuple[str, ...] | None = None) -> tuple[Identity | None, bool]:
    """The saved identity made current for ``key``/``packet_key`` (and ``contacts`` if
    given): ``(identity, changed)``; ``changed`` means it was re-signed (revision + 1)
    and still has to be saved and published. ``(None, False)`` before ``identity create``.

    A version 1 document (before packet keys) is upgraded here rather than refused, so
    a home made by an older build keeps its name and its revision sequence.
    """
    path = my_identity_path(home)
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        return None, False
    if document_version(data) == "1":
        return Identity.upgrade_v1(data, key, packet_key, contacts), True
    identity = Identity.from_xml(data)
    if not identity.verify():
        raise IdentityError(f"{path}: the signature does not verify")
    if identity.public_key != key.public_key():
        raise IdentityError("the saved identity was made with another key than metadata/mykeyfile")
    updated = identity.updated(key, contacts=contacts, packet_key=packet_key)
    return updated, updated is not identity


def load_or_create_packet_key(home: Home) -> PacketSigningKey:
    """The node's packet key, made (and saved 0600) when missing; cheap, so also fine
    on the reactor thread."""
    home.ensure()
    return PacketSigningKey.load_or_create(home.packet_key_file)


def load_or_create_key(home: Home, bits: int) -> PrivateKey:
    """The node's key, made (and saved 0600) when missing; blocking, for the CLI."""
    if home.key_file.is_file():
        return PrivateKey.load(home.key_file)
    home.ensure()
    key = PrivateKey.generate(bits)
    key.save(home.key_file)
    return key


def my_contacts(config: Config) -> tuple[str, ...]:
    host = config.get("network/host")
    return (
        make_contact("tcp", host, config.get("services/tcp-connections/tcp-port")),
        make_contact("udp", host, config.get("services/udp-transport/udp-port")),
    )


def known_servers(config: Config) -> list[tuple[str, int]]:
    """``services/identity-propagate/known-servers`` as (host, port); IdurlError if one is bad."""
    servers: list[tuple[str, int]] = []
    for entry in config.get("services/identity-propagate/known-servers"):
        try:
            server = split_host_port(entry.strip().lower())
        except IdurlError as exc:
            raise IdurlError(f"services/identity-propagate/known-servers: {exc}") from None
        if server not in servers:
            servers.append(server)
    return servers


def build_identity(key: PrivateKey, name: str, servers: list[tuple[str, int]], contacts: tuple[str, ...],
                   previous: Identity | None = None, *,
                   packet_key: PacketVerifyKey | PacketSigningKey) -> Identity:
    """A signed identity named ``name`` on every server, certifying ``packet_key``.

    With a ``previous`` identity of the same key the revision goes on from it, so servers
    and caches that hold the old one take the new one (they refuse lower revisions).
    """
    verify_key = packet_key.public_key() if isinstance(packet_key, PacketSigningKey) else packet_key
    if not servers:
        raise IdentityError("no identity servers are known: set services/identity-propagate/known-servers")
    sources = [make_idurl(host, port, name) for host, port in servers]
    revision = 1
    if previous is not None and previous.public_key == key.public_key():
        if (tuple(sources) == previous.sources and contacts == previous.contacts
                and previous.packet_key == verify_key):
            return previous
        revision = previous.revision + 1
    return Identity.create(key, sources, contacts, revision=revision, packet_key=verify_key)


def post_sync(identity: Identity, timeout: float = 10.0) -> dict[str, str]:
    """POST the document to the server of each source; ``{idurl: "OK" | reason}``."""
    body = identity.to_xml()
    results: dict[str, str] = {}
    for idurl in identity.sources:
        request = urllib.request.Request(idurl, data=body, method="POST",
                                         headers={"Content-Type": "text/xml; charset=utf-8"})
        try:
            with urllib.request.urlopen(request, timeout=timeout) as answer:
                answer.read(MAX_XML_BYTES)
            results[idurl] = "OK"
        except urllib.error.HTTPError as exc:
            reason = exc.read(4096).decode("utf-8", "replace").strip()
            results[idurl] = f"HTTP {exc.code}: {reason or exc.reason}"
        except (urllib.error.URLError, OSError) as exc:
            results[idurl] = f"cannot reach the server: {getattr(exc, 'reason', exc)}"
    return results


def describe(identity: Identity) -> dict[str, object]:
    """The readable form the API (``identity_get``) and ``bitdust identity show`` print."""
    return {
        "idurl": identity.idurl,
        "name": identity.name,
        "sources": list(identity.sources),
        "contacts": list(identity.contacts),
        "revision": identity.revision,
        "date": identity.date,
        "key_id": identity.key_id,
        "key_bits": identity.public_key.bits,
        "packet_key_id": identity.packet_key_id,
        "xml": identity.to_xml().decode("utf-8"),
    }
