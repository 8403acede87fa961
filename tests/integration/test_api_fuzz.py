"""Hostile API clients: property-based fuzzing of every JSON-RPC method of a running node.

One in-process node (its own identity server and DHT seed, every built service) is
called over its real HTTP JSON-RPC endpoint with arguments drawn by hypothesis: wrong
types, huge strings, odd unicode, missing and extra params (positional and keyword),
path traversal and NUL bytes in paths and IDs, malformed IDs. Every answer must be HTTP
200 with a JSON body: a JSON-RPC error with a standard code, or a result dict whose
status is OK or ERROR. Afterwards the daemon still answers, and nothing was written
outside the node's home and the test's tmp folder.

The calls run in one thread (the client is synchronous) while the reactor serves them.
``stop`` and ``restart`` are left out: they end the node by design. Long polls are
kept short: a ``timeout`` argument that is a valid number of seconds is capped at
``LONG_POLL_CAP`` (and a missing one set to it), since waiting up to its limit (600 s)
for a message that never comes is the documented behaviour, not a hang.
"""

from __future__ import annotations

import inspect
import json
import os
import stat
import time
import zlib
from collections.abc import Generator
from pathlib import Path
from typing import Any

import pytest
import pytest_twisted
from hypothesis import HealthCheck, given, seed, settings
from hypothesis import strategies as st
from twisted.internet import reactor, threads

from bitdust.api.client import ApiClient
from bitdust.api.server import MAX_BODY
from bitdust.config import Config
from bitdust.crypto.keys import PrivateKey
from bitdust.node import Node
from tests.integration.grid import make_grid

EXCLUDED = {"stop", "restart"}
STANDARD_CODES = {-32700, -32600, -32601, -32602, -32603}
EXAMPLES_PER_METHOD = 25
CALL_TIMEOUT = 20.0
LONG_POLL_CAP = 0.2
OUTSIDE = (Path("/"), Path("/etc"))

TRAVERSAL = [
    "../", "../../etc/passwd", "../../../../../../etc/shadow", "/etc", "/etc/passwd", "/", "/root",
    "/etc/../etc/hosts", "..", ".", "", " ", "~", "~/.ssh/id_rsa", "\x00", "/etc\x00", "a\x00b",
    "/tmp/../etc", "....//....//etc", "%2e%2e%2f%2e%2e%2fetc", "C:\\Windows\\System32", "\\\\server\\share",
    "/proc/self/environ", "/dev/zero", "file:///etc/passwd",
]
MALFORMED_IDS = [
    "0", "0/1", "0/0/1", "-1", "0//1", "/0/1", "0/1/", "0/1/F20200101000000AM", "F20200101000000AM",
    "0/1/../../..", "../0/1", "0/1/F2020\x00", "$", "alice@", "$alice@127.0.0.1_8084:0/1/F20200101000000AM",
    "http://", "http://127.0.0.1:1/x.xml", "http://127.0.0.1:1/../../etc/passwd", "ftp://x/y.xml",
    "service_", "service_../../etc", "99999999999999999999", "0x10", "NaN",
]


