"""The supplier's store: quotas, atomic writes, traversal refusal, accounting that
survives a reload, temp files never served, contracts kept on disk."""

from __future__ import annotations

import json
import threading
from pathlib import Path
from typing import Any

import pytest
import pytest_twisted
from hypothesis import given
from hypothesis import strategies as st
from twisted.internet import reactor
from twisted.internet.defer import DeferredList
from twisted.internet.task import Clock

from bitdust.storage.ids import IdError
from bitdust.storage.market import ServiceRequest, customer_folder_name
from bitdust.storage.supplier import disk
from bitdust.storage.supplier.contracts import ContractBook, ContractsFileError
from bitdust.storage.supplier.store import HeldPieces, Refused, SupplierStore
from bitdust.util import fs
from tests.integration.grid import wait_until

ALICE = "http://127.0.0.1:8084/alice.xml"
BOB = "http://127.0.0.1:8084/bob.xml"
PIECE = "0/1/F20240101120000PM/0-0-Data"
PARITY = "0/1/F20240101120000PM/0-0-Parity"
OTHER_VERSION = "0/1/F20240102120000PM/0-0-Data"


def make_store(home: Path, donated: int = 10_000, clock: Any = None) -> SupplierStore:
    return SupplierStore(reactor, clock or Clock(), home / "customers", home / "supplier" / "contracts.json",
                         lambda: donated)


@pytest_twisted.inlineCallbacks
def loaded(home: Path, donated: int = 10_000) -> Any:
    store = make_store(home, donated)
    yield store.load()
    return store


@pytest_twisted.inlineCallbacks
def expect_refused(deferred: Any) -> Any:
    try:
        yield deferred
    except Refused as exc:
        return exc.code
    raise AssertionError("expected Refused")


# -- disk ---------------------------------------------------------------------------------


def test_piece_path_never_leaves_the_folder(tmp_path: Path) -> None:
    folder = tmp_path / "c"
    for bad in ("../../etc/passwd", "0/../../x/F20240101120000PM/0-0-Data", "/0/F20240101120000PM/0-0-Data",
                "0/1/F20240101120000PM/../0-0-Data", "0/1/F20240101120000PM/.0-0-Data.tmp"):
        with pytest.raises(IdError):
            disk.write_piece(folder, bad, b"x")
        with pytest.raises(IdError):
            disk.read_piece(folder, bad)
    with pytest.raises(IdError):
        disk.delete_backups(folder, ["../0/F20240101120000PM"])
    assert not folder.exists()


def test_scan_drops_temp_files_and_ignores_strays(tmp_path: Path) -> None:
    folder = tmp_path / "c"
    disk.write_piece(folder, PIECE, b"12345")
    version = folder / "0" / "1" / "F20240101120000PM"
    (version / ".0-0-Parity.abc123.tmp").write_bytes(b"half")
    (version / "notes.txt").write_bytes(b"stray")
    assert disk.scan_folder(folder) == {PIECE: 5}
    assert not (version / ".0-0-Parity.abc123.tmp").exists(), "half-written piece cleaned up"
    assert (version / "notes.txt").exists(), "unknown files are left alone"


def test_delete_prunes_empty_folders(tmp_path: Path) -> None:
    folder = tmp_path / "c"
    disk.write_piece(folder, PIECE, b"a")
    disk.write_piece(folder, OTHER_VERSION, b"b")
    disk.delete_backups(folder, ["0/1/F20240101120000PM"])
    assert disk.scan_folder(folder) == {OTHER_VERSION: 1}
    disk.delete_pieces(folder, [OTHER_VERSION])
    assert folder.is_dir() and not any(folder.iterdir())


# -- contracts ------------------------------------------------------------------------------


def test_damaged_contracts_file_refuses_to_load(tmp_path: Path) -> None:
    path = tmp_path / "contracts.json"
    path.write_text("{not json")
    with pytest.raises(ContractsFileError):
        ContractBook.load(path)
    assert ContractBook.load(tmp_path / "missing.json").contracts == {}


# -- store ----------------------------------------------------------------------------------


