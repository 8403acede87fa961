"""Signed packets and stream framing: hostile bytes must only ever give PacketError."""

from __future__ import annotations

import dataclasses
import itertools
import struct
import time

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from bitdust.crypto.keys import PrivateKey
from bitdust.crypto.packet_keys import PacketSigningKey
from bitdust.transport.packet import (
    MAGIC,
    MAX_ID_BYTES,
    SIGNATURE_DOMAIN,
    Chunks,
    Command,
    FrameDecoder,
    Packet,
    PacketError,
    encode_frame,
    frame_body,
    has_magic,
    new_packet_id,
    payload_size,
)

ALICE = "http://127.0.0.1:8084/alice.xml"
BOB = "http://127.0.0.1:8085/bob.xml"
LIMIT = 1 << 20
DATE_MS = 1_700_000_000_123


@pytest.fixture(scope="module")
def key() -> PacketSigningKey:
    return PacketSigningKey.generate()


@pytest.fixture(scope="module")
def other_key() -> PacketSigningKey:
    return PacketSigningKey.generate()


@pytest.fixture(scope="module")
def rsa_key() -> PrivateKey:
    return PrivateKey.generate(2048)


@pytest.fixture(scope="module")
def packet(key: PacketSigningKey) -> Packet:
    payload = b"\x00piece\xff" * 3
    return Packet.create(Command.Data, ALICE, ALICE, "0/0/1/F1/0-1-Data", payload, BOB, key, DATE_MS)


@pytest.fixture(scope="module")
def wire(packet: Packet) -> bytes:
    return packet.serialize()


# --- packets -----------------------------------------------------------------------------


def test_create_parse_verify_roundtrip(packet: Packet, wire: bytes, key: PacketSigningKey) -> None:
    assert wire.startswith(MAGIC)
    parsed = Packet.parse(wire, LIMIT)
    assert parsed == packet
    assert parsed.command is Command.Data
    assert (parsed.owner_id, parsed.creator_id, parsed.remote_id) == (ALICE, ALICE, BOB)
    assert parsed.packet_id == "0/0/1/F1/0-1-Data"
    assert parsed.payload == b"\x00piece\xff" * 3
    assert parsed.date == DATE_MS
    assert parsed.key_id == key.public_key().fingerprint()
    assert parsed.verify(key.public_key())
    assert parsed.serialize() == wire


def test_frame_is_the_wire_bytes_after_their_length(packet: Packet, wire: bytes) -> None:
    frame = packet.frame()
    assert frame == encode_frame(wire) and packet.frame() is frame  # made once, then kept
    assert bytes(frame_body(frame)) == wire
    for not_a_frame in (wire, frame[:-1], frame + b"x", b"\x00\x00"):
        with pytest.raises(PacketError):
            frame_body(not_a_frame)

def test_payload_in_parts_is_the_same_packet(packet: Packet, key: PacketSigningKey) -> None:
    """A piece's header and bytes are given apart (joined where the packet is signed)."""
    parts: list[bytes | bytearray | memoryview] = [
        b"\x00piece", memoryview(b"\xff\x00piece\xff"), bytearray(b"\x00piece\xff")]
    assert payload_size(parts) == len(packet.payload)
    made = Packet.create(Command.Data, ALICE, ALICE, "0/0/1/F1/0-1-Data", parts, BOB, key, DATE_MS)
    assert made.payload == packet.payload and isinstance(made.payload, bytes)
    assert made.frame() == packet.frame()



def test_payload_is_raw_not_encoded(wire: bytes) -> None:
    assert b"\x00piece\xff" * 3 in wire


def test_wrong_key_does_not_verify(packet: Packet, other_key: PacketSigningKey) -> None:
    assert not packet.verify(other_key.public_key())


def test_another_nodes_packet_key_is_rejected(packet: Packet, key: PacketSigningKey,
                                              other_key: PacketSigningKey) -> None:
    # Same fields, signed by another node's packet key: rejected against the creator's
    # key, whether the KeyID names the other key or still the creator's.
    forged = Packet.create(packet.command, packet.owner_id, packet.creator_id, packet.packet_id,
                           packet.payload, packet.remote_id, other_key, packet.date)
    parsed = Packet.parse(forged.serialize(), LIMIT)
    assert parsed.verify(other_key.public_key())
    assert not parsed.verify(key.public_key())
    kept_id = dataclasses.replace(packet, signature=other_key.sign(packet.signing_message()))
    assert not Packet.parse(kept_id.serialize(), LIMIT).verify(key.public_key())


