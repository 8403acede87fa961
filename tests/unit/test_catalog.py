"""The catalog: IDs in both adding modes, trees, versions, persistence, corruption."""

from __future__ import annotations

import contextlib
import json
import os
import stat
import threading
from pathlib import Path
from typing import Any

import pytest
import pytest_twisted
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from twisted.internet.defer import DeferredList
from twisted.python.failure import Failure

from bitdust.storage.catalog import (
    Catalog,
    CatalogCorruptError,
    CatalogError,
    CatalogStore,
    ItemType,
    LocalPath,
    LocalPathError,
    VersionState,
    check_local_path,
    scan_tree,
)
from bitdust.storage.catalog.localpath import ScanEntry, TreeScan, normalize_local_path
from bitdust.util.fs import atomic_write

V1 = "F20160313043757PM"
V2 = "F20160315052257PM"
KEY = b"\x00wrapped-data-key\xff"


def file_(path: str, size: int = 10) -> LocalPath:
    return LocalPath(path, ItemType.FILE, size)


def dir_(path: str, size: int = 0) -> LocalPath:
    return LocalPath(path, ItemType.DIR, size)


def spec_catalog() -> Catalog:
    """Built so that the spec's example IDs come out."""
    catalog = Catalog()
    catalog.add_path(dir_("/Users/veselin/Desktop"))  # 0, 0/0, 0/0/0
    catalog.add_path(file_("/Users/veselin/Documents/python/python27.chm", 5754439))
    return catalog


def complete(catalog: Catalog, path_id: str, version: str = V1, size: int = 11 * 1024 * 1024) -> None:
    catalog.add_version(path_id, version, "ecc/4x4", KEY)
    catalog.mark_complete(f"{path_id}/{version}", blocks=1, size=size)


# -- IDs ------------------------------------------------------------------------------


def test_mirrored_ids_follow_the_spec_examples() -> None:
    catalog = spec_catalog()
    ids = {item.local_path: (item.path_id, item.type) for item in catalog.items()}
    assert ids["/Users"] == ("0", ItemType.PARENT)
    assert ids["/Users/veselin"] == ("0/0", ItemType.PARENT)
    assert ids["/Users/veselin/Desktop"] == ("0/0/0", ItemType.DIR)
    assert ids["/Users/veselin/Documents"] == ("0/0/1", ItemType.PARENT)
    assert ids["/Users/veselin/Documents/python"] == ("0/0/1/0", ItemType.PARENT)
    assert ids["/Users/veselin/Documents/python/python27.chm"] == ("0/0/1/0/0", ItemType.FILE)
    mapped, created = catalog.map_path(file_("/Users/veselin/Pictures/bitdust.png"))
    assert (mapped.path_id, mapped.bound, created) == ("1", True, True)
    movies, _ = catalog.add_path(dir_("/Users/veselin/Movies"))
    assert movies.path_id == "0/0/2"
    download, _ = catalog.add_path(file_("/Users/veselin/Downloads/pytest-2.9.0.tar.gz"))
    assert download.path_id == "0/0/3/0"


def test_map_path_gives_one_number_and_is_idempotent() -> None:
    catalog = Catalog()
    first, created = catalog.map_path(file_("/a/b/c.txt"))
    again, created_again = catalog.map_path(file_("/a/b/c.txt"))
    folder, _ = catalog.map_path(dir_("/a/b"))
    assert (first.path_id, created, again is first, created_again) == ("0", True, True, False)
    assert folder.path_id == "1" and folder.type is ItemType.DIR
    mirrored, _ = catalog.add_path(file_("/a/b/c.txt"))
    assert mirrored.path_id == "2/0/0"  # mirrored and mapped items share the top level
    assert [i.path_id for i in catalog.find_local("/a/b/c.txt")] == ["0", "2/0/0"]
    assert catalog.mirrored_item("/a/b/c.txt") is mirrored
    root, _ = catalog.map_path(dir_("/"))
    assert root.name == "/" and root.path_id == "3"


