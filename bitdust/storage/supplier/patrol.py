"""customer_patrol's rounds: which customers to reject, and rejecting them.

Every round (:data:`CHECK_SECONDS`, on ``node.clock``) a customer is rejected when:

- it was idle longer than ``services/customer-patrol/customer-idle-days`` (0 = never).
  Idle time counts only while the patrol runs: silence is measured from the later of
  the last contact and the patrol's start, so a supplier that was itself switched off
  for a month does not throw out every customer the moment it comes back;
- it holds more than its quota (possible after it asked for less space than it uses);
- the donation shrank below the space granted: the newest contracts go first, until
  the rest fits.

Rejecting deletes the customer's data and tells it with a CancelService notice
(:mod:`bitdust.storage.market`: Failure code ``rejected`` or ``over-quota``).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any, NamedTuple

from twisted.internet.defer import Deferred, DeferredList
from twisted.internet.task import LoopingCall

from bitdust.storage.supplier.store import SupplierStore
from bitdust.util.units import format_size

log = logging.getLogger(__name__)

CHECK_SECONDS = 3600.0
DAY = 86400.0

Reject = Callable[[str, str, str], Deferred[int]]
"""(idurl, Fail code, reason) -> bytes freed; the supplier service's reject_customer."""


class Verdict(NamedTuple):
    idurl: str
    code: str
    reason: str


class CustomerPatrol:
    def __init__(self, clock: Any, store: SupplierStore, reject: Reject, idle_days: Callable[[], int],
                 interval: float = CHECK_SECONDS) -> None:
        self.store = store
        self.reject = reject
        self.idle_days = idle_days
        self.started_at = store.now()
        self.rounds = 0
        self.running_round: Deferred[Any] | None = None
        """The round still rejecting customers, if any (its deletions take disk time)."""
        self._loop = LoopingCall(self.check)
        self._loop.clock = clock
        self._interval = interval

    def start(self) -> None:
        self.started_at = self.store.now()
        self._loop.start(self._interval, now=False)

    def stop(self) -> None:
        if self._loop.running:
            self._loop.stop()

    def verdicts(self) -> list[Verdict]:
        """Who is to go this round, and why (no side effects)."""
        found: dict[str, Verdict] = {}
        days = int(self.idle_days())
        now = self.store.now()
        customers = self.store.customers()
        for contract in customers:
            silent = now - max(contract.last_contact, self.started_at)
            used = self.store.used(contract.idurl)
            if days > 0 and silent > days * DAY:
                found[contract.idurl] = Verdict(contract.idurl, "rejected",
                                                f"no contact for {silent / DAY:.1f} days (limit {days})")
            elif used > contract.quota:
                found[contract.idurl] = Verdict(contract.idurl, "over-quota",
                                                f"{format_size(used)} stored, the quota is "
                                                f"{format_size(contract.quota)}")
        excess = self.store.consumed() - self.store.donated()
        for contract in reversed(customers):  # newest first
            if excess <= 0:
                break
            if contract.idurl not in found:
                found[contract.idurl] = Verdict(contract.idurl, "rejected",
                                                "the supplier reduced its donated space")
            excess -= contract.quota
        return list(found.values())

    def check(self) -> Deferred[Any] | None:
        """One round; a round still busy deleting makes the next one skip."""
        if self.running_round is not None:
            return None
        self.rounds += 1
        verdicts = self.verdicts()
        if not verdicts:
            return None
        for verdict in verdicts:
            log.info("customer_patrol rejects %s: %s", verdict.idurl, verdict.reason)
        running = DeferredList([self.reject(*v) for v in verdicts], consumeErrors=True)
        self.running_round = running
        return running.addBoth(self._finished)

    def _finished(self, results: Any) -> Any:
        self.running_round = None
        for ok, value in results if isinstance(results, list) else []:
            if not ok:
                log.error("customer_patrol could not reject a customer: %s", value.getErrorMessage())
        return results
