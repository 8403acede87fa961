"""A supplier's piece writes on this machine's disk: prints figures, judges nothing.

    .venv/bin/python bench/disk.py [--pieces 300] [--kb 1024] [--dir DIR] [--repeat 3]

Writes ``--pieces`` pieces of ``--kb`` KB with :func:`bitdust.storage.supplier.disk.write_piece`
(temp file, fsync, rename, fsync of the folder), once as a supplier does (the pages let go
of once on disk) and once keeping them cached, alternated ``--repeat`` times; prints the
CPU of the writing thread per piece (user and system) and the wall time. The folder
(default: a new one under the system's temp folder, removed at the end) decides the file
system measured; a supplier's is its home's.
"""

from __future__ import annotations

import argparse
import os
import resource
import shutil
import statistics
import tempfile
import time
from pathlib import Path

from bitdust.storage import ids
from bitdust.storage.supplier import disk

VERSION = "F20260101120000AM"


def write_round(folder: Path, count: int, data: bytes, keep_cached: bool) -> tuple[float, float, float]:
    """(user ms, system ms, wall ms) per piece for ``count`` pieces."""
    before = resource.getrusage(resource.RUSAGE_THREAD)
    start = time.perf_counter()
    for block in range(count):
        disk.write_piece(folder, ids.make_piece_id(f"0/1/{VERSION}", block, 0, "Data"), data,
                         keep_cached=keep_cached)
    wall = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_THREAD)
    return ((after.ru_utime - before.ru_utime) * 1000 / count, (after.ru_stime - before.ru_stime) * 1000 / count,
            wall * 1000 / count)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--pieces", type=int, default=300)
    parser.add_argument("--kb", type=int, default=1024)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--dir", help="where to write (default: a new temporary folder)")
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="bitdust-disk-", dir=args.dir))
    data = os.urandom(args.kb * 1024)
    results: dict[bool, list[tuple[float, float, float]]] = {False: [], True: []}
    try:
        for number in range(args.repeat):
            for keep in (False, True):
                folder = work / f"{number}-{keep}"
                # Kept until the end: deleting cached files would hand their pages back
                # for the next round to reuse, which a supplier that keeps its pieces
                # never sees.
                results[keep].append(write_round(folder, args.pieces, data, keep))
    finally:
        shutil.rmtree(work, ignore_errors=True)
    print(f"{args.pieces} pieces of {args.kb} KB, {args.repeat} alternated rounds, in {work.parent} "
          f"(medians, per piece; CPU of the writing thread)")
    for keep, label in ((False, "pages let go once on disk (as a supplier)"), (True, "pages kept cached")):
        user, system, wall = (statistics.median(r[i] for r in results[keep]) for i in range(3))
        print(f"  {label:44s} user {user:6.3f} ms  system {system:6.3f} ms  wall {wall:6.3f} ms  "
              f"({args.kb / 1024 / wall * 1000:6.1f} MB/s)")


if __name__ == "__main__":
    main()