def test_existing_parent_becomes_dir_and_re_adding_changes_nothing() -> None:
    catalog = spec_catalog()
    folder, created = catalog.add_path(dir_("/Users/veselin/Documents"))
    assert (folder.path_id, folder.type, created) == ("0/0/1", ItemType.DIR, False)
    before = catalog.export_bytes()
    _, created = catalog.add_path(file_("/Users/veselin/Documents/python/python27.chm", 5754439))
    assert not created and catalog.export_bytes() == before


def test_kind_conflicts_are_refused_without_change() -> None:
    catalog = Catalog()
    catalog.add_path(file_("/x/report"))
    before = catalog.export_bytes()
    with pytest.raises(CatalogError, match="is a file, but /x/report is now a folder"):
        catalog.add_path(file_("/x/report/inside.txt"))
    with pytest.raises(CatalogError, match="is now a folder"):
        catalog.add_path(dir_("/x/report"))
    with pytest.raises(CatalogError, match="root folder / cannot"):
        catalog.add_path(dir_("/"))
    assert catalog.export_bytes() == before and len(catalog) == 2


def test_too_deep_and_full_are_refused() -> None:
    deep = "/" + "/".join(f"d{i}" for i in range(600)) + "/f"
    with pytest.raises(CatalogError, match="too deep"):
        Catalog().add_path(file_(deep))
    small = Catalog(max_items=3)
    small.add_path(file_("/a/b"))
    with pytest.raises(CatalogError, match="catalog is full"):
        small.add_path(file_("/c/d"))
    assert len(small) == 2


def test_lookups() -> None:
    catalog = spec_catalog()
    complete(catalog, "0/0/1/0/0")
    item, version = catalog.version(f"0/0/1/0/0/{V1}")
    assert item.local_path.endswith("python27.chm") and version.blocks == 1
    assert catalog.item("0/0/1").name == "Documents"
    for bad, reason in (("0/9", "was not found"), ("0//1", "empty part"), (7, "must be a string")):
        with pytest.raises(CatalogError, match=reason):
            catalog.item(bad)
    with pytest.raises(CatalogError, match="was not found"):
        catalog.version(f"0/0/1/0/0/{V2}")
    with pytest.raises(CatalogError, match="bad backup ID"):
        catalog.version("0/0/1/0/0/latest")


# -- versions -------------------------------------------------------------------------


def test_in_progress_versions_are_not_complete_backups() -> None:
    catalog = spec_catalog()
    catalog.add_version("0/0/1/0/0", V1, "ecc/4x4", KEY)
    assert catalog.complete_backups() == []
    catalog.update_version(f"0/0/1/0/0/{V1}", blocks=2, size=100)
    record = catalog.mark_complete(f"0/0/1/0/0/{V1}", blocks=3, size=300, source_size=150)
    assert record.state is VersionState.COMPLETE and (record.blocks, record.size) == (3, 300)
    assert catalog.item("0/0/1/0/0").size == 150  # the newest figure of the local size
    assert [(i.path_id, v.version) for i, v in catalog.complete_backups()] == [("0/0/1/0/0", V1)]


def test_aborted_version_leaves_no_trace() -> None:
    catalog = spec_catalog()
    before = catalog.export_bytes()
    catalog.add_version("0/0/1/0/0", V2, "ecc/2x2", KEY)
    catalog.drop_version(f"0/0/1/0/0/{V2}")
    assert catalog.export_bytes() == before
    complete(catalog, "0/0/1/0/0")
    with pytest.raises(CatalogError, match="is complete"):
        catalog.drop_version(f"0/0/1/0/0/{V1}")
    catalog.remove_version(f"0/0/1/0/0/{V1}")
    assert catalog.complete_backups() == []


