"""Identity servers, the identity cache and identity publishing over real loopback sockets.

In-process nodes run only the services these tests are about (network, identity
server), so nothing else grabs default ports; the propagate service is driven directly
because its dependency (the gateway) is not what is tested here. The last test runs the
real daemon and CLI as separate processes.
"""

from __future__ import annotations

import dataclasses
import json
import os
import signal
import subprocess
import sys
import urllib.error
import urllib.request
from collections.abc import Callable, Generator
from pathlib import Path
from typing import Any

import psutil
import pytest
import pytest_twisted
from twisted.internet import reactor, threads

from bitdust.config import Config
from bitdust.crypto.keys import PrivateKey
from bitdust.crypto.packet_keys import PacketSigningKey
from bitdust.daemon import running_pid
from bitdust.home import Home
from bitdust.identity.cache import IdentityFetchError
from bitdust.identity.document import MAX_XML_BYTES, Identity, IdentityError
from bitdust.identity.idurl import make_idurl
from bitdust.identity.my_id import load_my_identity, my_identity_path, post_sync
from bitdust.node import Node
from bitdust.services.identity_propagate import IdentityPropagateService
from bitdust.services.identity_server import IdentityServerService
from bitdust.services.network import NetworkService
from tests.conftest import free_port

CONTACTS = ("tcp://127.0.0.1:7771", "udp://127.0.0.1:8882")
PACKET_KEY = PacketSigningKey.generate().public_key()
SERVICES: dict[str, Any] = {"service_network": NetworkService, "service_identity_server": IdentityServerService}


@pytest.fixture(scope="module")
def key() -> PrivateKey:
    return PrivateKey.generate(2048)


@pytest.fixture(scope="module")
def other_key() -> PrivateKey:
    return PrivateKey.generate(2048)


@pytest.fixture
def nodes() -> Generator[list[Node], None, None]:
    """Nodes a test started; all stopped at teardown."""
    started: list[Node] = []
    yield started
    for node in started:
        pytest_twisted.blockon(node.stop())


def server_home(make_home: Callable[[str], Path], name: str = "idserver") -> Path:
    home = make_home(name)
    config = Config(home / "config")
    config.set("services/identity-server/enabled", True)
    config.set("services/identity-server/web-port", free_port())
    return home


@pytest_twisted.inlineCallbacks
def start_node(nodes: list[Node], home: Path, services: dict[str, Any] | None = None) -> Any:
    node = Node(home, reactor=reactor, services=SERVICES if services is None else services)
    nodes.append(node)
    yield node.start()
    return node


def server_of(node: Node) -> IdentityServerService:
    service = node.services.instance("service_identity_server")
    assert isinstance(service, IdentityServerService)
    return service


def http(method: str, url: str, body: bytes | None = None) -> Any:
    """(code, body) of a blocking urllib call made in a thread, like an outside client."""

    def call() -> tuple[int, bytes]:
        request = urllib.request.Request(url, data=body, method=method)
        try:
            with urllib.request.urlopen(request, timeout=10) as answer:
                return answer.status, answer.read()
        except urllib.error.HTTPError as exc:
            return exc.code, exc.read()

    return threads.deferToThread(call)


@pytest.fixture
def id_server(make_home: Callable[[str], Path], nodes: list[Node]) -> Generator[tuple[Node, str], None, None]:
    """A started node running the identity server; yields it and its base URL."""
    node = pytest_twisted.blockon(start_node(nodes, server_home(make_home)))
    yield node, f"http://127.0.0.1:{server_of(node).port}"


# --- the server -----------------------------------------------------------------------------


@pytest_twisted.inlineCallbacks
def test_server_registers_serves_and_updates(id_server: tuple[Node, str], key: PrivateKey) -> Any:
    node, base = id_server
    service = server_of(node)
    assert service.listening.getHost().host == "127.0.0.1", "never listen on all interfaces"
    idurl = make_idurl("127.0.0.1", service.port, "alice")
    first = Identity.create(key, [idurl], CONTACTS, packet_key=PACKET_KEY)
    code, answer = yield http("POST", idurl, first.to_xml())
    assert (code, answer) == (201, (idurl + "\n").encode())
    code, served = yield http("GET", idurl)
    assert code == 200 and Identity.from_xml(served) == first
    assert (node.home.root / "identityserver" / "alice.xml").read_bytes() == first.to_xml()
    code, _ = yield http("POST", idurl, first.to_xml())
    assert code == 200, "re-publishing the same revision is harmless"
    newer = first.with_contacts(("tcp://127.0.0.1:9999",), key)
    code, _ = yield http("POST", base + "/", newer.to_xml())  # POST / takes the name from the sources
    assert code == 200
    code, served = yield http("GET", idurl)
    assert Identity.from_xml(served) == newer
    code, listing = yield http("GET", base + "/")
    assert code == 200 and listing.decode().split() == [idurl]


