"""backup: one machine per running backup job.

The job streams the item through a :class:`~bitdust.storage.pipeline.encoder.
BackupEncoder` (in the ECC worker's threads) while earlier blocks are being sent:
at most :data:`WINDOW` blocks are in the air at once (the one being encoded and one
held for the next packet included), so memory is about ``WINDOW * 2 * block size``
whatever the item's size. Share ``i`` and ``N + i`` of every block go to the supplier at
position ``i`` as ``<block>-<i>-Data`` and ``<block>-<i>-Parity``, the pieces of
:data:`BLOCKS_PER_PACKET` consecutive blocks in one Data packet.

The version is recorded ``in progress`` when the job starts and becomes complete only
when the encoder reached the end and every piece was acknowledged; the job is DONE once
that is saved (SAVING meanwhile: the save runs in a thread). A piece refused or
unanswered (after data motion's retries) fails the job; an abort stops it. Both end
the same way: no new block is read, the pieces already handed to data motion (at most
the window) are waited for, then the version is deleted from every supplier
(DeleteBackup) and dropped from the catalog, so no half version remains. A Data that
reaches a supplier after its DeleteBackup anyway is collected by backup_monitor, which
deletes pieces of versions the catalog does not know.

All I/O goes through a :class:`JobIO`, so the table is tested with a fake one.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any, Protocol

from twisted.internet.defer import CancelledError, Deferred, fail
from twisted.internet.interfaces import IReactorTime
from twisted.python.failure import Failure

from bitdust.automats.automat import Automat, AutomatRegistry, Transition
from bitdust.storage.ecc import EccMap
from bitdust.storage.pipeline.encoder import EncodedBlock
from bitdust.util.crashpoint import crashpoint

log = logging.getLogger(__name__)

WINDOW = 6
"""Blocks not fully acknowledged, the one being encoded included. With 3 the sender
waited for the slowest supplier's Ack of block i before block i+2 could even be read;
6 keeps every supplier busy through an fsync or two (memory: ~WINDOW * 2 * block size)."""

BLOCKS_PER_PACKET = 2
"""Consecutive blocks whose pieces travel to a supplier in one Data packet (its Data and
Parity piece of each: four 1 MB pieces with 4 MB blocks). A packet costs both ends about
as much CPU as a megabyte of its bytes whatever its size (signing and checking it, the
Ack, its trip through Python), so fewer, bigger packets cost less per byte. A block
waits for the next one before it is sent, unless it is the last."""

WAITING = "WAITING"
STARTING = "STARTING"
RUNNING = "RUNNING"
SAVING = "SAVING"
CLEANUP = "CLEANUP"
DONE = "DONE"
FAILED = "FAILED"
ABORTED = "ABORTED"
ENDED = (DONE, FAILED, ABORTED)


@dataclass
class Opened:
    """What :meth:`JobIO.open` found: the ECC map, block size and bytes to read."""

    ecc: EccMap
    block_size: int
    total_size: int


class JobIO(Protocol):
    def wait_suppliers(self) -> Deferred[None]:
        """Fires once every position has a connected supplier; fails (bounded) otherwise;
        cancelling it ends the wait."""

    def open(self, path_id: str, backup_id: str) -> Deferred[Opened]:
        """Record the version in the catalog (in progress) and open the encoder."""

    def next_block(self) -> Deferred[EncodedBlock | None]:
        """The next encoded block (None at the end), computed in a pool thread."""

    def bytes_read(self) -> int: ...

    def send(self, position: int, pieces: list[tuple[str, bytes | memoryview]]) -> Deferred[None]:
        """One supplier's pieces of one or more blocks (its Data and Parity of each), in
        one packet, acknowledged together."""

    def complete(self, backup_id: str, blocks: int, size: int, source_size: int) -> Deferred[None]:
        """Mark the version complete in the catalog; fires once that is saved."""

    def discard(self, backup_id: str) -> Deferred[None]:
        """Close the encoder, delete the version's pieces everywhere, drop it from the catalog."""


