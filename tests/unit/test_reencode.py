"""Re-encoding without a network: the pure rules (:mod:`bitdust.storage.reencode.plan`),
the catalog's switch, the retained suppliers, and the re-encoder over a fake data motion
holding real pieces (made by the real BackupEncoder), with a Clock for time."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import pytest
from twisted.internet.defer import Deferred, fail, succeed
from twisted.internet.task import Clock

from bitdust.crypto.keys import PrivateKey
from bitdust.storage.catalog import Catalog, CatalogCorruptError, CatalogError, ItemType, LocalPath, Retired
from bitdust.storage.customer.suppliers import SupplierList
from bitdust.storage.ecc import EccMap
from bitdust.storage.ids import IdError, make_piece_id, parse_piece_id, storage_id
from bitdust.storage.motion.errors import PieceRefused
from bitdust.storage.rebuild.plan import VersionInfo
from bitdust.storage.rebuild.rebuilder import BackupRebuilder
from bitdust.storage.reencode.plan import (
    advance,
    delete_positions,
    may_switch,
    retired_work,
    stale_reencodings,
    versions_to_reencode,
    widest_needed,
)
from bitdust.storage.reencode.reencoder import Reencoder
from bitdust.storage.restore.verify import verify_block
from tests.restore_helpers import FakeMotion, encode_pieces, make_tree, run_now, spread

BLOCK = 64 * 1024
V1 = "F20240101120000PM"
V2 = "F20240102120000PM"


def idurl(name: str) -> str:
    return f"http://127.0.0.1:1/node_{name}.xml"


def catalog_with(versions: dict[str, tuple[str, int, bool]]) -> Catalog:
    """Item 0 (a file) with ``version -> (ecc, blocks, complete)``."""
    catalog = Catalog()
    catalog.map_path(LocalPath("/home/u/file.bin", ItemType.FILE, 10))
    for version, (ecc, blocks, complete) in versions.items():
        catalog.add_version("0", version, ecc, b"wrapped")
        if complete:
            catalog.mark_complete(f"0/{version}", blocks=blocks, size=1, source_size=1)
        else:
            catalog.update_version(f"0/{version}", blocks=blocks)
    return catalog


# -- names ----------------------------------------------------------------------------------

def test_storage_id_keeps_generation_zero_under_the_backup_id_and_others_apart() -> None:
    assert storage_id(f"0/1/{V1}", 0) == f"0/1/{V1}"
    where = storage_id(f"0/1/{V1}", 3)
    assert where == f"999999999998/3/0/1/{V1}"
    piece = parse_piece_id(make_piece_id(where, 7, 1, "Parity"))  # a valid piece ID for any supplier
    assert (piece.backup_id, piece.block, piece.supplier) == (where, 7, 1)
    with pytest.raises(IdError):
        storage_id(f"0/{V1}", -1)


# -- the pure rules -------------------------------------------------------------------------

def test_only_complete_versions_on_another_map_need_reencoding() -> None:
    catalog = catalog_with({V1: ("ecc/4x4", 3, True), V2: ("ecc/4x4", 2, False)})
    assert versions_to_reencode(catalog, "ecc/4x4") == []
    steps = versions_to_reencode(catalog, "ecc/2x2")
    assert [(s.backup_id, s.source, s.target, s.resume, s.abandon) for s in steps] == [
        (f"0/{V1}", "ecc/4x4", "ecc/2x2", 0, False)]
    assert widest_needed(catalog) == 4  # the in-progress version counts too: its job sends to 4


def test_a_resumed_reencoding_goes_on_and_one_to_another_map_is_abandoned() -> None:
    catalog = catalog_with({V1: ("ecc/4x4", 3, True)})
    catalog.begin_reencode(f"0/{V1}", "ecc/2x2")
    catalog.reencode_progress(f"0/{V1}", 2)
    assert versions_to_reencode(catalog, "ecc/2x2")[0].resume == 2
    assert stale_reencodings(catalog, "ecc/2x2") == []
    assert versions_to_reencode(catalog, "ecc/7x7")[0].abandon
    assert stale_reencodings(catalog, "ecc/7x7") == [f"0/{V1}"]
    assert stale_reencodings(catalog, "ecc/4x4") == [f"0/{V1}"]  # back to the old number: not needed
    assert widest_needed(catalog) == 4


def test_switch_rule_needs_every_block_acknowledged() -> None:
    catalog = catalog_with({V1: ("ecc/4x4", 3, True)})
    pending = catalog.begin_reencode(f"0/{V1}", "ecc/2x2")
    assert pending.generation == 1
    _item, version = catalog.version(f"0/{V1}")
    catalog.reencode_progress(f"0/{V1}", 2)
    assert not may_switch(version)
    with pytest.raises(CatalogError, match="only 2 of 3 blocks"):
        catalog.switch_reencoded(f"0/{V1}")
    catalog.reencode_progress(f"0/{V1}", 3)
    assert may_switch(version)
    old = catalog.switch_reencoded(f"0/{V1}")
    assert old == Retired("ecc/4x4", 0)
    assert (version.ecc, version.generation, version.reencode, version.retired) == ("ecc/2x2", 1, None, [old])
    assert version.storage_id("0") == storage_id(f"0/{V1}", 1)
    assert version.storage_ids("0") == [f"0/{V1}", storage_id(f"0/{V1}", 1)]  # what deleting it deletes
    assert widest_needed(catalog) == 2
    assert catalog.begin_reencode(f"0/{V1}", "ecc/4x4").generation == 2  # never reuses 0 or 1
    with pytest.raises(CatalogError, match="already being"):
        catalog.begin_reencode(f"0/{V1}", "ecc/7x7")


def test_refused_changes_leave_the_version_alone() -> None:
    catalog = catalog_with({V1: ("ecc/4x4", 3, True), V2: ("ecc/4x4", 2, False)})
    with pytest.raises(CatalogError, match="not complete"):
        catalog.begin_reencode(f"0/{V2}", "ecc/2x2")
    with pytest.raises(CatalogError, match="already coded"):
        catalog.begin_reencode(f"0/{V1}", "ecc/4x4")
    with pytest.raises(CatalogError, match="not being re-encoded"):
        catalog.switch_reencoded(f"0/{V1}")
    with pytest.raises(CatalogError):
        catalog.begin_reencode(f"0/{V1}", "ecc/3x3")
    assert catalog.abandon_reencode(f"0/{V1}") is None
    catalog.begin_reencode(f"0/{V1}", "ecc/2x2")
    assert catalog.abandon_reencode(f"0/{V1}") == Retired("ecc/2x2", 1)
    _item, version = catalog.version(f"0/{V1}")
    assert (version.ecc, version.generation) == ("ecc/4x4", 0)


def test_retired_pieces_wait_for_restores_and_released_positions_are_skipped() -> None:
    catalog = catalog_with({V1: ("ecc/4x4", 1, True)})
    catalog.begin_reencode(f"0/{V1}", "ecc/2x2")
    catalog.reencode_progress(f"0/{V1}", 1)
    catalog.switch_reencoded(f"0/{V1}")
    assert retired_work(catalog, {f"0/{V1}"}) == []
    assert retired_work(catalog, set()) == [(f"0/{V1}", Retired("ecc/4x4", 0))]
    assert delete_positions("ecc/4x4", 4) == [0, 1, 2, 3]
    assert delete_positions("ecc/4x4", 2) == [0, 1]
    catalog.forget_retired(f"0/{V1}", 0)
    assert retired_work(catalog, set()) == []


def test_progress_advances_only_over_a_contiguous_run() -> None:
    acked = {3, 4, 6}
    assert advance(2, acked) == 2 and acked == {3, 4, 6}
    acked.add(2)
    assert advance(2, acked) == 5 and acked == {6}


# -- persistence --------------------------------------------------------------------------

def test_the_catalog_keeps_a_reencoding_and_old_catalogs_keep_their_bytes() -> None:
    catalog = catalog_with({V1: ("ecc/4x4", 3, True)})
    before = catalog.export_bytes()
    assert b"generation" not in before and b"retired" not in before
    catalog.begin_reencode(f"0/{V1}", "ecc/2x2")
    catalog.reencode_progress(f"0/{V1}", 3)
    catalog.switch_reencoded(f"0/{V1}")
    catalog.begin_reencode(f"0/{V1}", "ecc/7x7")
    catalog.reencode_progress(f"0/{V1}", 1)
    again = Catalog.import_bytes(catalog.export_bytes())
    _item, version = again.version(f"0/{V1}")
    assert (version.ecc, version.generation, version.retired) == ("ecc/2x2", 1, [Retired("ecc/4x4", 0)])
    assert version.reencode is not None
    assert (version.reencode.ecc, version.reencode.generation, version.reencode.done) == ("ecc/7x7", 2, 1)
    assert again.export_bytes() == catalog.export_bytes()
    damaged = catalog.export_bytes().replace(b'"generation":2', b'"generation":1')
    with pytest.raises(CatalogCorruptError, match="one generation of pieces twice"):
        Catalog.import_bytes(damaged)


# -- retained suppliers ------------------------------------------------------------------------

def test_shrinking_keeps_the_positions_past_n_across_restarts_until_released(tmp_path: Path) -> None:
    path = tmp_path / "suppliers.json"
    suppliers = SupplierList.load(path, 4)
    for position in range(4):
        suppliers.assign(position, idurl(f"s{position}"), None)
    assert suppliers.resize(2) == [idurl("s2"), idurl("s3")]
    assert (suppliers.size, suppliers.span, suppliers.ecc_map) == (2, 4, "ecc/2x2")
    assert [s.position for s in suppliers.slots()] == [0, 1]
    assert suppliers.request_map(0) == "ecc/2x2" and suppliers.request_map(3) == "ecc/4x4"
    again = SupplierList.load(path, 2)  # a restart: still retained
    assert [s.idurl for s in again.retained()] == [idurl("s2"), idurl("s3")]
    assert again.release(4) == []  # a 4x4 version still needs them
    assert again.release(2) == [idurl("s2"), idurl("s3")]
    assert SupplierList.load(path, 2).span == 2
    empty = SupplierList.load(tmp_path / "fresh.json", 4)
    assert empty.resize(2) == [] and empty.span == 2  # nothing hired past N: nothing retained
    shrunk_offline = SupplierList.load(path, 2)
    shrunk_offline.resize(4)  # growing back: empty positions to hire
    assert [s.idurl for s in shrunk_offline.slots()] == [idurl("s0"), idurl("s1"), "", ""]


# -- the re-encoder over a fake network ------------------------------------------------------

class RefusingMotion(FakeMotion):
    """Positions in ``refuse`` answer retrieves but refuse new pieces (a full disk)."""

    def __init__(self, stores: dict[int, dict[str, bytes]]) -> None:
        super().__init__(stores)
        self.refuse: set[int] = set()

    def send_pieces(self, position: int, pieces: Sequence[tuple[str, bytes | memoryview]]) -> Deferred[None]:
        if position in self.refuse:
            return fail(PieceRefused("no-space", f"s{position} is full"))
        return super().send_pieces(position, pieces)


class FakeEnv:
    def __init__(self, catalog: Catalog, suppliers: SupplierList, motion: RefusingMotion, key: bytes) -> None:
        self.the_catalog = catalog
        self.the_suppliers = suppliers
        self.motion = motion
        self.key = key
        self.busy: set[str] = set()
        self.released: list[int] = []
        self.rebuilds = 0
        self.saves = 0
        catalog.saver = self._saved

    def _saved(self, _catalog: Catalog) -> None:
        self.saves += 1

    def catalog(self) -> Catalog | None:
        return self.the_catalog

    def suppliers(self) -> SupplierList | None:
        return self.the_suppliers

    def mover(self) -> RefusingMotion:
        return self.motion

    def online(self, position: int) -> bool:
        return position in self.motion.stores and position not in self.motion.dead

    def open_key(self, wrapped: bytes) -> bytes:
        return self.key

    def run(self, fn: Callable[[], Any]) -> Deferred[Any]:
        return run_now(fn)

    def restoring(self) -> set[str]:
        return self.busy

    def release(self, needed: int) -> list[str]:
        self.released.append(needed)
        return self.the_suppliers.release(needed)

    def rebuild(self) -> None:
        self.rebuilds += 1


@pytest.fixture(scope="module")
def owner() -> PrivateKey:
    return PrivateKey.generate(2048)


def setup(tmp_path: Path, owner: PrivateKey, old: int, new: int) -> tuple[FakeEnv, dict[int, bytes]]:
    """A 4x4 (or ``old``) backup spread on fake suppliers, the list resized to ``new``;
    also the plaintext of every block, to compare with after re-encoding."""
    backup_id = f"0/{V1}"
    top = make_tree(tmp_path / "src", BLOCK)
    pieces, version_key, blocks = encode_pieces(top, backup_id, EccMap(old), owner.public_key(), BLOCK)
    stores = spread(pieces, max(old, new))
    catalog = Catalog()
    catalog.map_path(LocalPath(str(top), ItemType.DIR, 1))
    catalog.add_version("0", V1, EccMap(old).name, version_key.wrapped)
    catalog.mark_complete(backup_id, blocks=blocks, size=1, source_size=1)
    suppliers = SupplierList.load(tmp_path / "suppliers.json", old)
    for position in range(old):
        suppliers.assign(position, idurl(f"s{position}"), None)
    suppliers.resize(new)
    for position in range(old, new):
        suppliers.assign(position, idurl(f"s{position}"), None)
    plain = {}
    for number in range(blocks):
        shares = {EccMap(old).share_index(p, "Data"): pieces[make_piece_id(backup_id, number, p, "Data")]
                  for p in range(old)}
        plain[number] = verify_block(EccMap(old), version_key.key, backup_id, number, shares).opened.plaintext
    return FakeEnv(catalog, suppliers, RefusingMotion(stores), version_key.key), plain


def check_new_pieces(env: FakeEnv, plain: dict[int, bytes], ecc: EccMap, lose: list[int]) -> None:
    """Every block opens from the new generation's pieces with the positions ``lose`` gone."""
    _item, version = env.the_catalog.version(f"0/{V1}")
    where = version.storage_id("0")
    for number, data in plain.items():
        shares = {}
        for index in range(ecc.m):
            position, kind = ecc.share_owner(index)
            piece = env.motion.stores[position].get(make_piece_id(where, number, position, kind))
            if position not in lose and piece is not None:
                shares[index] = piece
        assert verify_block(ecc, env.key, f"0/{V1}", number, shares).opened.plaintext == data


