"""Issue 7, item 5 — separate hosts: every daemon in a Linux network namespace of its own
(``tests/reliability/netns.py``: one bridge, a veth pair per host, ``10.77.0.<n>``), so
each node has its own IP and reaches the others over a link that can be cut.

A seed (identity server and DHT seed, supplier service off so the customer's choice is
fixed), a customer and 4 suppliers, six hosts. The customer backs up a folder (v1), then
starts a 12 MB backup (v2) and, while its pieces are on the way, one supplier's cable is
pulled. That supplier must behave as a dead peer: the customer sees it offline, v2 is not
shown complete (a version is complete only when every piece was acknowledged, and the job
drops a version it cannot finish), and v1 restores byte for byte from the three others.
Then the cable is plugged back: the supplier answers a ping and is online again, and v2
ends on all four — either the interrupted job completes (the link came back while its
pieces were still being retried: 3 attempts of ``send-timeout-seconds``) or it failed,
left no version, and a new backup completes — and restores byte for byte.

Skipped, with the reason, where the machine does not allow namespaces (not root, no
CAP_NET_ADMIN, no ``ip``). The lab — namespaces, veth pairs, bridge, every process in
them — is removed at teardown whatever happened.
"""

from __future__ import annotations

import json
import random
import time
from collections.abc import Generator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest

from bitdust import localnet
from bitdust.config import Config
from bitdust.netjobs import compare_trees, hire_suppliers, make_sample, wait_offline
from tests.reliability.netns import Lab, NetnsUnavailable, listeners, wait_for

pytestmark = pytest.mark.slow

SEED, CUSTOMER = 1, 2
SUPPLIER_HOSTS = (3, 4, 5, 6)
HOSTS = 6
NAMES = {SEED: "seed", CUSTOMER: "customer", 3: "sup3", 4: "sup4", 5: "sup5", 6: "sup6"}
BIG = 12 * 2**20
WAIT = 180.0


class Network:
    """The lab and one home per host; the daemons are started and stopped through it."""

    def __init__(self, lab: Lab, root: Path) -> None:
        self.lab = lab
        self.homes = {host: root / NAMES[host] for host in NAMES}

    def configure(self) -> None:
        seed_ports = localnet.configure(self.homes[SEED], 2048, None, None, serve_identities=True)
        id_server = f"{self.lab.address(SEED)}:{seed_ports['identity']}"
        dht_seed = f"{self.lab.address(SEED)}:{seed_ports['dht']}"
        for host, home in self.homes.items():
            if host != SEED:
                localnet.configure(home, 2048, id_server, dht_seed, serve_identities=False)
            config = Config(home / "config")
            config.set("network/host", self.lab.address(host))
            config.set("services/identity-propagate/known-servers", id_server)
        Config(self.homes[SEED] / "config").set("services/supplier/enabled", False)

    def start(self, host: int) -> None:
        home = self.homes[host]
        for args in (("start",), ("identity", "create", NAMES[host])):
            done = self.lab.bitdust(host, home, *args)
            assert done.returncode == 0, f"{NAMES[host]}: bitdust {' '.join(args)}: {done.stdout}{done.stderr}"
        wait_for(lambda: self.lab.inside(host, localnet.node_state, home)["online"], f"{NAMES[host]} online", WAIT)

    def api(self, host: int, method: str, *args: Any, timeout: float = 60.0) -> Any:
        return self.lab.api(host, self.homes[host], method, *args, timeout=timeout)

    def stop_all(self) -> None:
        for host in reversed(NAMES):
            self.lab.bitdust(host, self.homes[host], "stop", timeout=90)


@pytest.fixture
def network(tmp_path: Path) -> Generator[Network, None, None]:
    lab = Lab(HOSTS)
    try:
        lab.create()
    except NetnsUnavailable as exc:
        lab.remove()
        pytest.skip(f"no network namespaces on this machine: {exc}")
    net = Network(lab, tmp_path / "hosts")
    try:
        net.configure()
        yield net
    finally:
        try:
            net.stop_all()
        finally:
            leftovers = lab.remove()
        assert leftovers == [], leftovers


def _supplier_host(idurl: str) -> int:
    name = idurl.rsplit("/", 1)[-1].removesuffix(".xml")
    return next(host for host, known in NAMES.items() if known == name)


