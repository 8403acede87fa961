"""backup_monitor: keeps what the suppliers hold in line with the catalog.

A check (on ``restart`` from ``backups_update``, after every job, and every
:data:`CHECK_SECONDS`): ask every supplier what it holds, then

* delete pieces of versions the catalog does not know (an aborted job's late pieces,
  versions deleted while a supplier was offline) -- never the catalog copy's pieces,
  never a running job's, and only once this home's catalog was copied to the suppliers
  (``may_collect``): a fresh home's empty catalog must not wipe the data it is about to
  recover;
* drop ``in progress`` versions no job is running (a daemon stopped mid-backup) and
  delete their pieces;
* re-send the missing pieces of complete versions from the local copies
  (``services/backups/keep-local-copies-enabled``); without local copies a missing piece
  can only be regenerated from the other suppliers' shares, which is
  backup_rebuilder's job: it is asked to check (service_rebuilding).

Checks never overlap: a ``restart`` during one is served by one more check after it.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Generator
from pathlib import Path
from typing import Any

from twisted.internet.defer import Deferred, DeferredList, DeferredSemaphore, inlineCallbacks
from twisted.internet.interfaces import IReactorTime
from twisted.python.failure import Failure

from bitdust.automats.automat import ANY, Automat, AutomatRegistry, Timer, Transition
from bitdust.storage.backups.io import Parts, delete_remote
from bitdust.storage.ecc import EccMap
from bitdust.storage.ids import IdError, PieceKind, is_catalog_copy, make_backup_id, make_piece_id, parse_piece_id
from bitdust.storage.supplier import disk

log = logging.getLogger(__name__)

CHECK_SECONDS = 600.0
RESENDS_IN_FLIGHT = 4
"""Blocks whose missing pieces are being read back and re-sent at once: each holds its
pieces in memory, so a supplier that lost a whole backup costs a few MB here, not all of it."""
READY = "READY"
CHECKING = "CHECKING"
CLOSED = "CLOSED"


class BackupMonitor(Automat):
    name = "backup_monitor"
    timers = {"timer-check": Timer(CHECK_SECONDS, (READY,))}
    transitions = {
        ("AT_STARTUP", "init"): [Transition(READY)],
        (READY, "restart"): [Transition(CHECKING, ("check",))],
        (READY, "timer-check"): [Transition(CHECKING, ("check",))],
        (CHECKING, "restart"): [Transition(CHECKING, ("remember_restart",))],
        (CHECKING, "checked"): [Transition(CHECKING, ("report", "check"), guard="restart_wanted"),
                                Transition(READY, ("report",))],
        (ANY, "shutdown"): [Transition(CLOSED, ("stop",))],
    }

    def __init__(self, clock: IReactorTime, registry: AutomatRegistry | None, parts: Callable[[], Parts],
                 list_files: Callable[[], Any], busy_versions: Callable[[], set[str]],
                 rebuild: Callable[[], None], may_collect: Callable[[], bool]) -> None:
        super().__init__(clock, registry)
        self._may_collect = may_collect
        self._parts = parts
        self._list_files = list_files
        self._busy = busy_versions
        self._rebuild = rebuild
        self._restart = False
        self.last_report: dict[str, int] = {}
        self.last_error = ""
        self._waiters: list[Deferred[dict[str, int]]] = []

    def restart(self) -> Deferred[dict[str, int]]:
        """Fires with the figures of the check that starts after this call."""
        done: Deferred[dict[str, int]] = Deferred()
        self._waiters.append(done)
        self.event("restart")
        return done

    def is_restart_wanted(self, *_args: Any) -> bool:
        return self._restart

    def do_remember_restart(self, *_args: Any) -> None:
        self._restart = True

    def do_check(self, *_args: Any) -> None:
        self._restart = False
        waiters, self._waiters = self._waiters, []

        def done(result: dict[str, int] | Failure) -> None:
            if isinstance(result, Failure):
                self.last_error = result.getErrorMessage()
                log.info("backup check failed: %s", self.last_error)
                report: dict[str, int] = {}
            else:
                self.last_error = ""
                report = result
            for waiter in waiters:
                waiter.callback(report)
            if self.state == CHECKING:
                self.event("checked", report)

        self._check().addBoth(done)

    def do_report(self, report: dict[str, int]) -> None:
        self.last_report = report

    def do_stop(self, *_args: Any) -> None:
        waiters, self._waiters = self._waiters, []
        for waiter in waiters:
            waiter.callback({})
        self.destroy()

    @inlineCallbacks
    def _check(self) -> Generator[Any, Any, dict[str, int]]:
        listing = self._list_files()
        yield listing.refresh()
        parts = self._parts()
        catalog = parts.catalog
        busy = self._busy()
        report = {"orphans": 0, "stale": 0, "missing": 0, "resent": 0}
        stale = [make_backup_id(item.path_id, v.version) for item in catalog.items() for v in item.versions.values()
                 if not v.complete and make_backup_id(item.path_id, v.version) not in busy]
        for backup_id in stale:
            catalog.drop_version(backup_id)
        if stale:
            yield catalog.save()
            report["stale"] = len(stale)
        # every generation of a version (re-encoded ones live elsewhere: ids.storage_id) is
        # known; retired ones are the re-encoder's to delete once no restore reads them
        known = {v.storage_id(item.path_id, g) for item, v in catalog.complete_backups()
                 for g in v.generations()} | busy
        size = parts.customer.running_list().size
        sends: list[Deferred[int]] = []
        deletes: list[Deferred[Any]] = []
        resend_slots = DeferredSemaphore(RESENDS_IN_FLIGHT)
        for position in range(size):
            held = listing.held(position)
            if held is None:
                continue
            orphans = sorted({_backup_of(p) for p in held} - known - {""}) if self._may_collect() else []
            if orphans:
                report["orphans"] += len(orphans)
                deletes.append(parts.motion.delete_backups(position, orphans))
            missing = self._missing(parts, position, held)
            report["missing"] += sum(len(pieces) for pieces in missing)
            if missing and parts.keep_local():
                sends.extend(resend_slots.run(self._resend, parts, position, pieces) for pieces in missing)
        if stale:
            deletes.append(delete_remote(parts, stale))
        results = yield DeferredList(sends + deletes, consumeErrors=True)
        report["resent"] = sum(value for ok, value in results[:len(sends)] if ok)
        if report["missing"] > report["resent"]:
            self._rebuild()
        return report

    def _missing(self, parts: Parts, position: int, held: dict[str, int]) -> list[list[str]]:
        """The pieces the supplier at ``position`` should hold and does not, grouped by
        block (its Data and Parity piece): a group goes back in one packet, as a backup
        sends them."""
        missing = []
        for item, version in parts.catalog.complete_backups():
            try:
                ecc = EccMap.from_name(version.ecc)
            except ValueError:
                continue
            if position >= ecc.suppliers:
                continue
            backup_id = version.storage_id(item.path_id)
            for block in range(version.blocks):
                pieces = [piece_id for kind in (PieceKind.DATA, PieceKind.PARITY)
                          if (piece_id := make_piece_id(backup_id, block, position, kind)) not in held]
                if pieces:
                    missing.append(pieces)
        return missing

    @inlineCallbacks
    def _resend(self, parts: Parts, position: int, piece_ids: list[str]) -> Generator[Any, Any, int]:
        """Re-send the local copies of one block's pieces; how many were sent (a piece
        whose local copy is gone is left to the rebuilder)."""
        pieces = yield parts.worker.run(_read_local_copies, parts.local_root, piece_ids)
        if pieces:
            yield parts.motion.send_pieces(position, pieces)
        return len(pieces)


def _read_local_copies(root: Path, piece_ids: list[str]) -> list[tuple[str, bytes]]:
    """The local copies of ``piece_ids`` that can be read, in one trip to a thread."""
    found = []
    for piece_id in piece_ids:
        try:
            found.append((piece_id, disk.read_piece(root, piece_id)))
        except (OSError, IdError) as exc:
            log.info("no local copy of %s to re-send: %s", piece_id, exc)
    return found


def _backup_of(piece_id: str) -> str:
    """The backup ID of a listed piece; "" for the catalog copy (never an orphan)."""
    if is_catalog_copy(piece_id):
        return ""
    try:
        return parse_piece_id(piece_id).backup_id
    except IdError:
        return ""
