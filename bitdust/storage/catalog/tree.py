"""The catalog: an in-memory tree of items with their versions, indexed three ways.

Two ways of adding, as the API describes:

* :meth:`Catalog.map_path` (``backup_map_path``, ``backup_start_path`` with
  ``bind_local_path=True``): a new top-level item with a single-number ID pointing at
  the local path, whatever its folders are.
* :meth:`Catalog.add_path` / :meth:`Catalog.add_tree` (``backup_dir_add``,
  ``backup_file_add``, ``backup_tree_add``, ``bind_local_path=False``): the local
  folders become catalog folders, so ``/home/u/docs/a.txt`` gets an ID like ``0/0/1/0``.

Both kinds share the top level (``/home`` may be ``0`` and a mapped file ``1``, as in
the spec's examples). Lookups (in :mod:`.index`) go by path ID, by backup ID and by local
path; one local path may be known as several items (mapped and mirrored), which
``find_local`` returns in ID order.

Every change bumps :attr:`Catalog.revision`; whoever persists the catalog (the
``backup_db`` service, and later the copy on suppliers) compares revisions. The tree
itself never touches the disk. It is not thread-safe: use it from the reactor thread.
"""

from __future__ import annotations

from twisted.internet.defer import Deferred, maybeDeferred, succeed

from bitdust.storage.catalog.index import MAX_ITEMS, CatalogIndex
from bitdust.storage.catalog.localpath import LocalPath, TreeScan, path_parts
from bitdust.storage.catalog.model import (
    CatalogError,
    CatalogItem,
    CatalogVersion,
    ItemType,
    Reencoding,
    Retired,
    VersionState,
)
from bitdust.storage.ecc import EccError, EccMap
from bitdust.storage.ids import MAX_ID_LENGTH, IdError, make_path_id, parse_version

__all__ = ["MAX_ITEMS", "MAX_VERSIONS", "Catalog", "checked_ecc"]

MAX_VERSIONS = 10_000
"""Versions of one item (``services/backups/max-copies`` normally keeps a handful)."""


