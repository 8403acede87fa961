"""Throughput of the backup pipeline on one random file: prints figures, judges nothing.

    .venv/bin/python bench/pipeline.py --mb 256

zfec alone is the ceiling the whole pipeline is compared with. Encode is measured with
the shares thrown away (sending is not part of it); a second, untimed pass stores N of
the 2N shares per block (a random mix of Data and Parity, so zfec has real work) for the
decode measurement, which includes writing and fsyncing the restored file.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import random
import resource
import sys
import tempfile
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from bitdust.crypto import aead
from bitdust.crypto.keys import PrivateKey
from bitdust.storage.ecc import EccMap
from bitdust.storage.pipeline.block_crypto import VersionKey
from bitdust.storage.pipeline.compress import compress_chunks
from bitdust.storage.pipeline.decoder import RestoreDecoder
from bitdust.storage.pipeline.encoder import BackupEncoder
from bitdust.storage.pipeline.tar_stream import TarReader
from bitdust.util.memory import tune_malloc

BACKUP_ID = "0/F20160313043757PM"
MB = 1024 * 1024


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # kilobytes on Linux


def report(label: str, nbytes: int, seconds: float) -> None:
    rate = nbytes / MB / seconds if seconds else float("inf")
    print(f"  {label:<44} {rate:8.1f} MB/s  ({seconds:6.2f} s, peak RSS {peak_rss_mb():6.0f} MB)")


def make_source(path: Path, size: int) -> str:
    digest = hashlib.sha256()
    with open(path, "wb") as out:
        left = size
        while left:
            chunk = os.urandom(min(4 * MB, left))
            digest.update(chunk)
            out.write(chunk)
            left -= len(chunk)
    return digest.hexdigest()


def file_blocks(path: Path, block_size: int) -> Iterator[bytes]:
    with open(path, "rb") as handle:
        while chunk := handle.read(block_size):
            yield chunk


def bench_stages(source: Path, size: int, ecc: EccMap, block_size: int, level: int) -> None:
    zfec_time = gcm_time = 0.0
    key = aead.new_key()
    for block in file_blocks(source, block_size):
        start = time.perf_counter()
        ecc.encode(block)
        zfec_time += time.perf_counter() - start
        start = time.perf_counter()
        aead.encrypt(key, block, b"ad")
        gcm_time += time.perf_counter() - start
    report(f"zfec alone ({ecc.name}, the limit)", size, zfec_time)
    report("AES-256-GCM alone", size, gcm_time)
    start = time.perf_counter()
    for _ in TarReader(source):
        pass
    report("tar read alone", size, time.perf_counter() - start)
    start = time.perf_counter()
    for _ in compress_chunks(file_blocks(source, MB), level):
        pass
    report(f"zstd level {level} alone (random data: stored raw)", size, time.perf_counter() - start)


def bench_encode(source: Path, size: int, ecc: EccMap, vkey: VersionKey, args: argparse.Namespace) -> None:
    block_size = args.block_mb * MB
    for workers in (0, args.workers):
        pool = ThreadPoolExecutor(max_workers=workers) if workers else None
        encoder = BackupEncoder(
            source, BACKUP_ID, ecc, vkey, block_size, args.level, args.zstd_threads, pool, depth=max(1, workers)
        )
        start = time.perf_counter()
        for _ in encoder:
            pass
        mode = f"{workers} worker threads" if workers else "one thread"
        report(f"encode tar>zstd>AES-GCM>zfec, {mode}", size, time.perf_counter() - start)
        if pool is not None:
            pool.shutdown()


def store_shares(source: Path, store: Path, ecc: EccMap, vkey: VersionKey, args: argparse.Namespace) -> int:
    rng = random.Random(1)
    count = 0
    encoder = BackupEncoder(source, BACKUP_ID, ecc, vkey, args.block_mb * MB, args.level)
    for block in encoder:
        for index in rng.sample(range(ecc.m), ecc.k):
            (store / f"{block.number}-{index}").write_bytes(block.shares[index])
        count += 1
    return count


def bench_decode(store: Path, dest: Path, size: int, nblocks: int, ecc: EccMap, vkey: VersionKey) -> float:
    elapsed = 0.0
    decoder = RestoreDecoder(dest, BACKUP_ID, ecc, vkey)
    for number in range(nblocks):
        shares = {int(p.name.split("-")[1]): p.read_bytes() for p in store.glob(f"{number}-*")}
        start = time.perf_counter()
        decoder.feed(number, shares)
        elapsed += time.perf_counter() - start
    start = time.perf_counter()
    decoder.finalize()
    elapsed += time.perf_counter() - start
    report("decode zfec>AES-GCM>zstd>untar (+fsync)", size, elapsed)
    return elapsed


def main() -> None:
    tune_malloc()  # as the daemon does: its figures are the daemon's
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--mb", type=int, default=256, help="size of the random file (MB)")
    parser.add_argument("--ecc", default="ecc/4x4")
    parser.add_argument("--block-mb", type=int, default=4)
    parser.add_argument("--level", type=int, default=3, help="zstd level")
    parser.add_argument("--zstd-threads", type=int, default=0)
    parser.add_argument("--workers", type=int, default=2, help="threads sealing + coding blocks")
    args = parser.parse_args()
    ecc = EccMap.from_name(args.ecc)
    size = args.mb * MB
    print(
        f"{args.mb} MB random file, {ecc.name}, {args.block_mb} MB blocks, zstd level {args.level}, "
        f"{os.cpu_count()} CPUs (load {os.getloadavg()[0]:.1f}), Python {sys.version.split()[0]}"
    )
    owner = PrivateKey.generate(2048)
    vkey = VersionKey.create(owner.public_key())
    with tempfile.TemporaryDirectory(prefix="bitdust-bench-") as tmp:
        root = Path(tmp)
        source = root / "source.bin"
        expected = make_source(source, size)
        bench_stages(source, size, ecc, args.block_mb * MB, args.level)
        bench_encode(source, size, ecc, vkey, args)
        store = root / "shares"
        store.mkdir()
        nblocks = store_shares(source, store, ecc, vkey, args)
        bench_decode(store, root / "restored", size, nblocks, ecc, VersionKey.open(owner, vkey.wrapped))
        digest = hashlib.sha256()
        for chunk in file_blocks(root / "restored" / "source.bin", 4 * MB):
            digest.update(chunk)
        restored = digest.hexdigest()
        print(f"  restored file {'matches' if restored == expected else 'DIFFERS FROM'} the source (sha256)")


if __name__ == "__main__":
    main()