def _huge_string() -> st.SearchStrategy[str]:
    pieces = st.sampled_from(["a", "é", "../", "\x00", "\U0001d11e", "\u202e", "\ufeff", "%s", "{}"])
    return st.builds(lambda piece, n: piece * max(1, n // len(piece)), pieces, st.integers(1_000, 100_000))


def _odd_text() -> st.SearchStrategy[str]:
    return st.text(st.characters(exclude_categories=["Cs"]), max_size=40)


def scalar_values(canary: Path, home: Path) -> st.SearchStrategy[Any]:
    paths = st.sampled_from([*TRAVERSAL, str(canary), str(canary / "x"), str(home), str(home / ".." / "..")])
    ids = st.sampled_from(MALFORMED_IDS)
    wrong_types = st.one_of(st.none(), st.booleans(), st.integers(min_value=-(2**70), max_value=2**70),
                            st.floats(allow_nan=False, allow_infinity=False))
    return st.one_of(paths, ids, wrong_types, paths, ids, _odd_text(), _huge_string())


def values(canary: Path, home: Path) -> st.SearchStrategy[Any]:
    scalars = scalar_values(canary, home)
    nested = st.recursive(
        scalars,
        lambda inner: st.one_of(st.lists(inner, max_size=4), st.dictionaries(_odd_text(), inner, max_size=4)),
        max_leaves=6,
    )
    return st.one_of(scalars, scalars, scalars, nested)


def _cap_timeout(value: Any) -> Any:
    if isinstance(value, int | float) and not isinstance(value, bool) and value > LONG_POLL_CAP:
        return LONG_POLL_CAP
    return LONG_POLL_CAP if value is None else value


def params_for(signature: inspect.Signature, canary: Path, home: Path) -> st.SearchStrategy[Any]:
    """Positional or keyword params for a method. Mostly well-shaped (every required
    param, drawn values) so the calls reach the method; the rest with params left out,
    extra ones, or no params at all."""
    params = [p for p in signature.parameters.values() if p.kind is not inspect.Parameter.VAR_KEYWORD]
    names = [p.name for p in params]
    required = sum(1 for p in params if p.default is inspect.Parameter.empty)
    value = values(canary, home)
    extra_names = st.sampled_from(
        ["mode", "path", "id", "backup_id", "dest", "version", "../x", "", "\x00", "__class__", "self", "kwargs"])
    well_positional = st.integers(required, len(names)).flatmap(lambda n: st.lists(value, min_size=n, max_size=n))
    well_keyword = st.integers(required, len(names)).flatmap(
        lambda n: st.fixed_dictionaries({name: value for name in names[:n]}))
    if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in signature.parameters.values()):
        well_keyword = st.dictionaries(st.one_of(extra_names, _odd_text()), value, max_size=3)
    missing_or_extra = st.builds(
        lambda given_values, keep, extras: {n: v for n, v, k in zip(names, given_values, keep, strict=True) if k}
        | extras,
        st.lists(value, min_size=len(names), max_size=len(names)),
        st.lists(st.booleans(), min_size=len(names), max_size=len(names)),
        st.dictionaries(st.one_of(extra_names, _odd_text()), value, max_size=2),
    )
    positional_any = st.lists(value, min_size=0, max_size=len(names) + 2)
    return st.one_of(well_positional, well_keyword, well_positional, well_keyword, well_positional, well_keyword,
                     missing_or_extra, positional_any, st.none())


def prepare(name: str, signature: inspect.Signature, params: Any) -> Any:
    """Keep long polls short (see the module docstring)."""
    names = list(signature.parameters)
    if "timeout" not in names:
        return params
    if isinstance(params, dict):
        return {**params, "timeout": _cap_timeout(params.get("timeout"))}
    position = names.index("timeout")
    listed = list(params or [])
    if len(listed) > position:
        listed[position] = _cap_timeout(listed[position])
    elif len(listed) == position:
        listed.append(LONG_POLL_CAP)
    return listed


def listing(folder: Path) -> set[str]:
    return set(os.listdir(folder)) if folder.is_dir() else set()


def tree(folder: Path) -> dict[str, int]:
    found: dict[str, int] = {}
    for root, _dirs, files in os.walk(folder):
        for file in files:
            path = Path(root) / file
            found[str(path.relative_to(folder))] = path.stat().st_size
    return found


@pytest.fixture(scope="module")
def node(tmp_path_factory: pytest.TempPathFactory) -> Generator[Node, None, None]:
    root: Path = tmp_path_factory.mktemp("fuzz")
    config = Config(root / "node0" / "config")
    config.set("services/customer/request-timeout-seconds", 2)
    with pytest.MonkeyPatch.context() as patch:
        for variable in ("BROWSER", "DISPLAY", "WAYLAND_DISPLAY"):
            patch.delenv(variable, raising=False)  # show() must not start a browser
        (started,) = pytest_twisted.blockon(make_grid(reactor, root, [PrivateKey.generate(2048)]))
        yield started
        pytest_twisted.blockon(started.stop())


def client_for(node: Node, secret: str | None = "") -> ApiClient:
    assert node.api is not None
    real = node.home.api_secret()
    return ApiClient(f"http://127.0.0.1:{node.api.port}/", real if secret == "" else secret, CALL_TIMEOUT)


def check_answer(method: str, body: bytes, status: int, raw: bytes) -> None:
    where = f"{method} with body {body[:300]!r}"
    if len(body) > MAX_BODY:
        assert status == 413, where
        return
    assert status == 200, f"HTTP {status} for {where}: {raw[:500]!r}"
    try:
        answer = json.loads(raw)
    except ValueError as exc:
        raise AssertionError(f"not JSON for {where}: {raw[:500]!r}") from exc
    assert isinstance(answer, dict), where
    if answer.get("error") is not None:
        code = answer["error"].get("code")
        assert code in STANDARD_CODES, f"non-standard code {code} for {where}: {answer}"
        return
    result = answer.get("result")
    assert isinstance(result, dict), f"result is not a dict for {where}: {answer}"
    assert result.get("status") in ("OK", "ERROR"), f"bad status for {where}: {answer}"
    if result["status"] == "ERROR":
        errors = result.get("errors")
        assert isinstance(errors, list) and errors and all(isinstance(e, str) for e in errors), where


def fuzzer(client: ApiClient, name: str, signature: inspect.Signature, canary: Path, home: Path) -> Any:
    """A hypothesis test calling ``name`` EXAMPLES_PER_METHOD times with drawn params."""

    @seed(zlib.crc32(name.encode()))  # reproducible, and different for each method
    @settings(max_examples=EXAMPLES_PER_METHOD, deadline=None, database=None,
              suppress_health_check=list(HealthCheck))
    @given(params=params_for(signature, canary, home))
    def one_call(params: Any) -> None:
        payload: dict[str, Any] = {"jsonrpc": "2.0", "id": 1, "method": name}
        prepared = prepare(name, signature, params)
        if prepared is not None:
            payload["params"] = prepared
        body = json.dumps(payload, ensure_ascii=False).encode("utf-8")
        status, raw = client.post(body)
        check_answer(name, body, status, raw)

    return one_call


def targeted_calls(canary: Path) -> list[tuple[str, Any]]:
    """Hostile calls made every run, whatever hypothesis draws: whole-system paths as
    backup sources and as restore or download destinations."""
    calls: list[tuple[str, Any]] = []
    for path in ("/", "/etc", "/etc/passwd", "../../etc/passwd", "/etc\x00", str(canary / ".." / ".." / "etc")):
        calls += [
            ("backup_dir_add", [path]), ("backup_file_add", [path]), ("backup_tree_add", [path]),
            ("backup_map_path", [path]), ("backup_start_path", [path]), ("backup_start_path", [path, False]),
            ("backup_delete_path", [path]), ("restore_single", ["0/1", path]), ("restore_single", [path, path]),
            ("filemanager_upload", {"path": path}), ("filemanager_delete", {"path": path}),
            ("filemanager_download", {"id": "0/1", "dest_path": path}), ("filemanager_listlocal", {"path": path}),
        ]
    for bad_id in MALFORMED_IDS:
        calls += [("backup_start_id", [bad_id]), ("backup_delete_id", [bad_id]),
                  ("restore_single", [bad_id, str(canary)]), ("filemanager_deleteversion", {"backup_id": bad_id}),
                  ("filemanager_download", {"id": bad_id})]
    return calls


def fuzz_all(node: Node, canary: Path) -> dict[str, float]:
    """Runs in a thread: every method, EXAMPLES_PER_METHOD drawn calls each; per-method seconds."""
    assert node.api is not None
    client = client_for(node)
    for name, params in targeted_calls(canary):
        body = json.dumps({"jsonrpc": "2.0", "id": 1, "method": name, "params": params}).encode("utf-8")
        status, raw = client.post(body)
        check_answer(name, body, status, raw)
    timings: dict[str, float] = {}
    for name in node.api.methods.names():
        if name in EXCLUDED:
            continue
        started = time.monotonic()
        fuzzer(client, name, node.api.methods.signature(name), canary, node.home.root)()
        timings[name] = time.monotonic() - started
    return timings


@pytest_twisted.inlineCallbacks
def test_every_method_answers_json_to_hostile_params(node: Node, tmp_path: Path) -> Any:
    canary = tmp_path / "canary"
    canary.mkdir()
    (canary / "keep.txt").write_text("canary")
    before_outside = {folder: listing(folder) for folder in OUTSIDE}
    before_canary = tree(canary)
    timings = yield threads.deferToThread(fuzz_all, node, canary)
    assert node.api is not None
    assert len(timings) == len(node.api.methods.names()) - len(EXCLUDED)
    answer = yield threads.deferToThread(client_for(node).call, "config_get", "logs/debug-level")
    assert answer["status"] == "OK", "the daemon still answers"
    assert tree(canary) == before_canary, "nothing was written into the canary folder"
    for folder, names in before_outside.items():
        assert listing(folder) <= names, f"something new appeared in {folder}"


@pytest_twisted.inlineCallbacks
def test_requests_without_the_secret_or_from_another_origin_change_nothing(node: Node) -> Any:
    assert node.api is not None
    before = node.config.get("logs/debug-level")
    body = json.dumps({"jsonrpc": "2.0", "id": 1, "method": "config_set",
                       "params": ["logs/debug-level", before + 7]}).encode()
    gui_probe = json.dumps({"jsonrpc": "2.0", "id": 1, "method": "filemanager_delete",
                            "params": {"path": "/etc"}}).encode()
    attempts: list[tuple[str | None, dict[str, str]]] = [
        (None, {}),
        ("not-the-secret", {}),
        ("", {"Authorization": "Bearer "}),
        (None, {"Authorization": "Basic abc"}),
        (None, {"Origin": "http://evil.example"}),
        (None, {"Origin": "http://evil.example", "Cookie": "bitdust=forged", "X-Bitdust-Csrf": "forged"}),
        ("not-the-secret", {"Origin": "http://evil.example"}),
    ]
    for secret, headers in attempts:
        for payload in (body, gui_probe):
            status, raw = yield threads.deferToThread(client_for(node, secret).post, payload, headers)
            assert status == 401, (secret, headers, raw)
            assert json.loads(raw)["error"]["code"] == -32001
    assert node.config.get("logs/debug-level") == before, "nothing was executed"
    # The right secret works whatever the Origin (the CLI sends none; the check is the secret).
    status, raw = yield threads.deferToThread(
        client_for(node).post, json.dumps({"jsonrpc": "2.0", "id": 1, "method": "config_get",
                                           "params": ["logs/debug-level"]}).encode(),
        {"Origin": "http://evil.example"})
    assert status == 200 and json.loads(raw)["result"]["status"] == "OK"
    for secret_file in (node.home.api_secret_file, node.home.key_file, node.home.packet_key_file):
        assert stat.S_IMODE(secret_file.stat().st_mode) == 0o600, secret_file
