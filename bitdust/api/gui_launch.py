"""Opening the GUI in the user's browser, from the daemon (``show()``) or the CLI.

Python's ``webbrowser`` falls back to console browsers (lynx, w3m...) when there is no
display; run from a detached daemon those would wait forever for a terminal, so a
browser is only tried where a graphical one can exist: ``BROWSER`` is set, or there is
an X11/Wayland display, or the system is macOS or Windows (which always have one).
"""

from __future__ import annotations

import logging
import os
import sys
import webbrowser
from pathlib import Path
from typing import TYPE_CHECKING, Any

from twisted.internet.defer import Deferred, succeed
from twisted.internet.threads import deferToThreadPool

from bitdust.api.results import error, ok

if TYPE_CHECKING:
    from bitdust.api.gui_access import GuiAccess
    from bitdust.node import Node

log = logging.getLogger(__name__)

SHOW_FLAG = "showgui"
"""A file under ``<home>/metadata``: left by ``restart(showgui=True)`` for the next daemon."""


def browser_possible() -> bool:
    if os.environ.get("BROWSER"):
        return True
    if sys.platform in ("darwin", "win32"):
        return True
    return bool(os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY"))


def open_in_browser(url: str) -> bool:
    """True when a browser was started; False on a machine without one. Blocks briefly
    (it starts a process), so the daemon calls it in a thread."""
    if not browser_possible():
        return False
    try:
        return bool(webbrowser.open(url, new=2))
    except webbrowser.Error:
        return False


def flag_path(metadata: Path) -> Path:
    return metadata / SHOW_FLAG


def show(node: Node, access: GuiAccess | None, open_browser: bool = True) -> Deferred[dict[str, Any]]:
    """``show()``: a fresh one-time link, opened in a browser when this machine has one.
    The spec's answer, plus ``url`` (the link, for a caller that opens it itself) and
    ``opened`` (whether a browser was started: ``bitdust show`` prints the link if not)."""
    if access is None:
        return succeed(error("show is not available: the API server is not running"))
    url = access.gui_url(access.new_token())

    def answer(opened: bool) -> dict[str, Any]:
        return ok("show event has been sent to the main process", url=url, opened=opened)

    if not open_browser or not browser_possible():
        return succeed(answer(False))
    reactor = node.reactor
    return deferToThreadPool(reactor, reactor.getThreadPool(), open_in_browser, url).addCallback(answer)


def show_if_flagged(node: Node, access: GuiAccess | None) -> None:
    """After ``restart(showgui=True)``: open the GUI once, then forget the request."""
    flag = flag_path(node.home.metadata)
    if not flag.exists():
        return
    try:
        flag.unlink()
    except OSError as exc:
        log.warning("could not remove %s: %s", flag, exc)
    show(node, access).addCallback(lambda r: log.info("GUI after restart: %s", r)).addErrback(
        lambda f: log.warning("GUI after restart could not be opened: %s", f.getErrorMessage()))