@pytest_twisted.inlineCallbacks
def test_contract_granted_within_donation(tmp_path: Path) -> Any:
    store = yield loaded(tmp_path, donated=1000)
    offer = yield store.request_service(ALICE, ServiceRequest(600, "ecc/4x4", 1))
    assert offer.quota_bytes == 600 and store.free() == 400
    assert (yield expect_refused(store.request_service(BOB, ServiceRequest(500, "ecc/2x2", 0)))) == "no-space"
    # A contracted customer just gets its contract updated (its own quota counts as room).
    offer = yield store.request_service(ALICE, ServiceRequest(900, "ecc/2x2", 0))
    assert offer.quota_bytes == 900
    contract = store.contract(ALICE)
    assert contract is not None and (contract.ecc_map, contract.position) == ("ecc/2x2", 0)
    saved = json.loads((tmp_path / "supplier" / "contracts.json").read_text())
    assert saved["contracts"][ALICE]["quota"] == 900


@pytest_twisted.inlineCallbacks
def test_quota_and_nothing_written_over_it(tmp_path: Path) -> Any:
    store = yield loaded(tmp_path)
    assert (yield expect_refused(store.store_piece(ALICE, PIECE, b"x"))) == "rejected"
    yield store.request_service(ALICE, ServiceRequest(10, "ecc/2x2", 0))
    yield store.store_piece(ALICE, PIECE, b"123456")
    assert (yield expect_refused(store.store_piece(ALICE, PARITY, b"12345"))) == "over-quota"
    assert not disk.piece_path(store.folder(ALICE), PARITY).exists()
    # Overwriting a piece counts only the difference.
    yield store.store_piece(ALICE, PIECE, b"1234567890")
    assert store.used(ALICE) == 10
    assert (yield store.read_piece(ALICE, PIECE)) == b"1234567890"
    assert not [p for p in store.folder(ALICE).rglob("*") if p.name.endswith(".tmp")]


@pytest_twisted.inlineCallbacks
def test_customers_only_see_their_own_folder(tmp_path: Path) -> Any:
    store = yield loaded(tmp_path)
    yield store.request_service(ALICE, ServiceRequest(100, "ecc/2x2", 0))
    yield store.request_service(BOB, ServiceRequest(100, "ecc/2x2", 0))
    yield store.store_piece(ALICE, PIECE, b"alice's")
    assert (yield expect_refused(store.read_piece(BOB, PIECE))) == "not-found"
    assert store.list_pieces(BOB) == {}
    assert store.folder(ALICE).name == customer_folder_name(ALICE)


@pytest_twisted.inlineCallbacks
def test_temp_file_never_served_and_cleaned_at_start(tmp_path: Path) -> Any:
    store = yield loaded(tmp_path)
    yield store.request_service(ALICE, ServiceRequest(100, "ecc/2x2", 0))
    yield store.store_piece(ALICE, PIECE, b"whole")
    yield store.close()
    # A crash in the middle of writing the Parity piece left its temp file behind.
    temp = disk.piece_path(store.folder(ALICE), PARITY).with_name(".0-0-Parity.x1y2.tmp")
    temp.write_bytes(b"hal")
    again = yield loaded(tmp_path)
    assert again.list_pieces(ALICE) == {PIECE: 5}
    assert (yield expect_refused(again.read_piece(ALICE, PARITY))) == "not-found"
    assert not temp.exists()