class Catalog(CatalogIndex):
    """The catalog with every change it allows; each keeps the tree unchanged on error."""

    # -- adding -----------------------------------------------------------------------

    def map_path(self, local: LocalPath) -> tuple[CatalogItem, bool]:
        """A top-level item bound to ``local``. Mapping the same path again returns the
        item it already has (so repeated ``backup_start_path`` makes new versions of one
        item, not new items); ``created`` tells which happened."""
        for existing in self.find_local(local.path):
            if existing.bound and existing.type is local.type:
                if local.size and local.size != existing.size:
                    existing.size = local.size
                    self._changed()
                return existing, False
        self._check_room(1)
        name = local.path if local.path == "/" else path_parts(local.path)[-1]
        item = CatalogItem(str(self.next_top), local.type, name, local.path, local.size, bound=True)
        self.next_top += 1
        self._attach(item, None)
        self._changed()
        return item, True

    def add_path(self, local: LocalPath) -> tuple[CatalogItem, bool]:
        """Mirror ``local`` (a FILE or a DIR) and its parent folders; a ``parent`` item
        already there becomes a ``dir``. Nothing changes if it fails."""
        parts = self._check_mirrorable(local)
        item, created = self._mirror(parts, local.type, local.size)
        self._changed()
        return item, created > 0

    def add_tree(self, scan: TreeScan) -> tuple[CatalogItem, int, int]:
        """Mirror a walked folder and everything found in it.

        Returns the root item, the number of items created (root and its parents
        included) and the number of entries skipped because the catalog already holds a
        different kind of item there (a file where now there is a folder) or the ID
        would grow too long. The root is checked first, so a refusal changes nothing."""
        parts = self._check_mirrorable(scan.root, extra=len(scan.entries))
        # A folder walked here is a ``parent``, unless it was already added as a ``dir``.
        root, created = self._mirror(parts, ItemType.PARENT, 0)
        conflicts = 0
        for entry in scan.entries:
            try:
                _item, made = self._mirror_below(root, entry.parts, entry.type, entry.size)
            except CatalogError:
                conflicts += 1
                continue
            created += made
        self._changed()
        return root, created, conflicts

    def set_size(self, path_id: str, size: int) -> None:
        self.item(path_id).size = _non_negative(size, "size")
        self._changed()

    # -- removing ---------------------------------------------------------------------

    def remove_item(self, path_id: object) -> list[CatalogItem]:
        """Remove an item and everything below it; returns what was removed (the caller
        deletes their pieces from suppliers). Its number is not given out again."""
        item = self.item(path_id)
        removed: list[CatalogItem] = []
        stack = [item]
        for _ in range(len(self._by_id)):
            if not stack:
                break
            current = stack.pop()
            removed.append(current)
            stack.extend(current.children.values())
        for gone in removed:
            self._detach_indexes(gone)
        parent = self._by_id.get(item.parent_id) if item.parent_id is not None else None
        if parent is None:
            self._top.pop(item.number, None)
        else:
            parent.children.pop(item.number, None)
        self._changed()
        return removed

    # -- versions ---------------------------------------------------------------------

    def add_version(self, path_id: str, version: str, ecc: str, wrapped_key: bytes) -> CatalogVersion:
        """Record a version being backed up; it stays ``in progress`` (and invisible to
        ``backups_id_list``) until :meth:`mark_complete`."""
        item = self.item(path_id)
        if item.type is ItemType.PARENT:
            raise CatalogError(f"item {item.path_id} is a parent folder; add it as a folder to back it up")
        version = _checked_version(version)
        if version in item.versions:
            raise CatalogError(f"version {item.path_id}/{version} already exists")
        if len(item.versions) >= MAX_VERSIONS:
            raise CatalogError(f"item {item.path_id} already has {MAX_VERSIONS} versions")
        if not isinstance(wrapped_key, bytes) or not wrapped_key:
            raise CatalogError("a version needs its wrapped data key")
        record = CatalogVersion(version, checked_ecc(ecc), wrapped_key)
        item.versions[version] = record
        self._changed()
        return record

    def update_version(self, backup_id: str, *, blocks: int | None = None, size: int | None = None,
                       source_size: int | None = None, redundancy: list[int] | None = None) -> CatalogVersion:
        """Progress of a running backup, or redundancy counted later by the rebuilder."""
        _item, record = self.version(backup_id)
        if blocks is not None:
            record.blocks = _non_negative(blocks, "blocks")
        if size is not None:
            record.size = _non_negative(size, "size")
        if source_size is not None:
            record.source_size = _non_negative(source_size, "source size")
        if redundancy is not None:
            record.redundancy = [_non_negative(n, "redundancy") for n in redundancy]
        self._changed()
        return record

    def mark_complete(self, backup_id: str, *, blocks: int | None = None, size: int | None = None,
                      source_size: int | None = None) -> CatalogVersion:
        """Every piece of every block was acknowledged: the version becomes visible, and
        the bytes it read become the item's size (the newest figure there is)."""
        item, record = self.version(backup_id)
        if (_non_negative(blocks, "blocks") if blocks is not None else record.blocks) < 1:
            raise CatalogError(f"version {backup_id} has no blocks; it cannot be complete")
        self.update_version(backup_id, blocks=blocks, size=size, source_size=source_size)
        record.state = VersionState.COMPLETE
        if source_size is not None:
            item.size = source_size
        self._changed()
        return record

    def drop_version(self, backup_id: str) -> CatalogVersion:
        """Forget an aborted version without a trace. Complete versions are refused:
        they hold data, and deleting them goes through :meth:`remove_version`."""
        item, record = self.version(backup_id)
        if record.complete:
            raise CatalogError(f"version {backup_id} is complete; delete it instead of dropping it")
        del item.versions[record.version]
        self._changed()
        return record

    def remove_version(self, backup_id: str) -> CatalogVersion:
        item, record = self.version(backup_id)
        del item.versions[record.version]
        self._changed()
        return record

    # -- re-encoding (bitdust.storage.reencode) ----------------------------------------

    def begin_reencode(self, backup_id: str, ecc: str) -> Reencoding:
        """Start coding a complete version again with ``ecc``, into a fresh generation (one
        above every generation it ever had, so no leftover piece can be mistaken for a new
        one). The version's current pieces stay the ones restores use."""
        _item, record = self.version(backup_id)
        ecc = checked_ecc(ecc)
        if not record.complete:
            raise CatalogError(f"version {backup_id} is not complete; only complete versions are re-encoded")
        if record.reencode is not None:
            raise CatalogError(f"version {backup_id} is already being re-encoded to {record.reencode.ecc}")
        if ecc == record.ecc:
            raise CatalogError(f"version {backup_id} is already coded with {ecc}")
        record.reencode = Reencoding(ecc, max(record.generations()) + 1)
        self._changed()
        return record.reencode

    def reencode_progress(self, backup_id: str, done: int) -> None:
        """Blocks ``0..done-1`` of the re-encoding have every new piece acknowledged."""
        _item, record = self.version(backup_id)
        if record.reencode is None:
            raise CatalogError(f"version {backup_id} is not being re-encoded")
        if not 0 <= _non_negative(done, "blocks done") <= record.blocks:
            raise CatalogError(f"version {backup_id} has {record.blocks} blocks, not {done}")
        record.reencode.done = done
        self._changed()

    def switch_reencoded(self, backup_id: str) -> Retired:
        """Make the finished re-encoding the version's coding, in one change: from the next
        save on, restores, rebuilds and the copy on the suppliers use the new map and its
        pieces; the old generation becomes :class:`Retired` (to be deleted), returned."""
        _item, record = self.version(backup_id)
        pending = record.reencode
        if pending is None:
            raise CatalogError(f"version {backup_id} is not being re-encoded")
        if pending.done < record.blocks:
            raise CatalogError(f"version {backup_id}: only {pending.done} of {record.blocks} blocks are re-encoded")
        old = Retired(record.ecc, record.generation)
        record.retired.append(old)
        record.ecc, record.generation, record.reencode = pending.ecc, pending.generation, None
        record.redundancy = []
        self._changed()
        return old

    def abandon_reencode(self, backup_id: str) -> Retired | None:
        """Give up a re-encoding (the suppliers-number changed again): its pieces become
        retired; the version keeps its current coding."""
        _item, record = self.version(backup_id)
        pending, record.reencode = record.reencode, None
        if pending is None:
            return None
        gone = Retired(pending.ecc, pending.generation)
        record.retired.append(gone)
        self._changed()
        return gone

    def forget_retired(self, backup_id: str, generation: int) -> None:
        """The pieces of a retired generation were deleted from the suppliers."""
        _item, record = self.version(backup_id)
        kept = [r for r in record.retired if r.generation != generation]
        if len(kept) != len(record.retired):
            record.retired = kept
            self._changed()

    # -- persistence ------------------------------------------------------------------

    def export_bytes(self) -> bytes:
        """Canonical bytes of the whole catalog (see :mod:`.codec`): what is saved on disk
        and, encrypted, on the suppliers."""
        from bitdust.storage.catalog.codec import export_bytes

        return export_bytes(self)

    @classmethod
    def import_bytes(cls, data: bytes, max_items: int = MAX_ITEMS) -> Catalog:
        """A new catalog from :meth:`export_bytes` output; CatalogCorruptError if damaged."""
        from bitdust.storage.catalog.codec import import_bytes

        return import_bytes(data, max_items)

    def save(self) -> Deferred[None]:
        """Persist through :attr:`saver` (set by the store that loaded this catalog); fires
        once this state is on disk. Callers whose next step needs it durable wait."""
        if self.saver is None:
            return succeed(None)
        return maybeDeferred(self.saver, self)

    # -- mirroring ----------------------------------------------------------------------

    def _check_mirrorable(self, local: LocalPath, extra: int = 0) -> list[str]:
        parts = local.parts
        if not parts:
            raise CatalogError("the root folder / cannot become a catalog folder; use backup_map_path for it")
        self._check_room(len(parts) + extra)
        self._plan(parts, local.type)
        return parts

    def _plan(self, parts: list[str], last_type: ItemType) -> None:
        """Raise CatalogError if mirroring ``parts`` would meet a file where a folder is
        needed (or the reverse), or need an ID longer than IDs may be; change nothing."""
        parent_id = ""
        next_number = self.next_top
        for depth, name in enumerate(parts):
            want_folder = depth < len(parts) - 1 or last_type.is_folder
            found = self._names.get((parent_id, name))
            if found is None:
                tail = len(parts) - depth - 1  # levels created below this one get number 0
                length = len(parent_id) + 1 + len(str(next_number)) + 2 * tail
                if length > MAX_ID_LENGTH:
                    raise CatalogError(f"path /{'/'.join(parts)} is too deep for the catalog")
                return
            if found.is_folder != want_folder:
                raise CatalogError(_kind_conflict(found, want_folder))
            parent_id, next_number = found.path_id, found.next_child

    def _mirror(self, parts: list[str], last_type: ItemType, size: int) -> tuple[CatalogItem, int]:
        created = 0
        parent: CatalogItem | None = None
        for depth, name in enumerate(parts):
            last = depth == len(parts) - 1
            parent, made = self._child(parent, name, last_type if last else ItemType.PARENT,
                                       "/" + "/".join(parts[: depth + 1]), size if last else 0)
            created += made
        assert parent is not None
        return parent, created

    def _mirror_below(self, root: CatalogItem, rel: tuple[str, ...], kind: ItemType,
                      size: int) -> tuple[CatalogItem, int]:
        """Mirror an entry of a walk; its parent was mirrored before it (walk order)."""
        parent_path = root.local_path + "/" + "/".join(rel[:-1]) if len(rel) > 1 else root.local_path
        parent = root if len(rel) == 1 else self._names.get((root.path_id, rel[0]))
        for name in rel[1:-1]:
            parent = self._names.get((parent.path_id, name)) if parent is not None else None
        if parent is None or not parent.is_folder:
            raise CatalogError(f"folder {parent_path} is not a folder in the catalog")
        return self._child(parent, rel[-1], kind, parent_path + "/" + rel[-1], size)

    def _child(self, parent: CatalogItem | None, name: str, kind: ItemType, local_path: str,
               size: int) -> tuple[CatalogItem, int]:
        """The mirrored child ``name`` of ``parent``, created if missing (1) or not (0)."""
        parent_id = parent.path_id if parent is not None else ""
        found = self._names.get((parent_id, name))
        if found is not None:
            if found.is_folder != kind.is_folder:
                raise CatalogError(_kind_conflict(found, kind.is_folder))
            if kind is ItemType.DIR and found.type is ItemType.PARENT:
                found.type = ItemType.DIR
            if kind is ItemType.FILE or (kind is ItemType.DIR and size):
                found.size = size
            return found, 0
        self._check_room(1)
        number = parent.next_child if parent is not None else self.next_top
        try:
            path_id = make_path_id([*([int(p) for p in parent_id.split("/")] if parent_id else []), number])
        except IdError:
            raise CatalogError(f"path {local_path} is too deep for the catalog") from None
        item = CatalogItem(path_id, kind, name, local_path, size)
        if parent is None:
            self.next_top += 1
        else:
            parent.next_child += 1
        self._attach(item, parent)
        return item, 1


def checked_ecc(name: object) -> str:
    if not isinstance(name, str):
        raise CatalogError(f"ECC map name must be a string, not {type(name).__name__}")
    try:
        return EccMap.from_name(name).name
    except EccError as exc:
        raise CatalogError(str(exc)) from None


def _checked_version(version: object) -> str:
    try:
        return parse_version(version)
    except IdError as exc:
        raise CatalogError(str(exc)) from None


def _non_negative(value: object, what: str) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or value < 0:
        raise CatalogError(f"{what} must be a non-negative integer, got {value!r}")
    return value


def _kind_conflict(found: CatalogItem, want_folder: bool) -> str:
    now = "a folder" if want_folder else "a file"
    was = "a folder" if found.is_folder else "a file"
    return (f"catalog item {found.path_id} for {found.local_path} is {was}, but {found.local_path} "
            f"is now {now}; remove that item from the catalog first")
