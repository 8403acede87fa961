"""The re-encoder: moves every stored version to the current ``ecc/NxN`` map, in the background.

A pass (started by :meth:`Reencoder.poll` every :data:`POLL_SECONDS` when there is
anything to do, at once by :meth:`Reencoder.kick`):

1. re-encodings to a map no longer wanted are abandoned (their generation is retired);
2. retired generations are deleted from the suppliers (not while a restore reads the
   version: it may have started before the switch);
3. each version not on the current map, one at a time, once every position of the new
   map has a supplier online: blocks fetched from the current pieces and verified
   (:func:`bitdust.storage.rebuild.block_job.fetch_verified`, the restore's share
   fetcher and verifier), coded again with the new map and sent, :data:`PARALLEL_BLOCKS`
   blocks at a time; the blocks acknowledged so far are recorded in the catalog; when
   all are, the version switches (:func:`.plan.may_switch`) and its old pieces go;
4. retained suppliers no version needs any more are released.

A pass that could not finish (a supplier missing, a piece that cannot be had, a send
refused) waits :data:`RETRY_SECONDS` before the next. Nothing here decides on its own
that data may be lost: a version is only switched with all its new pieces acknowledged,
and old pieces are only deleted after the switch was saved.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Generator
from functools import partial
from typing import Any, Protocol

from twisted.internet.defer import Deferred, DeferredList, inlineCallbacks, succeed
from twisted.internet.interfaces import IReactorTime
from twisted.internet.task import LoopingCall
from twisted.python.failure import Failure

from bitdust.storage.catalog.model import CatalogError, Reencoding
from bitdust.storage.catalog.tree import Catalog
from bitdust.storage.customer.suppliers import SupplierList, span_for
from bitdust.storage.ecc import EccMap
from bitdust.storage.ids import storage_id
from bitdust.storage.rebuild.block_job import BlockOutcome, fetch_verified, send_shares
from bitdust.storage.rebuild.block_job import PieceMover as RebuildMover
from bitdust.storage.reencode.plan import (
    Step,
    advance,
    delete_positions,
    may_switch,
    retired_work,
    stale_reencodings,
    versions_to_reencode,
    widest_needed,
)
from bitdust.storage.restore.share_fetch import SupplierHealth

log = logging.getLogger(__name__)

POLL_SECONDS = 2.0
RETRY_SECONDS = 30.0
PARALLEL_BLOCKS = 2
PIECE_TIMEOUT = 30.0
SAVE_SECONDS = 5.0
"""At most one catalog save per this many seconds for progress alone (a switch is saved at once)."""
KEEP_ERRORS = 20


class ReencodeError(Exception):
    """One block could not be re-encoded; the message says which pieces and why."""


class PieceMover(RebuildMover, Protocol):
    """What re-encoding needs from DataMotion: fetching, sending and deleting."""

    def delete_backups(self, position: int, backup_ids: list[str]) -> Deferred[None]: ...


class ReencodeEnv(Protocol):
    """What the re-encoder needs from the node (:mod:`.env` gives the real one)."""

    def catalog(self) -> Catalog | None: ...

    def suppliers(self) -> SupplierList | None: ...

    def mover(self) -> PieceMover | None: ...

    def online(self, position: int) -> bool: ...

    def open_key(self, wrapped: bytes) -> bytes:
        """The data key of a version (called in a worker thread: RSA)."""

    def run(self, fn: Callable[[], Any]) -> Deferred[Any]: ...

    def restoring(self) -> set[str]:
        """Backup IDs being restored now."""

    def release(self, needed: int) -> list[str]:
        """Let go of retained suppliers past a map of ``needed``; the idurls released."""

    def rebuild(self) -> None:
        """Ask the rebuilder to count again (a version now lives under new names)."""


class Reencoder:
    def __init__(self, clock: IReactorTime, env: ReencodeEnv, parallel: int = PARALLEL_BLOCKS,
                 timeout: float = PIECE_TIMEOUT, poll_seconds: float = POLL_SECONDS,
                 retry_seconds: float = RETRY_SECONDS) -> None:
        self.clock = clock
        self.env = env
        self.parallel = max(1, parallel)
        self.timeout = timeout
        self.retry_seconds = retry_seconds
        self.current = ""
        """The backup ID being re-encoded now ("" between versions)."""
        self.switched = 0
        self.blocks_done = 0
        self.released: list[str] = []
        self.errors: list[str] = []
        self.waiting = ""
        """Why the last pass stopped early ("" if it did not)."""
        self._pass: Deferred[Any] | None = None
        self._retry_at = 0.0
        self._stopped = False
        self._last_save = 0.0
        self._loop = LoopingCall(self.poll)
        self._loop.clock = clock
        self._poll_seconds = poll_seconds

    # -- driving ------------------------------------------------------------------------------

    def start(self) -> None:
        self._loop.start(self._poll_seconds, now=True)

    def stop(self) -> Deferred[Any]:
        """Stop after the blocks in flight; fires when the pass (if any) ended. Progress
        is in the catalog: the next start goes on from there."""
        self._stopped = True
        if self._loop.running:
            self._loop.stop()
        running = self._pass
        if running is None:
            return succeed(None)
        ended: Deferred[Any] = Deferred()

        def passed(result: object) -> object:
            ended.callback(None)
            return result

        running.addBoth(passed)
        return ended

    @property
    def busy(self) -> bool:
        return self._pass is not None

    def kick(self) -> None:
        """Start a pass now (the suppliers-number changed, a supplier came back...)."""
        self._retry_at = 0.0
        self.poll()

    def poll(self) -> None:
        if self._stopped or self._pass is not None or self.clock.seconds() < self._retry_at or not self.has_work():
            return
        self._pass = self._run_pass()
        self._pass.addBoth(self._pass_ended)

    def has_work(self) -> bool:
        """Anything to re-encode, abandon, delete or release (cheap: the catalog in memory)."""
        catalog, suppliers = self.env.catalog(), self.env.suppliers()
        if catalog is None or suppliers is None:
            return False
        target = suppliers.ecc_map
        busy = self.env.restoring()
        return bool(versions_to_reencode(catalog, target) or stale_reencodings(catalog, target)
                    or retired_work(catalog, busy)
                    or suppliers.span > span_for(max(suppliers.size, widest_needed(catalog, busy))))

    def _pass_ended(self, result: bool | Failure) -> None:
        self._pass = None
        self.current = ""
        if isinstance(result, Failure):
            self._error(f"re-encoding pass failed: {result.getErrorMessage()}")
            result = False
        if result:
            self.waiting = ""
        elif not self.waiting:  # waiting for suppliers: poll again soon, hiring is under way
            self._retry_at = self.clock.seconds() + self.retry_seconds

    def _error(self, text: str) -> None:
        log.warning("reencoder: %s", text)
        self.errors.append(text)
        del self.errors[:-KEEP_ERRORS]

    # -- a pass ---------------------------------------------------------------------------------

    @inlineCallbacks
    def _run_pass(self) -> Generator[Any, Any, bool]:
        """True when everything that could be done was done."""
        catalog, suppliers = self.env.catalog(), self.env.suppliers()
        if catalog is None or suppliers is None:
            return False
        target = suppliers.ecc_map
        stale = stale_reencodings(catalog, target)
        for backup_id in stale:
            catalog.abandon_reencode(backup_id)
            log.info("reencoder: %s: re-encoding abandoned, %s is the map now", backup_id, target)
        if stale:
            yield catalog.save()
        complete = yield self._delete_retired(catalog)
        for step in versions_to_reencode(catalog, target):
            if self._stopped or self.env.catalog() is not catalog or suppliers.ecc_map != target:
                return False
            missing = [p for p in range(suppliers.size) if not suppliers.idurl(p) or not self.env.online(p)]
            if missing:
                waiting = f"waiting for suppliers online at positions {missing} of {target}"
                (log.debug if waiting == self.waiting else log.info)("reencoder: %s", waiting)
                self.waiting = waiting
                return False
            self.waiting = ""
            done = yield self._reencode(catalog, step)
            if not done:
                return False
            complete = (yield self._delete_retired(catalog)) and complete
        if self._stopped or self.env.catalog() is not catalog:
            return False
        released = self.env.release(widest_needed(catalog, self.env.restoring()))
        if released:
            self.released.extend(released)
            log.info("reencoder: no version needs %s any more: released", ", ".join(released))
        return bool(complete)

    @inlineCallbacks
    def _delete_retired(self, catalog: Catalog) -> Generator[Any, Any, bool]:
        """Delete the pieces of retired generations; True if none is left to delete."""
        suppliers, mover = self.env.suppliers(), self.env.mover()
        if suppliers is None or mover is None:
            return False
        busy = self.env.restoring()
        left = False
        for backup_id, old in retired_work(catalog, busy):
            where = storage_id(backup_id, old.generation)
            positions = [p for p in delete_positions(old.ecc, suppliers.span) if mover.supplier_at(p)]
            results = yield DeferredList([mover.delete_backups(p, [where]) for p in positions], consumeErrors=True)
            failed = [f"position {p}: {r.getErrorMessage()}" for p, (ok, r) in zip(positions, results, strict=True)
                      if not ok]
            if failed:
                left = True
                self._error(f"{backup_id}: old pieces ({old.ecc}) not deleted yet: {'; '.join(failed)}")
                continue
            try:
                catalog.forget_retired(backup_id, old.generation)
            except CatalogError:
                continue  # deleted meanwhile
            yield catalog.save()
            log.info("reencoder: %s: old pieces (%s, %s) deleted from %d suppliers", backup_id, old.ecc, where,
                     len(positions))
        postponed = any(backup_id in busy for backup_id, _old in retired_work(catalog, set()))
        return not left and not postponed

    @inlineCallbacks
    def _reencode(self, catalog: Catalog, step: Step) -> Generator[Any, Any, bool]:
        """Re-encode one version and switch it; False if it could not be finished now."""
        try:
            item, version = catalog.version(step.backup_id)
            if version.reencode is None:
                catalog.begin_reencode(step.backup_id, step.target)
                yield catalog.save()
        except CatalogError as exc:  # deleted meanwhile, or no longer needs it
            log.info("reencoder: %s skipped: %s", step.backup_id, exc)
            return True
        pending: Reencoding | None = version.reencode
        mover = self.env.mover()
        if pending is None or mover is None:
            return False
        self.current = step.backup_id
        old_ecc, new_ecc = EccMap.from_name(version.ecc), EccMap.from_name(pending.ecc)
        old_where = version.storage_id(item.path_id)
        new_where = version.storage_id(item.path_id, pending.generation)
        log.info("reencoder: %s: re-encoding %d blocks from %s to %s (into %s), from block %d", step.backup_id,
                 version.blocks, version.ecc, pending.ecc, new_where, pending.done)
        try:
            key = yield self.env.run(partial(self.env.open_key, version.wrapped_key))
        except ValueError as exc:
            self._error(f"{step.backup_id}: cannot open the data key: {exc}")
            return False
        health = SupplierHealth(self.env.online)
        done = pending.done
        for _batch in range(version.blocks):  # each batch finishes at least one block or returns
            if done >= version.blocks:
                break
            if self._stopped or catalog.get(item.path_id) is not item or version.reencode is not pending:
                return False
            numbers = list(range(done, min(version.blocks, done + self.parallel)))
            results = yield DeferredList([self._block(mover, health, key, step.backup_id, number, old_ecc, new_ecc,
                                                      old_where, new_where) for number in numbers],
                                         consumeErrors=True)
            acked = {n for n, (ok, _r) in zip(numbers, results, strict=True) if ok}
            new_done = advance(done, acked)
            self.blocks_done += new_done - done
            if version.reencode is pending and item.versions.get(version.version) is version:
                catalog.reencode_progress(step.backup_id, new_done)
                if new_done >= version.blocks or self.clock.seconds() - self._last_save >= SAVE_SECONDS:
                    self._last_save = self.clock.seconds()
                    yield catalog.save()
            done = new_done
            failed = [r for ok, r in results if not ok]
            if failed:
                self._error(f"{step.backup_id}: {failed[0].getErrorMessage()}")
                return False
        if item.versions.get(version.version) is not version or not may_switch(version):
            return False
        old = catalog.switch_reencoded(step.backup_id)
        yield catalog.save()
        self.switched += 1
        log.info("reencoder: %s switched to %s (%d blocks, every piece acknowledged); old %s pieces retired",
                 step.backup_id, version.ecc, version.blocks, old.ecc)
        self.env.rebuild()
        return True

    @inlineCallbacks
    def _block(self, mover: PieceMover, health: SupplierHealth, key: bytes, backup_id: str, number: int,
               old_ecc: EccMap, new_ecc: EccMap, old_where: str, new_where: str) -> Generator[Any, Any, None]:
        """Block ``number``: fetched and verified from the current pieces, coded with the
        new map, every new piece sent; fails with ReencodeError unless all were acknowledged."""
        outcome = BlockOutcome(backup_id, number)
        block = yield fetch_verified(mover, self.env.run, old_ecc, key, backup_id, number, health, self.timeout,
                                     outcome, storage=old_where)
        if block is None:
            raise ReencodeError("; ".join(outcome.errors))
        sealed = block.sealed[: block.opened.header.sealed_len]  # the padding of the old map is not data
        shares: list[bytes] = yield self.env.run(partial(new_ecc.encode, sealed))
        sent = yield send_shares(mover, new_ecc, new_where, number, enumerate(shares))
        failed = [f"{piece_id}: {failure.getErrorMessage()}" for _i, piece_id, failure in sent if failure is not None]
        if failed:
            raise ReencodeError(f"block {number}: new pieces not acknowledged: {'; '.join(failed)}")
