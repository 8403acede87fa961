"""Who holds this node's data: positions ``0..N-1`` of the ``ecc/NxN`` map, persisted.

Position ``i`` keeps shares ``i`` and ``N+i`` of every block, so the list is not a set:
a supplier's position must survive restarts, or every piece would be looked for in the
wrong place. The file ``<home>/customer/suppliers.json`` is small (one line per
supplier) and rewritten atomically only when a position changes hands, never on a
status change: statuses are learnt again from the suppliers after a restart.

An empty position has the idurl ``""`` (never hired, or its supplier was fired and the
replacement is not connected yet).
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
        result._slots = [SupplierSlot(i) for i in range(max(size, len(saved)))]
        for slot in saved:
            if slot.position < len(result._slots):
                result._slots[slot.position] = slot
        if len(result._slots) != size:
            result.resize(size)
        return result

    def save(self) -> None:
        rows = [{"position": s.position, "idurl": s.idurl, "connected": s.connected} for s in self._slots]
        text = json.dumps({"version": FILE_VERSION, "ecc_map": self.ecc_map, "suppliers": rows}, indent=1)
        atomic_write_text(self.path, text + "\n", mode=0o600)

    # -- reading --------------------------------------------------------------------

    @property
    def size(self) -> int:
        return len(self._slots)

    @property
    def ecc_map(self) -> str:
        return ecc_map_for(self.size)

    def slots(self) -> list[SupplierSlot]:
        return [SupplierSlot(s.position, s.idurl, s.connected) for s in self._slots]

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
        """Grow with empty positions or cut the last ones; returns the idurls cut off.

        Data stored under the old map is not re-encoded here (a later part of the
        pipeline must do that); positions ``0..min(old, new)-1`` keep their suppliers.
        """
        if size not in SUPPLIER_COUNTS:
            raise SupplierListError(f"no ECC map for {size} suppliers")
        dropped = [s.idurl for s in self._slots[size:] if s.idurl]
        self._slots = self._slots[:size] + [SupplierSlot(i) for i in range(len(self._slots), size)]
        self.save()
        return dropped


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
