"""A links file: one link a line, CRLF or LF, ``#`` comments and blank lines skipped.

Line numbers count every line of the file from 1, comments and blanks included, so a report points
at the line a user sees in an editor.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass

from ..errors import BadInput
from .base import ObjectMeta
from .uris import Link, parse_link

MAX_LINE_BYTES = 8192


@dataclass(frozen=True)
class Refused:
    line: int
    url: str
    reason: str


@dataclass(frozen=True)
class Entry:
    line: int
    link: Link
    name: str | None = None
    meta: ObjectMeta | None = None
    """Size and ETag already known (from a bucket listing): verification then skips its HEAD."""


def _too_long(number: int, raw: bytes) -> Refused | None:
    """A line over MAX_LINE_BYTES (its line ending not counted) is refused whatever it holds, a comment or
    blanks too: a stream cannot wait for such a line's end to know what it was."""
    if len(raw.removesuffix(b"\n").removesuffix(b"\r")) <= MAX_LINE_BYTES:
        return None
    return Refused(number, raw[:200].decode("utf-8", "replace") + "...", f"line longer than {MAX_LINE_BYTES} bytes")


def parse_line(number: int, raw: str) -> Entry | Refused | None:
    if len(raw) > MAX_LINE_BYTES // 4 and (long := _too_long(number, raw.encode())) is not None:
        return long
    text = raw.strip().lstrip("\ufeff")
    if not text or text.startswith("#"):
        return None
    try:
        return Entry(number, parse_link(text))
    except BadInput as exc:
        return Refused(number, text, exc.message)


def parse_lines(lines: Iterator[str]) -> Iterator[Entry | Refused]:
    for number, raw in enumerate(lines, start=1):
        parsed = parse_line(number, raw)
        if parsed is not None:
            yield parsed


async def parse_stream(chunks: AsyncIterator[bytes]) -> AsyncIterator[Entry | Refused]:
    """Lines of a links file as it arrives: the file is never held whole."""
    buffer = b""
    number = 0
    skipping = False  # inside a line too long to keep, already reported
    async for chunk in chunks:
        buffer += chunk
        *complete, buffer = buffer.split(b"\n")
        for raw in complete:
            number += 1
            if skipping:
                skipping = False
                continue
            parsed = _decoded(number, raw)
            if parsed is not None:
                yield parsed
        if len(buffer) > MAX_LINE_BYTES + 1:  # + 1: the '\r' of a CRLF line ending may be in it
            if not skipping:
                yield _too_long(number + 1, buffer) or Refused(number + 1, "", "line too long")
                skipping = True
            buffer = b""
    if buffer and not skipping:
        parsed = _decoded(number + 1, buffer)
        if parsed is not None:
            yield parsed


def _decoded(number: int, raw: bytes) -> Entry | Refused | None:
    if (long := _too_long(number, raw)) is not None:
        return long
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        return Refused(number, raw[:200].decode("utf-8", "replace"), "not UTF-8 text")
    return parse_line(number, text)
