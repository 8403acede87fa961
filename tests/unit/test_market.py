"""Storage-market payloads: round trips and refusal of malformed input."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from bitdust.crypto.packet_keys import PacketSigningKey
from bitdust.storage import market
from bitdust.transport.fail import UNAVAILABLE, FailReason
from bitdust.transport.packet import Command, Packet

PIECE = "0/1/F20160313043757PM/3-2-Data"


def test_service_request_round_trip() -> None:
    request = market.ServiceRequest(needed_bytes=256 * 1024**2, ecc_map="ecc/4x4", position=3)
    assert market.ServiceRequest.decode(request.encode()) == request


@pytest.mark.parametrize("payload", [
    b'{"needed_bytes": 10, "ecc_map": "ecc/5x5", "position": 0}',
    b'{"needed_bytes": 10, "ecc_map": "ecc/4x4", "position": 4}',
    b'{"needed_bytes": 0, "ecc_map": "ecc/4x4", "position": 0}',
    b'{"needed_bytes": true, "ecc_map": "ecc/4x4", "position": 0}',
    b'[1]', b'not json', b'{"needed_bytes": 10}',
])
def test_service_request_refuses(payload: bytes) -> None:
    with pytest.raises(market.ProtocolError):
        market.ServiceRequest.decode(payload)


def test_piece_frame_round_trip() -> None:
    piece_id, data = market.decode_piece(market.encode_piece(PIECE, b"\x00payload"))
    assert piece_id == PIECE
    assert bytes(data) == b"\x00payload"


PARITY = "0/1/F20160313043757PM/3-2-Parity"


def test_a_data_packet_carries_several_pieces_and_decoding_copies_nothing() -> None:
    payload = b"".join(market.pieces_parts([(PIECE, b"\x00data"), (PARITY, memoryview(b"parity!"))]))
    pieces = market.decode_pieces(payload)
    assert [(p, bytes(d)) for p, d in pieces] == [(PIECE, b"\x00data"), (PARITY, b"parity!")]
    assert all(d.obj is payload for _p, d in pieces)
    with pytest.raises(market.ProtocolError, match="expected one piece"):
        market.decode_piece(payload)  # an answer to Retrieve carries exactly one


def _frame(*named: tuple[str, int], count: int | None = None, tail: bytes = b"") -> bytes:
    header = bytes([len(named) if count is None else count])
    for piece_id, size in named:
        header += len(piece_id).to_bytes(2, "big") + piece_id.encode() + size.to_bytes(4, "big")
    return header + b"x" * sum(size for _p, size in named) + tail


@pytest.mark.parametrize(("payload", "why"), [
    (b"", "truncated"),
    (_frame(), "1 to 8 pieces"),
    (_frame(*[(f"0/1/F20160313043757PM/{n}-0-Data", 1) for n in range(9)]), "1 to 8 pieces"),
    (_frame((PIECE, 4), count=2), "truncated"),
    (_frame((PIECE, 4), (PIECE, 4)), "named twice"),
    (_frame((PIECE, 4), tail=b"!"), "do not add up"),
    (_frame((PIECE, 4))[:-1], "do not add up"),
    (_frame(("../../etc/passwd", 4)), "bad piece ID"),
    (_frame(("/abs/F20160313043757PM/1-1-Data", 4)), "bad piece ID"),
    (_frame(("0/1/x/1-1-Data", 4)), "bad piece ID"),
])
def test_piece_frame_refuses_malformed(payload: bytes, why: str) -> None:
    with pytest.raises(market.ProtocolError, match=why):
        market.decode_pieces(payload)


@given(st.binary(max_size=300))
def test_decoders_raise_only_protocol_errors(payload: bytes) -> None:
    for decode in (market.decode_piece, market.decode_pieces, market.decode_retrieve, market.decode_delete_pieces,
                   market.decode_delete_backups, market.decode_file_list, market.ServiceRequest.decode,
                   market.ServiceOffer.decode):
        try:
            decode(payload)
        except market.ProtocolError:
            continue


@given(st.binary(max_size=300))
def test_decoders_read_a_received_view_as_they_read_bytes(payload: bytes) -> None:
    """A big packet's payload arrives as a read-only view of the frame it was read into:
    every decoder gives the same answer (or the same refusal) for it as for bytes."""
    view = memoryview(bytearray(payload)).toreadonly()
    for decode in (market.decode_piece, market.decode_pieces, market.decode_retrieve, market.decode_delete_pieces,
                   market.decode_delete_backups, market.decode_file_list, market.ServiceRequest.decode,
                   market.ServiceOffer.decode, market.decode_failure, market.is_supplier_notice):
        outcomes = []
        for given_as in (payload, view):
            try:
                outcomes.append(("ok", decode(given_as)))
            except market.ProtocolError as exc:
                outcomes.append(("refused", str(exc)))
        assert outcomes[0] == outcomes[1], decode
    encoded = market.encode_file_list({PIECE: 12})
    assert market.decode_file_list(memoryview(bytearray(encoded)).toreadonly()) == {PIECE: 12}


def test_lists_round_trip() -> None:
    assert market.decode_delete_pieces(market.encode_delete_pieces([PIECE])) == [PIECE]
    assert market.decode_delete_backups(market.encode_delete_backups(["0/1/F20160313043757PM"])) == [
        "0/1/F20160313043757PM"]
    assert market.decode_file_list(market.encode_file_list({PIECE: 12})) == {PIECE: 12}
    assert market.decode_retrieve(market.encode_retrieve(PIECE)) == PIECE


def test_failure_is_lenient_with_text() -> None:
    assert market.decode_failure(b"plain words") == FailReason("bad-request", "plain words")
    failure = FailReason("over-quota", "no room")
    assert market.decode_failure(failure.encode()) == failure
    # a code the market does not know is a peer that does not speak it
    assert market.decode_failure(FailReason("teapot", "short and stout").encode()).code == "bad-request"
    assert market.decode_failure(FailReason(UNAVAILABLE, "off").encode()).code == UNAVAILABLE


def test_a_refusal_is_read_from_the_reply_in_market_codes() -> None:
    key = PacketSigningKey.generate()

    def fail(payload: bytes) -> Packet:
        return Packet.create(Command.Fail, "http://s/a.xml", "http://s/a.xml", "1", payload, "http://s/b.xml", key)

    assert market.refusal(fail(FailReason("no-space", "full").encode())) == FailReason("no-space", "full")
    assert market.refusal(fail(FailReason("teapot", "short").encode())) == FailReason("bad-request", "short")
    assert market.refusal(None) == FailReason("bad-request", "no reply")


def test_customer_folder_name() -> None:
    assert market.customer_folder_name("http://127.0.0.1:8084/alice.xml") == "alice@127.0.0.1_8084"
    with pytest.raises(market.ProtocolError):
        market.customer_folder_name("http://127.0.0.1:8084/../x.xml")
