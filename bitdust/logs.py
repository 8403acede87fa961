"""Logging of a daemon: ``<home>/logs/main.log``, level from ``logs/debug-level``.

Twisted's own log events are forwarded to the standard ``logging`` module, so there is
one log with one format. The level follows the option live.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from bitdust.config import Config

FORMAT = "%(asctime)s %(levelname)-7s %(name)s: %(message)s"


def level_for(debug_level: int) -> int:
    """0 → warnings and errors; 1-5 → informative lines; 6 and above → debugging detail."""
    if debug_level <= 0:
        return logging.WARNING
    if debug_level <= 5:
        return logging.INFO
    return logging.DEBUG


def setup_daemon_logging(log_file: Path, config: Config) -> None:
    log_file.parent.mkdir(parents=True, exist_ok=True)
    handler = logging.FileHandler(log_file, encoding="utf-8")
    handler.setFormatter(logging.Formatter(FORMAT))
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level_for(config.get("logs/debug-level")))

    def follow(_key: str, _old: Any, new: Any) -> None:
        root.setLevel(level_for(new))

    config.listen("logs/debug-level", follow)

    from twisted.logger import STDLibLogObserver, globalLogBeginner

    globalLogBeginner.beginLoggingTo([STDLibLogObserver()], redirectStandardIO=False)
