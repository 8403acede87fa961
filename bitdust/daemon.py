"""Running one node as a long-lived process (``bitdust daemon``, which ``bitdust
start`` launches detached).

The daemon owns the process-wide things a Node must not: the asyncio reactor, signal
handling, the pid file and the log handlers. SIGTERM and the API's ``stop()`` both stop
the reactor, whose 'before shutdown' trigger runs the node's shutdowner to the end.
``restart()`` does the same, then replaces the process image with a fresh daemon (same
pid, so the pid file stays right).
"""

from __future__ import annotations

import gc
import logging
import os
import sys
from collections.abc import MutableMapping
from pathlib import Path

from bitdust.home import Home
from bitdust.util.fs import atomic_write_text

log = logging.getLogger(__name__)

READY_FD_ENV = "BITDUST_READY_FD"
STARTUP_GC_PAUSE = 60.0


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
    # Imported here, not at the top: `bitdust start` imports this module for running_pid().
    import asyncio

    import uvloop

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
    import psutil  # only now: `bitdust start` after a clean stop (no pid file) never needs it

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


class ReadyPipe:
    """The write end of the pipe ``bitdust start`` waits on (its fd number is in
    ``$BITDUST_READY_FD``): one line, ``ready <api url>`` or ``failed <reason>``, then closed.
    The variable is removed at once so that a daemon that replaces itself on ``restart()``
    (``execv``) or any process it starts never writes to a stale descriptor."""

    def __init__(self, environ: MutableMapping[str, str]) -> None:
        text = environ.pop(READY_FD_ENV, None)
        self._fd: int | None = None
        if text is not None:
            try:
                fd = int(text)
                os.fstat(fd)
            except (ValueError, OSError):
                log.warning("ignoring %s=%r: not an open descriptor", READY_FD_ENV, text)
            else:
                os.set_inheritable(fd, False)
                self._fd = fd

    def send(self, word: str, text: str) -> None:
        fd, self._fd = self._fd, None
        if fd is None:
            return
        try:
            os.write(fd, f"{word} {text}".replace("\n", " ").encode("utf-8") + b"\n")
        except OSError as exc:  # the CLI gave up waiting (timeout, ^C): nobody to tell
            log.info("could not report %r to bitdust start: %s", word, exc)
        finally:
            os.close(fd)


def end_startup_gc_pause() -> None:
    """Freeze what start-up made (modules, classes, the node's long-lived objects: they
    live as long as the process) out of the collector's generations, then turn it on.
    Later collections scan only what requests create, so they stay short (no latency
    spikes). The few hundred cyclic garbage objects of start-up are frozen with the rest
    (a full ``gc.collect()`` to find them cost ~60 ms of CPU per start)."""
    if not gc.isenabled():
        gc.freeze()
        gc.enable()


def run(home_path: Path) -> int:
    """Run the node of ``home_path`` until stopped; return the process exit code."""
    # Start-up creates some 10^5 long-lived objects (imports, the node); the cyclic
    # collector would scan them again and again while they pile up (~150 collections,
    # 0.1 s of CPU measured). It is paused until READY, or STARTUP_GC_PAUSE at most.
    gc.disable()
    ready_pipe = ReadyPipe(os.environ)
    from bitdust.util.memory import tune_malloc

    tune_malloc()  # megabyte buffers reused, not page-faulted in again (see util/memory.py)
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
            end_startup_gc_pause()
            ready_pipe.send("failed", reason)
            outcome["code"] = 2
            reactor.stop()

        def ready(_: object) -> None:
            end_startup_gc_pause()
            ready_pipe.send("ready", f"http://{node.config.get('interface/api/host')}:{node.api_port}/")
            log.info("node is READY, API on port %d", node.api_port)

        node.start().addCallbacks(ready, failed)

    reactor.callWhenRunning(start)
    reactor.callLater(STARTUP_GC_PAUSE, end_startup_gc_pause)  # a start that never ends must not grow forever
    log.info("daemon pid %d starting in %s", os.getpid(), home.root)
    reactor.run()
    log.info("daemon pid %d stopped", os.getpid())
    if outcome["restart"]:
        logging.shutdown()
        os.execv(sys.executable, [sys.executable, "-m", "bitdust", "--home", str(home.root), "daemon"])
    home.pid_file.unlink(missing_ok=True)
    return int(outcome["code"])
