"""Shared fixtures of the reliability suite."""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
import time
from collections.abc import Callable, Generator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psutil
import pytest

from bitdust import localnet
from bitdust.api.client import ApiClient, ApiConnectionError
from bitdust.daemon import running_pid
from bitdust.home import Home
from bitdust.netjobs import api, hire_suppliers, kill, online_suppliers
from bitdust.storage.catalog.codec import import_bytes
from bitdust.storage.catalog.tree import Catalog
from bitdust.storage.ids import CATALOG_PATH_ID
from bitdust.util.crashpoint import ENV as CRASHPOINT_ENV

# -- crash tests: a local network whose daemons are killed and started again -----------------

CRASH_NODES = 3
"""The seed and node1..node3: node1 is the customer, it hires 2 of the others (ecc/2x2)."""
CRASH_SUPPLIERS = 2
CRASH_BLOCK = "256 KB"
CRASH_WAIT = 90.0
"""Bound of every wait of the crash tests (generous: 2 cores shared with other tests)."""


def wait_for(check: Callable[[], Any], what: str, timeout: float = CRASH_WAIT, poll: float = 0.1) -> Any:
    """Re-check ``check`` until it returns something true; AssertionError after ``timeout``."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        result = check()
        if result:
            return result
        time.sleep(poll)
    raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")


def backup_past(home: Path, percent: float) -> bool:
    """The running backup of ``home`` has read more than ``percent`` of its bytes."""
    rows = api(home, "backups_running")
    return bool(rows) and rows[0]["progress"] > percent and rows[0]["state"] == "RUNNING"


def tree_digest(root: Path, hidden: bool = False) -> dict[str, str]:
    """Relative name -> sha256 of every file below ``root`` ("dir" for folders); names
    starting with a dot (temporaries) only with ``hidden``."""
    found: dict[str, str] = {}
    for folder, dirs, files in os.walk(root):
        for name in dirs + files:
            if name.startswith(".") and not hidden:
                continue
            path = Path(folder) / name
            rel = str(path.relative_to(root))
            found[rel] = "dir" if path.is_dir() else hashlib.sha256(path.read_bytes()).hexdigest()
    return found


@dataclass
class CrashNet:
    """A running local network and the means to crash its daemons and start them again.

    ``start(home, point)`` launches a node's daemon with ``BITDUST_CRASHPOINT=point``
    (:mod:`bitdust.util.crashpoint`), so that it SIGKILLs itself at that point of the
    work the test then asks for; ``crashed(...)`` waits for the death and checks in the
    node's log that it died at that point and not elsewhere.
    """

    folder: Path
    nodes: list[dict[str, Any]]
    pids: list[int] = field(default_factory=list)

    @property
    def customer(self) -> Path:
        return Path(self.nodes[1]["home"])

    def home_of(self, idurl: str) -> Path:
        return next(Path(n["home"]) for n in self.nodes if n["idurl"] == idurl)

    def suppliers(self) -> list[Path]:
        """The customer's supplier homes, by position."""
        rows = sorted(api(self.customer, "suppliers_list"), key=lambda row: row["position"])
        return [self.home_of(row["idurl"]) for row in rows]

    @staticmethod
    def pid(home: Path) -> int | None:
        return running_pid(Home(home))

    def kill(self, home: Path) -> None:
        """SIGKILL the node's daemon (if it runs) and wait until it is gone."""
        pid = self.pid(home)
        if pid is not None:
            kill(pid)

    def start(self, home: Path, point: str | None = None) -> int:
        """Start the node's daemon (SIGKILLed first if it runs), armed with ``point``;
        for the customer, wait until its suppliers are online again. Returns the pid."""
        self.kill(home)
        env = {k: v for k, v in os.environ.items() if k != CRASHPOINT_ENV}
        if point:
            env[CRASHPOINT_ENV] = point
        done = subprocess.run([sys.executable, "-m", "bitdust", "--home", str(home), "start"], capture_output=True,
                              text=True, timeout=CRASH_WAIT, check=False, env=env)
        assert done.returncode == 0, done.stdout + done.stderr
        pid = self.pid(home)
        assert pid is not None
        self.pids.append(pid)
        if home == self.customer:
            wait_for(lambda: len(online_suppliers(home)) == CRASH_SUPPLIERS, "the customer's suppliers")
        return pid

    def crash_count(self, home: Path, point: str) -> int:
        log_file = Home(home).main_log
        text = log_file.read_text(encoding="utf-8", errors="replace") if log_file.exists() else ""
        return text.count(f"crashpoint {point.partition('@')[0]} reached")

    def crashed(self, home: Path, pid: int, point: str, before: int, timeout: float = CRASH_WAIT) -> None:
        """Wait until ``pid`` died; assert it was at ``point`` (its log line is new)."""
        try:
            psutil.Process(pid).wait(timeout=timeout)
        except psutil.NoSuchProcess:
            pass
        except psutil.TimeoutExpired:
            raise AssertionError(f"the daemon of {home.name} did not reach crashpoint {point} "
                                 f"within {timeout:.0f} s") from None
        assert self.crash_count(home, point) == before + 1, f"{home.name} died, but not at {point}"

    def call(self, home: Path, method: str, *args: Any) -> Any:
        """An API call to a daemon that may die while answering: the answer, or None if the
        connection broke (the only failure tolerated)."""
        try:
            return ApiClient.from_home(home, timeout=CRASH_WAIT).call(method, *args)
        except ApiConnectionError:
            return None

    def catalog_file(self) -> Path:
        return self.customer / "catalog" / "catalog.json"

    def catalog_on_disk(self) -> Catalog:
        """The customer's catalog file as a fresh start would read it (never moved aside)."""
        return import_bytes(self.catalog_file().read_bytes())

    def held_versions(self, supplier: Path) -> set[str]:
        """Backup IDs a supplier holds pieces of on its disk (catalog copies left out),
        read without touching anything."""
        held: set[str] = set()
        for customer in (supplier / "customers").glob("*"):
            for piece in customer.rglob("*"):
                if piece.is_file() and not piece.name.startswith("."):
                    backup_id = str(piece.parent.relative_to(customer))
                    if not backup_id.startswith(CATALOG_PATH_ID):
                        held.add(backup_id)
        return held

    def stop_all(self) -> None:
        """SIGKILL every daemon of the network by pid (crash tests need no clean stop),
        all at once, then wait (bounded) until all are gone."""
        pids = set(self.pids) | {pid for pid in (self.pid(Path(n["home"])) for n in self.nodes) if pid is not None}
        procs = []
        for pid in pids:
            try:
                process = psutil.Process(pid)
                if str(self.folder) not in " ".join(process.cmdline()):
                    continue  # that daemon died already, and its pid was given to another process
                process.kill()
                procs.append(process)
            except psutil.NoSuchProcess:
                continue
        _gone, alive = psutil.wait_procs(procs, timeout=CRASH_WAIT)
        assert not alive, f"still running after SIGKILL: {alive}"


