"""Property tests (Hypothesis) for the parsers every request and setting goes through: link URIs,
links files, sizes and durations, and byte ranges. Each property holds for any input, not only for the
examples of the other tests."""

from __future__ import annotations

import asyncio
import functools
from collections import Counter
from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from cargohold.errors import BadInput, RangeNotSatisfiable
from cargohold.http.ranges import parse_range
from cargohold.storage.base import ByteRange
from cargohold.storage.links_file import MAX_LINE_BYTES, Entry, Refused, parse_line, parse_stream
from cargohold.storage.uris import SCHEMES, ObjectLink, UrlLink, parse_link, parse_prefix
from cargohold.units import format_size, parse_duration, parse_size

# No example database: nothing is written into the work tree (a failure prints its seed to run it again).
EXAMPLES = settings(max_examples=300, deadline=None, database=None, suppress_health_check=[HealthCheck.too_slow])
FEW = settings(max_examples=100, deadline=None, database=None,
               suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])

CASES: Counter[str] = Counter()
URIS = pytest.mark.reliability(kind="bad input", cases=0, what="link URIs, any text (Hypothesis): `parse_link`, "
                               "`parse_prefix` give a link or BadInput, never a crash; parsed links round-trip")
LINKS_FILES = pytest.mark.reliability(kind="bad input", cases=0, what="links files of any lines, bytes, line endings "
                                      "and chunking (Hypothesis): one answer per line, with its number")
UNITS = pytest.mark.reliability(kind="bad input", cases=0, what="sizes and durations, any text (Hypothesis): "
                                "ValueError with a message, monotonic, `format_size` round-trips")
RANGES = pytest.mark.reliability(kind="bad input", cases=0, what="`Range` headers, any text and object size "
                                 "(Hypothesis): no byte outside the object, 416 only when nothing is satisfiable")


def counted(test: Callable[..., None]) -> Callable[..., None]:
    """Counts the examples Hypothesis runs, for docs/RELIABILITY.md (``_report_cases``)."""

    @functools.wraps(test)
    def run(*args: Any, **kwargs: Any) -> None:
        CASES[test.__name__] += 1
        test(*args, **kwargs)

    return run


@pytest.fixture(autouse=True)
def _report_cases(request: pytest.FixtureRequest) -> Iterator[None]:
    name = request.node.originalname
    before = CASES[name]
    yield
    request.node.user_properties.append(("reliability_cases", CASES[name] - before))


# --- link URIs ----------------------------------------------------------------------------------------------------

schemes = st.sampled_from([*SCHEMES, "http", "https", "S3", "Fs", "ftp", "", "file"])
anything = st.one_of(st.text(), st.builds(lambda s, r: f"{s}://{r}", schemes, st.text()))
# What a key may be: segments that are not '', '.' or '..', without control characters or a backslash.
segment = st.text(st.characters(codec="utf-8", exclude_categories=("Cc", "Cs"), exclude_characters="/\\"),
                  min_size=1, max_size=12).filter(lambda s: s not in (".", ".."))
keys = st.lists(segment, min_size=1, max_size=5).map("/".join).filter(
    lambda k: k == k.strip() and len(k.encode()) <= 1024)
buckets = st.text(st.characters(codec="utf-8", exclude_categories=("Cc", "Cs"), exclude_characters="/"),
                  min_size=1, max_size=20).filter(lambda b: b == b.strip())


@URIS
@EXAMPLES
@given(anything)
@example("http://[::1")  # urlsplit raises ValueError for these
@example("https://example.com:99999/a.jpg")
@example("http://[not-an-address]/x")
@counted
def test_parse_link_of_any_text_gives_a_link_or_bad_input(text: str) -> None:
    try:
        link = parse_link(text)
    except BadInput as exc:
        assert exc.message.strip()
        return
    assert isinstance(link, ObjectLink | UrlLink)
    assert parse_link(link.uri) == link, "a parsed link's URI parses to the same link"


@URIS
@EXAMPLES
@given(st.sampled_from(sorted(SCHEMES)), buckets, keys)
@counted
def test_parse_link_round_trips_every_valid_object_link(scheme: str, bucket: str, key: str) -> None:
    link = parse_link(f"{scheme}://{bucket}/{key}")
    assert link == ObjectLink(scheme, SCHEMES[scheme], bucket, key)
    assert link.uri == f"{scheme}://{bucket}/{key}" and link.default_name == key


@URIS
@EXAMPLES
@given(st.sampled_from(sorted(SCHEMES)), buckets, st.lists(segment, max_size=3), st.sampled_from(["..", ".", ""]),
       st.lists(segment, max_size=3))
@counted
def test_parse_link_refuses_every_key_with_a_dot_dot_dot_or_empty_segment(
        scheme: str, bucket: str, before: list[str], bad: str, after: list[str]) -> None:
    key = "/".join([*before, bad, *after])
    with pytest.raises(BadInput):
        parse_link(f"{scheme}://{bucket}/{key}")


