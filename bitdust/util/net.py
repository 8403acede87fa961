"""Loopback helpers shared by the local network, the tests and the benchmarks."""

from __future__ import annotations

import collections
import random
import socket
from pathlib import Path

LOOPBACK = "127.0.0.1"
EPHEMERAL_RANGE_FILE = Path("/proc/sys/net/ipv4/ip_local_port_range")
DEFAULT_EPHEMERAL_LOW = 32768
PICK_SPAN = 12000
PICK_ATTEMPTS = 64


class _Handed:
    """Ports this process handed out recently. A port is only *free* until someone binds
    it, and callers often take several before binding any (a grid of nodes, each with a
    TCP, UDP and API port): without this record two of them could draw the same one.
    The one piece of process-wide state here, bounded; it belongs to no node."""

    def __init__(self, size: int) -> None:
        self.size = size
        self.ports: collections.OrderedDict[tuple[int, int], None] = collections.OrderedDict()

    def take(self, kind: int, port: int) -> bool:
        key = (kind, port)
        if key in self.ports:
            return False
        self.ports[key] = None
        while len(self.ports) > self.size:
            self.ports.popitem(last=False)
        return True


_HANDED = _Handed(4096)


def free_port(kind: int = socket.SOCK_STREAM) -> int:
    """A port free on 127.0.0.1 right now, not handed out before by this process;
    ``kind`` SOCK_DGRAM for UDP.

    Picked at random *below* the kernel's ephemeral range: a port the kernel hands out
    (bind to 0) is also what it gives the next outgoing connection as its source port,
    so with many nodes starting at once such a port was sometimes taken by a connection
    before its node could listen on it ("Address already in use").
    """
    low = _ephemeral_low()
    start = max(1024, low - PICK_SPAN)
    for _attempt in range(PICK_ATTEMPTS):
        port = random.randrange(start, low)
        with socket.socket(socket.AF_INET, kind) as sock:
            try:
                sock.bind((LOOPBACK, port))
            except OSError:
                continue
        if _HANDED.take(kind, port):
            return port
    with socket.socket(socket.AF_INET, kind) as sock:  # that range is crowded: let the kernel pick
        sock.bind((LOOPBACK, 0))
        return int(sock.getsockname()[1])


def free_udp_port() -> int:
    return free_port(socket.SOCK_DGRAM)


def _ephemeral_low() -> int:
    try:
        return int(EPHEMERAL_RANGE_FILE.read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return DEFAULT_EPHEMERAL_LOW
