"""Human-readable sizes, as the API shows them ('128 MB', '8 GB', '865.14 MB').

Sizes use binary multiples (1 MB = 1024 * 1024 bytes), as the original BitDust did:
the spec's ``'donatedstr': '1024 MB'`` for 1073741824 bytes only adds up that way.
"""

from __future__ import annotations

import re

UNITS: dict[str, int] = {
    "bytes": 1,
    "byte": 1,
    "b": 1,
    "kb": 1024,
    "mb": 1024**2,
    "gb": 1024**3,
    "tb": 1024**4,
}

_SIZE_RE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([a-zA-Z]*)\s*$")


def parse_size(text: str) -> int:
    """``'128 MB'`` -> 134217728. Raises ValueError with a readable reason."""
    match = _SIZE_RE.match(text)
    if not match:
        raise ValueError(f"{text!r} is not a disk space like '128 MB' or '8 GB'")
    number, unit = match.groups()
    factor = UNITS.get(unit.lower() or "bytes")
    if factor is None:
        raise ValueError(f"unknown unit {unit!r} in {text!r}; use bytes, KB, MB, GB or TB")
    return int(float(number) * factor)


def format_size(num_bytes: int | float) -> str:
    """134217728 -> '128 MB'; 907163720 -> '865.14 MB'; 0 -> '0 bytes'.

    GB is the largest unit, as in the spec's ``'disktotalstr': '59552 GB'``.
    """
    if abs(num_bytes) < 1024:
        return f"{int(num_bytes)} bytes"
    value = float(num_bytes)
    for unit in ("KB", "MB", "GB"):
        value /= 1024
        if abs(value) < 1024 or unit == "GB":
            return f"{_trim(value)} {unit}"
    raise AssertionError("unreachable: the loop returns at GB")


def _trim(value: float) -> str:
    text = f"{value:.2f}".rstrip("0").rstrip(".")
    return text


def percent(part: float, whole: float) -> str:
    """'0.155%' style share, '0%' when ``whole`` is zero."""
    if not whole:
        return "0%"
    return _trim(round(100.0 * part / whole, 3)) + "%"
