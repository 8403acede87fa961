"""Keeping the catalog on disk: ``<home>/catalog/catalog.json``, written atomically.

A save is temp file + fsync + rename (:func:`bitdust.util.fs.atomic_write`), so a crash
leaves the previous catalog or the new one, never a mix (a temp file a crash left is
removed at the next load). The file is private (0600): it
lists the owner's local paths and the wrapped keys of every version.

A catalog that cannot be read is never replaced silently: :meth:`CatalogStore.load`
moves it aside to ``catalog.json.corrupt-<UTC time>`` and raises CatalogCorruptError
naming both files, so the service fails to start with that message. Starting again
begins with an empty catalog (the bad file stays where it was moved, and the start logs
a warning while such files exist) -- the copy kept on the suppliers is the way back.
"""

from __future__ import annotations

import logging
import os
from datetime import UTC, datetime
from pathlib import Path
from typing import NoReturn

from bitdust.storage.catalog.codec import export_bytes, import_bytes
from bitdust.storage.catalog.model import CatalogCorruptError
from bitdust.storage.catalog.tree import MAX_ITEMS, Catalog
from bitdust.util.fs import atomic_write, remove_temp_files

log = logging.getLogger(__name__)

FILE_NAME = "catalog.json"
FILE_MODE = 0o600
MAX_FILE_SIZE = 2 << 30
"""Refuse to read a catalog file bigger than this (2 GB) instead of exhausting memory."""


class CatalogStore:
    def __init__(self, folder: str | os.PathLike[str], max_items: int = MAX_ITEMS) -> None:
        self.folder = Path(folder)
        self.max_items = max_items
        self.saved_revision: int | None = None

    @property
    def path(self) -> Path:
        return self.folder / FILE_NAME

    def corrupt_files(self) -> list[Path]:
        """Catalogs moved aside by earlier loads, oldest first."""
        if not self.folder.is_dir():
            return []
        return sorted(self.folder.glob(FILE_NAME + ".corrupt-*"))

    def load(self) -> Catalog:
        """The saved catalog (an empty one if none was saved yet), bound to this store
        so that ``catalog.save()`` writes here."""
        catalog = self._read()
        catalog.saver = self.save
        self.saved_revision = catalog.revision
        return catalog

    def save(self, catalog: Catalog) -> None:
        data = export_bytes(catalog)
        atomic_write(self.path, data, FILE_MODE, point="catalog")  # crash tests: catalog.*
        self.saved_revision = catalog.revision

    def save_if_changed(self, catalog: Catalog) -> bool:
        if self.saved_revision == catalog.revision and self.path.exists():
            return False
        self.save(catalog)
        return True

    def _read(self) -> Catalog:
        for leftover in remove_temp_files(self.path):  # a save cut short by a crash: never renamed, never used
            log.info("removed %s, a catalog save that a crash cut short", leftover)
        try:
            size = self.path.stat().st_size
        except FileNotFoundError:
            leftovers = self.corrupt_files()
            if leftovers:
                log.warning("no catalog in %s; starting with an empty one. Catalogs that could not be "
                            "read were kept as: %s", self.folder, ", ".join(str(p) for p in leftovers))
            return Catalog(self.max_items)
        if size > MAX_FILE_SIZE:
            self._refuse(f"it is {size} bytes, more than a catalog can be")
        try:
            data = self.path.read_bytes()
        except OSError as exc:  # unreadable is not corrupt: leave the file where it is
            raise CatalogCorruptError(f"catalog {self.path} cannot be read: {exc.strerror or exc}") from None
        try:
            return import_bytes(data, self.max_items)
        except CatalogCorruptError as exc:
            self._refuse(str(exc))

    def _refuse(self, reason: str) -> NoReturn:
        stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S.%fZ")
        aside = self.path.with_name(f"{FILE_NAME}.corrupt-{stamp}")
        os.replace(self.path, aside)
        message = (f"catalog {self.path} could not be loaded ({reason}); it was moved to {aside}. "
                   "Start again to begin with an empty catalog, or put a good copy back in its place")
        log.error("%s", message)
        raise CatalogCorruptError(message)
