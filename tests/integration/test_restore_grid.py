"""Backup, restore and rebuild on a six-node in-process grid (ecc/4x4, 64 KB blocks).

node0 is the seed (identity server, DHT seed) and a supplier, node1 the customer,
node2..node5 suppliers: four are hired, one is the spare a replacement goes to. The
tests run in file order on one grid, each from where the last one left it: a backup
restored byte for byte elsewhere; a corrupt piece on a supplier's disk bypassed; bad
input refused; a supplier replaced and rebuilt, then two *other* suppliers stopped and
the version still restored; finally too few pieces, which fails naming them and leaves
the user's files alone. No supplier is fired on its own (the offline limit is long).
"""

from __future__ import annotations

from collections.abc import Generator
from pathlib import Path
from typing import Any

import pytest
import pytest_twisted
from twisted.internet import reactor

from bitdust.node import Node
from bitdust.services.employer import EmployerService
from bitdust.services.rebuilding import RebuildingService
from bitdust.services.restores import RestoresService
from bitdust.services.supplier import SupplierService
from bitdust.storage.ids import piece_path
from tests.integration.grid import announce_suppliers, api, idurl, market_grid, ok, service, wait_until
from tests.integration.test_customer_grid import all_online, by_idurl, customer_of, hired
from tests.restore_helpers import make_tree, snapshot

COUNT = 6
CUSTOMER = 1
BLOCK = 64 * 1024
WAIT = 30.0
SHARE = 2 * 1024 * 1024


@pytest.fixture(scope="module")
def grid(tmp_path_factory: pytest.TempPathFactory) -> Generator[list[Node], None, None]:
    yield from market_grid(reactor, tmp_path_factory.mktemp("restore"), COUNT, CUSTOMER, SHARE, BLOCK)


def restore_row(customer: Node, backup_id: str) -> dict[str, Any] | None:
    rows = ok(api(customer, "restores_running"))
    return next((row for row in rows if row["backupid"] == backup_id), None)


@pytest_twisted.inlineCallbacks
def restored(customer: Node, what: str, dest: str | None, backup_id: str) -> Any:
    """Run restore_single and wait for the job to end; the job's last row."""
    answer = yield api(customer, "restore_single", what, dest) if dest else api(customer, "restore_single", what)
    started = ok(answer)
    assert started == f"downloading of version {backup_id} has been started to " \
                      f"{(dest or str(Path(shared['source']).parent)).rstrip('/')}/"
    yield wait_until(reactor, lambda: (restore_row(customer, backup_id) or {}).get("done") is True, WAIT,
                     f"restore of {backup_id} ended")
    return restore_row(customer, backup_id)


shared: dict[str, Any] = {}


def supplier_node(grid: list[Node], position: int) -> Node:
    return by_idurl(grid, hired(grid[CUSTOMER])[position])


def rebuilder_settled(customer: Node) -> bool:
    rebuilder = service(customer, RebuildingService).rebuilder
    return rebuilder is not None and rebuilder.state == "READY" and not rebuilder.unrebuilt()


def redundancy(customer: Node, path_id: str) -> list[int]:
    items = {item["id"]: item for item in ok(api(customer, "backups_list"))}
    return list(items[path_id]["versions"][-1]["redundancy"])


@pytest_twisted.inlineCallbacks
def stop_two_then_restore(grid: list[Node], positions: list[int], dest: Path) -> Any:
    """Stop the suppliers at two ``positions``; the version must still restore to ``dest``."""
    customer = grid[CUSTOMER]
    for position in positions:
        yield supplier_node(grid, position).stop()
    yield wait_until(reactor, lambda: [r["status"] for r in ok(api(customer, "suppliers_list"))].count("offline") == 2,
                     WAIT, "two suppliers offline")
    row = yield restored(customer, shared["path_id"], str(dest), shared["backup_id"])
    assert row["state"] == "DONE", row
    assert snapshot(dest / "Docs") == shared["tree"]


