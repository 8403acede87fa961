"""The catalog's API calls answer in the spec's shapes; service_backup_db loads and saves."""

from __future__ import annotations

import re
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
import pytest_twisted

from bitdust.api import catalog_calls
from bitdust.home import Home
from bitdust.services.backup_db import BackupDbService
from bitdust.services.service import ServiceUnavailable
from bitdust.storage.catalog import Catalog, CatalogCorruptError, CatalogStore, ItemType, LocalPath

V1 = "F20160313043757PM"
V2 = "F20160315052257PM"


@pytest.fixture
def node(tmp_path: Path) -> Any:
    from twisted.internet import reactor
    from twisted.internet.task import Clock

    return SimpleNamespace(reactor=reactor, clock=Clock(), home=Home(tmp_path / "home"), key=None)


@pytest.fixture
def catalog(node: Any) -> Catalog:
    return CatalogStore(node.home.catalog).load()


def test_backups_list_matches_the_spec_example() -> None:
    catalog = Catalog()
    catalog.add_path(LocalPath("/Users/veselin/Desktop", ItemType.DIR, 0))
    chm = "/Users/veselin/Documents/python/python27.chm"
    catalog.add_path(LocalPath(chm, ItemType.FILE, 5754439))
    catalog.add_path(LocalPath("/Users/veselin/Documents/notes.txt", ItemType.FILE, 38992196 - 5754439))
    catalog.add_version("0/0/1/0/0", V1, "ecc/4x4", b"key")
    catalog.mark_complete(f"0/0/1/0/0/{V1}", blocks=1, size=11 * 1024 * 1024)
    catalog.add_version("0/0/1/0/0", V2, "ecc/4x4", b"key")  # in progress: not listed
    answer = catalog_calls.backups_list(None, catalog)  # type: ignore[arg-type]
    assert answer["status"] == "OK"
    by_id = {entry["id"]: entry for entry in answer["result"]}
    assert by_id["0/0/1"] == {"path": "/Users/veselin/Documents", "versions": [], "type": "parent",
                              "id": "0/0/1", "size": 38992196}
    assert by_id["0/0/1/0"] == {"path": "/Users/veselin/Documents/python", "versions": [], "type": "parent",
                                "id": "0/0/1/0", "size": 5754439}
    assert by_id["0/0/1/0/0"] == {"path": chm, "type": "file", "id": "0/0/1/0/0", "size": 5754439,
                                  "versions": [{"version": V1, "blocks": 1, "size": "11 MB", "redundancy": [],
                                                "eccmap": "ecc/4x4", "reencoding": ""}]}
    assert by_id["0/0/0"]["type"] == "dir"
    assert [e["id"] for e in answer["result"]] == ["0", "0/0", "0/0/0", "0/0/1", "0/0/1/0", "0/0/1/0/0", "0/0/1/1"]
    ids = catalog_calls.backups_id_list(None, catalog)  # type: ignore[arg-type]
    assert ids == {"status": "OK", "result": [{"backupid": f"0/0/1/0/0/{V1}", "path": chm, "size": "11 MB"}]}


def test_empty_catalog_lists_nothing() -> None:
    assert catalog_calls.backups_list(None, Catalog()) == {"status": "OK", "result": []}  # type: ignore[arg-type]
    assert catalog_calls.backups_id_list(None, Catalog()) == {"status": "OK", "result": []}  # type: ignore[arg-type]


@pytest_twisted.inlineCallbacks
def test_backup_map_path(node: Any, catalog: Catalog, tmp_path: Path) -> Any:
    data = tmp_path / "data"
    data.mkdir()
    picture = data / "bitdust.png"
    picture.write_bytes(b"png")
    answer = yield catalog_calls.backup_map_path(node, catalog, str(picture))
    assert answer == {"status": "OK", "result": [f"new file was added: 0, local path is {picture}"],
                      "id": "0", "type": "file"}
    again = yield catalog_calls.backup_map_path(node, catalog, str(picture))
    assert again == {"status": "OK", "result": [f"file is already in the catalog: 0, local path is {picture}"],
                     "id": "0", "type": "file"}
    folder = yield catalog_calls.backup_map_path(node, catalog, str(data) + "/")
    assert folder == {"status": "OK", "result": [f"new folder was added: 1, local path is {data}"],
                      "id": "1", "type": "dir"}
    listed = catalog_calls.backups_list(node, catalog)["result"]
    assert [(e["id"], e["type"], e["size"]) for e in listed] == [("0", "file", 3), ("1", "dir", 3)]
    assert len(CatalogStore(node.home.catalog).load()) == 2  # saved before answering


@pytest_twisted.inlineCallbacks
def test_dir_file_and_tree_add(node: Any, catalog: Catalog, tmp_path: Path) -> Any:
    docs = tmp_path / "docs"
    (docs / "sub dir").mkdir(parents=True)
    (docs / "sub dir" / "ы.txt").write_text("ы")
    (docs / "a.txt").write_text("a")
    movies = tmp_path / "Movies"
    movies.mkdir()
    answer = yield catalog_calls.backup_dir_add(node, catalog, str(movies))
    assert answer["status"] == "OK" and set(answer) == {"status", "result"}
    match = re.fullmatch(r"new folder was added: ([0-9/]+), local path is (.+)", answer["result"])
    assert match and match.group(2) == str(movies)
    movies_id = match.group(1)
    assert movies_id.count("/") == len(movies.parts) - 2 and catalog.item(movies_id).type is ItemType.DIR
    answer = yield catalog_calls.backup_file_add(node, catalog, str(docs / "a.txt"))
    match = re.fullmatch(r"new file was added: ([0-9/]+), local path is (.+)", answer["result"])
    assert match and match.group(2) == str(docs / "a.txt")
    assert match.group(1).rsplit("/", 2)[0] == movies_id.rsplit("/", 1)[0]  # docs is a sibling of Movies
    answer = yield catalog_calls.backup_tree_add(node, catalog, str(docs))
    docs_id = catalog.mirrored_item(str(docs)).path_id  # type: ignore[union-attr]
    assert answer == {"status": "OK", "result": f"2 items were added to catalog, parent path ID is {docs_id}, "
                                                f"root folder is {docs}"}
    again = yield catalog_calls.backup_file_add(node, catalog, str(docs / "a.txt"))
    assert again["result"].startswith("file is already in the catalog: ")
    assert CatalogStore(node.home.catalog).load().export_bytes() == catalog.export_bytes()


