"""The ``bitdust`` command: daemon control, any API call, and friendly verbs.

``bitdust [--home DIR] COMMAND ...``. The home is ``--home``, else ``$BITDUST_HOME``,
else ``~/.bitdust``. Exit status: 0 success, 1 the daemon answered ERROR, 2 a JSON-RPC
or usage error, 3 the daemon is not running or did not answer.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import select
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from bitdust.home import Home, resolve_home

if TYPE_CHECKING:
    from bitdust.api.client import ApiClient

EXIT_OK, EXIT_ERROR, EXIT_USAGE, EXIT_NOT_RUNNING = 0, 1, 2, 3
START_TIMEOUT = 60.0
STOP_TIMEOUT = 60.0
FAILED_EXIT_TIMEOUT = 30.0
_KWARG = re.compile(r"^([A-Za-z_][A-Za-z0-9_]*)=(.*)$", re.DOTALL)


class CliError(Exception):
    def __init__(self, message: str, code: int = EXIT_ERROR) -> None:
        super().__init__(message)
        self.code = code


# -- helpers ----------------------------------------------------------------------------


def _running_pid(home: Home) -> int | None:
    from bitdust.daemon import running_pid

    return running_pid(home)


def _client(home: Home, timeout: float = 30.0) -> ApiClient:
    # imported here: urllib and the config tree are not needed by `bitdust start`,
    # whose own start-up is part of the time until the API answers
    from bitdust.api.client import ApiClient

    return ApiClient.from_home(home.root, timeout=timeout)


def _parse_value(text: str) -> Any:
    """JSON where it parses (numbers, true, lists, objects, quoted strings), else the text."""
    try:
        return json.loads(text)
    except ValueError:
        return text


def parse_call_args(words: list[str]) -> tuple[list[Any], dict[str, Any]]:
    """``a 2 key=value`` -> (['a', 2], {'key': 'value'}); ``--`` ends keyword parsing."""
    args: list[Any] = []
    kwargs: dict[str, Any] = {}
    literal = False
    for word in words:
        if word == "--" and not literal:
            literal = True
            continue
        match = None if literal else _KWARG.match(word)
        if match:
            kwargs[match.group(1)] = _parse_value(match.group(2))
        else:
            args.append(_parse_value(word))
    return args, kwargs


def _print_json(value: Any) -> None:
    print(json.dumps(value, indent=2, ensure_ascii=False, sort_keys=False))


def _tail(path: Path, lines: int = 15) -> str:
    try:
        return "\n".join(path.read_text(encoding="utf-8", errors="replace").splitlines()[-lines:])
    except FileNotFoundError:
        return ""


def _wait_ready(home: Home, process: subprocess.Popen[bytes], ready_fd: int, timeout: float) -> str:
    """Wait for the daemon's one line on the readiness pipe (see :func:`bitdust.daemon.run`):
    ``ready <api url>`` once the node is READY and its API listens, ``failed <reason>``
    otherwise. End of file without a line means the daemon died first. A pipe instead of
    polling the API: the CLI wakes up at the very moment, and burns no CPU the daemon
    needs while it starts. Returns the API URL; raises CliError with the log's reason."""
    deadline = time.monotonic() + timeout
    received = b""
    while b"\n" not in received:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise CliError(f"BitDust did not answer within {timeout:.0f} s; see {home.main_log}")
        readable, _, _ = select.select([ready_fd], [], [], remaining)
        if not readable:
            continue
        chunk = os.read(ready_fd, 4096)
        if not chunk:
            break
        received += chunk
    word, _, rest = received.decode("utf-8", errors="replace").partition(" ")
    if word == "ready":
        return rest.strip()
    try:
        process.wait(timeout=FAILED_EXIT_TIMEOUT)
    except subprocess.TimeoutExpired:
        raise CliError(f"BitDust failed to start and did not exit: {rest.strip()}; see {home.main_log}") from None
    reason = _tail(home.logs / "daemon.out") or _tail(home.main_log)
    raise CliError(f"BitDust failed to start (exit {process.returncode}):\n{reason}")


def _wait_exit(pid: int, timeout: float) -> bool:
    import psutil

    try:
        psutil.Process(pid).wait(timeout=timeout)
    except psutil.NoSuchProcess:
        return True
    except psutil.TimeoutExpired:
        return False
    return True


# -- daemon control ------------------------------------------------------------------------