@pytest_twisted.inlineCallbacks
def test_backup_then_restore_byte_for_byte_elsewhere(grid: list[Node], tmp_path_factory: Any) -> Any:
    customer = grid[CUSTOMER]
    yield announce_suppliers(reactor, grid, WAIT)
    yield customer.services.start_service("service_employer")
    yield wait_until(reactor, lambda: all_online(customer), WAIT, "4 suppliers online")
    assert customer.services.is_on("service_restores") and customer.services.is_on("service_rebuilding")
    fire_hire = service(customer, EmployerService).fire_hire
    rebuilder = service(customer, RebuildingService).rebuilder
    assert fire_hire is not None and rebuilder is not None and fire_hire.unrebuilt == rebuilder.unrebuilt

    work = tmp_path_factory.mktemp("work")
    top = make_tree(work / "src", BLOCK)
    shared["source"], shared["tree"] = str(top), snapshot(top)
    started = yield api(customer, "backup_start_path", str(top))
    path_id = ok(started) and started["id"]
    yield wait_until(reactor, lambda: any(r["backupid"].startswith(path_id + "/")
                                          for r in ok(api(customer, "backups_id_list"))), WAIT, "backup complete")
    backup_id = next(r["backupid"] for r in ok(api(customer, "backups_id_list")) if r["backupid"].startswith(path_id))
    shared["path_id"], shared["backup_id"] = path_id, backup_id

    dest = work / "restored"
    row = yield restored(customer, path_id, str(dest), backup_id)
    assert row["state"] == "DONE" and row["errors"] == [] and row["badpieces"] == 0, row
    assert {k: row[k] for k in ("aborted", "path_id", "eccmap", "creatorid")} == {
        "aborted": False, "path_id": path_id, "eccmap": "ecc/4x4", "creatorid": idurl(customer)}
    assert row["blocknumber"] == row["blocks"] >= 5 and row["bytesprocessed"] > 0
    assert snapshot(dest / "Docs") == shared["tree"]


@pytest_twisted.inlineCallbacks
def test_a_corrupt_piece_on_a_suppliers_disk_is_bypassed_and_counted(grid: list[Node], tmp_path_factory: Any) -> Any:
    customer = grid[CUSTOMER]
    holder = supplier_node(grid, 2)
    store = service(holder, SupplierService).store
    assert store is not None
    piece = piece_path(store.folder(idurl(customer)), f"{shared['backup_id']}/1-2-Data")
    data = piece.read_bytes()
    piece.write_bytes(bytes(b ^ 0xA5 for b in data[:64]) + data[64:])
    dest = tmp_path_factory.mktemp("work") / "second"
    row = yield restored(customer, shared["backup_id"], str(dest), shared["backup_id"])
    assert row["state"] == "DONE" and row["badpieces"] == 1, row
    assert snapshot(dest / "Docs") == shared["tree"]
    piece.write_bytes(data)


@pytest_twisted.inlineCallbacks
def test_two_of_four_suppliers_stopped_it_still_restores(grid: list[Node], tmp_path_factory: Any) -> Any:
    customer = grid[CUSTOMER]
    before = hired(customer)
    victims = [p for p, who in enumerate(before) if who != idurl(grid[0])][:2]  # node0 serves identities
    yield stop_two_then_restore(grid, victims, tmp_path_factory.mktemp("work") / "offline")
    for position in victims:  # back again, for the replacement test
        index = grid.index(by_idurl(grid, before[position]))
        again = Node(grid[index].home.root, reactor=reactor)
        grid[index] = again
        yield again.start()
    customer_of(customer).ping_all()
    yield wait_until(reactor, lambda: all_online(customer), WAIT, "the stopped suppliers back online")
    assert hired(customer) == before


