"""The load run of issue 7 item 4, in one place for ``tests/reliability/test_load.py``
(which judges it) and ``bench/load.py`` (which only prints it).

20 daemons on 127.0.0.1 (``bitdust localnet``: a seed and 19 nodes). Three customers
(node1..node3) hire 4 suppliers each, and one supplier is made to serve all three
(``supplier_change`` where fire_hire did not already pick it), so suppliers are shared. While
the three back up a few MB each at the same time (``bitdust backup --json``, concurrently)
and then restore them, 200 API clients poll node1 — a customer that is itself encrypting,
coding and sending its backup (and usually a supplier of the others too) — each on its own keep-alive
HTTP connection, with a mix of read calls. Every version restores byte for byte.

Why each client pauses between calls (``think``, 1 s on average, random so the clients do
not march in step): a closed loop of 200 clients calling as fast as they can measures only
the queue (Little's law: latency = 200 / calls per second, whatever the server does). 200
clients each polling about once a second — what a GUI does — offer some 200 calls/s, and
show whether backups in the same reactor (and on the same 2 cores) stall the API.
``bench/load.py --think 0.25`` offers four times as much.

Leaks: ``psutil`` figures of the loaded daemon — open file descriptors, RSS, threads — are
taken after a warm-up (200 clients connected and served, suppliers hired, so every pool and
cache has its working size) and again after the run once every client has disconnected.
"""

from __future__ import annotations

import asyncio
import json
import math
import os
import random
import signal
import statistics
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psutil

from bitdust import localnet
from bitdust.api.client import ApiClient
from bitdust.netjobs import NetJobError, api, compare_trees, hire_suppliers, make_sample

NODES = 19
"""Ordinary nodes besides the seed: 20 daemons in all."""
CUSTOMERS = 3
SUPPLIERS = 4
CLIENTS = 200
THINK = 1.0
"""Mean seconds a client waits between two calls: 200 clients make about 200 calls/s."""
SAMPLE_BYTES = 6_000_000
"""The big file of each customer's sample folder (``make_sample`` adds about 0.3 MB)."""
BLOCK_SIZE = "256 KB"
WARMUP_CALLS = 3
"""Calls per client before the start figures are taken."""
JOB_TIMEOUT = 600.0
CALL_TIMEOUT = 30.0
READ_CALLS: tuple[tuple[str, list[Any]], ...] = (
    ("config_get", ["logs/debug-level"]),
    ("config_get", ["services/customer/suppliers-number"]),
    ("identity_get", []),
    ("services_list", []),
    ("automats_list", []),
    ("suppliers_list", []),
    ("backups_id_list", []),
    ("backups_running", []),
    ("space_local", []),
    ("packets_stats", []),
)
"""What the clients ask, in turn: read calls a GUI makes, cheap and not so cheap."""


@dataclass
class ProcessFigures:
    fds: int
    rss: int
    threads: int
    connections: int

    @classmethod
    def of(cls, pid: int) -> ProcessFigures:
        process = psutil.Process(pid)
        return cls(process.num_fds(), process.memory_info().rss, process.num_threads(),
                   len(process.net_connections(kind="inet")))

    def __str__(self) -> str:
        return (f"{self.fds} fds, RSS {self.rss / 2**20:.1f} MB, {self.threads} threads, "
                f"{self.connections} inet sockets")


@dataclass
class ApiLoadFigures:
    latencies: list[float] = field(default_factory=list)
    """Seconds of every call made after the warm-up."""
    by_method: dict[str, list[float]] = field(default_factory=dict)
    client_lag: list[float] = field(default_factory=list)
    """How late the clients' own event loop woke up (a 10 ms ticker): when this is large
    the machine starved the measuring side too, and the latencies include that."""
    errors: list[str] = field(default_factory=list)
    wall: float = 0.0
    clients_connected: int = 0

    def percentile(self, fraction: float) -> float:
        return percentile(self.latencies, fraction)

    @property
    def rate(self) -> float:
        return len(self.latencies) / self.wall if self.wall else 0.0

    def __str__(self) -> str:
        if not self.latencies:
            return f"no calls made; errors: {self.errors[:3]}"
        return (f"{len(self.latencies)} calls by {self.clients_connected} clients in {self.wall:.1f} s = "
                f"{self.rate:.0f} calls/s; median {statistics.median(self.latencies) * 1000:.1f} ms, "
                f"p99 {self.percentile(0.99) * 1000:.1f} ms, max {max(self.latencies) * 1000:.1f} ms; "
                f"{len(self.errors)} errors")

    def slowest_methods(self, count: int = 3) -> str:
        """The methods with the highest p99, to see whether one call makes the tail."""
        rows = sorted(((percentile(v, 0.99), name) for name, v in self.by_method.items() if v), reverse=True)
        return ", ".join(f"{name} p99 {p99 * 1000:.1f} ms" for p99, name in rows[:count])


