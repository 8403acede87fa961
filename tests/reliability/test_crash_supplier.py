"""A supplier daemon killed with SIGKILL while it receives a backup's pieces, at fixed
points (:mod:`bitdust.util.crashpoint`): half-way through writing a piece, and after a
piece was stored but before its Ack went out; then at a timed moment. On a local network of daemon processes
(a seed, the customer, 2 suppliers, ecc/2x2: one supplier's two shares of a block are
enough to decode it).

After the supplier is started again: every piece it had stored is still there, byte for
byte; the half-written one is gone and never listed; the backup it broke completes (at
once, or run again); and with the *other* supplier dead, every version restores from
this supplier alone -- so it serves every piece it acknowledged.
"""

from __future__ import annotations

import json
import random
import time
from pathlib import Path

import pytest

from bitdust.netjobs import api, cli, make_sample, wait_offline
from bitdust.storage.ids import CATALOG_PATH_ID, parse_piece_id
from tests.reliability.conftest import CRASH_WAIT, CrashNet, backup_past, tree_digest, wait_for

pytestmark = pytest.mark.slow


def pieces_on_disk(supplier: Path) -> dict[str, bytes]:
    """Relative path -> bytes of every stored piece of every customer (temp files apart)."""
    root = supplier / "customers"
    return {str(p.relative_to(root)): p.read_bytes() for p in root.rglob("*")
            if p.is_file() and not p.name.startswith(".")}


def uneven_blocks(pieces: dict[str, bytes]) -> list[str]:
    """Blocks whose pieces differ in size: all shares of a block are the same length, so
    a piece cut short shows (catalog copies are chunks, not shares: left out)."""
    sizes: dict[str, set[int]] = {}
    for name, data in pieces.items():
        piece_id = name.split("/", 1)[1]  # <customer folder>/<path ID>/<version>/<piece>
        if not piece_id.startswith(CATALOG_PATH_ID):
            piece = parse_piece_id(piece_id)
            sizes.setdefault(f"{piece.backup_id}/{piece.block}", set()).add(len(data))
    return sorted(block for block, found in sizes.items() if len(found) > 1)


def temp_files(supplier: Path) -> list[Path]:
    return [p for p in (supplier / "customers").rglob(".*.tmp") if p.is_file()]


def backup_ids(home: Path) -> set[str]:
    return {row["backupid"] for row in api(home, "backups_id_list")}


def backup_to_the_end(net: CrashNet, source: Path, before: set[str]) -> str:
    """The backup the crash hit ends (DONE once the supplier came back, or FAILED); if it
    failed, it is run again and must complete. Returns the new version's backup ID."""
    wait_for(lambda: not api(net.customer, "backups_running"), "the interrupted backup to end", CRASH_WAIT * 2)
    new = backup_ids(net.customer) - before
    if not new:
        done = cli(net.customer, "backup", "--json", str(source), timeout=CRASH_WAIT)
        assert done.returncode == 0, done.stdout + str(done.stderr)
        new = {json.loads(done.stdout)["backupid"]}
    [backup_id] = new
    return backup_id


def test_supplier_killed_while_receiving_loses_nothing(crash_net: CrashNet, tmp_path: Path) -> None:
    net = crash_net
    sample = tmp_path / "sample"
    make_sample(sample, 1_000_000, seed=21)
    trees: dict[str, dict[str, str]] = {}
    done = cli(net.customer, "backup", "--json", str(sample), timeout=CRASH_WAIT)
    assert done.returncode == 0, done.stdout + str(done.stderr)
    trees[json.loads(done.stdout)["backupid"]] = tree_digest(sample)
    supplier, other = net.suppliers()
    other_idurl = next(n["idurl"] for n in net.nodes if Path(n["home"]) == other)

    # Two fixed points, then a plain SIGKILL at a timed moment (once the backup is past 30%).
    for n, point in enumerate(("supplier.piece.mid_temp_write@5", "supplier.piece.after_rename@5", None)):
        (sample / "data" / "big.bin").write_bytes(random.Random(n).randbytes(1_000_000 if point else 4_000_000))
        before = backup_ids(net.customer)
        if point:
            count = net.crash_count(supplier, point)
            pid = net.start(supplier, point)
            assert "started" in str(api(net.customer, "backup_start_path", str(sample)))
            net.crashed(supplier, pid, point, count)
        else:
            assert "started" in str(api(net.customer, "backup_start_path", str(sample)))
            wait_for(lambda: backup_past(net.customer, 30), "the backup to pass 30%", poll=0.02)
            net.kill(supplier)

        stored = pieces_on_disk(supplier)
        if point == "supplier.piece.mid_temp_write@5":
            # ".<piece>.<random>.tmp": the half-written piece, and maybe others being written
            finals = [t.with_name(t.name[1:].split(".")[0]) for t in temp_files(supplier)]
            assert [f for f in finals if not f.exists()], "no piece was cut short"

        net.start(supplier)
        assert temp_files(supplier) == [], "a half-written piece was kept"
        after = pieces_on_disk(supplier)
        # Looked at before the customer could send or delete anything again (its next try
        # comes after the 10 s send timeout): every piece stored before the crash, acked
        # or not yet, is there with the same bytes, and no piece is shorter than its block's.
        assert sorted(set(stored) - set(after)) == [], "pieces stored before the crash were lost"
        assert [name for name, data in stored.items() if after[name] != data] == [], "pieces changed"
        assert uneven_blocks(after) == [], "a piece shorter than its block's others is kept"
        trees[backup_to_the_end(net, sample, before)] = tree_digest(sample)

    # Every version from this supplier alone: it serves all it acknowledged.
    net.kill(other)
    wait_offline(net.customer, [other_idurl])
    for backup_id, tree in trees.items():
        dest = tmp_path / f"restored-{backup_id.replace('/', '-')}"
        started = time.monotonic()
        done = cli(net.customer, "restore", "--json", backup_id, str(dest), timeout=CRASH_WAIT * 2)
        assert done.returncode == 0, done.stdout + str(done.stderr)
        assert tree_digest(dest / sample.name) == tree, f"{backup_id} ({time.monotonic() - started:.1f} s)"
    net.start(other)
