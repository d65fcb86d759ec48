"""Streaming ``multipart/form-data``: each file part's bytes go on as they arrive, never spooled.

python-multipart does the parsing; this module turns its callbacks into one async iterator of parts,
each with an async iterator of its bytes. A part must be read (or skipped) before the next is
produced, which is how an upload endpoint consumes them anyway.
"""

from __future__ import annotations

from collections import deque
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

from python_multipart.exceptions import MultipartParseError
from python_multipart.multipart import MultipartParser, parse_options_header

from ..errors import BadInput

MAX_HEADER_BYTES = 16 * 1024


@dataclass
class Part:
    name: str
    filename: str | None
    content_type: str | None
    chunks: AsyncIterator[bytes]


@dataclass
class _State:
    events: deque[tuple[str, bytes]] = field(default_factory=deque)
    header_field: bytearray = field(default_factory=bytearray)
    header_value: bytearray = field(default_factory=bytearray)
    header_bytes: int = 0


FORM_ESCAPES = {"%22": '"', "%0D": "\r", "%0A": "\n"}
"""What browsers (the HTML standard's multipart/form-data encoding), curl and httpx write in a part's
``filename`` for the three characters a quoted header value cannot hold."""


def form_decoded(filename: str) -> str:
    """A part's file name as the user named the file: only the form encoding's three escapes undone, so a
    ``%41`` the user typed stays ``%41`` (the standard leaves ``%`` itself as it is: a literal ``%22`` in a
    name reads as ``"``, as every server that follows it reads it)."""
    if "%" not in filename:
        return filename
    for escape, char in FORM_ESCAPES.items():
        filename = filename.replace(escape, char)
    return filename


def boundary_of(content_type: str | None) -> bytes:
    kind, params = parse_options_header(content_type or "")
    if kind != b"multipart/form-data" or not params.get(b"boundary"):
        raise BadInput("send the files as multipart/form-data (with a boundary)")
    return params[b"boundary"]


async def iter_parts(content_type: str | None, body: AsyncIterator[bytes]) -> AsyncIterator[Part]:
    state = _State()

    def on_header_field(data: bytes, start: int, end: int) -> None:
        state.header_field += data[start:end]
        state.header_bytes += end - start

    def on_header_value(data: bytes, start: int, end: int) -> None:
        state.header_value += data[start:end]
        state.header_bytes += end - start
        if state.header_bytes > MAX_HEADER_BYTES:
            raise BadInput("a multipart part's headers are too large")

    def on_header_end() -> None:
        # Queued like the data: one write() can carry several parts, headers and all.
        state.events.append(("header", bytes(state.header_field).lower() + b"\n" + bytes(state.header_value)))
        state.header_field.clear()
        state.header_value.clear()
        state.header_bytes = 0

    boundary = boundary_of(content_type)
    if len(boundary) > 200:  # RFC 2046 allows 70; python-multipart refuses more than 256 with its own error
        raise BadInput("the multipart boundary is longer than 200 characters")
    parser = MultipartParser(boundary, callbacks={
        "on_part_begin": lambda: state.events.append(("begin", b"")),
        "on_header_field": on_header_field,
        "on_header_value": on_header_value,
        "on_header_end": on_header_end,
        "on_headers_finished": lambda: state.events.append(("headers", b"")),
        "on_part_data": lambda data, start, end: state.events.append(("data", bytes(data[start:end]))),
        "on_part_end": lambda: state.events.append(("end", b"")),
        "on_end": lambda: state.events.append(("done", b"")),
    })
    source = aiter(body)
    finished = False

    async def next_event() -> tuple[str, bytes]:
        nonlocal finished
        while not state.events:
            if finished:
                raise BadInput("the multipart body ended before its closing boundary")
            try:
                chunk = await anext(source)
            except StopAsyncIteration:
                finished = True
                parser.finalize()
                continue
            try:
                parser.write(chunk)
            except MultipartParseError as exc:
                raise BadInput(f"malformed multipart body: {exc}") from None
        return state.events.popleft()

    async def part_bytes() -> AsyncIterator[bytes]:
        while True:
            kind, data = await next_event()
            if kind == "data":
                if data:
                    yield data
            elif kind == "end":
                return

    while True:
        kind, _ = await next_event()
        if kind == "done":
            return
        if kind != "begin":
            continue
        headers: dict[bytes, bytes] = {}
        while True:
            kind, data = await next_event()
            if kind == "headers":
                break
            if kind == "header":
                key, _, value = data.partition(b"\n")
                headers[key] = value
        # Bytes, not text: browsers send UTF-8 file names raw in the header.
        _, params = parse_options_header(headers.get(b"content-disposition", b""))
        part_type = headers.get(b"content-type")
        filename = params.get(b"filename")
        chunks = part_bytes()
        yield Part(
            name=params.get(b"name", b"").decode("utf-8", "replace"),
            filename=form_decoded(filename.decode("utf-8", "replace")) if filename is not None else None,
            content_type=part_type.decode("latin-1") if part_type is not None else None,
            chunks=chunks,
        )
        async for _ in chunks:  # whatever the consumer left unread
            pass
