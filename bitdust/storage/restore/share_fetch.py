"""Fetching the shares of one block from the suppliers, best sources first.

A block needs any N of its 2N shares. :class:`ShareFetcher` asks for exactly as many as
are still missing, in parallel, ranked by :class:`SupplierHealth`: Data shares of
positions that answered well in this job first (a Data share costs no zfec arithmetic),
then Parity shares of those positions, then whatever is left on suppliers that are
offline or failed before. So with two of four suppliers gone, the first block may wait
for their timeouts, later blocks go straight to the Parity shares of the others.

A failed request (timeout, refusal, no supplier at that position) is remembered with
its reason, and the next candidate is asked; when no candidate is left, the fetch ends
with what it has and the caller reports :meth:`ShareFetcher.missing_report`. A share
that fails verification is dropped with :meth:`ShareFetcher.reject` and counts as one
more failure of its supplier.

Failures that say something about the supplier itself (a piece proven corrupt, a wrong
answer, no answer while it was online) also go to :attr:`SupplierHealth.report`, which
the restore service points at the customer's :class:`~bitdust.storage.restore.strikes.PieceStrikes`:
that is how fire_hire learns of a supplier that answers pings but fails at serving pieces.
The supplier is the one asked, remembered per request: the position may change hands
while a block is being fetched.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Protocol

from twisted.internet.defer import CancelledError, Deferred
from twisted.python.failure import Failure

from bitdust.storage.ecc import EccMap
from bitdust.storage.ids import make_piece_id
from bitdust.storage.motion.errors import PieceRefused, PieceTimeout

log = logging.getLogger(__name__)


class PieceSource(Protocol):
    """What fetching needs from service_data_motion's DataMotion."""

    def retrieve_piece(self, position: int, piece_id: str, timeout: float = 30.0) -> Deferred[bytes]: ...

    def supplier_at(self, position: int) -> str | None: ...


@dataclass
class SupplierHealth:
    """What one job learnt about each position; shared by the fetchers of its blocks."""

    online: Callable[[int], bool] = lambda _position: True
    good: dict[int, int] = field(default_factory=dict)
    failed: dict[int, int] = field(default_factory=dict)
    corrupt: dict[int, int] = field(default_factory=dict)
    report: Callable[[str, str, str], None] | None = None
    """(supplier idurl, strike kind, why): failures that count against the supplier."""

    def strike(self, idurl: str | None, kind: str, why: str) -> None:
        if self.report is not None and idurl:
            self.report(idurl, kind, why)

    def rank(self, position: int) -> int:
        """0: online and never failed in this job; 1: failed or sent a bad piece but
        also answered; 2: offline, or only failures."""
        good, bad = self.good.get(position, 0), self.failed.get(position, 0) + self.corrupt.get(position, 0)
        if not self.online(position):
            return 2
        if bad == 0:
            return 0
        return 1 if good else 2

    @property
    def corrupt_total(self) -> int:
        return sum(self.corrupt.values())


