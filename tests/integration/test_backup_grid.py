"""Backups on an in-process grid: node1 backs up onto node0, node2, node3, node4
(``ecc/4x4``, 64 KB blocks). The tests run in file order on one grid: start, back up a
folder, the catalog copy, bad input, abort in the middle, max-copies, delete."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Generator, Iterator, Sequence
from pathlib import Path
from typing import Any

import pytest
import pytest_twisted
from twisted.internet import reactor
from twisted.internet.defer import Deferred, inlineCallbacks

from bitdust.config import Config
from bitdust.crypto.keys import PrivateKey
from bitdust.node import Node
from bitdust.services.backup_db import BackupDbService
from bitdust.services.backups import BackupsService
from bitdust.services.data_motion import DataMotionService
from bitdust.services.list_files import ListFilesService
from bitdust.services.rebuilding import RebuildingService
from bitdust.services.supplier import SupplierService
from bitdust.storage.backups.catalog_copy import CatalogCopyError, open_catalog
from bitdust.storage.backups.catalog_sync import fetch_catalog_copy
from bitdust.storage.backups.job import BLOCKS_PER_PACKET
from bitdust.storage.ids import CATALOG_PATH_ID, PieceKind, make_piece_id, parse_piece_id
from bitdust.storage.supplier import disk
from bitdust.transport.packet import Buffer
from tests.integration.grid import announce_suppliers, api, idurl, make_grid, service, wait_until, within

COUNT = 5
CUSTOMER = 1
BLOCK = 64 * 1024
WAIT = 30.0


@pytest.fixture(scope="module")
def grid(tmp_path_factory: pytest.TempPathFactory) -> Generator[list[Node], None, None]:
    keys = [PrivateKey.generate(2048) for _ in range(COUNT)]
    root: Path = tmp_path_factory.mktemp("backups")
    for n in range(COUNT):
        config = Config(root / f"node{n}" / "config")
        for name in ("customer", "employer", "data-disintegration", "data-motion", "list-files", "rebuilding",
                     "backup-db", "backups", "restores", "keys-storage"):
            config.set(f"services/{name}/enabled", False)  # node1 switches them on when told to
        config.set("services/supplier/enabled", n != CUSTOMER)
        config.set("services/supplier/donated-space", 256 * 1024**2)
        config.set("services/customer/needed-space", 64 * 1024**2)
        config.set("services/customer/request-timeout-seconds", 2)
        config.set("services/backups/block-size", BLOCK)
        config.set("services/data-motion/send-timeout-seconds", 5)
    nodes = pytest_twisted.blockon(make_grid(reactor, root, keys))
    yield nodes
    for node in reversed(nodes):
        pytest_twisted.blockon(node.stop())




def suppliers_of(grid: list[Node]) -> list[Node]:
    """Suppliers in position order."""
    rows = api(grid[CUSTOMER], "suppliers_list")["result"]
    by_idurl = {idurl(n): n for n in grid}
    return [by_idurl[r["idurl"]] for r in rows]


def stored(node: Node, customer: Node) -> dict[str, int]:
    store = service(node, SupplierService).store
    assert store is not None
    return store.list_pieces(idurl(customer)) if store.is_customer(idurl(customer)) else {}


def backups(node: Node) -> BackupsService:
    return service(node, BackupsService)


@inlineCallbacks
def start_backup(customer: Node, source: Path) -> Generator[Any, Any, tuple[dict[str, Any], str, Any]]:
    """backup_start_path of ``source``: (the answer, the backup ID, its running job)."""
    answer = yield api(customer, "backup_start_path", str(source))
    assert answer["status"] == "OK", answer
    jobs = backups(customer).jobs
    assert jobs is not None
    (backup_id, job), = jobs.running.items()
    return answer, backup_id, job


@inlineCallbacks
def backed_up(customer: Node, source: Path) -> Generator[Any, Any, tuple[dict[str, Any], str]]:
    """:func:`start_backup`, then its job's end, which must be DONE: (the answer, the backup ID)."""
    answer, backup_id, job = yield start_backup(customer, source)
    state = yield within(job.finished, WAIT, reactor)
    assert state == "DONE", job.error
    return answer, backup_id


@contextlib.contextmanager
def local_copies(customer: Node) -> Iterator[None]:
    """``services/backups/keep-local-copies-enabled`` on, for the ``with`` block only."""
    customer.config.set("services/backups/keep-local-copies-enabled", True)
    try:
        yield
    finally:
        customer.config.set("services/backups/keep-local-copies-enabled", False)


