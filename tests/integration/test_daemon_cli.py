"""The daemon as a user runs it: separate processes driven through the ``bitdust`` CLI."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Generator
from pathlib import Path

import psutil
import pytest

from bitdust.api.client import ApiClient
from bitdust.daemon import running_pid
from bitdust.home import Home


def bitdust(home: Path, *args: str, timeout: float = 90) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "bitdust", "--home", str(home), *args],
                          capture_output=True, text=True, timeout=timeout, check=False)


def wait_until(predicate: Callable[[], bool], timeout: float = 30.0, what: str = "condition") -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.05)
    raise AssertionError(f"timed out after {timeout} s waiting for {what}")


@pytest.fixture
def daemon_home(make_home: Callable[[str], Path]) -> Generator[Path, None, None]:
    """A home whose daemon is always stopped (by pid) when the test ends."""
    home = make_home("daemon")
    yield home
    pid = running_pid(Home(home))
    if pid is not None:
        os.kill(pid, signal.SIGKILL)
        psutil.Process(pid).wait(timeout=30)


def test_lifecycle_through_cli(daemon_home: Path) -> None:
    started = bitdust(daemon_home, "start")
    assert started.returncode == 0, started.stderr
    assert "BitDust started" in started.stdout
    pid = running_pid(Home(daemon_home))
    assert pid is not None

    again = bitdust(daemon_home, "start")
    assert again.returncode == 0
    assert f"already running in {daemon_home} (pid {pid})" in again.stdout

    status = bitdust(daemon_home, "status")
    assert status.returncode == 0
    assert "initializer: READY" in status.stdout and "network: CONNECTED" in status.stdout

    listed = bitdust(daemon_home, "api", "config_get", "logs/debug-level")
    assert listed.returncode == 0
    assert json.loads(listed.stdout)["result"][0]["key"] == "logs/debug-level"

    refused = bitdust(daemon_home, "api", "config_set", "services/backups/max-block-size", "lots")
    assert refused.returncode == 1
    assert json.loads(refused.stdout)["status"] == "ERROR"

    keyword = bitdust(daemon_home, "api", "config_set", "key=logs/debug-level", "value=7")
    assert json.loads(keyword.stdout)["result"][0]["value"] == "7"

    unknown = bitdust(daemon_home, "api", "no_such_method")
    assert unknown.returncode == 2 and "-32601" in unknown.stderr

    online_set = bitdust(daemon_home, "config", "set", "services/customer/suppliers-number", "7")
    assert online_set.returncode == 0 and "4 -> 7" in online_set.stdout

    stopped = bitdust(daemon_home, "stop")
    assert stopped.returncode == 0 and f"stopped (pid {pid})" in stopped.stdout
    assert not psutil.pid_exists(pid) or psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
    assert not Home(daemon_home).pid_file.exists()
    assert bitdust(daemon_home, "status").returncode == 3

    offline = bitdust(daemon_home, "config", "get", "services/customer/suppliers-number", "--json")
    assert json.loads(offline.stdout) == [{"type": "combo", "value": "7", "key": "services/customer/suppliers-number"}]
    offline_bad = bitdust(daemon_home, "config", "set", "services/customer/suppliers-number", "5")
    assert offline_bad.returncode == 1 and "not one of" in offline_bad.stderr
    log = Home(daemon_home).main_log.read_text()
    assert "node is READY" in log


def test_sigterm_and_api_restart(daemon_home: Path) -> None:
    assert bitdust(daemon_home, "start").returncode == 0
    home = Home(daemon_home)
    pid = running_pid(home)
    assert pid is not None
    client = ApiClient.from_home(daemon_home, timeout=10)
    assert client.call("restart") == {"status": "OK", "result": "restarted"}

    def answers_again() -> bool:
        try:
            return client.call("automats_list")["status"] == "OK"
        except ConnectionError:
            return False

    # The same process image is replaced: the pid stays, the API goes away and comes back.
    wait_until(lambda: f"daemon pid {pid} stopped" in home.main_log.read_text(), what="restart to begin")
    wait_until(answers_again, what="the API after restart")
    assert running_pid(home) == pid

    os.kill(pid, signal.SIGTERM)
    psutil.Process(pid).wait(timeout=30)
    log = home.main_log.read_text()
    assert log.count("service_network is OFF") >= 2, "shutdowner stopped the services both times"
    assert not home.pid_file.exists()


def test_start_failure_shows_reason(daemon_home: Path) -> None:
    port = ApiClient.from_home(daemon_home).url.rsplit(":", 1)[1].strip("/")
    with socket.socket() as blocker:
        blocker.bind(("127.0.0.1", int(port)))
        blocker.listen()
        result = bitdust(daemon_home, "start")
    assert result.returncode == 1
    assert "failed to start" in result.stderr
    assert "in use" in result.stderr.lower()
    assert running_pid(Home(daemon_home)) is None


def test_two_daemons_side_by_side(make_home: Callable[[str], Path]) -> None:
    homes = [make_home("left"), make_home("right")]
    try:
        for home in homes:
            assert bitdust(home, "start").returncode == 0
        pids = [running_pid(Home(home)) for home in homes]
        assert None not in pids and pids[0] != pids[1]
        bitdust(homes[0], "config", "set", "logs/debug-level", "9")
        values = [json.loads(bitdust(h, "config", "get", "logs/debug-level", "--json").stdout)[0]["value"]
                  for h in homes]
        assert values == ["9", "4"]
        for home in homes:
            assert bitdust(home, "stop").returncode == 0
    finally:
        for home in homes:
            pid = running_pid(Home(home))
            if pid is not None:
                os.kill(pid, signal.SIGKILL)
