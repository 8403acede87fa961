"""API benchmark: start-up time and config_get latency under concurrent clients.

Prints figures, judges nothing:

- seconds from ``bitdust start`` to the API answering (the CLI returns at exactly that
  moment: the daemon tells it over a pipe once the node is READY and the API listens),
  timed twice:

  * *as installed here*: the package as this environment runs it. Under
    ``PYTHONDONTWRITEBYTECODE=1`` an editable install has no bytecode of its own, so
    each process compiles every bitdust module it imports (about 0.9 MB of source);
  * *with bytecode*: the same source copied to a temporary folder and compiled first,
    as ``pip install`` does for a regular install or any run without that variable;

- median and p99 latency of ``config_get`` over N calls made by C concurrent clients,
  each on its own keep-alive HTTP connection, repeated ``--rounds`` times so the spread
  shows. The clients run on uvloop with a minimal HTTP parser: on a 2-core machine a
  heavier client would take CPU from the daemon and measure itself.

Next to it, the machine's own limit: the same load on a bare ``twisted.web`` resource
answering a constant JSON body, on the same reactor and loop as the daemon, in a
process of its own (``--bare-web PORT`` runs that server). Its rounds alternate with
the daemon's, so both see the same moments of a noisy machine.

The load average is printed with the figures: other processes on the machine change
them a lot. Targets (issue 2): start-up under 1.5 s; p99 under 20 ms.
Run: ``python bench/api.py [--calls 2000] [--clients 50] [--starts 5] [--rounds 3]``.
"""

from __future__ import annotations

import argparse
import asyncio
import compileall
import json
import os
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import cast

import psutil
import uvloop

import bitdust
from bitdust.api.client import ApiClient
from bitdust.config import Config
from bitdust.daemon import running_pid
from bitdust.home import Home
from bitdust.util.net import free_port


class RpcConnection(asyncio.Protocol):
    """One keep-alive HTTP/1.1 connection: send a request, wait for its whole answer."""

    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self._buffer = b""
        self._waiter: asyncio.Future[bytes] | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)  # uvloop's is not a subclass

    def data_received(self, data: bytes) -> None:
        self._buffer += data
        end = self._buffer.find(b"\r\n\r\n")
        if end < 0 or self._waiter is None:
            return
        length = 0
        for line in self._buffer[:end].split(b"\r\n")[1:]:
            name, _, value = line.partition(b":")
            if name.strip().lower() == b"content-length":
                length = int(value)
        if len(self._buffer) < end + 4 + length:
            return
        body, self._buffer = self._buffer[end + 4:end + 4 + length], self._buffer[end + 4 + length:]
        waiter, self._waiter = self._waiter, None
        waiter.set_result(body)

    def connection_lost(self, exc: Exception | None) -> None:
        if self._waiter is not None and not self._waiter.done():
            self._waiter.set_exception(ConnectionError(f"server closed the connection: {exc}"))

    async def request(self, data: bytes) -> bytes:
        assert self.transport is not None
        self._waiter = asyncio.get_running_loop().create_future()
        self.transport.write(data)
        return await self._waiter