def test_packet_signed_with_the_rsa_key_is_rejected(packet: Packet, key: PacketSigningKey,
                                                   rsa_key: PrivateKey) -> None:
    # The identity's RSA key must not sign packets: such a packet never verifies, whether
    # it names the packet key or the RSA key as its KeyID.
    for key_id in (packet.key_id, rsa_key.public_key().fingerprint()):
        unsigned = dataclasses.replace(packet, key_id=key_id, signature=b"")
        rsa_signed = dataclasses.replace(unsigned, signature=rsa_key.sign_digest(unsigned.digest()))
        parsed = Packet.parse(rsa_signed.serialize(), LIMIT)
        assert not parsed.verify(key.public_key())
    with pytest.raises(TypeError, match="packet key"):
        Packet.create(Command.Data, ALICE, ALICE, "1", b"x", BOB, rsa_key)  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        packet.verify(rsa_key.public_key())  # type: ignore[arg-type]


def test_signature_is_ed25519_over_domain_and_blake3(packet: Packet, key: PacketSigningKey) -> None:
    import blake3

    assert len(packet.signature) == 64
    message = packet.signing_message()
    assert message == SIGNATURE_DOMAIN + blake3.blake3(packet.signed_bytes()).digest()
    assert key.public_key().verify(message, packet.signature)
    # Without the domain the same digest is not what was signed.
    assert not key.public_key().verify(packet.digest(), packet.signature)


@pytest.mark.parametrize(
    "change",
    [
        {"command": Command.Retrieve},
        {"owner_id": BOB},
        {"creator_id": BOB},
        {"packet_id": "other"},
        {"date": DATE_MS + 1},
        {"payload": b"other"},
        {"remote_id": ALICE},
        {"key_id": "0" * 64},
        {"signature": b""},
    ],
)
def test_every_field_is_signed(packet: Packet, key: PacketSigningKey, change: dict[str, object]) -> None:
    changed = dataclasses.replace(packet, **change)  # type: ignore[arg-type]
    assert not changed.verify(key.public_key())


def test_field_boundaries_cannot_shift(key: PacketSigningKey) -> None:
    # Same concatenated text, different split between OwnerID and CreatorID.
    a = Packet.create(Command.Ack, "ab", "c", "id", b"", "r", key, DATE_MS)
    b = dataclasses.replace(a, owner_id="a", creator_id="bc")
    assert a.signed_bytes() != b.signed_bytes()
    assert not b.verify(key.public_key())


def test_command_accepts_str_and_refuses_unknown(key: PacketSigningKey) -> None:
    assert Packet.create("Ack", ALICE, ALICE, "1", b"", BOB, key).command is Command.Ack
    with pytest.raises(PacketError, match="unknown command"):
        Packet.create("Reboot", ALICE, ALICE, "1", b"", BOB, key)


def test_all_commands_roundtrip(key: PacketSigningKey) -> None:
    names = [c.value for c in Command]
    assert names == [
        "Identity", "Ack", "Fail", "RequestService", "CancelService", "Data", "Retrieve",
        "ListFiles", "Files", "DeleteFile", "DeleteBackup", "Message", "Broadcast",
    ]  # fmt: skip
    for command in Command:
        p = Packet.create(command, ALICE, ALICE, new_packet_id(), b"x", BOB, key, DATE_MS)
        assert Packet.parse(p.serialize(), LIMIT).command is command


def test_unicode_ids_roundtrip(key: PacketSigningKey) -> None:
    p = Packet.create(Command.Message, "ünï", "çødé", "ид-1", b"", "😀", key, DATE_MS)
    parsed = Packet.parse(p.serialize(), LIMIT)
    ids = (parsed.owner_id, parsed.creator_id, parsed.packet_id, parsed.remote_id)
    assert ids == ("ünï", "çødé", "ид-1", "😀")
    assert parsed.verify(key.public_key())


def test_create_refuses_what_parse_would_refuse(key: PacketSigningKey) -> None:
    with pytest.raises(PacketError, match="longer than"):
        Packet.create(Command.Ack, "x" * (MAX_ID_BYTES + 1), ALICE, "1", b"", BOB, key)
    with pytest.raises(PacketError, match="UTF-8"):
        Packet.create(Command.Ack, "\udcff", ALICE, "1", b"", BOB, key)
    with pytest.raises(PacketError, match="date"):
        Packet.create(Command.Ack, ALICE, ALICE, "1", b"", BOB, key, date=-1)
    with pytest.raises(PacketError, match="date"):
        Packet.create(Command.Ack, ALICE, ALICE, "1", b"", BOB, key, date=1.5)  # type: ignore[arg-type]


