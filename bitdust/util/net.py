"""Loopback helpers shared by the local network, the tests and the benchmarks."""

from __future__ import annotations

import socket

LOOPBACK = "127.0.0.1"


def free_port(kind: int = socket.SOCK_STREAM) -> int:
    """A port free on 127.0.0.1 right now (the OS picks it); ``kind`` SOCK_DGRAM for UDP."""
    with socket.socket(socket.AF_INET, kind) as sock:
        sock.bind((LOOPBACK, 0))
        return int(sock.getsockname()[1])


def free_udp_port() -> int:
    return free_port(socket.SOCK_DGRAM)
