"""The backup verbs and disaster recovery, end to end, on a local network of daemon
processes driven only through the ``bitdust`` CLI (and the API for waiting).

1. ``bitdust backup --json`` of a small folder, ``bitdust files``, ``bitdust restore``
   into another folder, byte for byte.
2. ``bitdust identity backup`` (with a passphrase), the customer's machine "lost" (its
   daemon stopped, its home never used again), ``bitdust identity restore`` into a
   fresh home, start: the node reconnects to its suppliers, gets its catalog back, and
   the version restores byte for byte.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Generator
from pathlib import Path
from typing import Any

import psutil
import pytest

from bitdust import localnet
from bitdust.netjobs import api, compare_trees, hire_suppliers, make_sample

pytestmark = pytest.mark.slow

SUPPLIERS = 4
WAIT = 180.0


def bitdust(home: Path, *args: str, timeout: float = 300, env: dict[str, str] | None = None) \
        -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "bitdust", "--home", str(home), *args], capture_output=True,
                          text=True, timeout=timeout, check=False, env=env)


def wait_for(check: Callable[[], Any], what: str, timeout: float = WAIT) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        result = check()
        if result:
            return result
        time.sleep(0.25)
    raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")


def _pid_of(home: Path) -> int | None:
    from bitdust.daemon import running_pid
    from bitdust.home import Home

    return running_pid(Home(home))


@pytest.fixture
def network(tmp_path: Path) -> Generator[tuple[list[dict[str, Any]], list[Path]], None, None]:
    """A seed and 4 nodes; the list of extra homes the test starts is stopped too. Every
    pid is killed at teardown if ``stop`` left it running."""
    folder = tmp_path / "net"
    extra: list[Path] = []
    pids: list[int] = []
    try:
        nodes = localnet.start(folder, SUPPLIERS, key_size=2048)
        pids = [int(n["pid"]) for n in nodes]
        yield nodes, extra
    finally:
        pids += [pid for pid in (_pid_of(home) for home in extra) if pid is not None]
        for home in extra:
            bitdust(home, "stop", timeout=90)
        if folder.is_dir():
            localnet.stop(folder)
        for pid in pids:
            if psutil.pid_exists(pid):
                try:
                    os.kill(pid, signal.SIGKILL)
                except ProcessLookupError:
                    continue


def test_backup_files_restore_then_disaster_recovery(network: tuple[list[dict[str, Any]], list[Path]],
                                                     tmp_path: Path) -> None:
    nodes, extra = network
    customer = Path(nodes[1]["home"])
    api(customer, "config_set", "services/backups/block-size", "256 KB")
    suppliers = hire_suppliers(customer, SUPPLIERS)
    assert len(suppliers) == SUPPLIERS

    sample = tmp_path / "sample"
    made = make_sample(sample, 700_000)
    done = bitdust(customer, "backup", "--json", str(sample))
    assert done.returncode == 0, done.stdout + done.stderr
    backup = json.loads(done.stdout)
    assert backup["status"] == "done" and backup["path"] == str(sample)
    assert backup["source_bytes"] == made.bytes and backup["blocks"] >= 3

    listed = bitdust(customer, "files")
    assert listed.returncode == 0 and backup["backupid"] in listed.stdout, listed.stdout
    listed_json = json.loads(bitdust(customer, "files", "--json").stdout)
    assert [v["version"] for v in listed_json[0]["versions"]] == [backup["backupid"].rpartition("/")[2]]

    dest = tmp_path / "restored"
    done = bitdust(customer, "restore", "--json", backup["backupid"], str(dest))
    assert done.returncode == 0, done.stdout + done.stderr
    assert json.loads(done.stdout)["status"] == "done"
    assert compare_trees(sample, dest / sample.name) == []

    bad = bitdust(customer, "restore", "0/F20000101000000AM", str(tmp_path / "nowhere"))
    assert bad.returncode == 1 and "restore_single" in bad.stderr

    # -- disaster recovery ------------------------------------------------------------
    wait_for(lambda: (customer / "catalog" / "copied.json").exists()
             and json.loads((customer / "catalog" / "copied.json").read_text())["sha256"],
             "the catalog copy to be on every supplier")
    secret = tmp_path / "passphrase"
    secret.write_text("correct horse battery staple\n")
    key_file = tmp_path / "node1.key"
    done = bitdust(customer, "identity", "backup", str(key_file), "--passphrase-file", str(secret))
    assert done.returncode == 0, done.stdout + done.stderr
    assert key_file.stat().st_mode & 0o777 == 0o600
    assert bitdust(customer, "stop").returncode == 0  # the machine is lost

    fresh = tmp_path / "fresh"
    seed = Path(nodes[0]["home"])
    from bitdust.config import Config

    seed_config = Config(seed / "config")
    id_server = f"127.0.0.1:{seed_config.get('services/identity-server/web-port')}"
    dht_seed = f"127.0.0.1:{seed_config.get('services/dht/udp-port')}"
    localnet.configure(fresh, 2048, id_server, dht_seed, serve_identities=False)
    wrong = bitdust(fresh, "identity", "restore", str(key_file), "--passphrase-env", "WRONG_SECRET",
                    env={**os.environ, "WRONG_SECRET": "not it"})
    assert wrong.returncode == 1 and "wrong passphrase" in wrong.stderr
    done = bitdust(fresh, "identity", "restore", str(key_file), "--passphrase-file", str(secret))
    assert done.returncode == 0, done.stdout + done.stderr
    extra.append(fresh)
    assert bitdust(fresh, "start").returncode == 0

    def recovered() -> bool:
        items = api(fresh, "backups_id_list")
        return any(row["backupid"] == backup["backupid"] for row in items)

    wait_for(recovered, "the catalog to be recovered from the suppliers")
    assert api(fresh, "identity_get")["idurl"] == nodes[1]["idurl"]
    again = tmp_path / "after-disaster"
    done = bitdust(fresh, "restore", "--json", backup["backupid"], str(again))
    assert done.returncode == 0, done.stdout + done.stderr
    assert compare_trees(sample, again / sample.name) == []
