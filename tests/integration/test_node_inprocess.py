"""Nodes inside this test process, over real loopback sockets.

Two nodes with their own homes and ports run side by side; the API is called through
the same client the CLI uses (in a thread, since it is synchronous).
"""

from __future__ import annotations

import json
import stat
from collections.abc import Callable, Generator
from pathlib import Path
from typing import Any

import pytest
import pytest_twisted
from twisted.internet import reactor, threads

from bitdust.api.client import ApiClient, RpcError
from bitdust.api.methods import FILEMANAGER_MODES
from bitdust.crypto.packet_keys import PacketSigningKey
from bitdust.node import Node, StartupError

SPEC_METHODS = {
    "stop", "restart", "reconnect", "show", "config_get", "config_set", "config_list", "filemanager",
    "backups_update", "backups_list", "backups_id_list", "backup_start_id", "backup_start_path",
    "backup_map_path", "backup_dir_add", "backup_file_add", "backup_tree_add", "backup_delete_local",
    "backup_delete_id", "backup_delete_path", "backups_queue", "backups_running", "backup_cancel_pending",
    "backup_abort_running", "restore_single", "restores_running", "restore_abort", "suppliers_list",
    "supplier_replace", "supplier_change", "suppliers_ping", "customers_list", "customer_reject",
    "customers_ping", "space_donated", "space_consumed", "space_local", "automats_list", "services_list",
    "service_info", "service_start", "service_stop", "packets_stats", "packets_list", "connections_list",
    "streams_list", "ping", "set_my_nickname", "find_peer_by_nickname", "send_message",
    "receive_one_message", "broadcast_send_message",
}


def client_for(node: Node) -> ApiClient:
    return ApiClient.from_home(node.home.root, timeout=10.0)


def call(node: Node, method: str, *args: Any, **kwargs: Any) -> Any:
    """Deferred result of an API call made from a thread, as an outside client would."""
    return threads.deferToThread(client_for(node).call, method, *args, **kwargs)


@pytest.fixture
def started_nodes(make_home: Callable[[str], Path]) -> Generator[Callable[[int], Any], None, None]:
    nodes: list[Node] = []

    @pytest_twisted.inlineCallbacks
    def start(count: int) -> Any:
        for index in range(count):
            node = Node(make_home(f"node{index}"), reactor=reactor)
            nodes.append(node)
            yield node.start()
        return nodes

    yield start
    for node in nodes:
        pytest_twisted.blockon(node.stop())


@pytest_twisted.inlineCallbacks
def test_two_nodes_side_by_side(started_nodes: Callable[[int], Any]) -> Any:
    first, second = yield started_nodes(2)
    assert first.api_port != second.api_port
    assert first.initializer.state == second.initializer.state == "READY"
    yield call(first, "config_set", "logs/debug-level", 9)
    one = yield call(first, "config_get", "logs/debug-level")
    two = yield call(second, "config_get", "logs/debug-level")
    assert one["result"][0]["value"] == "9"
    assert two["result"][0]["value"] == "4", "each node has its own config"


@pytest_twisted.inlineCallbacks
def test_every_spec_method_is_registered(started_nodes: Callable[[int], Any]) -> Any:
    (node,) = yield started_nodes(1)
    names = set(node.api.methods.names())
    assert len(SPEC_METHODS) == 52
    assert names >= SPEC_METHODS
    assert names >= {"filemanager_" + mode for mode in FILEMANAGER_MODES}


@pytest_twisted.inlineCallbacks
def test_unbuilt_subsystem_answers_error_not_data(started_nodes: Callable[[int], Any]) -> Any:
    (node,) = yield started_nodes(1)
    answer = yield call(node, "restore_single", "0/1")
    assert answer["status"] == "ERROR"
    assert "0/1" in answer["errors"][0], "an unknown item is an ERROR, never made-up data"