@pytest_twisted.inlineCallbacks
def test_server_accepts_a_document_that_lists_it_as_a_mirror(id_server: tuple[Node, str], key: PrivateKey) -> Any:
    node, _ = id_server
    here = make_idurl("127.0.0.1", server_of(node).port, "mirrored")
    elsewhere = make_idurl("127.0.0.1", free_port(), "mirrored")
    identity = Identity.create(key, [elsewhere, here], CONTACTS, packet_key=PACKET_KEY)
    code, _ = yield http("POST", here, identity.to_xml())
    assert code == 201
    code, served = yield http("GET", here)
    assert Identity.from_xml(served) == identity


@pytest_twisted.inlineCallbacks
def test_server_refuses_what_it_must(id_server: tuple[Node, str], key: PrivateKey, other_key: PrivateKey) -> Any:
    node, base = id_server
    port = server_of(node).port
    idurl = make_idurl("127.0.0.1", port, "bob")
    genuine = Identity.create(key, [idurl], CONTACTS, revision=5, packet_key=PACKET_KEY)
    forged = dataclasses.replace(genuine, contacts=("tcp://6.6.6.6:1",))
    code, answer = yield http("POST", idurl, forged.to_xml())
    assert code == 400 and b"signature" in answer
    code, _ = yield http("GET", idurl)
    assert code == 404, "a refused document is not stored"

    code, _ = yield http("POST", idurl, genuine.to_xml())
    assert code == 201
    thief = Identity.create(other_key, [idurl], ("tcp://6.6.6.6:1",), revision=99, packet_key=PACKET_KEY)
    code, answer = yield http("POST", idurl, thief.to_xml())
    assert code == 403 and b"taken by another key" in answer
    stale = Identity.create(key, [idurl], CONTACTS, revision=4, packet_key=PACKET_KEY)
    code, answer = yield http("POST", idurl, stale.to_xml())
    assert code == 409 and b"older" in answer
    code, served = yield http("GET", idurl)
    assert Identity.from_xml(served) == genuine, "nothing above replaced the genuine document"

    code, answer = yield http("POST", idurl, b"<identity>" + b"x" * (MAX_XML_BYTES + 10) + b"</identity>")
    assert code == 413
    code, answer = yield http("POST", idurl, b"\x00\xffnot xml at all")
    assert code == 400 and b"bad identity document" in answer
    code, _ = yield http("POST", idurl, b"")
    assert code == 400

    other_server = Identity.create(key, [make_idurl("127.0.0.1", free_port(), "carol")], CONTACTS,
                                   packet_key=PACKET_KEY)
    code, answer = yield http("POST", make_idurl("127.0.0.1", port, "carol"), other_server.to_xml())
    assert code == 400 and b"none of the identity's sources" in answer
    code, _ = yield http("POST", base + "/", other_server.to_xml())
    assert code == 400
    code, _ = yield http("POST", make_idurl("127.0.0.1", port, "dave"), genuine.to_xml())
    assert code == 400, "the posted name must be the document's"
    code, _ = yield http("POST", base + "/../etc.xml", genuine.to_xml())
    assert code in (400, 404)
    for method in ("PUT", "DELETE"):
        code, _ = yield http(method, idurl, genuine.to_xml())
        assert code == 405
    code, served = yield http("GET", idurl)
    assert Identity.from_xml(served) == genuine


# --- the cache against a real server -------------------------------------------------------------


@pytest_twisted.inlineCallbacks
def test_cache_fetches_from_a_server_and_follows_revisions(
    id_server: tuple[Node, str], make_home: Callable[[str], Path], nodes: list[Node], key: PrivateKey
) -> Any:
    server_node, _ = id_server
    reader = yield start_node(nodes, make_home("reader"), {"service_network": NetworkService})
    idurl = make_idurl("127.0.0.1", server_of(server_node).port, "erin")
    first = Identity.create(key, [idurl], CONTACTS, packet_key=PACKET_KEY)
    yield http("POST", idurl, first.to_xml())
    fetched = yield reader.identity_cache.get(idurl)
    assert fetched == first
    assert list((reader.home.root / "identitycache").glob("*.xml")), "cached on disk under the home"
    newer = first.with_contacts(("tcp://127.0.0.1:1111",), key)
    yield http("POST", idurl, newer.to_xml())
    assert (yield reader.identity_cache.get(idurl)) == first, "get() answers from the cache"
    assert (yield reader.identity_cache.fetch(idurl)) == newer, "fetch() refreshes to the newer revision"
    with pytest.raises(IdentityFetchError, match="HTTP 404"):
        yield reader.identity_cache.fetch(make_idurl("127.0.0.1", server_of(server_node).port, "nobody"))


# --- my identity: publishing and re-publishing -------------------------------------------------------


