"""Path IDs, versions, backup IDs and piece IDs: strict parsing and safe paths."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from bitdust.storage import ids
from bitdust.storage.ids import IdError, PieceKind

VERSION = "F20160313043757PM"


@pytest.mark.parametrize("value", ["0", "7", "0/0/1/0/0", "12/3/456", "1/" * 50 + "1", "999999999999"])
def test_good_path_ids(value: str) -> None:
    assert ids.parse_path_id(value) == value
    assert ids.is_path_id(value)
    assert ids.make_path_id(ids.path_id_parts(value)) == value


@pytest.mark.parametrize(
    ("value", "reason"),
    [
        ("", "empty"),
        ("/0/1", "absolute"),
        ("0/", "empty part"),
        ("0//1", "empty part"),
        ("..", "'..'"),
        ("0/../1", "'..'"),
        ("0/./1", "'.'"),
        ("01", "leading zero"),
        ("0/007", "leading zero"),
        ("a", "not a number"),
        ("-1", "not a number"),
        (" 1", "not a number"),
        ("1\n", "not a number"),
        ("\u0661", "not a number"),  # an Arabic-Indic digit is a digit to str.isdigit
        ("0\x001", "NUL"),
        ("1234567890123", "digits"),
        ("0/" * 600 + "0", "longer"),
    ],
)
def test_bad_path_ids_say_why(value: str, reason: str) -> None:
    with pytest.raises(IdError, match=reason):
        ids.parse_path_id(value)
    assert not ids.is_path_id(value)


@pytest.mark.parametrize("value", [None, 5, b"0", ["0"]])
def test_non_strings_are_refused(value: object) -> None:
    for parse in (ids.parse_path_id, ids.parse_version, ids.split_backup_id, ids.parse_piece_id):
        with pytest.raises(IdError, match="must be a string"):
            parse(value)


def test_make_path_id_refuses_bad_parts() -> None:
    for parts in ([], [-1], [True], [1, 2.0]):
        with pytest.raises(IdError):
            ids.make_path_id(parts)  # type: ignore[arg-type]


@pytest.mark.parametrize("value", [VERSION, "F20160313120000AM", "F20161231115959PM", VERSION + "1", VERSION + "27"])
def test_good_versions(value: str) -> None:
    assert ids.is_version(value)
    assert ids.parse_version(value) == value


@pytest.mark.parametrize(
    "value",
    [
        "20160313043757PM",  # no F
        "f20160313043757PM",
        "F20160313043757pm",
        "F20160313133757PM",  # hour 13 on a 12-hour clock
        "F20160313003757AM",  # hour 00 on a 12-hour clock
        "F20160230043757PM",  # 30 February
        "F20160313046057PM",  # minute 60
        "F2016031304375PM",
        VERSION + "0",  # suffix with a leading zero
        VERSION + "01",
        VERSION + "x",
        VERSION + "/",
        "",
    ],
)
def test_bad_versions(value: str) -> None:
    assert not ids.is_version(value)
    with pytest.raises(IdError):
        ids.parse_version(value)


def test_version_time_reads_the_12_hour_clock() -> None:
    assert ids.version_time(VERSION) == datetime(2016, 3, 13, 16, 37, 57, tzinfo=UTC)
    assert ids.version_time("F20160313120000AM") == datetime(2016, 3, 13, 0, 0, 0, tzinfo=UTC)
    assert ids.version_time("F20160313120000PM") == datetime(2016, 3, 13, 12, 0, 0, tzinfo=UTC)


def test_version_key_sorts_by_time_not_by_text() -> None:
    morning, afternoon = "F20160313111000AM", "F20160313011000PM"
    assert afternoon < morning  # as text the afternoon sorts first...
    assert sorted([afternoon, morning], key=ids.version_key) == [morning, afternoon]  # ...not by key


def test_new_version_uses_utc() -> None:
    assert ids.new_version(datetime(2016, 3, 13, 16, 37, 57)) == VERSION  # naive means UTC
    moscow = timezone(timedelta(hours=3))
    assert ids.new_version(datetime(2016, 3, 13, 19, 37, 57, 999999, tzinfo=moscow)) == VERSION
    assert ids.new_version(datetime(2016, 3, 13, 0, 0, 1, tzinfo=UTC)) == "F20160313120001AM"


def test_new_version_suffixes_within_one_second() -> None:
    now = datetime(2016, 3, 13, 16, 37, 57, tzinfo=UTC)
    existing: set[str] = {"F20160313043756PM7"}  # another second does not count
    made = []
    for _ in range(12):
        version = ids.new_version(now, existing)
        assert version not in existing
        existing.add(version)
        made.append(version)
    assert made[:3] == [VERSION, VERSION + "1", VERSION + "2"]
    assert made[-1] == VERSION + "11"
    assert sorted(made, key=ids.version_key) == made  # suffix 10 sorts after 9


def test_new_version_never_goes_below_a_surviving_suffix() -> None:
    now = datetime(2016, 3, 13, 16, 37, 57, tzinfo=UTC)
    assert ids.new_version(now, {VERSION + "3"}) == VERSION + "4"  # not the free bare name
    assert ids.new_version(now, {VERSION, "garbage", "F2016"}) == VERSION + "1"


@given(st.datetimes(min_value=datetime(1970, 1, 1), max_value=datetime(9999, 1, 1), timezones=st.just(UTC)))
def test_new_version_round_trips_any_time(now: datetime) -> None:
    version = ids.new_version(now)
    assert ids.is_version(version)
    assert ids.version_time(version) == now.replace(microsecond=0)


def test_backup_ids() -> None:
    backup_id = f"0/0/1/0/0/{VERSION}"
    assert ids.split_backup_id(backup_id) == ("0/0/1/0/0", VERSION)
    assert ids.parse_backup_id(backup_id) == backup_id
    assert ids.make_backup_id("0/0/1/0/0", VERSION) == backup_id
    assert ids.is_backup_id(backup_id)
    assert ids.backup_relpath(backup_id).parts == ("0", "0", "1", "0", "0", VERSION)


@pytest.mark.parametrize(
    "value", [VERSION, "0/1", f"0/{VERSION}/", f"/0/{VERSION}", f"../{VERSION}", f"01/{VERSION}", f"0/x{VERSION}"]
)
def test_bad_backup_ids(value: str) -> None:
    assert not ids.is_backup_id(value)
    with pytest.raises(IdError, match="backup ID"):
        ids.split_backup_id(value)


def test_piece_ids() -> None:
    piece_id = f"0/0/1/0/0/{VERSION}/3-1-Parity"
    piece = ids.parse_piece_id(piece_id)
    assert piece == ("0/0/1/0/0", VERSION, 3, 1, PieceKind.PARITY)
    assert piece.backup_id == f"0/0/1/0/0/{VERSION}"
    assert piece.name == "3-1-Parity"
    assert str(piece) == piece_id
    assert ids.make_piece_id(piece.backup_id, 3, 1, "Parity") == piece_id
    assert ids.piece_name(0, 12, PieceKind.DATA) == "0-12-Data"
    assert ids.parse_piece_name("0-12-Data").kind is PieceKind.DATA


@pytest.mark.parametrize(
    "name", ["3-1-data", "03-1-Data", "3-01-Data", "3--1-Data", "3-1-Data/", "3-1-Data\x00", "3-1", "a-1-Data", ".."]
)
def test_bad_piece_names(name: str) -> None:
    with pytest.raises(IdError):
        ids.parse_piece_id(f"0/{VERSION}/{name}")


def test_piece_name_refuses_bad_numbers() -> None:
    for block, supplier, kind in ((-1, 0, "Data"), (0, -1, "Data"), (0, 0, "data"), (10**13, 0, "Data")):
        with pytest.raises(IdError):
            ids.piece_name(block, supplier, kind)


def test_piece_path_stays_under_root(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    piece_id = f"0/2/{VERSION}/5-0-Data"
    assert ids.piece_relpath(piece_id).as_posix() == f"0/2/{VERSION}/5-0-Data"
    path = ids.piece_path(tmp_path, piece_id)
    assert path == tmp_path / "0" / "2" / VERSION / "5-0-Data"
    monkeypatch.chdir(tmp_path)
    assert ids.piece_path("customers", piece_id) == tmp_path.resolve() / "customers" / "0" / "2" / VERSION / "5-0-Data"
    for evil in (f"../../{VERSION}/0-0-Data", f"/etc/{VERSION}/0-0-Data", f"0/{VERSION}/../0-0-Data"):
        with pytest.raises(IdError):
            ids.piece_path(tmp_path, evil)


@given(st.text(alphabet=st.sampled_from("0123/.-FAPMDataParity\x00\\"), max_size=60))
def test_any_accepted_piece_id_maps_inside_its_folder(text: str) -> None:
    try:
        rel = ids.piece_relpath(text)
    except IdError:
        return  # refused: nothing to place
    assert not rel.is_absolute()
    assert ".." not in rel.parts and "." not in rel.parts
    assert rel.as_posix() == text
