"""BackupEncoder: a source path in, erasure-coded encrypted blocks out, lazily.

tar -> zstd -> blocks run in the consuming thread as generators; sealing (AES-GCM) and
zfec of each block can be handed to an executor so that block *i* is encrypted and
coded while block *i+1* is read and compressed. zfec, zstandard and cryptography drop
the GIL, so on two cores the stages really overlap. At most ``depth`` blocks wait in
the executor; with the block held back until the next one shows whether it was the last,
zstd's output buffer of one block and the segment being judged compressible or not (at
most two blocks), memory stays below about ``(depth + 3) * block_size * 3`` (plaintext,
sealed copy, 2N shares of half a block each).
"""

from __future__ import annotations

import os
from collections import deque
from collections.abc import Iterator
from concurrent.futures import Executor, Future
from dataclasses import dataclass

from bitdust.storage.ecc import EccMap
from bitdust.storage.ids import parse_backup_id
from bitdust.storage.pipeline.block_crypto import VersionKey, seal_block
from bitdust.storage.pipeline.blocks import DEFAULT_BLOCK_SIZE, Block, cut_blocks
from bitdust.storage.pipeline.compress import DEFAULT_LEVEL, compress_chunks
from bitdust.storage.pipeline.tar_stream import TarReader


@dataclass(frozen=True)
class EncodedBlock:
    """One block ready to send: share ``i`` goes to supplier ``ecc.share_owner(i)``."""

    number: int
    last: bool
    shares: list[bytes | memoryview]
    plain_size: int  # compressed bytes carried by this block
    sealed_size: int  # header + ciphertext, before zfec padding


def encode_block(ecc: EccMap, key: bytes, backup_id: str, block: Block) -> EncodedBlock:
    """Seal and erasure-code one block (also what a rebuild would redo)."""
    sealed = seal_block(key, backup_id, block.number, block.last, block.data)
    return EncodedBlock(block.number, block.last, ecc.encode(sealed), len(block.data), len(sealed))


class BackupEncoder:
    """Iterate to get :class:`EncodedBlock` s of ``source`` in order.

    ``bytes_read`` (source bytes read so far) and :meth:`total_size` feed the progress of
    ``backups_running``. The caller must store ``version_key.wrapped`` with the version.
    """

    def __init__(
        self,
        source: str | os.PathLike[str],
        backup_id: str,
        ecc: EccMap,
        version_key: VersionKey,
        block_size: int = DEFAULT_BLOCK_SIZE,
        level: int = DEFAULT_LEVEL,
        zstd_threads: int = 0,
        executor: Executor | None = None,
        depth: int = 2,
    ) -> None:
        if depth < 1:
            raise ValueError(f"depth must be at least 1, got {depth}")
        self.backup_id = parse_backup_id(backup_id)
        self.ecc = ecc
        self.version_key = version_key
        self.block_size = block_size
        self.level = level
        self.zstd_threads = zstd_threads
        self.executor = executor
        self.depth = depth
        self.reader = TarReader(source, chunk_size=min(block_size, 1 << 20))
        self.blocks_done = 0
        self.bytes_out = 0  # sealed bytes produced (before erasure coding)
        self._started = False

    @property
    def bytes_read(self) -> int:
        return self.reader.bytes_read

    def total_size(self) -> int:
        return self.reader.total_size()

    def _plain_blocks(self) -> Iterator[Block]:
        compressed = compress_chunks(self.reader, self.level, self.zstd_threads, chunk_size=self.block_size)
        return cut_blocks(compressed, self.block_size)

    def _encode(self, block: Block) -> EncodedBlock:
        return encode_block(self.ecc, self.version_key.key, self.backup_id, block)

    def _done(self, encoded: EncodedBlock) -> EncodedBlock:
        self.blocks_done += 1
        self.bytes_out += encoded.sealed_size
        return encoded

    def __iter__(self) -> Iterator[EncodedBlock]:
        if self._started:
            raise RuntimeError("a BackupEncoder can be iterated only once")
        self._started = True
        if self.executor is None:
            for block in self._plain_blocks():
                yield self._done(self._encode(block))
            return
        pending: deque[Future[EncodedBlock]] = deque()
        try:
            for block in self._plain_blocks():
                pending.append(self.executor.submit(self._encode, block))
                if len(pending) >= self.depth:
                    yield self._done(pending.popleft().result())
            while pending:
                yield self._done(pending.popleft().result())
        finally:
            for future in pending:  # consumer gave up or a stage failed: drop queued work
                future.cancel()