@URIS
@EXAMPLES
@given(anything)
@counted
def test_parse_prefix_of_any_text_gives_a_folder_or_bad_input(text: str) -> None:
    try:
        prefix = parse_prefix(text)
    except BadInput as exc:
        assert exc.message.strip()
        return
    assert prefix.bucket and "/" not in prefix.bucket
    assert not prefix.prefix.startswith("/") and not prefix.prefix.endswith("/")
    assert parse_prefix(f"{prefix.scheme}://{prefix.bucket}/{prefix.prefix}/") == prefix


# --- links files --------------------------------------------------------------------------------------------------

line_text = st.one_of(
    st.text(st.characters(codec="utf-8", exclude_characters="\n"), max_size=40),
    st.builds(lambda s, b, k: f"{s}://{b}/{k}", st.sampled_from(["s3", "fs", "gs", "https"]), buckets, keys),
    st.sampled_from(["", "   ", "# a comment", "\ufeff# bom", "  # indented", "s3://b/../x", "nope"]),
    st.builds(lambda c, n: c * n, st.sampled_from(["a", "#", " ", "é"]),
              st.integers(MAX_LINE_BYTES - 2, MAX_LINE_BYTES + 3)),
)
raw_line = st.one_of(line_text.map(str.encode), st.binary(max_size=40).map(lambda b: b.replace(b"\n", b"")))


async def _collect(chunks: list[bytes]) -> list[Entry | Refused]:
    async def source() -> AsyncIterator[bytes]:
        for chunk in chunks:
            yield chunk

    return [parsed async for parsed in parse_stream(source())]


def _split(data: bytes, cuts: list[int]) -> list[bytes]:
    points = sorted({c % (len(data) + 1) for c in cuts})
    return [data[a:b] for a, b in zip([0, *points], [*points, len(data)], strict=True)]


@LINKS_FILES
@FEW
@given(st.lists(raw_line, max_size=25), st.sampled_from([b"\n", b"\r\n"]), st.booleans(),
       st.lists(st.integers(0, 10**6), max_size=8))
@example([b"#" * (MAX_LINE_BYTES + 1), b"s3://b/k"], b"\n", True, [])  # a long comment, then a line
@example([b" " * (MAX_LINE_BYTES + 1), b"x"], b"\n", False, [])  # a long blank line
@example([b"a" * MAX_LINE_BYTES, b"x"], b"\r\n", False, [MAX_LINE_BYTES + 1])  # a chunk ends between \r and \n
@counted
def test_links_file_every_line_is_an_entry_or_a_refusal_with_its_number(
        lines: list[bytes], ending: bytes, final_newline: bool, cuts: list[int]) -> None:
    data = ending.join(lines) + (ending if final_newline and lines else b"")
    whole = asyncio.run(_collect([data]))
    assert asyncio.run(_collect(_split(data, cuts))) == whole, "the same answer however the file arrives"
    by_line = {p.line: p for p in whole}
    assert len(by_line) == len(whole) and [p.line for p in whole] == sorted(by_line), "one answer per line, in order"
    for number, raw in enumerate(lines, start=1):
        parsed = by_line.get(number)
        try:
            text = raw.decode()
        except UnicodeDecodeError:
            assert isinstance(parsed, Refused) and parsed.reason == "not UTF-8 text", (number, raw, parsed)
            continue
        stripped = text.strip().lstrip("\ufeff")
        if len(raw) > MAX_LINE_BYTES:
            assert isinstance(parsed, Refused) and "longer than" in parsed.reason, (number, parsed)
        elif not stripped or stripped.startswith("#"):
            assert parsed is None, (number, parsed)
        else:
            assert parsed is not None, (number, raw)
            assert parsed == parse_line(number, text)
            if isinstance(parsed, Refused):
                assert parsed.reason.strip(), parsed
    assert set(by_line) <= set(range(1, len(lines) + 1))


# --- sizes and durations ------------------------------------------------------------------------------------------

SIZE_UNITS = {"": 1, "k": 1024, "m": 1024**2, "g": 1024**3, "t": 1024**4}
DURATION_UNITS = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400, "y": 365 * 86400}


@UNITS
@EXAMPLES
@given(st.integers(0, 10**15), st.integers(0, 10**15), st.sampled_from(sorted(SIZE_UNITS)), st.booleans())
@counted
def test_parse_size_is_monotonic_and_scales_by_its_unit(a: int, b: int, unit: str, upper: bool) -> None:
    u = unit.upper() if upper else unit
    assert parse_size(f"{a}{u}") == a * SIZE_UNITS[unit]
    assert (parse_size(f"{a}{u}") <= parse_size(f"{b}{u}")) == (a <= b)


@UNITS
@EXAMPLES
@given(st.integers(0, 2**70))
@counted
def test_format_size_round_trips(size: int) -> None:
    assert parse_size(format_size(size)) == size


