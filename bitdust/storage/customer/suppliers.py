"""Who holds this node's data: positions ``0..N-1`` of the ``ecc/NxN`` map, persisted.

Position ``i`` keeps shares ``i`` and ``N+i`` of every block, so the list is not a set:
a supplier's position must survive restarts, or every piece would be looked for in the
wrong place. The file ``<home>/customer/suppliers.json`` is small (one line per
supplier) and rewritten atomically only when a position changes hands, never on a
status change: statuses are learnt again from the suppliers after a restart.

An empty position has the idurl ``""`` (never hired, or its supplier was fired and the
replacement is not connected yet).

**Retained positions.** When ``suppliers-number`` shrinks (``N`` 4 -> 2), the versions coded
with the old map still need the suppliers at positions ``N..`` until they are re-encoded
(:mod:`bitdust.storage.reencode`), so :meth:`SupplierList.resize` keeps them: :attr:`size`
is the new ``N`` (the map of new backups, what fire_hire fills: :meth:`slots`), while the
list still spans the old positions (:attr:`span`, :meth:`retained`), persisted as such.
They are cut only by :meth:`SupplierList.release`, once no version needs them.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bitdust.identity.idurl import is_idurl
from bitdust.storage.ecc import SUPPLIER_COUNTS
from bitdust.util.fs import atomic_write_text

log = logging.getLogger(__name__)

FILE_VERSION = 1
MAX_FILE_BYTES = 1024 * 1024


class SupplierListError(ValueError):
    """The saved list cannot be read; the message says why."""


@dataclass
class SupplierSlot:
    position: int
    idurl: str = ""
    connected: float | None = None
    """Epoch seconds when this supplier first accepted us at this position."""


def ecc_map_for(count: int) -> str:
    return f"ecc/{count}x{count}"


class SupplierList:
    def __init__(self, path: Path, size: int) -> None:
        if size not in SUPPLIER_COUNTS:
            raise SupplierListError(f"no ECC map for {size} suppliers")
        self.path = path
        self._size = size
        self._slots = [SupplierSlot(i) for i in range(size)]

    # -- persistence ----------------------------------------------------------------

    @classmethod
    def load(cls, path: Path, size: int) -> SupplierList:
        """The saved list resized to ``size``; an empty one when there is no file yet.

        An unreadable file is an error rather than an empty list: starting over would
        hire new suppliers and lose track of where every piece is.
        """
        result = cls(path, size)
        if not path.is_file():
            return result
        if path.stat().st_size > MAX_FILE_BYTES:
            raise SupplierListError(f"{path} is larger than {MAX_FILE_BYTES} bytes")
        try:
            data = json.loads(path.read_text("utf-8"))
        except (UnicodeDecodeError, ValueError) as exc:
            raise SupplierListError(f"{path} is not valid JSON: {exc}") from None
        rows = data.get("suppliers") if isinstance(data, dict) else None
        if not isinstance(rows, list):
            raise SupplierListError(f"{path} has no list of suppliers")
        saved = [_slot_from(row, path) for row in rows]
        # Every position saved is kept: past ``size`` it is retained (a smaller number was
        # set while the daemon was stopped), never dropped before a re-encoding.
        hired = [slot.position + 1 for slot in saved if slot.idurl]
        result._slots = [SupplierSlot(i) for i in range(span_for(max([size, *hired])))]
        for slot in saved:
            if slot.position < len(result._slots):
                result._slots[slot.position] = slot
        if len(result._slots) != size:
            result.resize(size)
        return result

    def save(self) -> None:
        rows = [{"position": s.position, "idurl": s.idurl, "connected": s.connected} for s in self._slots]
        text = json.dumps({"version": FILE_VERSION, "ecc_map": self.ecc_map, "size": self.size, "suppliers": rows},
                          indent=1)
        atomic_write_text(self.path, text + "\n", mode=0o600)

    # -- reading --------------------------------------------------------------------

    @property
    def size(self) -> int:
        """``N``: the positions of the current ``ecc/NxN`` map."""
        return self._size

    @property
    def span(self) -> int:
        """Positions the list holds: ``size`` plus the retained ones (always an ECC size)."""
        return len(self._slots)

    @property
    def ecc_map(self) -> str:
        return ecc_map_for(self.size)

    def request_map(self, position: int) -> str:
        """The map a supplier is asked to serve: the current one, or for a retained
        position the widest map still kept (positions must fit the map, see market)."""
        return self.ecc_map if position < self.size else ecc_map_for(self.span)

    def slots(self) -> list[SupplierSlot]:
        """Positions ``0..N-1`` (retained ones: :meth:`retained`)."""
        return [SupplierSlot(s.position, s.idurl, s.connected) for s in self._slots[: self.size]]

    def retained(self) -> list[SupplierSlot]:
        """Positions past ``N`` still kept for versions of a wider map (see module doc)."""
        return [SupplierSlot(s.position, s.idurl, s.connected) for s in self._slots[self.size :]]

    def slot(self, position: int) -> SupplierSlot:
        s = self._slots[position]
        return SupplierSlot(s.position, s.idurl, s.connected)

    def idurl(self, position: int) -> str:
        return self._slots[position].idurl

    def idurls(self) -> list[str]:
        """Hired suppliers in position order (empty positions skipped)."""
        return [s.idurl for s in self._slots if s.idurl]

    def position_of(self, idurl: str) -> int | None:
        for s in self._slots:
            if s.idurl and s.idurl == idurl:
                return s.position
        return None

    # -- changing (each change is saved at once) ----------------------------------

    def assign(self, position: int, idurl: str, connected: float | None) -> None:
        if not is_idurl(idurl):
            raise SupplierListError(f"not an idurl: {idurl!r}")
        other = self.position_of(idurl)
        if other is not None and other != position:
            raise SupplierListError(f"{idurl} already holds position {other}")
        self._slots[position] = SupplierSlot(position, idurl, connected)
        self.save()

    def mark_connected(self, position: int, when: float) -> None:
        """The first Ack at this position sets the 'connected' time shown by suppliers_list."""
        slot = self._slots[position]
        if slot.idurl and slot.connected is None:
            slot.connected = when
            self.save()

    def clear(self, position: int) -> str:
        """Empty a position; returns the idurl that held it."""
        old = self._slots[position].idurl
        self._slots[position] = SupplierSlot(position)
        self.save()
        return old

    def resize(self, size: int) -> list[str]:
        """A new ``N``. Growing adds empty positions (or makes retained ones current
        again); shrinking keeps the positions past ``N`` as retained: returns their idurls.
        Nothing is cut here (:meth:`release` does, once the data no longer needs them)."""
        if size not in SUPPLIER_COUNTS:
            raise SupplierListError(f"no ECC map for {size} suppliers")
        self._size = size
        hired = [s.position + 1 for s in self._slots if s.idurl]
        keep = span_for(max([size, *hired]))  # empty positions past N hold nothing: not kept
        self._slots = self._slots[:keep] + [SupplierSlot(i) for i in range(len(self._slots), size)]
        self.save()
        return [s.idurl for s in self._slots[size:] if s.idurl]

    def release(self, needed: int) -> list[str]:
        """Cut the retained positions no map of ``needed`` suppliers (the widest map a
        version still uses) reaches; returns the idurls let go."""
        keep = span_for(max(self.size, needed))
        if keep >= len(self._slots):
            return []
        dropped = [s.idurl for s in self._slots[keep:] if s.idurl]
        self._slots = self._slots[:keep]
        self.save()
        return dropped


def span_for(count: int) -> int:
    """The smallest ECC size holding ``count`` positions (retained spans are map sizes)."""
    return next((n for n in SUPPLIER_COUNTS if n >= count), max(SUPPLIER_COUNTS))


def _slot_from(row: Any, path: Path) -> SupplierSlot:
    if not isinstance(row, dict):
        raise SupplierListError(f"{path}: a supplier entry is not an object")
    position, idurl, connected = row.get("position"), row.get("idurl", ""), row.get("connected")
    if not isinstance(position, int) or isinstance(position, bool) or not 0 <= position < max(SUPPLIER_COUNTS):
        raise SupplierListError(f"{path}: bad position {position!r}")
    if not isinstance(idurl, str) or (idurl and not is_idurl(idurl)):
        raise SupplierListError(f"{path}: bad idurl {idurl!r} at position {position}")
    if connected is not None and not isinstance(connected, (int, float)):
        raise SupplierListError(f"{path}: bad connected time at position {position}")
    return SupplierSlot(position, idurl, float(connected) if connected is not None else None)
