"""Decoding one block from shares of unknown honesty, and naming the bad shares.

Runs in a worker thread (zfec and AES-GCM of a whole block). Restore and rebuild both
use it; rebuild also needs the sealed bytes themselves (:attr:`VerifiedBlock.sealed`),
because it re-encodes them into the missing shares: a new seal would have a new nonce
and its shares would not fit the ones the other suppliers keep.

Unlike :func:`bitdust.storage.pipeline.decoder.recover_block`, which leaves out one share
at a time, this tries a bounded number of share combinations, so two bad shares among
N + 2 are found too; and once a block opened, every other share given is compared with
a re-encoding of it, so each corrupt or foreign piece is named exactly (to be counted,
and never passed on by a rebuild).
"""

from __future__ import annotations

import itertools
from collections.abc import Mapping
from dataclasses import dataclass

from bitdust.crypto.aead import AuthenticationError
from bitdust.storage.ecc import EccError, EccMap
from bitdust.storage.pipeline.block_crypto import OpenedBlock, open_block

MAX_TRIES = 64
"""Share combinations tried for one block before more shares are asked for (each try is
a zfec decode and an AES-GCM check of one block)."""


class NeedMoreShares(Exception):
    """No combination of the shares given opens the block; ``bad`` are shares known to
    be wrong without opening it (empty ones), ``tried`` says how many combinations failed."""

    def __init__(self, number: int, bad: frozenset[int], tried: int, reason: str) -> None:
        super().__init__(f"block {number}: {reason}")
        self.number = number
        self.bad = bad
        self.tried = tried


@dataclass(frozen=True)
class VerifiedBlock:
    opened: OpenedBlock
    sealed: bytes
    """The padded sealed block (``k * share_size`` bytes): re-encoding it gives back
    exactly the 2N shares the backup made."""
    used: tuple[int, ...]
    bad: frozenset[int]
    """Shares given that do not match the verified block: corrupt or foreign pieces."""


def verify_block(ecc: EccMap, key: bytes, backup_id: str, number: int,
                 shares: Mapping[int, bytes]) -> VerifiedBlock:
    """Open block ``number`` from ``shares`` (indexes 0..2N-1); NeedMoreShares if none of
    the combinations tried verifies. Data shares are tried first: they need no arithmetic.

    zfec gives every share of a block one size, so only shares of one size are combined,
    the sizes held by most shares first. A share is named bad only once the block opened
    (it differs from the re-encoded block) or when it is empty: before that, a size that
    differs from the others proves nothing about *which* side is wrong (two suppliers that
    truncate the same way outnumber the honest shares of the first fetch), and blaming
    honest shares would both count them against good suppliers and throw away the very
    shares the block needs."""
    bad = frozenset(i for i, data in shares.items() if not data)
    groups = _size_groups(shares)
    usable = max((len(group) for group in groups), default=0)
    if usable < ecc.k:
        raise NeedMoreShares(number, bad, 0, f"{usable} shares of one size, {ecc.k} needed")
    tried = 0
    last_error = ""
    for group in groups:
        if len(group) < ecc.k:
            continue
        for combo in itertools.combinations(group, ecc.k):
            if tried >= MAX_TRIES:
                break
            tried += 1
            try:
                sealed = ecc.decode({i: shares[i] for i in combo})
                opened = open_block(key, backup_id, number, sealed)
            except (AuthenticationError, EccError) as exc:
                last_error = str(exc)
                continue
            return VerifiedBlock(opened, sealed, combo, bad | _mismatched(ecc, sealed, shares, combo))
    raise NeedMoreShares(number, bad, tried, f"no {ecc.k} of the {len(shares)} shares verify ({last_error})")


def _size_groups(shares: Mapping[int, bytes]) -> list[list[int]]:
    """Indexes of the non-empty shares grouped by size: biggest group first, ties by lowest index."""
    by_size: dict[int, list[int]] = {}
    for index in sorted(shares):
        if shares[index]:
            by_size.setdefault(len(shares[index]), []).append(index)
    return sorted(by_size.values(), key=lambda group: (-len(group), group[0]))


def _mismatched(ecc: EccMap, sealed: bytes, shares: Mapping[int, bytes], used: tuple[int, ...]) -> frozenset[int]:
    """Shares outside ``used`` that differ from the re-encoded block (encoded only when
    there are such shares: the common case of exactly N shares costs nothing)."""
    others = [i for i in shares if i not in used]
    if not others:
        return frozenset()
    expected = ecc.encode(sealed)
    return frozenset(i for i in others if shares[i] != expected[i])


def reencode(ecc: EccMap, sealed: bytes, indexes: set[int] | frozenset[int]) -> dict[int, bytes | memoryview]:
    """Shares ``indexes`` of a verified block, as the backup made them."""
    shares = ecc.encode(sealed)
    return {i: shares[i] for i in sorted(indexes)}