def cmd_start(home: Home, _args: argparse.Namespace) -> int:
    pid = _running_pid(home)
    if pid is not None:
        print(f"BitDust is already running in {home.root} (pid {pid})")
        return EXIT_OK
    from bitdust.daemon import READY_FD_ENV

    home.ensure()
    started = time.monotonic()
    ready_fd, ready_write_fd = os.pipe()
    try:
        with open(home.logs / "daemon.out", "wb") as out:
            process = subprocess.Popen(
                [sys.executable, "-m", "bitdust", "--home", str(home.root), "daemon"],
                stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT,
                start_new_session=True, close_fds=True, pass_fds=(ready_write_fd,),
                env={**os.environ, READY_FD_ENV: str(ready_write_fd)},
            )
        os.close(ready_write_fd)
        ready_write_fd = -1
        url = _wait_ready(home, process, ready_fd, START_TIMEOUT)
    finally:
        os.close(ready_fd)
        if ready_write_fd >= 0:
            os.close(ready_write_fd)
    print(f"BitDust started in {home.root} (pid {process.pid}, API {url}) in {time.monotonic() - started:.2f} s")
    return EXIT_OK


def cmd_daemon(home: Home, _args: argparse.Namespace) -> int:
    from bitdust.daemon import run

    return run(home.root)


def cmd_stop(home: Home, _args: argparse.Namespace) -> int:
    from bitdust.api.client import ApiConnectionError, RpcError

    pid = _running_pid(home)
    if pid is None:
        print(f"BitDust is not running in {home.root}")
        return EXIT_OK
    try:
        _client(home, timeout=5.0).call("stop")
    except (ApiConnectionError, RpcError):
        os.kill(pid, signal.SIGTERM)  # the API is stuck or not up yet: the signal path is the same shutdown
    if not _wait_exit(pid, STOP_TIMEOUT):
        raise CliError(f"BitDust (pid {pid}) did not stop within {STOP_TIMEOUT:.0f} s; see {home.main_log}")
    print(f"BitDust stopped (pid {pid})")
    return EXIT_OK


def cmd_restart(home: Home, args: argparse.Namespace) -> int:
    cmd_stop(home, args)
    return cmd_start(home, args)


def cmd_status(home: Home, _args: argparse.Namespace) -> int:
    pid = _running_pid(home)
    if pid is None:
        print(f"BitDust is not running in {home.root}")
        return EXIT_NOT_RUNNING
    client = _client(home, timeout=5.0)
    machines = {m["name"]: m["state"] for m in client.call("automats_list")["result"]}
    services = client.call("services_list")["result"]
    on = sum(1 for s in services if s["state"] == "ON")
    print(f"BitDust is running in {home.root} (pid {pid}, API {client.url})")
    print(f"  initializer: {machines.get('initializer', '?')}")
    print(f"  network: {machines.get('network_connector', 'not running')}")
    print(f"  services: {on} ON of {sum(1 for s in services if s['installed'])} installed")
    return EXIT_OK


# -- API calls --------------------------------------------------------------------------------


def call_api(home: Home, method: str, args: list[Any], kwargs: dict[str, Any]) -> tuple[Any, int]:
    from bitdust.api.client import ApiConnectionError, RpcError

    if _running_pid(home) is None:
        raise CliError(f"BitDust is not running in {home.root}; run: bitdust start", EXIT_NOT_RUNNING)
    try:
        result = _client(home).call(method, *args, **kwargs)
    except RpcError as exc:
        raise CliError(str(exc), EXIT_USAGE) from None
    except ApiConnectionError as exc:
        raise CliError(str(exc), EXIT_NOT_RUNNING) from None
    failed = isinstance(result, dict) and result.get("status") == "ERROR"
    return result, EXIT_ERROR if failed else EXIT_OK


def cmd_api(home: Home, args: argparse.Namespace) -> int:
    positional, keywords = parse_call_args(args.args)
    if positional and keywords:
        raise CliError("use either positional or key=value arguments, not both", EXIT_USAGE)
    result, code = call_api(home, args.method, positional, keywords)
    _print_json(result)
    return code


