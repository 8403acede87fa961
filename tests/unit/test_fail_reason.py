"""The Fail payload: a code to act on, a reason to show, and never an error to read."""

from __future__ import annotations

import json

from hypothesis import given
from hypothesis import strategies as st

from bitdust.transport.fail import MAX_REASON_CHARS, UNAVAILABLE, UNKNOWN, FailReason, fail_reason


def test_round_trip_and_shape() -> None:
    failure = FailReason(UNAVAILABLE, "ListFiles is not served by this node")
    assert json.loads(failure.encode()) == {"code": "unavailable", "reason": "ListFiles is not served by this node"}
    assert FailReason.decode(failure.encode()) == failure
    assert str(failure) == "unavailable: ListFiles is not served by this node"


def test_a_reason_is_never_read_as_a_code() -> None:
    """The old gateway's plain text ending in 'is not served by this node' is a reason,
    not the code: only the code field decides."""
    assert FailReason.decode(b"ListFiles is not served by this node") == FailReason(
        UNKNOWN, "ListFiles is not served by this node")
    assert FailReason.decode(b'{"reason": "no code"}').code == UNKNOWN
    assert FailReason.decode(b'["unavailable"]').code == UNKNOWN
    assert FailReason.decode(b'{"code": 7}').code == UNKNOWN


def test_long_reasons_are_cut() -> None:
    assert len(FailReason.decode(FailReason("busy", "x" * 10_000).encode()).reason) == MAX_REASON_CHARS


def test_no_reply_is_a_reason_too() -> None:
    assert fail_reason(None) == FailReason(UNKNOWN, "no reply")


@given(st.binary(max_size=5000))
def test_any_bytes_decode(payload: bytes) -> None:
    failure = FailReason.decode(payload)
    assert isinstance(failure.code, str) and failure.code and isinstance(failure.reason, str)
