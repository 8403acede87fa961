"""A local network of daemon processes, driven only through the ``bitdust`` CLI: a
message sent from one node arrives at another's ``receive_one_message``, and
``localnet stop`` leaves no process behind."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from collections.abc import Generator
from pathlib import Path
from typing import Any

import psutil
import pytest


def bitdust(*args: str, timeout: float = 180) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "bitdust", *args], capture_output=True, text=True,
                          timeout=timeout, check=False)


def pids_of(folder: Path) -> list[int]:
    state = folder / "localnet.json"
    if not state.exists():
        return []
    return [int(node["pid"]) for node in json.loads(state.read_text(encoding="utf-8")) if node.get("pid")]


def alive(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


@pytest.fixture
def localnet(tmp_path: Path) -> Generator[Path, None, None]:
    """A started local network of a seed and 3 nodes; always stopped at teardown, and any
    process that outlived ``localnet stop`` is killed so no test leaves one behind."""
    folder = tmp_path / "net"
    started = bitdust("localnet", "start", "--nodes", "3", "--dir", str(folder))
    try:
        assert started.returncode == 0, started.stdout + started.stderr
        yield folder
    finally:
        pids = pids_of(folder)
        bitdust("localnet", "stop", "--dir", str(folder), timeout=120)
        for pid in pids:
            if alive(pid):
                os.kill(pid, signal.SIGKILL)


def api(home: str, method: str, *args: str) -> tuple[int, Any]:
    done = bitdust("--home", home, "api", method, *args, timeout=60)
    return done.returncode, json.loads(done.stdout) if done.stdout.strip() else done.stderr


def test_message_through_the_cli_then_stop_leaves_nothing(localnet: Path) -> None:
    nodes = json.loads((localnet / "localnet.json").read_text(encoding="utf-8"))
    assert [n["name"] for n in nodes] == ["seed", "node1", "node2", "node3"]
    node1, node2 = nodes[1], nodes[2]

    code, answer = api(node1["home"], "send_message", node2["idurl"], "hello")
    assert code == 0 and answer["status"] == "OK", answer
    assert answer["result"][0].startswith("signed.Packet[Message(")
    code, answer = api(node2["home"], "receive_one_message")
    assert code == 0, answer
    assert answer == {"status": "OK", "result": [{"from": node1["idurl"], "message": "hello"}]}

    pids = pids_of(localnet)
    assert len(pids) == 4 and all(alive(pid) for pid in pids)
    stopped = bitdust("localnet", "stop", "--dir", str(localnet), timeout=120)
    assert stopped.returncode == 0, stopped.stdout + stopped.stderr
    assert [pid for pid in pids if alive(pid)] == [], "every node process is gone"
