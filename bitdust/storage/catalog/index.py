"""The catalog's storage: the tree of items and the indexes that find them fast.

:class:`CatalogIndex` keeps three views of one set of items -- by path ID, by local
path, and by (parent, name) for the mirrored folder structure -- and the only code that
links and unlinks items, so the views cannot drift apart. It also answers every query;
the changes live in :class:`bitdust.storage.catalog.tree.Catalog`.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING

from bitdust.storage.catalog.localpath import path_parts
from bitdust.storage.catalog.model import CatalogError, CatalogItem, CatalogVersion
from bitdust.storage.ids import IdError, parse_path_id, split_backup_id

if TYPE_CHECKING:
    from twisted.internet.defer import Deferred

    from bitdust.storage.catalog.tree import Catalog

MAX_ITEMS = 2_000_000
"""Items in one catalog; beyond it adding is refused (the tree lives in memory)."""


class CatalogIndex:
    def __init__(self, max_items: int = MAX_ITEMS) -> None:
        self.max_items = max_items
        self.revision = 0
        self.next_top = 0
        self.saver: Callable[[Catalog], Deferred[None]] | None = None
        self._top: dict[int, CatalogItem] = {}
        self._by_id: dict[str, CatalogItem] = {}
        self._by_local: dict[str, set[str]] = {}
        # (parent path ID or '' for the top level, name) -> mirrored (not bound) item
        self._names: dict[tuple[str, str], CatalogItem] = {}

    # -- queries ----------------------------------------------------------------------

    def __len__(self) -> int:
        return len(self._by_id)

    def get(self, path_id: str) -> CatalogItem | None:
        return self._by_id.get(path_id)

    def item(self, path_id: object) -> CatalogItem:
        try:
            key = parse_path_id(path_id)
        except IdError as exc:
            raise CatalogError(str(exc)) from None
        found = self._by_id.get(key)
        if found is None:
            raise CatalogError(f"item {key} was not found in the catalog")
        return found

    def top_items(self) -> list[CatalogItem]:
        return [self._top[n] for n in sorted(self._top)]

    def items(self) -> Iterator[CatalogItem]:
        """Every item, parents before children, siblings by number (``0/0/1`` before
        ``0/0/1/0`` before ``0/0/2``). Iterative, so deep trees cannot overflow the stack."""
        stack = list(reversed(self.top_items()))
        for _ in range(len(self._by_id)):
            if not stack:
                return
            item = stack.pop()
            yield item
            stack.extend(reversed(item.sorted_children()))

    def find_local(self, local_path: str) -> list[CatalogItem]:
        """Items pointing at ``local_path`` (canonical spelling), in path ID order."""
        ids = self._by_local.get(local_path, set())
        return sorted((self._by_id[i] for i in ids), key=lambda it: [int(p) for p in it.path_id.split("/")])

    def mirrored_item(self, local_path: str) -> CatalogItem | None:
        """The item standing for ``local_path`` in the mirrored folder structure."""
        parent = ""
        found: CatalogItem | None = None
        for name in path_parts(local_path):
            found = self._names.get((parent, name))
            if found is None:
                return None
            parent = found.path_id
        return found

    def version(self, backup_id: object) -> tuple[CatalogItem, CatalogVersion]:
        try:
            path_id, version = split_backup_id(backup_id)
        except IdError as exc:
            raise CatalogError(str(exc)) from None
        item = self.item(path_id)
        found = item.versions.get(version)
        if found is None:
            raise CatalogError(f"version {path_id}/{version} was not found in the catalog")
        return item, found

    def complete_backups(self) -> list[tuple[CatalogItem, CatalogVersion]]:
        """Complete versions of every item, items in tree order, versions oldest first."""
        return [(item, v) for item in self.items() for v in item.sorted_versions(complete_only=True)]

    def shown_size(self, item: CatalogItem) -> int:
        """The size ``backups_list`` shows: a file's bytes; for a folder, what its own
        measure says or what the items below it add up to, whichever is larger (a ``dir``
        is measured as a whole, a ``parent`` only holds what was added below it)."""
        if not item.is_folder:
            return item.size
        below = 0
        stack = list(item.children.values())
        for _ in range(len(self._by_id)):
            if not stack:
                break
            child = stack.pop()
            if child.is_folder:
                stack.extend(child.children.values())
            else:
                below += child.size
        return max(item.size, below)

    # -- linking (also used by the codec to rebuild a tree) ----------------------------

    def _changed(self) -> None:
        self.revision += 1

    def _check_room(self, count: int) -> None:
        if len(self._by_id) + count > self.max_items:
            raise CatalogError(f"the catalog is full ({self.max_items} items); remove some items first")

    def _attach(self, item: CatalogItem, parent: CatalogItem | None) -> None:
        """Link ``item`` into the tree and the indexes (its path ID must be free)."""
        if item.path_id in self._by_id:
            raise CatalogError(f"item {item.path_id} appears twice")
        if parent is None:
            self._top[item.number] = item
        else:
            parent.children[item.number] = item
        self._by_id[item.path_id] = item
        self._by_local.setdefault(item.local_path, set()).add(item.path_id)
        if not item.bound:
            key = (parent.path_id if parent is not None else "", item.name)
            if key in self._names:
                raise CatalogError(f"two items named {item.name!r} in one folder ({item.path_id})")
            self._names[key] = item

    def _detach_indexes(self, item: CatalogItem) -> None:
        self._by_id.pop(item.path_id, None)
        ids = self._by_local.get(item.local_path)
        if ids is not None:
            ids.discard(item.path_id)
            if not ids:
                del self._by_local[item.local_path]
        if not item.bound:
            key = (item.parent_id or "", item.name)
            if self._names.get(key) is item:
                del self._names[key]