def test_bad_versions_are_refused() -> None:
    catalog = spec_catalog()
    with pytest.raises(CatalogError, match="parent folder"):
        catalog.add_version("0/0/1", V1, "ecc/4x4", KEY)
    with pytest.raises(CatalogError, match="bad version"):
        catalog.add_version("0/0/1/0/0", "F2016", "ecc/4x4", KEY)
    with pytest.raises(CatalogError, match="ECC map"):
        catalog.add_version("0/0/1/0/0", V1, "ecc/3x3", KEY)
    with pytest.raises(CatalogError, match="wrapped data key"):
        catalog.add_version("0/0/1/0/0", V1, "ecc/4x4", b"")
    catalog.add_version("0/0/1/0/0", V1, "ecc/4x4", KEY)
    with pytest.raises(CatalogError, match="already exists"):
        catalog.add_version("0/0/1/0/0", V1, "ecc/4x4", KEY)
    with pytest.raises(CatalogError, match="no blocks"):
        catalog.mark_complete(f"0/0/1/0/0/{V1}")
    with pytest.raises(CatalogError, match="non-negative"):
        catalog.update_version(f"0/0/1/0/0/{V1}", blocks=-1)


# -- removal --------------------------------------------------------------------------


def test_remove_item_takes_its_subtree_and_numbers_are_not_reused() -> None:
    catalog = spec_catalog()
    removed = catalog.remove_item("0/0/1")
    assert sorted(i.path_id for i in removed) == ["0/0/1", "0/0/1/0", "0/0/1/0/0"]
    assert catalog.get("0/0/1/0/0") is None and catalog.mirrored_item("/Users/veselin/Documents") is None
    assert catalog.find_local("/Users/veselin/Documents/python/python27.chm") == []
    again, created = catalog.add_path(file_("/Users/veselin/Documents/python/python27.chm"))
    assert created and again.path_id == "0/0/2/0/0"
    catalog.remove_item("0")
    assert len(catalog) == 0
    assert catalog.add_path(file_("/Users/x"))[0].path_id == "1/0"


# -- local paths and walks ------------------------------------------------------------


@pytest.mark.parametrize(("value", "reason"), [
    (None, "must be a string"), (b"/tmp", "must be a string"), ("", "empty"),
    ("/tmp/a\x00b", "NUL"), ("docs/a.txt", "not absolute"), ("~/a", "not absolute"),
    ("/tmp/../etc", "'..'"), ("/tmp/\udcff", "UTF-8"), ("/" + "a" * 5000, "longer"),
])
def test_bad_local_paths(value: object, reason: str) -> None:
    with pytest.raises(LocalPathError, match=reason):
        check_local_path(value)


def test_local_path_checks(tmp_path: Path) -> None:
    (tmp_path / "f.txt").write_bytes(b"12345")
    assert normalize_local_path("//a/./b//c/") == "/a/b/c"
    assert check_local_path(f"{tmp_path}//f.txt/") == LocalPath(str(tmp_path / "f.txt"), ItemType.FILE, 5)
    assert check_local_path(str(tmp_path), ItemType.DIR).type is ItemType.DIR
    with pytest.raises(LocalPathError, match="does not exist"):
        check_local_path(str(tmp_path / "nope"))
    with pytest.raises(LocalPathError, match="does not exist"):
        check_local_path(str(tmp_path / "f.txt" / "under"))
    with pytest.raises(LocalPathError, match="is a folder, not a file"):
        check_local_path(str(tmp_path), ItemType.FILE)
    with pytest.raises(LocalPathError, match="is a file, not a folder"):
        check_local_path(str(tmp_path / "f.txt"), ItemType.DIR)
    os.mkfifo(tmp_path / "fifo")
    with pytest.raises(LocalPathError, match="not a regular file"):
        check_local_path(str(tmp_path / "fifo"))


def make_tree(root: Path) -> None:
    (root / "Документы" / "日本語" / "深い").mkdir(parents=True)
    (root / "Документы" / "日本語" / "深い" / "ファイル.txt").write_text("こんにちは")
    (root / "Документы" / "résumé.pdf").write_bytes(b"x" * 100)
    (root / "empty folder").mkdir()
    (root / "a.txt").write_bytes(b"")


