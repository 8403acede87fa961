"""The identity document: who a node is, its public key and how to reach it.

Documents travel over HTTP from identity servers and inside ``Identity`` packets, so
``from_xml`` treats its input as hostile: size cap, no DTD or entity declarations (the
billion-laughs and external-entity tricks need them), strict field syntax.

The signature covers a canonical byte string built from the fields (see
:meth:`Identity.signed_bytes`), not the XML text: XML has many spellings of one
document (whitespace, attribute order, escaping), and a signature over text would break
on a harmless re-indent, or tempt code to verify one text and trust another.

An ``Identity`` is immutable: ``sign`` and ``with_contacts`` return new documents, so a
cached identity can never change under the feet of code that already checked it.

Format version 2 adds ``packet_key``: the public half of the node's Ed25519 packet key
(:mod:`bitdust.crypto.packet_keys`), base64 of its 32 raw bytes in ``<packetkey>``. The
RSA signature covers it (the canonical bytes start ``bitdust-identity-v2``), so the
identity certifies which key signs the node's packets: swapping it breaks the document's
signature. Version 1 documents (no packet key) are refused by :meth:`Identity.from_xml`;
only the node's own saved one is upgraded, by :meth:`Identity.upgrade_v1`.
"""

from __future__ import annotations

import dataclasses
import functools
import re
import struct
import xml.etree.ElementTree as ET
from collections.abc import Iterable
from datetime import UTC, datetime

from bitdust.crypto.keys import BadKeyError, PrivateKey, PublicKey, b64, unb64
from bitdust.crypto.packet_keys import PacketSigningKey, PacketVerifyKey
from bitdust.identity.idurl import IdurlError, format_host_port, parse_idurl, split_host_port

MAX_XML_BYTES = 64 * 1024
MAX_SOURCES = 10
MAX_CONTACTS = 16
DATE_FORMAT = "%Y-%m-%dT%H:%M:%SZ"
_DATE_RE = re.compile(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}Z", re.ASCII)
_REVISION_RE = re.compile(r"[0-9]{1,18}", re.ASCII)
_PROTO_RE = re.compile(r"[a-z][a-z0-9]{0,15}", re.ASCII)
FORMAT_VERSION = "2"
_SIGNED_MAGIC = b"bitdust-identity-v2\x00"
_SIGNED_MAGIC_V1 = b"bitdust-identity-v1\x00"
_U32 = struct.Struct(">I")
_U64 = struct.Struct(">Q")


class IdentityError(ValueError):
    """An identity document is malformed, incomplete or cannot be signed as asked."""


def utc_now_iso() -> str:
    """Current UTC time in the one date spelling identities use (second precision)."""
    return datetime.now(UTC).strftime(DATE_FORMAT)


def parse_contact(contact: str) -> tuple[str, str, int]:
    """Split ``proto://host:port`` into (proto, host, port); IdentityError if malformed."""
    if not isinstance(contact, str):
        raise IdentityError(f"contact must be a string, got {type(contact).__name__}")
    proto, sep, netloc = contact.partition("://")
    if not sep or not _PROTO_RE.fullmatch(proto):
        raise IdentityError(f"bad contact {contact!r}: expected proto://host:port, e.g. tcp://1.2.3.4:7771")
    try:
        host, port = split_host_port(netloc)
    except IdurlError as exc:
        raise IdentityError(f"bad contact {contact!r}: {exc}") from exc
    return proto, host, port


def make_contact(proto: str, host: str, port: int) -> str:
    contact = f"{proto}://{format_host_port(host, port)}"
    parse_contact(contact)
    return contact


def _lp(data: bytes) -> bytes:
    return _U32.pack(len(data)) + data


def _check_date(date: str) -> None:
    if not isinstance(date, str) or not _DATE_RE.fullmatch(date):
        raise IdentityError(f"bad date {date!r}: expected UTC like 2024-01-31T23:59:59Z")
    try:
        datetime.strptime(date, DATE_FORMAT)
    except ValueError as exc:
        raise IdentityError(f"bad date {date!r}: {exc}") from exc


def _check_unique(kind: str, items: tuple[str, ...]) -> None:
    if len(set(items)) != len(items):
        raise IdentityError(f"duplicate {kind} in identity")


