"""Separate hosts on one machine: Linux network namespaces joined by a bridge.

A *hub* namespace holds a bridge ``br0``; every host is a namespace of its own with one
veth pair: ``eth0`` inside the host (address ``10.77.0.<n>/24``, plus its own ``lo``) and
``p<n>`` inside the hub, enslaved to the bridge. The pairs are created from inside the hub
straight into the host namespace, so nothing is ever added to the machine's own namespace
and parallel runs (names carry the pid) cannot clash. Cutting a host's link is
``ip link set p<n> down`` on the hub side — the cable pulled at the switch: the host keeps
its address and its processes, but nothing reaches it and nothing leaves it.

The daemons run inside their namespaces (``ip netns exec``); their API stays on the
namespace's own 127.0.0.1, so the test reaches it from a thread that entered the
namespace (``setns(2)`` changes the namespace of the calling thread only).

:meth:`Lab.remove` stops every process left in the lab's namespaces (they can only be
ours: the namespaces are) and deletes the namespaces, which deletes the veth pairs.
"""

from __future__ import annotations

import ctypes
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import psutil

from bitdust.netjobs import api

T = TypeVar("T")

SUBNET = "10.77.0"
CLONE_NEWNET = 0x40000000
IP_TIMEOUT = 30.0
KILL_TIMEOUT = 15.0


class NetnsUnavailable(RuntimeError):
    """This machine does not let us create namespaces, veth pairs or a bridge (not root,
    no CAP_NET_ADMIN, a container without them, no ``ip``); the message says which step."""


