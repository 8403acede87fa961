"""Allocator tuning for a process that moves megabyte-sized buffers all day.

glibc serves every allocation above its mmap threshold (128 KiB at start, raised
dynamically up to 32 MiB) with a fresh ``mmap`` and gives it back with ``munmap`` on
free. A node allocates and frees several 1 MB buffers per piece it sends or receives
(frame, payload, packet bytes), so each of them came back as new pages that the kernel
had to fault in and zero: 490 minor page faults per MB moved, a third of the CPU time
of a signed 1 MB packet (measured with ``bench/transport.py``: 9 ms of CPU per MB
before, 6 ms after).

Fixing the thresholds keeps such buffers in the heap, where a freed one is reused by
the next. The price is that up to ``TRIM_THRESHOLD`` of freed memory stays mapped to
the process instead of going back to the kernel at once; buffers above
``MMAP_THRESHOLD`` still come and go by ``mmap``. The threshold is above a whole backup
block of the default size (4 MB, and its ciphertext 16 bytes longer): at 2 MB each block
cut from the zstd stream and each block sealed came as fresh pages, 240-400 page faults
per MB backed up, and fresh pages are dear in this machine's VM: the customer's
encoding (tar, zstd, AES-GCM, zfec; 256 MB random, one thread) took 6.1-8.2 ms of CPU
per MB, 4.1-4.7 with the blocks in the heap. Bigger blocks (``max-block-size``) still
go by ``mmap``.

One arena for all threads: the pool threads make and drop 1 MB buffers too (frames of
the packets they sign, payloads of the packets they parse), and glibc would give each
thread an arena of its own, each keeping up to the trim threshold of freed memory: a
flood of 1 MB packets grew a node's RSS by 72 MB instead of 14. Python's own small
objects do not go through malloc, so the shared arena's lock is taken a few times per
MB moved, not per object.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import logging
import sys
from collections.abc import Callable

log = logging.getLogger(__name__)

MMAP_THRESHOLD = 8 * 1024 * 1024
TRIM_THRESHOLD = 32 * 1024 * 1024
ARENA_MAX = 1
_M_TRIM_THRESHOLD = -1  # from glibc's malloc.h
_M_MMAP_THRESHOLD = -3
_M_ARENA_MAX = -8


def tune_malloc() -> bool:
    """Set glibc's mmap and trim thresholds; False (and nothing changed) elsewhere."""
    if not sys.platform.startswith("linux"):
        return False
    name = ctypes.util.find_library("c")
    if name is None:
        return False
    try:
        libc = ctypes.CDLL(name)
        mallopt = libc.mallopt
    except (OSError, AttributeError):  # musl and others have no mallopt
        log.debug("mallopt is not available: allocator left as it is")
        return False
    mallopt.argtypes = (ctypes.c_int, ctypes.c_int)
    mallopt.restype = ctypes.c_int
    return (bool(mallopt(_M_MMAP_THRESHOLD, MMAP_THRESHOLD)) and bool(mallopt(_M_TRIM_THRESHOLD, TRIM_THRESHOLD))
            and bool(mallopt(_M_ARENA_MAX, ARENA_MAX)))


def _uninitialized_allocator() -> Callable[[int], bytearray] | None:
    """CPython's own ``PyByteArray_FromStringAndSize(NULL, size)``, which leaves the bytes
    as the allocator had them; None where there is no C API to call (not CPython)."""
    api = getattr(ctypes, "pythonapi", None)
    make = getattr(api, "PyByteArray_FromStringAndSize", None)
    if make is None or sys.implementation.name != "cpython":
        return None
    make.argtypes = (ctypes.c_char_p, ctypes.c_ssize_t)
    make.restype = ctypes.py_object
    return lambda size: make(None, size)


_ALLOCATE_UNINITIALIZED = _uninitialized_allocator()


def buffer_to_fill(size: int) -> bytearray:
    """A bytearray of ``size`` bytes that the caller will overwrite whole before anyone
    reads it (a socket reading a frame into it).

    ``bytearray(size)`` zeroes what it allocates: for a 1 MB frame that was 36 us with
    the memory in cache and up to 0.13 ms without, as much as the kernel's copy of the
    frame into it, for zeros that are overwritten at once. This one is not zeroed: its
    bytes are whatever the allocator held (older data of this process), so only code
    that hands the buffer out after writing all of it may use it.
    """
    if size < 0:
        raise ValueError("size must be >= 0")
    if _ALLOCATE_UNINITIALIZED is None:
        return bytearray(size)
    return _ALLOCATE_UNINITIALIZED(size)
