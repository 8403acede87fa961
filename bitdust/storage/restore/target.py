"""What ``restore_single`` restores, and where: resolved from the catalog on the reactor.

The argument may be a path ID (its newest complete version), a backup ID (that version,
which must be complete), or a local path the catalog knows (the newest complete version
among the items pointing there). Versions still being uploaded are refused: their
pieces are not all on the suppliers.

Where: by default the folder holding the item's local path, since archives name their
members below the source's basename (``docs/a.txt``), so ``/home/u/docs`` comes back as
``/home/u/docs``; a given destination folder receives ``docs/...`` inside it instead.
Existing files with the same names are replaced (atomically, only once the whole
version was verified); other files already there are left alone.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field

from bitdust.storage.catalog.index import CatalogIndex
from bitdust.storage.catalog.localpath import normalize_local_path
from bitdust.storage.catalog.model import CatalogError, CatalogItem, CatalogVersion
from bitdust.storage.ecc import EccMap
from bitdust.storage.ids import is_backup_id, is_path_id, storage_id, version_key


class RestoreError(ValueError):
    """A restore cannot start or went wrong; the message is meant for the user."""


@dataclass(frozen=True)
class RestoreTarget:
    path_id: str
    version: str
    ecc: EccMap
    blocks: int
    size: int
    wrapped_key: bytes = field(repr=False)
    local_path: str
    dest: str
    generation: int = 0
    """Which coding of the version the catalog holds now (re-encoded versions keep their
    pieces elsewhere: :data:`bitdust.storage.ids.REENCODED_PATH_ID`)."""

    @property
    def backup_id(self) -> str:
        return f"{self.path_id}/{self.version}"

    @property
    def storage_id(self) -> str:
        """Where the pieces are (the backup ID itself unless re-encoded); the AEAD tags
        still authenticate :attr:`backup_id`."""
        return storage_id(self.backup_id, self.generation)


def resolve(catalog: CatalogIndex, what: object, destination: object = None) -> RestoreTarget:
    """The version to restore and its destination folder; RestoreError saying why not."""
    item, version = _find(catalog, what)
    if destination is None or destination == "":
        dest = os.path.dirname(item.local_path) or "/"
    else:
        try:
            dest = normalize_local_path(destination)
        except CatalogError as exc:
            raise RestoreError(f"bad destination: {exc}") from None
    try:
        ecc = EccMap.from_name(version.ecc)
    except ValueError as exc:
        raise RestoreError(f"version {item.path_id}/{version.version}: {exc}") from None
    return RestoreTarget(item.path_id, version.version, ecc, version.blocks, version.size, version.wrapped_key,
                         item.local_path, dest, version.generation)


def _find(catalog: CatalogIndex, what: object) -> tuple[CatalogItem, CatalogVersion]:
    if not isinstance(what, str) or not what:
        raise RestoreError(f"expected a path ID, a backup ID or an absolute local path, got {what!r}")
    try:
        if is_backup_id(what):
            item, version = catalog.version(what)
            if not version.complete:
                raise RestoreError(f"version {what} is not complete yet: its upload has not finished")
            return item, version
        if is_path_id(what):
            item = catalog.item(what)
            return item, _newest(item, f"item {what}")
        if what.startswith("/"):
            return _by_local_path(catalog, normalize_local_path(what))
    except CatalogError as exc:
        raise RestoreError(str(exc)) from None
    raise RestoreError(f"{what!r} is neither a path ID (like 0/0/1), a backup ID (like 0/0/1/F20160313043757PM) "
                       "nor an absolute local path")


def _newest(item: CatalogItem, what: str) -> CatalogVersion:
    versions = item.sorted_versions(complete_only=True)
    if not versions:
        raise RestoreError(f"{what} ({item.local_path}) has no complete version to restore")
    return versions[-1]


def _by_local_path(catalog: CatalogIndex, path: str) -> tuple[CatalogItem, CatalogVersion]:
    items = catalog.find_local(path)
    if not items:
        raise RestoreError(f"local path {path} is not in the catalog")
    found = [(item, v) for item in items for v in item.sorted_versions(complete_only=True)]
    if not found:
        raise RestoreError(f"local path {path} has no complete version to restore")
    return max(found, key=lambda pair: version_key(pair[1].version))