async def client_session(port: int, secret: str, calls: int, latencies: list[float],
                         first_calls: list[float]) -> None:
    """``calls`` sequential calls on one keep-alive connection. The first call pays for
    the connection in the burst of all clients connecting at once: it is recorded apart."""
    loop = asyncio.get_running_loop()
    _transport, connection = await loop.create_connection(RpcConnection, "127.0.0.1", port)
    body = json.dumps({"jsonrpc": "2.0", "id": 1, "method": "config_get", "params": ["logs/debug-level"]}).encode()
    request = (f"POST / HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nAuthorization: Bearer {secret}\r\n"
               f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n").encode() + body
    try:
        for number in range(calls):
            started = time.perf_counter()
            answer = json.loads(await connection.request(request))
            (first_calls if number == 0 else latencies).append(time.perf_counter() - started)
            if answer["result"]["status"] != "OK":
                raise RuntimeError(f"unexpected answer {answer}")
    finally:
        assert connection.transport is not None
        connection.transport.close()


async def load(port: int, secret: str, calls: int, clients: int) -> tuple[list[float], list[float], float]:
    latencies: list[float] = []
    first_calls: list[float] = []
    per_client = calls // clients + 1
    started = time.perf_counter()
    await asyncio.gather(*(client_session(port, secret, per_client, latencies, first_calls) for _ in range(clients)))
    return latencies, first_calls, time.perf_counter() - started


def bitdust_cli(home: Path, command: str, env: dict[str, str] | None = None) -> None:
    subprocess.run([sys.executable, "-m", "bitdust", "--home", str(home), command],
                   capture_output=True, timeout=120, check=True, env=env)


def time_starts(home: Path, starts: int, env: dict[str, str] | None = None) -> tuple[list[float], list[float]]:
    """Wall seconds of ``bitdust start`` (from a stopped daemon) and the daemon's CPU
    seconds by then: CPU well below wall means the process waited for a core."""
    walls, cpus = [], []
    for _ in range(starts):
        bitdust_cli(home, "stop", env)
        began = time.perf_counter()
        bitdust_cli(home, "start", env)
        walls.append(time.perf_counter() - began)
        pid = running_pid(Home(home))
        assert pid is not None
        times = psutil.Process(pid).cpu_times()
        cpus.append(times.user + times.system)
    return walls, cpus


def compiled_copy(folder: Path) -> dict[str, str]:
    """The bitdust package copied under ``folder`` and compiled; the environment that
    makes ``python -m bitdust`` run that copy."""
    source = Path(bitdust.__file__).parent
    shutil.copytree(source, folder / "bitdust", ignore=shutil.ignore_patterns("__pycache__"))
    if not compileall.compile_dir(str(folder / "bitdust"), quiet=1):
        raise RuntimeError("the copied package does not compile")
    path = os.environ.get("PYTHONPATH")
    return {**os.environ, "PYTHONPATH": str(folder) + (os.pathsep + path if path else "")}


def has_bytecode() -> bool:
    import importlib.util

    cached = importlib.util.cache_from_source(str(Path(bitdust.__file__).parent / "node.py"))
    return Path(cached).is_file()


def start_line(label: str, walls: list[float], cpus: list[float]) -> str:
    return (f"  {label}: best {min(walls):.3f} s, median {statistics.median(walls):.3f} s, worst {max(walls):.3f} s "
            f"over {len(walls)} starts; daemon CPU by then median {statistics.median(cpus):.3f} s")


BARE_ANSWER = json.dumps({"jsonrpc": "2.0", "id": 1, "result": {
    "status": "OK", "result": [{"key": "logs/debug-level", "type": "integer", "value": 10}]}}).encode()


def run_bare_web(port: int) -> None:
    """The limit: twisted.web with nothing of BitDust, answering every POST at once."""
    from twisted.web import resource, server

    from bitdust.daemon import install_asyncio_reactor

    install_asyncio_reactor()
    from twisted.internet import reactor

    class Constant(resource.Resource):
        isLeaf = True

        def render_POST(self, request: server.Request) -> bytes:
            request.setHeader(b"content-type", b"application/json")
            return BARE_ANSWER

    reactor.listenTCP(port, server.Site(Constant()), interface="127.0.0.1")  # type: ignore[attr-defined]
    reactor.run()  # type: ignore[attr-defined]


def start_bare_web() -> tuple[subprocess.Popen[bytes], int]:
    port = free_port()
    process = subprocess.Popen([sys.executable, __file__, "--bare-web", str(port)])
    for _ in range(200):  # bounded: 20 s
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1):
                return process, port
        except OSError:
            if process.poll() is not None:
                break
            time.sleep(0.1)
    process.kill()
    process.wait(timeout=30)
    raise RuntimeError("the bare twisted.web server did not start")


def load_round(port: int, secret: str, calls: int, clients: int,
               server: psutil.Process) -> tuple[list[float], list[float], float, float]:
    cpu_before = sum(server.cpu_times()[:2])
    latencies, first_calls, wall = uvloop.run(load(port, secret, calls, clients))
    cpu_per_call = (sum(server.cpu_times()[:2]) - cpu_before) / (len(latencies) + len(first_calls))
    return sorted(latencies), first_calls, wall, cpu_per_call