@pytest_twisted.inlineCallbacks
def test_config_calls_match_spec_shapes(started_nodes: Callable[[int], Any]) -> Any:
    (node,) = yield started_nodes(1)
    answer = yield call(node, "config_get", key="logs/debug-level")
    assert answer == {"status": "OK", "result": [{"type": "positive integer", "value": "4", "key": "logs/debug-level"}]}
    answer = yield call(node, "config_set", "logs/debug-level", "10")
    assert answer == {"status": "OK", "result": [
        {"type": "positive integer", "old_value": "4", "value": "10", "key": "logs/debug-level"}]}
    answer = yield call(node, "config_set", "services/backups/max-block-size", "lots")
    assert answer["status"] == "ERROR"
    assert "lots" in answer["errors"][0]
    answer = yield call(node, "config_get", "services/backups/max-block-size")
    assert answer["result"][0]["value"] == "128 MB", "the old value stays"
    answer = yield call(node, "config_get", "no/such/option")
    assert answer == {"status": "ERROR", "errors": ["unknown option 'no/such/option'"]}
    answer = yield call(node, "config_list", True)
    keys = [row["key"] for row in answer["result"]]
    assert keys == sorted(keys) and "services/backups/enabled" in keys


@pytest_twisted.inlineCallbacks
def test_config_switch_stops_and_starts_service(started_nodes: Callable[[int], Any]) -> Any:
    (node,) = yield started_nodes(1)
    assert node.services.state("network") == "ON"
    yield call(node, "config_set", "services/network/enabled", "false")
    assert node.services.state("network") == "OFF"
    answer = yield call(node, "reconnect")
    assert answer["status"] == "ERROR" and "service_network is not running" in answer["errors"][0]
    yield call(node, "config_set", "services/network/enabled", "true")
    assert node.services.state("network") == "ON"
    answer = yield call(node, "reconnect")
    assert answer["status"] == "OK"


@pytest_twisted.inlineCallbacks
def test_services_and_automats_calls(started_nodes: Callable[[int], Any]) -> Any:
    (node,) = yield started_nodes(1)
    services = (yield call(node, "services_list"))["result"]
    assert {"configpath", "depends", "enabled", "index", "installed", "name", "state"} <= set(services[0])
    by_name = {s["name"]: s for s in services}
    assert by_name["service_network"]["state"] == "ON"
    assert by_name["service_keys_storage"]["installed"] is False
    info = yield call(node, "service_info", "network")
    assert info["result"][0]["name"] == "service_network"
    stopped = yield call(node, "service_stop", "service_network")
    assert stopped == {"status": "OK", "result": "service_network was switched off"}
    started = yield call(node, "service_start", "service_network")
    assert started == {"status": "OK", "result": "service_network was switched on"}
    unknown = yield call(node, "service_info", "teleport")
    assert unknown["status"] == "ERROR" and "unknown service" in unknown["errors"][0]
    missing = yield call(node, "service_start", "service_keys_storage")
    assert missing["status"] == "ERROR" and "not installed" in missing["errors"][0]
    machines = (yield call(node, "automats_list"))["result"]
    names = {m["name"]: m for m in machines}
    assert names["initializer"]["state"] == "READY"
    assert names["shutdowner"]["state"] == "READY"
    assert names["network_connector"]["timers"] == "timer-1min"
    assert all(set(m) == {"index", "name", "state", "timers"} for m in machines)


@pytest_twisted.inlineCallbacks
def test_space_local_is_real(started_nodes: Callable[[int], Any]) -> Any:
    (node,) = yield started_nodes(1)
    (node.home.customers / "someone").mkdir()
    (node.home.customers / "someone" / "piece").write_bytes(b"x" * 5000)
    answer = yield call(node, "space_local")
    result = answer["result"][0]
    assert result["customers"] == 5000
    assert result["customersstr"] == "4.88 KB"
    assert result["disktotal"] > result["diskfree"] > 0
    assert result["total"] >= 5000


