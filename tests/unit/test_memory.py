"""The daemon's allocator settings take effect (in a child process: they are process-wide)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

# Four threads each hold 1 MB buffers (below the mmap threshold, so from an arena), then
# glibc's malloc_info lists the arenas: one heap element per arena.
CHILD = """
import ctypes, ctypes.util, sys, threading
from bitdust.util.memory import tune_malloc
if sys.argv[1] == "tuned" and not tune_malloc():
    sys.exit(3)
held, ready, done = [], threading.Barrier(5), threading.Event()
def work():
    held.append(bytearray(1 << 20))
    ready.wait()
    done.wait()
threads = [threading.Thread(target=work) for _ in range(4)]
for t in threads:
    t.start()
ready.wait()
libc = ctypes.CDLL(ctypes.util.find_library("c"))
libc.fopen.restype = ctypes.c_void_p
libc.fopen.argtypes = (ctypes.c_char_p, ctypes.c_char_p)
libc.malloc_info.argtypes = (ctypes.c_int, ctypes.c_void_p)
libc.fclose.argtypes = (ctypes.c_void_p,)
stream = libc.fopen(sys.argv[2].encode(), b"w")
libc.malloc_info(0, stream)
libc.fclose(stream)
done.set()
for t in threads:
    t.join()
"""


def arenas(tmp_path: Path, mode: str) -> int:
    out = tmp_path / f"{mode}.xml"
    done = subprocess.run([sys.executable, "-c", CHILD, mode, str(out)], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    return out.read_text().count("<heap nr=")


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's mallopt and malloc_info")
def test_tuned_process_keeps_one_arena_for_all_threads(tmp_path: Path) -> None:
    assert arenas(tmp_path, "default") > 1  # what the setting is for: an arena per thread
    assert arenas(tmp_path, "tuned") == 1


BLOCK_CHILD = """
import resource, sys
from bitdust.util import memory
if sys.argv[1] == "2mb":  # the threshold this module used to set: blocks above it
    memory.MMAP_THRESHOLD = 2 * 1024 * 1024
if not memory.tune_malloc():
    sys.exit(3)
size = 4 * 1024 * 1024 + 16  # a default-size backup block, sealed
kept = bytearray(size)  # a first one, so the heap has grown once
del kept
before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
for _ in range(20):
    block = bytearray(size)
    block[::4096] = b"x" * len(block[::4096])  # touch every page, as a copy into it would
    del block
print(resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)
"""


def block_faults(mode: str) -> int:
    done = subprocess.run([sys.executable, "-c", BLOCK_CHILD, mode], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    return int(done.stdout)


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's mallopt")
def test_tuned_process_reuses_backup_blocks_instead_of_faulting_in_new_pages() -> None:
    pages = 20 * (4 * 1024 * 1024 // 4096)
    assert block_faults("2mb") > pages // 2  # each block a fresh mmap, every page faulted in
    assert block_faults("tuned") < pages // 20


def test_buffer_to_fill_is_a_bytearray_of_the_size_asked_and_not_zeroed_on_cpython(
        monkeypatch: pytest.MonkeyPatch) -> None:
    from bitdust.util import memory

    for size in (0, 1, 4096, 1 << 20):
        buffer = memory.buffer_to_fill(size)
        assert type(buffer) is bytearray and len(buffer) == size
        buffer[:] = b"\x01" * size  # writable, every byte
        assert buffer.count(1) == size
    with pytest.raises(ValueError):
        memory.buffer_to_fill(-1)
    assert (memory._ALLOCATE_UNINITIALIZED is not None) == (sys.implementation.name == "cpython")
    # Without the C API it falls back to bytearray(), zeroed.
    monkeypatch.setattr(memory, "_ALLOCATE_UNINITIALIZED", None)
    assert memory.buffer_to_fill(3) == bytearray(3)
