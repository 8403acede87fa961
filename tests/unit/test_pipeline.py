"""The backup pipeline, stage by stage, then whole: tar -> zstd -> blocks -> AES-GCM -> zfec."""

from __future__ import annotations

import io
import os
import random
import stat
import tarfile
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
import zstandard
from hypothesis import given, settings
from hypothesis import strategies as st

from bitdust.crypto.aead import AuthenticationError, new_key
from bitdust.crypto.keys import BadKeyError, PrivateKey
from bitdust.storage.ecc import EccMap
from bitdust.storage.pipeline.block_crypto import (
    HEADER_SIZE,
    BlockFormatError,
    BlockHeader,
    VersionKey,
    open_block,
    seal_block,
)
from bitdust.storage.pipeline.blocks import cut_blocks
from bitdust.storage.pipeline.compress import Decompressor, compress_chunks, decompress_chunks
from bitdust.storage.pipeline.decoder import IncompleteBackupError, RestoreDecoder, recover_block
from bitdust.storage.pipeline.encoder import BackupEncoder, EncodedBlock
from bitdust.storage.pipeline.tar_stream import TarExtractor, TarFormatError, TarReader

BLOCK = 64 * 1024
BACKUP_ID = "0/3/1/F20160424013912PM"
OTHER_VERSION = "0/3/1/F20160424013912PM1"
MTIME = 1_000_000_000.5


@pytest.fixture(scope="module")
def owner() -> PrivateKey:
    return PrivateKey.generate(2048)


@pytest.fixture
def tree(tmp_path: Path) -> Path:
    """A folder with every shape a backup must keep."""
    root = tmp_path / "src" / "Docs"
    (root / "a" / "b" / "c").mkdir(parents=True)
    (root / "empty-dir").mkdir()
    (root / "ünïcødé 文件").mkdir()
    rng = random.Random(7)
    files = {
        "a/small.txt": b"hello\n",
        "a/b/empty.bin": b"",
        "a/b/c/big.bin": rng.randbytes(5 * BLOCK + 123),
        "one-block.bin": rng.randbytes(BLOCK),
        "ünïcødé 文件/naïve.txt": "contenu élégant".encode() * 100,
        "compressible.txt": b"abc" * 100_000,
    }
    for name, data in files.items():
        (root / name).write_bytes(data)
    (root / "a" / "link").symlink_to("small.txt")
    os.chmod(root / "a/small.txt", 0o640)
    os.chmod(root / "one-block.bin", 0o755)
    os.chmod(root / "a/b/empty.bin", 0o600)
    os.chmod(root / "a/b", 0o750)
    for path in [*root.rglob("*"), root]:
        os.utime(path, (MTIME, MTIME), follow_symlinks=False)
    return root


def snapshot(root: Path) -> dict[str, tuple[str, int, int, bytes]]:
    """Everything a restore must reproduce, by relative name."""
    seen = {}
    for path in [root, *sorted(root.rglob("*"))]:
        st_ = os.lstat(path)
        if stat.S_ISLNK(st_.st_mode):
            kind, content = "link", os.readlink(path).encode()
        elif stat.S_ISDIR(st_.st_mode):
            kind, content = "dir", b""
        else:
            kind, content = "file", path.read_bytes()
        mode = 0 if kind == "link" else stat.S_IMODE(st_.st_mode)
        seen[path.relative_to(root.parent).as_posix()] = (kind, mode, round(st_.st_mtime * 1000), content)
    return seen


def chunked(data: bytes, sizes: list[int]) -> Iterator[bytes]:
    pos, i = 0, 0
    while pos < len(data):
        size = sizes[i % len(sizes)]
        yield data[pos : pos + size]
        pos, i = pos + size, i + 1


def untar_to(dest: Path, data: bytes, sizes: list[int] | None = None) -> TarExtractor:
    extractor = TarExtractor(dest)
    for chunk in chunked(data, sizes or [len(data) or 1]):
        extractor.feed(chunk)
    return extractor


# --- tar ----------------------------------------------------------------------------


