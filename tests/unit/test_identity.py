"""Idurls and identity documents: strict parsing, canonical signatures, hostile XML."""

from __future__ import annotations

import dataclasses
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from bitdust.crypto.keys import PrivateKey, b64
from bitdust.crypto.packet_keys import PacketSigningKey
from bitdust.home import Home
from bitdust.identity import (
    Identity,
    IdentityError,
    IdurlError,
    is_idurl,
    make_contact,
    make_idurl,
    parse_contact,
    parse_idurl,
    valid_name,
)
from bitdust.identity.document import MAX_XML_BYTES, document_version, utc_now_iso
from bitdust.identity.my_id import load_current_identity, my_identity_path, save_my_identity

ALICE = "http://127.0.0.1:8084/alice.xml"
ALICE_MIRROR = "http://id.example.org:80/alice.xml"
CONTACTS = ("tcp://127.0.0.1:7771", "udp://127.0.0.1:8882")
DATE = "2024-03-13T16:37:57Z"


@pytest.fixture(scope="module")
def key() -> PrivateKey:
    return PrivateKey.generate(2048)


@pytest.fixture(scope="module")
def other_key() -> PrivateKey:
    return PrivateKey.generate(2048)


@pytest.fixture(scope="module")
def pkey() -> PacketSigningKey:
    return PacketSigningKey.generate()


@pytest.fixture(scope="module")
def ident(key: PrivateKey, pkey: PacketSigningKey) -> Identity:
    return Identity.create(key, [ALICE, ALICE_MIRROR], list(CONTACTS), revision=3, date=DATE, packet_key=pkey)


# --- idurl -------------------------------------------------------------------------------


def test_make_and_parse_idurl() -> None:
    assert make_idurl("127.0.0.1", 8084, "alice") == ALICE
    assert parse_idurl(ALICE) == ("127.0.0.1", 8084, "alice")
    parsed = parse_idurl("http://id.example.org:80/bob_1-x.xml")
    assert (parsed.host, parsed.port, parsed.name) == ("id.example.org", 80, "bob_1-x")
    assert make_idurl("ID.Example.ORG", 80, "bob") == "http://id.example.org:80/bob.xml"


def test_ipv6_idurl_roundtrip() -> None:
    idurl = make_idurl("::1", 8084, "alice")
    assert idurl == "http://[::1]:8084/alice.xml"
    assert parse_idurl(idurl) == ("::1", 8084, "alice")


@pytest.mark.parametrize(
    ("idurl", "reason"),
    [
        ("https://127.0.0.1:8084/alice.xml", "must start with"),
        ("ftp://127.0.0.1:8084/alice.xml", "must start with"),
        ("http://127.0.0.1/alice.xml", "missing port"),
        ("http://127.0.0.1:/alice.xml", "bad port"),
        ("http://127.0.0.1:0/alice.xml", "bad port"),
        ("http://127.0.0.1:65536/alice.xml", "bad port"),
        ("http://127.0.0.1:08084/alice.xml", "bad port"),
        ("http://127.0.0.1:80a/alice.xml", "bad port"),
        ("http://127.0.0.1:8084", "no path"),
        ("http://127.0.0.1:8084/alice", "path must be"),
        ("http://127.0.0.1:8084/alice.xml?x=1", "path must be"),
        ("http://127.0.0.1:8084/al.xml", "bad name"),
        ("http://127.0.0.1:8084/" + "a" * 21 + ".xml", "bad name"),
        ("http://127.0.0.1:8084/Alice.xml", "bad name"),
        ("http://127.0.0.1:8084/../alice.xml", "bad name"),
        ("http://127.0.0.1:8084/x/../../alice.xml", "bad name"),
        ("http://127.0.0.1:8084/%2e%2e.xml", "bad name"),
        ("http://127.0.0.1:8084/dir/alice.xml", "bad name"),
        ("http://127.0.0.1:8084/alice.xml#frag", "path must be"),
        ("http://user@127.0.0.1:8084/alice.xml", "user info"),
        ("http://ID.example.org:8084/alice.xml", "bad host"),
        ("http://bad_host:8084/alice.xml", "bad host"),
        ("http://999.1.1.1:8084/alice.xml", "bad host"),
        ("http://:8084/alice.xml", "bad host"),
        ("http://[127.0.0.1]:8084/alice.xml", "brackets"),
        ("http://[::1:8084/alice.xml", "IPv6"),
        ("", "must start with"),
    ],
)
def test_malformed_idurls_refused(idurl: str, reason: str) -> None:
    with pytest.raises(IdurlError, match=reason):
        parse_idurl(idurl)
    assert not is_idurl(idurl)


