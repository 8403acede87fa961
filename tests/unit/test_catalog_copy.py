"""The encrypted catalog copy: opens with the owner's key only, under its own name only."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from twisted.internet.defer import Deferred
from twisted.internet.task import Clock

from bitdust.crypto.keys import PrivateKey
from bitdust.home import Home
from bitdust.storage.backups.catalog_copy import (
    CHUNK_SIZE,
    CatalogCopyError,
    chunk_count,
    chunk_piece_id,
    copies_in,
    copy_length,
    newest_first,
    open_catalog,
    seal_catalog,
    split_chunks,
)
from bitdust.storage.backups.catalog_sync import CatalogCopier
from bitdust.storage.catalog.localpath import LocalPath
from bitdust.storage.catalog.model import ItemType
from bitdust.storage.catalog.tree import Catalog
from bitdust.storage.ids import CATALOG_PATH_ID, is_catalog_copy, parse_piece_id

V1 = "F20240101120000PM"
V2 = "F20240101120001PM"


@pytest.fixture(scope="module")
def owner() -> PrivateKey:
    return PrivateKey.generate(2048)


def sample() -> Catalog:
    catalog = Catalog()
    catalog.map_path(LocalPath("/home/u/Привет.txt", ItemType.FILE, 5))
    return catalog


def test_round_trip_and_refusals(owner: PrivateKey) -> None:
    catalog = sample()
    blob = seal_catalog(catalog.export_bytes(), owner.public_key(), V1)
    assert "Привет".encode() not in blob
    assert copy_length(blob) == len(blob) and chunk_count(len(blob)) == 1
    assert open_catalog(blob, owner, V1).export_bytes() == catalog.export_bytes()
    with pytest.raises(CatalogCopyError, match="does not open"):
        open_catalog(blob, PrivateKey.generate(2048), V1)
    with pytest.raises(CatalogCopyError, match="does not verify"):
        open_catalog(blob, owner, V2)  # passed off under another name
    tampered = bytearray(blob)
    tampered[-1] ^= 1
    with pytest.raises(CatalogCopyError):
        open_catalog(bytes(tampered), owner, V1)
    with pytest.raises(CatalogCopyError):
        open_catalog(blob[:-5], owner, V1)
    with pytest.raises(CatalogCopyError):
        copy_length(b"nonsense-bytes-here")


def test_piece_names_and_listing() -> None:
    piece = chunk_piece_id(V2, 0, 3)
    assert piece == f"{CATALOG_PATH_ID}/{V2}/0-3-Data" and is_catalog_copy(piece)
    assert parse_piece_id(piece).supplier == 3
    listed = {piece: 10, chunk_piece_id(V1, 0, 3): 9, "0/F20240101120000PM/0-3-Data": 1}
    assert copies_in(listed) == {V2: {0: piece}, V1: {0: chunk_piece_id(V1, 0, 3)}}
    assert newest_first({V1, V2}) == [V2, V1]
    assert [len(c) for c in split_chunks(b"x" * (CHUNK_SIZE + 1))] == [CHUNK_SIZE, 1]


def test_the_last_copy_before_stopping_is_bounded_and_starts_nothing_after(tmp_path: Path,
                                                                           monkeypatch: pytest.MonkeyPatch) -> None:
    """A stop must not hang on a supplier that no longer answers, and the bound must not
    turn into one more upload (cancelling upload_now() would start its re-check)."""
    clock = Clock()
    node: Any = SimpleNamespace(home=Home(tmp_path / "home"), clock=clock)
    node.home.ensure()
    copier = CatalogCopier(node, Catalog, lambda: None, lambda: None, lambda: 4)  # type: ignore[arg-type,return-value]
    hanging: Deferred[bool] = Deferred()
    copier.uploading = hanging  # an upload to a supplier that went away
    started: list[int] = []

    def upload_now() -> Deferred[bool]:
        started.append(1)
        return Deferred()

    monkeypatch.setattr(copier, "upload_now", upload_now)
    outcome = copier.final_copy(5.0)
    clock.advance(4.9)
    assert not outcome.called
    clock.advance(0.2)
    assert outcome.called and outcome.result is False
    hanging.callback(True)  # it lands late: nothing more happens
    assert started == [] and outcome.result is False


def test_the_last_copy_reports_a_copy_that_landed(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    clock = Clock()
    node: Any = SimpleNamespace(home=Home(tmp_path / "home"), clock=clock)
    node.home.ensure()
    copier = CatalogCopier(node, Catalog, lambda: None, lambda: None, lambda: 4)  # type: ignore[arg-type,return-value]
    landing: Deferred[bool] = Deferred()
    monkeypatch.setattr(copier, "upload_now", lambda: landing)
    outcome = copier.final_copy(5.0)
    landing.callback(True)
    assert outcome.called and outcome.result is True and not clock.getDelayedCalls()
