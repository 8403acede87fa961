"""The identity cache against a scripted HTTP server on loopback: what it accepts, what it
refuses, what it keeps on disk."""

from __future__ import annotations

import dataclasses
from collections.abc import Generator
from pathlib import Path
from typing import Any

import pytest
import pytest_twisted
from twisted.internet import reactor
from twisted.web import resource, server

from bitdust.crypto.keys import PrivateKey
from bitdust.crypto.packet_keys import PacketSigningKey
from bitdust.identity.cache import (
    MAX_UNCONFIRMED,
    IdentityCache,
    IdentityFetchError,
    cache_file_name,
    idurl_from_file_name,
)
from bitdust.identity.document import Identity
from bitdust.identity.idurl import make_idurl

CONTACTS = ("tcp://127.0.0.1:7771",)
PACKET_KEY = PacketSigningKey.generate().public_key()


class Scripted(resource.Resource):
    """Serves whatever the test put in ``pages`` (path -> (code, body)); counts hits."""

    isLeaf = True

    def __init__(self) -> None:
        super().__init__()
        self.pages: dict[str, tuple[int, bytes]] = {}
        self.hits: dict[str, int] = {}

    def render_GET(self, request: server.Request) -> bytes:
        path = request.path.decode()
        self.hits[path] = self.hits.get(path, 0) + 1
        code, body = self.pages.get(path, (404, b"nothing here"))
        request.setResponseCode(code)
        return body


@pytest.fixture(scope="module")
def key() -> PrivateKey:
    return PrivateKey.generate(2048)


@pytest.fixture(scope="module")
def other_key() -> PrivateKey:
    return PrivateKey.generate(2048)


@pytest.fixture
def web() -> Generator[tuple[Scripted, int], None, None]:
    root = Scripted()
    port: Any = reactor.listenTCP(0, server.Site(root), interface="127.0.0.1")  # type: ignore[arg-type]
    yield root, port.getHost().port
    pytest_twisted.blockon(port.stopListening())


def publish(web: tuple[Scripted, int], identity: Identity, name: str = "alice") -> None:
    web[0].pages[f"/{name}.xml"] = (200, identity.to_xml())


def alice(web: tuple[Scripted, int], key: PrivateKey, revision: int = 1, name: str = "alice") -> Identity:
    return Identity.create(key, [make_idurl("127.0.0.1", web[1], name)], CONTACTS, revision=revision,
                           packet_key=PACKET_KEY)


def new_cache(tmp_path: Path) -> IdentityCache:
    return IdentityCache(tmp_path / "identitycache", reactor, reactor)


def test_file_names_round_trip() -> None:
    for idurl in ("http://127.0.0.1:8084/alice.xml", "http://[::1]:80/b_o-b.xml", "http://id.example.org:1/abc.xml"):
        assert idurl_from_file_name(cache_file_name(idurl)) == idurl


@pytest_twisted.inlineCallbacks
def test_fetch_verifies_caches_in_memory_and_on_disk(tmp_path: Path, web: Any, key: PrivateKey) -> Any:
    identity = alice(web, key)
    publish(web, identity)
    cache = new_cache(tmp_path)
    assert cache.get_cached(identity.idurl) is None
    fetched = yield cache.fetch(identity.idurl)
    assert fetched == identity
    assert cache.get_cached(identity.idurl) == identity
    assert cache.is_confirmed(identity.idurl)
    stored = tmp_path / "identitycache" / cache_file_name(identity.idurl)
    assert Identity.from_xml(stored.read_bytes()) == identity
    # get() answers from memory: no second request
    again = yield cache.get(identity.idurl)
    assert again == identity
    assert web[0].hits["/alice.xml"] == 1
    # a new cache (a restarted node) loads it from disk
    assert new_cache(tmp_path).get_cached(identity.idurl) == identity