def test_idurl_error_is_value_error() -> None:
    assert issubclass(IdurlError, ValueError)
    with pytest.raises(ValueError):
        parse_idurl(123)  # type: ignore[arg-type]


@pytest.mark.parametrize(("host", "port", "name"), [("h", 0, "alice"), ("h", 1, "a"), ("a b", 1, "alice")])
def test_make_idurl_refuses_bad_parts(host: str, port: int, name: str) -> None:
    with pytest.raises(IdurlError):
        make_idurl(host, port, name)


def test_valid_name() -> None:
    assert valid_name("abc")
    assert valid_name("a-b_c0" + "x" * 14)
    assert not valid_name("ab")
    assert not valid_name("x" * 21)
    assert not valid_name("ABC")
    assert not valid_name("a.b")
    assert not valid_name("ab/")
    assert not valid_name("abc\n")


@given(
    name=st.from_regex(r"[a-z0-9_-]{3,20}", fullmatch=True),
    port=st.integers(1, 65535),
    host=st.sampled_from(["127.0.0.1", "localhost", "id.example.org", "::1", "fe80::1"]),
)
def test_idurl_roundtrip_property(name: str, port: int, host: str) -> None:
    assert parse_idurl(make_idurl(host, port, name)) == (host, port, name)


@given(st.text(max_size=80))
def test_parse_idurl_only_raises_idurl_error(text: str) -> None:
    try:
        host, port, name = parse_idurl(text)
    except IdurlError:
        return
    assert make_idurl(host, port, name) == text


# --- contacts ----------------------------------------------------------------------------


def test_contacts() -> None:
    assert parse_contact("tcp://127.0.0.1:7771") == ("tcp", "127.0.0.1", 7771)
    assert parse_contact("udp://[::1]:8882") == ("udp", "::1", 8882)
    assert make_contact("udp", "::1", 8882) == "udp://[::1]:8882"
    for bad in ("tcp:/127.0.0.1:7771", "tcp://127.0.0.1", "TCP://127.0.0.1:1", "://h:1", "tcp://h:99999"):
        with pytest.raises(IdentityError):
            parse_contact(bad)


# --- identity document -------------------------------------------------------------------


def test_create_signs_and_exposes_fields(ident: Identity, key: PrivateKey, pkey: PacketSigningKey) -> None:
    assert ident.verify()
    assert ident.idurl == ALICE
    assert ident.name == "alice"
    assert ident.sources == (ALICE, ALICE_MIRROR)
    assert ident.contacts == CONTACTS
    assert ident.revision == 3
    assert ident.date == DATE
    assert ident.public_key == key.public_key()
    assert ident.key_id == key.public_key().fingerprint()
    assert ident.packet_key == pkey.public_key()
    assert ident.packet_key_id == pkey.fingerprint() != ident.key_id


def test_contact_for(ident: Identity) -> None:
    assert ident.contact_for("tcp") == ("127.0.0.1", 7771)
    assert ident.contact_for("udp") == ("127.0.0.1", 8882)
    assert ident.contact_for("http") is None


def test_xml_roundtrip(ident: Identity) -> None:
    xml = ident.to_xml()
    assert xml.startswith(b"<?xml")
    again = Identity.from_xml(xml)
    assert again == ident
    assert again.verify()
    assert again.to_xml() == xml
    # as a big packet's payload arrives: a read-only view of the received frame
    assert Identity.from_xml(memoryview(bytearray(xml)).toreadonly()) == ident


def test_signature_is_over_fields_not_xml_text(ident: Identity) -> None:
    # Re-indenting the XML is harmless; the document still verifies.
    squashed = b"".join(line.strip() for line in ident.to_xml().splitlines())
    assert Identity.from_xml(squashed).verify()


@pytest.mark.parametrize(
    "change",
    [
        {"contacts": ("tcp://127.0.0.1:7772", "udp://127.0.0.1:8882")},
        {"contacts": CONTACTS[::-1]},
        {"contacts": CONTACTS[:1]},
        {"sources": (ALICE,)},
        {"sources": (ALICE_MIRROR, ALICE)},
        {"revision": 4},
        {"date": "2024-03-13T16:37:58Z"},
    ],
)
def test_any_field_change_breaks_signature(ident: Identity, change: dict[str, object]) -> None:
    assert not dataclasses.replace(ident, **change).verify()  # type: ignore[arg-type]


def test_swapped_public_key_breaks_signature(ident: Identity, other_key: PrivateKey) -> None:
    assert not dataclasses.replace(ident, public_key=other_key.public_key()).verify()


