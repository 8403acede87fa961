"""The catalog as bytes: one canonical JSON document, the same on disk and on suppliers.

Deterministic on purpose: the same catalog always gives the same bytes (keys sorted,
items in tree order, versions oldest first, no timestamps, no whitespace), so copies can
be compared by hash and an unchanged catalog need not be uploaded again. Reading is
strict: every field is type-checked and the tree re-linked through the same code that
builds it, so a damaged file is refused with a reason instead of half-loaded.

Layout (``format_version`` 1)::

    {"format": "bitdust-catalog", "format_version": 1, "next_top": 3,
     "items": [{"id": "0", "type": "parent", "name": "home", "path": "/home",
                "size": 0, "bound": false, "next": 1, "versions": []}, ...]}

A version: ``{"version", "state", "ecc", "blocks", "size", "source_size",
"key" (the wrapped data key, base64), "redundancy" (pieces per block)}``, and only when
they are not the default (so catalogs that never saw a re-encoding keep their bytes):
``"generation"`` (int, default 0), ``"reencode"`` (``{"ecc", "generation", "done"}``, a
re-encoding under way) and ``"retired"`` (``[{"ecc", "generation"}, ...]``, generations
whose pieces are still to be deleted); see :mod:`bitdust.storage.reencode`.
"""

from __future__ import annotations

import base64
import binascii
import json
from typing import Any

from bitdust.storage.catalog.model import (
    CatalogCorruptError,
    CatalogError,
    CatalogItem,
    CatalogVersion,
    ItemType,
    Reencoding,
    Retired,
    VersionState,
)
from bitdust.storage.catalog.tree import MAX_ITEMS, MAX_VERSIONS, Catalog, checked_ecc
from bitdust.storage.ids import IdError, parse_path_id, parse_version

FORMAT = "bitdust-catalog"
FORMAT_VERSION = 1


