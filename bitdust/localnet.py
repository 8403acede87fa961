"""``bitdust localnet``: a whole BitDust network on this machine, on 127.0.0.1.

``start --nodes N --dir DIR`` starts, as separate daemon processes with their own homes
under DIR and their own ports, one *seed* node (it runs the identity server and is the
DHT seed) and N ordinary nodes. Each gets an identity registered on the seed's identity
server. It returns once every node is online and registered, and writes
``DIR/localnet.json``: the seed first, then the nodes, each with ``name``, ``idurl``,
``home``, ``api_url``, ``api_secret`` and ``pid``. ``stop`` stops them by pid (the API
first, then SIGTERM, then SIGKILL after a bound), ``status`` shows each node's state.

Decisions: keys are 2048 bits by default (``--key-size``) so a network of many nodes
starts in seconds — this is a test network; real nodes keep the 3072-bit default.
Every port is chosen free by the OS at start; nothing listens outside 127.0.0.1.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

# The API client and the config are imported where used: every `bitdust` command
# (`bitdust start` too) builds the parser, so importing this module must stay cheap.
from bitdust.home import Home
from bitdust.util.net import free_port

HOST = "127.0.0.1"
STATE_FILE = "localnet.json"
READY_TIMEOUT = 120.0
STOP_TIMEOUT = 30.0
POLL_INTERVAL = 0.1
START_WAVE = 6
"""Nodes whose daemons start at the same time."""
ONLINE_SERVICES = ("service_gateway", "service_tcp_transport", "service_identity_propagate", "service_dht")


class LocalnetError(RuntimeError):
    """A node of the local network could not be started, registered or stopped."""


def _cli(home: Path, *args: str, timeout: float = READY_TIMEOUT) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "bitdust", "--home", str(home), *args],
                          capture_output=True, text=True, timeout=timeout, check=False)


def _check(done: subprocess.CompletedProcess[str], what: str) -> str:
    if done.returncode != 0:
        raise LocalnetError(f"{what} failed (exit {done.returncode}):\n{done.stdout}{done.stderr}")
    return done.stdout.strip()


def _wait(predicate: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(POLL_INTERVAL)
    raise LocalnetError(f"timed out after {timeout:.0f} s waiting for {what}")


def configure(home: Path, key_size: int, id_server: str | None, dht_seed: str | None,
              serve_identities: bool) -> dict[str, int]:
    """Write a node's ports and seeds into its config; return the ports."""
    from bitdust.config import Config

    config = Config(home / "config")
    ports = {"api": free_port(), "tcp": free_port(), "udp": free_port(socket.SOCK_DGRAM),
             "dht": free_port(socket.SOCK_DGRAM)}
    config.set("interface/api/json-rpc-port", ports["api"])
    config.set("network/host", HOST)
    config.set("personal/private-key-size", key_size)
    config.set("services/tcp-connections/tcp-port", ports["tcp"])
    config.set("services/udp-transport/udp-port", ports["udp"])
    config.set("services/dht/udp-port", ports["dht"])
    if serve_identities:
        ports["identity"] = free_port()
        config.set("services/identity-server/enabled", True)
        config.set("services/identity-server/web-port", ports["identity"])
        id_server = f"{HOST}:{ports['identity']}"
    if id_server:
        config.set("services/identity-propagate/known-servers", id_server)
    if dht_seed:
        config.set("services/dht/known-nodes", dht_seed)
    return ports


def node_state(home: Path) -> dict[str, Any]:
    """What a node says about itself; ``online`` only if its network services are ON."""
    from bitdust.api.client import ApiClient, ApiConnectionError
    from bitdust.daemon import running_pid

    pid = running_pid(Home(home))
    state: dict[str, Any] = {"pid": pid, "online": False, "initializer": None, "network": None, "idurl": None}
    if pid is None:
        return state
    try:
        client = ApiClient.from_home(home, timeout=5.0)
        machines = {m["name"]: m["state"] for m in client.call("automats_list")["result"]}
        services = {s["name"]: s["state"] for s in client.call("services_list")["result"]}
        identity = client.call("identity_get")
    except (ApiConnectionError, KeyError, TypeError):
        return state
    state["initializer"] = machines.get("initializer")
    state["network"] = machines.get("network_connector")
    state["services"] = {name: services.get(name) for name in ONLINE_SERVICES}
    if isinstance(identity, dict) and identity.get("status") == "OK":
        state["idurl"] = identity["result"]["idurl"]
    state["online"] = (state["network"] == "CONNECTED" and state["idurl"] is not None
                       and all(value == "ON" for value in state["services"].values()))
    return state


def _start_node(home: Path, name: str) -> None:
    _check(_cli(home, "start"), f"starting {name}")
    _check(_cli(home, "identity", "create", name), f"registering the identity of {name}")
    _wait_online(home, name)


def _wait_online(home: Path, name: str) -> None:
    _wait(lambda: bool(node_state(home)["online"]), READY_TIMEOUT, f"{name} to be online")