def client_home(make_home: Callable[[str], Path], name: str, servers: list[str]) -> Path:
    home = make_home(name)
    config = Config(home / "config")
    config.set("services/identity-propagate/known-servers", ",".join(servers))
    config.set("services/tcp-connections/tcp-port", free_port())
    config.set("services/udp-transport/udp-port", free_port())
    return home


def propagate_of(node: Node) -> IdentityPropagateService:
    """The service under test, driven directly (its gateway dependency is not built here)."""
    return IdentityPropagateService(node)


@pytest_twisted.inlineCallbacks
def test_register_then_port_change_bumps_revision_and_republishes(
    id_server: tuple[Node, str], make_home: Callable[[str], Path], nodes: list[Node]
) -> Any:
    server_node, _ = id_server
    server_addr = f"127.0.0.1:{server_of(server_node).port}"
    node = yield start_node(nodes, client_home(make_home, "alice", [server_addr]), {"service_network": NetworkService})
    service = propagate_of(node)
    yield service.start()
    assert node.my_identity is None, "no identity before registering"
    identity = yield service.register("alice")
    idurl = f"http://{server_addr}/alice.xml"
    assert identity.idurl == idurl and identity.revision == 1
    assert node.key is not None and identity.public_key == node.key.public_key()
    tcp = node.config.get("services/tcp-connections/tcp-port")
    assert f"tcp://127.0.0.1:{tcp}" in identity.contacts
    assert node.my_identity == identity == load_my_identity(node.home)
    assert node.identity_cache.get_cached(idurl) == identity
    assert oct(my_identity_path(node.home).stat().st_mode & 0o777) == "0o600"
    _, served = yield http("GET", idurl)
    assert Identity.from_xml(served) == identity

    new_port = free_port()
    node.config.set("services/tcp-connections/tcp-port", new_port)
    assert service.publishing is not None, "a contact change publishes at once"
    results = yield service.publishing
    assert results == {idurl: "OK"}
    assert node.my_identity is not None and node.my_identity.revision == 2
    assert f"tcp://127.0.0.1:{new_port}" in node.my_identity.contacts
    _, served = yield http("GET", idurl)
    assert Identity.from_xml(served) == node.my_identity == load_my_identity(node.home)
    node.config.set("logs/debug-level", 9)  # not a contact: no new revision
    assert node.my_identity.revision == 2

    # a change while the service is off is caught up at the next start
    yield service.stop()
    node.config.set("services/udp-transport/udp-port", free_port())
    assert node.my_identity.revision == 2, "a stopped service does not listen"
    yield service.start()
    results = yield service.publishing
    assert results == {idurl: "OK"}
    assert node.my_identity.revision == 3
    _, served = yield http("GET", idurl)
    assert Identity.from_xml(served).revision == 3
    yield service.stop()

    # a re-made packet key file: the next start certifies the new key, revision + 1
    assert node.packet_key is not None and node.my_identity.packet_key == node.packet_key.public_key()
    node.home.packet_key_file.unlink()
    node.packet_key = PacketSigningKey.load_or_create(node.home.packet_key_file)
    yield service.start()
    results = yield service.publishing
    assert results == {idurl: "OK"}
    assert node.my_identity.revision == 4 and node.my_identity.packet_key == node.packet_key.public_key()
    _, served = yield http("GET", idurl)
    assert Identity.from_xml(served) == node.my_identity == load_my_identity(node.home)
    yield service.stop()


@pytest_twisted.inlineCallbacks
def test_register_refused_name_keeps_nothing_and_reports(
    id_server: tuple[Node, str], make_home: Callable[[str], Path], nodes: list[Node], other_key: PrivateKey
) -> Any:
    server_node, _ = id_server
    port = server_of(server_node).port
    taken = Identity.create(other_key, [make_idurl("127.0.0.1", port, "zed")], CONTACTS, packet_key=PACKET_KEY)
    yield http("POST", taken.idurl, taken.to_xml())
    node = yield start_node(nodes, client_home(make_home, "zed", [f"127.0.0.1:{port}"]),
                            {"service_network": NetworkService})
    service = propagate_of(node)
    yield service.start()
    with pytest.raises(IdentityError, match="taken by another key"):
        yield service.register("zed")
    assert node.my_identity is None and load_my_identity(node.home) is None
    yield service.stop()


@pytest_twisted.inlineCallbacks
def test_start_refuses_an_identity_of_another_key(
    make_home: Callable[[str], Path], nodes: list[Node], other_key: PrivateKey
) -> Any:
    node = yield start_node(nodes, client_home(make_home, "mixed", ["127.0.0.1:1"]),
                            {"service_network": NetworkService})
    stranger = Identity.create(other_key, [make_idurl("127.0.0.1", 1, "mixed")], CONTACTS, packet_key=PACKET_KEY)
    my_identity_path(node.home).write_bytes(stranger.to_xml())
    with pytest.raises(IdentityError, match="another key"):
        yield propagate_of(node).start()