def test_swapped_packet_key_breaks_signature(ident: Identity) -> None:
    # The RSA signature certifies the packet key: whoever swaps it in a document (or in
    # its XML) gets a document that no longer verifies.
    thief = PacketSigningKey.generate()
    assert not dataclasses.replace(ident, packet_key=thief.public_key()).verify()
    xml = ident.to_xml().replace(ident.packet_key.to_b64().encode(), thief.public_key().to_b64().encode())
    parsed = Identity.from_xml(xml)
    assert parsed.packet_key == thief.public_key()
    assert not parsed.verify()


def test_with_packet_key_bumps_revision_and_resigns(ident: Identity, key: PrivateKey, pkey: PacketSigningKey) -> None:
    assert ident.with_packet_key(pkey, key) is ident
    new = PacketSigningKey.generate()
    moved = ident.with_packet_key(new.public_key(), key)
    assert moved.packet_key == new.public_key() and moved.revision == ident.revision + 1 and moved.verify()
    both = ident.updated(key, contacts=["tcp://10.0.0.5:7771"], packet_key=new)
    assert both.revision == ident.revision + 1 and both.contacts == ("tcp://10.0.0.5:7771",)
    assert ident.updated(key, contacts=list(CONTACTS), packet_key=pkey) is ident


def _v1_document(key: PrivateKey, revision: int) -> bytes:
    """A version 1 document as the build before packet keys wrote and signed it."""
    import struct

    sources, contacts = (ALICE,), CONTACTS
    def lp(b: bytes) -> bytes:
        return struct.pack(">I", len(b)) + b
    signed = (b"bitdust-identity-v1\x00" + struct.pack(">I", 1) + lp(ALICE.encode()) + struct.pack(">I", 2)
              + b"".join(lp(c.encode()) for c in contacts) + lp(key.public_key().to_pem()) + lp(DATE.encode())
              + struct.pack(">Q", revision))
    root = ET.Element("identity", {"version": "1"})
    ET.SubElement(ET.SubElement(root, "sources"), "source").text = sources[0]
    contacts_el = ET.SubElement(root, "contacts")
    for contact in contacts:
        ET.SubElement(contacts_el, "contact").text = contact
    ET.SubElement(root, "publickey").text = key.public_key().to_pem().decode()
    ET.SubElement(root, "date").text = DATE
    ET.SubElement(root, "revision").text = str(revision)
    ET.SubElement(root, "signature").text = b64(key.sign(signed))
    return ET.tostring(root)


def test_v1_documents_are_refused_but_own_one_upgrades(key: PrivateKey, other_key: PrivateKey,
                                                       pkey: PacketSigningKey) -> None:
    old = _v1_document(key, revision=7)
    assert document_version(old) == "1"
    with pytest.raises(IdentityError, match="unsupported identity version"):
        Identity.from_xml(old)
    upgraded = Identity.upgrade_v1(old, key, pkey)
    assert upgraded.verify() and upgraded.revision == 8 and upgraded.packet_key == pkey.public_key()
    assert upgraded.sources == (ALICE,) and upgraded.contacts == CONTACTS
    assert document_version(upgraded.to_xml()) == "2"
    with pytest.raises(IdentityError, match="another key"):
        Identity.upgrade_v1(old, other_key, pkey)
    with pytest.raises(IdentityError, match="does not verify"):
        Identity.upgrade_v1(old.replace(b"7771", b"7772"), key, pkey)


def test_tampered_xml_does_not_verify(ident: Identity) -> None:
    xml = ident.to_xml().replace(b"tcp://127.0.0.1:7771", b"tcp://6.6.6.6:7771")
    parsed = Identity.from_xml(xml)
    assert parsed.contact_for("tcp") == ("6.6.6.6", 7771)
    assert not parsed.verify()


def test_signed_bytes_are_canonical(ident: Identity) -> None:
    assert ident.signed_bytes() == Identity.from_xml(ident.to_xml()).signed_bytes()
    # Count prefixes: an item moved from one list to the other changes the bytes.
    moved = dataclasses.replace(ident, sources=(ALICE,), contacts=(*CONTACTS, "tcp://id.example.org:80"))
    assert moved.signed_bytes() != ident.signed_bytes()


def test_unsigned_does_not_verify(key: PrivateKey, pkey: PacketSigningKey) -> None:
    unsigned = Identity(sources=(ALICE,), contacts=(), public_key=key.public_key(), packet_key=pkey.public_key(),
                        date=DATE, revision=1)
    assert unsigned.signature == b""
    assert not unsigned.verify()
    assert Identity.from_xml(unsigned.to_xml()) == unsigned