@pytest_twisted.inlineCallbacks
def test_tree_add_reports_skipped_entries(node: Any, catalog: Catalog, tmp_path: Path) -> Any:
    (tmp_path / "ok.txt").write_text("ok")
    (tmp_path / "target").mkdir()
    (tmp_path / "link").symlink_to(tmp_path / "target")
    answer = yield catalog_calls.backup_tree_add(node, catalog, str(tmp_path))
    assert answer["status"] == "OK"
    assert answer["result"].endswith("; 1 entries were skipped (unreadable, special files, symlinks to folders, "
                                     "or names that are not UTF-8)")


@pytest_twisted.inlineCallbacks
def test_bad_input_is_a_clear_error(node: Any, catalog: Catalog, tmp_path: Path) -> Any:
    (tmp_path / "f.txt").write_text("f")
    cases = [
        (catalog_calls.backup_map_path, str(tmp_path / "missing"), "does not exist"),
        (catalog_calls.backup_map_path, "relative/path", "is not absolute"),
        (catalog_calls.backup_map_path, 42, "must be a string, not int"),
        (catalog_calls.backup_dir_add, str(tmp_path / "f.txt"), "is a file, not a folder"),
        (catalog_calls.backup_dir_add, "/", "root folder / cannot become a catalog folder"),
        (catalog_calls.backup_file_add, str(tmp_path), "is a folder, not a file"),
        (catalog_calls.backup_file_add, str(tmp_path) + "/f\x00.txt", "NUL byte"),
        (catalog_calls.backup_tree_add, str(tmp_path / "f.txt"), "is a file, not a folder"),
        (catalog_calls.backup_tree_add, None, "must be a string, not NoneType"),
        (catalog_calls.backup_tree_add, str(tmp_path / ".." / "x"), "'..'"),
    ]
    for call, argument, reason in cases:
        answer = yield call(node, catalog, argument)
        assert answer["status"] == "ERROR" and len(answer["errors"]) == 1, (call, argument, answer)
        assert reason in answer["errors"][0], (call, argument, answer)
    assert len(catalog) == 0 and not CatalogStore(node.home.catalog).path.exists()


@pytest_twisted.inlineCallbacks
def test_save_failure_is_reported(node: Any, catalog: Catalog, tmp_path: Path) -> Any:
    (tmp_path / "f.txt").write_text("f")

    def fail(_catalog: Catalog) -> None:
        raise OSError(28, "No space left on device")

    catalog.saver = fail
    answer = yield catalog_calls.backup_file_add(node, catalog, str(tmp_path / "f.txt"))
    assert answer["status"] == "ERROR" and "could not be saved: No space left on device" in answer["errors"][0]


def test_running_catalog_needs_the_service(node: Any) -> None:
    node.services = SimpleNamespace(installed=lambda _n: False, is_on=lambda _n: False)
    with pytest.raises(ServiceUnavailable, match="backups_list is not available: service_backup_db is not running"):
        catalog_calls.running_catalog(node, "backups_list")
    service = BackupDbService(node)
    node.services = SimpleNamespace(installed=lambda _n: True, is_on=lambda _n: True, instance=lambda _n: service)
    with pytest.raises(ServiceUnavailable):
        catalog_calls.running_catalog(node, "backups_list")


def not_running(name: str, *_args: Any) -> Any:
    raise ServiceUnavailable(f"{name} is not running")


@pytest_twisted.inlineCallbacks
def test_service_loads_on_start_and_saves_on_stop(node: Any) -> Any:
    service = BackupDbService(node)
    with pytest.raises(ServiceUnavailable, match="not running"):
        _ = service.catalog
    yield service.start()
    service.catalog.add_path(LocalPath("/srv/a.txt", ItemType.FILE, 1))  # changed, not saved by the caller
    node.services = SimpleNamespace(installed=lambda _n: True, is_on=lambda _n: True, instance=lambda _n: service,
                                    running=not_running)
    assert catalog_calls.running_catalog(node, "backups_list") is service.catalog
    yield service.stop()
    assert not service.loaded
    again = BackupDbService(node)
    yield again.start()
    assert again.catalog.mirrored_item("/srv/a.txt") is not None
    replacement = Catalog()
    replacement.map_path(LocalPath("/x", ItemType.FILE, 1))
    yield again.replace_catalog(replacement)
    assert CatalogStore(node.home.catalog).load().export_bytes() == replacement.export_bytes()


@pytest_twisted.inlineCallbacks
def test_service_start_fails_on_a_corrupt_catalog(node: Any) -> Any:
    store = CatalogStore(node.home.catalog)
    store.folder.mkdir(parents=True)
    store.path.write_bytes(b"garbage")
    with pytest.raises(CatalogCorruptError, match="could not be loaded"):
        yield BackupDbService(node).start()
    assert len(store.corrupt_files()) == 1
