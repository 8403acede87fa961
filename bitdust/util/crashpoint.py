"""Fault injection for the crash tests (test-only; a no-op in normal use).

The reliability suite (``tests/reliability/test_crash_*.py``) must kill a daemon at an
exact point of a write -- between a catalog's temp file and its rename, after some
pieces of a backup were acknowledged, in the middle of a restored file, in the middle of
a piece a supplier is receiving -- to show that a crash there loses nothing and leaves
nothing half-done behind. Timed kills cannot hit such points reliably, so the code has
named points, and the daemon is started with::

    BITDUST_CRASHPOINT=<name>[@<n>]

to make the process SIGKILL itself the ``n``-th time (default: the first) it passes
``crashpoint(<name>)``. SIGKILL, not an exception: nothing may run after it (no
``finally``, no shutdown, no buffered log lines), exactly like a power cut or the OOM
killer. The variable is read once, when this module is imported; without it every
call is one comparison with ``None``.

Points (each call site is one line):

=================================  =========================================================
``catalog.after_temp_write``       catalog saved to its temp file, not renamed yet
``catalog.after_rename``           catalog renamed into place (the save is durable)
``catalog.mid_temp_write``         half of the catalog in its temp file
``backup.piece_acked``             a backup piece was acknowledged by its supplier
``backup.before_complete``         every piece acknowledged, version not marked complete yet
``restore.mid_file``               part of a restored file written, more of it to come
``supplier.piece.mid_temp_write``  half of a received piece in the temp file
``supplier.piece.after_rename``    a received piece stored, its Ack not sent yet
=================================  =========================================================
"""

from __future__ import annotations

import logging
import os
import signal
import threading
from collections.abc import Callable

log = logging.getLogger(__name__)

ENV = "BITDUST_CRASHPOINT"


def _parse(value: str | None) -> tuple[str, int] | None:
    """``"name@3"`` -> ``("name", 3)``; ``"name"`` -> ``("name", 1)``; unset/empty -> None."""
    if not value:
        return None
    name, _at, count = value.strip().partition("@")
    try:
        hits = int(count) if count else 1
    except ValueError:
        raise ValueError(f"{ENV}={value!r}: expected NAME or NAME@COUNT") from None
    if not name or hits < 1:
        raise ValueError(f"{ENV}={value!r}: expected NAME or NAME@COUNT with COUNT >= 1")
    return name, hits


_armed: tuple[str, int] | None = _parse(os.environ.get(ENV))
_hits = 0
_lock = threading.Lock()  # points are passed in pool threads too (disk writes, restore)


def arm(value: str | None) -> None:
    """Arm (``"name[@n]"``) or disarm (None) in this process; for unit tests of the points."""
    global _armed, _hits
    _armed = _parse(value)
    _hits = 0


def crashpoint(name: str, before: Callable[[], object] | None = None) -> None:
    """SIGKILL this process if ``name`` is the armed point and this is its ``n``-th pass.

    ``before`` runs first, only then: it puts the state in place that the point is about
    (e.g. half of a piece written), so the normal path pays nothing for it.
    """
    global _hits
    if _armed is None or _armed[0] != name:
        return
    with _lock:
        _hits += 1
        if _hits != _armed[1]:
            return
    if before is not None:
        before()
    log.warning("crashpoint %s reached (pass %d): killing pid %d", name, _hits, os.getpid())
    os.kill(os.getpid(), signal.SIGKILL)
