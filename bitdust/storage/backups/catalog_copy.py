"""The encrypted catalog copy: its bytes, its pieces, and opening it with the key alone.

Every supplier keeps a whole copy (the catalog is small next to the data, and any one
supplier left is then enough to find everything). Format of the copy::

    header ">4sBQ": magic b"BDCT" | format 1 | length of what follows (u64)
    wrapped key length (u16) | data key wrapped with the owner's RSA key (RSA-OAEP)
    AES-256-GCM(data key, zstd(catalog export bytes)), associated data
        b"bitdust-catalog-1\\0" + version

A fresh data key per copy; the version (the copy's name) is authenticated, so a copy
cannot be passed off under another name. The copy is cut in chunks of at most
:data:`CHUNK_SIZE` stored as ``<CATALOG_PATH_ID>/<version>/<chunk>-<position>-Data``
(see :data:`bitdust.storage.ids.CATALOG_PATH_ID`); chunk 0 starts with the header, so a
reader learns how many chunks to fetch from the first one.
"""

from __future__ import annotations

import struct
from collections import defaultdict

import zstandard

from bitdust.crypto import aead
from bitdust.crypto.keys import PrivateKey, PublicKey
from bitdust.storage.catalog.model import CatalogError
from bitdust.storage.catalog.tree import Catalog
from bitdust.storage.ids import CATALOG_PATH_ID, IdError, PieceKind, make_piece_id, parse_piece_id, version_key

MAGIC = b"BDCT"
FORMAT = 1
_HEADER = struct.Struct(">4sBQ")
_WRAPPED = struct.Struct(">H")
_AD_PREFIX = b"bitdust-catalog-1\x00"
CHUNK_SIZE = 4 * 1024 * 1024
MAX_COPY_SIZE = 1 << 30
ZSTD_LEVEL = 3


class CatalogCopyError(ValueError):
    """A copy cannot be opened: damaged, truncated, foreign or another owner's."""


def seal_catalog(data: bytes, owner: PublicKey, version: str) -> bytes:
    """The encrypted copy of catalog export bytes (blocking: run it in a thread)."""
    key = aead.new_key()
    wrapped = owner.wrap(key)
    sealed = aead.encrypt(key, zstandard.ZstdCompressor(level=ZSTD_LEVEL).compress(data),
                          _AD_PREFIX + version.encode("ascii"))
    body = _WRAPPED.pack(len(wrapped)) + wrapped + sealed
    return _HEADER.pack(MAGIC, FORMAT, len(body)) + body


def copy_length(first_chunk: bytes) -> int:
    """Total bytes of the copy whose chunk 0 is ``first_chunk``."""
    if len(first_chunk) < _HEADER.size:
        raise CatalogCopyError("the catalog copy is shorter than its header")
    magic, fmt, length = _HEADER.unpack_from(first_chunk)
    if magic != MAGIC or fmt != FORMAT:
        raise CatalogCopyError(f"not a BitDust catalog copy (magic {magic!r}, format {fmt})")
    if length > MAX_COPY_SIZE:
        raise CatalogCopyError(f"a catalog copy of {length} bytes is beyond belief")
    return _HEADER.size + length


def chunk_count(total: int) -> int:
    return max(1, -(-total // CHUNK_SIZE))


def open_catalog(blob: bytes, owner: PrivateKey, version: str) -> Catalog:
    """The catalog in ``blob``; CatalogCopyError unless ``owner`` sealed it as ``version``
    (blocking: RSA unwrap, decryption, decompression, parsing)."""
    total = copy_length(blob)
    if len(blob) != total:
        raise CatalogCopyError(f"the catalog copy has {len(blob)} bytes, its header says {total}")
    view = memoryview(blob)[_HEADER.size:]
    (wrapped_len,) = _WRAPPED.unpack_from(view)
    wrapped = bytes(view[_WRAPPED.size:_WRAPPED.size + wrapped_len])
    try:
        key = owner.unwrap(wrapped)
    except Exception as exc:  # RSA-OAEP says only "decryption failed": another owner's key
        raise CatalogCopyError(f"the catalog copy's key does not open with this private key: {exc}") from None
    try:
        packed = aead.decrypt(key, bytes(view[_WRAPPED.size + wrapped_len:]), _AD_PREFIX + version.encode("ascii"))
    except aead.AuthenticationError as exc:
        raise CatalogCopyError(f"the catalog copy {version} does not verify: {exc}") from None
    try:
        data = zstandard.ZstdDecompressor().decompress(packed, max_output_size=MAX_COPY_SIZE * 8)
    except zstandard.ZstdError as exc:
        raise CatalogCopyError(f"the catalog copy {version} does not decompress: {exc}") from None
    try:
        return Catalog.import_bytes(data)
    except CatalogError as exc:
        raise CatalogCopyError(f"the catalog copy {version} opened but does not parse: {exc}") from None


def split_chunks(blob: bytes) -> list[bytes]:
    return [blob[i:i + CHUNK_SIZE] for i in range(0, len(blob), CHUNK_SIZE)] or [b""]


def chunk_piece_id(version: str, chunk: int, position: int) -> str:
    return make_piece_id(f"{CATALOG_PATH_ID}/{version}", chunk, position, PieceKind.DATA)


def copies_in(listing: dict[str, int]) -> dict[str, dict[int, str]]:
    """Catalog copies a supplier lists: version -> chunk number -> piece ID."""
    found: dict[str, dict[int, str]] = defaultdict(dict)
    for piece_id in listing:
        try:
            parsed = parse_piece_id(piece_id)
        except IdError:
            continue
        if parsed.path_id == CATALOG_PATH_ID and parsed.kind is PieceKind.DATA:
            found[parsed.version][parsed.block] = str(parsed)
    return dict(found)


def newest_first(versions: list[str] | set[str]) -> list[str]:
    return sorted(versions, key=version_key, reverse=True)
