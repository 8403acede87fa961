"""Who our customers are and what each was granted, kept in ``<home>/supplier/contracts.json``.

One small JSON file for all contracts: it changes when a customer is accepted, changes
its request, or leaves, and (coalesced, see :class:`~bitdust.util.writer.CoalescingWriter`) when contact
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
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from bitdust.storage.market import customer_folder_name

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