def percentile(values: list[float], fraction: float) -> float:
    """The nearest-rank percentile: the smallest value with ``fraction`` of all at or below it."""
    if not values:
        raise ValueError("no values")
    ordered = sorted(values)
    rank = max(1, min(len(ordered), math.ceil(fraction * len(ordered))))
    return ordered[rank - 1]


class ApiLoad:
    """``clients`` concurrent JSON-RPC clients on one daemon, in a thread of their own
    (an asyncio loop: one coroutine and one keep-alive connection per client), from
    :meth:`start` until :meth:`stop`. Every call's answer is checked to be JSON-RPC with
    a ``result``; anything else is an error, recorded with what came back."""

    def __init__(self, home: Path, clients: int = CLIENTS, think: float = THINK, seed: int = 7) -> None:
        client = ApiClient.from_home(home)
        if client.secret is None:
            raise NetJobError(f"{home} has no API secret")
        self.host, port = client.url.removeprefix("http://").strip("/").rsplit(":", 1)
        self.port = int(port)
        self.secret = client.secret
        self.clients = clients
        self.think = think
        self.figures = ApiLoadFigures()
        self._rng = random.Random(seed)
        self._warm = threading.Event()
        self._warm_count = 0
        self._stopping = threading.Event()
        self._warm_at = 0.0
        self._thread = threading.Thread(target=self._run, name="api-load", daemon=True)

    def start(self, timeout: float = 120.0) -> None:
        """Connect every client and let each make ``WARMUP_CALLS`` calls (not counted);
        return once all are warm, so the caller can take its start figures."""
        self._thread.start()
        if not self._warm.wait(timeout):
            raise NetJobError(f"only {self._warm_count} of {self.clients} API clients warmed up in {timeout:.0f} s; "
                              f"errors: {self.figures.errors[:3]}")
        if self.figures.errors:
            raise NetJobError(f"API clients failed while warming up: {self.figures.errors[:3]}")

    def stop(self, timeout: float = 60.0) -> ApiLoadFigures:
        """Let every client finish its call in flight, close its connection, and return the figures."""
        self._stopping.set()
        self._thread.join(timeout)
        if self._thread.is_alive():
            raise NetJobError(f"the API clients did not stop within {timeout:.0f} s")
        return self.figures

    def _run(self) -> None:
        try:
            asyncio.run(self._all())
        except Exception as exc:
            self.figures.errors.append(f"load thread: {exc!r}")
        finally:
            self._warm.set()
        self.figures.wall = time.perf_counter() - self._warm_at

    def _one_warm(self) -> None:
        """A client made its warm-up calls (or gave up); the last one starts the measured run."""
        self._warm_count += 1
        if self._warm_count == self.clients:
            self._warm_at = time.perf_counter()
            self._warm.set()

    async def _all(self) -> None:
        self._warm_at = time.perf_counter()
        ticker = asyncio.create_task(self._tick())
        try:
            await asyncio.gather(*(self._client(number) for number in range(self.clients)))
        finally:
            ticker.cancel()

    async def _tick(self, period: float = 0.01) -> None:
        while not self._stopping.is_set():
            started = time.perf_counter()
            await asyncio.sleep(period)
            if self._warm.is_set():
                self.figures.client_lag.append(time.perf_counter() - started - period)

    async def _client(self, number: int) -> None:
        rng = random.Random(self._rng.random() + number)
        try:
            reader, writer = await asyncio.wait_for(asyncio.open_connection(self.host, self.port), CALL_TIMEOUT)
        except (OSError, TimeoutError) as exc:
            self.figures.errors.append(f"client {number}: connect: {exc!r}")
            self._one_warm()
            return
        self.figures.clients_connected += 1
        calls = 0
        try:
            while not self._stopping.is_set():
                method, params = READ_CALLS[(number + calls) % len(READ_CALLS)]
                started = time.perf_counter()
                try:
                    answer = await asyncio.wait_for(self._call(reader, writer, calls, method, params), CALL_TIMEOUT)
                except (OSError, TimeoutError, ValueError, asyncio.IncompleteReadError) as exc:
                    self.figures.errors.append(f"client {number}: {method}: {exc!r}")
                    return
                elapsed = time.perf_counter() - started
                result = answer.get("result") if isinstance(answer, dict) else None
                if not isinstance(result, dict) or result.get("status") != "OK":
                    self.figures.errors.append(f"client {number}: {method}: {str(answer)[:300]}")
                calls += 1
                if calls == WARMUP_CALLS:
                    self._one_warm()
                elif self._warm.is_set():
                    self.figures.latencies.append(elapsed)
                    self.figures.by_method.setdefault(method, []).append(elapsed)
                await asyncio.sleep(rng.uniform(0, 2 * self.think))
        finally:
            if calls < WARMUP_CALLS:
                self._one_warm()
            writer.close()
            try:
                await writer.wait_closed()
            except OSError as exc:
                self.figures.errors.append(f"client {number}: close: {exc!r}")

    async def _call(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, call_id: int, method: str,
                    params: list[Any]) -> Any:
        body = json.dumps({"jsonrpc": "2.0", "id": call_id, "method": method, "params": params}).encode()
        writer.write((f"POST / HTTP/1.1\r\nHost: {self.host}:{self.port}\r\nAuthorization: Bearer {self.secret}\r\n"
                      f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n").encode() + body)
        await writer.drain()
        status = await reader.readline()
        if not status.startswith(b"HTTP/1.1 200"):
            raise ValueError(f"HTTP answer {status!r}")
        length = None
        while True:
            line = await reader.readline()
            if not line:
                raise ConnectionError("the daemon closed the connection")
            if line.lower().startswith(b"content-length:"):
                length = int(line.split(b":", 1)[1])
            if line in (b"\r\n", b"\n"):
                break
        if length is None:
            raise ValueError("answer without Content-Length")
        return json.loads(await reader.readexactly(length))


FD_SLACK = 8
"""Open descriptors the loaded daemon may hold at the end beyond its start figure: a few
peer connections opened or closed by the run (suppliers answering, the catalog copy)."""
SETTLE_TIMEOUT = 60.0
"""Seconds the end figures may take to come back within the bounds (closing is asynchronous)."""


@dataclass
class LoadReport:
    """Everything the run measured; the test judges it, the bench prints it."""

    folder: Path
    think: float = THINK
    started_in: float = 0.0
    suppliers: dict[str, list[str]] = field(default_factory=dict)
    shared_supplier: str = ""
    before: ProcessFigures | None = None
    after: ProcessFigures | None = None
    api: ApiLoadFigures = field(default_factory=ApiLoadFigures)
    backups: dict[str, dict[str, Any]] = field(default_factory=dict)
    backup_seconds: float = 0.0
    restore_seconds: float = 0.0
    differences: dict[str, list[str]] = field(default_factory=dict)
    dead_nodes: list[str] = field(default_factory=list)
    load_average: float = 0.0

    def lines(self) -> list[str]:
        names = {node: node.rsplit("/", 1)[-1].removesuffix(".xml") for row in self.suppliers.values() for node in row}
        lines = [f"{NODES + 1} daemons on 127.0.0.1 online in {self.started_in:.1f} s "
                 f"({os.cpu_count()} cores, python {sys.version.split()[0]})"]
        for customer, row in self.suppliers.items():
            lines.append(f"  {customer} backs up to {', '.join(names[s] for s in row)}")
        lines.append(f"  supplier of all {CUSTOMERS} customers: {names.get(self.shared_supplier, '-')}")
        sizes = ", ".join(f"{c} {b.get('source_bytes', 0) / 2**20:.1f} MB" for c, b in self.backups.items())
        lines.append(f"{CUSTOMERS} concurrent backups ({sizes}) done in {self.backup_seconds:.1f} s; "
                     f"restored in {self.restore_seconds:.1f} s, "
                     f"{sum(len(d) for d in self.differences.values())} differences")
        lines.append(f"API of node1 under {CLIENTS} clients (mean pause {self.think:g} s) during backups and restores:")
        lines.append(f"  {self.api}")
        if self.api.by_method:
            lines.append(f"  slowest: {self.api.slowest_methods()}")
        if self.api.client_lag:
            lag = percentile(self.api.client_lag, 0.99) * 1000
            lines.append(f"  the clients' own loop woke up late by p99 {lag:.1f} ms; load average at the end "
                         f"{self.load_average:.1f} on {os.cpu_count()} cores (CPU contention, seen from the outside)")
        lines.append(f"node1 at start: {self.before}")
        lines.append(f"node1 at end:   {self.after}")
        if self.before and self.after:
            growth = (self.after.rss - self.before.rss) / 2**20
            lines.append(f"  fds {self.after.fds - self.before.fds:+d}, RSS {growth:+.1f} MB, "
                         f"threads {self.after.threads - self.before.threads:+d}")
        return lines


def _pid(node: dict[str, Any]) -> int:
    return int(node["pid"])


def _share_one_supplier(customers: list[dict[str, Any]]) -> str:
    """Make one supplier serve every customer (``supplier_change`` where fire_hire did not
    already do it) and return its idurl."""
    rows = {c["idurl"]: [row["idurl"] for row in api(c["home"], "suppliers_list")] for c in customers}
    customer_ids = set(rows)
    counts: dict[str, int] = {}
    for row in rows.values():
        for idurl in row:
            if idurl and idurl not in customer_ids:
                counts[idurl] = counts.get(idurl, 0) + 1
    if not counts:
        raise NetJobError(f"no supplier outside the customers: {rows}")
    shared = max(sorted(counts), key=lambda idurl: counts[idurl])
    for customer in customers:
        row = rows[customer["idurl"]]
        if shared in row:
            continue
        position = min(range(len(row)), key=lambda i: counts.get(row[i], 0))
        api(customer["home"], "supplier_change", position, shared, timeout=120)
    return shared


def _run_all(commands: dict[str, list[str]], timeout: float) -> dict[str, dict[str, Any]]:
    """Run one ``bitdust ... --json`` command per customer at the same time; their JSON answers."""
    processes = {name: subprocess.Popen([sys.executable, "-m", "bitdust", *args], stdout=subprocess.PIPE,
                                        stderr=subprocess.PIPE, text=True) for name, args in commands.items()}
    answers: dict[str, dict[str, Any]] = {}
    try:
        for name, process in processes.items():
            out, err = process.communicate(timeout=timeout)
            if process.returncode != 0:
                raise NetJobError(f"{name}: bitdust {' '.join(commands[name])} failed: {out}{err}")
            answers[name] = dict(json.loads(out))
    finally:
        for process in processes.values():
            if process.poll() is None:
                process.kill()
                process.wait(10)
    return answers


def run(workdir: Path, report: LoadReport | None = None, think: float = THINK) -> LoadReport:
    """The whole run in ``workdir`` (network, samples, restores); the network is stopped
    and every daemon killed by pid whatever happens. Fills and returns ``report`` — pass
    one in to keep what was measured when a step raises."""
    report = report or LoadReport(workdir / "net")
    report.think = think
    pids: list[int] = []
    began = time.monotonic()
    try:
        nodes = localnet.start(report.folder, NODES)
        pids = [_pid(node) for node in nodes]
        report.started_in = time.monotonic() - began
        customers = nodes[1:1 + CUSTOMERS]
        for customer in customers:
            api(customer["home"], "config_set", "services/backups/block-size", BLOCK_SIZE)
        for customer in customers:
            hire_suppliers(customer["home"], SUPPLIERS)
        report.shared_supplier = _share_one_supplier(customers)
        for customer in customers:
            report.suppliers[customer["name"]] = hire_suppliers(customer["home"], SUPPLIERS)
        loaded = customers[0]

        # Warm-up: every client connects and is served, then all disconnect.
        warm_up = ApiLoad(Path(loaded["home"]), think=think, seed=1)
        warm_up.start()
        warm_up.stop()
        report.before = _settled(_pid(loaded), None)

        samples = {c["name"]: workdir / "samples" / c["name"] for c in customers}
        for number, root in enumerate(samples.values()):
            make_sample(root, SAMPLE_BYTES, seed=number + 1)
        restored = {c["name"]: workdir / "restored" / c["name"] for c in customers}
        load = ApiLoad(Path(loaded["home"]), think=think, seed=2)
        load.start()
        try:
            started = time.monotonic()
            report.backups = _run_all({c["name"]: ["--home", c["home"], "backup", "--json", str(samples[c["name"]])]
                                       for c in customers}, JOB_TIMEOUT)
            report.backup_seconds = time.monotonic() - started
            started = time.monotonic()
            _run_all({c["name"]: ["--home", c["home"], "restore", "--json", report.backups[c["name"]]["backupid"],
                                  str(restored[c["name"]])] for c in customers}, JOB_TIMEOUT)
            report.restore_seconds = time.monotonic() - started
        finally:
            report.api = load.stop()
            report.load_average = os.getloadavg()[0]
        for name, root in samples.items():
            report.differences[name] = compare_trees(root, restored[name] / root.name)
        report.dead_nodes = [node["name"] for node in nodes if not _alive(_pid(node))]
        report.after = _settled(_pid(loaded), report.before)
        return report
    finally:
        if report.folder.is_dir():
            localnet.stop(report.folder)
        for pid in pids:
            if _alive(pid):
                os.kill(pid, signal.SIGKILL)


def _alive(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


def _settled(pid: int, before: ProcessFigures | None) -> ProcessFigures:
    """The daemon's figures once its descriptors stopped moving (start) or came back within
    ``FD_SLACK`` of ``before`` (end); the last figures when that does not happen in time."""
    deadline = time.monotonic() + SETTLE_TIMEOUT
    last = ProcessFigures.of(pid)
    while time.monotonic() < deadline:
        time.sleep(1.0)
        now = ProcessFigures.of(pid)
        if before is None and now.fds == last.fds:
            return now
        if before is not None and now.fds <= before.fds + FD_SLACK:
            return now
        last = now
    return last