def test_sign_refuses_foreign_key(ident: Identity, other_key: PrivateKey) -> None:
    with pytest.raises(IdentityError, match="does not match"):
        ident.sign(other_key)


def test_sign_returns_new_document(key: PrivateKey, pkey: PacketSigningKey) -> None:
    unsigned = Identity(sources=(ALICE,), contacts=(), public_key=key.public_key(), packet_key=pkey.public_key(),
                        date=DATE, revision=1)
    signed = unsigned.sign(key)
    assert signed.verify()
    assert not unsigned.verify()
    with pytest.raises(dataclasses.FrozenInstanceError):
        signed.revision = 2  # type: ignore[misc]


def test_with_contacts_bumps_revision_and_resigns(ident: Identity, key: PrivateKey) -> None:
    moved = ident.with_contacts(["tcp://10.0.0.5:7771"], key)
    assert moved.contacts == ("tcp://10.0.0.5:7771",)
    assert moved.revision == ident.revision + 1
    assert moved.verify()
    assert moved.sources == ident.sources
    assert moved.signature != ident.signature
    assert moved.contact_for("udp") is None
    # The original is untouched.
    assert ident.contacts == CONTACTS and ident.verify()


def test_with_same_contacts_is_a_no_op(ident: Identity, key: PrivateKey) -> None:
    assert ident.with_contacts(list(CONTACTS), key) is ident


def test_with_contacts_refuses_foreign_key(ident: Identity, other_key: PrivateKey) -> None:
    with pytest.raises(IdentityError):
        ident.with_contacts(["tcp://10.0.0.5:7771"], other_key)


def test_utc_now_iso_is_accepted(key: PrivateKey, pkey: PacketSigningKey) -> None:
    now = utc_now_iso()
    assert now.endswith("Z")
    assert Identity.create(key, [ALICE], [], packet_key=pkey).date[:4] == now[:4]


def test_load_current_identity_upgrades_and_follows_the_packet_key(
    tmp_path: Path, key: PrivateKey, other_key: PrivateKey, pkey: PacketSigningKey
) -> None:
    home = Home(tmp_path / "home")
    home.ensure()
    assert load_current_identity(home, key, pkey) == (None, False)
    # A saved document from before packet keys: upgraded with revision + 1, to be saved.
    my_identity_path(home).write_bytes(_v1_document(key, revision=4))
    upgraded, changed = load_current_identity(home, key, pkey)
    assert changed and upgraded is not None and upgraded.revision == 5 and upgraded.verify()
    save_my_identity(home, upgraded)
    assert load_current_identity(home, key, pkey) == (upgraded, False)
    # The packet key file was re-made: the document follows it.
    new_key = PacketSigningKey.generate()
    moved, changed = load_current_identity(home, key, new_key, contacts=("tcp://10.0.0.1:1",))
    assert changed and moved is not None and moved.revision == 6
    assert moved.packet_key == new_key.public_key() and moved.contacts == ("tcp://10.0.0.1:1",)
    with pytest.raises(IdentityError, match="another key"):
        load_current_identity(home, other_key, pkey)


@pytest.mark.parametrize(
    ("fields", "reason"),
    [
        ({"sources": []}, "at least one source"),
        ({"sources": ["http://x:1/../a.xml"]}, "bad source"),
        ({"sources": [ALICE, ALICE]}, "duplicate sources"),
        ({"contacts": ["tcp://h"]}, "bad contact"),
        ({"contacts": [CONTACTS[0], CONTACTS[0]]}, "duplicate contacts"),
        ({"date": "2024-03-13 16:37:57"}, "bad date"),
        ({"date": "2024-02-30T00:00:00Z"}, "bad date"),
        ({"revision": -1}, "out of range"),
        ({"revision": True}, "must be an int"),
        ({"revision": "1"}, "must be an int"),
        ({"packet_key": None}, "packet_key must be"),
    ],
)
def test_constructor_validates(key: PrivateKey, pkey: PacketSigningKey, fields: dict[str, object],
                               reason: str) -> None:
    base: dict[str, object] = {
        "sources": [ALICE],
        "contacts": list(CONTACTS),
        "public_key": key.public_key(),
        "packet_key": pkey.public_key(),
        "date": DATE,
        "revision": 1,
    }
    base.update(fields)
    with pytest.raises(IdentityError, match=reason):
        Identity(**base)  # type: ignore[arg-type]


# --- hostile XML -------------------------------------------------------------------------


def _xml(ident: Identity, old: bytes, new: bytes) -> bytes:
    xml = ident.to_xml()
    assert old in xml
    return xml.replace(old, new, 1)