@pytest_twisted.inlineCallbacks
def test_protocol_errors(started_nodes: Callable[[int], Any]) -> Any:
    (node,) = yield started_nodes(1)
    client = client_for(node)

    def post(body: bytes, **headers: str) -> tuple[int, Any]:
        status, raw = client.post(body, headers)
        return status, json.loads(raw)

    status, answer = yield threads.deferToThread(post, b'{"jsonrpc": "2.0", "id": 1, "method": ')
    assert status == 200 and answer["error"]["code"] == -32700
    status, answer = yield threads.deferToThread(post, b'[1, 2]')
    assert answer["error"]["code"] == -32600
    with pytest.raises(RpcError) as unknown:
        yield threads.deferToThread(client.call, "no_such_method")
    assert unknown.value.code == -32601
    with pytest.raises(RpcError) as wrong:
        yield threads.deferToThread(client.call, "config_get", "a", "b", "c")
    assert wrong.value.code == -32602
    with pytest.raises(RpcError) as missing:
        yield threads.deferToThread(client.call, "config_set", key="logs/debug-level")
    assert missing.value.code == -32602
    status, _ = yield threads.deferToThread(post, b"x" * (1024 * 1024 + 10))
    assert status == 413
    # Wrong types reach the method and come back as a readable ERROR.
    answer = yield threads.deferToThread(client.call, "config_get", {"not": "a key"})
    assert answer["status"] == "ERROR"
    # And the daemon still serves.
    answer = yield threads.deferToThread(client.call, "config_get", "logs/debug-level")
    assert answer["status"] == "OK"


@pytest_twisted.inlineCallbacks
def test_secret_is_required(started_nodes: Callable[[int], Any]) -> Any:
    (node,) = yield started_nodes(1)
    before = node.config.get("logs/debug-level")
    body = json.dumps({"jsonrpc": "2.0", "id": 1, "method": "config_set",
                       "params": ["logs/debug-level", 11]}).encode()
    anonymous = ApiClient(client_for(node).url, secret=None)
    status, _ = yield threads.deferToThread(anonymous.post, body)
    assert status == 401
    wrong = ApiClient(client_for(node).url, secret="not-the-secret")
    status, _ = yield threads.deferToThread(wrong.post, body)
    assert status == 401
    status, _ = yield threads.deferToThread(anonymous.post, body, {"Authorization": "Basic abc"})
    assert status == 401
    assert node.config.get("logs/debug-level") == before, "nothing was executed"
    secret_file = node.home.api_secret_file
    assert stat.S_IMODE(secret_file.stat().st_mode) == 0o600
    assert stat.S_IMODE(node.home.key_file.stat().st_mode) == 0o600
    assert stat.S_IMODE(node.home.packet_key_file.stat().st_mode) == 0o600
    assert node.packet_key is not None
    assert PacketSigningKey.load(node.home.packet_key_file).fingerprint() == node.packet_key.fingerprint()


@pytest_twisted.inlineCallbacks
def test_filemanager_gate_validates_requests(started_nodes: Callable[[int], Any]) -> Any:
    (node,) = yield started_nodes(1)
    answer = yield call(node, "filemanager", {"params": {"mode": "nosuchmode"}})
    assert answer["status"] == "ERROR" and "unknown mode" in answer["errors"][0]
    answer = yield call(node, "filemanager", {"nothing": 1})
    assert answer["status"] == "ERROR"
    answer = yield call(node, "filemanager_stats")
    assert answer["status"] == "OK" and "bytes_donated" in answer["result"]


@pytest_twisted.inlineCallbacks
def test_port_in_use_fails_startup_with_reason(make_home: Callable[[str], Path]) -> Any:
    first = Node(make_home("a"), reactor=reactor)
    yield first.start()
    try:
        clash = Node(make_home("b"), reactor=reactor)
        clash.config.set("interface/api/json-rpc-port", first.api_port)
        with pytest.raises(StartupError, match=r"(?i)address already in use"):
            yield clash.start()
        assert clash.initializer.state == "FAILED"
    finally:
        yield first.stop()


@pytest_twisted.inlineCallbacks
def test_stop_request_runs_shutdowner(started_nodes: Callable[[int], Any]) -> Any:
    (node,) = yield started_nodes(1)
    answer = yield call(node, "stop")
    assert answer == {"status": "OK", "result": "stopped"}
    yield node.shutdowner.when_state("FINISHED")
    assert node.api is None
    assert node.services.state("network") == "OFF"
