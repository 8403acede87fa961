"""The catalog of backed-up items: path IDs, versions, persistence (``service_backup_db``).

:mod:`.model` has the records, :mod:`.tree` the in-memory tree, :mod:`.localpath` the
checks and walks of local paths, :mod:`.codec` the canonical bytes, :mod:`.store` the
file under ``<home>/catalog/``.
"""

from bitdust.storage.catalog.codec import export_bytes, import_bytes
from bitdust.storage.catalog.localpath import LocalPath, TreeScan, check_local_path, scan_tree
from bitdust.storage.catalog.model import (
    CatalogCorruptError,
    CatalogError,
    CatalogItem,
    CatalogVersion,
    ItemType,
    LocalPathError,
    Reencoding,
    Retired,
    VersionState,
)
from bitdust.storage.catalog.store import CatalogStore
from bitdust.storage.catalog.tree import Catalog

__all__ = [
    "Catalog",
    "CatalogCorruptError",
    "CatalogError",
    "CatalogItem",
    "CatalogStore",
    "CatalogVersion",
    "ItemType",
    "LocalPath",
    "LocalPathError",
    "Reencoding",
    "Retired",
    "TreeScan",
    "VersionState",
    "check_local_path",
    "export_bytes",
    "import_bytes",
    "scan_tree",
]