@dataclasses.dataclass(frozen=True)
class Identity:
    """A node's identity document. Fields are validated on construction."""

    sources: tuple[str, ...]
    contacts: tuple[str, ...]
    public_key: PublicKey
    packet_key: PacketVerifyKey
    date: str
    revision: int
    signature: bytes = b""

    def __post_init__(self) -> None:
        # Accept any iterable of strings (lists from callers), store tuples (immutability).
        object.__setattr__(self, "sources", tuple(self.sources))
        object.__setattr__(self, "contacts", tuple(self.contacts))
        if not self.sources:
            raise IdentityError("identity needs at least one source idurl")
        if len(self.sources) > MAX_SOURCES:
            raise IdentityError(f"identity has {len(self.sources)} sources (maximum {MAX_SOURCES})")
        if len(self.contacts) > MAX_CONTACTS:
            raise IdentityError(f"identity has {len(self.contacts)} contacts (maximum {MAX_CONTACTS})")
        for source in self.sources:
            try:
                parse_idurl(source)
            except IdurlError as exc:
                raise IdentityError(f"bad source: {exc}") from exc
        for contact in self.contacts:
            parse_contact(contact)
        _check_unique("sources", self.sources)
        _check_unique("contacts", self.contacts)
        if not isinstance(self.public_key, PublicKey):
            raise IdentityError("public_key must be a bitdust.crypto.keys.PublicKey")
        if not isinstance(self.packet_key, PacketVerifyKey):
            raise IdentityError("packet_key must be a bitdust.crypto.packet_keys.PacketVerifyKey")
        _check_date(self.date)
        if isinstance(self.revision, bool) or not isinstance(self.revision, int):
            raise IdentityError(f"revision must be an int, got {type(self.revision).__name__}")
        if not 0 <= self.revision < 10**18:
            raise IdentityError(f"revision {self.revision} is out of range")
        if not isinstance(self.signature, bytes):
            raise IdentityError("signature must be bytes")

    @classmethod
    def create(
        cls,
        private_key: PrivateKey,
        sources: Iterable[str],
        contacts: Iterable[str],
        revision: int = 1,
        date: str | None = None,
        *,
        packet_key: PacketVerifyKey | PacketSigningKey,
    ) -> Identity:
        """A new, signed identity for ``private_key`` (the usual way to make one).

        ``packet_key`` is required (keyword-only, so no caller can swap it with another
        argument): a document without one could not vouch for any packet.
        """
        unsigned = cls(
            sources=tuple(sources),
            contacts=tuple(contacts),
            public_key=private_key.public_key(),
            packet_key=_verify_key(packet_key),
            date=date or utc_now_iso(),
            revision=revision,
        )
        return unsigned.sign(private_key)

    # --- who -------------------------------------------------------------------------

    @property
    def idurl(self) -> str:
        """The primary idurl: the node's name on the network."""
        return self.sources[0]

    @property
    def name(self) -> str:
        return parse_idurl(self.idurl).name

    @property
    def key_id(self) -> str:
        """Fingerprint of the RSA identity key."""
        return self.public_key.fingerprint()

    @property
    def packet_key_id(self) -> str:
        """Fingerprint of the packet key: the KeyID every packet of this node carries."""
        return self.packet_key.fingerprint()

    def contact_for(self, proto: str) -> tuple[str, int] | None:
        """(host, port) of the first contact for ``proto``, or None if the node has none."""
        for contact_proto, host, port in self._parsed_contacts:
            if contact_proto == proto:
                return host, port
        return None

    @functools.cached_property
    def _parsed_contacts(self) -> tuple[tuple[str, str, int], ...]:
        # Parsed once per document, not on every packet sent (the document is immutable).
        return tuple(parse_contact(contact) for contact in self.contacts)

    # --- signing ---------------------------------------------------------------------

    def signed_bytes(self) -> bytes:
        """Canonical bytes the signature covers: every field but the signature.

        Each field is length-prefixed and lists are count-prefixed, so no two different
        documents can produce the same bytes by shifting text between fields.
        """
        parts = [_SIGNED_MAGIC, _U32.pack(len(self.sources))]
        parts.extend(_lp(s.encode("utf-8")) for s in self.sources)
        parts.append(_U32.pack(len(self.contacts)))
        parts.extend(_lp(c.encode("utf-8")) for c in self.contacts)
        parts.append(_lp(self.public_key.to_pem()))
        parts.append(_lp(self.packet_key.to_raw()))
        parts.append(_lp(self.date.encode("ascii")))
        parts.append(_U64.pack(self.revision))
        return b"".join(parts)

    def sign(self, private_key: PrivateKey) -> Identity:
        """Return a signed copy; refuses a key that is not this document's own."""
        if private_key.public_key() != self.public_key:
            raise IdentityError("the private key does not match the identity's public key")
        return dataclasses.replace(self, signature=private_key.sign(self.signed_bytes()))

    def verify(self) -> bool:
        """True if the document is signed by its own public key and unaltered since."""
        return bool(self.signature) and self.public_key.verify(self.signed_bytes(), self.signature)

    def with_contacts(self, contacts: Iterable[str], private_key: PrivateKey) -> Identity:
        """A re-signed copy with new contacts and revision + 1; ``self`` if nothing changed.

        Returning ``self`` unchanged matters: peers re-fetch identities on revision change,
        so bumping it for nothing would make the whole network reload us.
        """
        return self.updated(private_key, contacts=contacts)

    def with_packet_key(self, packet_key: PacketVerifyKey | PacketSigningKey, private_key: PrivateKey) -> Identity:
        """A re-signed copy listing another packet key, revision + 1; ``self`` if it is the same."""
        return self.updated(private_key, packet_key=packet_key)

    def updated(self, private_key: PrivateKey, contacts: Iterable[str] | None = None,
                packet_key: PacketVerifyKey | PacketSigningKey | None = None) -> Identity:
        """Several changes in one re-signed copy (one revision step, not one per change);
        ``self`` when nothing differs, for the reason :meth:`with_contacts` gives."""
        changes: dict[str, object] = {}
        if contacts is not None and tuple(contacts) != self.contacts:
            changes["contacts"] = tuple(contacts)
        if packet_key is not None and _verify_key(packet_key) != self.packet_key:
            changes["packet_key"] = _verify_key(packet_key)
        if not changes:
            return self
        changed = dataclasses.replace(
            self, **changes, revision=self.revision + 1, date=utc_now_iso(), signature=b""  # type: ignore[arg-type]
        )
        return changed.sign(private_key)

    @classmethod
    def upgrade_v1(cls, data: bytes, private_key: PrivateKey, packet_key: PacketVerifyKey | PacketSigningKey,
                   contacts: Iterable[str] | None = None) -> Identity:
        """This node's own saved version-1 document, re-made as version 2 (revision + 1).

        Only for the node's own document: it must verify (v1 rules) against
        ``private_key``'s public key. The revision goes on from it, so identity servers
        that hold the v1 document take the new one.
        """
        root = _parse_untrusted_xml(data)
        if root.tag != "identity" or root.get("version", "1") != "1":
            raise IdentityError("not a version 1 identity document")
        try:
            public_key = PublicKey.from_pem(_single_text(root, "publickey").strip())
            signature = unb64(_single_text(root, "signature").strip())
        except BadKeyError as exc:
            raise IdentityError(f"bad identity key or signature: {exc}") from exc
        if public_key != private_key.public_key():
            raise IdentityError("the saved identity was made with another key")
        revision = _parse_revision(_single_text(root, "revision"))
        sources = _list_texts(root, "sources", "source")
        old_contacts = _list_texts(root, "contacts", "contact")
        date = _single_text(root, "date").strip()
        _check_date(date)
        parts = [_SIGNED_MAGIC_V1, _U32.pack(len(sources))]
        parts.extend(_lp(s.encode("utf-8")) for s in sources)
        parts.append(_U32.pack(len(old_contacts)))
        parts.extend(_lp(c.encode("utf-8")) for c in old_contacts)
        parts.extend([_lp(public_key.to_pem()), _lp(date.encode("ascii")), _U64.pack(revision)])
        if not public_key.verify(b"".join(parts), signature):
            raise IdentityError("the saved version 1 identity does not verify")
        return cls.create(private_key, sources, old_contacts if contacts is None else contacts,
                          revision=revision + 1, packet_key=packet_key)

    # --- XML -------------------------------------------------------------------------

    def to_xml(self) -> bytes:
        root = ET.Element("identity", {"version": FORMAT_VERSION})
        sources = ET.SubElement(root, "sources")
        for source in self.sources:
            ET.SubElement(sources, "source").text = source
        contacts = ET.SubElement(root, "contacts")
        for contact in self.contacts:
            ET.SubElement(contacts, "contact").text = contact
        ET.SubElement(root, "publickey").text = self.public_key.to_pem().decode("ascii")
        ET.SubElement(root, "packetkey").text = self.packet_key.to_b64()
        ET.SubElement(root, "date").text = self.date
        ET.SubElement(root, "revision").text = str(self.revision)
        ET.SubElement(root, "signature").text = b64(self.signature)
        ET.indent(root)
        return ET.tostring(root, encoding="utf-8", xml_declaration=True) + b"\n"

    @classmethod
    def from_xml(cls, data: bytes | memoryview) -> Identity:
        """Parse a document from an untrusted source. Does not verify the signature."""
        root = _parse_untrusted_xml(data)
        if root.tag != "identity":
            raise IdentityError(f"root element is <{root.tag}>, expected <identity>")
        if root.get("version") != FORMAT_VERSION:
            raise IdentityError(f"unsupported identity version {root.get('version')!r} "
                                f"(version {FORMAT_VERSION} with a packet key is required)")
        try:
            public_key = PublicKey.from_pem(_single_text(root, "publickey").strip())
            packet_key = PacketVerifyKey.from_b64(_single_text(root, "packetkey").strip())
            signature = unb64(_single_text(root, "signature").strip())
        except BadKeyError as exc:
            raise IdentityError(f"bad identity key or signature: {exc}") from exc
        return cls(
            sources=_list_texts(root, "sources", "source"),
            contacts=_list_texts(root, "contacts", "contact"),
            public_key=public_key,
            packet_key=packet_key,
            date=_single_text(root, "date").strip(),
            revision=_parse_revision(_single_text(root, "revision")),
            signature=signature,
        )