def test_tar_stream_is_a_standard_archive(tree: Path) -> None:
    reader = TarReader(tree, chunk_size=4096)
    chunks = list(reader)
    assert max(len(c) for c in chunks) <= 4096
    with tarfile.open(fileobj=io.BytesIO(b"".join(chunks)), mode="r:") as archive:
        members = {m.name: m for m in archive.getmembers()}
    assert members["Docs/empty-dir"].isdir()
    assert members["Docs/a/b/empty.bin"].isfile() and members["Docs/a/b/empty.bin"].size == 0
    assert members["Docs/a/link"].issym() and members["Docs/a/link"].linkname == "small.txt"
    assert members["Docs/ünïcødé 文件/naïve.txt"].size == 1700
    assert members["Docs/a/small.txt"].mode == 0o640
    assert members["Docs/a/b"].mode == 0o750
    assert members["Docs/one-block.bin"].mtime == MTIME
    assert reader.bytes_read == reader.total_size() == sum(m.size for m in members.values())


def test_tar_skips_special_files(tmp_path: Path) -> None:
    (tmp_path / "d").mkdir()
    os.mkfifo(tmp_path / "d" / "pipe")
    reader = TarReader(tmp_path / "d")
    with tarfile.open(fileobj=io.BytesIO(b"".join(reader)), mode="r:") as archive:
        assert archive.getnames() == ["d"]
    assert reader.skipped == ["d/pipe"]


@pytest.mark.parametrize("sizes", [[1], [7, 511, 513], [4096], [10**9]])
def test_extract_round_trip_any_chunking(tree: Path, tmp_path: Path, sizes: list[int]) -> None:
    data = b"".join(TarReader(tree))
    dest = tmp_path / "out"
    assert untar_to(dest, data, sizes).close()[0] == "Docs"
    assert snapshot(dest / "Docs") == snapshot(tree)


def test_extract_reads_stdlib_archives_with_long_names(tmp_path: Path) -> None:
    long_name = "x" * 150 + "/" + "é" * 120
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w|", format=tarfile.GNU_FORMAT) as archive:
        info = tarfile.TarInfo(long_name)
        info.size, info.mode, info.mtime = 3, 0o644, 1234
        archive.addfile(info, io.BytesIO(b"abc"))
    untar_to(tmp_path, buf.getvalue(), [100]).close()
    assert (tmp_path / long_name).read_bytes() == b"abc"
    assert os.stat(tmp_path / long_name).st_mtime == 1234


def test_nothing_replaces_user_files_before_close(tree: Path, tmp_path: Path) -> None:
    dest = tmp_path / "out"
    (dest / "Docs" / "a").mkdir(parents=True)
    (dest / "Docs" / "a" / "small.txt").write_bytes(b"user's own")
    extractor = untar_to(dest, b"".join(TarReader(tree)))
    assert (dest / "Docs" / "a" / "small.txt").read_bytes() == b"user's own"
    assert not (dest / "Docs" / "one-block.bin").exists()
    extractor.abort()
    assert sorted(p.relative_to(dest).as_posix() for p in dest.rglob("*")) == ["Docs", "Docs/a", "Docs/a/small.txt"]
    assert (dest / "Docs" / "a" / "small.txt").read_bytes() == b"user's own"


def test_close_overwrites_user_files(tree: Path, tmp_path: Path) -> None:
    dest = tmp_path / "out"
    (dest / "Docs" / "a").mkdir(parents=True)
    (dest / "Docs" / "a" / "small.txt").write_bytes(b"old")
    untar_to(dest, b"".join(TarReader(tree))).close()
    assert (dest / "Docs" / "a" / "small.txt").read_bytes() == b"hello\n"
    assert not [p for p in dest.rglob("*.part")]


def _archive(*members: tuple[str, bytes, str]) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as archive:
        for name, content, kind in members:
            info = tarfile.TarInfo(name)
            if kind == "file":
                info.size = len(content)
            else:
                info.type = {
                    "sym": tarfile.SYMTYPE,
                    "hard": tarfile.LNKTYPE,
                    "chr": tarfile.CHRTYPE,
                    "fifo": tarfile.FIFOTYPE,
                }[kind]
                info.linkname = content.decode()
            archive.addfile(info, io.BytesIO(content) if kind == "file" else None)
    return buf.getvalue()


@pytest.mark.parametrize(
    "members",
    [
        [("../evil", b"x", "file")],
        [("ok/../../evil", b"x", "file")],
        [("ok/../inside", b"x", "file")],  # '..' is refused even when it stays inside
        [("/tmp/evil-absolute", b"x", "file")],
        [("link", b"/etc/passwd", "sym")],
        [("link", b"../../evil", "sym")],
        [("ok", b"x", "file"), ("hard", b"ok", "hard")],
        [("dev", b"", "chr")],
        [("fifo", b"", "fifo")],
    ],
)
def test_unsafe_members_are_refused(tmp_path: Path, members: list[tuple[str, bytes, str]]) -> None:
    dest = tmp_path / "a" / "b" / "dest"
    with pytest.raises(TarFormatError, match="refusing"):
        untar_to(dest, _archive(*members), [300])
    assert not (tmp_path / "a" / "evil").exists() and not (tmp_path / "a" / "b" / "evil").exists()


