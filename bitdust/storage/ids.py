"""Names of catalog items, backup versions and stored pieces.

These strings travel in packets from untrusted peers and become folder names on a
supplier's disk, so every parser is strict: one canonical spelling per value, nothing
that could walk out of a folder. Grammar (``N`` is a decimal number)::

    path ID    N("/"N)*                        e.g. 0/0/1/0/0
    version    "F" YYYYMMDDhhmmss ("AM"|"PM") [suffix]   e.g. F20160313043757PM, F20160313043757PM2
    backup ID  <path ID> "/" <version>
    piece name N "-" N "-" ("Data"|"Parity")   (block, supplier, kind)
    piece ID   <backup ID> "/" <piece name>

Numbers are canonical: ``0`` or digits without a leading zero (``01`` is refused), so two
different strings never name the same item. Versions keep the original BitDust
12-hour clock (``%Y%m%d%I%M%S%p``, UTC), which does not sort as text: order versions
with :func:`version_key`.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime
from enum import StrEnum
from pathlib import Path, PurePosixPath
from typing import NamedTuple

MAX_ID_LENGTH = 1024
MAX_NUMBER_DIGITS = 12

_NUMBER = rf"(?:0|[1-9][0-9]{{0,{MAX_NUMBER_DIGITS - 1}}})"
_PATH_ID_RE = re.compile(rf"{_NUMBER}(?:/{_NUMBER})*")
# F, year, month, day, hour (01-12), minute, second, AM/PM, optional suffix without leading zero
_VERSION_RE = re.compile(r"F([0-9]{4})" + r"([0-9]{2})" * 5 + r"(AM|PM)([1-9][0-9]{0,5})?")
_PIECE_NAME_RE = re.compile(rf"({_NUMBER})-({_NUMBER})-(Data|Parity)")


CATALOG_PATH_ID = "9" * MAX_NUMBER_DIGITS
"""Reserved top-level path ID of the encrypted catalog copy kept on every supplier
(pieces ``999999999999/<version>/<chunk>-<position>-Data``, see
:mod:`bitdust.storage.backups.catalog_copy`). The catalog numbers its top level from 0
upwards and never gets near it; backup monitors, restores and rebuilds skip it."""


def is_catalog_copy(piece_or_backup_id: str) -> bool:
    """True for a piece or backup ID under :data:`CATALOG_PATH_ID`."""
    return piece_or_backup_id.partition("/")[0] == CATALOG_PATH_ID


REENCODED_PATH_ID = "9" * (MAX_NUMBER_DIGITS - 1) + "8"
"""Reserved top-level path ID under which re-encoded generations of a version are kept.

