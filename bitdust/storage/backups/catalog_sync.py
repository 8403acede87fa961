"""Keeping the encrypted catalog copy on every supplier, and fetching it back.

:class:`CatalogCopier` (run by service_backup_db) looks at the catalog every
:data:`CHECK_SECONDS`: a catalog that changed since its last copy is sealed (in a pool
thread) and sent whole to every supplier under a new version; after a supplier Acked
every chunk, copies older than the newest :data:`KEEP_COPIES` are deleted there, so a
copy cut short never replaces a good one. That is the debounce: at most one upload
per interval, whatever the number of changes.

What was copied last is remembered in ``<home>/catalog/copied.json`` (SHA-256 of the
catalog bytes), so a restart does not upload an unchanged catalog again, and a home
that never copied anything never uploads an *empty* catalog: on a fresh machine the
empty catalog must not push the real copies off the suppliers before
:func:`fetch_catalog_copy` got them back.
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Callable, Generator
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from twisted.internet.defer import Deferred, DeferredList, inlineCallbacks
from twisted.internet.task import LoopingCall
from twisted.internet.threads import deferToThreadPool
from twisted.python.failure import Failure

from bitdust.storage.backups.catalog_copy import (
    CatalogCopyError,
    chunk_count,
    chunk_piece_id,
    copies_in,
    copy_length,
    newest_first,
    open_catalog,
    seal_catalog,
    split_chunks,
)
from bitdust.storage.catalog.tree import Catalog
from bitdust.storage.ids import CATALOG_PATH_ID, new_version
from bitdust.storage.motion import DataMotion, MotionError
from bitdust.util.fs import atomic_write

if TYPE_CHECKING:
    from bitdust.node import Node
    from bitdust.services.list_files import ListFilesService

log = logging.getLogger(__name__)

CHECK_SECONDS = 3.0
KEEP_COPIES = 2
MARKER = "copied.json"


class CatalogCopier:
    def __init__(self, node: Node, catalog: Callable[[], Catalog], motion: Callable[[], DataMotion],
                 listing: Callable[[], ListFilesService], size: Callable[[], int]) -> None:
        self.node = node
        self._catalog = catalog
        self._motion = motion
        self._listing = listing
        self._size = size
        self._marker = node.home.catalog / MARKER
        self.copied_digest, self.last_version = self._read_marker()
        self.uploading: Deferred[bool] | None = None
        self.last_error = ""
        self._loop: LoopingCall | None = None
        self._versions: dict[int, set[str]] = {}

    def start(self) -> None:
        self._loop = LoopingCall(self._tick)
        self._loop.clock = self.node.clock
        self._loop.start(CHECK_SECONDS, now=False)

    def stop(self) -> None:
        if self._loop is not None and self._loop.running:
            self._loop.stop()
        self._loop = None

    def forget(self) -> None:
        """The running catalog was replaced (recovered): copy it at the next check."""
        self.copied_digest = None

    def _tick(self) -> None:
        if self.uploading is None:
            self.upload_now().addErrback(lambda f: log.info("catalog copy failed: %s", f.getErrorMessage()))

    def upload_now(self) -> Deferred[bool]:
        """Copy the catalog now if it changed (True once every supplier Acked it all);
        an upload already running is waited for, then the check runs again."""
        if self.uploading is not None:
            return self.uploading.addBoth(lambda _r: None).addCallback(lambda _r: self.upload_now())
        self.uploading = self._upload()

        def done(result: Any) -> Any:
            self.uploading = None
            return result

        return self.uploading.addBoth(done)

    def final_copy(self, seconds: float) -> Deferred[bool]:
        """One last copy before stopping. Fires with True once it is on every supplier,
        with False when it could not be made or did not land within ``seconds``: then it
        is left to finish or fail on its own, never cancelled, and nothing is chained after
        it (a cancelled upload_now() would start its re-check, unbounded). An upload
        already running is waited for instead of starting another."""
        outcome: Deferred[bool] = Deferred()

        def settle(copied: bool) -> None:
            if not outcome.called:
                outcome.callback(copied)

        timer = self.node.clock.callLater(seconds, settle, False)

        def landed(result: Any) -> None:
            if timer.active():
                timer.cancel()
            if isinstance(result, Failure):
                log.info("last catalog copy failed: %s", result.getErrorMessage())
            settle(result is True)

        running = self.uploading if self.uploading is not None else self.upload_now()
        running.addBoth(landed)
        return outcome

    @inlineCallbacks
    def _upload(self) -> Generator[Any, Any, bool]:
        catalog = self._catalog()
        data = catalog.export_bytes()
        digest = hashlib.sha256(data).hexdigest()
        if digest == self.copied_digest:
            return True
        if self.copied_digest is None and self.last_version is None and len(catalog) == 0:
            return False  # a fresh home: never push an empty catalog over the real copies
        motion = self._motion()
        positions = [p for p in range(self._size()) if motion.supplier_at(p)]
        if not positions:
            return False
        key = self.node.key
        if key is None:
            return False
        version = new_version(datetime.now(UTC), {self.last_version} if self.last_version else set())
        reactor = self.node.reactor
        blob = yield deferToThreadPool(reactor, reactor.getThreadPool(), seal_catalog, data, key.public_key(),
                                       version)
        chunks = split_chunks(blob)
        del blob
        results = yield DeferredList([self._copy_to(motion, p, version, chunks) for p in positions],
                                     consumeErrors=True)
        failures = [f"position {p}: {r.getErrorMessage()}" for p, (ok, r) in zip(positions, results, strict=True)
                    if not ok]
        self.last_version = version
        if failures or len(positions) < self._size():
            self.last_error = "; ".join(failures) or "some positions have no supplier"
            log.info("catalog copy %s incomplete: %s", version, self.last_error)
            self._write_marker(self.copied_digest, version)
            return False
        self.copied_digest = digest
        self.last_error = ""
        self._write_marker(digest, version)
        log.info("catalog copy %s (%d bytes) is on %d suppliers", version, sum(map(len, chunks)), len(positions))
        return True

    @inlineCallbacks
    def _copy_to(self, motion: DataMotion, position: int, version: str, chunks: list[bytes]) -> Any:
        idurl = motion.supplier_at(position)
        yield DeferredList([motion.send_piece(position, chunk_piece_id(version, n, position), chunk)
                            for n, chunk in enumerate(chunks)], fireOnOneErrback=True, consumeErrors=True)
        known = self._versions.setdefault(position, set())
        listed = self._listing().held(position)
        if listed is not None and motion.supplier_at(position) == idurl:
            known |= set(copies_in(listed))
        known.add(version)
        stale = newest_first(known)[KEEP_COPIES:]
        if stale:
            yield motion.delete_backups(position, [f"{CATALOG_PATH_ID}/{v}" for v in stale])
            known -= set(stale)

    def _read_marker(self) -> tuple[str | None, str | None]:
        try:
            record = json.loads(self._marker.read_text("utf-8"))
            return record.get("sha256"), record.get("version")
        except (OSError, ValueError, AttributeError):
            return None, None

    def _write_marker(self, digest: str | None, version: str) -> None:
        try:
            atomic_write(self._marker, json.dumps({"sha256": digest, "version": version}).encode("utf-8"), 0o600)
        except OSError as exc:
            log.warning("could not record the catalog copy in %s: %s", self._marker, exc)


@inlineCallbacks
def fetch_catalog_copy(node: Node, timeout: float = 30.0) -> Generator[Any, Any, Catalog]:
    """The newest catalog copy any current supplier holds that opens with this node's
    private key. Needs service_backup_db's dependencies running (data motion, list
    files); CatalogCopyError naming what was tried when none can be had."""
    from bitdust.services.data_motion import running_motion
    from bitdust.services.list_files import running_list_files

    motion = running_motion(node, "fetching the catalog copy")
    listing = running_list_files(node, "fetching the catalog copy")
    key = node.key
    if key is None:
        raise CatalogCopyError("this node has no private key")
    yield listing.refresh()
    holders: dict[str, list[tuple[int, dict[int, str]]]] = {}
    size = listing.orator.size() if listing.orator is not None else 0
    for position in range(size):
        for version, chunks in copies_in(listing.held(position) or {}).items():
            holders.setdefault(version, []).append((position, chunks))
    errors: list[str] = []
    for version in newest_first(set(holders)):
        for position, chunks in holders[version]:
            try:
                catalog = yield _fetch_one(node, motion, key, position, version, chunks, timeout)
            except (MotionError, CatalogCopyError) as exc:
                errors.append(f"{version} at position {position}: {exc}")
                continue
            return catalog
    if not holders:
        raise CatalogCopyError("no supplier holds a catalog copy")
    raise CatalogCopyError("no catalog copy could be opened: " + "; ".join(errors[:10]))


@inlineCallbacks
def _fetch_one(node: Node, motion: DataMotion, key: Any, position: int, version: str, chunks: dict[int, str],
               timeout: float) -> Generator[Any, Any, Catalog]:
    if 0 not in chunks:
        raise CatalogCopyError("chunk 0 is missing")
    first = yield motion.retrieve_piece(position, chunks[0], timeout)
    total = copy_length(first)
    parts = [first]
    for n in range(1, chunk_count(total)):
        if n not in chunks:
            raise CatalogCopyError(f"chunk {n} is missing")
        part = yield motion.retrieve_piece(position, chunks[n], timeout)
        parts.append(part)
    reactor = node.reactor
    catalog = yield deferToThreadPool(reactor, reactor.getThreadPool(), open_catalog, b"".join(parts), key, version)
    return catalog

