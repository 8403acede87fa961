"""Changing ``suppliers-number`` on an eight-node in-process grid: stored versions are
re-encoded to the new map and nothing is lost (the original BitDust wiped them here).

node0 is the seed (identity server, DHT seed) and not a supplier here (every supplier
may be stopped), node1 the customer, node2..node7 suppliers. The tests run in file order on one grid: a backup with 4
suppliers; 4 -> 2 with a restore running meanwhile, the version switched to ``ecc/2x2``,
the two retained suppliers released only then, stopped, and the version restored byte
for byte; then 2 -> 4: two new suppliers hired, the customer restarted once the
re-encoding started (it goes on from the catalog), the version on ``ecc/4x4``, two of the four stopped, and
it still restores; deleting it (all four back) deletes the re-encoded pieces too.
"""

from __future__ import annotations

from collections.abc import Generator
from pathlib import Path
from typing import Any

import pytest
import pytest_twisted
from twisted.internet import reactor

from bitdust.node import Node
from bitdust.services.backups import BackupsService
from bitdust.services.supplier import SupplierService
from bitdust.storage.ids import REENCODED_PATH_ID
from tests.integration.grid import announce_suppliers, api, idurl, market_grid, ok, service, wait_until
from tests.integration.test_customer_grid import by_idurl, customer_of
from tests.restore_helpers import make_tree, snapshot

COUNT = 8
CUSTOMER = 1
BLOCK = 64 * 1024
WAIT = 60.0
SHARE = 2 * 1024 * 1024

shared: dict[str, Any] = {}


@pytest.fixture(scope="module")
def grid(tmp_path_factory: pytest.TempPathFactory) -> Generator[list[Node], None, None]:
    yield from market_grid(reactor, tmp_path_factory.mktemp("reencode"), COUNT, CUSTOMER, SHARE, BLOCK)


def online(node: Node, count: int) -> bool:
    rows = ok(api(node, "suppliers_list"))
    return len(rows) == count and all(r["status"] == "online" and r["idurl"] for r in rows)


def version_row(customer: Node) -> dict[str, Any]:
    items = {item["id"]: item for item in ok(api(customer, "backups_list"))}
    rows = items[shared["path_id"]]["versions"]
    assert [r["version"] for r in rows] == [shared["backup_id"].rpartition("/")[2]], rows
    return dict(rows[0])


def blocks_done(customer: Node) -> int:
    """Blocks of the re-encoding under way with every new piece acknowledged (0 if none)."""
    under_way = version_row(customer)["reencoding"]  # like "ecc/4x4 2/6"
    return int(under_way.split(" ")[1].split("/")[0]) if under_way else 0


def switched(customer: Node, ecc: str) -> bool:
    """The version is on ``ecc``, nothing is under way, and the re-encoder is idle."""
    reencoder = service(customer, BackupsService).reencoder
    row = version_row(customer)
    return row["eccmap"] == ecc and row["reencoding"] == "" and reencoder is not None and not reencoder.has_work()


def held_by(grid: list[Node], who: str, customer: Node) -> list[str]:
    store = service(by_idurl(grid, who), SupplierService).store
    assert store is not None
    return [p for p in store.list_pieces(idurl(customer)) if not p.startswith("9" * 12 + "/")]  # not the catalog


def restore_row(customer: Node, backup_id: str) -> dict[str, Any] | None:
    return next((r for r in ok(api(customer, "restores_running")) if r["backupid"] == backup_id), None)


@pytest_twisted.inlineCallbacks
def restore_and_check(customer: Node, dest: Path) -> Any:
    ok((yield api(customer, "restore_single", shared["backup_id"], str(dest))))
    yield wait_until(reactor, lambda: (restore_row(customer, shared["backup_id"]) or {}).get("done") is True, WAIT,
                     "restore ended")
    row = restore_row(customer, shared["backup_id"])
    assert row is not None and row["state"] == "DONE", row
    assert snapshot(dest / "Docs") == shared["tree"]
    return row


@pytest_twisted.inlineCallbacks
def test_backup_with_four_suppliers(grid: list[Node], tmp_path_factory: pytest.TempPathFactory) -> Any:
    customer = grid[CUSTOMER]
    yield grid[0].services.stop_service("service_supplier")
    donors = yield announce_suppliers(reactor, grid, WAIT)
    assert len(donors) == 6
    yield customer.services.start_service("service_employer")
    yield wait_until(reactor, lambda: online(customer, 4), WAIT, "4 suppliers online")
    work = tmp_path_factory.mktemp("work")
    top = make_tree(work / "src", BLOCK)
    shared["source"], shared["tree"], shared["work"] = str(top), snapshot(top), work
    started = yield api(customer, "backup_start_path", str(top))
    path_id = ok(started) and started["id"]
    yield wait_until(reactor, lambda: any(r["backupid"].startswith(path_id + "/")
                                          for r in ok(api(customer, "backups_id_list"))), WAIT, "backup complete")
    shared["path_id"] = path_id
    shared["backup_id"] = next(r["backupid"] for r in ok(api(customer, "backups_id_list")))
    row = version_row(customer)
    assert row["eccmap"] == "ecc/4x4" and row["reencoding"] == "" and row["blocks"] >= 5


