"""Config: types, persistence as a file tree, validation, listeners, API views."""

from __future__ import annotations

from pathlib import Path

import pytest

from bitdust.config import Config, ConfigValueError, UnknownOptionError, views
from bitdust.config import types as t
from bitdust.config.options import OPTIONS


@pytest.mark.parametrize(
    ("option_type", "raw", "expected"),
    [
        (t.BOOLEAN, "true", True), (t.BOOLEAN, "False", False), (t.BOOLEAN, True, True), (t.BOOLEAN, "0", False),
        (t.INTEGER, "-5", -5), (t.POSITIVE_INTEGER, "0", 0), (t.POSITIVE_INTEGER, 12, 12),
        (t.FLOAT, "2.5", 2.5), (t.STRING, "hello world", "hello world"),
        (t.TEXT_LIST, "a:1, b:2,,", ("a:1", "b:2")), (t.TEXT_LIST, ["x", "y"], ("x", "y")),
        (t.PORT, "8083", 8083), (t.DISK_SPACE, "128 MB", 128 * 1024**2), (t.DISK_SPACE, "8GB", 8 * 1024**3),
        (t.DISK_SPACE, "1.5 KB", 1536), (t.DISK_SPACE, 4096, 4096),
        (t.ComboType(choices=("2", "4", "7"), integer=True), "4", 4),
    ],
)
def test_types_parse(option_type: t.OptionType, raw: object, expected: object) -> None:
    assert option_type.parse(raw) == expected


@pytest.mark.parametrize(
    ("option_type", "raw"),
    [
        (t.BOOLEAN, "maybe"), (t.INTEGER, "1.5"), (t.INTEGER, True), (t.POSITIVE_INTEGER, "-1"),
        (t.FLOAT, "nan"), (t.FLOAT, "abc"), (t.STRING, "a\nb"), (t.STRING, "a\x00"), (t.STRING, {"a": 1}),
        (t.TEXT_LIST, 5), (t.PORT, "0"), (t.PORT, "65536"), (t.PORT, "http"),
        (t.DISK_SPACE, "lots"), (t.DISK_SPACE, "5 parsecs"), (t.DISK_SPACE, "-3 MB"), (t.DISK_SPACE, True),
        (t.ComboType(choices=("2", "4"), integer=True), "3"),
    ],
)
def test_types_refuse(option_type: t.OptionType, raw: object) -> None:
    with pytest.raises(ConfigValueError):
        option_type.parse(raw)


@pytest.mark.parametrize(
    ("option_type", "value", "text"),
    [(t.BOOLEAN, True, "true"), (t.DISK_SPACE, 128 * 1024**2, "128 MB"), (t.DISK_SPACE, 8 * 1024**3, "8 GB"),
     (t.TEXT_LIST, ("a", "b"), "a,b"), (t.PORT, 7771, "7771"), (t.DISK_SPACE, 10000, "10000 bytes"),
     (t.DISK_SPACE, 1536, "1.5 KB")],
)
def test_types_render_round_trip(option_type: t.OptionType, value: object, text: str) -> None:
    assert option_type.render(value) == text
    assert option_type.parse(text) == value


def test_every_option_has_valid_default_and_description() -> None:
    keys = [opt.key for opt in OPTIONS]
    assert len(keys) == len(set(keys)), "duplicate option keys"
    for opt in OPTIONS:
        assert opt.description.strip(), opt.key
        assert opt.type.parse(opt.type.render(opt.default)) == opt.default, opt.key


def test_defaults_without_files(tmp_path: Path) -> None:
    config = Config(tmp_path)
    assert config.get("services/customer/suppliers-number") == 4
    assert config.get("interface/api/json-rpc-port") == 8083
    assert not any(tmp_path.iterdir()), "defaults must not be written"


def test_set_persists_as_file_tree_and_reloads(tmp_path: Path) -> None:
    config = Config(tmp_path)
    before, after = config.set("services/backups/max-block-size", "64 MB")
    assert (before.value, after.value) == ("128 MB", "64 MB")
    assert (tmp_path / "services" / "backups" / "max-block-size").read_text() == "64 MB\n"
    assert Config(tmp_path).get("services/backups/max-block-size") == 64 * 1024**2
    config.set("services/backups/max-block-size", "128 MB")
    assert not (tmp_path / "services" / "backups" / "max-block-size").exists(), "default again: file removed"


def test_wrong_value_keeps_old(tmp_path: Path) -> None:
    config = Config(tmp_path)
    config.set("services/backups/max-block-size", "64 MB")
    with pytest.raises(ConfigValueError, match="lots"):
        config.set("services/backups/max-block-size", "lots")
    assert config.get("services/backups/max-block-size") == 64 * 1024**2
    assert Config(tmp_path).get("services/backups/max-block-size") == 64 * 1024**2


def test_cross_check_block_size(tmp_path: Path) -> None:
    config = Config(tmp_path)
    with pytest.raises(ConfigValueError, match="block-size"):
        config.set("services/backups/block-size", "256 MB")
    assert config.get("services/backups/block-size") == 4 * 1024**2


def test_unknown_key(tmp_path: Path) -> None:
    config = Config(tmp_path)
    with pytest.raises(UnknownOptionError):
        config.set("no/such/key", "1")
    with pytest.raises(UnknownOptionError):
        config.get("no/such/key")


def test_corrupt_file_falls_back_to_default(tmp_path: Path) -> None:
    path = tmp_path / "services" / "customer" / "suppliers-number"
    path.parent.mkdir(parents=True)
    path.write_text("five\n")
    assert Config(tmp_path).get("services/customer/suppliers-number") == 4


def test_listeners_hear_changes_by_prefix(tmp_path: Path) -> None:
    config = Config(tmp_path)
    heard: list[tuple[str, object, object]] = []
    config.listen("services/", lambda k, old, new: heard.append((k, old, new)))
    config.set("logs/debug-level", 8)
    config.set("services/backups/enabled", "false")
    config.set("services/backups/enabled", "false")  # no change, no event
    assert heard == [("services/backups/enabled", True, False)]


def test_views_match_spec_shapes(tmp_path: Path) -> None:
    config = Config(tmp_path)
    assert views.describe(config, "logs/debug-level") == [
        {"type": "positive integer", "value": "4", "key": "logs/debug-level"}]
    assert views.change(config, "logs/debug-level", "10") == [
        {"type": "positive integer", "old_value": "4", "value": "10", "key": "logs/debug-level"}]
    folder = views.describe(config, "services/backups")
    assert {row["key"] for row in folder} >= {"services/backups/enabled", "services/backups/max-block-size"}
    rows = views.listing(config, sort=True)
    assert [r["key"] for r in rows] == sorted(r["key"] for r in rows)
    assert all(set(r) == {"type", "value", "key"} for r in rows)
    with pytest.raises(UnknownOptionError):
        views.describe(config, "services/nothing")