When ``suppliers-number`` changes, a version is coded again with the new ``ecc/NxN`` map
(:mod:`bitdust.storage.reencode`). Its new pieces must not collide with the old ones on
a supplier that keeps a position in both maps (``0-0-Data`` exists in every map), and the
old ones must stay readable until the switch. So generation ``g >= 1`` of backup
``<pathID>/<version>`` is stored as ``999999999998/<g>/<pathID>/<version>/<block>-<i>-<kind>``
(:func:`storage_id`): valid piece IDs for every supplier as they are, a folder of their own
on the supplier (deleting one generation is one DeleteBackup), while the version keeps its
backup ID -- which is also what each block's AEAD tag authenticates, so re-encoding never
re-seals. Generation 0 (the backup job's) is stored under the backup ID itself."""


def storage_id(backup_id: str, generation: int) -> str:
    """Where generation ``generation`` of ``backup_id`` keeps its pieces (see :data:`REENCODED_PATH_ID`)."""
    if not isinstance(generation, int) or isinstance(generation, bool) or generation < 0:
        raise IdError(f"generation must be a non-negative int, got {generation!r}")
    backup_id = parse_backup_id(backup_id)
    if generation == 0:
        return backup_id
    return parse_backup_id(f"{REENCODED_PATH_ID}/{generation}/{backup_id}")


def is_reencoded(piece_or_backup_id: str) -> bool:
    """True for a piece or backup ID under :data:`REENCODED_PATH_ID`."""
    return piece_or_backup_id.partition("/")[0] == REENCODED_PATH_ID


class IdError(ValueError):
    """A path ID, version, backup ID or piece ID is malformed."""


class PieceKind(StrEnum):
    DATA = "Data"
    PARITY = "Parity"


class PieceId(NamedTuple):
    path_id: str
    version: str
    block: int
    supplier: int
    kind: PieceKind

    @property
    def backup_id(self) -> str:
        return f"{self.path_id}/{self.version}"

    @property
    def name(self) -> str:
        return piece_name(self.block, self.supplier, self.kind)

    def __str__(self) -> str:
        return f"{self.backup_id}/{self.name}"


def _check_text(value: object, what: str) -> str:
    if not isinstance(value, str):
        raise IdError(f"{what} must be a string, not {type(value).__name__}")
    if not value:
        raise IdError(f"{what} is empty")
    if len(value) > MAX_ID_LENGTH:
        raise IdError(f"{what} is longer than {MAX_ID_LENGTH} characters")
    if "\x00" in value:
        raise IdError(f"{what} contains a NUL byte")
    return value


def _explain_path_id(value: str) -> str:
    """A readable reason for a refused path ID (the regex alone says nothing useful)."""
    if value.startswith("/"):
        return "it is an absolute path"
    for part in value.split("/"):
        if part == "":
            return "it has an empty part"
        if part in (".", ".."):
            return f"it contains {part!r}"
        if not part.isdigit() or not part.isascii():
            return f"part {part!r} is not a number"
        if len(part) > 1 and part.startswith("0"):
            return f"part {part!r} has a leading zero"
        if len(part) > MAX_NUMBER_DIGITS:
            return f"part {part!r} has more than {MAX_NUMBER_DIGITS} digits"
    return "it is malformed"


def parse_path_id(value: object) -> str:
    """Validate a path ID and return it unchanged."""
    text = _check_text(value, "path ID")
    if not _PATH_ID_RE.fullmatch(text):
        raise IdError(f"bad path ID {text!r}: {_explain_path_id(text)}")
    return text


def is_path_id(value: object) -> bool:
    try:
        parse_path_id(value)
    except IdError:
        return False
    return True


def path_id_parts(path_id: str) -> list[int]:
    return [int(part) for part in parse_path_id(path_id).split("/")]


def make_path_id(parts: list[int] | tuple[int, ...]) -> str:
    if not parts or any(not isinstance(p, int) or isinstance(p, bool) or p < 0 for p in parts):
        raise IdError(f"path ID parts must be non-negative ints, got {parts!r}")
    return parse_path_id("/".join(str(p) for p in parts))


# --- versions -----------------------------------------------------------------


def _version_match(value: object) -> re.Match[str]:
    text = _check_text(value, "version")
    match = _VERSION_RE.fullmatch(text)
    if match is None:
        raise IdError(f"bad version {text!r}: expected like F20160313043757PM (optional digit suffix)")
    return match


def version_key(value: str) -> tuple[datetime, int]:
    """Sort key of a version: UTC time, then the suffix (none counts as 0)."""
    match = _version_match(value)
    year, month, day, hour12, minute, second = (int(g) for g in match.groups()[:6])
    if not 1 <= hour12 <= 12:
        raise IdError(f"bad version {value!r}: hour {hour12} is not on a 12-hour clock")
    hour = hour12 % 12 + (12 if match.group(7) == "PM" else 0)
    try:
        moment = datetime(year, month, day, hour, minute, second, tzinfo=UTC)
    except ValueError as exc:
        raise IdError(f"bad version {value!r}: {exc}") from exc
    return moment, int(match.group(8) or 0)


def parse_version(value: object) -> str:
    """Validate a version (including its calendar date) and return it unchanged."""
    text = _check_text(value, "version")
    version_key(text)
    return text


def is_version(value: object) -> bool:
    try:
        parse_version(value)
    except IdError:
        return False
    return True


def version_time(value: str) -> datetime:
    return version_key(value)[0]


def new_version(now: datetime, existing: set[str] | frozenset[str] = frozenset()) -> str:
    """A version name for a backup started at ``now``, distinct from ``existing``.

    ``now`` is converted to UTC (a naive datetime is taken as UTC already). When
    ``existing`` already holds versions of the same second, the new one gets the suffix
    one above the highest of them (a bare name counts as 0), so it sorts after all of them
    even if some were deleted in between; suffixes are never reused within a second.
    """
    utc = now.astimezone(UTC) if now.tzinfo is not None else now.replace(tzinfo=UTC)
    base = "F" + utc.strftime("%Y%m%d%I%M%S") + ("AM" if utc.hour < 12 else "PM")
    taken = [v for v in existing if v.startswith(base) and is_version(v)]
    if not taken:
        return base
    return f"{base}{max(version_key(v)[1] for v in taken) + 1}"


# --- backup and piece IDs ---------------------------------------------------------


def split_backup_id(value: object) -> tuple[str, str]:
    """``'0/1/F2016...PM'`` -> ``('0/1', 'F2016...PM')``."""
    text = _check_text(value, "backup ID")
    path_id, sep, version = text.rpartition("/")
    if not sep:
        raise IdError(f"bad backup ID {text!r}: expected <pathID>/<version>")
    try:
        return parse_path_id(path_id), parse_version(version)
    except IdError as exc:
        raise IdError(f"bad backup ID {text!r}: {exc}") from exc


def parse_backup_id(value: object) -> str:
    path_id, version = split_backup_id(value)
    return f"{path_id}/{version}"


def is_backup_id(value: object) -> bool:
    try:
        split_backup_id(value)
    except IdError:
        return False
    return True


def make_backup_id(path_id: str, version: str) -> str:
    return f"{parse_path_id(path_id)}/{parse_version(version)}"


def piece_name(block: int, supplier: int, kind: PieceKind | str) -> str:
    """``(3, 1, 'Parity')`` -> ``'3-1-Parity'``: a piece's file name inside its version."""
    for what, number in (("block", block), ("supplier", supplier)):
        if not isinstance(number, int) or isinstance(number, bool) or number < 0:
            raise IdError(f"{what} number must be a non-negative int, got {number!r}")
        if len(str(number)) > MAX_NUMBER_DIGITS:
            raise IdError(f"{what} number {number} has more than {MAX_NUMBER_DIGITS} digits")
    try:
        kind_name = PieceKind(kind).value
    except ValueError as exc:
        raise IdError(f"piece kind must be Data or Parity, got {kind!r}") from exc
    return f"{block}-{supplier}-{kind_name}"


def parse_piece_name(value: object) -> PieceId:
    """Parse ``<block>-<supplier>-<Data|Parity>``; path_id and version are left empty."""
    text = _check_text(value, "piece name")
    match = _PIECE_NAME_RE.fullmatch(text)
    if match is None:
        raise IdError(f"bad piece name {text!r}: expected <block>-<supplier>-<Data|Parity>")
    return PieceId("", "", int(match.group(1)), int(match.group(2)), PieceKind(match.group(3)))


def parse_piece_id(value: object) -> PieceId:
    """Split ``<pathID>/<version>/<block>-<supplier>-<kind>`` into its parts."""
    text = _check_text(value, "piece ID")
    backup_id, sep, name = text.rpartition("/")
    if not sep:
        raise IdError(f"bad piece ID {text!r}: expected <backupID>/<block>-<supplier>-<Data|Parity>")
    try:
        path_id, version = split_backup_id(backup_id)
        piece = parse_piece_name(name)
    except IdError as exc:
        raise IdError(f"bad piece ID {text!r}: {exc}") from exc
    return piece._replace(path_id=path_id, version=version)


def make_piece_id(backup_id: str, block: int, supplier: int, kind: PieceKind | str) -> str:
    return f"{parse_backup_id(backup_id)}/{piece_name(block, supplier, kind)}"


def piece_relpath(piece_id: str | PieceId) -> PurePosixPath:
    """Where a piece lives below a customer's folder: ``<pathID>/<version>/<name>``.

    Safe by construction: every component was validated as digits or a version name, so
    the result is relative and has no ``..``; the assertion guards future edits.
    """
    piece = parse_piece_id(str(piece_id))
    rel = PurePosixPath(*piece.path_id.split("/"), piece.version, piece.name)
    assert not rel.is_absolute() and ".." not in rel.parts
    return rel


def backup_relpath(backup_id: str) -> PurePosixPath:
    path_id, version = split_backup_id(backup_id)
    return PurePosixPath(*path_id.split("/"), version)


def piece_path(root: str | Path, piece_id: str | PieceId) -> Path:
    """Absolute path of a piece under ``root``; IdError if it would leave ``root``.

    A relative ``root`` is resolved first; an absolute one is taken as it is (the
    supplier's store resolves its root once): resolving costs a system call per path
    component, ~0.1 ms of CPU for every piece written or read, and the check below is
    on the path's text anyway: no ``..`` can get in through a validated piece ID.
    """
    base = Path(root)
    if not base.is_absolute():
        base = base.resolve()
    target = base.joinpath(*piece_relpath(piece_id).parts)
    if not target.is_relative_to(base):
        raise IdError(f"piece ID {piece_id!s} escapes {base}")
    return target