@pytest.mark.parametrize(("old", "new"), [(4, 2), (2, 4)])
def test_a_version_is_reencoded_switched_and_its_old_pieces_deleted(tmp_path: Path, owner: PrivateKey, old: int,
                                                                   new: int) -> None:
    env, plain = setup(tmp_path, owner, old, new)
    clock = Clock()
    reencoder = Reencoder(clock, env)
    assert reencoder.has_work()
    reencoder.start()  # the fake answers at once: the whole pass runs now
    _item, version = env.the_catalog.version(f"0/{V1}")
    assert (version.ecc, version.generation, version.reencode, version.retired) == (EccMap(new).name, 1, None, [])
    assert reencoder.switched == 1 and env.rebuilds == 1 and reencoder.errors == []
    old_pieces = [p for store in env.motion.stores.values() for p in store if p.startswith(f"0/{V1}/")]
    assert old_pieces == []
    assert env.released == [new] and env.the_suppliers.span == new
    check_new_pieces(env, plain, EccMap(new), lose=list(range(new // 2)))  # any N/2 of the new ones may go
    assert not reencoder.has_work()
    clock.advance(60)
    assert reencoder.switched == 1


def test_a_failed_send_keeps_the_old_coding_and_a_restart_resumes(tmp_path: Path, owner: PrivateKey) -> None:
    env, plain = setup(tmp_path, owner, 4, 2)
    env.motion.refuse.add(1)  # a new position refuses: nothing may switch
    clock = Clock()
    first = Reencoder(clock, env, parallel=1)
    first.start()
    _item, version = env.the_catalog.version(f"0/{V1}")
    assert version.ecc == "ecc/4x4" and version.reencode is not None and version.reencode.done == 0
    assert first.errors and "not acknowledged" in first.errors[-1]
    assert env.the_suppliers.span == 4, "the retained suppliers are kept"
    old_pieces = [p for store in env.motion.stores.values() for p in store if p.startswith(f"0/{V1}/")]
    assert len(old_pieces) == 8 * len(plain)
    first.stop()
    env.motion.refuse.clear()
    again = Reencoder(clock, env, parallel=1)  # a restarted daemon
    env.the_catalog.reencode_progress(f"0/{V1}", 2)  # as if two blocks had been acknowledged before the stop
    env.motion.sent.clear()
    again.start()
    assert version.ecc == "ecc/2x2" and version.generation == 1 and env.the_suppliers.span == 2
    assert {int(p.rpartition("/")[2].split("-")[0]) for _pos, p in env.motion.sent} == set(range(2, len(plain)))


def test_old_pieces_stay_while_a_restore_reads_them_then_go(tmp_path: Path, owner: PrivateKey) -> None:
    env, plain = setup(tmp_path, owner, 4, 2)
    env.busy.add(f"0/{V1}")
    clock = Clock()
    reencoder = Reencoder(clock, env, poll_seconds=1.0)
    reencoder.start()
    _item, version = env.the_catalog.version(f"0/{V1}")
    assert version.ecc == "ecc/2x2" and version.retired == [Retired("ecc/4x4", 0)]
    assert env.the_suppliers.span == 4, "the restore may read the old pieces on the retained suppliers"
    assert widest_needed(env.the_catalog, env.busy) == 4 and widest_needed(env.the_catalog) == 2
    assert any(p.startswith(f"0/{V1}/") for store in env.motion.stores.values() for p in store)
    env.busy.clear()
    clock.advance(31)  # the retry delay of a pass that left work
    assert version.retired == []
    assert not any(p.startswith(f"0/{V1}/") for store in env.motion.stores.values() for p in store)
    check_new_pieces(env, plain, EccMap(2), lose=[1])


def test_too_few_old_pieces_fail_the_block_and_nothing_switches(tmp_path: Path, owner: PrivateKey) -> None:
    env, _plain = setup(tmp_path, owner, 4, 2)
    for position in (2, 3):
        env.motion.stores[position].clear()
    for piece in [p for p in env.motion.stores[1] if "-Parity" in p]:
        del env.motion.stores[1][piece]
    reencoder = Reencoder(Clock(), env)
    reencoder.start()
    _item, version = env.the_catalog.version(f"0/{V1}")
    assert version.ecc == "ecc/4x4" and version.generation == 0
    assert "good pieces of the 4 needed" in reencoder.errors[-1]
    assert env.the_suppliers.span == 4 and env.saves >= 1


class RebuildView:
    """The rebuilder's environment over the same fake suppliers, with the list at N = 2."""

    def __init__(self, env: FakeEnv) -> None:
        self.env = env
        self.redundancy: dict[str, list[int]] = {}

    def versions(self) -> list[VersionInfo] | None:
        return [VersionInfo(f"{item.path_id}/{v.version}", v.ecc, v.blocks, v.wrapped_key, v.storage_id(item.path_id))
                for item, v in self.env.the_catalog.complete_backups()]

    def catalog_revision(self) -> int | None:
        return self.env.the_catalog.revision

    def size(self) -> int:
        return self.env.the_suppliers.size

    def held(self, position: int) -> Mapping[str, int] | None:
        store = self.env.motion.stores.get(position)
        return {pid: len(d) for pid, d in store.items()} if store is not None else None

    def refresh(self) -> Deferred[None]:
        return succeed(None)

    def mover(self) -> RefusingMotion:
        return self.env.motion

    def open_key(self, wrapped: bytes) -> bytes:
        return self.env.key

    def set_redundancy(self, redundancy: dict[str, list[int]]) -> None:
        self.redundancy = redundancy

    def online(self, position: int) -> bool:
        return True

    def run(self, fn: Callable[[], Any]) -> Deferred[Any]:
        return run_now(fn)


def test_redundancy_counts_retained_positions_and_follows_the_switch(tmp_path: Path, owner: PrivateKey) -> None:
    """Before the switch a 4x4 version is whole on 2 current + 2 retained positions (not
    shown as degraded, and not rebuilt); after it, its new pieces are counted."""
    env, plain = setup(tmp_path, owner, 4, 2)
    view = RebuildView(env)
    clock = Clock()
    rebuilder = BackupRebuilder(clock, None, view)
    rebuilder.event("init")
    assert rebuilder.state == "READY" and env.motion.sent == []
    assert view.redundancy == {f"0/{V1}": [8] * len(plain)}
    Reencoder(clock, env).start()
    rebuilder.event("check")
    assert view.redundancy == {f"0/{V1}": [4] * len(plain)}  # 2 new pieces on each of the 2 positions
