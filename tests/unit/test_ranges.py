from __future__ import annotations

import pytest

from cargohold.errors import RangeNotSatisfiable
from cargohold.http.ranges import parse_range
from cargohold.storage import ByteRange


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        ("bytes=0-0", (0, 1)),
        ("bytes=0-99", (0, 100)),
        ("bytes=999-999", (999, 1000)),
        ("bytes=990-5000", (990, 1000)),  # end past the object: clipped
        ("bytes=500-", (500, 1000)),
        ("bytes=-10", (990, 1000)),
        ("bytes=-5000", (0, 1000)),  # suffix longer than the object: all of it
        ("BYTES = 1-2", (1, 3)),  # read leniently
    ],
)
def test_single_ranges(header: str, expected: tuple[int, int] | None) -> None:
    parsed = parse_range(header, 1000)
    if expected is None:
        assert parsed is None
    else:
        assert isinstance(parsed, ByteRange)
        assert parsed.resolve(1000) == expected


@pytest.mark.parametrize(
    "header", [None, "", "items=0-1", "bytes=0-1,5-6", "bytes=5-1", "bytes=a-b", "bytes=-", "bytes"]
)
def test_ignored_headers_mean_the_whole_object(header: str | None) -> None:
    assert parse_range(header, 1000) is None


@pytest.mark.parametrize(("header", "size"), [("bytes=1000-", 1000), ("bytes=5000-6000", 1000), ("bytes=-0", 1000),
                                              ("bytes=0-", 0), ("bytes=-5", 0)])
def test_unsatisfiable(header: str, size: int) -> None:
    with pytest.raises(RangeNotSatisfiable):
        parse_range(header, size)