class ShareFetcher:
    """The shares of block ``number`` of ``backup_id``; :meth:`want` fires with them."""

    def __init__(self, source: PieceSource, ecc: EccMap, backup_id: str, number: int, health: SupplierHealth,
                 timeout: float, skip: frozenset[int] = frozenset()) -> None:
        self.source = source
        self.ecc = ecc
        self.backup_id = backup_id
        self.number = number
        self.health = health
        self.timeout = timeout
        self.shares: dict[int, bytes] = {}
        self.failures: dict[int, str] = {}  # share index -> why it could not be had
        self.fetched_bytes = 0
        self._skip = skip  # shares not to ask for (known missing: a rebuild is making them)
        self._asked: set[int] = set()
        self._asked_from: dict[int, str | None] = {}  # share index -> the supplier asked
        self._pending: dict[int, Deferred[bytes]] = {}
        self._target = 0
        self._waiter: Deferred[dict[int, bytes]] | None = None
        self._cancelled = False

    # -- asking ---------------------------------------------------------------------------

    def want(self, count: int) -> Deferred[dict[int, bytes]]:
        """Fires once ``count`` shares are held, or with fewer when nobody has more."""
        if self._waiter is not None and not self._waiter.called:
            raise RuntimeError(f"block {self.number}: a fetch is already waiting")
        self._target = min(count, self.ecc.m)
        waiter: Deferred[dict[int, bytes]] = Deferred()
        self._waiter = waiter
        self._top_up()  # may fire the waiter at once (all answers synchronous)
        return waiter

    def more(self, extra: int = 1) -> Deferred[dict[int, bytes]]:
        """After a failed verification: the shares held plus ``extra`` more."""
        return self.want(len(self.shares) + extra)

    @property
    def exhausted(self) -> bool:
        return not self._candidates() and not self._pending

    def reject(self, indexes: frozenset[int] | set[int], why: str) -> None:
        """Drop shares that failed verification; they are never asked for again."""
        for index in indexes:
            if self.shares.pop(index, None) is None:
                continue
            position, _kind = self.ecc.share_owner(index)
            self.health.corrupt[position] = self.health.corrupt.get(position, 0) + 1
            self.failures[index] = why
            self.health.strike(self._asked_from.get(index), "corrupt", f"{self._piece(index)}: {why}")
            log.warning("block %d of %s: %s from %s rejected: %s", self.number, self.backup_id,
                        self._piece(index), self.source.supplier_at(position) or f"position {position}", why)

    def cancel(self) -> None:
        self._cancelled = True
        pending, self._pending = self._pending, {}
        for request in pending.values():
            request.cancel()
        self.shares.clear()

    # -- internals --------------------------------------------------------------------------

    def _piece(self, index: int) -> str:
        position, kind = self.ecc.share_owner(index)
        return make_piece_id(self.backup_id, self.number, position, kind)

    def _candidates(self) -> list[int]:
        left = [i for i in range(self.ecc.m) if i not in self._asked and i not in self._skip]
        return sorted(left, key=lambda i: (self.health.rank(self.ecc.share_owner(i)[0]), i >= self.ecc.k, i))

    def _top_up(self) -> None:
        """Ask until held + asked covers the target. A request may fail at once and call
        back in here; the loop re-reads the counts, so nothing is asked twice."""
        while not self._cancelled and len(self.shares) + len(self._pending) < self._target:
            candidates = self._candidates()
            if not candidates:
                break
            self._ask(candidates[0])
        if not self._cancelled and (len(self.shares) >= self._target or not self._pending):
            self._finish()

    def _ask(self, index: int) -> None:
        self._asked.add(index)
        position, _kind = self.ecc.share_owner(index)
        self._asked_from[index] = self.source.supplier_at(position)
        request = self.source.retrieve_piece(position, self._piece(index), self.timeout)
        self._pending[index] = request
        request.addCallbacks(self._got, self._failed, callbackArgs=(index,), errbackArgs=(index,))

    def _got(self, data: bytes, index: int) -> None:
        if self._pending.pop(index, None) is None:
            return
        position, _kind = self.ecc.share_owner(index)
        self.health.good[position] = self.health.good.get(position, 0) + 1
        self.shares[index] = data
        self.fetched_bytes += len(data)
        self._top_up()

    def _failed(self, failure: Failure, index: int) -> None:
        if failure.check(CancelledError) or self._pending.pop(index, None) is None:
            return
        position, _kind = self.ecc.share_owner(index)
        self.health.failed[position] = self.health.failed.get(position, 0) + 1
        who = self.source.supplier_at(position) or f"position {position} (no supplier)"
        self.failures[index] = f"{who}: {failure.getErrorMessage()}"
        if failure.check(PieceTimeout) and self.health.online(position):
            self.health.strike(self._asked_from.get(index), "no-answer", f"{self._piece(index)}: no answer")
        elif isinstance(failure.value, PieceRefused) and failure.value.code == "bad-request":
            self.health.strike(self._asked_from.get(index), "wrong-answer", failure.getErrorMessage())
        self._top_up()

    def _finish(self) -> None:
        waiter, self._waiter = self._waiter, None
        if waiter is not None and not waiter.called:
            waiter.callback(dict(self.shares))

    def missing_report(self) -> str:
        """Which pieces could not be had and why: the text of a failed restore."""
        parts = [f"{self._piece(i)} ({why})" for i, why in sorted(self.failures.items())]
        return "; ".join(parts) if parts else "no other pieces exist"
