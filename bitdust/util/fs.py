"""Crash-safe file helpers.

Everything that must survive a crash (config values, catalog, keys, stored pieces,
quotas) goes through :func:`atomic_write`: a reader sees either the old content or the
new one, never a half-written file.
"""

from __future__ import annotations

import glob
import logging
import os
import tempfile
from pathlib import Path
from typing import BinaryIO

from bitdust.util.crashpoint import crashpoint

log = logging.getLogger(__name__)


def atomic_write(path: str | os.PathLike[str], data: bytes | memoryview, mode: int = 0o644,
                 point: str | None = None, keep_cached: bool = True) -> None:
    """Write ``data`` to ``path`` via temp file + fsync + rename, with ``mode`` bits.

    ``point`` names this write's crash points for the crash tests
    (:mod:`bitdust.util.crashpoint`): ``<point>.mid_temp_write``, ``<point>.after_temp_write``
    and ``<point>.after_rename``.

    ``keep_cached=False`` is for bulk data written once and seldom read back (a supplier's
    pieces): once the bytes are on disk their page-cache pages are let go. Keeping them
    only pushes out what the machine does read; and the next file written then reuses
    pages just freed, instead of fresh ones the kernel must find and, in a VM, the host
    must back: writing a 1 MB piece took 1.5-2.7 ms of system CPU here, 0.8-1.1 with the
    pages let go (``bench/disk.py``, five runs; how much depends on the machine's memory).
    """
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    try:
        os.fchmod(fd, mode)
        with os.fdopen(fd, "wb") as tmp:
            if point:
                crashpoint(f"{point}.mid_temp_write", lambda: _write_half(tmp, data))
            tmp.write(data)
            tmp.flush()
            os.fsync(tmp.fileno())
            if not keep_cached:
                drop_cached_pages(tmp.fileno())
        if point:
            crashpoint(f"{point}.after_temp_write")
        os.replace(tmp_name, target)
    except BaseException:
        Path(tmp_name).unlink(missing_ok=True)
        raise
    fsync_dir(target.parent)
    if point:
        crashpoint(f"{point}.after_rename")


def remove_temp_files(path: str | os.PathLike[str]) -> list[Path]:
    """Remove the temp files :func:`atomic_write` left next to ``path`` when the process
    died before its rename (they are never read; without this, every crash there leaves
    one more copy behind). Only for a file a single process writes, before it writes it."""
    target = Path(path)
    if not target.parent.is_dir():
        return []
    found = [p for p in target.parent.glob(f".{glob.escape(target.name)}.*.tmp") if p.is_file()]
    for leftover in found:
        leftover.unlink(missing_ok=True)
    return found


def _write_half(handle: BinaryIO, data: bytes | memoryview) -> None:
    """What a write cut off by a crash leaves: the first half of ``data``, on disk."""
    handle.write(data[: len(data) // 2])
    handle.flush()


def atomic_write_text(path: str | os.PathLike[str], text: str, mode: int = 0o644) -> None:
    atomic_write(path, text.encode("utf-8"), mode)


def drop_cached_pages(fd: int) -> None:
    """Let the kernel forget the (clean, synced) cached pages of ``fd``'s file; a no-op
    where ``posix_fadvise`` does not exist (macOS). Advice only: a file system that
    refuses it is logged, and the write it follows stands."""
    advise = getattr(os, "posix_fadvise", None)
    if advise is None:
        return
    try:
        advise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
    except OSError as exc:
        log.debug("page cache advice refused: %s", exc)


def fsync_dir(folder: str | os.PathLike[str]) -> None:
    """Make a rename inside ``folder`` durable (POSIX needs the directory synced too)."""
    dir_fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)


def folder_size(folder: str | os.PathLike[str]) -> int:
    """Total bytes of regular files below ``folder`` (0 if it does not exist)."""
    total = 0
    for root, _dirs, files in os.walk(folder):
        for name in files:
            try:
                st = os.lstat(os.path.join(root, name))
            except FileNotFoundError:
                continue  # removed while we walked: it no longer takes space
            total += st.st_size
    return total
