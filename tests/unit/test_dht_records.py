"""Signed DHT records, the storing node's guard and index buckets: no network."""

from __future__ import annotations

import dataclasses
import json

import pytest
from kademlia.utils import digest

from bitdust.automats.automat import check_table, to_dot
from bitdust.crypto.keys import PrivateKey, b64
from bitdust.dht import index
from bitdust.dht.nicknames import NicknameHolder
from bitdust.dht.records import (
    MAX_TTL,
    Record,
    RecordRejected,
    check_overwrite,
    check_record,
    nickname_key,
    sign_record,
    supplier_key,
)
from bitdust.dht.storage import GuardedStorage

NOW = 1_700_000_000.0
ALICE = "http://127.0.0.1:8084/alice.xml"
MALLORY = "http://127.0.0.1:8084/mallory.xml"


@pytest.fixture(scope="module")
def alice_key() -> PrivateKey:
    return PrivateKey.generate(2048)


@pytest.fixture(scope="module")
def mallory_key() -> PrivateKey:
    return PrivateKey.generate(2048)


def nick(key: PrivateKey, publisher: str, name: str = "Alice", now: float = NOW, ttl: float = 600) -> Record:
    return sign_record(key, publisher, "nickname", nickname_key(name), {"nickname": name}, now, ttl)


def rejected(value: object, key: str | None = None, now: float = NOW) -> str:
    with pytest.raises(RecordRejected) as info:
        check_record(value, key, now)
    return info.value.reason


# -- records ------------------------------------------------------------------------


def test_signed_record_round_trips_through_json(alice_key: PrivateKey) -> None:
    record = nick(alice_key, ALICE)
    assert record.key == "nickname:alice"
    parsed = check_record(record.to_json(), "nickname:alice", NOW + 1)
    assert parsed == record
    assert json.loads(record.to_json())["signature"] == record.signature
    assert not parsed.identity_verified


def test_tampered_fields_break_the_signature(alice_key: PrivateKey) -> None:
    record = nick(alice_key, ALICE)
    for change in ({"data": {"nickname": "Bob"}}, {"expires": record.expires + 5},
                   {"revision": record.revision + 1}, {"publisher": MALLORY}):
        forged = dataclasses.replace(record, **change)
        assert rejected(forged.to_json()) == "bad-signature", change


def test_a_signature_by_another_key_does_not_verify(alice_key: PrivateKey, mallory_key: PrivateKey) -> None:
    record = nick(alice_key, ALICE)
    by_mallory = dataclasses.replace(record, signature=b64(mallory_key.sign(record.signed_bytes())))
    assert rejected(by_mallory.to_json()) == "bad-signature"
    assert rejected(dataclasses.replace(record, signature="not base64!").to_json()) == "bad-signature"


def test_expired_and_too_long_records_are_refused(alice_key: PrivateKey) -> None:
    record = nick(alice_key, ALICE, ttl=60)
    assert rejected(record.to_json(), now=NOW + 61) == "expired"
    unsigned = dataclasses.replace(record, expires=int(NOW + MAX_TTL + 3600), signature="")
    too_long = dataclasses.replace(unsigned, signature=b64(alice_key.sign(unsigned.signed_bytes())))
    assert rejected(too_long.to_json()) == "ttl-too-long"


def test_a_record_is_bound_to_its_key(alice_key: PrivateKey) -> None:
    record = nick(alice_key, ALICE)
    assert rejected(record.to_json(), "nickname:bob") == "wrong-key"
    offer = sign_record(alice_key, ALICE, "supplier", supplier_key(ALICE), {"free": 1}, NOW)
    assert check_record(offer.to_json(), supplier_key(ALICE), NOW).publisher == ALICE
    with pytest.raises(RecordRejected, match="publisher-mismatch"):
        sign_record(alice_key, ALICE, "supplier", supplier_key(MALLORY), {"free": 1}, NOW)


def test_malformed_values_are_refused_with_a_reason(alice_key: PrivateKey) -> None:
    good = json.loads(nick(alice_key, ALICE).to_json())
    assert rejected("not json") == "malformed"
    assert rejected(12) == "malformed"
    assert rejected(json.dumps({**good, "extra": 1})) == "malformed"
    assert rejected(json.dumps({**good, "revision": True})) == "malformed"
    assert rejected(json.dumps({**good, "type": "weird"})) == "unknown-type"
    assert rejected("x" * 10000) == "too-large"


def test_nicknames_are_checked_and_compared_without_case() -> None:
    assert nickname_key("Alice.B-2") == nickname_key("alice.b-2") == "nickname:alice.b-2"
    for bad in ("ab", "a" * 33, "with space", "ünï", 5):
        with pytest.raises(RecordRejected, match="bad-nickname"):
            nickname_key(bad)  # type: ignore[arg-type]


