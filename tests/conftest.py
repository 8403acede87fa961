"""Shared fixtures: free loopback ports and node homes configured to use them."""

from __future__ import annotations

import socket
from collections.abc import Callable
from pathlib import Path

import pytest

from bitdust.config import Config


def free_port() -> int:
    """A TCP port free on 127.0.0.1 right now (the OS picks it)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def free_udp_port() -> int:
    """A UDP port free on 127.0.0.1 right now (the DHT listens on UDP)."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture
def make_home(tmp_path: Path) -> Callable[[str], Path]:
    """Create a node home whose API listens on a free loopback port."""

    def make(name: str = "node") -> Path:
        home = tmp_path / name
        config = Config(home / "config")
        config.set("interface/api/json-rpc-port", free_port())
        config.set("personal/private-key-size", 2048)  # 3072 is the default; tests need speed, not strength
        config.set("services/dht/udp-port", free_udp_port())
        return home

    return make
