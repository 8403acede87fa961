"""Shared by the restore/rebuild unit and grid tests: a sample tree, pieces made with the
real BackupEncoder, a fake DataMotion, and a recorder of automat actions."""

from __future__ import annotations

import os
import random
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from twisted.internet.defer import Deferred, fail, maybeDeferred, succeed

from bitdust.automats.automat import Automat
from bitdust.crypto.keys import PublicKey
from bitdust.storage.ecc import EccMap
from bitdust.storage.ids import make_piece_id
from bitdust.storage.motion.errors import NoSupplier, PieceRefused
from bitdust.storage.pipeline.block_crypto import VersionKey
from bitdust.storage.pipeline.encoder import BackupEncoder

MTIME = 1_500_000_000


def make_tree(root: Path, block: int) -> Path:
    """Nested folders, empty files, an empty folder, non-ASCII names, a file of several
    blocks and one of exactly one block; fixed modes and mtimes."""
    top = root / "Docs"
    (top / "a" / "b" / "c").mkdir(parents=True)
    (top / "empty-dir").mkdir()
    (top / "ünïcødé 文件").mkdir()
    rng = random.Random(5)
    files = {
        "a/small.txt": b"hello\n",
        "a/b/empty.bin": b"",
        "a/b/c/multi.bin": rng.randbytes(4 * block + 321),
        "one-block.bin": rng.randbytes(block),
        "ünïcødé 文件/naïve.txt": "contenu élégant ".encode() * 50,
    }
    for rel, data in files.items():
        path = top / rel
        path.write_bytes(data)
        os.chmod(path, 0o640 if rel.endswith(".txt") else 0o600)
        os.utime(path, (MTIME, MTIME + len(rel)))
    os.chmod(top / "a" / "b", 0o750)
    return top


def snapshot(top: Path) -> dict[str, tuple[bytes | None, int, int]]:
    """relative name -> (bytes or None for folders, mode bits, mtime) of every entry."""
    found: dict[str, tuple[bytes | None, int, int]] = {}
    for dirpath, dirnames, filenames in os.walk(top):
        for name in dirnames + filenames:
            path = Path(dirpath) / name
            st = path.stat()
            data = path.read_bytes() if path.is_file() else None
            found[str(path.relative_to(top))] = (data, st.st_mode & 0o777, int(st.st_mtime))
    return found


def encode_pieces(source: Path, backup_id: str, ecc: EccMap, owner: PublicKey,
                  block: int) -> tuple[dict[str, bytes], VersionKey, int]:
    """Every piece of a backup of ``source``: piece ID -> bytes; also the key and block count."""
    version_key = VersionKey.create(owner)
    pieces: dict[str, bytes] = {}
    blocks = 0
    for encoded in BackupEncoder(source, backup_id, ecc, version_key, block_size=block):
        blocks += 1
        for index, share in enumerate(encoded.shares):
            position, kind = ecc.share_owner(index)
            pieces[make_piece_id(backup_id, encoded.number, position, kind)] = share
    return pieces, version_key, blocks


def position_of(piece_id: str) -> int:
    return int(piece_id.rpartition("/")[2].split("-")[1])


class FakeMotion:
    """DataMotion over dicts: ``stores[position]`` is what the supplier there holds.
    ``hold`` makes retrieves wait (to abort in the middle); ``dead`` positions fail."""

    def __init__(self, stores: dict[int, dict[str, bytes]]) -> None:
        self.stores = stores
        self.dead: set[int] = set()
        self.hold = False
        self.held_back: list[Deferred[bytes]] = []
        self.asked: list[str] = []
        self.sent: list[tuple[int, str]] = []
        self.packets: list[tuple[int, list[str]]] = []  # (position, piece IDs) of each send

    def supplier_at(self, position: int) -> str | None:
        return f"http://127.0.0.1/s{position}.xml" if position in self.stores else None

    def retrieve_piece(self, position: int, piece_id: str, timeout: float = 30.0) -> Deferred[bytes]:
        self.asked.append(piece_id)
        if position not in self.stores:
            return fail(NoSupplier(f"no supplier holds position {position} now"))
        if position in self.dead:
            return fail(PieceRefused("timeout", f"s{position} does not answer"))
        if self.hold:
            waiting: Deferred[bytes] = Deferred()
            self.held_back.append(waiting)
            return waiting
        data = self.stores[position].get(piece_id)
        if data is None:
            return fail(PieceRefused("not-found", f"{piece_id} is not here"))
        return succeed(data)

    def send_pieces(self, position: int, pieces: Sequence[tuple[str, bytes | memoryview]]) -> Deferred[None]:
        """One packet: every piece lands, or (supplier gone) none."""
        if position not in self.stores or position in self.dead:
            return fail(PieceRefused("timeout", f"s{position} does not answer"))
        for piece_id, data in pieces:
            self.stores[position][piece_id] = bytes(data)
            self.sent.append((position, piece_id))
        self.packets.append((position, [piece_id for piece_id, _data in pieces]))
        return succeed(None)

    def send_piece(self, position: int, piece_id: str, data: bytes) -> Deferred[None]:
        return self.send_pieces(position, [(piece_id, data)])


    def delete_backups(self, position: int, backup_ids: list[str]) -> Deferred[None]:
        """DeleteBackup: every piece under the given backup (or storage) IDs goes."""
        if position not in self.stores or position in self.dead:
            return fail(PieceRefused("timeout", f"s{position} does not answer"))
        prefixes = tuple(backup_id + "/" for backup_id in backup_ids)
        for piece_id in [p for p in self.stores[position] if p.startswith(prefixes)]:
            del self.stores[position][piece_id]
        return succeed(None)


def spread(pieces: dict[str, bytes], suppliers: int) -> dict[int, dict[str, bytes]]:
    stores: dict[int, dict[str, bytes]] = {p: {} for p in range(suppliers)}
    for piece_id, data in pieces.items():
        stores[position_of(piece_id)][piece_id] = data
    return stores


def run_now(fn: Callable[[], Any]) -> Deferred[Any]:
    """The 'thread pool' of unit tests: run at once, same thread."""
    return maybeDeferred(fn)


def record_actions(machine: Automat) -> list[str]:
    """Wrap every ``do_*`` of one machine instance so its calls are listed in order."""
    calls: list[str] = []
    for name in dir(type(machine)):
        if name.startswith("do_"):
            original = getattr(machine, name)

            def wrapper(*args: Any, _original: Any = original, _name: str = name[3:], **kwargs: Any) -> Any:
                calls.append(_name)
                return _original(*args, **kwargs)

            setattr(machine, name, wrapper)
    return calls
