"""The supplier's store: contracts, quotas and the pieces held for each customer.

Held pieces are indexed in memory (piece ID -> size, per customer), filled from a scan
of the disk at start: quota checks, ``ListFiles`` and the space figures never touch the
disk, and a piece is served only if the index lists it, so a half-written temp file can
never be. Everything that changes a customer's data or contract runs through that
customer's own queue (a ``DeferredLock``), so a quota check cannot interleave with
another write's check, a delete or a rejection of the same customer; customers do not
wait for each other. A piece write holds the queue only while its bytes are *admitted*
(quota checked and reserved): the write itself (temp file, fsync, rename, directory
fsync) runs outside it, up to :data:`MAX_WRITES` at a time per customer, so one fsync
does not hold every other piece of a backup behind it. Deletes and rejections wait, in
the queue, for the writes in flight to land first, so they never race a rename. Queues
are bounded (:data:`MAX_QUEUED`): beyond that a request is refused as ``busy`` instead
of piling up in memory.

Disk work runs in the store's own few threads (:data:`DISK_THREADS`, with the light
hand-off of :class:`~bitdust.util.cpu_pool.CpuPool`): a backup writes a piece per
megabyte on every supplier, and a job through Twisted's general pool cost ~35 µs of
reactor CPU here against ~10-16 µs (20,000 empty jobs, 4 at a time, on the daemon's
loop). Threads of its own also keep a slow disk from holding up the node's other thread
work. Refusals raise :class:`Refused` with a Fail code of :mod:`bitdust.storage.market`.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, TypeVar

from twisted.internet.defer import Deferred, DeferredList, DeferredLock, fail, inlineCallbacks
from twisted.python.failure import Failure

from bitdust.storage import ids
from bitdust.storage.market import ServiceOffer, ServiceRequest, customer_folder_name
from bitdust.storage.supplier import disk
from bitdust.storage.supplier.contracts import Contract, ContractBook
from bitdust.util.cpu_pool import CpuPool
from bitdust.util.units import format_size
from bitdust.util.writer import CoalescingWriter

log = logging.getLogger(__name__)

T = TypeVar("T")

MAX_QUEUED = 64
"""Requests of one customer waiting for its queue; more are refused as ``busy``."""
MAX_READS = 8
"""Retrieve answers of one customer being read at once (each holds a piece in memory)."""
MAX_WRITES = 4
"""Pieces of one customer being written (and fsynced) at once."""
DISK_THREADS = 4
"""Threads writing and reading piece files (each write ends in an fsync)."""
CONTACT_SAVE_DELAY = 60.0
"""Seconds a contact-time or usage change may wait before contracts.json is rewritten."""


@dataclass(frozen=True)
class _Admitted:
    """A write let through the queue; ``written`` fires when it is on disk. A plain
    Deferred returned from the queued call would make the queue wait for it."""

    written: Deferred[int]


class HeldPieces:
    """One customer's pieces (ID -> size) and their total, kept up to date as they
    change: every piece written checks the quota, and summing the sizes of all pieces
    held each time made a backup's cost grow with everything stored before it."""

    __slots__ = ("_sizes", "total")

    def __init__(self, sizes: dict[str, int] | None = None) -> None:
        self._sizes = dict(sizes or {})
        self.total = sum(self._sizes.values())

    def __contains__(self, piece_id: object) -> bool:
        return piece_id in self._sizes

    def size(self, piece_id: str) -> int:
        return self._sizes.get(piece_id, 0)

    def put(self, piece_id: str, size: int) -> None:
        self.total += size - self._sizes.get(piece_id, 0)
        self._sizes[piece_id] = size

    def pop(self, piece_id: str) -> int:
        """Forget a piece; its size (0 if it was not held)."""
        size = self._sizes.pop(piece_id, 0)
        self.total -= size
        return size

    def as_dict(self) -> dict[str, int]:
        return dict(self._sizes)


class Refused(Exception):
    """A request the supplier says no to; ``code`` is a market Fail code."""

    def __init__(self, code: str, reason: str) -> None:
        super().__init__(reason)
        self.code = code
        self.reason = reason


