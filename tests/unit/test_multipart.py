from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest

from cargohold.errors import BadInput
from cargohold.http.multipart import iter_parts


def encoded(files: list[tuple[str, bytes]], fields: dict[str, str] | None = None) -> tuple[str, bytes]:
    request = httpx.Request("POST", "http://x/", files=[("files", f) for f in files], data=fields or {})
    return request.headers["content-type"], request.read()


async def pieces(body: bytes, size: int) -> AsyncIterator[bytes]:
    for pos in range(0, len(body), size):
        yield body[pos : pos + size]


async def parts_of(content_type: str, body: bytes, size: int) -> list[tuple[str, str | None, bytes]]:
    return [(p.name, p.filename, b"".join([c async for c in p.chunks]))
            async for p in iter_parts(content_type, pieces(body, size))]


@pytest.mark.parametrize("size", [1, 7, 4096, 10**7])
async def test_parts_whatever_the_chunking(size: int) -> None:
    big = bytes(range(256)) * 1000
    content_type, body = encoded([("a.jpg", b"first"), ("日本 b.bin", big)], {"note": "hi"})
    assert await parts_of(content_type, body, size) == [
        ("note", None, b"hi"), ("files", "a.jpg", b"first"), ("files", "日本 b.bin", big),
    ]


async def test_unread_parts_are_skipped() -> None:
    content_type, body = encoded([("a", b"x" * 100000), ("b", b"y")])
    names = [p.filename async for p in iter_parts(content_type, pieces(body, 1000))]
    assert names == ["a", "b"]


@pytest.mark.parametrize("content_type", [None, "application/json", "multipart/form-data"])
async def test_not_multipart(content_type: str | None) -> None:
    with pytest.raises(BadInput, match="multipart/form-data"):
        async for _ in iter_parts(content_type, pieces(b"", 1)):
            pass


async def test_truncated_body() -> None:
    content_type, body = encoded([("a", b"x" * 1000)])
    with pytest.raises(BadInput):
        await parts_of(content_type, body[:500], 100)
