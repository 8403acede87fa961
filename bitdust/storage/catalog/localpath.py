"""Checking the local paths a user gives, and walking folders for ``backup_tree_add``.

Everything here touches the disk and may take long (a tree walk of a big folder), so
the API runs it in a worker thread and hands the result to the catalog on the reactor
thread; nothing here touches a :class:`~bitdust.storage.catalog.tree.Catalog`.

Path rules (written down because every backup tool decides them differently):

* Paths must be absolute. The API is called by a CLI or GUI whose current folder the
  daemon does not know, so resolving a relative path against the daemon's own folder
  would silently pick the wrong files. ``~`` is not expanded for the same reason.
* The spelling is made canonical lexically (``//`` and ``.`` dropped, no trailing ``/``)
  but symlinks are kept as given: the catalog remembers the name the user knows, and a
  restore goes back to it. ``..`` is refused rather than collapsed, because collapsing
  it is wrong when the component before it is a symlink.
* Names must be valid UTF-8: the catalog travels as JSON through the API and to the
  suppliers. ``backup_tree_add`` skips (and counts) entries whose names are not; a folder
  holding such names can still be backed up as a whole with ``backup_dir_add``.
"""

from __future__ import annotations

import os
import stat
from dataclasses import dataclass, field

from bitdust.storage.catalog.model import ItemType, LocalPathError

MAX_PATH_LENGTH = 4096
MAX_TREE_ENTRIES = 1_000_000
"""A ``backup_tree_add`` that would add more entries is refused as a whole: the catalog
lives in memory and is saved in one piece, so a runaway walk (``/``) must not fill it."""

SKIPPED_EXAMPLES = 10


@dataclass(frozen=True)
class LocalPath:
    """A checked local path: canonical, absolute, existing, readable, of a known kind."""

    path: str
    type: ItemType  # FILE or DIR
    size: int

    @property
    def parts(self) -> list[str]:
        return path_parts(self.path)


def path_parts(path: str) -> list[str]:
    """``'/home/u/a.txt'`` -> ``['home', 'u', 'a.txt']`` (the root itself has no parts)."""
    return [p for p in path.split("/") if p]


def normalize_local_path(value: object) -> str:
    if not isinstance(value, str):
        raise LocalPathError(f"local path must be a string, not {type(value).__name__}")
    if not value:
        raise LocalPathError("local path is empty")
    if "\x00" in value:
        raise LocalPathError(f"local path {value!r} contains a NUL byte")
    if len(value) > MAX_PATH_LENGTH:
        raise LocalPathError(f"local path is longer than {MAX_PATH_LENGTH} characters")
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise LocalPathError(f"local path {value!r} is not valid UTF-8") from None
    if not value.startswith("/"):
        raise LocalPathError(
            f"local path {value!r} is not absolute: give the full path, starting with / "
            "(the daemon does not know the caller's current folder)")
    parts = [p for p in value.split("/") if p not in ("", ".")]
    if ".." in parts:
        raise LocalPathError(f"local path {value!r} contains '..': give the path without it")
    return "/" + "/".join(parts)


def check_local_path(value: object, want: ItemType | None = None) -> LocalPath:
    """The path as a :class:`LocalPath`, or LocalPathError saying what is wrong with it.

    ``want`` is FILE or DIR to insist on a kind; None accepts both. A symlink counts as
    what it points to (the backup reads through it).
    """
    path = normalize_local_path(value)
    try:
        st = os.stat(path)
    except (FileNotFoundError, NotADirectoryError):
        raise LocalPathError(f"path {path} does not exist") from None
    except PermissionError:
        raise LocalPathError(f"path {path} cannot be reached: permission denied") from None
    except OSError as exc:
        raise LocalPathError(f"path {path} cannot be read: {exc.strerror or exc}") from None
    if stat.S_ISDIR(st.st_mode):
        kind = ItemType.DIR
    elif stat.S_ISREG(st.st_mode):
        kind = ItemType.FILE
    else:
        raise LocalPathError(f"path {path} is not a regular file or a folder")
    if want is ItemType.FILE and kind is ItemType.DIR:
        raise LocalPathError(f"path {path} is a folder, not a file")
    if want is ItemType.DIR and kind is ItemType.FILE:
        raise LocalPathError(f"path {path} is a file, not a folder")
    access = os.R_OK if kind is ItemType.FILE else os.R_OK | os.X_OK
    if not os.access(path, access):
        raise LocalPathError(f"path {path} cannot be read: permission denied")
    return LocalPath(path, kind, st.st_size if kind is ItemType.FILE else 0)


