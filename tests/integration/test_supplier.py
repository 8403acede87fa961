"""service_supplier and service_customer_patrol inside whole nodes, over loopback TCP.

The customers here are test drivers: plain gateway nodes that send the market's real
signed packets (:mod:`bitdust.storage.market`) and collect the answers, so the supplier
is tested without the customer-side services.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Generator
from pathlib import Path
from typing import Any

import pytest
import pytest_twisted
from twisted.internet import reactor, threads
from twisted.internet.defer import Deferred, inlineCallbacks

from bitdust.api.client import ApiClient
from bitdust.config import Config
from bitdust.crypto.keys import PrivateKey
from bitdust.dht.availability import find_available, read_availability
from bitdust.node import Node
from bitdust.services.customer_patrol import CustomerPatrolService
from bitdust.services.dht import DhtService
from bitdust.services.identity_propagate import IdentityPropagateService
from bitdust.services.p2p_hookups import P2PHookupsService
from bitdust.services.supplier import SupplierService
from bitdust.storage import market
from bitdust.storage.supplier.patrol import DAY
from bitdust.transport.packet import Command, Packet, new_packet_id
from tests.integration.transport_net import SERVICES, gateway, give_identity, introduce, prepare_home

SUPPLIER_SERVICES: dict[str, Any] = {
    **SERVICES,
    **{cls.name: cls for cls in (IdentityPropagateService, P2PHookupsService, SupplierService,
                                 CustomerPatrolService)},
}
WAIT = 10.0
PIECE = "0/1/F20240101120000PM/0-0-Data"
PARITY = "0/1/F20240101120000PM/0-0-Parity"
LATER = "0/1/F20240102120000PM/0-0-Data"


class Driver:
    """A customer stand-in: sends packets, matches answers (Ack, Fail, Data, Files) by
    PacketID, and Acks and keeps CancelService notices from suppliers."""

    def __init__(self, node: Node) -> None:
        self.node = node
        self.gw = gateway(node)
        self.waiting: dict[str, Deferred[Packet]] = {}
        self.notices: list[Packet] = []
        self._notice_waiters: list[Deferred[Packet]] = []
        for command in (Command.Ack, Command.Fail, Command.Data, Command.Files):
            self.gw.add_handler(command, self._answer)
        self.gw.add_handler(Command.CancelService, self._notice)

    @property
    def idurl(self) -> str:
        assert self.node.my_identity is not None
        return self.node.my_identity.idurl

    def ask(self, supplier: Node, command: Command, payload: bytes, packet: Packet | None = None) -> Deferred[Packet]:
        assert supplier.my_identity is not None
        packet = packet or self.gw.make_packet(command, payload, supplier.my_identity.idurl)
        waiter: Deferred[Packet] = Deferred()
        self.waiting[packet.packet_id] = waiter
        self.gw.outbox(packet, wait_ack=False).addErrback(waiter.errback)
        return waiter.addTimeout(WAIT, reactor)

    def next_notice(self) -> Deferred[Packet]:
        waiter: Deferred[Packet] = Deferred()
        self._notice_waiters.append(waiter)
        return waiter.addTimeout(WAIT, reactor)

    def _answer(self, packet: Packet) -> None:
        waiter = self.waiting.pop(packet.packet_id, None)
        if waiter is not None:
            waiter.callback(packet)

    def _notice(self, packet: Packet) -> None:
        self.notices.append(packet)
        self.gw.ack(packet)
        waiters, self._notice_waiters = self._notice_waiters, []
        for waiter in waiters:
            waiter.callback(packet)


def fail_code(packet: Packet) -> str:
    assert packet.command is Command.Fail, f"expected Fail, got {packet.command}"
    return market.decode_failure(packet.payload).code


def supplier_service(node: Node) -> SupplierService:
    service = node.services.instance("service_supplier")
    assert isinstance(service, SupplierService)
    return service


def api(node: Node, method: str, *args: Any) -> Any:
    assert node.api is not None
    call = node.api.methods.lookup(method)
    assert call is not None
    return call(*args)


@pytest.fixture(scope="module")
def keys() -> list[PrivateKey]:
    return [PrivateKey.generate(2048) for _ in range(3)]


@pytest.fixture
def net(make_home: Callable[[str], Path], keys: list[PrivateKey]) -> Generator[Any, None, None]:
    """``net.start(name, index, supplier=..., config=...)`` starts a node and introduces it
    to every running one; all still running are stopped at the end."""
    running: list[Node] = []

    class Net:
        nodes = running

        @staticmethod
        @inlineCallbacks
        def start(name: str, index: int, supplier: bool = False, config: dict[str, Any] | None = None,
                  extra: tuple[Any, ...] = ()) -> Any:
            home = make_home(name)
            if not (home / "metadata" / "mykeyfile").exists():
                prepare_home(home, keys[index], udp=False)
            settings = Config(home / "config")
            for key, value in (config or {}).items():
                settings.set(key, value)
            services = {**(SUPPLIER_SERVICES if supplier else SERVICES), **{cls.name: cls for cls in extra}}
            node = Node(home, reactor=reactor, services=services)
            yield node.start()
            give_identity(node, name)
            running.append(node)
            introduce(running)
            return node

        @staticmethod
        @inlineCallbacks
        def stop(node: Node) -> Any:
            running.remove(node)
            yield node.stop()

    yield Net
    for node in running:
        pytest_twisted.blockon(node.stop())


@pytest_twisted.inlineCallbacks
def test_contracts_pieces_and_the_api(net: Any) -> Any:
    supplier = yield net.start("sup", 0, supplier=True, config={"services/supplier/donated-space": 10 * 1024})
    alice = Driver((yield net.start("alice", 1)))
    bob = Driver((yield net.start("bob", 2)))

    offer = yield alice.ask(supplier, Command.RequestService, market.ServiceRequest(6 * 1024, "ecc/4x4", 2).encode())
    assert offer.command is Command.Ack and market.ServiceOffer.decode(offer.payload).quota_bytes == 6 * 1024
    refused = yield bob.ask(supplier, Command.RequestService, market.ServiceRequest(5000, "ecc/2x2", 0).encode())
    assert fail_code(refused) == "no-space"
    assert (yield bob.ask(supplier, Command.RequestService,
                          market.ServiceRequest(3 * 1024, "ecc/2x2", 1).encode())).command is Command.Ack

    # Data within quota is stored; over quota is refused and nothing is written.
    stored = yield alice.ask(supplier, Command.Data, market.encode_piece(PIECE, b"a" * 4096))
    assert stored.command is Command.Ack
    over = yield alice.ask(supplier, Command.Data, market.encode_piece(PARITY, b"p" * 2500))
    assert fail_code(over) == "over-quota"
    folder = supplier.home.customers / market.customer_folder_name(alice.idurl)
    assert (folder / "0/1/F20240101120000PM/0-0-Data").read_bytes() == b"a" * 4096
    assert not (folder / "0/1/F20240101120000PM/0-0-Parity").exists()
    yield alice.ask(supplier, Command.Data, market.encode_piece(LATER, b"l" * 1024))

    # Retrieve: the owner gets a Data (owned by it, made by the supplier); nobody else does.
    piece = yield alice.ask(supplier, Command.Retrieve, market.encode_retrieve(PIECE))
    assert piece.command is Command.Data
    assert (piece.owner_id, piece.creator_id) == (alice.idurl, supplier.my_identity.idurl)
    piece_id, data = market.decode_piece(piece.payload)
    assert (piece_id, bytes(data)) == (PIECE, b"a" * 4096)
    assert fail_code((yield bob.ask(supplier, Command.Retrieve, market.encode_retrieve(PIECE)))) == "not-found"
    assert bob.node.packet_key is not None and supplier.my_identity is not None
    forged = Packet.create(Command.Retrieve, alice.idurl, bob.idurl, new_packet_id(), market.encode_retrieve(PIECE),
                           supplier.my_identity.idurl, bob.node.packet_key)
    assert fail_code((yield bob.ask(supplier, Command.Retrieve, b"", forged))) == "not-owner"
    assert fail_code((yield alice.ask(supplier, Command.Retrieve, market.encode_retrieve(PARITY)))) == "not-found"

    files = yield alice.ask(supplier, Command.ListFiles, b"{}")
    assert files.command is Command.Files
    assert market.decode_file_list(files.payload) == {PIECE: 4096, LATER: 1024}
    assert market.decode_file_list((yield bob.ask(supplier, Command.ListFiles, b"{}")).payload) == {}

    listing = api(supplier, "customers_list")
    assert listing["status"] == "OK"
    rows = {row["idurl"]: row for row in listing["result"]}
    assert {k: rows[alice.idurl][k] for k in ("position", "status", "quota", "used", "ecc_map")} == \
        {"position": 2, "status": "online", "quota": 6 * 1024, "used": 5 * 1024, "ecc_map": "ecc/4x4"}
    space = yield api(supplier, "space_donated")
    assert space == {"status": "OK", "result": [{
        "consumed": 9 * 1024, "consumedpercent": "90%", "consumedstr": "9 KB",
        "customers": [alice.idurl, bob.idurl], "customersnum": 2, "donated": 10 * 1024,
        "donatedstr": "10 KB", "free": 1024, "oldcustomers": [], "real": 5 * 1024,
        "used": 5 * 1024, "usedpercent": "50%", "used_str": "5 KB"}]}

    # Deleting frees the space.
    assert (yield alice.ask(supplier, Command.DeleteFile,
                            market.encode_delete_pieces([LATER]))).command is Command.Ack
    assert supplier_service(supplier).running_store().used(alice.idurl) == 4096
    assert (yield alice.ask(supplier, Command.DeleteBackup,
                            market.encode_delete_backups(["0/1/F20240101120000PM"]))).command is Command.Ack
    assert supplier_service(supplier).running_store().used(alice.idurl) == 0
    assert not any(p.is_file() for p in folder.rglob("*"))

    # customer_reject frees the space and the customer hears about it.
    yield bob.ask(supplier, Command.Data, market.encode_piece(PIECE, b"b" * 700))
    notice = bob.next_notice()
    answer = yield api(supplier, "customer_reject", bob.idurl)
    assert answer == {"status": "OK", "result": [f"customer {bob.idurl} rejected, 700 bytes were freed"]}
    got = yield notice
    assert got.command is Command.CancelService and market.is_supplier_notice(got.payload)
    assert market.decode_failure(got.payload).code == "rejected"
    assert not (supplier.home.customers / market.customer_folder_name(bob.idurl)).exists()
    assert fail_code((yield bob.ask(supplier, Command.Data, market.encode_piece(PIECE, b"x")))) == "rejected"
    again = yield api(supplier, "customer_reject", bob.idurl)
    assert again["status"] == "ERROR"
    assert (yield api(supplier, "space_donated"))["result"][0]["oldcustomers"] == [bob.idurl]

    # A customer leaving: Ack, and its data and contract are gone.
    yield alice.ask(supplier, Command.Data, market.encode_piece(PIECE, b"a" * 10))
    left = yield alice.ask(supplier, Command.CancelService, b"{}")
    assert left.command is Command.Ack
    assert api(supplier, "customers_list") == {"status": "OK", "result": []}
    assert not folder.exists()


@pytest_twisted.inlineCallbacks
def test_one_data_packet_stores_several_pieces_and_the_first_refusal_answers(net: Any) -> Any:
    supplier = yield net.start("sup", 0, supplier=True, config={"services/supplier/donated-space": 10 * 1024})
    alice = Driver((yield net.start("alice", 1)))
    assert (yield alice.ask(supplier, Command.RequestService,
                            market.ServiceRequest(6 * 1024, "ecc/4x4", 0).encode())).command is Command.Ack
    folder = supplier.home.customers / market.customer_folder_name(alice.idurl)

    block = b"".join(market.pieces_parts([(PIECE, b"d" * 2048), (PARITY, b"p" * 2048)]))
    assert (yield alice.ask(supplier, Command.Data, block)).command is Command.Ack
    assert (folder / PIECE).read_bytes() == b"d" * 2048 and (folder / PARITY).read_bytes() == b"p" * 2048

    # The second piece would exceed the quota: the answer is its refusal; the first stays.
    later_parity = LATER.replace("Data", "Parity")
    over = b"".join(market.pieces_parts([(LATER, b"l" * 1024), (later_parity, b"q" * 2048)]))
    assert fail_code((yield alice.ask(supplier, Command.Data, over))) == "over-quota"
    assert (folder / LATER).read_bytes() == b"l" * 1024 and not (folder / later_parity).exists()
    assert supplier_service(supplier).running_store().used(alice.idurl) == 5 * 1024

    for malformed in (b"\x00", b"\x01\x00\x04abcd", block[:-1]):
        assert fail_code((yield alice.ask(supplier, Command.Data, malformed))) == "bad-request"
    assert supplier_service(supplier).running_store().used(alice.idurl) == 5 * 1024


@pytest_twisted.inlineCallbacks
def test_customers_ping_tracks_online_and_offline(net: Any) -> Any:
    supplier = yield net.start("sup", 0, supplier=True)
    alice = Driver((yield net.start("alice", 1)))
    bob = Driver((yield net.start("bob", 2)))
    for driver in (alice, bob):
        yield driver.ask(supplier, Command.RequestService, market.ServiceRequest(100, "ecc/2x2", 0).encode())
    yield net.stop(bob.node)
    yield supplier_service(supplier).ping_customers(timeout=0.5)
    statuses = {row["idurl"]: row["status"] for row in api(supplier, "customers_list")["result"]}
    assert statuses == {alice.idurl: "online", bob.idurl: "offline"}
    assert api(supplier, "customers_ping") == {"status": "OK", "result": "requests to all customers was sent"}
    yield supplier.services.stop_service("service_supplier")
    assert supplier.services.state("service_customer_patrol") != "ON"
    client = ApiClient.from_home(supplier.home.root, timeout=10.0)
    for call in ("customers_list", "customers_ping", "space_donated"):
        answer = yield threads.deferToThread(client.call, call)
        assert answer == {"status": "ERROR", "errors": [f"{call} is not available: service_supplier is not running"]}


@pytest_twisted.inlineCallbacks
def test_restarted_supplier_keeps_customers_and_data(net: Any) -> Any:
    config = {"services/supplier/donated-space": 8 * 1024**2}
    supplier = yield net.start("sup", 0, supplier=True, config=config)
    alice = Driver((yield net.start("alice", 1)))
    yield alice.ask(supplier, Command.RequestService, market.ServiceRequest(3 * 1024**2, "ecc/4x4", 1).encode())
    big = bytes(range(256)) * 4096 * 2  # 2 MB: written in the thread pool
    assert (yield alice.ask(supplier, Command.Data, market.encode_piece(PIECE, big))).command is Command.Ack

    yield net.stop(supplier)
    supplier = yield net.start("sup", 0, supplier=True)
    rows = api(supplier, "customers_list")["result"]
    assert [(r["idurl"], r["position"], r["quota"], r["used"]) for r in rows] == \
        [(alice.idurl, 1, 3 * 1024**2, len(big))]
    piece = yield alice.ask(supplier, Command.Retrieve, market.encode_retrieve(PIECE))
    assert bytes(market.decode_piece(piece.payload)[1]) == big
    over = yield alice.ask(supplier, Command.Data, market.encode_piece(PARITY, big))
    assert fail_code(over) == "over-quota", "the quota still counts what was stored before the restart"
    saved = json.loads((supplier.home.root / "supplier" / "contracts.json").read_text())
    assert saved["contracts"][alice.idurl]["used"] == len(big)


@pytest_twisted.inlineCallbacks
def test_patrol_rejects_over_quota_then_idle_customers(net: Any) -> Any:
    supplier = yield net.start("sup", 0, supplier=True, config={
        "services/customer-patrol/enabled": False, "services/customer-patrol/customer-idle-days": 0})
    alice = Driver((yield net.start("alice", 1)))
    bob = Driver((yield net.start("bob", 2)))
    for driver in (alice, bob):
        yield driver.ask(supplier, Command.RequestService, market.ServiceRequest(1000, "ecc/2x2", 0).encode())
    yield bob.ask(supplier, Command.Data, market.encode_piece(PIECE, b"b" * 800))
    # Bob asks for less than he stores: over quota.
    yield bob.ask(supplier, Command.RequestService, market.ServiceRequest(500, "ecc/2x2", 0).encode())
    store = supplier_service(supplier).running_store()
    long_ago = store.now() - 3 * DAY
    contract = store.contract(alice.idurl)
    assert contract is not None
    contract.last_contact = long_ago

    patrol_service = supplier.services.instance("service_customer_patrol")
    assert isinstance(patrol_service, CustomerPatrolService)
    patrol_service.interval = 0.1
    bob_notice = bob.next_notice()
    yield supplier.services.start_service("service_customer_patrol")
    assert patrol_service.patrol is not None
    patrol_service.patrol.started_at = long_ago
    got = yield bob_notice
    assert market.decode_failure(got.payload).code == "over-quota"
    assert store.is_customer(alice.idurl), "customer-idle-days = 0 never rejects for silence"

    alice_notice = alice.next_notice()
    supplier.config.set("services/customer-patrol/customer-idle-days", 1)
    got = yield alice_notice
    assert market.decode_failure(got.payload).code == "rejected"
    assert store.customers() == [] and store.used() == 0


@pytest_twisted.inlineCallbacks
def test_one_node_as_customer_and_supplier_keeps_the_roles_apart(net: Any) -> Any:
    """Both sides handle Data and CancelService: a piece sent back for our Retrieve is not
    filed as a customer's upload, and a supplier's notice does not end our own customers."""
    first = yield net.start("first", 0, supplier=True)
    second = yield net.start("second", 1, supplier=True)
    first_as_customer, second_as_customer = Driver(first), Driver(second)
    request = market.ServiceRequest(1000, "ecc/2x2", 0).encode()
    assert (yield first_as_customer.ask(second, Command.RequestService, request)).command is Command.Ack
    assert (yield second_as_customer.ask(first, Command.RequestService, request)).command is Command.Ack
    yield first_as_customer.ask(second, Command.Data, market.encode_piece(PIECE, b"mine"))
    piece = yield first_as_customer.ask(second, Command.Retrieve, market.encode_retrieve(PIECE))
    assert bytes(market.decode_piece(piece.payload)[1]) == b"mine"
    first_store = supplier_service(first).running_store()
    assert first_store.list_pieces(second.my_identity.idurl) == {}

    notice = first_as_customer.next_notice()
    yield api(second, "customer_reject", first.my_identity.idurl)
    yield notice
    assert first_store.is_customer(second.my_identity.idurl), "a supplier's notice is not a customer leaving"


@pytest_twisted.inlineCallbacks
def test_availability_is_announced_in_the_dht(net: Any) -> Any:
    supplier = yield net.start("sup", 0, supplier=True, config={"services/supplier/donated-space": 2 * 1024**2},
                               extra=(DhtService,))
    seed = f"127.0.0.1:{supplier.config.get('services/dht/udp-port')}"
    alice = Driver((yield net.start("alice", 1, config={"services/dht/known-nodes": [seed]}, extra=(DhtService,))))
    announcer = supplier_service(supplier).announcer
    assert announcer is not None
    announcer.check()  # the identity was given after the service started
    assert announcer.publisher is not None
    yield announcer.publisher.publish_now()
    alice_dht = alice.node.services.instance("service_dht")
    assert isinstance(alice_dht, DhtService) and alice_dht.dht is not None
    offer = yield read_availability(alice_dht.dht, supplier.my_identity.idurl)
    assert offer is not None and offer.free == 2 * 1024**2 and "ecc/4x4" in offer.ecc_maps
    found = yield find_available(alice_dht.dht, 3, ecc_map="ecc/2x2", min_free=1024)
    assert [o.idurl for o in found] == [supplier.my_identity.idurl]

    yield alice.ask(supplier, Command.RequestService, market.ServiceRequest(1024**2, "ecc/2x2", 0).encode())
    yield announcer.publisher.publish_now()
    offer = yield read_availability(alice_dht.dht, supplier.my_identity.idurl)
    assert offer is not None and offer.free == 1024**2
