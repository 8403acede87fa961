"""RestoreDecoder: shares of each block in, files in a destination folder out.

Blocks must be fed in order (0, 1, 2, ...): the archive is one compressed stream. A
block is decoded from the shares given (Data shares first: they need no arithmetic),
its tag is checked, then it is decrypted, decompressed and untarred on the fly. Nothing
reaches the user's files before :meth:`RestoreDecoder.finalize`, which insists on an
authenticated last block and a complete archive (see :mod:`.tar_extract`).

If the first choice of shares fails verification and spare shares were given, each
chosen share is in turn replaced by a spare: one bad share among them is found and
reported as ``suspect`` (its supplier may deserve to be fired). More bad shares need
the caller to fetch others and feed again: a block that fails verification changes no
state. Any other failure (a refused tar member, a full disk) is fatal: call abort.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from types import TracebackType

from bitdust.crypto.aead import AuthenticationError
from bitdust.storage.ecc import EccMap
from bitdust.storage.ids import parse_backup_id
from bitdust.storage.pipeline.block_crypto import OpenedBlock, VersionKey, open_block
from bitdust.storage.pipeline.compress import Decompressor
from bitdust.storage.pipeline.tar_extract import TarExtractor


class IncompleteBackupError(AuthenticationError):
    """The blocks stopped before the authenticated last block: the backup is truncated."""


@dataclass(frozen=True)
class RecoveredBlock:
    opened: OpenedBlock
    used: tuple[int, ...]  # share indexes that rebuilt it
    suspect: int | None  # a share left out because the block failed with it


def recover_block(ecc: EccMap, key: bytes, backup_id: str, number: int, shares: Mapping[int, bytes]) -> RecoveredBlock:
    """Rebuild and open block ``number``; EccError if too few shares, else AuthenticationError."""
    indexes = sorted(shares)
    first = tuple(indexes[: ecc.k])
    try:
        return RecoveredBlock(_try(ecc, key, backup_id, number, shares, first), first, None)
    except AuthenticationError as exc:
        failure = exc
    spares = len(indexes) > ecc.k
    for suspect in first if spares else ():
        used = tuple(i for i in indexes if i != suspect)[: ecc.k]
        try:
            return RecoveredBlock(_try(ecc, key, backup_id, number, shares, used), used, suspect)
        except AuthenticationError:
            continue  # this share was fine; try leaving out the next one
    raise failure


def _try(
    ecc: EccMap, key: bytes, backup_id: str, number: int, shares: Mapping[int, bytes], used: tuple[int, ...]
) -> OpenedBlock:
    return open_block(key, backup_id, number, ecc.decode({i: shares[i] for i in used}))


class RestoreDecoder:
    """Feed blocks with :meth:`feed`, then :meth:`finalize`; :meth:`abort` on failure.

    Also a context manager that aborts when the ``with`` body raises.
    """

    def __init__(self, dest: str | os.PathLike[str], backup_id: str, ecc: EccMap, version_key: VersionKey,
                 journal: str | os.PathLike[str] | None = None) -> None:
        self.backup_id = parse_backup_id(backup_id)
        self.ecc = ecc
        self.version_key = version_key
        self.next_block = 0
        self.bytes_processed = 0  # compressed bytes of the blocks accepted so far
        self.last_seen = False
        self._extractor = TarExtractor(dest, journal)  # journal: see tar_extract.clean_up_journals
        self._decompressor = Decompressor(self._extractor.feed)

    @property
    def bytes_written(self) -> int:
        """File bytes written into the destination (temporary names until finalize)."""
        return self._extractor.bytes_written

    def feed(self, number: int, shares: Mapping[int, bytes]) -> RecoveredBlock:
        """Decode, verify and unpack block ``number`` from the shares available for it."""
        self._check_order(number)
        recovered = recover_block(self.ecc, self.version_key.key, self.backup_id, number, shares)
        self.feed_opened(recovered.opened)
        return recovered

    def feed_opened(self, opened: OpenedBlock) -> None:
        """Unpack a block opened elsewhere (e.g. by :func:`recover_block` in a worker thread)."""
        self._check_order(opened.header.number)
        self.next_block += 1
        self.bytes_processed += len(opened.plaintext)
        self._decompressor.feed(opened.plaintext)
        if opened.header.last:
            self.last_seen = True
            self._decompressor.close()

    def _check_order(self, number: int) -> None:
        if self.last_seen:
            raise ValueError(f"block {number} comes after the last block {self.next_block - 1}")
        if number != self.next_block:
            raise ValueError(f"blocks must be fed in order: expected {self.next_block}, got {number}")

    def finalize(self) -> list[str]:
        """Move the restored files into place; returns the archive member names."""
        if not self.last_seen:
            raise IncompleteBackupError(
                f"backup {self.backup_id} ended after block {self.next_block - 1} without its last block"
            )
        return self._extractor.close()

    def abort(self) -> None:
        self._extractor.abort()

    def __enter__(self) -> RestoreDecoder:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        if exc_type is not None:
            self.abort()