def test_truncated_or_garbled_tar_is_refused(tree: Path, tmp_path: Path) -> None:
    data = b"".join(TarReader(tree))
    with pytest.raises(TarFormatError, match="truncated"):
        untar_to(tmp_path / "one", data[: len(data) // 2]).close()
    with pytest.raises(TarFormatError, match="bad tar header"):
        untar_to(tmp_path / "two", b"\x01" * 1024)
    with pytest.raises(TarFormatError, match="after the end"):
        untar_to(tmp_path / "three", data + b"junk")


# --- zstd ---------------------------------------------------------------------------


def test_compress_round_trip_and_levels() -> None:
    data = [random.Random(i).randbytes(1000) + bytes(50_000) for i in range(20)]
    fast = list(compress_chunks(data, level=1))
    strong = list(compress_chunks(data, level=19))
    assert sum(map(len, strong)) < sum(map(len, fast)) < sum(map(len, data)) // 10
    assert b"".join(decompress_chunks(fast)) == b"".join(data)
    assert b"".join(decompress_chunks(strong)) == b"".join(data)


def words(seed: int, size: int) -> bytes:
    """Compressible but not trivially so: random words of a small vocabulary."""
    rng = random.Random(seed)
    vocabulary = [rng.randbytes(rng.randint(2, 9)).hex().encode() for _ in range(500)]
    out = bytearray()
    while len(out) < size:
        out += rng.choice(vocabulary) + b" "
    return bytes(out[:size])


def zstd_frames(stream: bytes) -> list[tuple[int, bool]]:
    """(content size, all its blocks raw) of each zstd frame in ``stream``: the frames are
    cut and decoded by the reference library, the block headers read as RFC 8878 says."""
    frames = []
    rest = stream
    while rest:
        reader = zstandard.ZstdDecompressor().decompressobj()
        content = reader.decompress(rest)
        frame = rest[: len(rest) - len(reader.unused_data)]
        offset, kinds = zstandard.frame_header_size(frame), set()
        while offset < len(frame):
            header = int.from_bytes(frame[offset : offset + 3], "little")
            kinds.add(header >> 1 & 3)
            offset += 3 + (header >> 3 if header >> 1 & 3 != 1 else 1)  # an RLE block carries one byte
        frames.append((len(content), kinds == {0}))
        rest = reader.unused_data
    return frames


def test_compressed_stream_comes_in_chunks_of_the_size_asked() -> None:
    """The encoder asks for block-sized chunks so each block is one copy out of zstd."""
    data = [words(i, 70_000) for i in range(50)]
    chunks = list(compress_chunks(data, chunk_size=64 * 1024))
    assert len(chunks) > 3
    assert [len(chunk) for chunk in chunks[:-1]] == [64 * 1024] * (len(chunks) - 1)
    assert 0 < len(chunks[-1]) <= 64 * 1024
    assert b"".join(decompress_chunks(chunks)) == b"".join(data)


def test_incompressible_segments_are_stored_in_raw_frames_without_a_copy() -> None:
    """Random 1 MB chunks (what a photo or a video looks like) skip zstd's match search:
    each is one frame of raw blocks, made of views of the input itself."""
    data = [os.urandom(1 << 20) for _ in range(3)]
    chunks = list(compress_chunks(data))
    stream = b"".join(chunks)
    assert zstd_frames(stream) == [(1 << 20, True)] * 3
    assert len(stream) - sum(map(len, data)) == 3 * (9 + 3 * 8)
    views = [chunk for chunk in chunks if isinstance(chunk, memoryview)]
    assert sum(map(len, views)) == 3 << 20 and all(view.obj in data for view in views)
    assert b"".join(decompress_chunks(chunks)) == b"".join(data)


def test_small_chunks_are_judged_a_segment_at_a_time() -> None:
    """A tar of small files comes in small chunks: judged one by one, every switch would
    end a frame. Random chunks of odd sizes gather into >= 1 MB segments, whose raw
    blocks cut across the chunks."""
    rng = random.Random(5)
    data = [rng.randbytes(rng.randint(1, 70_000)) for _ in range(100)]
    stream = b"".join(compress_chunks(data))
    frames = zstd_frames(stream)
    assert all(raw for _, raw in frames)
    assert [size >= 1 << 20 for size, _ in frames[:-1]] == [True] * (len(frames) - 1)
    assert sum(size for size, _ in frames) == sum(map(len, data))
    assert b"".join(decompress_chunks([stream])) == b"".join(data)


def test_mixed_stream_switches_between_compressed_and_raw_frames() -> None:
    text, noise = words(1, 1 << 20), os.urandom(1 << 20)
    data = [text, text[:1000], noise, noise, text, b"", noise[:5]]
    stream = b"".join(compress_chunks(data))
    frames = zstd_frames(stream)
    # segments: text | 1000 bytes of text + noise (mostly noise) | noise | text | 5 bytes of noise
    assert [raw for _, raw in frames] == [False, True, True, False, True]
    assert sum(size for size, _ in frames) == sum(map(len, data))
    assert len(stream) < 2 * len(noise) + len(text) // 2
    assert b"".join(decompress_chunks([stream])) == b"".join(data)


def test_compressing_nothing_gives_one_empty_frame() -> None:
    stream = b"".join(compress_chunks([]))
    assert [size for size, _ in zstd_frames(stream)] == [0]
    assert b"".join(decompress_chunks([stream])) == b""


@settings(max_examples=60, deadline=None)
@given(parts=st.lists(st.tuples(st.booleans(), st.integers(0, 300_000)), max_size=12), seed=st.integers(0, 1000))
def test_compress_round_trip_of_any_mix(parts: list[tuple[bool, int]], seed: int) -> None:
    rng = random.Random(seed)
    data = [rng.randbytes(size) if noisy else words(seed, size) for noisy, size in parts]
    assert b"".join(decompress_chunks(compress_chunks(data))) == b"".join(data)


def test_decompressor_output_is_bounded_by_write_size() -> None:
    compressed = b"".join(compress_chunks([bytes(1 << 20)] * 16))  # 16 MB of zeros, a few KB packed
    sizes: list[int] = []
    decompressor = Decompressor(lambda chunk: sizes.append(len(chunk)), write_size=1 << 16)
    decompressor.feed(compressed)
    decompressor.close()
    assert len(compressed) < 10_000
    assert sum(sizes) == decompressor.produced == 16 << 20
    assert max(sizes) <= 1 << 16


# --- blocks -------------------------------------------------------------------------


@settings(max_examples=100, deadline=None)
@given(chunks=st.lists(st.binary(max_size=300), max_size=20), block_size=st.integers(1, 200))
def test_cut_blocks(chunks: list[bytes], block_size: int) -> None:
    blocks = list(cut_blocks(chunks, block_size))
    data = b"".join(chunks)
    assert b"".join(b.data for b in blocks) == data
    assert [b.number for b in blocks] == list(range(len(blocks)))
    assert [b.last for b in blocks] == [False] * (len(blocks) - 1) + [True]
    assert all(len(b.data) == block_size for b in blocks[:-1])
    assert 0 < len(blocks[-1].data) <= block_size or data == b""
    assert len(blocks) == max(1, -(-len(data) // block_size))


def test_exact_multiple_ends_with_a_full_last_block() -> None:
    blocks = list(cut_blocks([b"x" * 10, b"y" * 10], 10))
    assert [(b.number, b.last, len(b.data)) for b in blocks] == [(0, False, 10), (1, True, 10)]
    assert list(cut_blocks([], 10)) == [(0, True, b"")]
    with pytest.raises(ValueError):
        list(cut_blocks([b"x"], 0))


# --- block encryption ---------------------------------------------------------------


def test_header_round_trip_and_checks() -> None:
    header = BlockHeader(2**40, True, 5, 5 + 28)
    packed = header.pack()
    assert len(packed) == HEADER_SIZE == 24
    assert BlockHeader.unpack(packed) == header
    for bad in (
        b"XXXX" + packed[4:],
        packed[:4] + b"\x02" + packed[5:],
        packed[:5] + b"\x02" + packed[6:],
        packed[:-1] + b"\x00",
        packed[:10],
    ):
        with pytest.raises(BlockFormatError):
            BlockHeader.unpack(bad)


def test_version_key_wraps_for_the_owner_only(owner: PrivateKey) -> None:
    version_key = VersionKey.create(owner.public_key())
    assert len(version_key.key) == 32 and version_key.key not in version_key.wrapped
    assert VersionKey.open(owner, version_key.wrapped).key == version_key.key
    assert version_key.key.hex() not in repr(version_key)
    with pytest.raises(BadKeyError):
        VersionKey.open(PrivateKey.generate(2048), version_key.wrapped)


def test_seal_binds_backup_id_number_and_last_flag() -> None:
    key = new_key()
    sealed = seal_block(key, BACKUP_ID, 3, False, b"payload")
    assert open_block(key, BACKUP_ID, 3, sealed + bytes(40)).plaintext == b"payload"  # zfec padding is fine
    with pytest.raises(AuthenticationError, match="expected block 4"):
        open_block(key, BACKUP_ID, 4, sealed)
    with pytest.raises(AuthenticationError):
        open_block(key, OTHER_VERSION, 3, sealed)
    renumbered = BlockHeader(4, False, 7, 35).pack() + sealed[HEADER_SIZE:]
    made_last = BlockHeader(3, True, 7, 35).pack() + sealed[HEADER_SIZE:]
    flipped = sealed[:-1] + bytes([sealed[-1] ^ 1])
    for forged, number in ((renumbered, 4), (made_last, 3), (flipped, 3)):
        with pytest.raises(AuthenticationError):
            open_block(key, BACKUP_ID, number, forged)
    with pytest.raises(BlockFormatError, match="truncated"):
        open_block(key, BACKUP_ID, 3, sealed[:-1])
    with pytest.raises(AuthenticationError):
        open_block(new_key(), BACKUP_ID, 3, sealed)


# --- whole pipeline -----------------------------------------------------------------


def encode(source: Path, owner: PrivateKey, ecc: EccMap, **kwargs: object) -> tuple[list[EncodedBlock], bytes]:
    version_key = VersionKey.create(owner.public_key())
    encoder = BackupEncoder(source, BACKUP_ID, ecc, version_key, block_size=BLOCK, **kwargs)  # type: ignore[arg-type]
    blocks = list(encoder)
    assert encoder.bytes_read == encoder.total_size()
    assert encoder.blocks_done == len(blocks)
    return blocks, version_key.wrapped


def any_n(block: EncodedBlock, ecc: EccMap, seed: int) -> dict[int, bytes]:
    return {i: block.shares[i] for i in random.Random(seed).sample(range(ecc.m), ecc.k)}


@pytest.mark.parametrize("ecc_name", ["ecc/2x2", "ecc/4x4", "ecc/7x7"])
def test_folder_round_trip(tree: Path, tmp_path: Path, owner: PrivateKey, ecc_name: str) -> None:
    ecc = EccMap.from_name(ecc_name)
    blocks, wrapped = encode(tree, owner, ecc)
    assert len(blocks) > 5 and blocks[-1].last and not any(b.last for b in blocks[:-1])
    assert all(len(b.shares) == ecc.m for b in blocks)
    dest = tmp_path / "restored"
    with RestoreDecoder(dest, BACKUP_ID, ecc, VersionKey.open(owner, wrapped)) as decoder:
        for block in blocks:
            assert decoder.feed(block.number, any_n(block, ecc, block.number)).suspect is None
        assert decoder.finalize()[0] == "Docs"
    assert snapshot(dest / "Docs") == snapshot(tree)
    assert decoder.bytes_processed == sum(b.plain_size for b in blocks)


def test_single_file_and_empty_folder(tmp_path: Path, owner: PrivateKey) -> None:
    ecc = EccMap.for_suppliers(4)
    for source in (tmp_path / "one-block.bin", tmp_path / "nothing"):
        if source.suffix:
            source.write_bytes(random.Random(1).randbytes(BLOCK))
        else:
            source.mkdir()
        blocks, wrapped = encode(source, owner, ecc)
        dest = tmp_path / f"out-{source.name}"
        decoder = RestoreDecoder(dest, BACKUP_ID, ecc, VersionKey.open(owner, wrapped))
        for block in blocks:
            decoder.feed(block.number, any_n(block, ecc, 5))
        assert decoder.finalize() == [source.name]
        assert snapshot(dest / source.name) == snapshot(source)


def test_threaded_encoder_matches_and_is_lazy(tree: Path, tmp_path: Path, owner: PrivateKey) -> None:
    ecc = EccMap.for_suppliers(2)
    version_key = VersionKey.create(owner.public_key())
    with ThreadPoolExecutor(max_workers=2) as pool:
        encoder = BackupEncoder(tree, BACKUP_ID, ecc, version_key, block_size=BLOCK, executor=pool, depth=2)
        stream = iter(encoder)
        first = next(stream)
        assert first.number == 0 and encoder.bytes_read < encoder.total_size() // 2  # not read ahead
        blocks = [first, *stream]
    decoder = RestoreDecoder(tmp_path / "out", BACKUP_ID, ecc, version_key)
    for block in blocks:
        decoder.feed(block.number, any_n(block, ecc, 9))
    decoder.finalize()
    assert snapshot(tmp_path / "out" / "Docs") == snapshot(tree)


@pytest.fixture
def encoded(tree: Path, owner: PrivateKey) -> tuple[EccMap, list[EncodedBlock], VersionKey]:
    ecc = EccMap.for_suppliers(4)
    blocks, wrapped = encode(tree, owner, ecc)
    return ecc, blocks, VersionKey.open(owner, wrapped)


def test_tampered_share_is_caught_and_then_routed_around(
    encoded: tuple[EccMap, list[EncodedBlock], VersionKey], tmp_path: Path
) -> None:
    ecc, blocks, version_key = encoded
    decoder = RestoreDecoder(tmp_path / "out", BACKUP_ID, ecc, version_key)
    decoder.feed(0, any_n(blocks[0], ecc, 0))
    shares = dict(enumerate(blocks[1].shares))
    tampered = bytearray(shares[2])
    tampered[100] ^= 0x80
    shares[2] = bytes(tampered)
    exact = {i: shares[i] for i in (0, 1, 2, 5)}
    with pytest.raises(AuthenticationError):
        decoder.feed(1, exact)  # no spare share: nothing to fall back on
    assert decoder.next_block == 1  # a failed block leaves the decoder as it was
    assert decoder.feed(1, {**exact, 6: shares[6]}).suspect == 2
    rebuilt = recover_block(ecc, version_key.key, BACKUP_ID, 1, shares)
    assert rebuilt.suspect == 2 and 2 not in rebuilt.used
    for block in blocks[2:]:
        decoder.feed(block.number, any_n(block, ecc, 3))
    decoder.finalize()


def test_swapped_or_misplaced_blocks_fail(
    encoded: tuple[EccMap, list[EncodedBlock], VersionKey], tmp_path: Path
) -> None:
    ecc, blocks, version_key = encoded
    decoder = RestoreDecoder(tmp_path / "out", BACKUP_ID, ecc, version_key)
    with pytest.raises(AuthenticationError, match="expected block 0"):
        decoder.feed(0, any_n(blocks[1], ecc, 1))
    with pytest.raises(ValueError, match="in order"):
        decoder.feed(1, any_n(blocks[1], ecc, 1))
    other = RestoreDecoder(tmp_path / "other", OTHER_VERSION, ecc, version_key)
    with pytest.raises(AuthenticationError):
        other.feed(0, any_n(blocks[0], ecc, 1))  # same key, another version: refused
    decoder.abort()
    other.abort()


def test_dropped_last_block_restores_nothing(
    encoded: tuple[EccMap, list[EncodedBlock], VersionKey], tmp_path: Path
) -> None:
    ecc, blocks, version_key = encoded
    dest = tmp_path / "out"
    (dest / "Docs").mkdir(parents=True)
    (dest / "Docs" / "one-block.bin").write_bytes(b"keep me")
    decoder = RestoreDecoder(dest, BACKUP_ID, ecc, version_key)
    for block in blocks[:-1]:
        decoder.feed(block.number, any_n(block, ecc, 4))
    with pytest.raises(IncompleteBackupError, match="without its last block"):
        decoder.finalize()
    decoder.abort()
    assert sorted(p.relative_to(dest).as_posix() for p in dest.rglob("*")) == ["Docs", "Docs/one-block.bin"]
    assert (dest / "Docs" / "one-block.bin").read_bytes() == b"keep me"
    with pytest.raises(ValueError, match="after the last block"):
        finished = RestoreDecoder(tmp_path / "again", BACKUP_ID, ecc, version_key)
        for block in [*blocks, blocks[-1]]:
            finished.feed(block.number, any_n(block, ecc, 4))
