"""Keeping the catalog on disk: ``<home>/catalog/catalog.json``, written atomically.

A save is temp file + fsync + rename (:func:`bitdust.util.fs.atomic_write`), so a crash
leaves the previous catalog or the new one, never a mix (a temp file a crash left is
removed at the next load). The file is private (0600): it
lists the owner's local paths and the wrapped keys of every version.

A store given a reactor saves the catalog it loaded (or was given with :meth:`bind`)
through a :class:`~bitdust.util.writer.CoalescingWriter`: the snapshot is taken on the
reactor, the write and its fsyncs run in the thread pool, one at a time. Under load a
catalog fsync on the reactor stalled every API call of the node for up to 42 ms.

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
from typing import Any, NoReturn

from twisted.internet.defer import Deferred, maybeDeferred, succeed

from bitdust.storage.catalog.codec import export_bytes, import_bytes
from bitdust.storage.catalog.model import CatalogCorruptError
from bitdust.storage.catalog.tree import MAX_ITEMS, Catalog
from bitdust.util.fs import atomic_write, remove_temp_files
from bitdust.util.writer import CoalescingWriter

log = logging.getLogger(__name__)

FILE_NAME = "catalog.json"
FILE_MODE = 0o600
MAX_FILE_SIZE = 2 << 30
"""Refuse to read a catalog file bigger than this (2 GB) instead of exhausting memory."""


class CatalogStore:
    def __init__(self, folder: str | os.PathLike[str], max_items: int = MAX_ITEMS, reactor: Any = None) -> None:
        self.folder = Path(folder)
        self.max_items = max_items
        self.saved_revision: int | None = None
        self._bound: Catalog | None = None
        self._writer = None if reactor is None else CoalescingWriter(
            reactor, self.path, self._snapshot, FILE_MODE, point="catalog")  # crash tests: catalog.*

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
        self.bind(catalog)
        self.saved_revision = catalog.revision
        return catalog

    def bind(self, catalog: Catalog) -> None:
        """Make ``catalog`` the one this store saves: ``catalog.save()`` writes here, and a
        save still running for the catalog bound before lands first."""
        if self._bound is not None and self._bound is not catalog:
            self._bound.saver = None
        self._bound = catalog
        catalog.saver = self._save_bound

    def save(self, catalog: Catalog) -> None:
        """Write ``catalog`` now, on the calling thread (a store without a reactor; the
        bound catalog of a store with one is saved by :meth:`Catalog.save`)."""
        data = export_bytes(catalog)
        atomic_write(self.path, data, FILE_MODE, point="catalog")  # crash tests: catalog.*
        self.saved_revision = catalog.revision

    def save_if_changed(self, catalog: Catalog) -> Deferred[bool]:
        if self.saved_revision == catalog.revision and self.path.exists():
            return succeed(False)
        saving = catalog.save() if catalog.saver is not None else maybeDeferred(self.save, catalog)
        return saving.addCallback(lambda _: True)

    def _save_bound(self, catalog: Catalog) -> Deferred[None]:
        if self._writer is None:
            return maybeDeferred(self.save, catalog)
        revision = catalog.revision
        return self._writer.save().addCallback(self._saved, revision)

    def _saved(self, _: None, revision: int) -> None:
        self.saved_revision = max(self.saved_revision or 0, revision)

    def _snapshot(self) -> bytes:
        if self._bound is None:
            raise CatalogCorruptError("no catalog is bound to this store")
        return export_bytes(self._bound)

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
