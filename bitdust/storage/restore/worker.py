"""restore_worker: one restore job, from the suppliers' pieces to files in place.

The window: shares of up to ``depth`` blocks are fetched at once (N shares each, so
memory is about ``depth`` blocks), and the oldest block is decoded, verified and
unpacked as soon as it is complete, in a worker thread, one block at a time (the
archive is one compressed stream, so blocks must be unpacked in order). A block that
fails verification costs one more share and another try (:mod:`.verify` names the bad
pieces once it opens); a block for which too few pieces can be had fails the job with
the names of the missing pieces and the reasons.

Nothing replaces a user's file before the last block was verified: the extractor writes
temporary names and renames them in :meth:`do_finalize`. A failed or aborted job rolls
back (temporaries and folders it made are removed) before it reports. An abort while the
files are being moved into place is too late and is ignored.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Any

from twisted.internet.defer import Deferred
from twisted.internet.interfaces import IReactorTime
from twisted.python.failure import Failure

from bitdust.automats.automat import Automat, AutomatRegistry, Transition
from bitdust.storage.pipeline.decoder import RestoreDecoder
from bitdust.storage.restore.share_fetch import PieceSource, ShareFetcher, SupplierHealth
from bitdust.storage.restore.target import RestoreTarget
from bitdust.storage.restore.verify import NeedMoreShares, VerifiedBlock, verify_block

log = logging.getLogger(__name__)

ThreadRunner = Callable[[Callable[[], Any]], Deferred[Any]]

DEPTH = 6
"""Blocks whose shares are fetched at once: enough that every supplier always has
Retrieves queued while the oldest block is decoded (3 left them idle between blocks)."""
PIECE_TIMEOUT = 30.0
"""Seconds one piece may take; a supplier that misses it is asked last for later blocks."""

DONE, FAILED, ABORTED = "DONE", "FAILED", "ABORTED"
ENDED = (DONE, FAILED, ABORTED)


class RestoreWorker(Automat):
    name = "restore_worker"
    initial_state = "AT_STARTUP"
    transitions = {
        ("AT_STARTUP", "start"): [Transition("FETCHING", ("fill_window", "decode_next"))],
        ("AT_STARTUP", "abort"): [Transition("ROLLBACK", ("mark_aborted", "rollback"))],
        ("FETCHING", "fetched"): [Transition("FETCHING", ("decode_next",))],
        ("FETCHING", "decoded"): [Transition("FINALIZING", ("accept", "stop_fetching", "finalize"), guard="last"),
                                  Transition("ROLLBACK", ("accept", "fail_past_end", "stop_fetching", "rollback"),
                                             guard="past_end"),
                                  Transition("FETCHING", ("accept", "fill_window", "decode_next"))],
        ("FETCHING", "unverified"): [Transition("FETCHING", ("fetch_more",))],
        ("FETCHING", "short"): [Transition("ROLLBACK", ("fail_short", "stop_fetching", "rollback"))],
        ("FETCHING", "write-failed"): [Transition("ROLLBACK", ("fail", "stop_fetching", "rollback"))],
        ("FETCHING", "abort"): [Transition("ROLLBACK", ("mark_aborted", "stop_fetching", "rollback"))],
        ("FINALIZING", "finalized"): [Transition(DONE, ("report",))],
        ("FINALIZING", "write-failed"): [Transition("ROLLBACK", ("fail", "rollback"))],
        # the thread call running when the job failed has ended: now roll back
        ("ROLLBACK", "decoded"): [Transition("ROLLBACK", ("rollback",))],
        ("ROLLBACK", "unverified"): [Transition("ROLLBACK", ("rollback",))],
        ("ROLLBACK", "write-failed"): [Transition("ROLLBACK", ("rollback",))],
        ("ROLLBACK", "rolled-back"): [Transition(ABORTED, ("report",), guard="aborted"),
                                      Transition(FAILED, ("report",))],
    }

    def __init__(self, clock: IReactorTime, registry: AutomatRegistry | None, target: RestoreTarget,
                 decoder: RestoreDecoder, source: PieceSource, run: ThreadRunner, health: SupplierHealth,
                 depth: int = DEPTH, timeout: float = PIECE_TIMEOUT) -> None:
        self.target = target
        self.decoder = decoder
        self.source = source
        self.run = run
        self.health = health
        self.depth = max(1, depth)
        self.timeout = timeout
        self.created = time.time()
        self.next_block = 0
        self.fetched_bytes = 0
        self.error = ""
        self.aborted = False
        self._waiters: list[Deferred[str]] = []
        self._fetchers: dict[int, ShareFetcher] = {}
        self._ready: set[int] = set()
        self._busy = False
        self._rolled = False
        super().__init__(clock, registry, f"restore_worker[{target.backup_id}]")

    # -- read by restores_running --------------------------------------------------------

    @property
    def done(self) -> bool:
        return self.state in ENDED

    def when_done(self) -> Deferred[str]:
        """A new Deferred firing with the end state (DONE, FAILED or ABORTED)."""
        waiter: Deferred[str] = Deferred()
        if self.done:
            waiter.callback(self.state)
        else:
            self._waiters.append(waiter)
        return waiter

    @property
    def bytes_processed(self) -> int:
        return self.decoder.bytes_processed

    # -- guards --------------------------------------------------------------------------

    def is_last(self, block: VerifiedBlock) -> bool:
        return block.opened.header.last

    def is_past_end(self, block: VerifiedBlock) -> bool:
        return block.opened.header.number + 1 >= self.target.blocks

    def is_aborted(self, *_args: Any) -> bool:
        return self.aborted

    # -- actions ---------------------------------------------------------------------------

    def do_fill_window(self, *_args: Any) -> None:
        k = self.target.ecc.k
        for number in range(self.next_block, min(self.target.blocks, self.next_block + self.depth)):
            if number not in self._fetchers:
                fetcher = ShareFetcher(self.source, self.target.ecc, self.target.storage_id, number, self.health,
                                       self.timeout)
                self._fetchers[number] = fetcher
                fetcher.want(k).addCallback(self._fetched, number)

    def _fetched(self, _shares: dict[int, bytes], number: int) -> None:
        self._ready.add(number)
        self.event("fetched", number)

    def do_decode_next(self, *_args: Any) -> None:
        number = self.next_block
        if self._busy or number not in self._ready:
            return
        fetcher = self._fetchers[number]
        if len(fetcher.shares) < self.target.ecc.k:
            self.event("short", number)
            return
        self._ready.discard(number)
        self._busy = True
        shares = dict(fetcher.shares)
        target, decoder = self.target, self.decoder

        def work() -> VerifiedBlock:  # in a worker thread
            block = verify_block(target.ecc, decoder.version_key.key, target.backup_id, number, shares)
            decoder.feed_opened(block.opened)
            return block

        self.run(work).addCallbacks(self._decoded, self._not_decoded, errbackArgs=(number,))

    def _decoded(self, block: VerifiedBlock) -> None:
        self._busy = False
        self.event("decoded", block)

    def _not_decoded(self, failure: Failure, number: int) -> None:
        self._busy = False
        if failure.check(NeedMoreShares):
            self.event("unverified", failure.value)
            return
        log.error("restore of %s: block %d: %s", self.target.backup_id, number, failure.getErrorMessage())
        self.event("write-failed", f"block {number}: {failure.getErrorMessage()}")

    def do_accept(self, block: VerifiedBlock) -> None:
        number = block.opened.header.number
        fetcher = self._fetchers.pop(number)
        fetcher.reject(block.bad, "it does not match the verified block")
        self.fetched_bytes += fetcher.fetched_bytes
        self.next_block = number + 1

    def do_fetch_more(self, problem: NeedMoreShares) -> None:
        fetcher = self._fetchers[problem.number]
        fetcher.reject(problem.bad, "it is empty")
        if fetcher.exhausted:
            self.event("short", problem.number)
            return
        wanted = max(self.target.ecc.k, len(fetcher.shares) + 1)
        fetcher.want(wanted).addCallback(self._fetched, problem.number)

    def do_finalize(self, *_args: Any) -> None:
        self._busy = True

        def done(_members: list[str]) -> None:
            self._busy = False
            self.event("finalized")

        def failed(failure: Failure) -> None:
            self._busy = False
            self.event("write-failed", f"moving the files into place: {failure.getErrorMessage()}")

        self.run(self.decoder.finalize).addCallbacks(done, failed)

    def do_fail_short(self, number: int) -> None:
        fetcher = self._fetchers.get(number)
        have = len(fetcher.shares) if fetcher is not None else 0
        missing = fetcher.missing_report() if fetcher is not None else ""
        self.error = (f"restore of {self.target.backup_id} failed: block {number} of {self.target.blocks} cannot "
                      f"be rebuilt: {have} good pieces of the {self.target.ecc.k} needed; missing or bad: {missing}")
        log.error("%s", self.error)

    def do_fail_past_end(self, block: VerifiedBlock) -> None:
        self.error = (f"restore of {self.target.backup_id} failed: the catalog lists {self.target.blocks} blocks "
                      f"but block {block.opened.header.number} is not the last one")

    def do_fail(self, reason: str) -> None:
        self.error = f"restore of {self.target.backup_id} failed: {reason}"

    def do_mark_aborted(self, *_args: Any) -> None:
        self.aborted = True
        self.error = f"restore of {self.target.backup_id} was aborted"

    def do_stop_fetching(self, *_args: Any) -> None:
        fetchers, self._fetchers = self._fetchers, {}
        for fetcher in fetchers.values():
            fetcher.cancel()
        self._ready.clear()

    def do_rollback(self, *_args: Any) -> None:
        """Remove what was written; waits for a thread call still running (it reports
        into ROLLBACK, which calls this again)."""
        if self._busy or self._rolled:
            return
        self._rolled = True
        self._busy = True

        def rolled(result: object) -> None:
            self._busy = False
            if isinstance(result, Failure):
                log.error("restore of %s: rolling back failed: %s", self.target.backup_id,
                          result.getErrorMessage())
            self.event("rolled-back")

        self.run(self.decoder.abort).addBoth(rolled)

    def do_report(self, *_args: Any) -> None:
        if self.state == DONE:
            log.info("restore of %s into %s done: %d blocks, %d bad pieces bypassed", self.target.backup_id,
                     self.target.dest, self.next_block, self.health.corrupt_total)
        waiters, self._waiters = self._waiters, []
        for waiter in waiters:
            waiter.callback(self.state)

    def state_changed(self, old_state: str, new_state: str, event: str) -> None:
        if new_state in ENDED:  # after the state listeners ran: leave the registry
            self.destroy()