def start(folder: Path, nodes: int, key_size: int = 2048) -> list[dict[str, Any]]:
    folder = folder.resolve()
    state_file = folder / STATE_FILE
    if state_file.exists() and any(node_state(Path(n["home"]))["pid"] for n in _read(state_file)):
        raise LocalnetError(f"a local network already runs in {folder}; stop it first")
    folder.mkdir(parents=True, exist_ok=True)
    names = ["seed"] + [f"node{i}" for i in range(1, nodes + 1)]
    seed_ports = configure(folder / "seed", key_size, None, None, serve_identities=True)
    id_server = f"{HOST}:{seed_ports['identity']}"
    dht_seed = f"{HOST}:{seed_ports['dht']}"
    for name in names[1:]:
        configure(folder / name, key_size, id_server, dht_seed, serve_identities=False)
    try:
        _start_node(folder / "seed", "seed")
        # Ordinary nodes start concurrently, each daemon its own process, in waves of
        # START_WAVE: 20 daemons importing and making keys at once on 2 busy cores took
        # longer than the 60 s ``bitdust start`` waits for one of them.
        for first in range(1, len(names), START_WAVE):
            wave = names[first:first + START_WAVE]
            launched = [(name, subprocess.Popen([sys.executable, "-m", "bitdust", "--home", str(folder / name),
                                                 "start"], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True))
                        for name in wave]
            for name, process in launched:
                output, _ = process.communicate(timeout=READY_TIMEOUT)
                if process.returncode != 0:
                    raise LocalnetError(f"starting {name} failed:\n{output}")
        for name in names[1:]:
            _check(_cli(folder / name, "identity", "create", name), f"registering the identity of {name}")
        for name in names[1:]:
            _wait_online(folder / name, name)
    except (LocalnetError, subprocess.TimeoutExpired):
        stop(folder, names)
        raise
    described = [_describe(folder / name, name) for name in names]
    state_file.write_text(json.dumps(described, indent=2) + "\n", encoding="utf-8")
    return described


def _describe(home: Path, name: str) -> dict[str, Any]:
    from bitdust.api.client import ApiClient

    client = ApiClient.from_home(home)
    state = node_state(home)
    return {"name": name, "idurl": state["idurl"], "home": str(home), "api_url": client.url,
            "api_secret": client.secret, "pid": state["pid"]}


def _read(state_file: Path) -> list[dict[str, Any]]:
    return list(json.loads(state_file.read_text(encoding="utf-8")))


def stop(folder: Path, names: list[str] | None = None) -> list[str]:
    """Stop every node of ``folder`` (by pid, whatever it takes); return what was done."""
    from bitdust.daemon import running_pid

    folder = folder.resolve()
    state_file = folder / STATE_FILE
    if names is None:
        names = [n["name"] for n in _read(state_file)] if state_file.exists() else \
            sorted(p.name for p in folder.iterdir() if (p / "config").is_dir())
    report = []
    for name in reversed(names):
        home = folder / name
        pid = running_pid(Home(home))
        if pid is None:
            continue
        _cli(home, "stop", timeout=STOP_TIMEOUT + 10)
        if running_pid(Home(home)) is not None:
            os.kill(pid, signal.SIGKILL)
            report.append(f"{name}: killed (pid {pid})")
        else:
            report.append(f"{name}: stopped (pid {pid})")
    return report


def add_parser(sub: Any) -> None:
    parser = sub.add_parser("localnet", help="run a local network of nodes on 127.0.0.1")
    parser.add_argument("action", choices=("start", "stop", "status"))
    parser.add_argument("--dir", required=True, help="folder for the nodes' homes and localnet.json")
    parser.add_argument("--nodes", type=int, default=4, help="ordinary nodes besides the seed (default 4)")
    parser.add_argument("--key-size", type=int, default=2048, choices=(2048, 3072, 4096))
    parser.add_argument("--clean", action="store_true", help="with stop: remove the folder afterwards")
    parser.set_defaults(func=cmd_localnet)


def cmd_localnet(_home: Home, args: argparse.Namespace) -> int:
    from bitdust.cli import EXIT_ERROR, EXIT_NOT_RUNNING, EXIT_OK, EXIT_USAGE, CliError

    folder = Path(args.dir)
    try:
        if args.action == "start":
            if not 1 <= args.nodes <= 64:
                raise CliError("--nodes must be between 1 and 64", EXIT_USAGE)
            started = time.monotonic()
            nodes = start(folder, args.nodes, args.key_size)
            for node in nodes:
                print(f"{node['name']:<8} {node['idurl']}  pid {node['pid']}  {node['api_url']}")
            print(f"{len(nodes)} nodes online in {time.monotonic() - started:.1f} s; "
                  f"see {folder.resolve() / STATE_FILE}")
            return EXIT_OK
        if args.action == "stop":
            if not folder.is_dir():
                print(f"no local network in {folder}")
                return EXIT_OK
            for line in stop(folder):
                print(line)
            if args.clean:
                shutil.rmtree(folder)
            return EXIT_OK
        state_file = folder / STATE_FILE
        if not state_file.exists():
            print(f"no local network in {folder}")
            return EXIT_NOT_RUNNING
        all_online = True
        for node in _read(state_file):
            state = node_state(Path(node["home"]))
            all_online = all_online and bool(state["online"])
            label = "online" if state["online"] else ("not running" if state["pid"] is None else "not online")
            print(f"{node['name']:<8} {label:<12} pid {state['pid']}  network {state['network']}  {node['idurl']}")
        return EXIT_OK if all_online else EXIT_ERROR
    except LocalnetError as exc:
        raise CliError(str(exc)) from None