def round_line(label: str, latencies: list[float], first_calls: list[float], wall: float, cpu_per_call: float) -> str:
    p99 = latencies[int(len(latencies) * 0.99) - 1]
    rate = (len(latencies) + len(first_calls)) / wall
    return (f"  {label}: median {statistics.median(latencies) * 1000:.2f} ms, p99 {p99 * 1000:.2f} ms, "
            f"{rate:.0f} calls/s, server CPU per call {cpu_per_call * 1000:.3f} ms")


def main() -> None:
    if len(sys.argv) == 3 and sys.argv[1] == "--bare-web":
        run_bare_web(int(sys.argv[2]))
        return
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--calls", type=int, default=2000)
    parser.add_argument("--clients", type=int, default=50)
    parser.add_argument("--starts", type=int, default=5, help="how many start-ups to time, each way")
    parser.add_argument("--rounds", type=int, default=3, help="how many times to run the config_get load")
    args = parser.parse_args()

    load_before = os.getloadavg()
    with tempfile.TemporaryDirectory(prefix="bitdust-bench-api-") as tmp:
        home = Path(tmp) / "node"
        config = Config(home / "config")
        config.set("interface/api/json-rpc-port", free_port())
        # The key is made once, before timing: start-up time is about the daemon, not RSA key generation.
        first = subprocess.run([sys.executable, "-m", "bitdust", "--home", str(home), "start"],
                               capture_output=True, text=True, timeout=120, check=True)
        print(f"first start (creates the 3072-bit key): {first.stdout.strip()}")
        pid = None
        try:
            installed = time_starts(home, args.starts)
            compiled = time_starts(home, args.starts, compiled_copy(Path(tmp) / "compiled"))
            pid = running_pid(Home(home))
            assert pid is not None
            client = ApiClient.from_home(home)
            port = int(client.url.rsplit(":", 1)[1].strip("/"))
            assert client.secret is not None
            daemon = psutil.Process(pid)
            bare, bare_port = start_bare_web()
            try:
                rounds = []
                for _ in range(args.rounds):
                    rounds.append((load_round(port, client.secret, args.calls, args.clients, daemon),
                                   load_round(bare_port, "", args.calls, args.clients, psutil.Process(bare.pid))))
            finally:
                bare.terminate()
                bare.wait(timeout=30)
            rss = daemon.memory_info().rss
        finally:
            subprocess.run([sys.executable, "-m", "bitdust", "--home", str(home), "stop"],
                           capture_output=True, timeout=120, check=False)
            if pid is not None and psutil.pid_exists(pid):
                os.kill(pid, signal.SIGKILL)
    load_after = os.getloadavg()

    print(f"machine: {os.cpu_count()} cores, python {sys.version.split()[0]}, load average "
          f"{load_before[0]:.2f} before, {load_after[0]:.2f} after")
    print("start-up, `bitdust start` until the API answers (target < 1.5 s):")
    bytecode = "has its bytecode" if has_bytecode() else "compiles its modules in every process"
    print(start_line(f"as installed here (bitdust {bytecode})", *installed))
    print(start_line("with bytecode (a compiled copy)", *compiled))
    print(f"config_get: {args.clients} concurrent clients, {args.calls} calls per round after one warm-up call "
          f"per client (target p99 < 20 ms):")
    for number, (ours, limit) in enumerate(rounds, 1):
        print(round_line(f"round {number}, daemon", *ours)
              + f"; first call (connect burst) median {statistics.median(ours[1]) * 1000:.1f} ms")
        print(round_line(f"round {number}, bare twisted.web (the limit)", *limit))
    p99s = sorted(ours[0][int(len(ours[0]) * 0.99) - 1] for ours, _ in rounds)
    print(f"  daemon p99 over the rounds: median {statistics.median(p99s) * 1000:.2f} ms, "
          f"worst {p99s[-1] * 1000:.2f} ms")
    print(f"  ({args.clients} in flight / calls per s is the queueing floor of the median, Little's law)")
    print(f"daemon RSS after the runs: {rss / 1024 / 1024:.1f} MB")


if __name__ == "__main__":
    main()
