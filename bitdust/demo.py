"""The README's main job: run BitDust on loopback and show what it does.

Today: one node in a throw-away home, driven through the real CLI and JSON-RPC API,
then stopped. The local-network backup and restore joins this as its parts land.
"""

from __future__ import annotations

import argparse
import json
import socket
import subprocess
import sys
import tempfile
from pathlib import Path

from bitdust.api.client import ApiClient
from bitdust.config import Config


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _cli(home: Path, *args: str) -> str:
    done = subprocess.run([sys.executable, "-m", "bitdust", "--home", str(home), *args],
                          capture_output=True, text=True, timeout=120, check=False)
    if done.returncode != 0:
        raise SystemExit(f"bitdust {' '.join(args)} failed:\n{done.stdout}{done.stderr}")
    return done.stdout.strip()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--keep", action="store_true", help="leave the node running and its home in place")
    args = parser.parse_args(argv)
    home = Path(tempfile.mkdtemp(prefix="bitdust-demo-")) / "node"
    Config(home / "config").set("interface/api/json-rpc-port", _free_port())
    print(f"$ bitdust --home {home} start")
    print(_cli(home, "start"))
    try:
        print("$ bitdust status")
        print(_cli(home, "status"))
        client = ApiClient.from_home(home)
        services = client.call("services_list")["result"]
        installed = [s["name"] + "=" + s["state"] for s in services if s["installed"]]
        print(f"services installed in this build: {', '.join(installed)}; "
              f"{sum(1 for s in services if not s['installed'])} more are not built yet")
        print("automats:", ", ".join(f"{m['name']}={m['state']}" for m in client.call("automats_list")["result"]))
        local = client.call("space_local")["result"][0]
        print(f"local disk: {local['diskfreestr']} free of {local['disktotalstr']}; home uses {local['totalstr']}")
        print("$ bitdust api config_set services/customer/suppliers-number 7")
        print(json.dumps(client.call("config_set", "services/customer/suppliers-number", 7)))
        print("$ bitdust api backups_list   (needs the backup services of a later release)")
        print(json.dumps(client.call("backups_list")))
    finally:
        if not args.keep:
            print("$ bitdust stop")
            print(_cli(home, "stop"))
    return 0


if __name__ == "__main__":
    sys.exit(main())
