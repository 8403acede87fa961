"""The customer daemon killed with SIGKILL in the middle of a catalog write, a backup and
a restore, at fixed points (:mod:`bitdust.util.crashpoint`) and at a timed moment, on a
local network of daemon processes (a seed, the customer, 2 suppliers, ecc/2x2).

After each restart: the catalog loads, no version is listed complete that is not, the
backup started again completes, every earlier version still restores byte for byte, and
a restore cut short never replaced a user's file with a partial one.
"""

from __future__ import annotations

import json
import random
from pathlib import Path

import pytest

from bitdust.netjobs import api, cli, make_sample
from bitdust.storage.catalog.codec import import_bytes
from bitdust.storage.catalog.model import VersionState
from bitdust.storage.catalog.tree import Catalog
from tests.reliability.conftest import CRASH_WAIT, CrashNet, backup_past, tree_digest, wait_for

pytestmark = pytest.mark.slow


def backup(home: Path, source: Path) -> str:
    """A backup run to its end; its backup ID."""
    done = cli(home, "backup", "--json", str(source), timeout=CRASH_WAIT)
    assert done.returncode == 0, done.stdout + str(done.stderr)
    result = json.loads(done.stdout)
    assert result["status"] == "done", result
    return str(result["backupid"])


def restore(home: Path, backup_id: str, dest: Path | None = None) -> None:
    args = [backup_id] if dest is None else [backup_id, str(dest)]
    done = cli(home, "restore", "--json", *args, timeout=CRASH_WAIT)
    assert done.returncode == 0, done.stdout + str(done.stderr)


def complete_ids(home: Path) -> set[str]:
    return {row["backupid"] for row in api(home, "backups_id_list")}


def versions_of(home: Path) -> dict[str, bool]:
    """Backup ID -> complete, for every version the catalog holds (in progress too)."""
    return {v["backupid"]: v["complete"] for item in api(home, "filemanager_listall") for v in item["versions"]}


def states(catalog: Catalog) -> dict[str, VersionState]:
    return {f"{item.path_id}/{v.version}": v.state for item in catalog.items() for v in item.versions.values()}


def check_recovered(net: CrashNet, complete: set[str]) -> None:
    """After a restart: the catalog loaded (no file moved aside, no temp file left), the
    complete versions are exactly ``complete``, and once backup_monitor ran, no version
    in progress is left over, in the catalog or on the suppliers' disks."""
    folder = net.customer / "catalog"
    assert not list(folder.glob("catalog.json.corrupt-*")), "the catalog could not be loaded"
    # A save of the restarted daemon may be writing its own temp file right now (saves run in
    # a pool thread); one the crash left behind would never go away.
    wait_for(lambda: not list(folder.glob(".catalog.json.*.tmp")), "no temp file of the catalog left behind")
    assert complete_ids(net.customer) == complete
    wait_for(lambda: versions_of(net.customer) == dict.fromkeys(complete, True),
             "backup_monitor (its check at start) to drop the version the crash cut short")
    api(net.customer, "backups_update")  # its DeleteBackup may have gone out before the suppliers were back
    suppliers = net.suppliers()
    wait_for(lambda: all(net.held_versions(home) == complete for home in suppliers),
             "the suppliers to hold the complete versions only")


def test_catalog_write_crash_keeps_old_or_new_catalog(crash_net: CrashNet, tmp_path: Path) -> None:
    """Killed after the temp file was written (before the rename): the catalog is the
    previous one; killed after the rename: it is the new one. Never a mix."""
    net = crash_net
    complete = complete_ids(net.customer)
    for n, (point, kept) in enumerate((("catalog.after_temp_write", False), ("catalog.after_rename", True))):
        folder = tmp_path / f"added-{n}"
        folder.mkdir()
        (folder / "file.txt").write_text("x")
        before = net.catalog_file().read_bytes() if net.catalog_file().exists() else None
        count = net.crash_count(net.customer, point)
        pid = net.start(net.customer, point)
        net.call(net.customer, "backup_dir_add", str(folder))
        net.crashed(net.customer, pid, point, count)

        on_disk = net.catalog_on_disk().items() if net.catalog_file().exists() else []
        assert any(item.local_path == str(folder) for item in on_disk) is kept, point
        if not kept:
            assert (net.catalog_file().read_bytes() if net.catalog_file().exists() else None) == before
        net.start(net.customer)
        check_recovered(net, complete)
        paths = {row["path"] for row in api(net.customer, "filemanager_listall")}
        assert (str(folder) in paths) is kept