def test_post_sync_reports_unreachable_servers(key: PrivateKey) -> None:
    identity = Identity.create(key, [make_idurl("127.0.0.1", free_port(), "lonely")], CONTACTS, packet_key=PACKET_KEY)
    assert post_sync(identity, timeout=5)[identity.idurl].startswith("cannot reach the server")


# --- the CLI against a daemon that runs the identity server -----------------------------------------


def bitdust(home: Path, *args: str, timeout: float = 90) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "bitdust", "--home", str(home), *args],
                          capture_output=True, text=True, timeout=timeout, check=False)


def quiet_ports(home: Path) -> Config:
    """Free ports for every listener a daemon may open, so parallel runs never collide."""
    config = Config(home / "config")
    for option in ("services/tcp-connections/tcp-port", "services/udp-transport/udp-port", "services/dht/udp-port"):
        config.set(option, free_port())
    return config


@pytest.fixture
def daemon(make_home: Callable[[str], Path]) -> Generator[tuple[Path, int], None, None]:
    """A daemon running the identity server, stopped by pid at teardown whatever happens."""
    home = server_home(make_home, "seed")
    config = quiet_ports(home)
    port = config.get("services/identity-server/web-port")
    config.set("services/identity-propagate/known-servers", f"127.0.0.1:{port}")
    try:
        started = bitdust(home, "start")
        assert started.returncode == 0, started.stdout + started.stderr
        yield home, port
    finally:
        pid = running_pid(Home(home))
        if pid is not None:
            os.kill(pid, signal.SIGTERM)
            try:
                psutil.Process(pid).wait(timeout=30)
            except psutil.TimeoutExpired:
                os.kill(pid, signal.SIGKILL)
                psutil.Process(pid).wait(timeout=30)


def test_cli_identity_create_against_a_daemon(daemon: tuple[Path, int], make_home: Callable[[str], Path]) -> None:
    seed_home, port = daemon
    server = f"127.0.0.1:{port}"
    alice = make_home("cli-alice")
    quiet_ports(alice).set("services/identity-propagate/known-servers", server)

    created = bitdust(alice, "identity", "create", "alice")
    assert created.returncode == 0, created.stderr
    idurl = f"http://{server}/alice.xml"
    assert created.stdout.strip().splitlines()[-1] == idurl
    with urllib.request.urlopen(idurl, timeout=10) as answer:
        served = Identity.from_xml(answer.read())
    assert served.public_key == PrivateKey.load(alice / "metadata" / "mykeyfile").public_key()
    packet_key_file = alice / "metadata" / "packetkey"
    assert served.packet_key == PacketSigningKey.load(packet_key_file).public_key()
    assert oct(packet_key_file.stat().st_mode & 0o777) == "0o600"
    assert served == load_my_identity(Home(alice))

    shown = bitdust(alice, "identity", "show")
    assert shown.returncode == 0 and idurl in shown.stdout and "revision:  1" in shown.stdout
    as_xml = bitdust(alice, "identity", "show", "--xml")
    assert Identity.from_xml(as_xml.stdout.encode()) == served

    again = bitdust(alice, "identity", "create", "alice")
    assert again.returncode == 0, "re-creating one's own name is fine"

    mallory = make_home("cli-mallory")
    quiet_ports(mallory).set("services/identity-propagate/known-servers", server)
    stolen = bitdust(mallory, "identity", "create", "alice")
    assert stolen.returncode == 1
    assert "taken by another key" in stolen.stderr
    assert not (mallory / "metadata" / "myidentity").exists()

    bad = bitdust(mallory, "identity", "create", "No!")
    assert bad.returncode == 2 and "bad name" in bad.stderr
    lonely = make_home("cli-lonely")
    nowhere = bitdust(lonely, "identity", "create", "lonely")
    assert nowhere.returncode == 1 and "no identity servers" in nowhere.stderr
    missing = bitdust(lonely, "identity", "show")
    assert missing.returncode == 1 and "no identity" in missing.stderr

    # the daemon's own home: through its API, so the running node uses the identity at once
    own = bitdust(seed_home, "identity", "create", "seed")
    assert own.returncode == 0, own.stderr
    assert own.stdout.strip() == f"http://{server}/seed.xml", "through the API: no restart hint"
    live = json.loads(bitdust(seed_home, "api", "identity_get").stdout)
    assert live["status"] == "OK" and live["result"]["idurl"] == f"http://{server}/seed.xml"
    with urllib.request.urlopen(f"http://{server}/seed.xml", timeout=10) as answer:
        assert Identity.from_xml(answer.read()) == load_my_identity(Home(seed_home))