@pytest.mark.timeout(900)
def test_cut_link_is_a_dead_peer_and_mending_it_brings_the_peer_back(network: Network, tmp_path: Path) -> None:
    lab = network.lab
    network.start(SEED)
    with ThreadPoolExecutor(max_workers=len(NAMES) - 1) as pool:
        list(pool.map(network.start, [h for h in NAMES if h != SEED]))
    home = network.homes[CUSTOMER]
    network.api(CUSTOMER, "config_set", "services/backups/block-size", "256 KB")
    suppliers = lab.inside(CUSTOMER, hire_suppliers, home, len(SUPPLIER_HOSTS))
    assert sorted(_supplier_host(s) for s in suppliers) == list(SUPPLIER_HOSTS)

    # Each node is its own host: the identity says so and the customer's links go there.
    identity = network.api(CUSTOMER, "identity_get")
    assert f"tcp://{lab.address(CUSTOMER)}:" in " ".join(identity["contacts"]), identity["contacts"]
    peers = {row["host"] for row in network.api(CUSTOMER, "connections_list")}
    assert {lab.address(h) for h in SUPPLIER_HOSTS} <= peers, peers
    assert not any(host.startswith("127.") for host in peers), peers

    # Nothing listens on every interface; the API is on the namespace's own loopback only.
    from bitdust.daemon import running_pid
    from bitdust.home import Home

    pid = running_pid(Home(home))
    assert pid is not None
    bound = listeners(pid)
    api_port = Config(home / "config").get("interface/api/json-rpc-port")
    assert ("tcp", "127.0.0.1", api_port) in bound, bound
    assert {address for _proto, address, _port in bound} == {"127.0.0.1", lab.address(CUSTOMER)}, bound
    assert [port for _proto, address, port in bound if address == "127.0.0.1"] == [api_port], bound

    small = tmp_path / "small"
    make_sample(small, 300_000)
    done = lab.bitdust(CUSTOMER, home, "backup", "--json", str(small), timeout=WAIT)
    assert done.returncode == 0, done.stdout + done.stderr
    v1 = json.loads(done.stdout)["backupid"]

    big = tmp_path / "big"
    big.mkdir()
    (big / "big.bin").write_bytes(random.Random(3).randbytes(BIG))
    network.api(CUSTOMER, "backup_start_path", str(big))

    def sending() -> dict[str, Any] | None:
        jobs = [job for job in network.api(CUSTOMER, "backups_running") if job["sourcepath"] == str(big)]
        return jobs[0] if jobs and jobs[0]["blocknumber"] > 0 and jobs[0]["state"] == "RUNNING" else None

    job = wait_for(sending, "the 12 MB backup to be sending pieces", WAIT, poll=0.05)
    victim = SUPPLIER_HOSTS[0]
    victim_idurl = next(s for s in suppliers if _supplier_host(s) == victim)
    lab.cut(victim)
    cut_at = time.monotonic()
    assert not job["closed"] and job["progress"] < 100, job

    # -- a dead peer: seen offline, the version is not complete, v1 restores from the others
    offline = lab.inside(CUSTOMER, wait_offline, home, [victim_idurl], WAIT)
    rows = {row["idurl"]: row["status"] for row in network.api(CUSTOMER, "suppliers_list")}
    assert rows[victim_idurl] != "online" and offline == 1, rows
    print(f"\nsupplier {NAMES[victim]} cut mid-backup; seen offline after {time.monotonic() - cut_at:.1f} s")
    started = time.monotonic()
    dest = tmp_path / "restored-v1"
    done = lab.bitdust(CUSTOMER, home, "restore", "--json", v1, str(dest), timeout=WAIT * 2)
    assert done.returncode == 0, done.stdout + done.stderr
    assert compare_trees(small, dest / small.name) == []
    print(f"v1 restored from the 3 others in {time.monotonic() - started:.1f} s")
    versions = [row["backupid"] for row in network.api(CUSTOMER, "backups_id_list")]
    assert job["backupid"] not in versions, "a version is complete only when every supplier acknowledged it"

    # -- the cable is back ------------------------------------------------------------
    lab.mend(victim)
    mended_at = time.monotonic()
    answer = wait_for(lambda: _ping(network, victim_idurl), f"{NAMES[victim]} to answer a ping", WAIT, poll=1.0)
    assert "Ack" in answer, answer

    def back_online() -> bool:
        network.api(CUSTOMER, "suppliers_ping")
        return all(row["status"] == "online" for row in network.api(CUSTOMER, "suppliers_list"))

    wait_for(back_online, f"{NAMES[victim]} to be an online supplier again", WAIT, poll=2.0)
    print(f"link mended: {NAMES[victim]} online again after {time.monotonic() - mended_at:.1f} s")

    def job_over() -> bool:
        return not any(j["backupid"] == job["backupid"] and not j["closed"]
                       for j in network.api(CUSTOMER, "backups_running"))

    wait_for(job_over, "the interrupted backup to end", WAIT * 2)
    versions = [row["backupid"] for row in network.api(CUSTOMER, "backups_id_list")]
    if job["backupid"] in versions:
        # The cable came back while its pieces were still being retried: the job finished.
        v2 = job["backupid"]
        outcome = "completed once the link was back (its pieces were still being retried)"
    else:
        # The retries ran out first: the job failed and dropped the version; do it again.
        done = lab.bitdust(CUSTOMER, home, "backup", "--json", str(big), timeout=WAIT * 2)
        assert done.returncode == 0, done.stdout + done.stderr
        v2 = json.loads(done.stdout)["backupid"]
        outcome = "failed without leaving a version; backed up again"
    print(f"the interrupted backup {outcome}, {time.monotonic() - cut_at:.1f} s after the cut")
    dest = tmp_path / "restored-v2"
    done = lab.bitdust(CUSTOMER, home, "restore", "--json", v2, str(dest), timeout=WAIT * 2)
    assert done.returncode == 0, done.stdout + done.stderr
    assert compare_trees(big, dest / big.name) == []


def _ping(network: Network, idurl: str) -> str | None:
    from bitdust.netjobs import NetJobError

    try:
        return str(network.api(CUSTOMER, "ping", idurl, 5))
    except NetJobError:
        return None
