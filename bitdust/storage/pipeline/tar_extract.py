"""Safe, push-driven extraction of a tar stream into a folder.

Restore receives the archive block by block from the network, so the extractor is fed
(:meth:`TarExtractor.feed`) instead of reading from a file: ``tarfile``'s pull-style
reader would need a thread in between. Headers are still parsed by ``tarfile`` itself
(``TarInfo.frombuf`` / ``TarInfo.fromtarfile`` on a buffered header group, so PAX and GNU
long names work) and file contents are streamed straight to disk.

Safety (the ``'data'`` filter's checks, stricter on names): absolute names, ``..``
components, links pointing outside the destination or absolute, hard links, devices,
FIFOs and sparse files are refused with :class:`TarFormatError`.

All or nothing: files and symlinks are written under temporary names next to their
targets and renamed into place only by :meth:`TarExtractor.close`, after the archive's
end marker (so after the last authenticated block). A failed or aborted restore never
replaces a user's file with a partial one; :meth:`TarExtractor.abort` removes the
temporaries and the folders it created. A crash leaves no time for ``abort``: with a
*journal* file, every temporary and folder is named there before it is made, and
:func:`clean_up_journals` (run when the restores service starts) removes what a restore
cut short by a crash left behind -- without it, each crash would leave up to a whole
file's bytes hidden in the user's folder for good.

Modes: permission bits are restored as stored (``rwx`` for user, group and others);
setuid, setgid and sticky bits are dropped, ownership is not restored. Folder modes and
mtimes are applied last, deepest first, since writing into a folder changes its mtime.
"""

from __future__ import annotations

import contextlib
import io
import os
import secrets
import stat
import tarfile
from pathlib import Path, PurePosixPath
from typing import BinaryIO, cast

from bitdust.util.crashpoint import crashpoint
from bitdust.util.fs import fsync_dir

BLOCKSIZE = tarfile.BLOCKSIZE
ENCODING = "utf-8"
ERRORS = "surrogateescape"
MAX_HEADER_GROUP = 1 << 20  # PAX / long-name headers before a member; bounds memory
_ZERO_BLOCK = bytes(BLOCKSIZE)
_EXTENDED = frozenset(  # header blocks that describe the next member rather than being one
    {
        tarfile.XHDTYPE,
        tarfile.XGLTYPE,
        tarfile.SOLARIS_XHDTYPE,
        tarfile.GNUTYPE_LONGNAME,
        tarfile.GNUTYPE_LONGLINK,
    }
)
_HEADER, _DATA, _PAD, _END = "header", "data", "pad", "end"
TEMP_PREFIX, TEMP_SUFFIX = ".bitdust-", ".part"
JOURNAL_SUFFIX = ".journal"
_FILE, _FOLDER = b"f", b"d"  # journal records: kind byte, absolute path, NUL


class TarFormatError(ValueError):
    """The archive is malformed, truncated, or holds a member that may not be extracted."""


class _HeaderSource:
    """The few attributes ``TarInfo.fromtarfile`` reads from a TarFile, over a buffer."""

    def __init__(self, data: bytes, pax_headers: dict[str, str]) -> None:
        self.fileobj = io.BytesIO(data)
        self.encoding = ENCODING
        self.errors = ERRORS
        self.pax_headers = pax_headers
        self.offset = 0