def test_backup_crashes_leave_no_half_version(crash_net: CrashNet, tmp_path: Path) -> None:
    """Killed after some pieces were acknowledged, after all of them (before the version
    is marked complete), while saving the completed version, and at a timed moment past
    30%: no half version is ever listed, the backup run again completes, and both
    versions restore byte for byte."""
    net = crash_net
    sample = tmp_path / "sample"
    make_sample(sample, 1_500_000)
    first = backup(net.customer, sample)
    complete = complete_ids(net.customer)
    first_tree = tree_digest(sample)
    (sample / "data" / "big.bin").write_bytes(random.Random(7).randbytes(1_500_000))  # the user changes a file
    (sample / "new.txt").write_text("added after the first backup\n")
    second_tree = tree_digest(sample)

    # The 3rd catalog save of this run is the one that marks the version complete (the 1st
    # binds the path, the 2nd records the version in progress): checked below on the temp file.
    for point in ("backup.piece_acked@5", "backup.before_complete", "catalog.after_temp_write@3"):
        count = net.crash_count(net.customer, point)
        pid = net.start(net.customer, point)
        net.call(net.customer, "backup_start_path", str(sample))
        net.crashed(net.customer, pid, point, count)
        left = states(net.catalog_on_disk())
        assert {b: s for b, s in left.items() if b in complete} == dict.fromkeys(complete, VersionState.COMPLETE)
        assert [s for b, s in left.items() if b not in complete] == [VersionState.IN_PROGRESS], (point, left)
        if point.startswith("catalog."):
            [temp] = (net.customer / "catalog").glob(".catalog.json.*.tmp")
            unsaved = states(import_bytes(temp.read_bytes()))
            assert sorted(unsaved.values()) == [VersionState.COMPLETE] * (len(complete) + 1), \
                "the crash was not in the save that marks the version complete"
        net.start(net.customer)
        check_recovered(net, complete)

    # a plain SIGKILL once the running backup is past 30% (a bigger file: a few seconds to catch it)
    (sample / "data" / "big.bin").write_bytes(random.Random(8).randbytes(6_000_000))
    second_tree = tree_digest(sample)
    api(net.customer, "backup_start_path", str(sample))
    wait_for(lambda: backup_past(net.customer, 30), "the backup to pass 30%", poll=0.02)
    net.start(net.customer)  # SIGKILL, then start again
    check_recovered(net, complete)

    second = backup(net.customer, sample)
    assert complete_ids(net.customer) == complete | {second}
    for backup_id, tree in ((first, first_tree), (second, second_tree)):
        dest = tmp_path / f"restored-{backup_id.replace('/', '-')}"
        restore(net.customer, backup_id, dest)
        assert tree_digest(dest / sample.name) == tree, backup_id


def test_restore_crash_never_replaces_the_users_file(crash_net: CrashNet, tmp_path: Path) -> None:
    """Killed in the middle of writing a restored file into the user's folder: the
    user's files are untouched (no partial file in their place), the partial temporaries
    are removed at the next start, and the restore run again puts the version back whole."""
    net = crash_net
    sample = tmp_path / "docs"
    make_sample(sample, 1_200_000, seed=11)
    backed_up = tree_digest(sample)
    backup_id = backup(net.customer, sample)
    (sample / "data" / "big.bin").write_bytes(b"the user's newer content\n" * 1000)
    (sample / "README.txt").write_text("edited since\n")
    users = tree_digest(sample)

    point = "restore.mid_file@3"
    count = net.crash_count(net.customer, point)
    pid = net.start(net.customer, point)
    net.call(net.customer, "restore_single", backup_id)  # into the place it came from
    net.crashed(net.customer, pid, point, count)
    assert tree_digest(sample) == users, "a file of the user was replaced by a partial one"
    assert [p for p in sample.rglob(".bitdust-*.part") if p.stat().st_size], "the crash was not in the middle of a file"

    net.start(net.customer)
    assert tree_digest(sample) == users
    assert list(sample.rglob(".bitdust-*.part")) == [], "the partial files of the cut restore were left behind"
    restore(net.customer, backup_id)
    assert tree_digest(sample, hidden=True) == backed_up
