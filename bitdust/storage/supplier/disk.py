"""Blocking file operations on a supplier's ``<home>/customers/`` folder.

Every function here blocks on the disk and is meant to run in the thread pool; none
touches shared state, so calls for different customers can run side by side. Paths are
built only through :func:`bitdust.storage.ids.piece_path` / ``backup_relpath`` from
validated IDs, so a piece ID from a peer never leads outside the customer's folder.

A piece is written with :func:`bitdust.util.fs.atomic_write` (temp file, fsync, rename,
fsync of the folder): a crash leaves either the old piece, the new one, or a hidden
``.<name>.*.tmp`` file that :func:`scan_customers` removes and that is never listed or
served (only names that parse as piece IDs count). Its pages leave the page cache once
it is on disk (``keep_cached=False``): pieces are written once and read back rarely, if
ever, and keeping every piece of every customer in memory would only push out what is
read; and writing the next one reuses those pages, which costs the kernel less than
new ones (``bench/disk.py``).
"""

from __future__ import annotations

import logging
import os
import shutil
import stat
from pathlib import Path

from bitdust.storage.ids import IdError, backup_relpath, parse_piece_id, piece_path
from bitdust.util.fs import atomic_write

log = logging.getLogger(__name__)

TEMP_SUFFIX = ".tmp"


def is_temp_name(name: str) -> bool:
    """Names :func:`atomic_write` gives its temp files (``.<target>.<random>.tmp``)."""
    return name.startswith(".") and name.endswith(TEMP_SUFFIX)


def write_piece(folder: Path, piece_id: str, data: bytes | memoryview, point: str | None = None,
                keep_cached: bool = False) -> int:
    """Store one piece atomically below ``folder``; returns its size. ``point``: crash
    points of the write, ``keep_cached``: whether its pages stay in the page cache
    (:func:`bitdust.util.fs.atomic_write`; True only to compare, in ``bench/disk.py``)."""
    target = piece_path(folder, piece_id)
    atomic_write(target, data, mode=0o600, point=point, keep_cached=keep_cached)
    return len(data)


def read_piece(folder: Path, piece_id: str) -> bytes:
    """FileNotFoundError when it is not there (deleted meanwhile, or never written)."""
    target = piece_path(folder, piece_id)
    fd = os.open(target, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0))
    with os.fdopen(fd, "rb") as handle:
        return handle.read()


def delete_pieces(folder: Path, piece_ids: list[str]) -> None:
    for piece_id in piece_ids:
        target = piece_path(folder, piece_id)
        target.unlink(missing_ok=True)
        _prune_empty(target.parent, folder)


def delete_backups(folder: Path, backup_ids: list[str]) -> None:
    base = folder.resolve()
    for backup_id in backup_ids:
        target = base.joinpath(*backup_relpath(backup_id).parts)
        if not target.is_relative_to(base):
            raise IdError(f"backup ID {backup_id} escapes {base}")
        if target.is_dir() and not target.is_symlink():
            shutil.rmtree(target)
        _prune_empty(target.parent, base)


def delete_folder(folder: Path) -> None:
    """Remove a customer's whole folder (rejected, or it left)."""
    if folder.is_symlink():
        folder.unlink()
    elif folder.exists():
        shutil.rmtree(folder)


def _prune_empty(start: Path, stop: Path) -> None:
    """Remove folders left empty between ``start`` and ``stop`` (exclusive), so deleted
    versions leave no litter of empty path-ID folders behind."""
    stop = stop.resolve()
    current = start
    while current.is_relative_to(stop) and current != stop:
        try:
            current.rmdir()
        except OSError:
            return  # not empty, or already gone
        current = current.parent


def scan_folder(folder: Path) -> dict[str, int]:
    """Piece ID -> size of every piece below ``folder``; removes leftover temp files.

    Symlinks are not followed and anything whose name is not a piece ID is ignored
    (and logged): only what this module wrote counts as held data.
    """
    pieces: dict[str, int] = {}
    if not folder.is_dir():
        return pieces
    for root, _dirs, files in os.walk(folder):
        rel = Path(root).relative_to(folder)
        for name in files:
            path = Path(root) / name
            if is_temp_name(name):
                log.info("removing a half-written piece %s", path)
                path.unlink(missing_ok=True)
                continue
            try:
                info = path.lstat()
                piece_id = str(parse_piece_id("/".join([*rel.parts, name])))
            except FileNotFoundError:
                continue
            except IdError:
                log.warning("ignoring a stray file in a customer folder: %s", path)
                continue
            if stat.S_ISREG(info.st_mode):
                pieces[piece_id] = info.st_size
    return pieces


def scan_customers(root: Path, folder_names: list[str]) -> dict[str, dict[str, int]]:
    """:func:`scan_folder` for each named customer folder below ``root``; other folders
    (no contract for them) are reported, not deleted: a lost contracts file must never
    cost anyone their data."""
    root.mkdir(parents=True, exist_ok=True)
    wanted = set(folder_names)
    for entry in root.iterdir():
        if entry.name not in wanted:
            log.warning("no contract for %s: left on disk, not served", entry)
    return {name: scan_folder(root / name) for name in folder_names}