def document_version(data: bytes) -> str | None:
    """The format version an identity document declares (None when it is no document):
    lets the node tell its own pre-packet-key document from a damaged one."""
    try:
        root = _parse_untrusted_xml(data)
    except IdentityError:
        return None
    return root.get("version", "1") if root.tag == "identity" else None


def _verify_key(key: PacketVerifyKey | PacketSigningKey) -> PacketVerifyKey:
    return key.public_key() if isinstance(key, PacketSigningKey) else key


def _parse_revision(text: str) -> int:
    revision_text = text.strip()
    if not _REVISION_RE.fullmatch(revision_text):
        raise IdentityError(f"bad revision {revision_text!r}: expected a non-negative integer")
    return int(revision_text)


def _parse_untrusted_xml(data: bytes | memoryview) -> ET.Element:
    if not isinstance(data, bytes | bytearray | memoryview):
        raise IdentityError(f"identity XML must be bytes, got {type(data).__name__}")
    if len(data) > MAX_XML_BYTES:
        raise IdentityError(f"identity XML of {len(data)} bytes exceeds {MAX_XML_BYTES}")
    try:
        text = bytes(data).decode("utf-8")
    except UnicodeDecodeError as exc:
        raise IdentityError(f"identity XML is not UTF-8: {exc}") from exc
    upper = text.upper()
    if "<!DOCTYPE" in upper or "<!ENTITY" in upper:
        raise IdentityError("identity XML must not contain a DTD or entity declarations")
    if "\x00" in text:
        raise IdentityError("identity XML contains NUL characters")
    # encoding= overrides any declaration in the document: the bytes we checked above
    # as UTF-8 are exactly what the parser reads.
    parser = ET.XMLParser(encoding="utf-8")
    try:
        return ET.fromstring(bytes(data), parser=parser)
    except ET.ParseError as exc:
        raise IdentityError(f"identity XML does not parse: {exc}") from exc


def _single(root: ET.Element, tag: str) -> ET.Element:
    found = root.findall(tag)
    if not found:
        raise IdentityError(f"identity XML is missing <{tag}>")
    if len(found) > 1:
        raise IdentityError(f"identity XML has {len(found)} <{tag}> elements, expected one")
    return found[0]


def _single_text(root: ET.Element, tag: str) -> str:
    element = _single(root, tag)
    if len(element):
        raise IdentityError(f"<{tag}> must hold text, not elements")
    return element.text or ""


def _list_texts(root: ET.Element, tag: str, item_tag: str) -> tuple[str, ...]:
    container = _single(root, tag)
    items: list[str] = []
    for child in container:
        if child.tag != item_tag:
            raise IdentityError(f"unexpected <{child.tag}> inside <{tag}>, expected <{item_tag}>")
        items.append((child.text or "").strip())
    return tuple(items)
