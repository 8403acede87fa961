"""Rebuilding the missing shares of one block: fetch any N others, verify, re-encode, send.

The shares are fetched from the positions that still hold them (the shares being
rebuilt are never asked for), decoded and checked against the block's AEAD tag in a
worker thread (:func:`bitdust.storage.restore.verify.verify_block`), so a corrupt or
foreign piece is never the source of a rebuilt one: it is named, dropped, and one more
share is fetched instead. The sealed block is then re-encoded (not re-sealed: a new
nonce would give shares that do not fit the ones the other suppliers keep) and each
missing share goes to its position through data motion.
"""

from __future__ import annotations

from collections.abc import Callable, Generator
from dataclasses import dataclass, field
from functools import partial
from typing import Any, Protocol

from twisted.internet.defer import Deferred, DeferredList, inlineCallbacks

from bitdust.storage.ecc import EccMap
from bitdust.storage.ids import make_piece_id
from bitdust.storage.restore.share_fetch import PieceSource, ShareFetcher, SupplierHealth
from bitdust.storage.restore.verify import NeedMoreShares, VerifiedBlock, reencode, verify_block

ThreadRunner = Callable[[Callable[[], Any]], Deferred[Any]]


class PieceMover(PieceSource, Protocol):
    """What a rebuild needs from DataMotion: fetching and sending."""

    def send_piece(self, position: int, piece_id: str, data: bytes) -> Deferred[None]: ...


@dataclass
class BlockOutcome:
    backup_id: str
    number: int
    sent: list[int] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    bad: int = 0
    """Pieces fetched that failed verification (corrupt or foreign)."""

    @property
    def ok(self) -> bool:
        return not self.errors


@inlineCallbacks
def rebuild_block(mover: PieceMover, run: ThreadRunner, ecc: EccMap, key: bytes, backup_id: str, number: int,
                  missing: frozenset[int], health: SupplierHealth, timeout: float) -> Generator[Any, Any, BlockOutcome]:
    """Make and send shares ``missing`` of block ``number`` (and any found corrupt);
    never fails, the outcome says what did not work."""
    outcome = BlockOutcome(backup_id, number)
    fetcher = ShareFetcher(mover, ecc, backup_id, number, health, timeout, skip=missing)
    wanted = ecc.k
    made: dict[int, bytes] | None = None
    while made is None:
        shares = yield fetcher.want(wanted)
        if len(shares) < ecc.k:
            outcome.errors.append(f"block {number}: {len(shares)} good pieces of the {ecc.k} needed; "
                                  f"missing or bad: {fetcher.missing_report()}")
            return outcome
        try:
            made, bad = yield run(partial(_verify_and_make, ecc, key, backup_id, number, shares, missing))
            fetcher.reject(bad, "it does not match the verified block")
            outcome.bad += len(bad)
        except NeedMoreShares as exc:
            fetcher.reject(exc.bad, "its size differs from the other pieces of the block")
            outcome.bad += len(exc.bad)
            if fetcher.exhausted:
                outcome.errors.append(f"block {number}: no {ecc.k} of the pieces fetched verify; "
                                      f"missing or bad: {fetcher.missing_report()}")
                return outcome
            wanted = max(ecc.k, len(fetcher.shares) + 1)
    sends = []
    for index, data in made.items():
        position, kind = ecc.share_owner(index)
        sends.append(mover.send_piece(position, make_piece_id(backup_id, number, position, kind), data))
    results = yield DeferredList(sends, consumeErrors=True)
    for index, (succeeded, result) in zip(made, results, strict=True):
        if succeeded:
            outcome.sent.append(index)
        else:
            outcome.errors.append(f"block {number}: sending share {index}: {result.getErrorMessage()}")
    return outcome


def _verify_and_make(ecc: EccMap, key: bytes, backup_id: str, number: int, shares: dict[int, bytes],
                     missing: frozenset[int]) -> tuple[dict[int, bytes], frozenset[int]]:
    """In a worker thread: the block must verify before anything is made from it. Shares
    found corrupt on the way are made again too, so sending them heals those pieces."""
    block: VerifiedBlock = verify_block(ecc, key, backup_id, number, shares)
    return reencode(ecc, block.sealed, missing | block.bad), block.bad
