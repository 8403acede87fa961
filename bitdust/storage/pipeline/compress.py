"""zstd compression of the archive stream, both ways streaming.

Already-compressed data (photos, videos, archives: the bulk of most people's backups)
does not shrink, yet zstd level 3 spends as much CPU searching it for matches as on
anything else (1.06 ms per MB of random data here, against 0.54 at level -5 and
nearly nothing to store it). So, as borg's ``auto`` compression does, the stream is
judged a segment (1 MB) at a time: a cheap probe compresses a few windows of the
segment at level 1, and a segment whose windows do not shrink by 3% is stored as a zstd
frame of raw blocks (RFC 8878, section 3.1.1.2) instead of being compressed. The output
is a sequence of standard zstd frames any zstd decoder reads. The cost of the probe is
about 3% of the segment's bytes; its blind spot is redundancy only visible over more
than a window (8 KB), such as a random 64 KB pattern repeated: such a segment is stored
as it is. The AEAD tag covers every byte, so a raw frame needs no checksum of its own.

Decompression pushes its output into a sink in chunks of ``write_size``: a highly
compressible file (a gigabyte of zeros is a few kilobytes compressed) would otherwise
come out of one block as one huge buffer, and memory must not depend on file contents.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from typing import IO, cast

import zstandard

DEFAULT_LEVEL = 3
WRITE_SIZE = 1 << 17
CHUNK_SIZE = 1 << 20

Chunk = bytes | memoryview  # what the stream is made of, both ways

SEGMENT_SIZE = 1 << 20  # the unit of the compress-or-store decision
PROBE_WINDOWS = 4
PROBE_WINDOW_SIZE = 8 * 1024
PROBE_LEVEL = 1
INCOMPRESSIBLE = 0.97  # probed output / input at or above this: the segment is stored raw

_ZSTD_MAGIC = (0xFD2FB528).to_bytes(4, "little")
_SINGLE_SEGMENT_4_BYTE_SIZE = bytes([0b1010_0000])  # FCS field of 4 bytes, single segment
_RAW_BLOCK_MAX = 128 * 1024  # Block_Maximum_Size of the format


class CompressionError(ValueError):
    """The compressed stream is corrupt (never expected after AEAD; kept distinct for logs)."""


def compress_chunks(chunks: Iterable[Chunk], level: int = DEFAULT_LEVEL, threads: int = 0,
                    chunk_size: int = CHUNK_SIZE) -> Iterator[Chunk]:
    """Compress a stream lazily into zstd frames; ``threads`` > 0 uses zstd workers.

    The input is gathered into segments of at least :data:`SEGMENT_SIZE` or ``chunk_size``
    if that is smaller, so that the stream is not read further ahead (a tar of small
    files comes in small chunks; deciding per chunk would end a frame at every switch,
    and starting one resets zstd's tables). A run of compressible segments is one zstd
    frame, and comes out in chunks of exactly ``chunk_size`` bytes (the last one of the
    run shorter): zstd writes into one buffer of that size, copied out once when it is
    full, so a pipeline that cuts blocks and asks for block-sized chunks makes a block
    with that one copy. (A bytes object per input chunk, what ``compressobj`` gives,
    copied the compressed bytes two or three times.) An incompressible segment comes out
    as a raw frame: a few header bytes and views of the input itself, not copied here at
    all, so the input must not change afterwards.
    """
    compressor = zstandard.ZstdCompressor(level=level, threads=threads)
    probe = zstandard.ZstdCompressor(level=PROBE_LEVEL)
    chunker: zstandard.ZstdCompressionChunker | None = None
    emitted = False
    for segment in _segments(chunks, min(SEGMENT_SIZE, chunk_size)):
        if _looks_incompressible(segment, probe):
            if chunker is not None:
                yield from chunker.finish()
                chunker = None
            yield from _raw_frame(segment)
        else:
            if chunker is None:
                chunker = compressor.chunker(chunk_size=chunk_size)
            for part in segment:
                yield from chunker.compress(part)
        emitted = True
    if chunker is None and not emitted:
        chunker = compressor.chunker(chunk_size=chunk_size)  # an empty stream is still one frame
    if chunker is not None:
        yield from chunker.finish()


def _segments(chunks: Iterable[Chunk], segment_size: int) -> Iterator[list[memoryview]]:
    """The stream as lists of non-empty views, each list at least ``segment_size`` bytes
    (but the last) and none bigger than twice that."""
    parts: list[memoryview] = []
    held = 0
    for chunk in chunks:
        view = memoryview(chunk).cast("B")
        for start in range(0, len(view), segment_size):
            part = view[start : start + segment_size]
            parts.append(part)
            held += len(part)
            if held >= segment_size:
                yield parts
                parts, held = [], 0
    if parts:
        yield parts


def _looks_incompressible(segment: list[memoryview], probe: zstandard.ZstdCompressor) -> bool:
    """Whether ``segment`` is worth storing as it is: the probe compresses
    :data:`PROBE_WINDOWS` windows spread over it (all of it, when that is smaller) and
    they shrink by less than 3%. A window is cut short at the end of its part."""
    size = sum(map(len, segment))
    if size <= PROBE_WINDOWS * PROBE_WINDOW_SIZE:
        windows: list[memoryview] = segment
    else:
        step = (size - PROBE_WINDOW_SIZE) // (PROBE_WINDOWS - 1)
        starts = [i * step for i in range(PROBE_WINDOWS)]
        windows = []
        passed = 0
        for part in segment:
            windows += [part[start - passed : start - passed + PROBE_WINDOW_SIZE]
                        for start in starts if passed <= start < passed + len(part)]
            passed += len(part)
    sample = b"".join(windows)
    return len(probe.compress(sample)) >= INCOMPRESSIBLE * len(sample)


def _raw_frame(segment: list[memoryview]) -> Iterator[Chunk]:
    """``segment`` as one zstd frame of raw blocks: the frame header (magic number, a
    single-segment descriptor, the content size in 4 bytes), then for every 128 KB a
    3-byte block header (last-block bit, type 0 = raw, size) and the bytes themselves."""
    size = sum(map(len, segment))
    if not 0 < size < 1 << 32:
        raise ValueError(f"a raw frame holds 1 byte to 4 GB, not {size}")
    yield b"".join((_ZSTD_MAGIC, _SINGLE_SEGMENT_4_BYTE_SIZE, size.to_bytes(4, "little")))
    done = 0
    parts = iter(segment)
    part = next(parts)
    while done < size:
        block_size = min(_RAW_BLOCK_MAX, size - done)
        yield (block_size << 3 | (done + block_size == size)).to_bytes(3, "little")
        need = block_size
        while need:
            if not part:
                part = next(parts)
            piece, part = part[:need], part[need:]
            yield piece
            need -= len(piece)
        done += block_size


class _SinkWriter:
    """The file-like end zstandard's stream_writer writes into."""

    def __init__(self, sink: Callable[[bytes], object]) -> None:
        self._sink = sink
        self.produced = 0

    def write(self, data: bytes) -> int:
        self.produced += len(data)
        self._sink(bytes(data))
        return len(data)


class Decompressor:
    """Push compressed bytes in with :meth:`feed`; ``sink`` receives bounded chunks."""

    def __init__(self, sink: Callable[[bytes], object], write_size: int = WRITE_SIZE) -> None:
        self._target = _SinkWriter(sink)
        self._writer = zstandard.ZstdDecompressor().stream_writer(
            cast(IO[bytes], self._target), write_size=write_size, closefd=False
        )

    @property
    def produced(self) -> int:
        """Decompressed bytes handed to the sink so far."""
        return self._target.produced

    def feed(self, data: bytes | memoryview) -> None:
        try:
            self._writer.write(data)
        except zstandard.ZstdError as exc:
            raise CompressionError(f"corrupt zstd stream: {exc}") from exc

    def close(self) -> None:
        try:
            self._writer.flush()
        except zstandard.ZstdError as exc:
            raise CompressionError(f"corrupt zstd stream: {exc}") from exc
        self._writer.close()


def decompress_chunks(chunks: Iterable[bytes]) -> Iterator[bytes]:
    """Pull-style decompression; each input chunk's output is collected (tests, small data)."""
    pending: list[bytes] = []
    decompressor = Decompressor(pending.append)
    for chunk in chunks:
        decompressor.feed(chunk)
        yield from pending
        pending.clear()
    decompressor.close()
    yield from pending
