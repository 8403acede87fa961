"""Who our customers are and what each was granted, kept in ``<home>/supplier/contracts.json``.

One small JSON file for all contracts: it changes when a customer is accepted, changes
its request, or leaves, and (coalesced, see :class:`CoalescingWriter`) when contact
times move. Every write is atomic (temp, fsync, rename) and runs in the thread pool.
``used`` is saved too, for people reading the file, but the truth about used bytes is
the disk: the store recomputes it from the customer folders at every start, which heals
any drift a crash left.

``former`` keeps the last :data:`MAX_FORMER` customers that left or were rejected
(``space_donated()['oldcustomers']``).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from twisted.internet.defer import Deferred
from twisted.internet.threads import deferToThreadPool
from twisted.python.failure import Failure

from bitdust.storage.market import customer_folder_name
from bitdust.util.fs import atomic_write

log = logging.getLogger(__name__)

FORMAT_VERSION = 1
MAX_FORMER = 100


class ContractsFileError(RuntimeError):
    """contracts.json exists but cannot be read: the service refuses to start rather
    than treat every customer as unknown (and so lose their data)."""


@dataclass
class Contract:
    idurl: str
    quota: int
    ecc_map: str
    position: int
    first_contact: float
    last_contact: float
    used: int = 0

    @property
    def folder_name(self) -> str:
        return customer_folder_name(self.idurl)

    @classmethod
    def from_json(cls, value: dict[str, Any]) -> Contract:
        return cls(idurl=str(value["idurl"]), quota=int(value["quota"]), ecc_map=str(value["ecc_map"]),
                   position=int(value["position"]), first_contact=float(value["first_contact"]),
                   last_contact=float(value["last_contact"]), used=int(value.get("used", 0)))


@dataclass
class ContractBook:
    """Contracts by customer idurl, plus the recent former customers."""

    contracts: dict[str, Contract] = field(default_factory=dict)
    former: list[dict[str, Any]] = field(default_factory=list)

    def add_former(self, idurl: str, reason: str, when: float) -> None:
        self.former = [f for f in self.former if f.get("idurl") != idurl]
        self.former.append({"idurl": idurl, "reason": reason, "time": when})
        del self.former[:-MAX_FORMER]

    def encode(self) -> bytes:
        value = {
            "version": FORMAT_VERSION,
            "contracts": {idurl: asdict(c) for idurl, c in sorted(self.contracts.items())},
            "former": self.former,
        }
        return json.dumps(value, indent=1, sort_keys=True).encode("utf-8")

    @classmethod
    def load(cls, path: Path) -> ContractBook:
        """Blocking; an empty book when the file does not exist yet."""
        try:
            raw = path.read_bytes()
        except FileNotFoundError:
            return cls()
        try:
            value = json.loads(raw.decode("utf-8"))
            contracts = {idurl: Contract.from_json(item) for idurl, item in value["contracts"].items()}
            former = [dict(f) for f in value.get("former", []) if isinstance(f, dict)]
        except (UnicodeDecodeError, ValueError, KeyError, TypeError, AttributeError) as exc:
            raise ContractsFileError(f"{path} is damaged ({exc}); fix or move it away to start") from None
        for idurl, contract in contracts.items():
            if contract.idurl != idurl:
                raise ContractsFileError(f"{path}: contract under {idurl} names {contract.idurl}")
        return cls(contracts, former[-MAX_FORMER:])


class CoalescingWriter:
    """Writes ``snapshot()`` to ``path`` in the thread pool, one write at a time.

    A save asked for while a write runs is folded into one more write after it, so the
    file always ends with the newest state and the number of writes stays bounded no
    matter how often callers ask. :meth:`save` fires once a write that started after
    the call (so it includes the caller's change) is on disk.
    """

    def __init__(self, reactor: Any, path: Path, snapshot: Callable[[], bytes]) -> None:
        self._reactor = reactor
        self._path = path
        self._snapshot = snapshot
        self._writing = False
        self._next: list[Deferred[None]] = []

    def save(self) -> Deferred[None]:
        waiter: Deferred[None] = Deferred()
        self._next.append(waiter)
        if not self._writing:
            self._write_round()
        return waiter

    def _write_round(self) -> None:
        waiters, self._next = self._next, []
        self._writing = True
        data = self._snapshot()
        pool = self._reactor.getThreadPool()
        writing = deferToThreadPool(self._reactor, pool, atomic_write, self._path, data, 0o600)
        writing.addBoth(self._written, waiters)

    def _written(self, result: Failure | None, waiters: list[Deferred[None]]) -> None:
        self._writing = False
        if isinstance(result, Failure):
            log.error("%s not saved: %s", self._path, result.getErrorMessage())
        for waiter in waiters:
            if isinstance(result, Failure):
                waiter.errback(result)
            else:
                waiter.callback(None)
        if self._next:
            self._write_round()
