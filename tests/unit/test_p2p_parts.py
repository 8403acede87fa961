"""The p2p pieces without a network: connector table, inbox, message sealing, envelopes."""

from __future__ import annotations

import dataclasses
import time
from types import SimpleNamespace
from typing import Any

import pytest
from twisted.internet.task import Clock

from bitdust.automats.automat import check_table, to_dot
from bitdust.crypto.keys import PrivateKey
from bitdust.identity.idurl import make_idurl
from bitdust.p2p.broadcast import BroadcastError, SeenBroadcasts, check_payload, make_envelope, parse_packet_payload
from bitdust.p2p.connector import P2PConnector
from bitdust.p2p.inbox import Inbox, InboxBusy
from bitdust.p2p.messages import MessageError, open_message, seal_message
from bitdust.transport.packet import Command, Packet

ALICE = make_idurl("127.0.0.1", 8084, "alice")
BOB = make_idurl("127.0.0.1", 8084, "bob")


@pytest.fixture(scope="module")
def keys() -> tuple[PrivateKey, PrivateKey]:
    return PrivateKey.generate(2048), PrivateKey.generate(2048)


def test_connector_table_is_complete_and_drawable() -> None:
    assert check_table(P2PConnector) == []
    assert '"PROPAGATE" -> "CONNECTED"' in to_dot(P2PConnector)


def test_connector_waits_for_an_identity_then_connects() -> None:
    clock = Clock()
    holder: dict[str, Any] = {"me": None}
    gateway: Any = type("G", (), {"running": True})()
    connector = P2PConnector(clock, None, lambda: holder["me"], lambda: gateway, lambda: None)
    connector.event("init")
    assert connector.state == "DISCONNECTED" and "no identity" in connector.problem
    holder["me"] = SimpleNamespace(idurl=ALICE, sources=(ALICE,), revision=1, to_xml=lambda: b"<identity/>")
    clock.advance(2.0)
    assert connector.state == "CONNECTED" and connector.online
    connector.touch(BOB)
    connector.touch(ALICE)  # myself: never a contact
    assert connector.recent_contacts(10) == [BOB]
    connector.event("shutdown")
    assert connector.state == "CLOSED" and not clock.getDelayedCalls()


def test_inbox_queues_hands_over_and_times_out() -> None:
    clock = Clock()
    inbox = Inbox(clock, max_queued=2, max_waiters=1)
    results: list[Any] = []
    inbox.take(5).addCallback(results.append)
    with pytest.raises(InboxBusy):
        inbox.take(5)
    inbox.put({"n": 1})
    assert results == [[{"n": 1}]] and len(inbox) == 0
    for n in range(2, 5):
        inbox.put({"n": n})
    assert len(inbox) == 2 and inbox.overflowed == 1, "bounded: the oldest unread is dropped"
    inbox.take(5).addCallback(results.append)
    assert results[-1] == [{"n": 3}]
    inbox.take(5).addCallback(results.append)
    inbox.take(5).addCallback(results.append)
    clock.advance(5)
    assert results[-2:] == [[{"n": 4}], []]


def message_packet(payload: bytes, packet_id: str = "p1", creator: str = ALICE) -> Packet:
    """Unsigned: the gateway checked the signature before a message is opened."""
    return Packet(Command.Message, creator, creator, packet_id, 0, payload, BOB, "key-id")


def test_message_opens_only_in_its_own_packet(keys: tuple[PrivateKey, PrivateKey]) -> None:
    alice, bob = keys
    sealed = seal_message(bob.public_key(), ALICE, BOB, "p1", {"hi": [1, 2]})
    assert open_message(bob, message_packet(sealed)) == {"hi": [1, 2]}
    with pytest.raises(MessageError, match="does not decrypt"):
        open_message(bob, message_packet(sealed, packet_id="p2"))
    with pytest.raises(MessageError, match="does not decrypt"):
        open_message(alice, message_packet(sealed))
    with pytest.raises(MessageError, match="does not decrypt"):
        open_message(bob, message_packet(sealed[:-1] + bytes([sealed[-1] ^ 1])))
    with pytest.raises(MessageError):
        seal_message(bob.public_key(), ALICE, BOB, "p1", object())


def test_envelope_signature_binds_origin_and_payload(keys: tuple[PrivateKey, PrivateKey]) -> None:
    alice, mallory = keys
    envelope = make_envelope(alice, ALICE, {"a": 1}, time.time())
    parsed, hops = parse_packet_payload(envelope.to_payload(99))
    assert hops == 4, "capped"
    assert parsed == envelope and parsed.verify(alice.public_key()) and parsed.is_fresh(time.time())
    assert not parsed.verify(mallory.public_key())
    forged = dataclasses.replace(parsed, text=parsed.text.replace('"a":1', '"a":2'))
    assert not forged.verify(alice.public_key())
    assert not parsed.is_fresh(time.time() + 3600)
    for junk in (b"", b"[]", b'{"envelope": "{}", "signature": "", "hops": 1}', b'{"hops": -1}'):
        with pytest.raises(BroadcastError):
            parse_packet_payload(junk)


def test_broadcast_payload_rules() -> None:
    assert check_payload({"b": 1, "a": "x"}) == b'{"a":"x","b":1}'
    assert check_payload('{"a": 1}') == b'{"a":1}'
    for bad in ([1], "text", 5, {"x": "y" * 5000}):
        with pytest.raises(BroadcastError):
            check_payload(bad)
    seen = SeenBroadcasts(limit=2)
    for n in range(3):
        seen.add((ALICE, str(n)))
    assert (ALICE, "0") not in seen and (ALICE, "2") in seen and len(seen) == 2