BILLION_LAUGHS = b"""<?xml version="1.0"?>
<!DOCTYPE lolz [<!ENTITY lol "lol"><!ENTITY lol2 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">]>
<identity>&lol2;</identity>"""

XXE = b"""<?xml version="1.0"?>
<!DOCTYPE identity [<!ENTITY xxe SYSTEM "file:///etc/passwd">]>
<identity><sources>&xxe;</sources></identity>"""


@pytest.mark.parametrize("doc", [BILLION_LAUGHS, XXE, b"<!doctype identity><identity/>"])
def test_dtd_and_entities_refused(doc: bytes) -> None:
    with pytest.raises(IdentityError, match="DTD"):
        Identity.from_xml(doc)


def test_oversize_refused(ident: Identity) -> None:
    padded = _xml(ident, b"<identity ", b"<!--" + b"x" * MAX_XML_BYTES + b"--><identity ")
    with pytest.raises(IdentityError, match="exceeds"):
        Identity.from_xml(padded)


@pytest.mark.parametrize(
    ("doc", "reason"),
    [
        (b"", "does not parse"),
        (b"<identity>", "does not parse"),
        (b"\xff\xfe<\x00i\x00/>", "not UTF-8"),
        (b"<identity>\x00</identity>", "NUL"),
        (b"<other/>", "expected <identity>"),
        (b"<identity version='3'/>", "unsupported identity version"),
        (b"<identity/>", "unsupported identity version"),
        (b"<identity version='1'/>", "unsupported identity version"),
        (b"<identity version='2'/>", "missing <publickey>"),
    ],
)
def test_garbage_xml_refused(doc: bytes, reason: str) -> None:
    with pytest.raises(IdentityError, match=reason):
        Identity.from_xml(doc)


@pytest.mark.parametrize(
    ("tag", "reason"),
    [
        ("sources", "missing <sources>"),
        ("contacts", "missing <contacts>"),
        ("date", "missing <date>"),
        ("revision", "missing <revision>"),
        ("signature", "missing <signature>"),
        ("packetkey", "missing <packetkey>"),
    ],
)
def test_missing_element_refused(ident: Identity, tag: str, reason: str) -> None:
    root = ET.fromstring(ident.to_xml())
    element = root.find(tag)
    assert element is not None
    root.remove(element)
    with pytest.raises(IdentityError, match=reason):
        Identity.from_xml(ET.tostring(root))


@pytest.mark.parametrize(
    ("old", "new", "reason"),
    [
        (b"<revision>3</revision>", b"<revision>1_000</revision>", "bad revision"),
        (b"<revision>3</revision>", b"<revision>-3</revision>", "bad revision"),
        (b"<revision>3</revision>", b"<revision>3</revision><revision>4</revision>", "2 <revision>"),
        (b"<date>" + DATE.encode(), b"<date>yesterday", "bad date"),
        (b"<signature>", b"<signature>!!", "bad identity key or signature"),
        (b"-----BEGIN PUBLIC KEY-----\n", b"-----BEGIN PUBLIC KEY-----\nAAAA", "bad identity key"),
        (b"<source>http://127.0.0.1:8084/alice.xml", b"<source>http://127.0.0.1:8084/../x.xml", "bad source"),
        (b"<contact>tcp://", b"<contact>tcp:/", "bad contact"),
        (b"<contact>tcp://127.0.0.1:7771</contact>", b"<item>x</item>", "unexpected <item>"),
        (b"<date>", b"<date><b/>", "must hold text"),
        (b"<packetkey>", b"<packetkey>AAAA", "bad identity key"),
        (b"<packetkey>", b"<packetkey>!", "bad identity key"),
    ],
)
def test_bad_field_values_refused(ident: Identity, old: bytes, new: bytes, reason: str) -> None:
    with pytest.raises(IdentityError, match=reason):
        Identity.from_xml(_xml(ident, old, new))


def test_encoding_declaration_cannot_hide_a_dtd(ident: Identity) -> None:
    # UTF-16 bytes are not UTF-8: refused before the parser could reinterpret them.
    doc = '<?xml version="1.0" encoding="utf-16"?><!DOCTYPE x><identity/>'.encode("utf-16")
    with pytest.raises(IdentityError):
        Identity.from_xml(doc)


def test_signature_element_holds_base64(ident: Identity) -> None:
    assert b64(ident.signature).encode() in ident.to_xml()


@given(st.binary(max_size=512))
def test_from_xml_only_raises_identity_error(data: bytes) -> None:
    try:
        Identity.from_xml(data)
    except IdentityError:
        return
    raise AssertionError("random bytes parsed as an identity")
