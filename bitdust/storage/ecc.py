"""Erasure coding of blocks with zfec: the ``ecc/NxN`` maps.

Map ``ecc/NxN`` spreads a block over N suppliers with zfec ``k = N, m = 2N``: supplier
``i`` keeps share ``i`` (``<block>-<i>-Data``) and share ``N + i`` (``<block>-<i>-Parity``),
and any N of the 2N shares give the block back.

Padding: zfec wants k equal-sized inputs, so :meth:`EccMap.encode` zero-pads the block to
``k * share_size``. Shares carry no header; the caller learns the true length either from
its own records (``decode(shares, length)``) or from the block itself: the pipeline puts a
fixed-size, authenticated header first in every block, so it decodes with
``length=None`` (padding kept), reads the header and cuts. zfec detects nothing: a
corrupt share yields a wrong block, and the AEAD tag of the block is what catches it.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import TypeVar

import zfec

from bitdust.storage.ids import PieceKind, make_piece_id

T = TypeVar("T")

SUPPLIER_COUNTS: tuple[int, ...] = (2, 4, 7, 13, 18, 26, 64)


class EccError(ValueError):
    """A block cannot be encoded or rebuilt (unknown map, too few or mismatched shares)."""


class EccMap:
    """One ``ecc/NxN`` map with its zfec encoder and decoder (both safe to share by threads)."""

    __slots__ = ("_decoder", "_encoder", "suppliers")

    def __init__(self, suppliers: int) -> None:
        if suppliers not in SUPPLIER_COUNTS:
            raise EccError(f"no ECC map for {suppliers} suppliers (known: {list(SUPPLIER_COUNTS)})")
        self.suppliers = suppliers
        self._encoder = zfec.Encoder(self.k, self.m)
        self._decoder = zfec.Decoder(self.k, self.m)

    @classmethod
    def from_name(cls, name: str) -> EccMap:
        """``'ecc/4x4'`` -> the map for 4 suppliers."""
        prefix, _, dims = name.partition("/") if isinstance(name, str) else ("", "", "")
        left, _, right = dims.partition("x")
        if prefix != "ecc" or not left.isdigit() or left != right or not left.isascii():
            raise EccError(f"bad ECC map name {name!r}: expected like 'ecc/4x4'")
        ecc = cls(int(left))
        if ecc.name != name:  # 'ecc/04x04' would name the same map twice
            raise EccError(f"bad ECC map name {name!r}: did you mean {ecc.name!r}?")
        return ecc

    @classmethod
    def for_suppliers(cls, count: int) -> EccMap:
        return cls(count)

    @property
    def name(self) -> str:
        return f"ecc/{self.suppliers}x{self.suppliers}"

    @property
    def k(self) -> int:
        """Shares needed to rebuild a block."""
        return self.suppliers

    @property
    def m(self) -> int:
        """Shares made per block."""
        return 2 * self.suppliers

    def __repr__(self) -> str:
        return f"EccMap({self.name!r})"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, EccMap) and other.suppliers == self.suppliers

    def __hash__(self) -> int:
        return hash(self.suppliers)

    # --- share numbering -------------------------------------------------------

    def share_index(self, supplier: int, kind: PieceKind | str) -> int:
        """(supplier, Data|Parity) -> zfec share number."""
        if not 0 <= supplier < self.suppliers:
            raise EccError(f"supplier {supplier} is out of range for {self.name}")
        return supplier if PieceKind(kind) is PieceKind.DATA else self.suppliers + supplier

    def share_owner(self, index: int) -> tuple[int, PieceKind]:
        """zfec share number -> (supplier, Data|Parity)."""
        if not 0 <= index < self.m:
            raise EccError(f"share {index} is out of range for {self.name}")
        if index < self.suppliers:
            return index, PieceKind.DATA
        return index - self.suppliers, PieceKind.PARITY

    def pieces_by_supplier(self, storage_id: str, number: int,
                           shares: Iterable[tuple[int, T]]) -> dict[int, list[tuple[int, str, T]]]:
        """Shares of block ``number`` (share index, bytes) grouped by the supplier that
        keeps them, each with its piece ID: a supplier's pieces of a block (its Data and
        Parity) travel in one packet."""
        grouped: dict[int, list[tuple[int, str, T]]] = {}
        for index, data in shares:
            supplier, kind = self.share_owner(index)
            grouped.setdefault(supplier, []).append((index, make_piece_id(storage_id, number, supplier, kind), data))
        return grouped

    def share_size(self, length: int) -> int:
        """Bytes per share for a block of ``length`` bytes (at least 1: zfec needs data)."""
        return max(1, -(-length // self.k))

    # --- coding ----------------------------------------------------------------

    def encode(self, block: bytes | bytearray) -> list[bytes | memoryview]:
        """Split ``block`` into ``m`` shares, any ``k`` of which rebuild it (zero padded).

        The first ``k`` (Data) shares are views of ``block`` itself where no padding was
        needed, not copies: the caller must not change ``block`` while it uses them."""
        size = self.share_size(len(block))
        view = memoryview(block)
        full = len(block) // size  # inputs that need no padding: slice without copying
        inputs: list[bytes | memoryview] = [view[i * size : (i + 1) * size] for i in range(min(full, self.k))]
        if len(inputs) < self.k:
            tail = view[len(inputs) * size :]
            inputs.append(b"".join((tail, bytes(size - len(tail)))))  # one copy, zero padded
            inputs.extend(bytes(size) for _ in range(self.k - len(inputs)))
        return list(self._encoder.encode(tuple(inputs)))

    def decode(self, shares: Mapping[int, bytes], length: int | None = None) -> bytes:
        """Rebuild a block from any ``k`` shares (Data shares preferred: they cost nothing).

        With ``length`` the padding is cut; with None the padded ``k * share_size`` bytes
        are returned and the caller cuts (see the module docstring).
        """
        if len(shares) < self.k:
            raise EccError(f"{self.name} needs {self.k} shares to rebuild a block, got {len(shares)}")
        for index in shares:
            self.share_owner(index)
        chosen = sorted(shares)[: self.k]
        sizes = {len(shares[i]) for i in chosen}
        if len(sizes) != 1 or 0 in sizes:
            raise EccError(f"shares of one block must have one non-zero size, got sizes {sorted(sizes)}")
        (size,) = sizes
        if length is not None and not 0 <= length <= size * self.k:
            raise EccError(f"length {length} does not fit {self.k} shares of {size} bytes")
        if chosen == list(range(self.k)):
            parts = [shares[i] for i in chosen]
        else:
            parts = self._decoder.decode(tuple(shares[i] for i in chosen), tuple(chosen))
        data = b"".join(parts)
        return data if length is None else data[:length]
