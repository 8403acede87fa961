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

from collections.abc import Callable, Generator, Iterable, Sequence
from dataclasses import dataclass, field
from functools import partial
from typing import Any, Protocol

from twisted.internet.defer import Deferred, DeferredList, inlineCallbacks
from twisted.python.failure import Failure

from bitdust.storage.ecc import EccMap
from bitdust.storage.restore.share_fetch import PieceSource, ShareFetcher, SupplierHealth
from bitdust.storage.restore.verify import NeedMoreShares, VerifiedBlock, reencode, verify_block

ThreadRunner = Callable[[Callable[[], Any]], Deferred[Any]]


class PieceMover(PieceSource, Protocol):
    """What a rebuild needs from DataMotion: fetching and sending."""

    def send_pieces(self, position: int, pieces: Sequence[tuple[str, bytes | memoryview]]) -> Deferred[None]:
        """One packet of pieces for one supplier, acknowledged together."""


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
def fetch_verified(source: PieceSource, run: ThreadRunner, ecc: EccMap, key: bytes, backup_id: str, number: int,
                   health: SupplierHealth, timeout: float, outcome: BlockOutcome, skip: frozenset[int] = frozenset(),
                   storage: str | None = None) -> Generator[Any, Any, VerifiedBlock | None]:
    """Block ``number`` fetched (any N shares but ``skip``) and verified in a worker thread;
    None when it cannot be had (``outcome.errors`` says why). Shares that fail verification
    are dropped and others fetched instead; ``outcome.bad`` counts them. ``storage`` is where
    the pieces are when it is not ``backup_id`` (a re-encoded generation, see
    :func:`bitdust.storage.ids.storage_id`); the AEAD tag always authenticates ``backup_id``.
    Shared by rebuild and re-encoding (:mod:`bitdust.storage.reencode`)."""
    fetcher = ShareFetcher(source, ecc, storage or backup_id, number, health, timeout, skip=skip)
    wanted = ecc.k
    for _attempt in range(ecc.m + 1):  # each retry holds one more share, or the fetcher is exhausted
        shares = yield fetcher.want(wanted)
        if len(shares) < ecc.k:
            outcome.errors.append(f"block {number}: {len(shares)} good pieces of the {ecc.k} needed; "
                                  f"missing or bad: {fetcher.missing_report()}")
            return None
        try:
            block: VerifiedBlock = yield run(partial(verify_block, ecc, key, backup_id, number, shares))
        except NeedMoreShares as exc:
            fetcher.reject(exc.bad, "it is empty")
            outcome.bad += len(exc.bad)
            if fetcher.exhausted:
                outcome.errors.append(f"block {number}: no {ecc.k} of the pieces fetched verify; "
                                      f"missing or bad: {fetcher.missing_report()}")
                return None
            wanted = max(ecc.k, len(fetcher.shares) + 1)
            continue
        fetcher.reject(block.bad, "it does not match the verified block")
        outcome.bad += len(block.bad)
        return block
    outcome.errors.append(f"block {number}: no {ecc.k} of the pieces fetched verify")
    return None


@inlineCallbacks
def rebuild_block(mover: PieceMover, run: ThreadRunner, ecc: EccMap, key: bytes, backup_id: str, number: int,
                  missing: frozenset[int], health: SupplierHealth, timeout: float,
                  storage: str | None = None) -> Generator[Any, Any, BlockOutcome]:
    """Make and send shares ``missing`` of block ``number`` (and any found corrupt);
    never fails, the outcome says what did not work. ``storage``: see :func:`fetch_verified`."""
    outcome = BlockOutcome(backup_id, number)
    block = yield fetch_verified(mover, run, ecc, key, backup_id, number, health, timeout, outcome, missing, storage)
    if block is None:
        return outcome
    # Shares found corrupt on the way are made again too, so sending them heals those pieces.
    made: dict[int, bytes] = yield run(partial(reencode, ecc, block.sealed, missing | block.bad))
    sent = yield send_shares(mover, ecc, storage or backup_id, number, made.items())
    for index, _piece_id, failure in sent:
        if failure is None:
            outcome.sent.append(index)
        else:
            outcome.errors.append(f"block {number}: sending share {index}: {failure.getErrorMessage()}")
    return outcome


@inlineCallbacks
def send_shares(mover: PieceMover, ecc: EccMap, storage_id: str, number: int,
                shares: Iterable[tuple[int, bytes]]) -> Generator[Any, Any, list[tuple[int, str, Failure | None]]]:
    """Every supplier its shares of block ``number`` in one packet (as a backup sends
    them); per share: its index, its piece ID, and None or the failure of its packet."""
    per_supplier = ecc.pieces_by_supplier(storage_id, number, shares)
    results = yield DeferredList([mover.send_pieces(position, [(piece_id, data) for _i, piece_id, data in pieces])
                                  for position, pieces in per_supplier.items()], consumeErrors=True)
    return [(index, piece_id, None if ok else result)
            for pieces, (ok, result) in zip(per_supplier.values(), results, strict=True)
            for index, piece_id, _data in pieces]
