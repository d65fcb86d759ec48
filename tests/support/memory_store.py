"""A bucket in memory that plays a remote in-process: what serving and an upload ask of a ``Store``
(storage/base.py), every request counted, and the faults a remote has at a switch.

``state``: ``"up"``; ``"down"`` (every call fails as an unreachable remote: ``BackendUnavailable``, which
readers see as 502); ``"silent"`` (every call waits forever: readers see 504 after CACHE_FETCH_TIMEOUT).
``hold``: while set and not yet released, a GET waits for it before answering (to line up concurrent
readers behind one fetch).
"""

from __future__ import annotations

import asyncio
import hashlib
from collections import Counter
from collections.abc import AsyncIterable, AsyncIterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Literal

from cargohold.errors import BackendUnavailable, NotFound
from cargohold.storage import ByteRange, Download, Features, ObjectMeta
from cargohold.storage.base import Data

CHUNK = 64 * 1024


class MemoryStore:
    features = Features()

    def __init__(self, name: str, provider: str = "minio") -> None:
        self.name = name
        self.provider = provider
        self.objects: dict[str, tuple[bytes, ObjectMeta]] = {}
        self.gets: Counter[str] = Counter()
        self.heads: Counter[str] = Counter()
        self.state: Literal["up", "down", "silent"] = "up"
        self.hold: asyncio.Event | None = None

    def write(self, key: str, data: bytes) -> ObjectMeta:
        """Puts an object as someone else would, beside cargohold: a new ETag, counted nowhere."""
        meta = ObjectMeta(key, len(data), f'"{hashlib.md5(data).hexdigest()}"', datetime.now(UTC))
        self.objects[key] = (data, meta)
        return meta

    async def _reach(self) -> None:
        if self.state == "down":
            raise BackendUnavailable(f"connection refused by the {self.name} store (it is down)")
        if self.state == "silent":
            await asyncio.Event().wait()

    def _find(self, key: str) -> tuple[bytes, ObjectMeta]:
        try:
            return self.objects[key]
        except KeyError:
            raise NotFound(f"no object {key!r} in {self.name}") from None

    async def ensure_bucket(self, create: bool = True) -> None:
        await self._reach()

    async def head(self, key: str) -> ObjectMeta:
        self.heads[key] += 1
        await self._reach()
        return self._find(key)[1]

    async def get(self, key: str, byte_range: ByteRange | None = None) -> Download:
        self.gets[key] += 1
        await self._reach()
        if self.hold is not None:
            await self.hold.wait()
        data, meta = self._find(key)
        start, end = byte_range.resolve(len(data)) if byte_range else (0, len(data))
        return Download(meta, start, end, _chunks(data[start:end]))

    async def put(self, key: str, data: Data, content_type: str | None = None) -> ObjectMeta:
        await self._reach()
        whole = data if isinstance(data, bytes) else await _joined(data)
        return self.write(key, whole)

    async def delete(self, key: str) -> None:
        await self._reach()
        self.objects.pop(key, None)

    async def rename(self, src: str, dst: str) -> None:
        await self._reach()
        data, meta = self._find(src)
        self.objects[dst] = (data, ObjectMeta(dst, meta.size, meta.etag, meta.last_modified))
        del self.objects[src]

    def local_path(self, key: str) -> Path | None:
        return None

    async def close(self) -> None:
        pass


async def _chunks(data: bytes) -> AsyncIterator[bytes]:
    for pos in range(0, len(data), CHUNK):
        await asyncio.sleep(0)  # a remote's bytes come over time: readers may follow them as they land
        yield data[pos : pos + CHUNK]


async def _joined(data: AsyncIterable[bytes]) -> bytes:
    return b"".join([chunk async for chunk in data])