@pytest.fixture(scope="module")
def crash_net(tmp_path_factory: pytest.TempPathFactory) -> Generator[CrashNet, None, None]:
    """A seed and 3 nodes; node1 is a customer with 2 suppliers hired (ecc/2x2) and
    256 KB blocks. Every daemon, started here or by a test, is killed at the end."""
    folder = tmp_path_factory.mktemp("crashnet")
    net = CrashNet(folder, [])
    try:
        net.nodes = localnet.start(folder, CRASH_NODES, key_size=2048)
        net.pids = [int(n["pid"]) for n in net.nodes]
        api(net.customer, "config_set", "services/backups/block-size", CRASH_BLOCK)
        api(net.customer, "config_set", "services/backups/max-copies", "100")  # the tests restore every version
        # A piece whose Ack a crashed supplier never sent is sent again after this (30 s by default) ...
        api(net.customer, "config_set", "services/data-motion/send-timeout-seconds", "10")
        # ... and a killed supplier is seen offline after 3 unanswered requests of this (10 s by default).
        api(net.customer, "config_set", "services/customer/request-timeout-seconds", "4")
        assert len(hire_suppliers(net.customer, CRASH_SUPPLIERS)) == CRASH_SUPPLIERS
        yield net
    finally:
        net.stop_all()
        if not net.nodes:
            localnet.stop(folder)
