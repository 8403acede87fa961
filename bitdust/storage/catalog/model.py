"""The records of the catalog: items (folders and files) and their backup versions.

An item is one node of the catalog tree, named by its path ID (``0/0/1/0/0``: one
number per level). Its type uses the words the API shows in ``backups_list``:

* ``file``   a local file; each version is a backup of it.
* ``dir``    a local folder added for itself (``backup_dir_add``, ``backup_map_path`` or
  ``backup_start_path`` of a folder); each version is a backup of the whole folder.
* ``parent`` a folder that exists in the catalog only to keep the local structure: the
  parent folders of an added path and the folders walked by ``backup_tree_add``. It has
  no versions of its own (adding it as a ``dir`` later turns it into one).

A version records what a restore needs without asking anyone: the ECC map the blocks
were coded with, how many blocks there are, and the per-version data key wrapped with
the owner's public key (``VersionKey.wrapped``). It is ``in progress`` until every piece
of every block is acknowledged by the suppliers, then ``complete``; only complete
versions are shown by the API, so nobody is offered a version that cannot be restored.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum

from bitdust.storage.ids import storage_id, version_key


class CatalogError(ValueError):
    """A catalog operation cannot be done; the message is meant for the user."""


class CatalogCorruptError(CatalogError):
    """The saved catalog cannot be read back (bad JSON, bad format, broken tree)."""


class LocalPathError(CatalogError):
    """A local path given by the user cannot be added (missing, wrong kind, unreadable...)."""


class ItemType(StrEnum):
    FILE = "file"
    DIR = "dir"
    PARENT = "parent"

    @property
    def is_folder(self) -> bool:
        return self is not ItemType.FILE


class VersionState(StrEnum):
    IN_PROGRESS = "in progress"
    COMPLETE = "complete"


@dataclass
class Reencoding:
    """A re-encoding of a complete version to another ECC map, under way.

    Its pieces go to generation ``generation`` (:func:`bitdust.storage.ids.storage_id`);
    ``done`` blocks (0..done-1) have every new piece acknowledged, so a restarted daemon
    goes on from there. The version's own ``ecc`` and ``generation`` keep naming the pieces
    a restore uses until :meth:`bitdust.storage.catalog.tree.Catalog.switch_reencoded`."""

    ecc: str
    generation: int
    done: int = 0


@dataclass(frozen=True)
class Retired:
    """A generation whose pieces are no longer used (replaced or abandoned) and still
    have to be deleted from the suppliers (positions ``0..N-1`` of ``ecc``)."""

    ecc: str
    generation: int


@dataclass
class CatalogVersion:
    """One backup of an item. ``size`` is what the suppliers store for it (all pieces,
    which is what the original BitDust showed as a version's size), ``source_size``
    the bytes read from the local path."""

    version: str
    ecc: str
    wrapped_key: bytes = field(repr=False)
    state: VersionState = VersionState.IN_PROGRESS
    blocks: int = 0
    size: int = 0
    source_size: int = 0
    # Pieces present per block (index = block number): how many of the block's 2N pieces
    # the suppliers listed at their own positions (2N = whole, < N = not restorable now),
    # counted by backup_rebuilder (bitdust.storage.rebuild.plan); empty until counted.
    redundancy: list[int] = field(default_factory=list)
    # Which coding of the blocks is current: 0 for the backup job's own pieces, one more at
    # every re-encoding (a new suppliers-number); see bitdust.storage.ids.REENCODED_PATH_ID.
    generation: int = 0
    reencode: Reencoding | None = None
    retired: list[Retired] = field(default_factory=list)

    @property
    def complete(self) -> bool:
        return self.state is VersionState.COMPLETE

    def storage_id(self, path_id: str, generation: int | None = None) -> str:
        """Where the pieces of ``generation`` (default: the current one) are kept."""
        return storage_id(f"{path_id}/{self.version}", self.generation if generation is None else generation)

    def storage_ids(self, path_id: str) -> list[str]:
        """Every place its pieces may be: the backup ID, then each other generation --
        what deleting the version must delete."""
        return [storage_id(f"{path_id}/{self.version}", g) for g in sorted(self.generations() | {0})]

    def generations(self) -> set[int]:
        """Every generation that may have pieces on suppliers: current, under way, retired."""
        found = {self.generation} | {r.generation for r in self.retired}
        if self.reencode is not None:
            found.add(self.reencode.generation)
        return found


@dataclass(eq=False)
class CatalogItem:
    """One node of the tree. ``bound`` items were created by ``backup_map_path`` (or
    ``backup_start_path`` with ``bind_local_path``): a single top-level number pointing
    at any local path, outside the mirrored folder structure, and without children."""

    path_id: str
    type: ItemType
    name: str
    local_path: str
    size: int = 0
    bound: bool = False
    # The number the next child gets. Numbers are never reused within a folder: pieces of
    # a deleted item may linger on a supplier that was offline when the deletion was
    # sent, and they must never be taken for pieces of a newer item.
    next_child: int = 0
    versions: dict[str, CatalogVersion] = field(default_factory=dict)
    children: dict[int, CatalogItem] = field(default_factory=dict, repr=False)

    @property
    def number(self) -> int:
        return int(self.path_id.rpartition("/")[2])

    @property
    def parent_id(self) -> str | None:
        head, sep, _ = self.path_id.rpartition("/")
        return head if sep else None

    @property
    def is_folder(self) -> bool:
        return self.type.is_folder

    def sorted_versions(self, complete_only: bool = False) -> list[CatalogVersion]:
        """Oldest first, by time then suffix (version names do not sort as text)."""
        chosen = [v for v in self.versions.values() if v.complete or not complete_only]
        return sorted(chosen, key=lambda v: version_key(v.version))

    def sorted_children(self) -> list[CatalogItem]:
        return [self.children[n] for n in sorted(self.children)]