def test_default_date_is_now(key: PacketSigningKey) -> None:
    before = time.time()
    p = Packet.create(Command.Ack, ALICE, ALICE, "1", b"", BOB, key)
    after = time.time()
    assert before - 0.001 <= p.date_seconds <= after + 0.001


def test_is_fresh(packet: Packet) -> None:
    now = DATE_MS / 1000
    assert packet.is_fresh(now, 60)
    assert packet.is_fresh(now + 60, 60)
    assert not packet.is_fresh(now + 60.2, 60)
    assert not packet.is_fresh(now - 60.2, 60), "a date from the future is not fresh either"


def test_new_packet_id_is_unique() -> None:
    ids = {new_packet_id() for _ in range(1000)}
    assert len(ids) == 1000
    assert all(len(i) < 40 for i in ids)


def test_str_does_not_dump_payload(key: PacketSigningKey) -> None:
    p = Packet.create(Command.Data, ALICE, ALICE, "pid", b"S" * 10_000, BOB, key, DATE_MS)
    assert "SSSS" not in str(p)
    assert "SSSS" not in repr(p)
    assert "Data(pid)" in str(p)


# --- parse failures ----------------------------------------------------------------------


def test_parse_refuses_oversize(wire: bytes) -> None:
    with pytest.raises(PacketError, match="exceeds"):
        Packet.parse(wire, len(wire) - 1)
    assert Packet.parse(wire, len(wire)).serialize() == wire


def test_parse_refuses_trailing_bytes(wire: bytes) -> None:
    with pytest.raises(PacketError, match="trailing"):
        Packet.parse(wire + b"\x00", LIMIT)


def test_parse_refuses_every_truncation(wire: bytes) -> None:
    for cut in range(len(wire)):
        with pytest.raises(PacketError):
            Packet.parse(wire[:cut], LIMIT)


def test_parse_refuses_bad_magic(wire: bytes) -> None:
    with pytest.raises(PacketError, match="magic"):
        Packet.parse(b"BDP\x01" + wire[4:], LIMIT)  # the RSA-signed format before packet keys
    with pytest.raises(PacketError):
        Packet.parse(b"", LIMIT)


def _frame(command: bytes, ids: list[bytes], payload: bytes = b"", sig: bytes = b"s") -> bytes:
    def lp(b: bytes) -> bytes:
        return struct.pack(">H", len(b)) + b

    owner, creator, pid, remote, key_id = ids
    return (
        MAGIC + lp(command) + lp(owner) + lp(creator) + lp(pid) + struct.pack(">Q", 1)
        + lp(remote) + lp(key_id) + struct.pack(">I", len(payload)) + payload + lp(sig)
    )  # fmt: skip


def test_hand_built_frame_parses() -> None:
    p = Packet.parse(_frame(b"Ack", [b"o", b"c", b"p", b"r", b"k"], b"pay"), LIMIT)
    assert (p.command, p.owner_id, p.payload, p.signature, p.date) == (Command.Ack, "o", b"pay", b"s", 1)


def test_parse_refuses_unknown_command() -> None:
    with pytest.raises(PacketError, match="unknown command"):
        Packet.parse(_frame(b"Reboot", [b"o", b"c", b"p", b"r", b"k"]), LIMIT)


@pytest.mark.parametrize("position", range(5))
def test_parse_refuses_bad_utf8_ids(position: int) -> None:
    ids = [b"o", b"c", b"p", b"r", b"k"]
    ids[position] = b"\xc3\x28"
    with pytest.raises(PacketError, match="not valid UTF-8"):
        Packet.parse(_frame(b"Ack", ids), LIMIT)


def test_parse_refuses_long_ids_and_signature() -> None:
    with pytest.raises(PacketError, match="exceeds"):
        Packet.parse(_frame(b"Ack", [b"o" * (MAX_ID_BYTES + 1), b"c", b"p", b"r", b"k"]), LIMIT)
    with pytest.raises(PacketError, match="Signature"):
        Packet.parse(_frame(b"Ack", [b"o", b"c", b"p", b"r", b"k"], sig=b"s" * 4000), LIMIT)


