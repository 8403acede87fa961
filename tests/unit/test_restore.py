"""Restore without a network: target resolution, block verification, share fetching and
the restore_worker machine driven over a fake DataMotion, with its actions recorded."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest
from twisted.internet.task import Clock

from bitdust.crypto.keys import PrivateKey
from bitdust.storage.catalog.tree import Catalog
from bitdust.storage.ecc import EccMap
from bitdust.storage.ids import make_piece_id
from bitdust.storage.pipeline.decoder import RestoreDecoder
from bitdust.storage.restore.jobs import RestoreJobs, open_decoder
from bitdust.storage.restore.share_fetch import ShareFetcher, SupplierHealth
from bitdust.storage.restore.target import RestoreError, RestoreTarget, resolve
from bitdust.storage.restore.verify import NeedMoreShares, verify_block
from bitdust.storage.restore.worker import RestoreWorker
from tests.restore_helpers import (
    FakeMotion,
    encode_pieces,
    make_tree,
    record_actions,
    run_now,
    snapshot,
    spread,
)

BLOCK = 64 * 1024
ECC = EccMap(4)
PATH_ID = "0"
VERSION = "F20240101120000PM"
BACKUP_ID = f"{PATH_ID}/{VERSION}"


@pytest.fixture(scope="module")
def owner() -> PrivateKey:
    return PrivateKey.generate(2048)


@pytest.fixture
def backup(tmp_path: Path, owner: PrivateKey) -> tuple[Path, dict[str, bytes], RestoreTarget, RestoreDecoder]:
    top = make_tree(tmp_path / "src", BLOCK)
    pieces, version_key, blocks = encode_pieces(top, BACKUP_ID, ECC, owner.public_key(), BLOCK)
    assert blocks >= 4
    target = RestoreTarget(PATH_ID, VERSION, ECC, blocks, 0, version_key.wrapped, str(top), str(tmp_path / "out"))
    return top, pieces, target, open_decoder(owner, target)


def worker_for(target: RestoreTarget, decoder: RestoreDecoder, motion: FakeMotion) -> RestoreWorker:
    return RestoreWorker(Clock(), None, target, decoder, motion, run_now, SupplierHealth(), depth=2)


def test_all_pieces_restore_byte_for_byte_using_data_pieces_only(backup) -> None:
    top, pieces, target, decoder = backup
    motion = FakeMotion(spread(pieces, 4))
    worker = worker_for(target, decoder, motion)
    actions = record_actions(worker)
    worker.event("start")
    assert worker.state == "DONE", worker.error
    assert snapshot(Path(target.dest) / "Docs") == snapshot(top)
    assert all(p.endswith("-Data") for p in motion.asked), "Data pieces are preferred"
    assert len(motion.asked) == 4 * target.blocks
    assert actions[:2] == ["fill_window", "decode_next"]
    assert actions[-3:] == ["stop_fetching", "finalize", "report"]
    assert actions.count("accept") == target.blocks


def test_two_suppliers_gone_parity_replaces_their_data(backup) -> None:
    top, pieces, target, decoder = backup
    stores = spread(pieces, 4)
    del stores[1]
    motion = FakeMotion(stores)
    motion.dead.add(3)
    worker = worker_for(target, decoder, motion)
    worker.event("start")
    assert worker.state == "DONE", worker.error
    assert snapshot(Path(target.dest) / "Docs") == snapshot(top)
    assert any(p.endswith("-Parity") for p in motion.asked)


def test_corrupt_and_foreign_pieces_are_bypassed_and_counted(backup, owner: PrivateKey, tmp_path: Path) -> None:
    top, pieces, target, decoder = backup
    stores = spread(pieces, 4)
    bad = make_piece_id(BACKUP_ID, 1, 2, "Data")
    stores[2][bad] = bytes(b ^ 0x55 for b in stores[2][bad][:100]) + stores[2][bad][100:]
    other, _key, _blocks = encode_pieces(top, "0/F20240101120000PM1", ECC, owner.public_key(), BLOCK)
    foreign = make_piece_id(BACKUP_ID, 2, 0, "Data")
    stores[0][foreign] = other[make_piece_id("0/F20240101120000PM1", 2, 0, "Data")]
    worker = worker_for(target, decoder, FakeMotion(stores))
    worker.event("start")
    assert worker.state == "DONE", worker.error
    assert snapshot(Path(target.dest) / "Docs") == snapshot(top)
    assert worker.health.corrupt == {2: 1, 0: 1}


def test_too_few_pieces_fails_naming_them_and_leaves_the_users_file(backup, tmp_path: Path) -> None:
    _top, pieces, target, decoder = backup
    existing = Path(target.dest) / "Docs" / "a" / "small.txt"
    existing.parent.mkdir(parents=True)
    existing.write_bytes(b"my precious edit")
    stores = spread(pieces, 4)
    for position in (1, 2):
        stores[position] = {p: d for p, d in stores[position].items() if "/3-" not in p}
    motion = FakeMotion(stores)
    motion.dead.add(3)
    worker = worker_for(target, decoder, motion)
    actions = record_actions(worker)
    worker.event("start")
    assert worker.state == "FAILED"
    assert "block 3 of" in worker.error and "2 good pieces of the 4 needed" in worker.error
    assert "3-1-Data" in worker.error and "3-3-Parity" in worker.error and "does not answer" in worker.error
    assert existing.read_bytes() == b"my precious edit"
    assert not list(Path(target.dest).rglob(".bitdust-*")), "no temporary file is left"
    assert actions[-3:] == ["stop_fetching", "rollback", "report"]


def test_abort_in_the_middle_rolls_back(backup) -> None:
    _top, pieces, target, decoder = backup
    motion = FakeMotion(spread(pieces, 4))
    worker = worker_for(target, decoder, motion)
    motion.hold = True
    worker.event("start")
    assert worker.state == "FETCHING"
    for waiting in list(motion.held_back)[:4]:  # block 0 arrives, block 1 stays pending
        waiting.callback(pieces[motion.asked[motion.held_back.index(waiting)]])
    assert worker.next_block == 1
    ended = worker.when_done()
    worker.event("abort")
    assert worker.state == "ABORTED" and worker.aborted
    assert ended.result == "ABORTED"
    assert not Path(target.dest).exists(), "the folders the job made are removed"


def test_verify_names_two_bad_shares_among_n_plus_two(backup) -> None:
    _top, pieces, _target, decoder = backup
    shares = {}
    for index in range(6):
        position, kind = ECC.share_owner(index)
        shares[index] = pieces[make_piece_id(BACKUP_ID, 0, position, kind)]
    shares[0] = b"\x00" * len(shares[0])
    shares[5] = shares[5][:-1] + bytes([shares[5][-1] ^ 1])
    block = verify_block(ECC, decoder.version_key.key, BACKUP_ID, 0, shares)
    assert block.bad == {0, 5}
    with pytest.raises(NeedMoreShares):
        verify_block(ECC, decoder.version_key.key, BACKUP_ID, 0, {i: shares[i] for i in (0, 1, 2, 3)})
    short = dict(shares)
    short[2] = short[2][:10]
    with pytest.raises(NeedMoreShares) as caught:
        verify_block(ECC, decoder.version_key.key, BACKUP_ID, 0, {i: short[i] for i in (0, 1, 2, 3)})
    assert caught.value.bad == frozenset()  # a size alone does not say which side is wrong
    position, kind = ECC.share_owner(6)
    more = {i: short[i] for i in (1, 2, 3, 4)} | {6: pieces[make_piece_id(BACKUP_ID, 0, position, kind)]}
    assert verify_block(ECC, decoder.version_key.key, BACKUP_ID, 0, more).bad == {2}


def test_verify_is_not_fooled_by_two_suppliers_truncating_alike(backup) -> None:
    """Positions 0 and 1 send both their shares cut the same way: 4 short, 4 good. The
    short ones outnumber the good ones at first; none may be blamed until the block opens."""
    _top, pieces, _target, decoder = backup
    shares = {}
    for index in range(8):
        position, kind = ECC.share_owner(index)
        data = pieces[make_piece_id(BACKUP_ID, 0, position, kind)]
        shares[index] = data[:len(data) // 2] if position in (0, 1) else data
    with pytest.raises(NeedMoreShares) as caught:
        verify_block(ECC, decoder.version_key.key, BACKUP_ID, 0, {i: shares[i] for i in (0, 1, 2, 3, 4, 5)})
    assert caught.value.bad == frozenset()
    block = verify_block(ECC, decoder.version_key.key, BACKUP_ID, 0, shares)
    assert block.used == (2, 3, 6, 7) and block.bad == {0, 1, 4, 5}


def test_fetcher_prefers_answering_suppliers_data_then_parity() -> None:
    motion = FakeMotion({0: {}, 1: {}, 2: {}, 3: {}})
    health = SupplierHealth(online=lambda position: position != 3)
    health.good[0] = 1
    fetcher = ShareFetcher(motion, ECC, BACKUP_ID, 0, health, 1.0)
    fetcher.want(4)
    assert motion.asked[:3] == [make_piece_id(BACKUP_ID, 0, p, "Data") for p in (0, 1, 2)]
    assert motion.asked[3] == make_piece_id(BACKUP_ID, 0, 0, "Parity"), "offline position 3 asked last"
    assert fetcher.exhausted and "not-found" in fetcher.missing_report()


def test_resolve_targets(tmp_path: Path) -> None:
    catalog = Catalog()
    from bitdust.storage.catalog.localpath import LocalPath
    from bitdust.storage.catalog.model import ItemType

    item, _ = catalog.map_path(LocalPath(str(tmp_path / "Docs"), ItemType.DIR, 10))
    catalog.add_version(item.path_id, VERSION, "ecc/4x4", b"k1")
    catalog.mark_complete(f"{item.path_id}/{VERSION}", blocks=2)
    catalog.add_version(item.path_id, "F20240101120001PM", "ecc/4x4", b"k2")  # in progress
    newest = resolve(catalog, item.path_id)
    assert newest.backup_id == f"{item.path_id}/{VERSION}" and newest.dest == str(tmp_path)
    assert resolve(catalog, str(tmp_path / "Docs") + "/", "/x//y").dest == "/x/y"
    assert resolve(catalog, f"{item.path_id}/{VERSION}").blocks == 2
    for bad, words in [("9", "item 9 was not found"), ("0/F20240101120001PM", "not complete yet"),
                       ("0/F2024", "neither a path ID"), ("/nowhere", "not in the catalog"), (None, "expected"),
                       ("relative/path", "neither")]:
        with pytest.raises(RestoreError, match=words):
            resolve(catalog, bad)
    with pytest.raises(RestoreError, match="bad destination"):
        resolve(catalog, item.path_id, "relative")


def test_unwritable_destination_and_foreign_key_are_refused(backup, owner: PrivateKey, tmp_path: Path) -> None:
    _top, _pieces, target, _decoder = backup
    with pytest.raises(RestoreError, match="cannot open the data key of version"):
        open_decoder(PrivateKey.generate(2048), target)
    blocker = tmp_path / "a-file"
    blocker.write_bytes(b"x")
    for dest in (blocker, blocker / "sub"):
        with pytest.raises(RestoreError, match=f"cannot restore into {dest}"):
            open_decoder(owner, replace(target, dest=str(dest)))
    assert blocker.read_bytes() == b"x"


def test_jobs_list_and_refuse_a_second_run(backup, owner: PrivateKey) -> None:
    _top, pieces, target, _decoder = backup
    motion = FakeMotion(spread(pieces, 4))
    motion.hold = True
    jobs = RestoreJobs(Clock(), None, run_now, lambda: owner, lambda: "http://me/x.xml", lambda _p: True, 2, 1.0)
    worker = jobs.start(target, motion).result
    with pytest.raises(RestoreError, match="already being restored"):
        jobs.start(target, motion)
    row = jobs.listing()[0]
    assert {k: row[k] for k in ("aborted", "backupid", "done", "eccmap", "path_id", "version", "creatorid")} == {
        "aborted": False, "backupid": BACKUP_ID, "done": False, "eccmap": "ecc/4x4", "path_id": PATH_ID,
        "version": VERSION, "creatorid": "http://me/x.xml"}
    assert len(row["created"].split()) == 5
    assert jobs.abort(PATH_ID) is worker
    assert worker.state == "ABORTED" and jobs.listing()[0]["errors"] == [f"restore of {BACKUP_ID} was aborted"]
    with pytest.raises(RestoreError, match="no restore of"):
        jobs.abort(BACKUP_ID)


def test_restore_worker_table_is_consistent() -> None:
    from bitdust.automats.automat import check_table, to_dot

    assert check_table(RestoreWorker) == []
    assert '"FETCHING" -> "ROLLBACK"' in to_dot(RestoreWorker)