@pytest_twisted.inlineCallbacks
def test_concurrent_fetches_share_one_request(tmp_path: Path, web: Any, key: PrivateKey) -> Any:
    identity = alice(web, key)
    publish(web, identity)
    cache = new_cache(tmp_path)
    first, second = cache.fetch(identity.idurl), cache.fetch(identity.idurl)
    assert (yield first) == identity
    assert (yield second) == identity
    assert web[0].hits["/alice.xml"] == 1


@pytest_twisted.inlineCallbacks
def test_forged_signature_is_refused(tmp_path: Path, web: Any, key: PrivateKey, other_key: PrivateKey) -> Any:
    genuine = alice(web, key)
    # contacts changed after signing: the signature no longer matches
    forged = dataclasses.replace(genuine, contacts=("tcp://6.6.6.6:7771",))
    publish(web, forged)
    cache = new_cache(tmp_path)
    with pytest.raises(IdentityFetchError, match="signature does not verify"):
        yield cache.fetch(genuine.idurl)
    # signed by another key than the one in the document
    swapped = dataclasses.replace(genuine, signature=other_key.sign(genuine.signed_bytes()))
    publish(web, swapped)
    with pytest.raises(IdentityFetchError, match="signature does not verify"):
        yield cache.fetch(genuine.idurl)
    assert cache.get_cached(genuine.idurl) is None
    assert not (tmp_path / "identitycache" / cache_file_name(genuine.idurl)).exists()


@pytest_twisted.inlineCallbacks
def test_document_must_list_the_fetched_idurl(tmp_path: Path, web: Any, key: PrivateKey) -> Any:
    bob = alice(web, key, name="bob")
    publish(web, bob, name="alice")  # the server hands out bob's document as alice
    with pytest.raises(IdentityFetchError, match="does not list it among its sources"):
        yield new_cache(tmp_path).fetch(make_idurl("127.0.0.1", web[1], "alice"))


@pytest_twisted.inlineCallbacks
def test_newer_revision_refreshes_older_and_other_key_are_refused(
    tmp_path: Path, web: Any, key: PrivateKey, other_key: PrivateKey
) -> Any:
    cache = new_cache(tmp_path)
    first = alice(web, key, revision=2)
    publish(web, first)
    yield cache.fetch(first.idurl)
    newer = first.with_contacts(("tcp://127.0.0.1:9999",), key)
    assert newer.revision == 3
    publish(web, newer)
    refreshed = yield cache.fetch(first.idurl)
    assert refreshed == newer
    assert new_cache(tmp_path).get_cached(first.idurl) == newer, "the disk copy follows"
    publish(web, first)  # a replay of revision 2
    with pytest.raises(IdentityFetchError, match="older than the known revision 3"):
        yield cache.fetch(first.idurl)
    publish(web, alice(web, other_key, revision=99))
    with pytest.raises(IdentityFetchError, match="another public key"):
        yield cache.fetch(first.idurl)
    assert cache.get_cached(first.idurl) == newer
    cache.remove(first.idurl)
    assert cache.get_cached(first.idurl) is None
    assert new_cache(tmp_path).get_cached(first.idurl) is None, "remove() forgets the disk copy too"


@pytest_twisted.inlineCallbacks
def test_http_errors_garbage_oversize_and_dead_servers(tmp_path: Path, web: Any) -> Any:
    cache = new_cache(tmp_path)
    missing = make_idurl("127.0.0.1", web[1], "nobody")
    with pytest.raises(IdentityFetchError, match="HTTP 404"):
        yield cache.fetch(missing)
    web[0].pages["/junk.xml"] = (200, b"<html>not an identity</html>")
    with pytest.raises(IdentityFetchError, match="bad identity document"):
        yield cache.fetch(make_idurl("127.0.0.1", web[1], "junk"))
    web[0].pages["/huge.xml"] = (200, b"x" * (200 * 1024))
    with pytest.raises(IdentityFetchError, match="exceeds"):
        yield cache.fetch(make_idurl("127.0.0.1", web[1], "huge"))
    with pytest.raises(IdentityFetchError, match="bad name"):
        yield cache.fetch("http://127.0.0.1:1/../etc/passwd.xml")
    closed = _closed_port()
    with pytest.raises(IdentityFetchError, match="cannot fetch"):
        yield cache.fetch(make_idurl("127.0.0.1", closed, "alice"))
    assert cache.idurls() == []


