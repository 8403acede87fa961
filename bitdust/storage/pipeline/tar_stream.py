"""Reading a file or a folder as a lazy stream of tar bytes.

``tarfile`` in ``'w|'`` mode pushes whole files into a writer (``addfile`` copies a file
in one call), which would force a thread to turn it into the pull-style iterator the
pipeline wants. Instead each member's header comes from ``TarInfo.tobuf`` (the very bytes
``'w|'`` writes, PAX format, UTF-8 names) and its contents are read in chunks here, so
the archive is produced lazily with one chunk in memory. Members are sorted so two
backups of an unchanged tree are identical.

Stored: regular files, folders (also empty ones), symlinks (as links, never followed),
with mode and mtime. Skipped and listed in :attr:`TarReader.skipped`: sockets, FIFOs and
devices, which are not data. The source itself is followed if it is a symlink, and
members are named below its basename (``Docs``, ``Docs/a.txt``).

Extraction is in :mod:`.tar_extract`.
"""

from __future__ import annotations

import os
import stat
import tarfile
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO, Protocol

from bitdust.storage.pipeline.tar_extract import TarExtractor, TarFormatError

__all__ = ["CHUNK_SIZE", "TarExtractor", "TarFormatError", "TarReader", "Writer", "write_tar"]

CHUNK_SIZE = 1 << 20
BLOCKSIZE = tarfile.BLOCKSIZE
ENCODING = "utf-8"
ERRORS = "surrogateescape"  # names that are not UTF-8 survive byte for byte


class Writer(Protocol):
    def write(self, data: bytes, /) -> object: ...


class TarReader:
    """Iterate over the tar archive of ``source`` in chunks of at most ``chunk_size``.

    ``bytes_read`` counts file contents read so far (for progress), ``changed`` lists
    members whose size changed while they were read (GNU tar's behaviour is kept: the
    archive holds the size seen first, cut or zero-padded), ``skipped`` lists special
    files left out.
    """

    def __init__(self, source: str | os.PathLike[str], chunk_size: int = CHUNK_SIZE) -> None:
        self.source = Path(source)
        self.chunk_size = chunk_size
        self.bytes_read = 0
        self.changed: list[str] = []
        self.skipped: list[str] = []

    def total_size(self) -> int:
        """Bytes of file contents below the source (a progress denominator, not exact)."""
        st = os.stat(self.source)
        if not stat.S_ISDIR(st.st_mode):
            return st.st_size
        total = 0
        for root, _dirs, files in os.walk(self.source):
            for name in files:
                try:
                    entry = os.lstat(os.path.join(root, name))
                except FileNotFoundError:
                    continue  # vanished while counting: it will not be read either
                if stat.S_ISREG(entry.st_mode):
                    total += entry.st_size
        return total

    def __iter__(self) -> Iterator[bytes]:
        st = os.stat(self.source)  # follows a symlinked source on purpose
        yield from self._member(self.source, self.source.name or "root", st)
        yield bytes(2 * BLOCKSIZE)  # end-of-archive marker

    def _member(self, path: Path, arcname: str, st: os.stat_result) -> Iterator[bytes]:
        info = tarfile.TarInfo(arcname)
        info.mode = stat.S_IMODE(st.st_mode)
        info.mtime = st.st_mtime
        info.uid, info.gid = st.st_uid, st.st_gid
        if stat.S_ISDIR(st.st_mode):
            info.type = tarfile.DIRTYPE
            yield info.tobuf(tarfile.PAX_FORMAT, ENCODING, ERRORS)
            with os.scandir(path) as entries:
                names = sorted(entry.name for entry in entries)
            for name in names:
                child = path / name
                try:
                    child_st = os.lstat(child)
                except FileNotFoundError:
                    continue  # deleted since the listing: nothing to keep
                yield from self._member(child, f"{arcname}/{name}", child_st)
        elif stat.S_ISLNK(st.st_mode):
            info.type = tarfile.SYMTYPE
            info.linkname = os.readlink(path)
            yield info.tobuf(tarfile.PAX_FORMAT, ENCODING, ERRORS)
        elif stat.S_ISREG(st.st_mode):
            info.type = tarfile.REGTYPE
            info.size = st.st_size
            yield info.tobuf(tarfile.PAX_FORMAT, ENCODING, ERRORS)
            with open(path, "rb") as handle:
                yield from self._contents(handle, arcname, st.st_size)
        else:
            self.skipped.append(arcname)

    def _contents(self, handle: BinaryIO, arcname: str, size: int) -> Iterator[bytes]:
        left = size
        while left > 0:
            chunk = handle.read(min(self.chunk_size, left))
            if not chunk:
                self.changed.append(arcname)  # shrank: pad so the header stays true
                chunk = bytes(min(self.chunk_size, left))
            else:
                self.bytes_read += len(chunk)
            left -= len(chunk)
            yield chunk
        if handle.read(1):
            self.changed.append(arcname)  # grew: the archive keeps the first size
        if size % BLOCKSIZE:
            yield bytes(BLOCKSIZE - size % BLOCKSIZE)


def write_tar(source: str | os.PathLike[str], writer: Writer, chunk_size: int = CHUNK_SIZE) -> TarReader:
    """Push the archive of ``source`` into ``writer`` (a file, a socket wrapper...)."""
    reader = TarReader(source, chunk_size)
    for chunk in reader:
        writer.write(chunk)
    return reader