@pytest_twisted.inlineCallbacks
def test_pieces_leave_the_page_cache_and_the_disk_threads_end_with_the_store(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Any:
    dropped: list[int] = []
    real_drop = fs.drop_cached_pages

    def dropping(fd: int) -> None:
        dropped.append(fd)
        real_drop(fd)

    monkeypatch.setattr(fs, "drop_cached_pages", dropping)
    def disk_threads() -> set[threading.Thread]:
        return {t for t in threading.enumerate() if t.name.startswith("supplier-disk")}

    others = disk_threads()  # of stores that earlier tests left open
    store = yield loaded(tmp_path)
    yield store.request_service(ALICE, ServiceRequest(100, "ecc/2x2", 0))
    yield store.store_piece(ALICE, PIECE, b"piece")
    assert len(dropped) == 1, "a piece's pages are let go once it is on disk"
    assert disk_threads() - others
    yield store.close()  # contracts.json is written too, and keeps its pages
    assert len(dropped) == 1
    assert not disk_threads() - others


@pytest_twisted.inlineCallbacks
def test_close_waits_for_a_read_in_flight_without_blocking_and_refuses_later_reads(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Any:
    store = yield loaded(tmp_path)
    yield store.request_service(ALICE, ServiceRequest(100, "ecc/2x2", 0))
    yield store.store_piece(ALICE, PIECE, b"piece")
    disk_is_slow = threading.Event()
    real_read = disk.read_piece

    def slow_read(folder: Path, piece_id: str) -> bytes:
        assert disk_is_slow.wait(10), "the test never let the read finish"
        return real_read(folder, piece_id)

    monkeypatch.setattr(disk, "read_piece", slow_read)
    reading = store.read_piece(ALICE, PIECE)
    closing = store.close()
    # Had close() stopped the disk threads now, the reactor thread would be stuck in a
    # join of the reading thread (and close would have fired, the read still running).
    assert not closing.called, "close waits for the read, as a Deferred"
    assert (yield expect_refused(store.read_piece(ALICE, PIECE))) == "busy"
    disk_is_slow.set()
    assert (yield reading) == b"piece"
    yield closing


@pytest_twisted.inlineCallbacks
def test_accounting_survives_reload_and_heals_drift(tmp_path: Path) -> Any:
    store = yield loaded(tmp_path)
    yield store.request_service(ALICE, ServiceRequest(100, "ecc/4x4", 3))
    yield store.store_piece(ALICE, PIECE, b"abc")
    yield store.store_piece(ALICE, PARITY, b"defgh")
    yield store.close()
    path = tmp_path / "supplier" / "contracts.json"
    saved = json.loads(path.read_text())
    assert saved["contracts"][ALICE]["used"] == 8
    saved["contracts"][ALICE]["used"] = 999  # drift, as after a crash between write and save
    path.write_text(json.dumps(saved))
    again = yield loaded(tmp_path)
    contract = again.contract(ALICE)
    assert contract is not None
    assert (contract.quota, contract.ecc_map, contract.position, contract.used) == (100, "ecc/4x4", 3, 8)
    assert again.list_pieces(ALICE) == {PIECE: 3, PARITY: 5}


@pytest_twisted.inlineCallbacks
def test_deletes_free_space_and_drop_removes_everything(tmp_path: Path) -> Any:
    store = yield loaded(tmp_path)
    yield store.request_service(ALICE, ServiceRequest(100, "ecc/2x2", 0))
    for piece in (PIECE, PARITY, OTHER_VERSION):
        yield store.store_piece(ALICE, piece, b"12345")
    assert (yield store.delete_pieces(ALICE, [PARITY])) == 5
    assert (yield store.delete_backups(ALICE, ["0/1/F20240101120000PM"])) == 5
    assert store.list_pieces(ALICE) == {OTHER_VERSION: 5}
    assert (yield store.drop_customer(ALICE, "test")) == 5
    assert not store.is_customer(ALICE) and not store.folder(ALICE).exists()
    assert [f["idurl"] for f in store.book.former] == [ALICE]
    again = yield loaded(tmp_path)
    assert again.customers() == [] and again.book.former[0]["reason"] == "test"


@pytest_twisted.inlineCallbacks
def test_contact_times_saved_later_and_on_close(tmp_path: Path) -> Any:
    clock = Clock()
    store = make_store(tmp_path, clock=clock)
    yield store.load()
    yield store.request_service(ALICE, ServiceRequest(100, "ecc/2x2", 0))
    clock.advance(500)
    store.touch(ALICE)
    path = tmp_path / "supplier" / "contracts.json"
    assert json.loads(path.read_text())["contracts"][ALICE]["last_contact"] == 0
    yield store.close()
    assert json.loads(path.read_text())["contracts"][ALICE]["last_contact"] == 500


@pytest_twisted.inlineCallbacks
def test_concurrent_writes_cannot_overrun_the_quota(tmp_path: Path) -> Any:
    """Both writes pass the quota check alone; the per-customer queue lets only one in."""
    store = yield loaded(tmp_path)
    yield store.request_service(ALICE, ServiceRequest(10, "ecc/2x2", 0))
    outcomes = yield DeferredList([store.store_piece(ALICE, PIECE, b"123456"),
                                   store.store_piece(ALICE, PARITY, b"123456")], consumeErrors=True)
    assert [ok for ok, _ in outcomes] == [True, False]
    assert outcomes[1][1].value.code == "over-quota"
    assert store.used(ALICE) == 6 and disk.scan_folder(store.folder(ALICE)) == {PIECE: 6}


@pytest_twisted.inlineCallbacks
def test_writes_overlap_and_a_delete_waits_for_them(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Any:
    """One piece's fsync does not hold the next piece back, and a DeleteBackup that
    arrives meanwhile deletes what was written rather than racing the rename."""
    store = yield loaded(tmp_path)
    yield store.request_service(ALICE, ServiceRequest(100, "ecc/2x2", 0))
    release = threading.Event()
    inside: list[str] = []
    real_write = disk.write_piece

    def slow_write(folder: Path, piece_id: str, data: bytes, point: str | None = None) -> int:
        inside.append(piece_id)
        if not release.wait(30):
            raise TimeoutError("the test never released the write")
        return real_write(folder, piece_id, data, point)

    monkeypatch.setattr(disk, "write_piece", slow_write)
    writes = [store.store_piece(ALICE, PIECE, b"12345"), store.store_piece(ALICE, PARITY, b"123")]
    deleting = store.delete_backups(ALICE, ["0/1/F20240101120000PM"])
    fired: list[str] = []

    def note(result: Any, name: str) -> Any:
        fired.append(name)
        return result

    for name, deferred in (("write", writes[0]), ("write", writes[1]), ("delete", deleting)):
        deferred.addBoth(note, name)
    yield wait_until(reactor, lambda: len(inside) == 2, 10, "both writes running at once")
    assert fired == []
    release.set()
    sizes = yield DeferredList(writes, fireOnOneErrback=True)
    assert [size for _ok, size in sizes] == [5, 3]
    freed = yield deleting
    assert fired == ["write", "write", "delete"] and freed == 8
    assert store.list_pieces(ALICE) == {} and disk.scan_folder(store.folder(ALICE)) == {}


@pytest_twisted.inlineCallbacks
def test_close_lets_queued_work_finish_then_refuses(tmp_path: Path) -> Any:
    store = yield loaded(tmp_path)
    yield store.request_service(ALICE, ServiceRequest(100, "ecc/2x2", 0))
    writing = store.store_piece(ALICE, PIECE, b"12345")
    yield store.close()
    assert writing.called and store.list_pieces(ALICE) == {PIECE: 5}
    saved = json.loads((tmp_path / "supplier" / "contracts.json").read_text())
    assert saved["contracts"][ALICE]["used"] == 5
    assert (yield expect_refused(store.store_piece(ALICE, PARITY, b"1"))) == "busy"
    yield writing


@given(st.lists(st.tuples(st.sampled_from(["put", "pop"]), st.sampled_from([PIECE, PARITY, OTHER_VERSION]),
                          st.integers(min_value=0, max_value=10**12)), max_size=40))
def test_held_pieces_keep_their_total(ops: list[tuple[str, str, int]]) -> None:
    """The running total the quota checks read is always the sum of what is held."""
    held, model = HeldPieces({PIECE: 7}), {PIECE: 7}
    for op, piece, size in ops:
        if op == "put":
            held.put(piece, size)
            model[piece] = size
        else:
            assert held.pop(piece) == model.pop(piece, 0)
        assert held.total == sum(model.values()) and held.as_dict() == model
        assert (piece in held) == (piece in model) and held.size(piece) == model.get(piece, 0)