def ip(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    done = subprocess.run(["ip", *args], capture_output=True, text=True, timeout=IP_TIMEOUT, check=False)
    if check and done.returncode != 0:
        raise RuntimeError(f"ip {' '.join(args)} failed ({done.returncode}): {done.stderr.strip()}")
    return done


class Lab:
    """``hosts`` namespaces on one bridge; host ``n`` (from 1) has address ``10.77.0.<n>``."""

    def __init__(self, hosts: int, tag: str | None = None) -> None:
        self.tag = tag or str(os.getpid())
        self.hub = f"bd{self.tag}hub"
        self.hosts = hosts
        self.created: list[str] = []

    def ns(self, host: int) -> str:
        return f"bd{self.tag}h{host}"

    @staticmethod
    def address(host: int) -> str:
        return f"{SUBNET}.{host}"

    def create(self) -> None:
        """Build the lab; :class:`NetnsUnavailable` when the machine refuses the first step
        (the caller skips), RuntimeError for anything failing later."""
        try:
            done = subprocess.run(["ip", "netns", "add", self.hub], capture_output=True, text=True,
                                  timeout=IP_TIMEOUT, check=False)
        except FileNotFoundError:
            raise NetnsUnavailable("the `ip` command (iproute2) is not installed") from None
        if done.returncode != 0:
            raise NetnsUnavailable(f"`ip netns add` is not allowed here: {done.stderr.strip()} "
                                   f"(needs root or CAP_SYS_ADMIN and CAP_NET_ADMIN)")
        self.created.append(self.hub)
        try:
            ip("-n", self.hub, "link", "add", "br0", "type", "bridge")
        except RuntimeError as exc:
            raise NetnsUnavailable(f"cannot create a bridge: {exc}") from None
        ip("-n", self.hub, "link", "set", "lo", "up")
        ip("-n", self.hub, "link", "set", "br0", "up")
        for host in range(1, self.hosts + 1):
            ns = self.ns(host)
            ip("netns", "add", ns)
            self.created.append(ns)
            try:
                ip("-n", self.hub, "link", "add", f"p{host}", "type", "veth", "peer", "name", "eth0", "netns", ns)
            except RuntimeError as exc:
                raise NetnsUnavailable(f"cannot create a veth pair: {exc}") from None
            ip("-n", self.hub, "link", "set", f"p{host}", "master", "br0")
            ip("-n", self.hub, "link", "set", f"p{host}", "up")
            ip("-n", ns, "addr", "add", f"{self.address(host)}/24", "dev", "eth0")
            ip("-n", ns, "link", "set", "eth0", "up")
            ip("-n", ns, "link", "set", "lo", "up")

    def cut(self, host: int) -> None:
        """Pull host's cable at the switch."""
        ip("-n", self.hub, "link", "set", f"p{host}", "down")

    def mend(self, host: int) -> None:
        ip("-n", self.hub, "link", "set", f"p{host}", "up")

    def exec(self, host: int, *argv: str, timeout: float = 180.0) -> subprocess.CompletedProcess[str]:
        """Run a command inside host's namespace."""
        return subprocess.run(["ip", "netns", "exec", self.ns(host), *argv], capture_output=True, text=True,
                              timeout=timeout, check=False)

    def bitdust(self, host: int, home: Path, *args: str, timeout: float = 180.0) -> subprocess.CompletedProcess[str]:
        return self.exec(host, sys.executable, "-m", "bitdust", "--home", str(home), *args, timeout=timeout)

    def inside(self, host: int, fn: Callable[..., T], *args: Any, timeout: float = 300.0) -> T:
        """``fn(*args)`` on a thread that entered host's network namespace (so a socket it
        opens to 127.0.0.1 reaches that host's loopback); its result or its exception."""
        outcome: dict[str, Any] = {}

        def run() -> None:
            try:
                libc = ctypes.CDLL(None, use_errno=True)
                fd = os.open(f"/run/netns/{self.ns(host)}", os.O_RDONLY)
                try:
                    if libc.setns(fd, CLONE_NEWNET) != 0:
                        raise OSError(ctypes.get_errno(), f"setns into {self.ns(host)}")
                finally:
                    os.close(fd)
                outcome["result"] = fn(*args)
            except BaseException as exc:  # handed over to the calling thread below
                outcome["error"] = exc

        thread = threading.Thread(target=run, name=f"in-{self.ns(host)}", daemon=True)
        thread.start()
        thread.join(timeout)
        if thread.is_alive():
            raise TimeoutError(f"{getattr(fn, '__name__', fn)} in {self.ns(host)} took over {timeout:.0f} s")
        if "error" in outcome:
            raise outcome["error"]
        return outcome["result"]

    def api(self, host: int, home: Path, method: str, *args: Any, timeout: float = 60.0) -> Any:
        """``netjobs.api`` (the result of an OK answer) from inside host's namespace."""
        return self.inside(host, lambda: api(home, method, *args, timeout=timeout), timeout=timeout + 10)

    def pids(self) -> list[int]:
        found: list[int] = []
        for ns in self.created:
            done = ip("netns", "pids", ns, check=False)
            found += [int(word) for word in done.stdout.split() if word.isdigit()]
        return found

    def remove(self) -> list[str]:
        """Kill what still runs in the lab's namespaces, delete them; what was left behind."""
        leftovers = [f"pid {pid} ({_name(pid)}) was still running" for pid in self.pids()]
        for pid in self.pids():
            _kill(pid)
        for ns in reversed(self.created):
            ip("netns", "del", ns, check=False)
        remaining = set(ip("netns", "list", check=False).stdout.split()) & set(self.created)
        leftovers += [f"namespace {ns} could not be deleted" for ns in sorted(remaining)]
        self.created = []
        return leftovers


def listeners(pid: int) -> list[tuple[str, str, int]]:
    """``(proto, address, port)`` of every IPv4 TCP listener and bound UDP socket in the
    network namespace of ``pid``, read from ``/proc/<pid>/net`` (which shows that
    process's namespace, not ours)."""
    found: list[tuple[str, str, int]] = []
    for proto, wanted_state in (("tcp", "0A"), ("udp", "07")):
        lines = Path(f"/proc/{pid}/net/{proto}").read_text().splitlines()[1:]
        for line in lines:
            fields = line.split()
            local, state = fields[1], fields[3]
            if state != wanted_state:
                continue
            address, port = local.split(":")
            octets = bytes.fromhex(address)[::-1]
            found.append((proto, ".".join(str(b) for b in octets), int(port, 16)))
    return found


def _name(pid: int) -> str:
    try:
        return " ".join(psutil.Process(pid).cmdline()[:6])
    except psutil.NoSuchProcess:
        return "gone"


def _kill(pid: int) -> None:
    try:
        process = psutil.Process(pid)
        os.kill(pid, signal.SIGKILL)
        process.wait(KILL_TIMEOUT)
    except (psutil.NoSuchProcess, ProcessLookupError):
        return


def wait_for(check: Callable[[], Any], what: str, timeout: float, poll: float = 0.5) -> Any:
    """Poll ``check`` until it returns something true, at most ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        result = check()
        if result:
            return result
        if time.monotonic() >= deadline:
            raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")
        time.sleep(poll)
