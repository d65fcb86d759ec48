"""The ``Range`` request header (RFC 9110 section 14), for one range.

Several ranges in one request are answered with the whole object (a server may ignore Range), as
is a header this parser does not understand; a range that no byte of the object satisfies is 416.
"""

from __future__ import annotations

from ..errors import RangeNotSatisfiable
from ..storage import ByteRange


def parse_range(header: str | None, size: int) -> ByteRange | None:
    if not header:
        return None
    unit, _, spec = header.partition("=")
    if unit.strip().lower() != "bytes" or "," in spec:
        return None
    first, dash, last = spec.strip().partition("-")
    if not dash or not (first.isdigit() or first == "") or not (last.isdigit() or last == "") or first == last == "":
        return None
    if size == 0:
        raise RangeNotSatisfiable("the object is empty: no byte range can be served")
    if first == "":
        if int(last) == 0:
            raise RangeNotSatisfiable("an empty suffix range")
        return ByteRange.last(int(last))
    start = int(first)
    if last != "" and int(last) < start:
        return None  # invalid: ignore, as RFC 9110 says
    if start >= size:
        raise RangeNotSatisfiable(f"the range starts at byte {start} of a {size}-byte object")
    return ByteRange(start, None if last == "" else int(last) + 1)
