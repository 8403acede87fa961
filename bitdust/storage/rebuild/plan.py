"""What is missing where: redundancy per version and the shares a rebuild must make.

Pure functions over a snapshot (run in a worker thread: a big catalog has many pieces).
A share counts as present only when the supplier now at its own position listed it
(``<block>-<i>-Data`` and ``<block>-<i>-Parity`` belong to position ``i``): restore asks
position ``i`` for them, so a piece anywhere else does not help.

**Redundancy format** (``CatalogVersion.redundancy``, shown by ``backups_list``): one int
per block, index = block number, value = how many of the block's 2N pieces the suppliers
listed at their positions at the last check, so ``2N`` everywhere means whole, and any
value below ``N`` means that block cannot be restored right now. Positions whose listing
is unknown (supplier offline, never answered) count as holding nothing.

A position is planned for rebuilding when its listing is known and lacks pieces, or when
it was just given to a new supplier (``forced``: it holds nothing yet, even before its
first listing arrives). Positions whose listing is unknown are not planned: their
supplier may well hold everything and simply be away.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from bitdust.storage.ecc import EccMap
from bitdust.storage.ids import IdError, PieceKind, parse_piece_id


@dataclass(frozen=True)
class VersionInfo:
    """What planning needs of a complete version (copied from the catalog)."""

    backup_id: str
    ecc: str
    blocks: int
    wrapped_key: bytes = field(repr=False)
    storage: str = ""
    """Where its pieces are when re-encoded (:func:`bitdust.storage.ids.storage_id`); "" = the backup ID."""

    @property
    def storage_id(self) -> str:
        return self.storage or self.backup_id


@dataclass
class Plan:
    redundancy: dict[str, list[int]] = field(default_factory=dict)
    work: list[tuple[VersionInfo, int, frozenset[int]]] = field(default_factory=list)
    """(version, block, share indexes to make), in catalog order then block order."""
    positions: set[int] = field(default_factory=set)
    """Positions that lack at least one piece planned here."""

    @property
    def shares(self) -> int:
        return sum(len(missing) for _v, _b, missing in self.work)


def index_held(held: Mapping[int, Mapping[str, int] | None]) -> dict[int, dict[str, set[tuple[int, str]]]]:
    """position -> backup ID -> {(block, kind)} of the pieces it listed at its own position."""
    index: dict[int, dict[str, set[tuple[int, str]]]] = {}
    for position, pieces in held.items():
        if pieces is None:
            continue
        mine = index.setdefault(position, {})
        for piece_id, size in pieces.items():
            try:
                piece = parse_piece_id(piece_id)
            except IdError:
                continue  # not a piece name of ours: the supplier's business
            if piece.supplier == position and size > 0:
                mine.setdefault(piece.backup_id, set()).add((piece.block, piece.kind.value))
    return index


def make_plan(versions: list[VersionInfo], held: Mapping[int, Mapping[str, int] | None], size: int,
              forced: set[int] | frozenset[int] = frozenset()) -> Plan:
    """Redundancy of every version, and the shares to make at the positions of a list of
    ``size`` suppliers. Versions coded for another number of suppliers get their
    redundancy counted but no work: moving them to the new map is a re-encoding, not a
    rebuild."""
    index = index_held(held)
    plan = Plan()
    for info in versions:
        ecc = EccMap.from_name(info.ecc)
        counts = []
        rebuildable = ecc.suppliers == size
        for block in range(info.blocks):
            present = 0
            missing: set[int] = set()
            for position in range(ecc.suppliers):
                have = index.get(position, {}).get(info.storage_id, set())
                known = position in index or position in forced
                for kind in (PieceKind.DATA, PieceKind.PARITY):
                    if (block, kind.value) in have:
                        present += 1
                    elif known and rebuildable:
                        missing.add(ecc.share_index(position, kind))
            counts.append(present)
            if missing:
                plan.work.append((info, block, frozenset(missing)))
                plan.positions.update(ecc.share_owner(i)[0] for i in missing)
        plan.redundancy[info.backup_id] = counts
    return plan