class SupplierStore:
    def __init__(self, reactor: Any, clock: Any, customers_root: Path, contracts_file: Path,
                 donated: Callable[[], int]) -> None:
        self._disk = CpuPool(reactor, DISK_THREADS, name="supplier-disk")
        self._clock = clock
        self.root = customers_root.resolve()
        self._donated = donated
        self.book = ContractBook()
        self._pieces: dict[str, HeldPieces] = {}
        self._queues: dict[str, DeferredLock] = {}
        self._reads: dict[str, int] = {}  # customer -> reads in flight
        self._reading: set[Deferred[bytes]] = set()  # every read in flight, for close() to wait on
        self._writes: dict[str, dict[Deferred[int], int]] = {}  # customer -> write in flight -> bytes reserved
        self._writer = CoalescingWriter(reactor, contracts_file, self.book_bytes)
        self._contracts_file = contracts_file
        self._save_timer: Any = None
        self._closed = False
        self.space_listeners: list[Callable[[], None]] = []
        """Called after the granted space changed (a customer came, changed or left)."""

    # -- start and stop --------------------------------------------------------------

    @inlineCallbacks
    def load(self) -> Any:
        """Read the contracts, scan the customer folders (dropping temp files), and take
        the used bytes from what is really on disk."""
        book = yield self._in_thread(ContractBook.load, self._contracts_file)
        names = [c.folder_name for c in book.contracts.values()]
        scans = yield self._in_thread(disk.scan_customers, self.root, names)
        self.book = book
        for idurl, contract in book.contracts.items():
            pieces = HeldPieces(scans.get(contract.folder_name, {}))
            self._pieces[idurl] = pieces
            used = pieces.total
            if used != contract.used:
                log.info("customer %s: %d bytes on disk, %d in contracts.json; the disk wins",
                         idurl, used, contract.used)
            contract.used = used
        yield self._writer.save()

    @inlineCallbacks
    def close(self) -> Any:
        """Refuse new work, let queued work finish, write the latest contact times and
        usage: a store of the next start (same process or not) then reads all of it,
        and no late timer of this one overwrites that store's file.

        Writes and reads in flight are waited for here, as Deferreds, so the disk threads
        are idle by the time they are stopped (stopping joins them on the reactor
        thread, which must not wait there for a disk)."""
        self._closed = True
        for lock in list(self._queues.values()):
            yield lock.acquire()
            lock.release()
        for idurl in list(self._writes):
            yield self._writes_landed(idurl)
        yield DeferredList(list(self._reading), consumeErrors=True)
        if self._save_timer is not None and self._save_timer.active():
            self._save_timer.cancel()
        self._save_timer = None
        yield self._writer.save()
        self._disk.stop()

    def book_bytes(self) -> bytes:
        return self.book.encode()

    # -- queries -------------------------------------------------------------------------

    def now(self) -> float:
        return float(self._clock.seconds())

    def contract(self, idurl: str) -> Contract | None:
        return self.book.contracts.get(idurl)

    def is_customer(self, idurl: str) -> bool:
        return idurl in self.book.contracts

    def customers(self) -> list[Contract]:
        return sorted(self.book.contracts.values(), key=lambda c: (c.first_contact, c.idurl))

    def donated(self) -> int:
        return int(self._donated())

    def consumed(self) -> int:
        """Bytes granted to customers (the sum of their quotas)."""
        return sum(c.quota for c in self.book.contracts.values())

    def used(self, idurl: str | None = None) -> int:
        """Bytes of pieces held (written and acknowledged), for one customer or for all."""
        if idurl is not None:
            held = self._pieces.get(idurl)
            return held.total if held is not None else 0
        return sum(held.total for held in self._pieces.values())

    def free(self) -> int:
        """Bytes still to grant: what the DHT offer announces."""
        return max(0, self.donated() - self.consumed())

    def list_pieces(self, idurl: str) -> dict[str, int]:
        held = self._pieces.get(idurl)
        return held.as_dict() if held is not None else {}

    def folder(self, idurl: str) -> Path:
        return self.root / customer_folder_name(idurl)

    # -- contracts -------------------------------------------------------------------------

    def touch(self, idurl: str) -> None:
        """The customer was heard from: remember when (saved within CONTACT_SAVE_DELAY)."""
        contract = self.contract(idurl)
        if contract is not None:
            contract.last_contact = self.now()
            self._save_soon()

    def request_service(self, idurl: str, request: ServiceRequest) -> Deferred[ServiceOffer]:
        return self._queued(idurl, self._request_service, idurl, request)

    @inlineCallbacks
    def _request_service(self, idurl: str, request: ServiceRequest) -> Any:
        existing = self.contract(idurl)
        others = self.consumed() - (existing.quota if existing is not None else 0)
        room = max(0, self.donated() - others)
        if request.needed_bytes > room:
            raise Refused("no-space", f"asked for {format_size(request.needed_bytes)}, "
                                      f"only {format_size(room)} can be granted")
        now = self.now()
        if existing is not None:
            before = replace(existing)
            existing.quota, existing.ecc_map = request.needed_bytes, request.ecc_map
            existing.position, existing.last_contact = request.position, now
        else:
            before = None
            # Data left behind without a contract (a lost contracts file) is counted again.
            scanned = yield self._in_thread(disk.scan_folder, self.folder(idurl))
            pieces = self._pieces[idurl] = HeldPieces(scanned)
            self.book.contracts[idurl] = Contract(idurl, request.needed_bytes, request.ecc_map, request.position,
                                                  now, now, pieces.total)
        try:
            yield self._writer.save()
        except Exception:
            if before is None:
                self.book.contracts.pop(idurl, None)
                self._pieces.pop(idurl, None)
            else:
                self.book.contracts[idurl] = before
            raise Refused("busy", "the contract could not be saved, try again later") from None
        self._space_changed()
        return ServiceOffer(request.needed_bytes)

    def drop_customer(self, idurl: str, reason: str) -> Deferred[int]:
        """Delete the customer's data and contract; fires with the bytes freed. Not
        bounded by MAX_QUEUED: ending a contract must never be refused as busy."""
        if self._closed:
            return fail(Refused("busy", "the supplier is stopping"))
        lock = self._queues.setdefault(idurl, DeferredLock())
        running: Deferred[int] = lock.run(self._drop_customer, idurl, reason)
        return running.addBoth(self._release, idurl)

    @inlineCallbacks
    def _drop_customer(self, idurl: str, reason: str) -> Any:
        if self.contract(idurl) is None:
            return 0
        yield self._writes_landed(idurl)
        freed = self.used(idurl)
        yield self._in_thread(disk.delete_folder, self.folder(idurl))
        self.book.contracts.pop(idurl, None)
        self._pieces.pop(idurl, None)
        self.book.add_former(idurl, reason, self.now())
        yield self._writer.save()
        log.info("customer %s dropped (%s), %d bytes freed", idurl, reason, freed)
        self._space_changed()
        return freed

    # -- pieces ----------------------------------------------------------------------------

    def store_piece(self, idurl: str, piece_id: str, data: bytes | memoryview) -> Deferred[int]:
        """Fires with the piece's size once it is durably on disk; Refused over quota
        (nothing written) or without a contract."""
        admitted: Deferred[_Admitted] = self._queued(idurl, self._admit_piece, idurl, piece_id, data)
        return admitted.addCallback(lambda a: a.written)

    def _admit_piece(self, idurl: str, piece_id: str, data: bytes | memoryview) -> _Admitted | Deferred[_Admitted]:
        """In the customer's queue: wait for a write slot, check the quota counting the
        writes in flight, reserve, start the write. Returns at once (wrapped, so the
        queue does not wait for the write). A plain function, not ``inlineCallbacks``:
        it runs for every piece, and waits only when every write slot is taken."""
        contract = self._contracted(idurl)
        writes = self._writes.setdefault(idurl, {})
        if len(writes) >= MAX_WRITES:  # then look again: the contract may be gone meanwhile
            slot = DeferredList(list(writes), fireOnOneCallback=True, fireOnOneErrback=True, consumeErrors=True)
            return slot.addCallback(lambda _: self._admit_piece(idurl, piece_id, data))
        pieces = self._held(idurl)
        after = pieces.total + sum(writes.values()) - pieces.size(piece_id) + len(data)
        if after > contract.quota:
            raise Refused("over-quota", f"{format_size(after)} would exceed the quota of "
                                        f"{format_size(contract.quota)}")
        writing = self._in_thread(disk.write_piece, self.folder(idurl), piece_id, data, "supplier.piece")
        writes[writing] = len(data)
        written: Deferred[int] = Deferred()

        def landed(result: int | Failure) -> None:
            writes.pop(writing, None)
            if not writes and self._writes.get(idurl) is writes:
                del self._writes[idurl]
            if isinstance(result, Failure):
                written.errback(result)
                return
            if self.contract(idurl) is contract:
                pieces.put(piece_id, result)
                contract.used = self.used(idurl)
                self._save_soon()
            written.callback(result)

        writing.addBoth(landed)
        return _Admitted(written)

    def _writes_landed(self, idurl: str) -> Deferred[Any]:
        """Fires once every write of ``idurl`` in flight now has landed (or failed)."""
        return DeferredList(list(self._writes.get(idurl, {})), consumeErrors=True)

    @inlineCallbacks
    def read_piece(self, idurl: str, piece_id: str) -> Any:
        """The piece's bytes; Refused not-found when the index does not list it."""
        if self._closed:
            raise Refused("busy", "the supplier is stopping")
        self._contracted(idurl)
        if piece_id not in self._pieces.get(idurl, ()):
            raise Refused("not-found", f"no piece {piece_id} here")
        if self._reads.get(idurl, 0) >= MAX_READS:
            raise Refused("busy", f"{MAX_READS} pieces are being read for you already")
        self._reads[idurl] = self._reads.get(idurl, 0) + 1
        reading = self._in_thread(disk.read_piece, self.folder(idurl), piece_id)
        self._reading.add(reading)
        try:
            data = yield reading
        except FileNotFoundError:
            raise Refused("not-found", f"no piece {piece_id} here") from None
        finally:
            self._reading.discard(reading)
            self._reads[idurl] -= 1
            if not self._reads[idurl]:
                del self._reads[idurl]
        return data

    def delete_pieces(self, idurl: str, piece_ids: list[str]) -> Deferred[int]:
        return self._queued(idurl, self._delete_pieces, idurl, piece_ids)

    @inlineCallbacks
    def _delete_pieces(self, idurl: str, piece_ids: list[str]) -> Any:
        yield self._writes_landed(idurl)
        contract = self._contracted(idurl)
        pieces = self._held(idurl)
        yield self._in_thread(disk.delete_pieces, self.folder(idurl), piece_ids)
        freed = sum(pieces.pop(p) for p in set(piece_ids))
        contract.used = self.used(idurl)
        self._save_soon()
        return freed

    def delete_backups(self, idurl: str, backup_ids: list[str]) -> Deferred[int]:
        return self._queued(idurl, self._delete_backups, idurl, backup_ids)

    @inlineCallbacks
    def _delete_backups(self, idurl: str, backup_ids: list[str]) -> Any:
        yield self._writes_landed(idurl)
        contract = self._contracted(idurl)
        pieces = self._held(idurl)
        yield self._in_thread(disk.delete_backups, self.folder(idurl), backup_ids)
        wanted = set(backup_ids)
        gone = [p for p in pieces.as_dict() if ids.parse_piece_id(p).backup_id in wanted]
        freed = sum(pieces.pop(p) for p in gone)
        contract.used = self.used(idurl)
        self._save_soon()
        return freed

    # -- internals -------------------------------------------------------------------------

    def _contracted(self, idurl: str) -> Contract:
        contract = self.contract(idurl)
        if contract is None:
            raise Refused("rejected", "you are not a customer of this supplier")
        return contract

    def _held(self, idurl: str) -> HeldPieces:
        held = self._pieces.get(idurl)
        if held is None:
            held = self._pieces[idurl] = HeldPieces()
        return held

    def _queued(self, idurl: str, fn: Callable[..., T | Deferred[T]], *args: Any) -> Deferred[T]:
        if self._closed:
            return fail(Refused("busy", "the supplier is stopping"))
        lock = self._queues.setdefault(idurl, DeferredLock())
        if len(lock.waiting) >= MAX_QUEUED:
            return fail(Refused("busy", f"{MAX_QUEUED} of your requests are queued already"))
        running: Deferred[T] = lock.run(fn, *args)  # type: ignore[call-overload]  # maybeDeferred inside: T or Deferred[T]
        return running.addBoth(self._release, idurl)

    def _release(self, result: T, idurl: str) -> T:
        """Forget an idle queue, so their number follows the customers, not history."""
        lock = self._queues.get(idurl)
        if lock is not None and not lock.locked and not lock.waiting:
            del self._queues[idurl]
        return result

    def _in_thread(self, fn: Callable[..., T], *args: Any) -> Deferred[T]:
        return self._disk.run(fn, *args)

    def _save_soon(self) -> None:
        if self._closed:
            return  # close() writes the final state
        if self._save_timer is None or not self._save_timer.active():
            self._save_timer = self._clock.callLater(CONTACT_SAVE_DELAY, self._save_now)

    def _save_now(self) -> None:
        self._save_timer = None
        self._writer.save().addErrback(lambda f: log.error("contracts not saved: %s", f.getErrorMessage()))

    def _space_changed(self) -> None:
        for listener in list(self.space_listeners):
            try:
                listener()
            except Exception:
                log.exception("space listener failed")
