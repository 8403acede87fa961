"""The pure rules of re-encoding: which versions need it, which suppliers they still need,
when a version may switch. No I/O: the reencoder asks these on the reactor thread."""

from __future__ import annotations

from dataclasses import dataclass

from bitdust.storage.catalog.index import CatalogIndex
from bitdust.storage.catalog.model import CatalogVersion, Retired
from bitdust.storage.ecc import EccError, EccMap


@dataclass(frozen=True)
class Step:
    """One version to move to ``target``; ``resume`` is the first block not done yet
    (0 for a fresh start), ``abandon`` says a re-encoding to another map must be dropped first."""

    backup_id: str
    source: str
    target: str
    resume: int
    abandon: bool


def _suppliers(ecc: str) -> int:
    try:
        return EccMap.from_name(ecc).suppliers
    except EccError:
        return 0


def versions_to_reencode(catalog: CatalogIndex, target: str) -> list[Step]:
    """Complete versions not coded with ``target``, in catalog order (oldest version
    first within an item). In-progress versions are left alone: their job may still be
    sending, and they are picked up once complete."""
    steps = []
    for item, version in catalog.complete_backups():
        if version.ecc == target:
            continue
        pending = version.reencode
        same = pending is not None and pending.ecc == target
        steps.append(Step(f"{item.path_id}/{version.version}", version.ecc, target,
                          pending.done if same and pending is not None else 0, pending is not None and not same))
    return steps


def stale_reencodings(catalog: CatalogIndex, target: str) -> list[str]:
    """Versions with a re-encoding under way to a map that is no longer wanted (the
    number changed again) or no longer useful (the version is already on ``target``)."""
    return [f"{item.path_id}/{v.version}" for item in catalog.items() for v in item.versions.values()
            if v.reencode is not None and (v.reencode.ecc != target or v.ecc == target)]


def widest_needed(catalog: CatalogIndex, busy: set[str] | frozenset[str] = frozenset()) -> int:
    """The most suppliers any version's pieces are spread over, current or being
    written, complete or still uploading: positions up to it must be kept. Retired
    generations count only for versions in ``busy`` (being restored: the restore may
    have started before the switch and reads them); otherwise their pieces are only
    waiting to be deleted, and a released supplier drops our data anyway."""
    widest = 0
    for item in catalog.items():
        for version in item.versions.values():
            widest = max(widest, _suppliers(version.ecc))
            if version.reencode is not None:
                widest = max(widest, _suppliers(version.reencode.ecc))
            if f"{item.path_id}/{version.version}" in busy:
                widest = max([widest, *(_suppliers(r.ecc) for r in version.retired)])
    return widest


def may_switch(version: CatalogVersion) -> bool:
    """The switch rule: a re-encoding replaces the version's coding only once every
    new piece of every block was acknowledged."""
    pending = version.reencode
    return version.complete and pending is not None and pending.done >= version.blocks > 0


def advance(done: int, acked: set[int]) -> int:
    """Blocks done after ``acked`` blocks (any order) came in: the contiguous run from
    ``done`` on; those leave ``acked``. Only a contiguous prefix is recorded, so a
    restart never skips a block whose pieces were not all acknowledged."""
    for _ in range(len(acked)):
        if done not in acked:
            break
        acked.discard(done)
        done += 1
    return done


def retired_work(catalog: CatalogIndex, busy: set[str]) -> list[tuple[str, Retired]]:
    """(backup ID, retired generation) whose pieces may be deleted now: not of a version
    being restored (the restore may have started before the switch and read them)."""
    return [(f"{item.path_id}/{v.version}", old) for item, v in catalog.complete_backups()
            for old in v.retired if f"{item.path_id}/{v.version}" not in busy]


def delete_positions(ecc: str, span: int) -> list[int]:
    """Positions holding pieces of a generation coded with ``ecc`` that are still ours to
    delete from (positions past ``span`` were released: those suppliers dropped our data)."""
    return list(range(min(_suppliers(ecc), span)))