@dataclass(frozen=True)
class ScanEntry:
    """One entry below the walked root: ``parts`` relative to it, PARENT or FILE."""

    parts: tuple[str, ...]
    type: ItemType
    size: int


@dataclass
class TreeScan:
    """What a walk found. Folders come before their contents, siblings sorted by name,
    so the catalog numbers a tree the same way each time."""

    root: LocalPath
    entries: list[ScanEntry] = field(default_factory=list)
    skipped: int = 0
    skipped_examples: list[str] = field(default_factory=list)

    @property
    def total_size(self) -> int:
        return sum(e.size for e in self.entries)

    def skip(self, path: str, why: str) -> None:
        self.skipped += 1
        if len(self.skipped_examples) < SKIPPED_EXAMPLES:
            self.skipped_examples.append(f"{path} ({why})")


def scan_tree(root: LocalPath, limit: int = MAX_TREE_ENTRIES) -> TreeScan:
    """Walk ``root`` (a DIR). Unreadable files and folders, special files, symlinks to
    folders (never followed: they can loop) and names that are not UTF-8 are skipped
    and counted. More than ``limit`` entries raises LocalPathError and adds nothing."""
    if root.type is not ItemType.DIR:
        raise LocalPathError(f"path {root.path} is a file, not a folder")
    scan = TreeScan(root)
    stack: list[tuple[str, tuple[str, ...]]] = [(root.path, ())]
    seen = 0
    while stack:  # bounded: every pushed folder was counted in ``seen``, which is capped
        folder, rel = stack.pop()
        try:
            with os.scandir(folder) as listing:
                children = sorted(listing, key=lambda e: e.name)
        except OSError as exc:
            if not rel:
                raise LocalPathError(f"folder {folder} cannot be read: {exc.strerror or exc}") from None
            scan.skip(folder, exc.strerror or "cannot be read")
            continue
        if rel:
            scan.entries.append(ScanEntry(rel, ItemType.PARENT, 0))
        seen += len(children)
        if seen > limit:
            raise LocalPathError(
                f"folder {root.path} holds more than {limit} files and folders; "
                "add smaller folders, or back it up as a whole with backup_dir_add")
        subfolders: list[tuple[str, tuple[str, ...]]] = []
        for entry in children:
            _classify(scan, entry, rel, subfolders)
        stack.extend(reversed(subfolders))
    return scan


def _classify(scan: TreeScan, entry: os.DirEntry[str], rel: tuple[str, ...],
              subfolders: list[tuple[str, tuple[str, ...]]]) -> None:
    path = entry.path
    try:
        entry.name.encode("utf-8")
    except UnicodeEncodeError:
        scan.skip(path.encode("utf-8", "surrogateescape").decode("utf-8", "replace"), "name is not UTF-8")
        return
    try:
        if entry.is_dir(follow_symlinks=False):
            subfolders.append((path, (*rel, entry.name)))
            return
        if entry.is_symlink() and entry.is_dir():
            scan.skip(path, "symlink to a folder")
            return
        if not entry.is_file():
            scan.skip(path, "not a regular file")
            return
        size = entry.stat().st_size
    except OSError as exc:
        scan.skip(path, exc.strerror or "cannot be read")
        return
    if not os.access(path, os.R_OK):
        scan.skip(path, "permission denied")
        return
    scan.entries.append(ScanEntry((*rel, entry.name), ItemType.FILE, size))


def measure_folder(path: str, limit: int = MAX_TREE_ENTRIES) -> int:
    """Bytes of the files below ``path``, for the size ``backups_list`` shows of a
    ``dir`` item. Only a display figure: stops counting after ``limit`` entries."""
    total = 0
    stack = [path]
    seen = 0
    while stack and seen <= limit:
        folder = stack.pop()
        try:
            with os.scandir(folder) as listing:
                for entry in listing:
                    seen += 1
                    if entry.is_dir(follow_symlinks=False):
                        stack.append(entry.path)
                    elif entry.is_file(follow_symlinks=False):
                        total += entry.stat(follow_symlinks=False).st_size
        except OSError:
            continue  # unreadable parts are simply not counted
    return total
