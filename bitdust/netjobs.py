"""Helpers shared by the demo, ``bench/backup.py`` and the multi-process tests: drive a
local network (:mod:`bitdust.localnet`) through the real CLI and API, make a customer
hire its suppliers now, kill nodes, and compare folders byte for byte.

Everything here is blocking (no reactor) and every wait is bounded.
"""

from __future__ import annotations

import filecmp
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bitdust.api.client import ApiClient

HIRE_TIMEOUT = 120.0
KILL_TIMEOUT = 15.0
POLL = 0.25


class NetJobError(RuntimeError):
    """A step of a scripted run failed; the message says which and why."""


def cli(home: Path | str, *args: str, timeout: float = 600.0, show: bool = False) -> subprocess.CompletedProcess[str]:
    """Run ``bitdust --home HOME ARGS``; with ``show`` its stderr (the progress bar) goes
    to ours, so a user watching the demo sees the bar move."""
    command = [sys.executable, "-m", "bitdust", "--home", str(home), *args]
    return subprocess.run(command, stdout=subprocess.PIPE, stderr=None if show else subprocess.PIPE,
                          text=True, timeout=timeout, check=False)


def api(home: Path | str, method: str, *args: Any, timeout: float = 60.0) -> Any:
    """``result`` of an OK answer; NetJobError with the daemon's reasons otherwise."""
    answer = ApiClient.from_home(home, timeout=timeout).call(method, *args)
    if not isinstance(answer, dict) or answer.get("status") != "OK":
        raise NetJobError(f"{method}{args!r}: {answer!r}")
    return answer["result"]


def online_suppliers(home: Path | str) -> list[str]:
    return [row["idurl"] for row in api(home, "suppliers_list") if row["idurl"] and row["status"] == "online"]


def hire_suppliers(home: Path | str, count: int, timeout: float = HIRE_TIMEOUT) -> list[str]:
    """Make the customer of ``home`` hire ``count`` suppliers now and wait until all are online.

    fire_hire acts at once on the new ``suppliers-number`` (and on a new identity), and
    retries after a few seconds while the DHT does not list enough available nodes yet,
    so no timer needs shortening here.
    """
    api(home, "config_set", "services/customer/suppliers-number", str(count))
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        hired = online_suppliers(home)
        if len(hired) == count:
            return hired
        time.sleep(POLL)
    raise NetJobError(f"only {len(online_suppliers(home))} of {count} suppliers online after {timeout:.0f} s")


def wait_offline(home: Path | str, idurls: list[str], timeout: float = 60.0) -> int:
    """Ask every supplier again (``suppliers_ping``) and wait until the customer sees
    ``idurls`` offline; returns how many suppliers it sees offline in all.

    A restore started right after a kill would first wait for the dead suppliers' pieces
    until each request timed out; a user notices a dead supplier after a while anyway.
    """
    api(home, "suppliers_ping")
    deadline = time.monotonic() + timeout
    while True:
        rows = api(home, "suppliers_list")
        offline = {row["idurl"] for row in rows if row["status"] != "online"}
        if set(idurls) <= offline or time.monotonic() >= deadline:
            return len(offline)
        time.sleep(POLL)


def kill(pid: int, timeout: float = KILL_TIMEOUT) -> None:
    """SIGKILL ``pid`` and wait (bounded) until it is gone, zombie or not."""
    import psutil

    try:
        process = psutil.Process(pid)
        os.kill(pid, signal.SIGKILL)
        process.wait(timeout=timeout)
    except psutil.NoSuchProcess:
        return
    except psutil.TimeoutExpired:
        raise NetJobError(f"pid {pid} did not die within {timeout:.0f} s of SIGKILL") from None


@dataclass
class TreeStats:
    files: int = 0
    folders: int = 0
    bytes: int = 0


def tree_stats(root: Path) -> TreeStats:
    stats = TreeStats()
    for _dir, dirs, files in os.walk(root):
        stats.folders += len(dirs)
        stats.files += len(files)
        stats.bytes += sum((Path(_dir) / name).stat().st_size for name in files)
    return stats


def compare_trees(left: Path, right: Path) -> list[str]:
    """Every difference between two folders (names, kinds, bytes); [] when identical."""
    problems: list[str] = []
    left_names = _relative(left)
    right_names = _relative(right)
    problems += [f"missing in {right}: {name}" for name in sorted(left_names - right_names)]
    problems += [f"extra in {right}: {name}" for name in sorted(right_names - left_names)]
    for name in sorted(left_names & right_names):
        a, b = left / name, right / name
        if a.is_dir() != b.is_dir():
            problems.append(f"{name}: a folder on one side only")
        elif a.is_file() and not filecmp.cmp(a, b, shallow=False):
            problems.append(f"{name}: contents differ ({a.stat().st_size} vs {b.stat().st_size} bytes)")
    return problems


def _relative(root: Path) -> set[str]:
    names: set[str] = set()
    for folder, dirs, files in os.walk(root):
        for name in dirs + files:
            names.add(str((Path(folder) / name).relative_to(root)))
    return names


def make_sample(root: Path, big_bytes: int, seed: int = 5) -> TreeStats:
    """A folder like a user's: nested folders, small text files, non-ASCII names, an
    empty file, an empty folder, and one big random file that spans several blocks."""
    import random

    rng = random.Random(seed)
    files: dict[str, bytes] = {
        "README.txt": b"BitDust demo folder\n",
        "docs/notes.md": "# Notes\n\nCaf\u00e9, na\u00efve, \u00fcber.\n".encode(),
        "docs/r\u00e9sum\u00e9 \u6587\u4ef6.txt": "\u043f\u0440\u0438\u0432\u0435\u0442 \u4e16\u754c\n".encode(),
        "docs/deep/er/still/deeper.txt": b"nested five levels down\n",
        "photos/\u00e9t\u00e9 2024/beach.raw": rng.randbytes(200_000),
        "code/main.py": b"print('hello')\n" * 500,
        "empty.txt": b"",
        "data/big.bin": rng.randbytes(big_bytes),
    }
    for name, data in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
    (root / "empty folder").mkdir(parents=True, exist_ok=True)
    return tree_stats(root)
