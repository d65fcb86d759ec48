"""The ``Range`` request header (RFC 9110 section 14), for one range.

Several ranges in one request are answered with the whole object (a server may ignore Range), as
is a header this parser does not understand; a range that no byte of the object satisfies is 416.
"""

from __future__ import annotations

import re

from ..errors import RangeNotSatisfiable
from ..storage import ByteRange

_DIGITS = re.compile(r"[0-9]*")
_BEYOND = 10**19
"""Stands for any position past 19 digits: beyond every object (sizes fit in 63 bits)."""


def _position(digits: str) -> int:
    # Python refuses int() of more than 4300 digits; past 19 the exact number no longer matters.
    return int(digits) if len(digits) <= 19 else _BEYOND


def parse_range(header: str | None, size: int) -> ByteRange | None:
    if not header:
        return None
    unit, _, spec = header.partition("=")
    if unit.strip().lower() != "bytes" or "," in spec:
        return None
    first, dash, last = spec.strip().partition("-")
    # ASCII digits only: str.isdigit() also takes '²', which int() refuses.
    if not dash or not _DIGITS.fullmatch(first) or not _DIGITS.fullmatch(last) or first == last == "":
        return None
    if size == 0:
        raise RangeNotSatisfiable("the object is empty: no byte range can be served")
    if first == "":
        if _position(last) == 0:
            raise RangeNotSatisfiable("an empty suffix range")
        return ByteRange.last(_position(last))
    start = _position(first)
    if last != "" and _position(last) < start:
        return None  # invalid: ignore, as RFC 9110 says
    if start >= size:
        shown = start if start < _BEYOND else first[:19] + "..."
        raise RangeNotSatisfiable(f"the range starts at byte {shown} of a {size}-byte object")
    return ByteRange(start, None if last == "" else _position(last) + 1)
