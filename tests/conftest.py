"""Shared fixtures: free loopback ports and node homes configured to use them."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from bitdust.config import Config
from bitdust.util.net import free_port, free_udp_port


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