def _round_up(size: int) -> int:
    return -(-size // BLOCKSIZE) * BLOCKSIZE


class TarExtractor:
    """Feed tar bytes in any chunking; :meth:`close` commits, :meth:`abort` rolls back."""

    def __init__(self, dest: str | os.PathLike[str], journal: str | os.PathLike[str] | None = None) -> None:
        self.dest = Path(dest).absolute()
        self._journal_path = Path(journal) if journal is not None else None
        self._journal: BinaryIO | None = None
        self.members: list[str] = []
        self.bytes_written = 0
        self._state = _HEADER
        self._hdr = bytearray()
        self._pax_headers: dict[str, str] = {}
        self._left = 0
        self._pad = 0
        self._out: BinaryIO | None = None
        self._current: tuple[Path, Path, tarfile.TarInfo] | None = None
        self._pending: dict[Path, Path] = {}  # final path -> temporary path
        self._dirs: dict[Path, tarfile.TarInfo] = {}
        self._created: list[Path] = []
        self._closed = False
        try:
            self._makedirs(self.dest)
        except BaseException:
            self.abort()  # the folders made before the failure go, and the journal with them
            raise

    # --- feeding -------------------------------------------------------------

    def feed(self, data: bytes | memoryview) -> None:
        if self._closed:
            raise TarFormatError("extractor is already closed")
        view = memoryview(data)
        pos = 0
        while pos < len(view):
            if self._state == _DATA:
                take = min(self._left, len(view) - pos)
                assert self._out is not None
                self._out.write(view[pos : pos + take])
                self.bytes_written += take
                self._left -= take
                pos += take
                if self._left == 0:
                    self._finish_file()
                else:
                    crashpoint("restore.mid_file", self._out.flush)
            elif self._state == _PAD:
                take = min(self._pad, len(view) - pos)
                self._pad -= take
                pos += take
                if self._pad == 0:
                    self._state = _HEADER
            elif self._state == _HEADER:
                need, complete = self._scan_header()
                take = min(need - len(self._hdr), len(view) - pos)
                self._hdr += view[pos : pos + take]
                pos += take
                if len(self._hdr) == need and complete:
                    self._start_member(bytes(self._hdr))
                    self._hdr.clear()
            else:  # after the end marker only zero padding may follow
                if any(view[pos:]):
                    raise TarFormatError("data after the end-of-archive marker")
                pos = len(view)

    def _scan_header(self) -> tuple[int, bool]:
        """(bytes the current header group needs, whether that size is final)."""
        pos = 0
        while True:
            if len(self._hdr) < pos + BLOCKSIZE:
                return pos + BLOCKSIZE, False
            block = bytes(self._hdr[pos : pos + BLOCKSIZE])
            if pos == 0 and block == _ZERO_BLOCK:
                return BLOCKSIZE, True
            try:
                info = tarfile.TarInfo.frombuf(block, ENCODING, ERRORS)
            except tarfile.HeaderError as exc:
                raise TarFormatError(f"bad tar header: {exc}") from exc
            if info.type not in _EXTENDED:
                return pos + BLOCKSIZE, True
            pos += BLOCKSIZE + _round_up(info.size)
            if pos > MAX_HEADER_GROUP:
                raise TarFormatError(f"extended tar headers longer than {MAX_HEADER_GROUP} bytes")

    def _start_member(self, group: bytes) -> None:
        if group == _ZERO_BLOCK:
            self._state = _END
            return
        try:
            source = _HeaderSource(group, self._pax_headers)
            member = tarfile.TarInfo.fromtarfile(cast(tarfile.TarFile, source))
        except (tarfile.TarError, ValueError, UnicodeError) as exc:
            raise TarFormatError(f"bad tar header: {exc}") from exc
        final = self._check(member)
        self.members.append(member.name)
        if member.isdir():
            self._makedirs(final)
            self._dirs[final] = member
            self._skip_data(member.size)
            return
        self._makedirs(final.parent)
        temp = final.parent / f"{TEMP_PREFIX}{secrets.token_hex(8)}{TEMP_SUFFIX}"
        self._record(_FILE, temp)
        if member.issym():
            os.symlink(member.linkname, temp)
            self._remember(final, temp)
            with contextlib.suppress(NotImplementedError):  # no lutimes on a few platforms
                os.utime(temp, (member.mtime, member.mtime), follow_symlinks=False)
            self._skip_data(member.size)
            return
        fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        self._out = os.fdopen(fd, "wb")
        self._current = (final, temp, member)
        self._remember(final, temp)
        self._left = member.size
        self._pad = _round_up(member.size) - member.size
        self._state = _DATA
        if self._left == 0:
            self._finish_file()

    def _check(self, member: tarfile.TarInfo) -> Path:
        """Refuse what must not be extracted; return the member's final path."""
        name = member.name
        parts = PurePosixPath(name).parts
        if name.startswith("/") or os.path.isabs(name):
            raise TarFormatError(f"refusing absolute member name {name!r}")
        if ".." in parts:
            raise TarFormatError(f"refusing member name with '..': {name!r}")
        if "\x00" in name or not parts or parts == (".",):
            raise TarFormatError(f"refusing member name {name!r}")
        if member.islnk():
            raise TarFormatError(f"refusing hard link {name!r} (BitDust archives never hold them)")
        if member.sparse is not None or member.type == tarfile.GNUTYPE_SPARSE:
            raise TarFormatError(f"refusing sparse member {name!r}")
        try:
            tarfile.data_filter(member, str(self.dest))
        except tarfile.FilterError as exc:
            raise TarFormatError(f"refusing member {name!r}: {exc}") from exc
        return self.dest.joinpath(*(p for p in parts if p != "."))

    def _skip_data(self, size: int) -> None:
        self._pad = _round_up(size)
        self._state = _PAD if self._pad else _HEADER

    def _finish_file(self) -> None:
        assert self._out is not None and self._current is not None
        _final, temp, member = self._current
        self._out.flush()
        os.fsync(self._out.fileno())
        self._out.close()
        self._out, self._current = None, None
        os.chmod(temp, stat.S_IMODE(member.mode) & 0o777)
        os.utime(temp, (member.mtime, member.mtime))
        self._state = _PAD if self._pad else _HEADER

    def _remember(self, final: Path, temp: Path) -> None:
        previous = self._pending.pop(final, None)
        if previous is not None:  # a name repeated in the archive: the last one wins
            previous.unlink(missing_ok=True)
        self._pending[final] = temp

    def _makedirs(self, folder: Path) -> None:
        missing = []
        probe = folder
        while not os.path.lexists(probe):
            missing.append(probe)
            probe = probe.parent
        for path in reversed(missing):
            self._record(_FOLDER, path)
            os.mkdir(path, 0o700)
            self._created.append(path)
        if not folder.is_dir():
            raise TarFormatError(f"cannot restore into {folder}: it exists and is not a folder")

    # --- ending ----------------------------------------------------------------

    def close(self) -> list[str]:
        """Check the archive ended, move everything into place; returns member names."""
        if self._closed:
            return self.members
        if self._state != _END:
            raise TarFormatError("tar archive is truncated (no end-of-archive marker)")
        for final in self._pending:
            if final.is_dir() and not final.is_symlink():
                raise TarFormatError(f"cannot restore {final}: a folder is in the way")
        self._closed = True
        parents = set()
        for final, temp in self._pending.items():
            os.replace(temp, final)
            parents.add(final.parent)
        self._pending.clear()
        for folder in sorted(self._dirs, key=lambda p: len(p.parts), reverse=True):
            member = self._dirs[folder]
            os.chmod(folder, stat.S_IMODE(member.mode) & 0o777)
            os.utime(folder, (member.mtime, member.mtime))
        for folder in parents:
            fsync_dir(folder)
        self._end_journal()
        return self.members

    def abort(self) -> None:
        """Drop temporaries and the folders this extractor made; user files stay untouched."""
        self._closed = True
        if self._out is not None:
            self._out.close()
            self._out = None
        for temp in self._pending.values():
            temp.unlink(missing_ok=True)
        self._pending.clear()
        for folder in reversed(self._created):
            with contextlib.suppress(OSError):  # not empty: something else lives there now
                os.rmdir(folder)
        self._created.clear()
        self._end_journal()

    # --- the journal -----------------------------------------------------------

    def _record(self, kind: bytes, path: Path) -> None:
        """Name ``path`` in the journal before it is made (flushed: a SIGKILL keeps it)."""
        if self._journal_path is None:
            return
        if self._journal is None:
            self._journal_path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
            self._journal = open(self._journal_path, "ab")  # noqa: SIM115 -- open until close/abort
        self._journal.write(kind + os.fsencode(path) + b"\0")
        self._journal.flush()

    def _end_journal(self) -> None:
        if self._journal is not None:
            self._journal.close()
            self._journal = None
        if self._journal_path is not None:
            self._journal_path.unlink(missing_ok=True)


def clean_up_journals(folder: str | os.PathLike[str]) -> list[Path]:
    """Remove what restores cut short by a crash left: the temporaries and the folders
    (if empty) named in the journals in ``folder``, then the journals. Only names this
    module gives its temporaries are removed. Returns the files removed."""
    removed: list[Path] = []
    for journal in sorted(Path(folder).glob(f"*{JOURNAL_SUFFIX}")):
        folders: list[Path] = []
        for record in journal.read_bytes().split(b"\0"):
            path = Path(os.fsdecode(record[1:]))
            if not path.is_absolute():
                continue  # the record a crash cut short, or not one of ours
            if record[:1] == _FOLDER:
                folders.append(path)
            elif record[:1] == _FILE and path.name.startswith(TEMP_PREFIX) and path.name.endswith(TEMP_SUFFIX):
                with contextlib.suppress(FileNotFoundError):
                    path.unlink()
                    removed.append(path)
        for path in reversed(folders):
            with contextlib.suppress(OSError):  # not empty: something else lives there now
                os.rmdir(path)
        journal.unlink()
    return removed
