from __future__ import annotations

import pytest

from cargohold.units import format_size, human_size, parse_duration, parse_size


@pytest.mark.parametrize(
    ("text", "expected"),
    [("0", 0), ("512", 512), ("1k", 1024), ("512m", 512 * 1024**2), ("10g", 10 * 1024**3), ("2T", 2 * 1024**4),
     (" 1g ", 1024**3)],
)
def test_sizes(text: str, expected: int) -> None:
    assert parse_size(text) == expected


@pytest.mark.parametrize("text", ["10x", "", "g", "1.5g", "-1m", "1 g", "10gb"])
def test_bad_sizes(text: str) -> None:
    with pytest.raises(ValueError, match="not a size"):
        parse_size(text)


@pytest.mark.parametrize(
    ("text", "expected"),
    [("30", 30), ("30s", 30), ("30m", 1800), ("12h", 43200), ("7d", 604800), ("2w", 1209600), ("1h30m", 5400),
     ("500ms", 0.5), ("1y", 365 * 86400)],
)
def test_durations(text: str, expected: float) -> None:
    assert parse_duration(text) == expected


@pytest.mark.parametrize("text", ["", "soon", "12x", "h", "1.5h", "-3d", "12h!"])
def test_bad_durations(text: str) -> None:
    with pytest.raises(ValueError, match="not a duration"):
        parse_duration(text)


def test_format_size_round_trips() -> None:
    for text in ("1k", "512m", "10g", "3t", "1000"):
        assert format_size(parse_size(text)) == text


@pytest.mark.parametrize(("size", "shown"), [(0, "0 bytes"), (1, "1 byte"), (999, "999 bytes"), (1000, "1.0 kB"),
                                             (1500, "1.5 kB"), (123_456_789, "123.5 MB"), (10**18, "1.0 EB")])
def test_human_size_in_powers_of_1000(size: int, shown: str) -> None:
    assert human_size(size) == shown
