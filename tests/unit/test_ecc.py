"""ecc/NxN maps: any N of 2N shares rebuild a block, fewer do not, corruption is the AEAD's job."""

from __future__ import annotations

import itertools
import random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bitdust.crypto.aead import AuthenticationError, new_key
from bitdust.storage.ecc import SUPPLIER_COUNTS, EccError, EccMap
from bitdust.storage.ids import PieceKind
from bitdust.storage.pipeline.block_crypto import open_block, seal_block

BACKUP_ID = "0/1/F20160313043757PM"


def _block(length: int, seed: int) -> bytes:
    return random.Random(seed).randbytes(length)


@pytest.mark.parametrize("n", SUPPLIER_COUNTS)
def test_map_shape(n: int) -> None:
    ecc = EccMap.from_name(f"ecc/{n}x{n}")
    assert ecc == EccMap.for_suppliers(n)
    assert (ecc.name, ecc.suppliers, ecc.k, ecc.m) == (f"ecc/{n}x{n}", n, n, 2 * n)
    for supplier in range(n):
        assert ecc.share_index(supplier, PieceKind.DATA) == supplier
        assert ecc.share_index(supplier, "Parity") == n + supplier
    for index in range(2 * n):
        assert ecc.share_index(*ecc.share_owner(index)) == index
    with pytest.raises(EccError):
        ecc.share_owner(2 * n)
    with pytest.raises(EccError):
        ecc.share_index(n, PieceKind.DATA)


@pytest.mark.parametrize("name", ["ecc/4x5", "ecc/5x5", "ECC/4x4", "4x4", "ecc/x", "ecc/04x04", "ecc/4x4 ", ""])
def test_bad_map_names(name: str) -> None:
    with pytest.raises(EccError):
        EccMap.from_name(name)


def test_unknown_supplier_count() -> None:
    with pytest.raises(EccError, match="no ECC map for 3 suppliers"):
        EccMap.for_suppliers(3)


@pytest.mark.parametrize("n", [2, 4])
@pytest.mark.parametrize("length", [0, 1, 7, 1000, 4099])
def test_every_subset_decodes_small_maps(n: int, length: int) -> None:
    ecc = EccMap.for_suppliers(n)
    block = _block(length, n * 10000 + length)
    shares = ecc.encode(block)
    assert len(shares) == 2 * n
    assert {len(s) for s in shares} == {ecc.share_size(length)}
    for subset in itertools.combinations(range(2 * n), n):
        assert ecc.decode({i: shares[i] for i in subset}, length) == block


@settings(max_examples=150, deadline=None)
@given(
    n=st.sampled_from(SUPPLIER_COUNTS),
    length=st.integers(min_value=0, max_value=20000),
    seed=st.integers(min_value=0, max_value=2**32),
)
def test_any_n_shares_decode(n: int, length: int, seed: int) -> None:
    ecc = EccMap.for_suppliers(n)
    block = _block(length, seed)
    shares = ecc.encode(block)
    subset = random.Random(seed).sample(range(2 * n), n)
    assert ecc.decode({i: shares[i] for i in subset}, length) == block
    padded = ecc.decode({i: shares[i] for i in subset})
    assert len(padded) == n * ecc.share_size(length)
    assert padded[:length] == block and not any(padded[length:])


@pytest.mark.parametrize("n", SUPPLIER_COUNTS)
def test_all_parity_and_extra_shares_decode(n: int) -> None:
    ecc = EccMap.for_suppliers(n)
    block = _block(5000, n)
    shares = ecc.encode(block)
    assert ecc.decode({i: shares[i] for i in range(n, 2 * n)}, len(block)) == block
    assert ecc.decode(dict(enumerate(shares)), len(block)) == block


@pytest.mark.parametrize("n", SUPPLIER_COUNTS)
def test_too_few_shares_raise(n: int) -> None:
    ecc = EccMap.for_suppliers(n)
    shares = ecc.encode(_block(3000, n))
    subset = random.Random(n).sample(range(2 * n), n - 1)
    with pytest.raises(EccError, match=f"needs {n} shares"):
        ecc.decode({i: shares[i] for i in subset}, 3000)


def test_mismatched_or_foreign_shares_raise() -> None:
    ecc = EccMap.for_suppliers(4)
    shares = ecc.encode(_block(4000, 1))
    good = {i: shares[i] for i in range(4)}
    with pytest.raises(EccError, match="one non-zero size"):
        ecc.decode({**good, 0: shares[0][:-1]}, 4000)
    with pytest.raises(EccError, match="out of range"):
        ecc.decode({**good, 8: shares[0]}, 4000)
    with pytest.raises(EccError, match="does not fit"):
        ecc.decode(good, 4 * len(shares[0]) + 1)


@pytest.mark.parametrize("n", SUPPLIER_COUNTS)
def test_corrupt_share_gives_a_block_that_fails_aead(n: int) -> None:
    """zfec cannot tell a bad share; the rebuilt block must then fail its tag."""
    ecc = EccMap.for_suppliers(n)
    key = new_key()
    sealed = seal_block(key, BACKUP_ID, 0, True, _block(10000, n))
    shares = ecc.encode(sealed)
    assert open_block(key, BACKUP_ID, 0, ecc.decode(dict(enumerate(shares)))).plaintext == _block(10000, n)
    # a Data share decoded as is, and a Parity share that goes into the arithmetic
    for bad, used in ((1, list(range(n))), (n, [*range(1, n), n])):
        tampered = {i: shares[i] for i in used}
        tampered[bad] = bytes([tampered[bad][0] ^ 0x01]) + tampered[bad][1:]
        rebuilt = ecc.decode(tampered)
        with pytest.raises(AuthenticationError):
            open_block(key, BACKUP_ID, 0, rebuilt)


def test_data_shares_are_views_of_the_block_not_copies() -> None:
    """A backup moves megabytes per block: the Data shares of an evenly split block are
    slices of it (only Parity is new memory); a padded block's last share is a copy."""
    ecc = EccMap(4)
    block = bytearray(_block(4 * 1024, 7))
    shares = ecc.encode(block)
    for index in range(ecc.k):
        share = shares[index]
        assert isinstance(share, memoryview) and share.obj is block
        assert bytes(share) == bytes(block[index * 1024:(index + 1) * 1024])
    padded = ecc.encode(block[:-1])
    assert bytes(padded[3]) == bytes(block[3 * 1024:-1]) + b"\0"
    assert ecc.decode(dict(enumerate(shares[ecc.k:], ecc.k)), len(block)) == block


def test_pieces_by_supplier_puts_each_suppliers_data_and_parity_together() -> None:
    ecc = EccMap(4)
    grouped = ecc.pieces_by_supplier("0/1/F20240101120000PM", 7, enumerate(f"share{i}" for i in range(8)))
    assert grouped == {s: [(s, f"0/1/F20240101120000PM/7-{s}-Data", f"share{s}"),
                           (4 + s, f"0/1/F20240101120000PM/7-{s}-Parity", f"share{4 + s}")] for s in range(4)}
    assert ecc.pieces_by_supplier("0/1/F20240101120000PM", 0, [(6, b"x")]) == {
        2: [(6, "0/1/F20240101120000PM/0-2-Parity", b"x")]}
