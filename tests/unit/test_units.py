from __future__ import annotations

import pytest

from bitdust.util.units import format_size, parse_size, percent


@pytest.mark.parametrize(
    ("num", "text"),
    [(0, "0 bytes"), (1023, "1023 bytes"), (48981, "47.83 KB"), (134217728, "128 MB"),
     (907163720, "865.14 MB"), (8 * 1024**3, "8 GB"), (63943473102848, "59552 GB")],
)
def test_format_size_matches_spec_examples(num: int, text: str) -> None:
    assert format_size(num) == text


def test_parse_size() -> None:
    assert parse_size("128 MB") == 128 * 1024**2
    assert parse_size("12") == 12
    with pytest.raises(ValueError):
        parse_size("12 furlongs")


def test_percent() -> None:
    assert percent(1, 0) == "0%"
    assert percent(1, 4) == "25%"