@pytest_twisted.inlineCallbacks
def test_bad_input_is_refused_and_changes_nothing(grid: list[Node], tmp_path_factory: Any) -> Any:
    customer = grid[CUSTOMER]
    blocker = tmp_path_factory.mktemp("work") / "a-file"
    blocker.write_bytes(b"x")
    cases = [("77", None, "item 77 was not found"), ("0/0/F2020", None, "neither a path ID"),
             (f"{shared['path_id']}/F20200101120000PM", None, "was not found"),
             ("/no/such/path", None, "not in the catalog"),
             (shared["path_id"], str(blocker / "sub"), f"cannot restore into {blocker / 'sub'}"),
             (shared["path_id"], "relative/dest", "bad destination")]
    for what, dest, words in cases:
        answer = yield api(customer, "restore_single", what, dest)
        assert answer["status"] == "ERROR" and words in answer["errors"][0], (what, answer)
    assert api(customer, "restore_abort", "0/F20200101120000PM")["errors"] == [
        "restore_abort: no restore of 0/F20200101120000PM is running"]
    assert blocker.read_bytes() == b"x"
    assert [r["backupid"] for r in ok(api(customer, "backups_id_list"))] == [shared["backup_id"]]


@pytest_twisted.inlineCallbacks
def test_replaced_supplier_is_rebuilt_then_two_others_stop_and_it_still_restores(
        grid: list[Node], tmp_path_factory: Any) -> Any:
    customer = grid[CUSTOMER]
    before = hired(customer)
    spare = next(idurl(n) for i, n in enumerate(grid) if i != CUSTOMER and idurl(n) not in before)
    position = before.index(idurl(grid[0])) if idurl(grid[0]) in before else 0
    yield wait_until(reactor, lambda: rebuilder_settled(customer), WAIT, "rebuilder idle")
    whole = [8] * len(redundancy(customer, shared["path_id"]))
    assert redundancy(customer, shared["path_id"]) == whole
    answer = yield api(customer, "supplier_change", position, spare)
    assert ok(answer) == f"supplier {before[position]} will be replaced by {spare}"
    yield wait_until(reactor, lambda: rebuilder_settled(customer) and redundancy(customer, shared["path_id"]) == whole,
                     WAIT, "the new supplier rebuilt")
    new_store = service(by_idurl(grid, spare), SupplierService).store
    assert new_store is not None
    held = [p for p in new_store.list_pieces(idurl(customer)) if p.startswith(shared["backup_id"] + "/")]
    assert len(held) == 2 * len(whole) and all(f"-{position}-" in p for p in held)

    others = [p for p in range(4) if p != position][:2]
    yield stop_two_then_restore(grid, others, tmp_path_factory.mktemp("work") / "third")
    shared["stopped"] = others


@pytest_twisted.inlineCallbacks
def test_too_few_pieces_fail_naming_them_and_leave_the_users_files(grid: list[Node]) -> Any:
    customer = grid[CUSTOMER]
    service(customer, RestoresService).running_jobs("test").timeout = 2.0  # the stopped ones only time out
    alive = next(p for p in range(4) if p not in shared["stopped"])
    holder = supplier_node(grid, alive)
    store = service(holder, SupplierService).store
    assert store is not None
    yield store.delete_pieces(idurl(customer), [f"{shared['backup_id']}/0-{alive}-Data",
                                                f"{shared['backup_id']}/0-{alive}-Parity"])
    users = Path(shared["source"]) / "a" / "small.txt"
    users.write_bytes(b"edited since the backup")
    row = yield restored(customer, shared["path_id"], None, shared["backup_id"])
    assert row["state"] == "FAILED", row
    error = row["errors"][0]
    assert f"block 0 of {row['blocks']} cannot be rebuilt" in error, error
    assert f"0-{alive}-Data" in error and "not-found" in error, error
    assert users.read_bytes() == b"edited since the backup"
    assert not list(Path(shared["source"]).rglob(".bitdust-*")), "no temporary file is left behind"