def test_parse_refuses_lying_payload_length() -> None:
    # A payload length pointing far beyond the data is a truncation, not a crash or a hang.
    doctored = _frame(b"Ack", [b"o", b"c", b"p", b"r", b"k"])
    at = doctored.index(b"\x00\x00\x00\x00\x00\x01s")
    with pytest.raises(PacketError, match="truncated"):
        Packet.parse(doctored[:at] + b"\xff\xff\xff\xff" + doctored[at + 4 :], LIMIT)


def test_parse_accepts_bytearray_and_memoryview(wire: bytes) -> None:
    assert Packet.parse(bytearray(wire), LIMIT).serialize() == wire
    assert Packet.parse(memoryview(wire), LIMIT).serialize() == wire


@given(st.binary(max_size=2048))
@example(MAGIC)
@example(MAGIC + b"\x00\x03Ack")
@example(MAGIC + b"\xff\xff")
def test_parse_arbitrary_bytes_only_raises_packet_error(data: bytes) -> None:
    try:
        Packet.parse(data, LIMIT)
    except PacketError:
        return


@given(st.binary(max_size=200))
def test_parse_garbage_after_magic_only_raises_packet_error(tail: bytes) -> None:
    try:
        Packet.parse(MAGIC + tail, LIMIT)
    except PacketError:
        return