def all_online(node: Node) -> bool:
    answer = api(node, "suppliers_list")
    return answer["status"] == "OK" and len(answer["result"]) == 4 and \
        all(r["status"] == "online" and r["idurl"] for r in answer["result"])


def make_tree(root: Path) -> Path:
    top = root / "Docs"
    (top / "a" / "b" / "c").mkdir(parents=True)
    (top / "empty-folder").mkdir()
    (top / "empty.txt").write_bytes(b"")
    (top / "a" / "b" / "empty2").write_bytes(b"")
    (top / "a" / "Привет мир — ü.txt").write_text("non-ASCII name and text: ĳ ✓", "utf-8")
    (top / "a" / "b" / "c" / "multi.bin").write_bytes(os.urandom(5 * BLOCK + 123))
    (top / "one-block.bin").write_bytes(os.urandom(BLOCK))
    return top


def version_pieces(backup_id: str, blocks: int, position: int) -> set[str]:
    return {make_piece_id(backup_id, b, position, kind) for b in range(blocks) for kind in PieceKind}


@pytest_twisted.inlineCallbacks
def test_backup_services_start_and_hire(grid: list[Node]) -> Any:
    customer = grid[CUSTOMER]
    answer = api(customer, "backups_running")
    assert answer["status"] == "ERROR" and "service_backups" in answer["errors"][0]
    yield announce_suppliers(reactor, grid, WAIT)
    yield within(customer.services.start_service("service_backups"), WAIT, reactor)
    for name in ("service_data_motion", "service_list_files", "service_backup_db", "service_backups"):
        assert customer.services.is_on(name), name
    yield wait_until(reactor, lambda: all_online(customer), WAIT, "4 suppliers online")
    assert api(customer, "backups_id_list") == {"status": "OK", "result": []}