def test_tree_with_non_ascii_names(tmp_path: Path) -> None:
    make_tree(tmp_path)
    catalog = Catalog()
    root, created, conflicts = catalog.add_tree(scan_tree(check_local_path(str(tmp_path))))
    assert conflicts == 0 and root.type is ItemType.PARENT
    assert created == len(tmp_path.parts) - 1 + 7  # the parents of tmp_path, itself, and 7 entries
    deep = catalog.mirrored_item(f"{tmp_path}/Документы/日本語/深い/ファイル.txt")
    assert deep is not None and deep.size == len("こんにちは".encode())
    assert deep.path_id.startswith(root.path_id + "/")
    assert catalog.shown_size(root) == 100 + deep.size
    # siblings are numbered by sorted name, folders before their contents
    names = [catalog.item(f"{root.path_id}/{n}").name for n in range(3)]
    assert names == ["a.txt", "empty folder", "Документы"]
    again = catalog.add_tree(scan_tree(check_local_path(str(tmp_path))))
    assert again[1:] == (0, 0)


def test_walk_skips_what_it_cannot_take(tmp_path: Path) -> None:
    (tmp_path / "ok.txt").write_text("ok")
    os.mkfifo(tmp_path / "fifo")
    (tmp_path / "sub").mkdir()
    os.symlink(tmp_path / "sub", tmp_path / "link-to-dir")
    os.symlink(tmp_path / "ok.txt", tmp_path / "link-to-file")
    with open(os.path.join(os.fsencode(tmp_path), b"bad-\xff-name"), "wb"):
        pass
    scan = scan_tree(check_local_path(str(tmp_path)))
    assert sorted(e.parts for e in scan.entries) == [("link-to-file",), ("ok.txt",), ("sub",)]
    assert scan.skipped == 3 and len(scan.skipped_examples) == 3
    with pytest.raises(LocalPathError, match="more than 2 files and folders"):
        scan_tree(check_local_path(str(tmp_path)), limit=2)