@settings(max_examples=300)
@given(data=st.data())
def test_bit_flip_fails_parse_or_verify(wire: bytes, key: PacketSigningKey, data: st.DataObject) -> None:
    bit = data.draw(st.integers(0, len(wire) * 8 - 1), label="bit")
    flipped = bytearray(wire)
    flipped[bit // 8] ^= 1 << (bit % 8)
    try:
        parsed = Packet.parse(bytes(flipped), LIMIT)
    except PacketError:
        return
    assert not parsed.verify(key.public_key())


@settings(max_examples=50)
@given(
    command=st.sampled_from(list(Command)),
    ids=st.lists(st.text(max_size=40), min_size=4, max_size=4),
    payload=st.binary(max_size=512),
    date=st.integers(0, 2**63 - 1),
)
def test_roundtrip_property(
    key: PacketSigningKey, command: Command, ids: list[str], payload: bytes, date: int
) -> None:
    try:
        p = Packet.create(command, ids[0], ids[1], ids[2], payload, ids[3], key, date)
    except PacketError:
        # Only lone surrogates, which UTF-8 cannot carry, are refused.
        assert any("\ud800" <= ch <= "\udfff" for s in ids for ch in s)
        return
    parsed = Packet.parse(p.serialize(), LIMIT)
    assert parsed == p
    assert parsed.verify(key.public_key())


# --- frames ------------------------------------------------------------------------------


def test_encode_frame() -> None:
    assert encode_frame(b"abc") == b"\x00\x00\x00\x03abc"
    assert encode_frame(b"") == b"\x00\x00\x00\x00"


def test_decoder_whole_and_partial() -> None:
    decoder = FrameDecoder(max_frame_size=100)
    stream = encode_frame(b"one") + encode_frame(b"") + encode_frame(b"three")
    assert decoder.feed(stream[:5]) == []
    assert decoder.pending == 5
    assert decoder.feed(stream[5:]) == [b"one", b"", b"three"]
    assert decoder.pending == 0


def test_decoder_refuses_oversize_from_header_alone() -> None:
    decoder = FrameDecoder(max_frame_size=10)
    assert decoder.feed(encode_frame(b"x" * 10)) == [b"x" * 10]
    # Only the 4-byte header of a huge frame: refused before any body arrives.
    with pytest.raises(PacketError, match="exceeds"):
        decoder.feed(struct.pack(">I", 11))
    assert decoder.pending == 0
    with pytest.raises(PacketError, match="already failed"):
        decoder.feed(encode_frame(b"ok"))


def test_decoder_refuses_huge_length_header() -> None:
    decoder = FrameDecoder(max_frame_size=LIMIT)
    with pytest.raises(PacketError):
        decoder.feed(b"\xff\xff\xff\xff" + b"x" * 100)


def test_frames_carry_packets(wire: bytes, key: PacketSigningKey) -> None:
    decoder = FrameDecoder(max_frame_size=LIMIT)
    frames = decoder.feed(encode_frame(wire) * 3)
    assert len(frames) == 3
    assert all(Packet.parse(f, LIMIT).verify(key.public_key()) for f in frames)


@given(
    frames=st.lists(st.binary(max_size=300), max_size=10),
    cuts=st.lists(st.integers(0, 4000), max_size=20),
)
def test_decoder_any_chunking_gives_same_frames(frames: list[bytes], cuts: list[int]) -> None:
    stream = b"".join(encode_frame(f) for f in frames)
    points = sorted({c for c in cuts if c <= len(stream)} | {0, len(stream)})
    decoder = FrameDecoder(max_frame_size=300)
    out: list[bytes] = []
    for start, end in itertools.pairwise(points):
        out.extend(decoder.feed(stream[start:end]))
    assert out == frames
    assert decoder.pending == 0


@given(frames=st.lists(st.binary(max_size=50), min_size=1, max_size=5))
def test_decoder_byte_by_byte(frames: list[bytes]) -> None:
    stream = b"".join(encode_frame(f) for f in frames)
    decoder = FrameDecoder(max_frame_size=50)
    out: list[bytes] = []
    for i in range(len(stream)):
        out.extend(decoder.feed(stream[i : i + 1]))
    assert out == frames


@settings(max_examples=60)
@given(
    sizes=st.lists(st.integers(0, 120_000), min_size=1, max_size=4),
    cuts=st.lists(st.integers(0, 500_000), max_size=30),
)
def test_decoder_big_frames_any_chunking(sizes: list[int], cuts: list[int]) -> None:
    # Chunks above and below the coalescing size, split anywhere (headers included).
    frames = [bytes([n % 251]) * size for n, size in enumerate(sizes)]
    stream = b"".join(encode_frame(f) for f in frames)
    points = sorted({c for c in cuts if c <= len(stream)} | {0, len(stream)})
    decoder = FrameDecoder(max_frame_size=120_000)
    out: list[bytes] = []
    for start, end in itertools.pairwise(points):
        out.extend(decoder.feed(stream[start:end]))
        if decoder.pending >= 4:
            assert decoder.next_frame_size == sizes[len(out)]
    assert out == frames
    assert decoder.pending == 0 and decoder.next_frame_size is None


@settings(max_examples=40)
@given(
    payload_size=st.integers(0, 70_000),
    cuts=st.lists(st.integers(0, 80_000), max_size=12),
)
def test_big_frames_stay_chunks_and_parse_as_the_joined_bytes(
        key: PacketSigningKey, payload_size: int, cuts: list[int]) -> None:
    """A big frame is handed out as the chunks it came in (no copy on the reactor); the
    packet parsed from them is the packet parsed from the joined bytes, whatever the cuts
    (inside the header, the payload or the signature)."""
    sent = Packet.create(Command.Data, ALICE, ALICE, "1", bytes(range(256)) * (payload_size // 256), BOB, key)
    stream = sent.frame() * 2
    points = sorted({c for c in cuts if c <= len(stream)} | {0, len(stream)})
    decoder = FrameDecoder(max_frame_size=LIMIT, chunks_from=1000)
    out: list[bytes | Chunks] = []
    for start, end in itertools.pairwise(points):
        out.extend(decoder.feed(stream[start:end]))
    assert len(out) == 2 and decoder.pending == 0
    for frame in out:
        assert isinstance(frame, Chunks) == (len(frame) >= 1000)
        assert bytes(frame) == sent.serialize()
        parsed = Packet.parse(frame, LIMIT)
        assert parsed == sent and parsed.verify(key.public_key())


def test_has_magic_is_the_cheap_first_test(wire: bytes) -> None:
    view = memoryview(wire)
    assert has_magic(wire) and has_magic(Chunks([view[:2], view[2:]]))
    assert not has_magic(b"GET / HTTP/1.1") and not has_magic(b"BD") and not has_magic(Chunks([view[1:]]))


def test_truncated_chunks_are_refused(key: PacketSigningKey) -> None:
    wire = Packet.create(Command.Data, ALICE, ALICE, "1", b"p" * 5000, BOB, key).serialize()
    view = memoryview(wire)
    for cut in (3, 100, 2000, len(wire) - 70, len(wire) - 1):
        with pytest.raises(PacketError, match="truncated"):
            Packet.parse(Chunks([view[:cut][: cut // 2], view[:cut][cut // 2 :]]), LIMIT)


def test_decoder_dribbled_frame_is_not_kept_byte_by_byte() -> None:
    decoder = FrameDecoder(max_frame_size=LIMIT)
    stream = encode_frame(b"z" * 200_000)
    for i in range(len(stream) - 1):
        assert decoder.feed(stream[i : i + 1]) == []
    assert len(decoder._chunks) <= 2, "one-byte reads are gathered, not kept one object each"
    assert decoder.feed(stream[-1:]) == [b"z" * 200_000]