def cmd_show(home: Home, _args: argparse.Namespace) -> int:
    """The daemon makes the one-time link; this process opens it, since the browser
    belongs to the user's session, which the CLI has and a detached daemon may not.
    Without a browser (no display, or webbrowser fails) the link is printed instead."""
    from bitdust.api.gui_access import TOKEN_SECONDS
    from bitdust.api.gui_launch import open_in_browser

    result, code = call_api(home, "show", [], {"open_browser": False})
    if code != EXIT_OK or not isinstance(result, dict) or not result.get("url"):
        _print_json(result)
        return code if code != EXIT_OK else EXIT_ERROR
    url = str(result["url"])
    if open_in_browser(url):
        print(f"the GUI was opened in your browser ({url.partition('?')[0]})")
    else:
        print(f"no browser here; open this link on this machine within {TOKEN_SECONDS / 60:g} minutes "
              f"(it works once):\n{url}")
    return EXIT_OK


def cmd_config(home: Home, args: argparse.Namespace) -> int:
    """Through the daemon when it runs (so services follow the change), else on disk."""
    from bitdust.config import Config, ConfigValueError, UnknownOptionError, views

    if args.action == "set" and args.value is None:
        raise CliError("usage: bitdust config set KEY VALUE", EXIT_USAGE)
    if args.action != "list" and args.key is None:
        raise CliError(f"usage: bitdust config {args.action} KEY", EXIT_USAGE)
    if _running_pid(home) is not None:
        method, params = {
            "get": ("config_get", [args.key]),
            "set": ("config_set", [args.key, args.value]),
            "list": ("config_list", [True]),
        }[args.action]
        answer, code = call_api(home, method, params, {})
        if code != EXIT_OK:
            raise CliError("; ".join(answer.get("errors", [])))
        rows = answer["result"]
    else:
        config = Config(home.config)
        try:
            if args.action == "get":
                rows = views.describe(config, args.key)
            elif args.action == "set":
                rows = views.change(config, args.key, args.value)
            else:
                rows = views.listing(config, sort=True)
        except (ConfigValueError, UnknownOptionError) as exc:
            raise CliError(str(exc)) from None
    if args.json:
        _print_json(rows)
    elif args.action == "set":
        for row in rows:
            print(f"{row['key']}: {row['old_value']} -> {row['value']}")
    else:
        width = max(len(row["key"]) for row in rows)
        for row in rows:
            print(f"{row['key']:<{width}}  {row['value']}  [{row['type']}]")
    return EXIT_OK


# -- argument parsing ----------------------------------------------------------------------


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="bitdust", description="BitDust: peer-to-peer encrypted backups.")
    parser.add_argument("--home", help="home folder of the node (default: $BITDUST_HOME or ~/.bitdust)")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    sub.add_parser("start", help="start the daemon in the background").set_defaults(func=cmd_start)
    sub.add_parser("stop", help="stop the daemon").set_defaults(func=cmd_stop)
    sub.add_parser("restart", help="stop, then start the daemon").set_defaults(func=cmd_restart)
    sub.add_parser("status", help="is the daemon running, and how is it").set_defaults(func=cmd_status)
    sub.add_parser("show", help="open the GUI in a browser").set_defaults(func=cmd_show)
    sub.add_parser("daemon", help="run the daemon in the foreground").set_defaults(func=cmd_daemon)
    api = sub.add_parser("api", help="call any API method: bitdust api METHOD [ARG ...] [key=value ...]")
    api.add_argument("method")
    api.add_argument("args", nargs=argparse.REMAINDER)
    api.set_defaults(func=cmd_api)
    config = sub.add_parser("config", help="read or change settings: config get KEY | set KEY VALUE | list")
    config.add_argument("action", choices=("get", "set", "list"))
    config.add_argument("key", nargs="?")
    config.add_argument("value", nargs="?")
    config.add_argument("--json", action="store_true", help="print the API's JSON shape")
    config.set_defaults(func=cmd_config)
    from bitdust.identity.commands import add_parser as add_identity_parser

    add_identity_parser(sub)
    from bitdust.localnet import add_parser as add_localnet_parser

    add_localnet_parser(sub)
    from bitdust.cli_backup import add_parser as add_backup_parsers

    add_backup_parsers(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    home = Home(resolve_home(args.home))
    try:
        return int(args.func(home, args))
    except CliError as exc:
        print(str(exc), file=sys.stderr)
        return exc.code
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        # the reader (``| head``) went away; say nothing more on a closed pipe
        sys.stdout = open(os.devnull, "w")  # noqa: SIM115
        return EXIT_OK


if __name__ == "__main__":
    sys.exit(main())
