"""Rebuild without a network: planning, one block's rebuild, and the backup_rebuilder
machine over a fake environment, with its actions recorded."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import pytest
from twisted.internet.defer import Deferred, succeed
from twisted.internet.task import Clock

from bitdust.crypto.keys import PrivateKey
from bitdust.storage.customer.connector import CONNECTED
from bitdust.storage.customer.fire_hire import PositionView, may_replace
from bitdust.storage.ecc import EccMap
from bitdust.storage.ids import make_piece_id
from bitdust.storage.pipeline.block_crypto import VersionKey
from bitdust.storage.rebuild.block_job import PieceMover, rebuild_block
from bitdust.storage.rebuild.plan import VersionInfo, make_plan
from bitdust.storage.rebuild.rebuilder import BackupRebuilder
from bitdust.storage.restore.share_fetch import SupplierHealth
from tests.restore_helpers import FakeMotion, encode_pieces, make_tree, record_actions, run_now, spread

BLOCK = 64 * 1024
ECC = EccMap(4)
BACKUP_ID = "0/F20240101120000PM"


@pytest.fixture(scope="module")
def owner() -> PrivateKey:
    return PrivateKey.generate(2048)


@pytest.fixture
def backup(tmp_path: Path, owner: PrivateKey) -> tuple[dict[str, bytes], VersionKey, VersionInfo]:
    top = make_tree(tmp_path / "src", BLOCK)
    pieces, version_key, blocks = encode_pieces(top, BACKUP_ID, ECC, owner.public_key(), BLOCK)
    return pieces, version_key, VersionInfo(BACKUP_ID, ECC.name, blocks, version_key.wrapped)


def listing(stores: Mapping[int, Mapping[str, bytes]]) -> dict[int, dict[str, int] | None]:
    return {p: {pid: len(d) for pid, d in held.items()} for p, held in stores.items()}


def test_plan_counts_redundancy_and_missing_shares(backup) -> None:
    pieces, _key, info = backup
    stores = spread(pieces, 4)
    stores[2] = {}
    del stores[1][make_piece_id(BACKUP_ID, 0, 1, "Parity")]
    held: dict[int, dict[str, int] | None] = listing(stores)
    held[3] = None  # unknown: counts as nothing, planned for nothing
    held[0]["0/F20240101120000PM/0-3-Data"] = 10  # at the wrong position: does not count
    plan = make_plan([info], held, 4)
    assert plan.redundancy[BACKUP_ID][0] == 3 and plan.redundancy[BACKUP_ID][1:] == [4] * (info.blocks - 1)
    assert plan.positions == {1, 2}
    assert plan.work[0] == (info, 0, frozenset({2, 5, 6})) and plan.work[1] == (info, 1, frozenset({2, 6}))
    forced = make_plan([info], held, 4, forced={3})
    assert forced.positions == {1, 2, 3} and forced.shares == 2 * info.blocks * 2 + 1
    assert make_plan([info], held, 2).work == [], "versions of another map are not rebuilt here"


def test_rebuild_block_sends_the_missing_shares_and_heals_a_corrupt_one(backup) -> None:
    pieces, version_key, _info = backup
    stores = spread(pieces, 4)
    original = dict(stores[2])
    stores[2] = {}
    corrupt = make_piece_id(BACKUP_ID, 0, 0, "Data")
    stores[0][corrupt] = bytes(len(stores[0][corrupt]))
    motion = FakeMotion(stores)
    health = SupplierHealth()
    outcome = rebuild_block(motion, run_now, ECC, version_key.key, BACKUP_ID, 0, frozenset({2, 6}), health,
                            1.0).result
    assert outcome.ok and sorted(outcome.sent) == [0, 2, 6] and outcome.bad == 1
    assert sorted(motion.packets) == [(0, [corrupt]), (2, [make_piece_id(BACKUP_ID, 0, 2, "Data"),
                                                          make_piece_id(BACKUP_ID, 0, 2, "Parity")])], \
        "the new supplier gets its Data and Parity piece in one packet"
    assert stores[2] == {k: v for k, v in original.items() if k.startswith(f"{BACKUP_ID}/0-")}
    assert stores[0][corrupt] == pieces[corrupt], "the corrupt piece was made again"
    assert all("-2-" not in asked for asked in motion.asked), "the shares being rebuilt are never asked for"


def test_rebuild_block_with_too_few_pieces_reports_them(backup) -> None:
    pieces, version_key, _info = backup
    stores = spread(pieces, 4)
    stores[1], stores[2] = {}, {}
    motion = FakeMotion(stores)
    motion.dead.add(3)
    outcome = rebuild_block(motion, run_now, ECC, version_key.key, BACKUP_ID, 0, frozenset({1, 5}),
                            SupplierHealth(), 1.0).result
    assert not outcome.ok and "2 good pieces of the 4 needed" in outcome.errors[0]
    assert motion.sent == []


class FakeEnv:
    def __init__(self, stores: dict[int, dict[str, bytes]], info: VersionInfo, key: bytes) -> None:
        self.motion = FakeMotion(stores)
        self.info = info
        self.key = key
        self.redundancy: dict[str, list[int]] = {}
        self.refreshes = 0

    def versions(self) -> list[VersionInfo] | None:
        return [self.info]

    def catalog_revision(self) -> int | None:
        return 1

    def size(self) -> int:
        return 4

    def held(self, position: int) -> Mapping[str, int] | None:
        store = self.motion.stores.get(position)
        return {pid: len(d) for pid, d in store.items()} if store is not None else None

    def refresh(self) -> Deferred[None]:
        self.refreshes += 1
        return succeed(None)

    def mover(self) -> PieceMover | None:
        return self.motion

    def open_key(self, wrapped: bytes) -> bytes:
        return self.key

    def set_redundancy(self, redundancy: dict[str, list[int]]) -> None:
        self.redundancy = redundancy

    def online(self, position: int) -> bool:
        return position not in self.motion.dead

    def run(self, fn: Callable[[], Any]) -> Deferred[Any]:
        return run_now(fn)


def test_rebuilder_refills_a_replaced_position_then_settles(backup) -> None:
    pieces, version_key, info = backup
    env = FakeEnv(spread(pieces, 4), info, version_key.key)
    clock = Clock()
    rebuilder = BackupRebuilder(clock, None, env)
    actions = record_actions(rebuilder)
    rebuilder.event("init")
    assert rebuilder.state == "READY" and env.redundancy[BACKUP_ID] == [8] * info.blocks
    assert actions == ["refresh", "plan", "apply_plan", "settle"]
    wanted = dict(env.motion.stores[1])
    env.motion.stores[1] = {}  # the new supplier at position 1 holds nothing
    env.motion.dead.add(1)  # ... and is not reachable yet
    del actions[:]
    rebuilder.event("replaced", 1)
    assert rebuilder.state == "WAITING" and rebuilder.unrebuilt() == {1}, "failed sends keep it unrebuilt"
    views = [PositionView(p, f"http://x/{p}.xml", "OFFLINE" if p == 3 else CONNECTED, 0.0) for p in range(4)]
    assert may_replace(views, 2, set()) and not may_replace(views, 2, rebuilder.unrebuilt()), \
        "fire_hire may not fire a second supplier while the first one's pieces are missing"
    assert env.redundancy[BACKUP_ID] == [6] * info.blocks
    env.motion.dead.discard(1)
    clock.advance(30)  # timer-retry
    assert rebuilder.state == "READY" and rebuilder.unrebuilt() == set()
    assert env.motion.stores[1] == wanted and env.redundancy[BACKUP_ID] == [8] * info.blocks
    assert actions[:5] == ["mark_replaced", "refresh", "plan", "apply_plan", "start_work"]
    assert actions[-4:] == ["refresh", "plan", "apply_plan", "settle"]
    assert rebuilder.shares_sent == 2 * info.blocks


def test_rebuilder_keeps_a_position_unrebuilt_while_blocks_cannot_be_made(backup) -> None:
    pieces, version_key, info = backup
    stores = spread(pieces, 4)
    env = FakeEnv(stores, info, version_key.key)
    rebuilder = BackupRebuilder(Clock(), None, env)
    rebuilder.event("init")
    stores[0], stores[1] = {}, {}
    env.motion.dead.add(2)
    rebuilder.event("replaced", 0)
    assert rebuilder.state == "WAITING" and 0 in rebuilder.unrebuilt()
    assert "good pieces of the 4 needed" in rebuilder.errors[-1]
    rebuilder.event("shutdown")
    assert rebuilder.state == "CLOSED"


def test_backup_rebuilder_table_is_consistent() -> None:
    from bitdust.automats.automat import check_table

    assert check_table(BackupRebuilder) == []