class BackupJob(Automat):
    name = "backup"
    transitions = {
        ("AT_STARTUP", "start"): [Transition(WAITING, ("wait_suppliers",))],
        (WAITING, "ready"): [Transition(STARTING, ("open",))],
        (WAITING, "failed"): [Transition(FAILED, ("remember_error", "finish"))],
        (WAITING, "abort"): [Transition(ABORTED, ("stop_waiting", "finish"))],
        (STARTING, "opened"): [Transition(CLEANUP, ("remember_opened", "cleanup"), guard="aborted"),
                               Transition(RUNNING, ("remember_opened", "pump"))],
        (STARTING, "failed"): [Transition(CLEANUP, ("remember_error", "cleanup"))],
        (STARTING, "abort"): [Transition(STARTING, ("remember_abort",))],
        (RUNNING, "block"): [Transition(RUNNING, ("send_block", "pump"))],
        (RUNNING, "eof"): [Transition(SAVING, ("note_eof", "complete"), guard="all_acked"),
                           Transition(RUNNING, ("note_eof",))],
        (RUNNING, "acked"): [Transition(SAVING, ("count_ack", "complete"), guard="last_ack"),
                             Transition(RUNNING, ("count_ack", "pump"))],
        (SAVING, "saved"): [Transition(DONE, ("finish",))],
        (RUNNING, "piece-failed"): [Transition(CLEANUP, ("count_failure", "remember_error", "settle"))],
        (RUNNING, "failed"): [Transition(CLEANUP, ("remember_error", "settle"))],
        (RUNNING, "abort"): [Transition(CLEANUP, ("remember_abort", "settle"))],
        (CLEANUP, "block"): [Transition(CLEANUP, ("settle",))],
        (CLEANUP, "eof"): [Transition(CLEANUP, ("settle",))],
        (CLEANUP, "acked"): [Transition(CLEANUP, ("count_ack", "settle"))],
        (CLEANUP, "piece-failed"): [Transition(CLEANUP, ("count_failure", "settle"))],
        (CLEANUP, "failed"): [Transition(CLEANUP, ("remember_error", "settle"))],
        (CLEANUP, "abort"): [Transition(CLEANUP, ("remember_abort",))],
        (CLEANUP, "cleaned"): [Transition(ABORTED, ("finish",), guard="aborted"),
                               Transition(FAILED, ("finish",))],
    }

    def __init__(self, clock: IReactorTime, registry: AutomatRegistry | None, io: JobIO, path_id: str,
                 backup_id: str, source_path: str) -> None:
        super().__init__(clock, registry, f"backup[{backup_id}]")
        self.io = io
        self.path_id = path_id
        self.backup_id = backup_id
        self.source_path = source_path
        self.opened: Opened | None = None
        self.error = ""
        self.aborting = False
        self.eof = False
        self.encoding = False
        self.blocks = 0
        self.outstanding = 0  # pieces handed to data motion, not answered yet
        self.unacked: dict[int, int] = {}  # block number -> pieces not acknowledged yet
        self.held: list[EncodedBlock] = []  # encoded, waiting for the next block to share its packets
        self.sent_bytes = 0
        self.cleaning = False
        self.finished: Deferred[str] = Deferred()
        # Where the time went, logged at the end: waiting for the encoder (reading,
        # compressing, sealing, zfec) or with a full window, for the suppliers' Acks.
        self.started_at = clock.seconds()
        self.encoder_wait = 0.0
        self.ack_wait = 0.0
        self._asked_at = 0.0
        self._full_since: float | None = None
        self._waiting: Deferred[None] | None = None

    # -- guards -----------------------------------------------------------------------------

    def is_all_acked(self, *_args: Any) -> bool:
        return self.outstanding == 0 and not self.unacked and not self.held

    def is_last_ack(self, *_args: Any) -> bool:
        return self.eof and self.outstanding == 1 and not self.encoding

    def is_settled(self, *_args: Any) -> bool:
        return self.outstanding == 0 and not self.encoding

    def is_aborted(self, *_args: Any) -> bool:
        return self.aborting

    # -- actions ----------------------------------------------------------------------------

    def do_wait_suppliers(self, *_args: Any) -> None:
        self._waiting = self.io.wait_suppliers()
        self._waiting.addCallbacks(lambda _r: self.event("ready"), self._wait_failed)

    def _wait_failed(self, failure: Failure) -> None:
        if not failure.check(CancelledError):  # cancelled: the abort already ended the job
            self._failed(failure)

    def do_stop_waiting(self, *_args: Any) -> None:
        waiting, self._waiting = self._waiting, None
        if waiting is not None and not waiting.called:
            waiting.cancel()

    def do_open(self, *_args: Any) -> None:
        self.io.open(self.path_id, self.backup_id).addCallbacks(lambda o: self.event("opened", o), self._failed)

    def do_remember_opened(self, opened: Opened) -> None:
        self.opened = opened

    def do_pump(self, *_args: Any) -> None:
        """Ask for the next block when the window has room."""
        if self.encoding or self.eof or self.aborting:
            return
        now = self.clock.seconds()
        if len(self.unacked) + len(self.held) >= WINDOW - 1:
            if self._full_since is None:
                self._full_since = now
            return
        if self._full_since is not None:
            self.ack_wait += now - self._full_since
            self._full_since = None
        self.encoding = True
        self._asked_at = now
        self.io.next_block().addCallbacks(self._block_ready, self._encode_failed)

    def _block_ready(self, block: EncodedBlock | None) -> None:
        self.encoding = False
        self.encoder_wait += self.clock.seconds() - self._asked_at
        self.event("eof" if block is None else "block", block)

    def do_send_block(self, block: EncodedBlock) -> None:
        """Hold the block until :data:`BLOCKS_PER_PACKET` are ready (or it is the last),
        then send each supplier its pieces of them all in one packet. Acks and failures
        still count piece by piece; a block counts as sent only when it goes out, so an
        abort has nothing held to wait for."""
        self.held.append(block)
        if len(self.held) >= BLOCKS_PER_PACKET or block.last:
            self._send_held()

    def _send_held(self) -> None:
        assert self.opened is not None
        ecc = self.opened.ecc
        blocks, self.held = self.held, []
        packets: dict[int, list[tuple[int, str, bytes | memoryview]]] = {}  # supplier -> (block, piece ID, bytes)
        for held in blocks:
            self.blocks = max(self.blocks, held.number + 1)
            self.unacked[held.number] = len(held.shares)
            self.outstanding += len(held.shares)
            self.sent_bytes += sum(len(share) for share in held.shares)
            for supplier, shares in ecc.pieces_by_supplier(self.backup_id, held.number,
                                                           enumerate(held.shares)).items():
                packets.setdefault(supplier, []).extend((held.number, piece_id, share)
                                                        for _index, piece_id, share in shares)
        for supplier, pieces in packets.items():
            self.io.send(supplier, [(piece_id, share) for _number, piece_id, share in pieces]).addCallbacks(
                self._pieces_acked, self._pieces_failed,
                callbackArgs=([number for number, _piece_id, _share in pieces],), errbackArgs=(len(pieces),))

    def _pieces_acked(self, _result: None, numbers: list[int]) -> None:
        for number in numbers:
            self.event("acked", number)

    def _pieces_failed(self, failure: Failure, pieces: int) -> None:
        for _ in range(pieces):
            self.event("piece-failed", failure.getErrorMessage())

    def do_note_eof(self, *_args: Any) -> None:
        """The last block was flagged so and went out at once; should an encoder ever end
        without that flag, what it held goes out now rather than be left out of the version."""
        self.eof = True
        if self.held:
            self._send_held()

    def do_count_ack(self, number: int) -> None:
        crashpoint("backup.piece_acked")
        self.outstanding -= 1
        left = self.unacked.get(number, 0) - 1
        if left > 0:
            self.unacked[number] = left
        else:
            self.unacked.pop(number, None)

    def do_count_failure(self, *_args: Any) -> None:  # the piece's block stays unacked: moot now
        self.outstanding -= 1

    def do_complete(self, *_args: Any) -> None:
        """The job ends (``saved``) once the complete version is on disk, so whoever waits
        for it may rely on the catalog file; an abort that comes meanwhile is too late."""
        crashpoint("backup.before_complete")
        try:
            saving = self.io.complete(self.backup_id, self.blocks, self.sent_bytes, self.io.bytes_read())
        except Exception as exc:
            saving = fail(exc)
        saving.addErrback(self._not_recorded).addCallback(lambda _: self.event("saved"))

    def _not_recorded(self, failure: Failure) -> None:
        log.error("%s: could not record the complete version: %s", self.backup_id, failure.getErrorMessage())
        self.error = f"the version could not be recorded: {failure.getErrorMessage()}"

    def do_remember_error(self, reason: str) -> None:
        if not self.error:
            self.error = reason
            log.info("%s failed: %s", self.backup_id, reason)

    def do_remember_abort(self, *_args: Any) -> None:
        self.aborting = True
        if not self.error:
            self.error = "aborted"

    def do_settle(self, *_args: Any) -> None:
        """In CLEANUP: once nothing is in the air any more, delete what was sent."""
        self.held.clear()  # never sent: nothing to wait for or delete
        if self.is_settled():
            self.do_cleanup()

    def do_cleanup(self, *_args: Any) -> None:
        if self.cleaning:
            return
        self.cleaning = True

        def cleaned(_r: Any) -> None:
            self.event("cleaned")

        def not_cleaned(failure: Failure) -> None:
            log.warning("%s: partial pieces not deleted everywhere: %s (backup_monitor will retry)",
                        self.backup_id, failure.getErrorMessage())
            self.event("cleaned")

        self.io.discard(self.backup_id).addCallbacks(cleaned, not_cleaned)

    def do_finish(self, *_args: Any) -> None:
        log.info("%s %s: %d blocks, %d bytes sent in %.1f s; waited %.1f s for the encoder, %.1f s for Acks "
                 "with a full window", self.backup_id, self.state, self.blocks, self.sent_bytes,
                 self.clock.seconds() - self.started_at, self.encoder_wait, self.ack_wait)
        if not self.finished.called:
            self.finished.callback(self.state)
        self.destroy()

    # -- plumbing ---------------------------------------------------------------------------

    def _failed(self, failure: Failure) -> None:
        self.event("failed", failure.getErrorMessage())

    def _encode_failed(self, failure: Failure) -> None:
        self.encoding = False
        log.info("%s: reading or encoding failed: %s", self.backup_id, failure.getErrorMessage())
        self.event("failed", f"reading {self.source_path} failed: {failure.getErrorMessage()}")

    def abort(self) -> None:
        self.event("abort")

    # -- backups_running ----------------------------------------------------------------------

    def progress(self) -> dict[str, Any]:
        total = self.opened.total_size if self.opened is not None else 0
        done = self.io.bytes_read() if self.opened is not None else 0
        percent = min(99.9, 100.0 * done / total) if total else 0.0
        if self.state == DONE:
            percent = 100.0
        return {
            "aborting": self.aborting,
            "backupid": self.backup_id,
            "blocknumber": self.blocks,
            "blocksize": self.opened.block_size if self.opened is not None else 0,
            "bytesprocessed": done,
            "closed": self.state in ENDED,
            "eccmap": self.opened.ecc.name if self.opened is not None else "",
            "eofstate": self.eof,
            "pipe": 0,
            "progress": round(percent, 2),
            "reading": self.encoding,
            "sourcepath": self.source_path,
            "terminating": self.state == CLEANUP,
            "totalsize": total,
            "workblocks": len(self.unacked) + len(self.held) + (1 if self.encoding else 0),
            "state": self.state,
        }