@pytest_twisted.inlineCallbacks
def test_backup_of_a_folder_lands_on_the_right_suppliers(grid: list[Node], tmp_path: Path) -> Any:
    customer = grid[CUSTOMER]
    top = make_tree(tmp_path)
    motion = service(customer, DataMotionService).motion
    assert motion is not None
    real_send = motion.send_pieces
    acks: list[tuple[str, int]] = []
    packets: list[list[str]] = []

    def watching(position: int, pieces: Sequence[tuple[str, Buffer]]) -> Deferred[None]:
        names = [piece_id for piece_id, _data in pieces]
        packets.append(names)

        def acked(result: None) -> None:
            visible = api(customer, "backups_id_list")["result"]
            acks.extend((piece_id, len(visible)) for piece_id in names)
            return result

        return real_send(position, pieces).addCallback(acked)

    motion.send_pieces = watching  # type: ignore[method-assign]
    try:
        answer = yield api(customer, "backup_start_path", str(top))
        assert answer["status"] == "OK", answer
        assert answer["result"].startswith(f"uploading of item {answer['id']} started, local path is: {top}")
        assert answer["type"] == "dir"
        jobs = backups(customer).jobs
        assert jobs is not None
        (backup_id, job), = jobs.running.items()
        running = api(customer, "backups_running")["result"]
        assert running[0]["backupid"] == backup_id and running[0]["sourcepath"] == str(top)
        assert set(running[0]) >= {"aborting", "backupid", "blocknumber", "blocksize", "bytesprocessed", "closed",
                                   "eccmap", "eofstate", "pipe", "progress", "reading", "sourcepath",
                                   "terminating", "totalsize", "workblocks"}
        state = yield within(job.finished, WAIT, reactor)
        assert state == "DONE", job.error
    finally:
        motion.send_pieces = real_send  # type: ignore[method-assign]
    catalog = service(customer, BackupDbService).catalog
    _item, version = catalog.version(backup_id)
    assert version.complete and version.blocks >= 6 and version.ecc == "ecc/4x4"
    data_acks = [a for a in acks if not a[0].startswith(CATALOG_PATH_ID)]
    assert len(data_acks) == 8 * version.blocks
    data_packets = [names for names in packets if not names[0].startswith(CATALOG_PATH_ID)]
    # A supplier's Data and Parity of two consecutive blocks share a packet; an odd last block goes alone.
    assert len(data_packets) == 4 * -(-version.blocks // BLOCKS_PER_PACKET)
    for names in data_packets:
        ids = [parse_piece_id(name) for name in names]
        first = ids[0].block
        assert [(i.block - first, i.supplier, i.kind) for i in ids] == [
            (b, ids[0].supplier, kind) for b in range(len(ids) // 2) for kind in PieceKind]
        assert len(ids) == 2 * BLOCKS_PER_PACKET or first == version.blocks - 1
    assert all(visible == 0 for _piece, visible in data_acks), "visible before every piece was acknowledged"
    listed = api(customer, "backups_id_list")["result"]
    assert [row["backupid"] for row in listed] == [backup_id] and listed[0]["path"] == str(top)
    listing = service(customer, ListFilesService)
    yield listing.refresh()
    for position, node in enumerate(suppliers_of(grid)):
        held = {p for p in stored(node, customer) if p.startswith(backup_id + "/")}
        assert held == version_pieces(backup_id, version.blocks, position), f"position {position}"
        reported = listing.held(position)
        assert reported is not None and held <= set(reported)
        assert all(parse_piece_id(p).supplier == position for p in held)
    assert api(customer, "backups_running")["result"] == []


@pytest_twisted.inlineCallbacks
def test_catalog_copy_is_on_every_supplier_and_opens_with_the_node_key_only(grid: list[Node]) -> Any:
    customer = grid[CUSTOMER]
    db = service(customer, BackupDbService)
    assert db.copier is not None
    done = yield within(db.copier.upload_now(), WAIT, reactor)
    assert done is True, db.copier.last_error
    version = db.copier.last_version
    assert version is not None
    for position, node in enumerate(suppliers_of(grid)):
        copies = [p for p in stored(node, customer) if p.startswith(CATALOG_PATH_ID + "/")]
        assert f"{CATALOG_PATH_ID}/{version}/0-{position}-Data" in copies
    fetched = yield within(fetch_catalog_copy(customer), WAIT, reactor)
    assert fetched.export_bytes() == db.catalog.export_bytes()
    holder = suppliers_of(grid)[0]
    store = service(holder, SupplierService).store
    assert store is not None
    blob = yield store.read_piece(idurl(customer), f"{CATALOG_PATH_ID}/{version}/0-0-Data")
    assert b"Docs" not in blob and b"multi.bin" not in blob
    with pytest.raises(CatalogCopyError):
        open_catalog(blob, PrivateKey.generate(2048), version)
    assert customer.key is not None
    assert open_catalog(blob, customer.key, version).export_bytes() == db.catalog.export_bytes()


@pytest_twisted.inlineCallbacks
def test_bad_input_is_an_error_and_leaves_the_catalog_alone(grid: list[Node], tmp_path: Path) -> Any:
    customer = grid[CUSTOMER]
    catalog = service(customer, BackupDbService).catalog
    before = catalog.export_bytes()
    unreadable = tmp_path / "secret.txt"
    unreadable.write_text("x")
    unreadable.chmod(0)
    calls: list[tuple[str, tuple[Any, ...]]] = [
        ("backup_start_id", ("not/an/id",)), ("backup_start_id", ("777",)), ("backup_start_id", (None,)),
        ("backup_start_path", (str(tmp_path / "missing"),)), ("backup_start_path", ("relative/path",)),
        ("backup_delete_id", ("0/x",)), ("backup_delete_id", ("777/F20200101120000PM",)),
        ("backup_delete_path", (str(tmp_path / "missing"),)), ("backup_abort_running", ("nope",)),
        ("backup_cancel_pending", ("55",)), ("backup_delete_local", ("../..",)),
    ]
    if os.geteuid() != 0:
        calls.append(("backup_start_path", (str(unreadable),)))
    for method, args in calls:
        answer = yield api(customer, method, *args)
        assert answer["status"] == "ERROR" and answer["errors"][0], (method, args, answer)
        assert "failed:" not in answer["errors"][0], (method, answer)  # an expected error, not a crash
    assert catalog.export_bytes() == before


@pytest_twisted.inlineCallbacks
def test_abort_in_the_middle_leaves_no_half_version(grid: list[Node], tmp_path: Path) -> Any:
    customer = grid[CUSTOMER]
    big = tmp_path / "big.bin"
    big.write_bytes(os.urandom(80 * BLOCK))
    answer, backup_id, job = yield start_backup(customer, big)
    yield wait_until(reactor, lambda: job.blocks >= 3, WAIT, "a few blocks sent")
    aborted = yield within(api(customer, "backup_abort_running", backup_id), WAIT, reactor)
    assert aborted == {"status": "OK", "result": f"backup {backup_id} aborted"}
    catalog = service(customer, BackupDbService).catalog
    assert catalog.item(answer["id"]).versions == {}
    assert backup_id not in [r["backupid"] for r in api(customer, "backups_id_list")["result"]]
    assert api(customer, "backups_running")["result"] == []
    yield wait_until(reactor, lambda: not any(p.startswith(backup_id + "/") for n in suppliers_of(grid)
                                             for p in stored(n, customer)), WAIT, "partial pieces deleted")


@pytest_twisted.inlineCallbacks
def test_local_copies_are_kept_and_deleted_locally(grid: list[Node], tmp_path: Path) -> Any:
    customer = grid[CUSTOMER]
    source = tmp_path / "kept.bin"
    source.write_bytes(os.urandom(2 * BLOCK))
    with local_copies(customer):
        answer, backup_id = yield backed_up(customer, source)
    _item, version = service(customer, BackupDbService).catalog.version(backup_id)
    folder = customer.home.backups.joinpath(*backup_id.split("/"))
    assert len(list(folder.iterdir())) == 8 * version.blocks
    removed = yield api(customer, "backup_delete_local", backup_id)
    assert removed["status"] == "OK" and removed["result"].startswith(f"{8 * version.blocks} files were removed")
    assert not folder.exists()
    assert backup_id in [r["backupid"] for r in api(customer, "backups_id_list")["result"]], "remote copy stays"
    gone = yield api(customer, "backup_delete_id", answer["id"])
    assert gone == {"status": "OK", "result": f"item {answer['id']} was deleted from remote peers"}


@pytest_twisted.inlineCallbacks
def test_backups_update_resends_lost_pieces_from_local_copies_a_block_per_packet(
        grid: list[Node], tmp_path: Path) -> Any:
    customer = grid[CUSTOMER]
    motion = service(customer, DataMotionService).motion
    assert motion is not None
    real_send = motion.send_pieces
    packets: list[tuple[int, list[str]]] = []

    def watching(position: int, pieces: Sequence[tuple[str, Buffer]]) -> Deferred[None]:
        packets.append((position, [piece_id for piece_id, _data in pieces]))
        return real_send(position, pieces)

    source = tmp_path / "lost.bin"
    source.write_bytes(os.urandom(3 * BLOCK))
    with local_copies(customer):
        answer, backup_id = yield backed_up(customer, source)
        supplier = suppliers_of(grid)[2]
        lost = [make_piece_id(backup_id, 0, 2, PieceKind.DATA), make_piece_id(backup_id, 0, 2, PieceKind.PARITY),
                make_piece_id(backup_id, 1, 2, PieceKind.PARITY)]
        store = service(supplier, SupplierService).store
        assert store is not None
        yield store.delete_pieces(idurl(customer), lost)
        assert not set(lost) & set(stored(supplier, customer))
        monitor = backups(customer).monitor
        assert monitor is not None
        motion.send_pieces = watching  # type: ignore[method-assign]
        try:
            assert api(customer, "backups_update") == {"status": "OK", "result": "the main loop has been restarted"}
            yield wait_until(reactor, lambda: set(lost) <= set(stored(supplier, customer))
                             and monitor.last_report.get("resent") == 3, WAIT, "lost pieces re-sent")
        finally:
            motion.send_pieces = real_send  # type: ignore[method-assign]
        assert sorted(packets) == [(2, lost[:2]), (2, lost[2:])]  # a block's pieces travel together
        assert monitor.last_report["missing"] == 3
        for piece_id in lost:
            held = yield store.read_piece(idurl(customer), piece_id)
            assert held == disk.read_piece(customer.home.backups, piece_id)
    gone = yield api(customer, "backup_delete_id", answer["id"])
    assert gone["status"] == "OK", gone


@pytest_twisted.inlineCallbacks
def test_backups_update_has_pieces_lost_by_a_hired_supplier_rebuilt_from_the_others(
        grid: list[Node], tmp_path: Path) -> Any:
    """Without local copies the monitor can only ask the rebuilder, which regenerates the
    pieces from the other suppliers' shares: byte for byte the pieces that were lost."""
    customer = grid[CUSTOMER]
    source = tmp_path / "damaged.bin"
    source.write_bytes(os.urandom(3 * BLOCK))
    answer, backup_id = yield backed_up(customer, source)
    rebuilder = service(customer, RebuildingService).rebuilder
    assert rebuilder is not None

    def counted() -> bool:  # a pass saw the version whole, so only backups_update starts the next one
        versions = [v for item in api(customer, "backups_list")["result"] if item["id"] == answer["id"]
                    for v in item["versions"]]
        return rebuilder.state == "READY" and bool(versions) and set(versions[0].get("redundancy") or [0]) == {8}

    yield wait_until(reactor, counted, WAIT, "the new version counted whole")
    supplier = suppliers_of(grid)[1]
    store = service(supplier, SupplierService).store
    assert store is not None
    lost = [make_piece_id(backup_id, 0, 1, PieceKind.DATA), make_piece_id(backup_id, 2, 1, PieceKind.PARITY)]
    originals = []
    for piece_id in lost:
        originals.append((yield store.read_piece(idurl(customer), piece_id)))
    yield store.delete_pieces(idurl(customer), lost)
    monitor = backups(customer).monitor
    assert monitor is not None
    assert api(customer, "backups_update")["status"] == "OK"
    yield wait_until(reactor, lambda: set(lost) <= set(stored(supplier, customer)), WAIT, "lost pieces rebuilt")
    assert monitor.last_report["missing"] == 2 and monitor.last_report["resent"] == 0
    for piece_id, original in zip(lost, originals, strict=True):
        rebuilt = yield store.read_piece(idurl(customer), piece_id)
        assert rebuilt == original
    gone = yield api(customer, "backup_delete_id", answer["id"])
    assert gone["status"] == "OK", gone


@pytest_twisted.inlineCallbacks
def test_max_copies_and_delete_free_supplier_space(grid: list[Node], tmp_path: Path) -> Any:
    customer = grid[CUSTOMER]
    customer.config.set("services/backups/max-copies", 1)
    small = tmp_path / "small.txt"
    small.write_text("first")
    versions = []
    for text in ("first", "second"):
        small.write_text(text)
        answer, backup_id = yield backed_up(customer, small)
        versions.append(backup_id)
    path_id = answer["id"]
    item = service(customer, BackupDbService).catalog.item(path_id)
    assert [f"{path_id}/{v}" for v in item.versions] == [versions[1]]
    yield wait_until(reactor, lambda: not any(p.startswith(versions[0] + "/") for n in suppliers_of(grid)
                                             for p in stored(n, customer)), WAIT, "older version deleted")
    used_before = [service(n, SupplierService).store.used(idurl(customer))  # type: ignore[union-attr]
                   for n in suppliers_of(grid)]
    deleted = yield api(customer, "backup_delete_id", versions[1])
    assert deleted == {"status": "OK", "result": f"version {versions[1]} was deleted from remote peers"}
    for position, node in enumerate(suppliers_of(grid)):
        assert not any(p.startswith(versions[1] + "/") for p in stored(node, customer))
        assert service(node, SupplierService).store.used(idurl(customer)) < used_before[position]  # type: ignore
    gone = yield api(customer, "backup_delete_path", str(small))
    assert gone == {"status": "OK", "result": f"item {path_id} was deleted from remote peers"}
    assert service(customer, BackupDbService).catalog.get(path_id) is None


@pytest_twisted.inlineCallbacks
def test_stopping_copies_a_changed_catalog_to_the_suppliers_first(grid: list[Node], tmp_path: Path) -> Any:
    """The copier looks only every few seconds: a daemon stopped right after a change
    (a backup that just finished) must not leave the suppliers an older copy, which a
    disaster recovery would restore."""
    customer = grid[CUSTOMER]
    db = service(customer, BackupDbService)
    assert db.copier is not None
    done = yield within(db.copier.upload_now(), WAIT, reactor)
    assert done is True, db.copier.last_error
    db.copier.stop()  # the periodic check cannot copy what comes next
    (tmp_path / "late").mkdir()
    added = yield api(customer, "backup_dir_add", str(tmp_path / "late"))
    assert added["status"] == "OK", added
    expected = db.catalog.export_bytes()
    yield within(customer.services.stop_service("service_backup_db"), WAIT, reactor)
    fetched = yield within(fetch_catalog_copy(customer), WAIT, reactor)
    assert fetched.export_bytes() == expected
    yield within(customer.services.start_service("service_backups"), WAIT, reactor)
