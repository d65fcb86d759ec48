"""Sizes and durations written the way nginx writes them: ``512m``, ``10g``; ``30s``, ``12h``, ``7d``."""

from __future__ import annotations

import re

_SIZE_UNITS = {"": 1, "k": 1024, "m": 1024**2, "g": 1024**3, "t": 1024**4}
_DURATION_UNITS = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400, "y": 365 * 86400}
# ASCII digits, and at most 30 of them: \d takes any script's digits, and int() refuses more than 4300.
_SIZE_RE = re.compile(r"^([0-9]{1,30})([kmgt]?)$", re.IGNORECASE)
_DURATION_PART_RE = re.compile(r"([0-9]{1,30})(ms|[smhdwy]?)", re.IGNORECASE)


def parse_size(text: str) -> int:
    """Bytes in ``text``: a number with an optional k, m, g or t suffix (powers of 1024)."""
    match = _SIZE_RE.match(text.strip())
    if not match:
        raise ValueError(f"{text[:100]!r} is not a size; write a number with an optional unit, as 512m or 10g")
    return int(match.group(1)) * _SIZE_UNITS[match.group(2).lower()]


def parse_duration(text: str) -> float:
    """Seconds in ``text``: one or more number+unit parts (``1h30m``); a bare number is seconds."""
    compact = text.strip().replace(" ", "")
    total = 0.0
    pos = 0
    for match in _DURATION_PART_RE.finditer(compact):
        if match.start() != pos or not match.group(0):
            break
        total += int(match.group(1)) * _DURATION_UNITS[match.group(2).lower() or "s"]
        pos = match.end()
    if not compact or pos != len(compact):
        raise ValueError(f"{text[:100]!r} is not a duration; write a number with a unit, as 30m, 12h or 7d")
    return total


def format_size(size: int) -> str:
    for unit in ("t", "g", "m", "k"):
        if size and size % _SIZE_UNITS[unit] == 0:
            return f"{size // _SIZE_UNITS[unit]}{unit}"
    return str(size)


def human_size(size: int) -> str:
    """``size`` for people, in powers of 1000 as file managers show it: ``1.5 MB``, ``340 bytes``."""
    if size < 1000:
        return "1 byte" if size == 1 else f"{size:,} bytes"
    value = float(size)
    for unit in ("kB", "MB", "GB", "TB", "PB", "EB"):
        value /= 1000
        if value < 1000 or unit == "EB":
            return f"{value:,.1f} {unit}"
    raise AssertionError("unreachable")
