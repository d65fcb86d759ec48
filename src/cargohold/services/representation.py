"""What the serving layer answers and the errors a reader sees of a remote: shared by ``serving.py`` and
``uncached.py``."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import TypeVar

from ..cache import Tier
from ..errors import BackendUnavailable, BadGateway, GatewayTimeout, StoreTimeout
from ..storage import ByteRange, Download

Getter = Callable[[ByteRange | None], Awaitable[Download]]
T = TypeVar("T")


@dataclass
class Body:
    """Bytes ``[start, end)`` of a representation of ``total`` bytes: an open file or a stream."""

    start: int
    end: int
    total: int
    fd: int | None = None
    path: Path | None = None  # the file behind ``fd``, for a front (nginx) that can send it itself
    chunks: AsyncIterator[bytes] | None = None
    tier: Tier | None = None  # counts the bytes it sends as served


@dataclass
class Representation:
    size: int
    etag: str
    last_modified: datetime
    content_type: str
    filename: str
    open: Callable[[ByteRange | None], Awaitable[Body]]


@dataclass
class Original:
    cache_key: str  # "<where>@<version>"
    size: int
    last_modified: datetime
    path: Path | None  # on local disk: read in place
    get: Getter | None  # on a remote
    provider: str
    etag: str | None = None  # a linked object's, to check a read resumed after a fault is of the same version


async def remote(provider: str, call: Awaitable[T], timeout: float) -> T:  # noqa: ASYNC109 - a setting
    """A call to a remote, with the errors a reader of the cache should see: 502 when it cannot be
    reached or answers an error, 504 when it says nothing in time."""
    try:
        async with asyncio.timeout(timeout):
            return await call
    except TimeoutError:
        raise GatewayTimeout(f"the {provider} store sent nothing for {timeout:g} s (CACHE_FETCH_TIMEOUT)") from None
    except StoreTimeout as exc:
        raise GatewayTimeout(f"the {provider} store did not answer: {exc.message}") from exc
    except BackendUnavailable as exc:
        raise BadGateway(f"the {provider} store is unreachable: {exc.message}") from exc


def in_memory(data: bytes, etag: str, last_modified: datetime, content_type: str, filename: str) -> Representation:
    async def open_(byte_range: ByteRange | None) -> Body:
        start, end = byte_range.resolve(len(data)) if byte_range else (0, len(data))
        return Body(start, end, len(data), chunks=once(data[start:end]))

    return Representation(len(data), etag, last_modified, content_type, filename, open_)


async def once(data: bytes) -> AsyncIterator[bytes]:
    yield data
