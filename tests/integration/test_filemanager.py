"""The filemanager gate through the real JSON-RPC server, on one node (no suppliers): every
mode answers in the documented shape, with exact fields; bad input and stopped services
are readable ERRORs. The backup-and-restore path through the gate is exercised on a
grid by test_gui_browser.py."""

from __future__ import annotations

from collections.abc import Callable, Generator
from pathlib import Path
from typing import Any

import pytest
import pytest_twisted
from twisted.internet import reactor, threads

from bitdust.api.client import ApiClient
from bitdust.api.filemanager_info import STATS_FIELDS
from bitdust.api.methods import FILEMANAGER_MODES
from bitdust.node import Node
from tests.integration.grid import ok

STATS_SPEC = {
    "bytes_donated", "bytes_indexed", "bytes_needed", "bytes_used_supplier", "bytes_used_total", "customers",
    "files_count", "folders_count", "items_count", "max_suppliers", "online_suppliers", "suppliers", "timestamp",
    "value_donated", "value_needed", "value_used_total",
}


@pytest.fixture
def node(make_home: Callable[[str], Path]) -> Generator[Node, None, None]:
    started = Node(make_home("fm"), reactor=reactor)
    pytest_twisted.blockon(started.start())
    yield started
    pytest_twisted.blockon(started.stop())


def call(node: Node, method: str, *args: Any, **kwargs: Any) -> Any:
    secret = node.home.api_secret()
    assert secret is not None
    client = ApiClient(f"http://127.0.0.1:{node.api_port}/", secret)
    return threads.deferToThread(client.call, method, *args, **kwargs)


def failed(answer: Any, *words: str) -> str:
    assert answer["status"] == "ERROR", answer
    text = "; ".join(answer["errors"])
    for word in words:
        assert word in text, text
    return text


def test_the_gate_knows_exactly_the_specs_modes() -> None:
    from bitdust.api.filemanager import modes

    assert set(modes()) == set(FILEMANAGER_MODES)
    assert set(STATS_FIELDS) == STATS_SPEC


@pytest_twisted.inlineCallbacks
def test_stats_has_exactly_the_specs_fields_from_the_services(node: Node) -> Any:
    stats = ok((yield call(node, "filemanager", {"params": {"mode": "stats"}})))
    assert set(stats) == STATS_SPEC
    same = ok((yield call(node, "filemanager_stats")))
    assert set(same) == STATS_SPEC
    assert stats["bytes_donated"] == node.config.get("services/supplier/donated-space")
    assert stats["bytes_needed"] == node.config.get("services/customer/needed-space")
    assert stats["max_suppliers"] == 4 and stats["suppliers"] == 0 and stats["online_suppliers"] == 0
    assert stats["customers"] == 0 and stats["bytes_used_total"] == 0 and stats["bytes_used_supplier"] == 0
    assert stats["items_count"] == stats["files_count"] == stats["folders_count"] == stats["bytes_indexed"] == 0
    assert stats["value_donated"] == "8 GB" and stats["value_needed"] == "1 GB"
    assert stats["value_used_total"] == "0 bytes" and isinstance(stats["timestamp"], float)


@pytest_twisted.inlineCallbacks
def test_bad_requests_are_clear_errors(node: Node) -> Any:
    failed((yield call(node, "filemanager", {"params": {"mode": "nosuchmode"}})), "unknown mode 'nosuchmode'")
    failed((yield call(node, "filemanager", {"nothing": 1})), 'expected {"params": {"mode": ...}}')
    failed((yield call(node, "filemanager", "{not json")), "not JSON")
    failed((yield call(node, "filemanager_upload")), "missing param 'path'")
    failed((yield call(node, "filemanager_download")), "missing param 'id'")
    failed((yield call(node, "filemanager_delete")), "missing param 'id'")
    failed((yield call(node, "filemanager_deleteversion", backup_id="0/1")), "is not a backup ID")
    failed((yield call(node, "filemanager_upload", path=7)), "param 'path' must be text")
    failed((yield call(node, "filemanager_listlocal", path="relative/path")), "absolute path")
    failed((yield call(node, "filemanager_listlocal", path="/no/such/folder")), "does not exist")
    failed((yield call(node, "filemanager_config", key="no/such/option")), "unknown option")
    failed((yield call(node, "filemanager_config", key="logs/debug-level", value="loud")), "loud")


@pytest_twisted.inlineCallbacks
def test_config_lists_every_option_and_changes_one(node: Node) -> Any:
    rows = ok((yield call(node, "filemanager_config")))
    assert [r["key"] for r in rows] == sorted(node.config.keys())
    assert all(set(r) >= {"key", "type", "value", "default", "description"} for r in rows)
    combo = next(r for r in rows if r["key"] == "personal/private-key-size")
    assert combo["choices"] == ["2048", "3072", "4096"] and combo["type"] == "combo"
    below = ok((yield call(node, "filemanager_config", key="services/backups")))
    assert below and all(r["key"].startswith("services/backups/") for r in below)
    changed = ok((yield call(node, "filemanager_config", key="logs/debug-level", value="7")))
    assert changed == [{"type": "positive integer", "old_value": "4", "value": "7", "key": "logs/debug-level"}]
    assert node.config.get("logs/debug-level") == 7


