"""Running one node as a long-lived process (``bitdust daemon``, which ``bitdust
start`` launches detached).

The daemon owns the process-wide things a Node must not: the asyncio reactor, signal
handling, the pid file and the log handlers. SIGTERM and the API's ``stop()`` both stop
the reactor, whose 'before shutdown' trigger runs the node's shutdowner to the end.
``restart()`` does the same, then replaces the process image with a fresh daemon (same
pid, so the pid file stays right).
"""

from __future__ import annotations

import asyncio
import gc
import logging
import os
import sys
from pathlib import Path

import psutil
import uvloop

from bitdust.home import Home
from bitdust.util.fs import atomic_write_text

log = logging.getLogger(__name__)


def install_asyncio_reactor() -> None:
    """Install Twisted's asyncio reactor (on a uvloop loop) once, before anything
    imports the default reactor."""
    if "twisted.internet.reactor" in sys.modules:
        from twisted.internet import reactor

        if type(reactor).__name__ != "AsyncioSelectorReactor":
            raise RuntimeError(f"a {type(reactor).__name__} is already installed; BitDust needs asyncio")
        return
    # uvloop is a faster implementation of the same asyncio loop: the JSON-RPC API
    # served about 45% more calls per second on it (bench/api.py). In-process tests run
    # on pytest-twisted's standard asyncio loop; the daemon tests run on this one.
    loop = uvloop.new_event_loop()
    asyncio.set_event_loop(loop)
    from twisted.internet import asyncioreactor

    asyncioreactor.install(loop)


def running_pid(home: Home) -> int | None:
    """The pid of the daemon of ``home`` if one is alive, else None (a stale file is ignored)."""
    try:
        pid = int(home.pid_file.read_text().split()[0])
    except (FileNotFoundError, ValueError, IndexError):
        return None
    try:
        process = psutil.Process(pid)
        cmdline = process.cmdline()
        if process.status() == psutil.STATUS_ZOMBIE:
            return None
    except (psutil.NoSuchProcess, psutil.AccessDenied):
        return None
    if "daemon" in cmdline and any("bitdust" in part for part in cmdline):
        return pid
    return None


def run(home_path: Path) -> int:
    """Run the node of ``home_path`` until stopped; return the process exit code."""
    install_asyncio_reactor()
    from twisted.internet import reactor

    from bitdust.config import Config
    from bitdust.logs import setup_daemon_logging
    from bitdust.node import Node

    home = Home(home_path)
    home.ensure()
    other = running_pid(home)
    if other is not None and other != os.getpid():
        print(f"BitDust is already running in {home.root} (pid {other})", file=sys.stderr)
        return 1
    setup_daemon_logging(home.main_log, Config(home.config))
    atomic_write_text(home.pid_file, f"{os.getpid()}\n", mode=0o600)
    outcome = {"code": 0, "restart": False}

    node = Node(home.root, reactor=reactor)

    def exit_requested(restart: bool) -> None:
        outcome["restart"] = restart
        reactor.stop()

    node.exit_handler = exit_requested
    reactor.addSystemEventTrigger("before", "shutdown", node.stop)

    def start() -> None:
        def failed(failure: object) -> None:
            reason = node.initializer.failure_reason
            print(f"BitDust failed to start: {reason}", file=sys.stderr, flush=True)
            outcome["code"] = 2
            reactor.stop()

        def ready(_: object) -> None:
            # Start-up objects live as long as the process: keep them out of the
            # collector's generations so later collections (latency spikes) stay short.
            gc.collect()
            gc.freeze()
            log.info("node is READY, API on port %d", node.api_port)

        node.start().addCallbacks(ready, failed)

    reactor.callWhenRunning(start)
    log.info("daemon pid %d starting in %s", os.getpid(), home.root)
    reactor.run()
    log.info("daemon pid %d stopped", os.getpid())
    if outcome["restart"]:
        logging.shutdown()
        os.execv(sys.executable, [sys.executable, "-m", "bitdust", "--home", str(home.root), "daemon"])
    home.pid_file.unlink(missing_ok=True)
    return int(outcome["code"])