@pytest_twisted.inlineCallbacks
def test_four_to_two_reencodes_then_releases_and_the_released_can_die(grid: list[Node]) -> Any:
    customer = grid[CUSTOMER]
    before = [r["idurl"] for r in ok(api(customer, "suppliers_list"))]
    ok((yield api(customer, "config_set", "services/customer/suppliers-number", "2")))
    suppliers = customer_of(customer).running_list()
    assert suppliers.size == 2 and [s.idurl for s in suppliers.retained()] == before[2:], "kept, not released"
    # A restore started now reads whichever map the catalog names; it must succeed either way.
    yield restore_and_check(customer, shared["work"] / "during")
    yield wait_until(reactor, lambda: switched(customer, "ecc/2x2"), WAIT, "the version re-encoded to ecc/2x2")
    yield wait_until(reactor, lambda: customer_of(customer).running_list().span == 2, WAIT, "retained released")
    assert [r["idurl"] for r in ok(api(customer, "suppliers_list"))] == before[:2]
    new_pieces = [p for who in before[:2] for p in held_by(grid, who, customer)]
    row = version_row(customer)
    assert len(new_pieces) == 4 * row["blocks"], "2 per block on each of the 2 suppliers, and no old piece"
    assert all(p.startswith(f"{REENCODED_PATH_ID}/1/{shared['backup_id']}/") for p in new_pieces)
    yield wait_until(reactor, lambda: version_row(customer)["redundancy"] == [4] * row["blocks"], WAIT,
                     "redundancy counted on the new map")
    for who in before[2:]:
        assert held_by(grid, who, customer) == [], "a released supplier dropped our data"
        yield by_idurl(grid, who).stop()
    shared["dead"] = before[2:]
    yield restore_and_check(customer, shared["work"] / "after-shrink")


@pytest_twisted.inlineCallbacks
def test_two_to_four_survives_a_restart_and_loses_two_suppliers(grid: list[Node]) -> Any:
    customer = grid[CUSTOMER]
    ok((yield api(customer, "config_set", "services/customer/suppliers-number", "4")))
    yield wait_until(reactor, lambda: blocks_done(customer) > 0 or switched(customer, "ecc/4x4"),
                     WAIT, "2 new suppliers hired and the re-encoding under way")
    before = blocks_done(customer)
    yield customer.stop()  # most likely in the middle of the re-encoding: it goes on after the restart
    again = Node(customer.home.root, reactor=reactor)
    grid[CUSTOMER] = again  # stopped by the fixture at the end
    yield again.start()
    assert customer_of(again).running_list().size == 4
    if before and version_row(again)["eccmap"] != "ecc/4x4":
        # Caught in the middle (the usual case; the blocks in flight may also have ended
        # it while stopping): the progress came back from the catalog.
        assert blocks_done(again) >= before, (before, version_row(again))
    yield wait_until(reactor, lambda: online(again, 4), WAIT, "the 4 suppliers online after the restart")
    yield wait_until(reactor, lambda: switched(again, "ecc/4x4"), WAIT, "the version re-encoded to ecc/4x4")
    hired = [r["idurl"] for r in ok(api(again, "suppliers_list"))]
    assert not set(hired) & set(shared["dead"])
    blocks = version_row(again)["blocks"]
    for who in hired:
        held = held_by(grid, who, again)
        assert len(held) == 2 * blocks and all(p.startswith(f"{REENCODED_PATH_ID}/2/") for p in held), held
    for who in hired[1:3]:
        yield by_idurl(grid, who).stop()
    yield wait_until(reactor, lambda: [r["status"] for r in ok(api(again, "suppliers_list"))].count("offline") == 2,
                     WAIT, "two suppliers offline")
    yield restore_and_check(again, shared["work"] / "after-grow")
    for who in hired[1:3]:  # back again, so that the deletion below is answered by all four at once
        index = grid.index(by_idurl(grid, who))
        grid[index] = Node(grid[index].home.root, reactor=reactor)
        yield grid[index].start()
    customer_of(again).ping_all()
    yield wait_until(reactor, lambda: online(again, 4), WAIT, "the stopped suppliers back online")
    answer = yield api(again, "backup_delete_id", shared["backup_id"])
    assert ok(answer) == f"version {shared['backup_id']} was deleted from remote peers", answer
    for who in hired:  # the re-encoded pieces are gone too
        assert held_by(grid, who, again) == []