@UNITS
@EXAMPLES
@given(st.one_of(st.text(), st.text("0123456789kmgtKMGT .-+_e\u0663\u00b2", max_size=30),
                 st.integers(4000, 6000).map(lambda n: "9" * n)))
@counted
def test_parse_size_of_any_text_is_a_size_or_a_value_error_that_says_so(text: str) -> None:
    try:
        size = parse_size(text)
    except ValueError as exc:
        assert "is not a size" in str(exc), str(exc)[:200]
        return
    assert isinstance(size, int) and size >= 0
    assert text.strip().isascii(), f"{text!r}: only ASCII digits make a size"


durations = st.lists(st.tuples(st.integers(0, 10**6), st.sampled_from(sorted(DURATION_UNITS))), min_size=1,
                     max_size=4)


@UNITS
@EXAMPLES
@given(durations)
@counted
def test_parse_duration_adds_its_parts(parts: list[tuple[int, str]]) -> None:
    text = "".join(f"{n}{unit}" for n, unit in parts)
    assert parse_duration(text) == pytest.approx(sum(n * DURATION_UNITS[unit] for n, unit in parts))


@UNITS
@EXAMPLES
@given(st.integers(0, 10**9), st.integers(0, 10**9), st.sampled_from(sorted(DURATION_UNITS)))
@counted
def test_parse_duration_is_monotonic(a: int, b: int, unit: str) -> None:
    if a <= b:
        assert parse_duration(f"{a}{unit}") <= parse_duration(f"{b}{unit}")


@UNITS
@EXAMPLES
@given(st.one_of(st.text(), st.text("0123456789smhdwyMS .-+_\u0663\u00b2", max_size=30),
                 st.integers(300, 6000).map(lambda n: "9" * n + "y")))
@counted
def test_parse_duration_of_any_text_is_seconds_or_a_value_error_that_says_so(text: str) -> None:
    try:
        seconds = parse_duration(text)
    except ValueError as exc:
        assert "is not a duration" in str(exc), str(exc)[:200]
        return
    assert seconds >= 0 and seconds != float("inf")
    assert text.strip().isascii(), f"{text!r}: only ASCII digits make a duration"


# --- byte ranges --------------------------------------------------------------------------------------------------

digits = st.one_of(st.integers(0, 2000).map(str), st.just(""), st.integers(20, 5000).map(lambda n: "9" * n),
                   st.sampled_from(["\u00b2", "\u0663", "1\u00b2", "+1", "-1", " 1", "0x10", "1_0"]))
range_headers = st.one_of(
    st.builds(lambda a, b, unit: f"{unit}={a}-{b}", digits, digits, st.sampled_from(["bytes", "Bytes", " bytes "])),
    st.builds(lambda a, b, c, d: f"bytes={a}-{b},{c}-{d}", digits, digits, digits, digits),
    st.text(max_size=30), st.none(),
)


@RANGES
@EXAMPLES
@given(range_headers, st.integers(0, 5000))
@counted
def test_parse_range_never_answers_a_byte_outside_the_object(header: str | None, size: int) -> None:
    try:
        byte_range = parse_range(header, size)
    except RangeNotSatisfiable:
        assert header is not None
        spec = header.partition("=")[2].strip()
        first, _, last = spec.partition("-")
        # 416 only when no byte is satisfiable: an empty object, a start at or past the end, or "-0".
        assert size == 0 or (first and (len(first) > 19 or int(first) >= size)) or (not first and int(last) == 0), (
            header, size)
        return
    if byte_range is None:
        return
    start, end = byte_range.resolve(size)
    assert 0 <= start < end <= size, (header, size, start, end)


@RANGES
@EXAMPLES
@given(st.integers(0, 10**6), st.integers(0, 10**6), st.integers(1, 10**6))
@counted
def test_parse_range_serves_every_satisfiable_span(a: int, length: int, size: int) -> None:
    b = a + length
    byte_range = parse_range(f"bytes={a}-{b}", size) if a < size else None
    if a >= size:
        with pytest.raises(RangeNotSatisfiable):
            parse_range(f"bytes={a}-{b}", size)
        return
    assert byte_range is not None
    assert byte_range.resolve(size) == (a, min(b + 1, size))
    assert parse_range(f"bytes=-{length + 1}", size).resolve(size) == (max(0, size - length - 1), size)


@RANGES
@EXAMPLES
@given(st.integers(0, 10**6), st.one_of(st.none(), st.integers(1, 10**6)), st.one_of(st.none(), st.integers(1, 10**6)),
       st.integers(0, 10**6))
@counted
def test_byte_range_resolve_stays_inside_the_object(start: int, length: int | None, suffix: int | None,
                                                    size: int) -> None:
    byte_range = ByteRange(suffix=suffix) if suffix is not None else ByteRange(
        start, None if length is None else start + length)
    try:
        first, end = byte_range.resolve(size)
    except RangeNotSatisfiable:
        assert suffix is None and start >= size
        return
    assert 0 <= first <= end <= size
    assert first < end or size == 0
