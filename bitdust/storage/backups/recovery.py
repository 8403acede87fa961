"""Getting the catalog back from the suppliers after ``bitdust identity restore``.

``identity restore`` on a fresh home leaves ``<home>/catalog/recover-from-suppliers``.
While that marker exists, service_backup_db runs a :class:`CatalogRecovery`: every
:data:`TICK_SECONDS` it looks whether the suppliers of the restored list are connected
(all of them, or after :data:`WAIT_ALL_SECONDS` at least one: every supplier holds the
whole catalog copy), fetches the newest copy that opens with our key
(:func:`~bitdust.storage.backups.catalog_sync.fetch_catalog_copy`) and puts it in place.
Then the marker goes, and every version of the catalog can be restored.

A restored node listens on new ports, but its suppliers still have the old identity
document cached and would answer to the old contacts. The p2p_connector sends our new
Identity packet to every supplier (``node.relationships``) at start, and again to those
that did not Ack it; what is left here is to ask the suppliers not connected yet again
every :data:`NUDGE_SECONDS` (the customer's own re-check may be minutes away), so the
first request after they learnt the new contacts comes soon.

The catalog copier is paused meanwhile: the fresh, empty (or newly filled) catalog must
not be uploaded over the real copies before they were read. A catalog that got items
before the copy could be read (a backup started at once) is never overwritten: the
recovery gives up, saying so in the log. After :data:`GIVE_UP_SECONDS` without success it
stops trying until the next start (the marker stays).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Generator
from pathlib import Path
from typing import TYPE_CHECKING, Any

from twisted.internet.defer import inlineCallbacks
from twisted.internet.task import LoopingCall

from bitdust.services.service import ServiceUnavailable
from bitdust.storage.backups.catalog_copy import CatalogCopyError
from bitdust.storage.motion import MotionError

if TYPE_CHECKING:
    from bitdust.node import Node
    from bitdust.services.backup_db import BackupDbService

log = logging.getLogger(__name__)

MARKER = "recover-from-suppliers"
TICK_SECONDS = 2.0
WAIT_ALL_SECONDS = 60.0
GIVE_UP_SECONDS = 3600.0
NUDGE_SECONDS = 10.0


def marker_path(node: Node) -> Path:
    return node.home.catalog / MARKER


class CatalogRecovery:
    def __init__(self, node: Node, service: BackupDbService, connected: Callable[[], tuple[int, int]],
                 nudge: Callable[[], None]) -> None:
        """``connected()`` -> (connected suppliers, hired suppliers) of the customer;
        ``nudge()`` asks the suppliers not connected yet again."""
        self.node = node
        self.service = service
        self.connected = connected
        self.nudge = nudge
        self.last_nudge = -NUDGE_SECONDS
        self.elapsed = 0.0
        self.busy = False
        self.state = "WAITING"
        self.last_error = ""
        self._loop: LoopingCall | None = None

    def start(self) -> None:
        if self.service.copier is not None:
            self.service.copier.stop()
        log.info("catalog recovery: waiting for the suppliers to fetch the catalog copy")
        self._loop = LoopingCall(self._tick)
        self._loop.clock = self.node.clock
        self._loop.start(TICK_SECONDS, now=False)

    def stop(self) -> None:
        if self._loop is not None and self._loop.running:
            self._loop.stop()
        self._loop = None

    def _finish(self, state: str) -> None:
        self.state = state
        self.stop()
        if state != "GAVE_UP":
            marker_path(self.node).unlink(missing_ok=True)
        copier = self.service.copier
        if copier is not None and self.service.loaded:
            copier.start()

    def _tick(self) -> None:
        self.elapsed += TICK_SECONDS
        if self.busy:
            return
        if self.elapsed > GIVE_UP_SECONDS:
            log.warning("catalog recovery: no catalog copy could be had in %.0f s (%s); trying again on the next "
                        "start", GIVE_UP_SECONDS, self.last_error or "no supplier connected")
            self._finish("GAVE_UP")
            return
        try:
            connected, hired = self.connected()
            if connected < hired and self.elapsed - self.last_nudge >= NUDGE_SECONDS:
                self.last_nudge = self.elapsed
                self.nudge()
        except ServiceUnavailable:
            return
        if connected == 0 or (connected < hired and self.elapsed < WAIT_ALL_SECONDS):
            return
        self.busy = True
        self._fetch().addBoth(self._fetched)

    def _fetched(self, _result: Any) -> None:
        self.busy = False

    @inlineCallbacks
    def _fetch(self) -> Generator[Any, Any, None]:
        from bitdust.storage.backups.catalog_sync import fetch_catalog_copy

        try:
            catalog = yield fetch_catalog_copy(self.node)
        except (CatalogCopyError, MotionError, ServiceUnavailable) as exc:
            self.last_error = str(exc)
            log.info("catalog recovery: not yet: %s", exc)
            return
        if not self.service.loaded:
            return
        if len(self.service.catalog) > 0:
            log.warning("catalog recovery: the catalog got items before the copy was read; the copy on the "
                        "suppliers (%d items) is not used", len(catalog))
            self._finish("SKIPPED")
            return
        yield self.service.replace_catalog(catalog)
        log.info("catalog recovery: %d items recovered from the suppliers", len(catalog))
        self._finish("DONE")


def start_if_requested(node: Node, service: BackupDbService) -> CatalogRecovery | None:
    """A running recovery when ``identity restore`` asked for one, else None."""
    if not marker_path(node).exists():
        return None
    from bitdust.services.customer import running_customer
    from bitdust.storage.customer.connector import CONNECTED

    def connected() -> tuple[int, int]:
        positions = running_customer(node, "catalog recovery").positions()
        hired = [p for p in positions if p.idurl]
        return sum(1 for p in hired if p.state == CONNECTED), len(hired)

    def nudge() -> None:
        customer = running_customer(node, "catalog recovery")
        for view in customer.positions():
            connector = customer.connectors.get(view.position)
            if view.idurl and view.state != CONNECTED and connector is not None:
                connector.event("connect")

    recovery = CatalogRecovery(node, service, connected, nudge)
    recovery.start()
    return recovery