def export_bytes(catalog: Catalog) -> bytes:
    document = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "next_top": catalog.next_top,
        "items": [_item_record(item) for item in catalog.items()],
    }
    return json.dumps(document, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode("utf-8") + b"\n"


def import_bytes(data: bytes, max_items: int = MAX_ITEMS) -> Catalog:
    """A new catalog from :func:`export_bytes` output; CatalogCorruptError says why not."""
    if not isinstance(data, (bytes, bytearray, memoryview)):
        raise CatalogCorruptError(f"catalog data must be bytes, not {type(data).__name__}")
    try:
        document = json.loads(bytes(data).decode("utf-8"))
    except UnicodeDecodeError as exc:
        raise CatalogCorruptError(f"catalog is not UTF-8 text: {exc}") from None
    except ValueError as exc:
        raise CatalogCorruptError(f"catalog is not valid JSON: {exc}") from None
    try:
        return _from_document(document, max_items)
    except (CatalogError, IdError) as exc:
        raise CatalogCorruptError(f"catalog is damaged: {exc}") from None


def _item_record(item: CatalogItem) -> dict[str, Any]:
    return {
        "id": item.path_id,
        "type": item.type.value,
        "name": item.name,
        "path": item.local_path,
        "size": item.size,
        "bound": item.bound,
        "next": item.next_child,
        "versions": [_version_record(v) for v in item.sorted_versions()],
    }


def _version_record(version: CatalogVersion) -> dict[str, Any]:
    record: dict[str, Any] = {
        "version": version.version,
        "state": version.state.value,
        "ecc": version.ecc,
        "blocks": version.blocks,
        "size": version.size,
        "source_size": version.source_size,
        "key": base64.b64encode(version.wrapped_key).decode("ascii"),
        "redundancy": list(version.redundancy),
    }
    if version.generation:
        record["generation"] = version.generation
    if version.reencode is not None:
        pending = version.reencode
        record["reencode"] = {"ecc": pending.ecc, "generation": pending.generation, "done": pending.done}
    if version.retired:
        record["retired"] = [{"ecc": r.ecc, "generation": r.generation} for r in version.retired]
    return record


def _from_document(document: object, max_items: int) -> Catalog:
    doc = _mapping(document, "catalog")
    if doc.get("format") != FORMAT:
        raise CatalogError(f"not a BitDust catalog (format is {doc.get('format')!r})")
    version = _field(doc, "format_version", int, "catalog")
    if version != FORMAT_VERSION:
        raise CatalogError(f"catalog format {version} is not supported (this build reads format "
                           f"{FORMAT_VERSION}; it may come from a newer BitDust)")
    records = _field(doc, "items", list, "catalog")
    if len(records) > max_items:
        raise CatalogError(f"catalog holds {len(records)} items, more than {max_items}")
    catalog = Catalog(max_items)
    catalog.next_top = _count(doc, "next_top", "catalog")
    ecc_names: set[str] = set()
    for record in records:
        _load_item(catalog, _mapping(record, "item"), ecc_names)
    _repair_counters(catalog)
    catalog.revision = 0
    return catalog


def _load_item(catalog: Catalog, record: dict[str, Any], ecc_names: set[str]) -> None:
    path_id = parse_path_id(_field(record, "id", str, "item"))
    where = f"item {path_id}"
    try:
        kind = ItemType(_field(record, "type", str, where))
    except ValueError:
        raise CatalogError(f"{where} has unknown type {record.get('type')!r}") from None
    name = _field(record, "name", str, where)
    local_path = _field(record, "path", str, where)
    bound = _field(record, "bound", bool, where)
    item = CatalogItem(path_id, kind, name, local_path, _count(record, "size", where), bound,
                       _count(record, "next", where))
    parent = catalog.get(item.parent_id) if item.parent_id is not None else None
    if item.parent_id is not None and (parent is None or not parent.is_folder or parent.bound):
        raise CatalogError(f"{where} comes before its parent folder or has none")
    if bound and (parent is not None or kind is ItemType.PARENT or not local_path.startswith("/")):
        raise CatalogError(f"{where} is a mapped item but not a top-level file or folder")
    expected = (parent.local_path if parent is not None else "") + "/" + name
    if not bound and ("/" in name or not name or local_path != expected):
        raise CatalogError(f"{where} has name {name!r} but local path {local_path!r}")
    versions = _field(record, "versions", list, where)
    if len(versions) > MAX_VERSIONS or (versions and kind is ItemType.PARENT):
        raise CatalogError(f"{where} has versions it cannot have")
    for entry in versions:
        loaded = _load_version(_mapping(entry, f"a version of {where}"), where, ecc_names)
        if loaded.version in item.versions:
            raise CatalogError(f"{where} has version {loaded.version} twice")
        item.versions[loaded.version] = loaded
    if len(catalog) >= catalog.max_items:
        raise CatalogError(f"catalog holds more than {catalog.max_items} items")
    catalog._attach(item, parent)


def _load_version(record: dict[str, Any], where: str, ecc_names: set[str]) -> CatalogVersion:
    name = parse_version(_field(record, "version", str, where))
    where = f"version {name} of {where}"
    try:
        state = VersionState(_field(record, "state", str, where))
    except ValueError:
        raise CatalogError(f"{where} has unknown state {record.get('state')!r}") from None
    ecc = _field(record, "ecc", str, where)
    if ecc not in ecc_names:
        ecc_names.add(checked_ecc(ecc))
    try:
        key = base64.b64decode(_field(record, "key", str, where), validate=True)
    except binascii.Error:
        raise CatalogError(f"{where} has a key that is not base64") from None
    if not key:
        raise CatalogError(f"{where} has no data key")
    redundancy = _field(record, "redundancy", list, where)
    if any(not isinstance(n, int) or isinstance(n, bool) or n < 0 for n in redundancy):
        raise CatalogError(f"{where} has a bad redundancy list")
    loaded = CatalogVersion(name, ecc, key, state, _count(record, "blocks", where), _count(record, "size", where),
                            _count(record, "source_size", where), redundancy)
    _load_generations(loaded, record, where, ecc_names)
    return loaded


def _load_generations(version: CatalogVersion, record: dict[str, Any], where: str, ecc_names: set[str]) -> None:
    """The optional re-encoding fields; generations must all differ (each names a folder
    of pieces on the suppliers, and two names for one folder would delete live pieces)."""
    version.generation = _count(record, "generation", where) if "generation" in record else 0
    if "reencode" in record:
        pending = _mapping(record["reencode"], f"re-encoding of {where}")
        ecc = _field(pending, "ecc", str, where)
        if ecc not in ecc_names:
            ecc_names.add(checked_ecc(ecc))
        version.reencode = Reencoding(ecc, _count(pending, "generation", where), _count(pending, "done", where))
        if version.reencode.done > version.blocks or not version.complete:
            raise CatalogError(f"{where} has a re-encoding it cannot have")
    for entry in _field(record, "retired", list, where) if "retired" in record else []:
        old = _mapping(entry, f"a retired generation of {where}")
        ecc = _field(old, "ecc", str, where)
        if ecc not in ecc_names:
            ecc_names.add(checked_ecc(ecc))
        version.retired.append(Retired(ecc, _count(old, "generation", where)))
    generations = [version.generation, *(r.generation for r in version.retired)]
    if version.reencode is not None:
        generations.append(version.reencode.generation)
    if len(set(generations)) != len(generations):
        raise CatalogError(f"{where} names one generation of pieces twice")


def _repair_counters(catalog: Catalog) -> None:
    """Counters below a used number would hand it out twice; raise them (never lower)."""
    top = catalog.top_items()
    if top:
        catalog.next_top = max(catalog.next_top, top[-1].number + 1)
    for item in catalog.items():
        if item.children:
            item.next_child = max(item.next_child, max(item.children) + 1)


def _mapping(value: object, what: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise CatalogError(f"{what} must be a JSON object, not {type(value).__name__}")
    return value


def _field(record: dict[str, Any], key: str, kind: type, where: str) -> Any:
    value = record.get(key)
    if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
        raise CatalogError(f"{where}: field {key!r} must be {kind.__name__}, got {value!r}"[:300])
    return value


def _count(record: dict[str, Any], key: str, where: str) -> int:
    value: int = _field(record, key, int, where)
    if value < 0:
        raise CatalogError(f"{where}: field {key!r} is negative")
    return value