def _closed_port() -> int:
    from tests.conftest import free_port

    return free_port()  # nothing listens there once the probe socket is closed


def test_add_from_peers(tmp_path: Path, key: PrivateKey, other_key: PrivateKey) -> None:
    cache = new_cache(tmp_path)
    idurl = make_idurl("127.0.0.1", 8084, "carol")
    first = Identity.create(key, [idurl], CONTACTS, revision=5, packet_key=PACKET_KEY)
    assert cache.add(first)
    assert cache.get_cached(idurl) == first
    assert not cache.is_confirmed(idurl), "a peer's word alone is not pinned on disk"
    assert list((tmp_path / "identitycache").glob("*.xml")) == []
    assert not cache.add(dataclasses.replace(first, revision=6)), "signature no longer matches"
    assert not cache.add(Identity.create(key, [idurl], CONTACTS, revision=4, packet_key=PACKET_KEY)), "older revision"
    thief = Identity.create(other_key, [idurl], CONTACTS, revision=9, packet_key=PACKET_KEY)
    assert not cache.add(thief), "another key"
    newer = first.with_contacts(("tcp://127.0.0.1:1234",), key)
    assert cache.add(newer)
    assert cache.get_cached(idurl) == newer


def test_unconfirmed_entries_are_bounded(tmp_path: Path, key: PrivateKey, monkeypatch: Any) -> None:
    monkeypatch.setattr("bitdust.identity.cache.MAX_UNCONFIRMED", 3)
    cache = new_cache(tmp_path)
    names = [f"peer{i}" for i in range(5)]
    for name in names:
        assert cache.add(Identity.create(key, [make_idurl("127.0.0.1", 8084, name)], CONTACTS, packet_key=PACKET_KEY))
    assert [make_idurl("127.0.0.1", 8084, n) for n in names[2:]] == cache.idurls()
    assert MAX_UNCONFIRMED >= 100


@pytest_twisted.inlineCallbacks
def test_server_overrides_a_peer_sent_document_and_pins_it(
    tmp_path: Path, web: Any, key: PrivateKey, other_key: PrivateKey
) -> Any:
    cache = new_cache(tmp_path)
    impostor = alice(web, other_key, revision=50)
    assert cache.add(impostor)
    genuine = alice(web, key, revision=1)
    publish(web, genuine)
    fetched = yield cache.fetch(genuine.idurl)
    assert fetched == genuine
    assert cache.is_confirmed(genuine.idurl)
    assert not cache.add(impostor), "the key is pinned now"
    assert cache.get_cached(genuine.idurl) == genuine


def test_corrupt_disk_files_are_skipped(tmp_path: Path, key: PrivateKey) -> None:
    folder = tmp_path / "identitycache"
    folder.mkdir()
    idurl = make_idurl("127.0.0.1", 8084, "dave")
    good = Identity.create(key, [idurl], CONTACTS, packet_key=PACKET_KEY)
    (folder / cache_file_name(idurl)).write_bytes(good.to_xml())
    (folder / "eve@127.0.0.1_8084.xml").write_bytes(b"garbage")
    fred = Identity.create(key, [make_idurl("127.0.0.1", 8084, "fred")], CONTACTS, packet_key=PACKET_KEY)
    tampered = dataclasses.replace(fred, revision=7)
    (folder / "fred@127.0.0.1_8084.xml").write_bytes(tampered.to_xml())
    (folder / "gina@127.0.0.1_8084.xml").write_bytes(good.to_xml())  # dave's document under gina's name
    cache = new_cache(tmp_path)
    assert cache.idurls() == [idurl]