@pytest_twisted.inlineCallbacks
def test_listlocal_lists_a_folder_folders_first(node: Node, tmp_path: Path) -> Any:
    (tmp_path / "pick" / "zdir").mkdir(parents=True)
    (tmp_path / "pick" / "afile.txt").write_bytes(b"12345")
    listing = ok((yield call(node, "filemanager_listlocal", path=str(tmp_path / "pick"))))
    assert listing["path"] == str(tmp_path / "pick") and listing["parent"] == str(tmp_path)
    assert listing["truncated"] is False
    assert [(e["name"], e["type"], e["size"]) for e in listing["entries"]] == [("zdir", "dir", 0),
                                                                               ("afile.txt", "file", 5)]
    assert set(listing["entries"][1]) == {"name", "path", "type", "size", "modified"}


@pytest_twisted.inlineCallbacks
def test_upload_list_tasks_and_delete_through_the_gate(node: Node, tmp_path: Path) -> Any:
    source = tmp_path / "data"
    source.mkdir()
    (source / "one.bin").write_bytes(b"x" * 1000)
    started = yield call(node, "filemanager_upload", path=str(source))
    assert ok(started).startswith("uploading of item ") and started["type"] == "dir"
    path_id = started["id"]
    items = ok((yield call(node, "filemanager_list")))
    assert [(i["id"], i["path"], i["type"], i["versions"]) for i in items] == [(path_id, str(source), "dir", [])]
    assert set(items[0]) == {"id", "parent", "name", "path", "type", "size", "versions"}
    stats = ok((yield call(node, "filemanager_stats")))
    assert (stats["items_count"], stats["folders_count"], stats["files_count"]) == (1, 1, 0)
    assert stats["bytes_indexed"] == items[0]["size"]  # a folder is measured by its first backup
    tasks = ok((yield call(node, "filemanager_tasks")))
    assert set(tasks) == {"backups", "queue", "finished", "restores"}
    waiting = [t["pathid"] for t in tasks["queue"]] + [j["backupid"].rpartition("/")[0] for j in tasks["backups"]]
    assert path_id in waiting
    assert ok((yield call(node, "filemanager_listall")))[0]["id"] == path_id
    failed((yield call(node, "filemanager_download", id=path_id)), "restore_single")
    failed((yield call(node, "filemanager_delete", id=f"{path_id}/F20240101120000AM")), "deleteversion")
    deleted = ok((yield call(node, "filemanager_delete", id=path_id)))
    assert deleted.startswith(f"item {path_id} was deleted")
    assert ok((yield call(node, "filemanager_list"))) == []


@pytest_twisted.inlineCallbacks
def test_network_views_and_debuginfo(node: Node) -> Any:
    packets = ok((yield call(node, "filemanager_packets")))
    assert set(packets) == {"stats", "packets"} and isinstance(packets["packets"], list)
    assert isinstance(ok((yield call(node, "filemanager_connections"))), list)
    assert isinstance(ok((yield call(node, "filemanager_streams"))), list)
    info = ok((yield call(node, "filemanager_debuginfo")))
    assert set(info) == {"version", "python", "platform", "pid", "uptime", "memory_rss", "home", "idurl",
                         "network_state", "services", "automats"}
    assert info["home"] == str(node.home.root) and info["services"]["service_gateway"] == "ON"


@pytest_twisted.inlineCallbacks
def test_a_stopped_service_gives_the_apis_usual_error(node: Node) -> Any:
    yield node.services.stop_service("service_gateway")
    failed((yield call(node, "filemanager_packets")), "is not available: service_gateway is not running")
    failed((yield call(node, "filemanager_connections")), "service_gateway is not running")
    assert set(ok((yield call(node, "filemanager_stats")))) == STATS_SPEC  # stats degrade to zeros
    yield node.services.stop_service("service_backup_db")
    failed((yield call(node, "filemanager_list")), "is not available: service_backup_db is not running")
    failed((yield call(node, "filemanager_upload", path="/tmp")), "service_backups is not running")


@pytest_twisted.inlineCallbacks
def test_show_makes_a_one_time_link(node: Node) -> Any:
    answer = yield call(node, "show", open_browser=False)
    assert ok(answer) == "show event has been sent to the main process"
    assert answer["opened"] is False
    assert answer["url"].startswith(f"http://127.0.0.1:{node.api_port}/gui/?token=")