def test_overwrite_rules(alice_key: PrivateKey, mallory_key: PrivateKey) -> None:
    old = nick(alice_key, ALICE, now=NOW)
    newer = nick(alice_key, ALICE, now=NOW + 10)
    check_overwrite(old, newer, NOW + 10)
    with pytest.raises(RecordRejected, match="stale"):
        check_overwrite(newer, old, NOW + 10)
    stolen = nick(mallory_key, MALLORY, now=NOW + 10)
    with pytest.raises(RecordRejected, match="owner"):
        check_overwrite(old, stolen, NOW + 10)
    same_idurl_other_key = nick(mallory_key, ALICE, now=NOW + 10)
    with pytest.raises(RecordRejected, match="owner"):
        check_overwrite(old, same_idurl_other_key, NOW + 10)
    check_overwrite(old, stolen, old.expires + 1)  # once expired, the nickname is free


# -- the storing node's guard ---------------------------------------------------------


class FakeTime:
    def __init__(self) -> None:
        self.now = NOW

    def __call__(self) -> float:
        return self.now


def test_storage_keeps_first_owner_and_counts_refusals(alice_key: PrivateKey, mallory_key: PrivateKey) -> None:
    clock = FakeTime()
    store = GuardedStorage(clock, digest)
    assert store, "an empty store stays truthy (kademlia does `storage or ForgetfulStorage()`)"
    record = nick(alice_key, ALICE)
    dkey = digest(record.key)
    store[dkey] = record.to_json()
    assert check_record(store[dkey], record.key, NOW) == record

    store[dkey] = nick(mallory_key, MALLORY).to_json()
    store[dkey] = dataclasses.replace(record, data={"nickname": "x"}).to_json()
    store[digest("nickname:bob")] = record.to_json()
    store[dkey] = b"\xff\x00"
    store[dkey] = 42
    assert store.refused.as_dict() == {"owner": 1, "bad-signature": 1, "wrong-key": 1, "malformed": 2}
    assert store.get(dkey) == record.to_json()
    assert store.get(digest("nickname:bob")) is None

    newer = nick(alice_key, ALICE, now=NOW + 5)
    store[dkey] = newer.to_json()
    store[dkey] = record.to_json()
    assert store.refused.by_reason["stale"] == 1
    assert store.get(dkey) == newer.to_json()
    assert [key for key, _value in store] == [dkey]

    clock.now = newer.expires + 1
    assert store.get(dkey) is None
    assert list(store) == []
    store[dkey] = nick(mallory_key, MALLORY, now=clock.now).to_json()
    assert check_record(store[dkey], record.key, clock.now).publisher == MALLORY


def test_storage_is_bounded() -> None:
    store = GuardedStorage(FakeTime(), digest, max_items=3)
    for k in range(5):
        key = f"suppliers-index:{k % 8}"
        store[digest(key)] = index.make_bucket(key, {f"http://127.0.0.1:8084/n{k}00.xml": int(NOW + 60)})
    assert len(store) == 3
    assert store.refused.by_reason["evicted"] == 2


# -- index buckets ----------------------------------------------------------------------


def idurl(n: int) -> str:
    return f"http://127.0.0.1:8084/node{n:03d}.xml"


def test_storage_merges_index_buckets() -> None:
    clock = FakeTime()
    store = GuardedStorage(clock, digest)
    key = "suppliers-index:3"
    store[digest(key)] = index.make_bucket(key, {idurl(1): int(NOW + 100)})
    store[digest(key)] = index.make_bucket(key, {idurl(2): int(NOW + 200), "junk": 5})
    store[digest(key)] = index.make_bucket(key, {idurl(1): int(NOW + 50)})
    _key, entries = index.parse_bucket(store[digest(key)], key)
    assert entries == {idurl(1): int(NOW + 100), idurl(2): int(NOW + 200)}
    store[digest("suppliers-index:4")] = index.make_bucket(key, {idurl(3): int(NOW + 100)})
    assert store.refused.by_reason["wrong-key"] == 1
    clock.now = NOW + 150  # stale entries stay until the next store; readers drop them
    assert index.merge_entries(index.parse_bucket(store[digest(key)], key)[1], now=clock.now) == {
        idurl(2): int(NOW + 200)}
    store[digest(key)] = index.make_bucket(key, {idurl(4): int(NOW + 300)})
    assert set(index.parse_bucket(store[digest(key)], key)[1]) == {idurl(2), idurl(4)}
    clock.now = NOW + 400
    assert store.get(digest(key)) is None


def test_bucket_merge_is_bounded_and_clamped() -> None:
    many = {idurl(n): int(NOW + 10 + n) for n in range(index.MAX_ENTRIES + 20)}
    merged = index.merge_entries(many, {idurl(999): int(NOW + 10**6)}, now=NOW)
    assert len(merged) == index.MAX_ENTRIES
    assert merged[idurl(999)] == int(NOW + index.INDEX_TTL)
    assert idurl(0) not in merged, "the entries closest to expiry go first"
    assert len(index.make_bucket("suppliers-index:0", merged)) < 7000
    assert {index.bucket_key_for(idurl(n)) for n in range(100)} == set(index.index_keys())
    with pytest.raises(RecordRejected):
        index.parse_bucket('{"type": "index", "key": "elsewhere", "entries": {}}')


def test_nickname_holder_table_is_complete() -> None:
    assert check_table(NicknameHolder) == []
    assert "REGISTERED" in to_dot(NicknameHolder)
