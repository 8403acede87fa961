"""Cutting a byte stream into fixed-size blocks, the unit of encryption and erasure coding.

Every block but the last is exactly ``block_size`` bytes. The last one is known only
when the stream ends, so a full block is held back until one more byte (or the end)
shows up. An empty stream still gives one empty last block: every backup version has
a block 0 that says where it ends.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import NamedTuple

DEFAULT_BLOCK_SIZE = 4 * 1024 * 1024


class Block(NamedTuple):
    number: int
    last: bool
    data: bytes


def cut_blocks(chunks: Iterable[bytes], block_size: int = DEFAULT_BLOCK_SIZE) -> Iterator[Block]:
    """Regroup ``chunks`` into :class:`Block` s; memory is about one block plus one chunk."""
    if block_size <= 0:
        raise ValueError(f"block size must be positive, got {block_size}")
    buf = bytearray()
    number = 0
    for chunk in chunks:
        buf += chunk
        while len(buf) > block_size:  # strictly more: a full block may still be the last
            with memoryview(buf) as view:  # one copy out (a bytearray slice would be two)
                data = bytes(view[:block_size])
            del buf[:block_size]
            yield Block(number, False, data)
            number += 1
    yield Block(number, True, bytes(buf))