def test_walk_skips_unreadable(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Permission errors are simulated: the tests may run as root, who reads everything."""
    (tmp_path / "locked").mkdir()
    (tmp_path / "secret.txt").write_text("s")
    (tmp_path / "fine.txt").write_text("f")
    real_scandir, real_access = os.scandir, os.access

    def scandir(path: str) -> object:
        if path.endswith("locked"):
            raise PermissionError(13, "Permission denied")
        return real_scandir(path)

    def access(path: str, mode: int) -> bool:
        return not str(path).endswith("secret.txt") and real_access(path, mode)

    monkeypatch.setattr("bitdust.storage.catalog.localpath.os.scandir", scandir)
    monkeypatch.setattr("bitdust.storage.catalog.localpath.os.access", access)
    scan = scan_tree(check_local_path(str(tmp_path)))
    assert [e.parts for e in scan.entries] == [("fine.txt",)] and scan.skipped == 2
    with pytest.raises(LocalPathError, match="permission denied"):
        check_local_path(str(tmp_path / "secret.txt"))
    with pytest.raises(LocalPathError, match="cannot be read: Permission denied"):
        scan_tree(check_local_path(str(tmp_path / "locked")))


def test_tree_entries_meeting_a_file_are_counted_not_fatal() -> None:
    catalog = Catalog()
    catalog.add_path(file_("/r/sub"))
    scan = TreeScan(dir_("/r"), [ScanEntry(("sub",), ItemType.PARENT, 0), ScanEntry(("sub", "x"), ItemType.FILE, 1),
                                 ScanEntry(("y",), ItemType.FILE, 2)])
    root, created, conflicts = catalog.add_tree(scan)
    assert (root.path_id, created, conflicts) == ("0", 1, 2)


# -- persistence ----------------------------------------------------------------------


def test_store_round_trip(tmp_path: Path) -> None:
    store = CatalogStore(tmp_path / "catalog")
    catalog = store.load()
    assert len(catalog) == 0
    catalog.add_path(file_("/home/ü/naïve.txt", 42))
    catalog.map_path(dir_("/srv/data", 7))
    complete(catalog, "0/0/0")
    catalog.add_version("1", V2, "ecc/2x2", KEY)
    catalog.save()
    assert stat.S_IMODE(store.path.stat().st_mode) == 0o600
    loaded = CatalogStore(tmp_path / "catalog").load()
    assert loaded.export_bytes() == catalog.export_bytes()
    _, version = loaded.version(f"0/0/0/{V1}")
    assert version.wrapped_key == KEY and version.ecc == "ecc/4x4" and version.complete
    assert not loaded.version(f"1/{V2}")[1].complete
    assert loaded.item("1").bound and loaded.find_local("/srv/data")[0].path_id == "1"
    assert loaded.add_path(file_("/home/ü/other"))[0].path_id == "0/0/1"  # counters came back


def test_save_survives_a_crash_before_rename(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    store = CatalogStore(tmp_path)
    catalog = store.load()
    catalog.add_path(file_("/a/b"))
    catalog.save()
    good = store.path.read_bytes()
    catalog.add_path(file_("/a/c"))

    def crash(*_args: object) -> None:
        raise OSError("simulated crash")

    monkeypatch.setattr("bitdust.util.fs.os.replace", crash)
    failures: list[Failure] = []
    catalog.save().addErrback(failures.append)
    assert failures and failures[0].check(OSError) and "simulated crash" in failures[0].getErrorMessage()
    monkeypatch.undo()
    assert store.path.read_bytes() == good
    assert sorted(p.name for p in tmp_path.iterdir()) == ["catalog.json"]  # no temp file left
    assert len(CatalogStore(tmp_path).load()) == 2


@pytest_twisted.inlineCallbacks
def test_store_with_a_reactor_writes_in_a_thread_and_ends_with_the_newest(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Any:
    """The daemon's store: saves are written by a pool thread, one at a time; saves asked
    for while one is written fold into one more write, and each caller's Deferred fires
    once its change is on disk."""
    from twisted.internet import reactor

    store = CatalogStore(tmp_path, reactor=reactor)
    catalog = store.load()
    writers: list[str] = []

    def spy(*args: Any, **kwargs: Any) -> None:
        writers.append(threading.current_thread().name)
        atomic_write(*args, **kwargs)

    monkeypatch.setattr("bitdust.util.writer.atomic_write", spy)
    saves = []
    for name in ("b", "c", "d"):
        catalog.add_path(file_(f"/a/{name}"))
        saves.append(catalog.save())
    yield DeferredList(saves, fireOnOneErrback=True)
    assert len(writers) == 2 and threading.current_thread().name not in writers
    assert CatalogStore(tmp_path).load().export_bytes() == catalog.export_bytes()
    assert store.saved_revision == catalog.revision
    replacement = Catalog()
    replacement.add_path(file_("/x"))
    store.bind(replacement)  # a recovered catalog takes the old one's place
    assert catalog.saver is None
    yield replacement.save()
    assert CatalogStore(tmp_path).load().export_bytes() == replacement.export_bytes()


@pytest.mark.parametrize("content", [
    b"{not json", b"\xff\xfe", b"[]", b'{"format": "other"}',
    b'{"format": "bitdust-catalog", "format_version": 9, "items": [], "next_top": 0}',
])
def test_corrupt_file_is_kept_aside_and_reported(tmp_path: Path, content: bytes) -> None:
    store = CatalogStore(tmp_path)
    store.path.write_bytes(content)
    with pytest.raises(CatalogCorruptError, match="was moved to") as caught:
        store.load()
    aside = store.corrupt_files()
    assert len(aside) == 1 and aside[0].read_bytes() == content and str(aside[0]) in str(caught.value)
    assert not store.path.exists()
    assert len(store.load()) == 0  # the next start begins empty; the bad file stays
    assert store.corrupt_files() == aside


def damaged(mutate: object) -> bytes:
    catalog = spec_catalog()
    complete(catalog, "0/0/1/0/0")
    document = json.loads(catalog.export_bytes())
    mutate(document)  # type: ignore[operator]
    return json.dumps(document).encode()


@pytest.mark.parametrize(("mutate", "reason"), [
    (lambda d: d["items"].reverse(), "before its parent"),
    (lambda d: d["items"].append(d["items"][0]), "appears twice"),
    (lambda d: d["items"][5]["versions"][0].update(key="***"), "not base64"),
    (lambda d: d["items"][5]["versions"][0].update(ecc="ecc/5x5"), "ECC map"),
    (lambda d: d["items"][5]["versions"][0].update(version="F1"), "bad version"),
    (lambda d: d["items"][5].update(size=-1), "negative"),
    (lambda d: d["items"][5].update(size=True), "must be int"),
    (lambda d: d["items"][5].update(path="/elsewhere"), "local path"),
    (lambda d: d["items"][2].update(type="folder"), "unknown type"),
    (lambda d: d["items"][0].update(id="00"), "leading zero"),
    (lambda d: d["items"][3].update(versions=d["items"][5]["versions"]), "versions it cannot have"),
])
def test_damaged_documents_are_refused(mutate: object, reason: str) -> None:
    with pytest.raises(CatalogCorruptError, match=reason):
        Catalog.import_bytes(damaged(mutate))


def test_low_counters_are_raised_on_load() -> None:
    def lower(document: dict) -> None:  # type: ignore[type-arg]
        document["next_top"] = 0
        for item in document["items"]:
            item["next"] = 0

    loaded = Catalog.import_bytes(damaged(lower))
    assert loaded.next_top == 1 and loaded.item("0/0").next_child == 2


# -- export / import ------------------------------------------------------------------

NAMES = st.text(alphabet=st.sampled_from("abcXYZ é日本-_. "), min_size=1, max_size=6).filter(
    lambda s: s not in (".", ".."))
PATHS = st.lists(NAMES, min_size=1, max_size=5).map(lambda parts: "/" + "/".join(parts))


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(adds=st.lists(st.tuples(PATHS, st.sampled_from(["file", "dir", "map"]), st.integers(0, 2**40)),
                     max_size=25),
       versions=st.lists(st.tuples(st.integers(0, 30), st.integers(0, 3), st.booleans()), max_size=15))
def test_random_catalogs_round_trip(adds: list[tuple[str, str, int]], versions: list[tuple[int, int, bool]]) -> None:
    catalog = Catalog()
    for path, how, size in adds:
        local = file_(path, size) if how == "file" else dir_(path, size)
        with contextlib.suppress(CatalogError):  # a file where a folder is needed: refused, as it should be
            catalog.map_path(local) if how == "map" else catalog.add_path(local)
    items = [i for i in catalog.items() if i.type is not ItemType.PARENT]
    for index, offset, done in versions:
        if not items:
            break
        item = items[index % len(items)]
        version = f"F2020010{offset + 1}1200{offset}0AM"
        if version in item.versions:
            continue
        catalog.add_version(item.path_id, version, "ecc/2x2", bytes([index]) * 3)
        if done:
            catalog.mark_complete(f"{item.path_id}/{version}", blocks=index + 1, size=index)
    data = catalog.export_bytes()
    copy = Catalog.import_bytes(data)
    assert copy.export_bytes() == data
    assert [i.path_id for i in copy.items()] == [i.path_id for i in catalog.items()]
    for item in catalog.items():
        assert [i.path_id for i in copy.find_local(item.local_path)] == \
               [i.path_id for i in catalog.find_local(item.local_path)]
        if not item.bound:
            assert copy.mirrored_item(item.local_path).path_id == item.path_id  # type: ignore[union-attr]


def test_export_is_deterministic_whatever_the_order_of_changes() -> None:
    one, two = spec_catalog(), spec_catalog()
    for version in (V1, V2):
        one.add_version("0/0/1/0/0", version, "ecc/4x4", KEY)
    for version in (V2, V1):
        two.add_version("0/0/1/0/0", version, "ecc/4x4", KEY)
    assert one.export_bytes() == two.export_bytes()
    assert one.export_bytes() == Catalog.import_bytes(one.export_bytes()).export_bytes()
    json.loads(one.export_bytes())  # plain JSON
