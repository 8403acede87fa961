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
from bitdust.transport import packet as packet_module
from bitdust.transport.packet import (
    MAGIC,
    MAX_ID_BYTES,
    MIN_READ,
    SCRATCH_SIZE,
    SIGNATURE_DOMAIN,
    Command,
    Frame,
    FrameDecoder,
    Packet,
    PacketError,
    encode_frame,
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


def test_frame_is_the_wire_bytes_after_their_length(packet: Packet, wire: bytes, key: PacketSigningKey) -> None:
    frame = packet.frame()
    assert frame.parts == (encode_frame(wire),) and packet.frame() is frame  # made once, then kept
    assert b"".join(frame.body_parts()) == wire and frame.body_size == len(wire) == len(frame) - 4
    # A big payload is a part of its own: written beside the header, never copied into a frame.
    big = Packet.create(Command.Data, ALICE, ALICE, "1", bytes(SCRATCH_SIZE), BOB, key, DATE_MS)
    parts = big.frame().parts
    assert len(parts) == 3 and parts[1] is big.payload
    assert b"".join(parts) == encode_frame(big.serialize())
    assert b"".join(big.frame().body_parts()) == big.serialize()
    framed = encode_frame(wire)
    for not_a_frame in ((wire,), (framed[:-1],), (framed + b"x",), (b"\x00\x00",), ()):
        with pytest.raises(PacketError, match="not one frame"):
            Frame(not_a_frame, len(wire))
    assert Frame.of(wire) == frame

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
    # Frames above and below the scratch size, split anywhere (headers included).
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
    payload_size=st.integers(0, 3 * SCRATCH_SIZE),
    cuts=st.lists(st.integers(0, 7 * SCRATCH_SIZE), max_size=12),
)
def test_big_frames_are_read_in_place_and_parsed_without_a_copy(
        key: PacketSigningKey, payload_size: int, cuts: list[int]) -> None:
    """A frame too big for the scratch comes out as the bytearray it was read into, and
    the packet parsed from it keeps its payload as a read-only view of that buffer;
    whatever the cuts (inside the header, the payload or the signature), it is the
    packet that was sent."""
    sent = Packet.create(Command.Data, ALICE, ALICE, "1", bytes(range(256)) * (payload_size // 256), BOB, key)
    stream = encode_frame(sent.serialize()) * 2
    points = sorted({c for c in cuts if c <= len(stream)} | {0, len(stream)})
    decoder = FrameDecoder(max_frame_size=LIMIT)
    out: list[bytes | bytearray] = []
    for start, end in itertools.pairwise(points):
        out.extend(decoder.feed(stream[start:end]))
    assert len(out) == 2 and decoder.pending == 0 and decoder.held == 0
    for frame in out:
        in_place = len(frame) + 4 > SCRATCH_SIZE
        assert isinstance(frame, bytearray) == in_place and frame == sent.serialize()
        parsed = Packet.parse(frame, LIMIT)
        assert parsed == sent and parsed.verify(key.public_key())
        if in_place:
            assert isinstance(parsed.payload, memoryview) and parsed.payload.readonly
            assert parsed.payload.obj is frame, "the payload is the received buffer, not a copy"
        else:
            assert isinstance(parsed.payload, bytes)


@settings(max_examples=60, deadline=None)
@given(
    sizes=st.lists(st.integers(0, 3 * SCRATCH_SIZE), min_size=1, max_size=6),
    # short reads next to long ones (a run of one-byte reads has its own test)
    reads=st.lists(st.one_of(st.integers(1, 16), st.integers(MIN_READ, 2 * SCRATCH_SIZE)),
                   min_size=1, max_size=40).filter(lambda r: max(r) >= MIN_READ),
)
def test_socket_reads_into_the_decoder_buffer(sizes: list[int], reads: list[int]) -> None:
    """As a socket reads (``recv_into`` the buffer the decoder gives, any amount up to
    its size): every frame comes out whole, a big frame's buffer is never more than the
    bytes its frame still lacks (no byte of the next frame lands in it), and what the
    decoder holds is bounded by the scratch plus the frame being read."""
    frames = [bytes([n % 251]) * size for n, size in enumerate(sizes)]
    stream = memoryview(b"".join(encode_frame(f) for f in frames))
    decoder = FrameDecoder(max_frame_size=3 * SCRATCH_SIZE)
    out: list[bytes | bytearray] = []
    position, step = 0, 0
    while position < len(stream):
        target = decoder.buffer()
        assert len(target) > 0
        size = min(len(target), reads[step % len(reads)], len(stream) - position)
        step += 1
        target[:size] = stream[position : position + size]
        position += size
        out.extend(decoder.filled(size))
        assert decoder.held <= SCRATCH_SIZE + max(sizes)
        expected = decoder.next_frame_size
        if expected is not None and expected + 4 > SCRATCH_SIZE:
            assert len(decoder.buffer()) == 4 + expected - decoder.pending
    assert out == frames and decoder.pending == decoder.held == 0


def test_decoder_refuses_a_big_frame_before_allocating_it() -> None:
    decoder = FrameDecoder(max_frame_size=10 * SCRATCH_SIZE)
    with pytest.raises(PacketError, match="exceeds"):
        decoder.feed(struct.pack(">I", 10 * SCRATCH_SIZE + 1))
    assert decoder.held == 0


def test_truncated_packets_are_refused(key: PacketSigningKey) -> None:
    wire = Packet.create(Command.Data, ALICE, ALICE, "1", b"p" * 5000, BOB, key).serialize()
    for cut in (3, 100, 2000, len(wire) - 70, len(wire) - 1):
        for data in (wire[:cut], bytearray(wire[:cut])):
            with pytest.raises(PacketError, match="truncated"):
                Packet.parse(data, LIMIT)


def test_decoder_dribbled_frame_holds_one_buffer() -> None:
    decoder = FrameDecoder(max_frame_size=LIMIT)
    stream = encode_frame(b"z" * 200_000)
    for i in range(len(stream) - 1):
        assert decoder.feed(stream[i : i + 1]) == []
        assert decoder.held <= 200_000, "one-byte reads land in one buffer, not one object each"
    assert decoder.pending == len(stream) - 1
    assert decoder.feed(stream[-1:]) == [b"z" * 200_000]


def test_a_big_frame_buffer_grows_with_what_arrives(monkeypatch: pytest.MonkeyPatch) -> None:
    """A peer that announces a big frame makes us allocate a bounded multiple of what it
    sent, not the length it announced (here: first 64 KB, then 4x what arrived)."""
    monkeypatch.setattr(packet_module, "FIRST_BUFFER", SCRATCH_SIZE)
    monkeypatch.setattr(packet_module, "BUFFER_GROWTH", 4)
    body = bytes(range(256)) * 4096
    stream = encode_frame(body)
    decoder = FrameDecoder(max_frame_size=LIMIT)
    assert decoder.feed(stream[:4]) == [] and decoder.held == SCRATCH_SIZE, "announcing 1 MB holds 64 KB"
    out: list[bytes | bytearray] = []
    for start in range(4, len(stream), 50_000):
        out.extend(decoder.feed(stream[start : start + 50_000]))
        if not out:
            assert decoder.held <= 4 * (start + 50_000)
            assert decoder.next_frame_size == len(body) and decoder.pending == start + 50_000
    assert out == [body] and isinstance(out[0], bytearray) and decoder.held == 0


def test_discard_drops_what_is_held_and_still_gives_buffers() -> None:
    decoder = FrameDecoder(max_frame_size=LIMIT)
    decoder.feed(encode_frame(b"b" * 200_000)[:5000])
    held = decoder.held
    assert held >= 200_000 and decoder.discard() == held and decoder.held == decoder.pending == 0
    failed = FrameDecoder(max_frame_size=10)
    with pytest.raises(PacketError):
        failed.feed(struct.pack(">I", 11))
    assert failed.discard() == 0 and len(failed.buffer()) > 0, "a failed decoder, discarded, gives buffers again"
