"""API benchmark: start-up time and config_get latency under concurrent clients.

Prints:
- seconds from ``bitdust start`` to the API answering (the CLI waits for exactly that);
- median and p99 latency of ``config_get`` over N calls made by C concurrent clients,
  each on its own keep-alive HTTP connection (asyncio, so the client adds little).

Targets (issue 2): start-up under 1.5 s; p99 under 20 ms. Figures only, no pass/fail.
Run: ``python bench/api.py [--calls 2000] [--clients 50]``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import psutil

from bitdust.api.client import ApiClient
from bitdust.config import Config
from bitdust.daemon import running_pid
from bitdust.home import Home
from bitdust.util.net import free_port


async def client_session(port: int, secret: str, calls: int, latencies: list[float],
                         first_calls: list[float]) -> None:
    """``calls`` sequential calls on one keep-alive connection. The first call pays for
    the connection in the burst of all clients connecting at once: it is recorded apart."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    body = json.dumps({"jsonrpc": "2.0", "id": 1, "method": "config_get", "params": ["logs/debug-level"]}).encode()
    head = (f"POST / HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nAuthorization: Bearer {secret}\r\n"
            f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n").encode()
    try:
        for number in range(calls):
            started = time.perf_counter()
            writer.write(head + body)
            await writer.drain()
            length = 0
            while True:
                line = await reader.readline()
                if not line:
                    raise ConnectionError("server closed the connection")
                if line.lower().startswith(b"content-length:"):
                    length = int(line.split(b":")[1])
                if line in (b"\r\n", b"\n"):
                    break
            answer = json.loads(await reader.readexactly(length))
            (first_calls if number == 0 else latencies).append(time.perf_counter() - started)
            if answer["result"]["status"] != "OK":
                raise RuntimeError(f"unexpected answer {answer}")
    finally:
        writer.close()


async def load(port: int, secret: str, calls: int, clients: int) -> tuple[list[float], list[float], float]:
    latencies: list[float] = []
    first_calls: list[float] = []
    per_client = calls // clients + 1
    started = time.perf_counter()
    await asyncio.gather(*(client_session(port, secret, per_client, latencies, first_calls) for _ in range(clients)))
    return latencies, first_calls, time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--calls", type=int, default=2000)
    parser.add_argument("--clients", type=int, default=50)
    parser.add_argument("--starts", type=int, default=3, help="how many start-ups to time")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="bitdust-bench-api-") as tmp:
        home = Path(tmp) / "node"
        config = Config(home / "config")
        config.set("interface/api/json-rpc-port", free_port())
        # The key is made once, before timing: start-up time is about the daemon, not RSA key generation.
        first = subprocess.run([sys.executable, "-m", "bitdust", "--home", str(home), "start"],
                               capture_output=True, text=True, timeout=120, check=True)
        print(f"first start (creates the 3072-bit key): {first.stdout.strip()}")
        start_times = []
        pid = None
        for _ in range(args.starts):
            subprocess.run([sys.executable, "-m", "bitdust", "--home", str(home), "stop"],
                           capture_output=True, timeout=120, check=True)
            began = time.perf_counter()
            subprocess.run([sys.executable, "-m", "bitdust", "--home", str(home), "start"],
                           capture_output=True, timeout=120, check=True)
            start_times.append(time.perf_counter() - began)
        try:
            pid = running_pid(Home(home))
            client = ApiClient.from_home(home)
            port = int(client.url.rsplit(":", 1)[1].strip("/"))
            assert client.secret is not None
            daemon = psutil.Process(pid)
            cpu_before = sum(daemon.cpu_times()[:2])
            latencies, first_calls, wall = asyncio.run(load(port, client.secret, args.calls, args.clients))
            cpu_per_call = (sum(daemon.cpu_times()[:2]) - cpu_before) / (len(latencies) + len(first_calls))
            rss = daemon.memory_info().rss
        finally:
            subprocess.run([sys.executable, "-m", "bitdust", "--home", str(home), "stop"],
                           capture_output=True, timeout=120, check=False)
            if pid is not None and psutil.pid_exists(pid):
                os.kill(pid, signal.SIGKILL)

    latencies.sort()
    p99 = latencies[int(len(latencies) * 0.99) - 1]
    print(f"machine: {os.cpu_count()} cores, python {sys.version.split()[0]}")
    print(f"start-up to API answering: best {min(start_times):.3f} s, "
          f"median {statistics.median(start_times):.3f} s over {len(start_times)} starts  (target < 1.5 s)")
    print(f"config_get: {len(latencies)} calls after one warm-up call per client, {args.clients} concurrent clients, "
          f"{(len(latencies) + len(first_calls)) / wall:.0f} calls/s")
    print(f"  median {statistics.median(latencies) * 1000:.2f} ms, p99 {p99 * 1000:.2f} ms  (target p99 < 20 ms)")
    print(f"  first call of each client (connect burst): median {statistics.median(first_calls) * 1000:.2f} ms, "
          f"max {max(first_calls) * 1000:.2f} ms")
    floor = args.clients / ((len(latencies) + len(first_calls)) / wall)
    print(f"  daemon CPU per call {cpu_per_call * 1000:.3f} ms; {args.clients} in flight / calls per s = "
          f"{floor * 1000:.1f} ms (the queueing floor of the median, Little's law)")
    print(f"  daemon RSS after the run: {rss / 1024 / 1024:.1f} MB")


if __name__ == "__main__":
    main()
