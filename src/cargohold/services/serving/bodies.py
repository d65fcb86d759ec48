"""What serving answers (``Representation``, ``Body``) and where its bytes come from: a file opened in
place, a cache entry, or the original through the storage tier.

A remote original's miss starts one fetch of the whole object (a ``Fill``), which every waiting request
follows as its bytes land; a ``Range`` request on a miss is answered from the remote while that fetch
runs in the background. If the cache's disk fails under a fill, its followers get the rest from the
remote and nothing is kept (docs/CACHE.md).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from ...cache import Entry, Fill, Tier
from ...errors import BadGateway, NotFound, Unprocessable
from ...media.video import RangeReader
from ...ranged import KeptBlocks
from ...storage import ByteRange
from ..context import Context
from ..memo import VIDEO_INDEX_BYTES, VideoMemory
from .originals import Original, remote


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


def in_memory(data: bytes, etag: str, last_modified: datetime, content_type: str, filename: str) -> Representation:
    async def open_(byte_range: ByteRange | None) -> Body:
        start, end = byte_range.resolve(len(data)) if byte_range else (0, len(data))
        return Body(start, end, len(data), chunks=once(data[start:end]))

    return Representation(len(data), etag, last_modified, content_type, filename, open_)


async def once(data: bytes) -> AsyncIterator[bytes]:
    yield data


def cached(tier: Tier, entry: Entry, etag: str, last_modified: datetime, content_type: str,
           filename: str) -> Representation:
    """A representation kept in ``tier``: a preview or a conversion."""

    async def open_(byte_range: ByteRange | None) -> Body:
        body = _open_file(entry.path, entry.size, byte_range)
        if body is None:
            tier.discard(entry.key)
            raise NotFound("the cached copy was removed while being opened; ask again")
        body.tier = tier
        return body

    return Representation(entry.size, etag, last_modified, content_type, filename, open_)


def _open_file(path: Path, size: int, byte_range: ByteRange | None) -> Body | None:
    """The file if it still holds ``size`` bytes; None if it is gone or another size (a changed
    linked file, or a cache entry damaged on disk)."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except FileNotFoundError:
        return None
    if os.fstat(fd).st_size != size:
        os.close(fd)
        return None
    start, end = byte_range.resolve(size) if byte_range else (0, size)
    return Body(start, end, size, fd=fd, path=path)


# -- the original's bytes -----------------------------------------------------------------------------


async def open_original(ctx: Context, source: Original, byte_range: ByteRange | None) -> Body:
    if source.path is not None:
        body = _open_file(source.path, source.size, byte_range)
        if body is None:
            raise NotFound(f"{source.path.name} changed or vanished while being opened; ask again")
        return body
    tier = ctx.cache.storage
    entry = tier.lookup(source.cache_key)
    if entry is not None:
        body = _open_file(entry.path, entry.size, byte_range)
        if body is not None:
            body.tier = tier
            return body
        tier.discard(source.cache_key)
    assert source.get is not None
    if source.size > tier.max_size:  # could never be kept: straight from the remote
        return await _from_remote(ctx, source, byte_range)
    fill = _fetch(ctx, source)
    if byte_range is not None:  # the whole object comes in the background; this range straight away
        return await _from_remote(ctx, source, byte_range)
    try:
        await fill.started()
    except OSError:  # the cache's disk (full, read-only): serve from the remote, keep nothing
        return await _from_remote(ctx, source, byte_range)
    if fill.done:
        entry = fill.entry
        if entry is not None:
            body = _open_file(entry.path, entry.size, None)
            if body is not None:
                return body
        return await _from_remote(ctx, source, None)
    return Body(0, source.size, source.size, chunks=_follow(ctx, source, fill))


async def _follow(ctx: Context, source: Original, fill: Fill) -> AsyncIterator[bytes]:
    """The fill's bytes as they land; if the cache's disk fails under it (full), the rest straight from
    the remote, from where the fill stopped: the client's answer goes on, whole, and nothing is kept."""
    sent = 0
    async with contextlib.aclosing(fill.follow(0, source.size)) as chunks:
        try:
            async for chunk in chunks:
                sent += len(chunk)
                yield chunk
            return
        except OSError:
            pass
    assert source.get is not None
    if sent >= source.size:
        return
    rest = await remote(source.provider, source.get(ByteRange(sent, None)), ctx.settings.cache_fetch_timeout)
    if rest.meta.size != source.size or (source.etag and rest.meta.etag and rest.meta.etag != source.etag):
        raise BadGateway("the remote object changed while it was being read; ask again")
    async for chunk in rest.chunks:
        yield chunk


async def _from_remote(ctx: Context, source: Original, byte_range: ByteRange | None) -> Body:
    assert source.get is not None
    download = await remote(source.provider, source.get(byte_range), ctx.settings.cache_fetch_timeout)
    return Body(download.start, download.end, download.meta.size, chunks=download.chunks)


def _fetch(ctx: Context, source: Original) -> Fill:
    """The storage tier's fill of ``source``: one fetch of the whole object, however many ask."""
    timeout = ctx.settings.cache_fetch_timeout
    get = source.get
    assert get is not None

    async def write(fill: Fill) -> None:
        started = time.monotonic()
        download = await remote(source.provider, get(None), timeout)
        fill.expected = download.meta.size
        chunks = download.chunks
        while True:
            chunk = await remote(source.provider, anext(chunks, None), timeout)
            if chunk is None:
                break
            fill.write(chunk)
        ctx.metrics.fetch_seconds.labels(source.provider).observe(time.monotonic() - started)

    return ctx.cache.storage.fill(source.cache_key, write)


def video_memory(ctx: Context, source: Original) -> VideoMemory:
    memory = ctx.memo.videos.get(source.cache_key)
    if memory is None:
        memory = VideoMemory(KeptBlocks(VIDEO_INDEX_BYTES))
        ctx.memo.videos.put(source.cache_key, memory)
    return memory


def video_source(ctx: Context, source: Original) -> Path | RangeReader:
    """Where PyAV reads a video from for a poster or a frame: the original in place, the storage tier's copy, or
    else ranged reads of the remote (its index kept in ``ctx.memo.videos``, the bytes counted in
    ``cargohold_video_read_bytes``): the index and one GOP, never the whole file. Call it on the event loop;
    read the answer in a thread."""
    if source.path is not None:
        return source.path
    entry = ctx.cache.storage.lookup(source.cache_key, count=False)
    if entry is not None:
        return entry.path
    get, timeout = source.get, ctx.settings.cache_fetch_timeout
    assert get is not None
    read = ctx.metrics.video_read_bytes.labels(source.provider)

    async def fetch(start: int, end: int) -> bytes:
        download = await remote(source.provider, get(ByteRange(start, end)), timeout)
        if download.meta.size != source.size or (source.etag and download.meta.etag
                                                  and download.meta.etag != source.etag):
            raise BadGateway("the remote object changed while it was being read; ask again")
        data = await remote(source.provider, download.read(), timeout)
        read.inc(len(data))
        return data

    return RangeReader(asyncio.get_running_loop(), fetch, source.size, video_memory(ctx, source).kept)


async def local_copy(ctx: Context, source: Original) -> Path:
    """A file on this machine with the original's bytes: the original itself, or the storage tier's
    copy, fetched once if missing. A copy already in the tier is used without asking the remote."""
    if source.path is not None:
        return source.path
    tier = ctx.cache.storage
    entry = tier.lookup(source.cache_key)
    if entry is None:
        if source.size > tier.max_size:
            raise Unprocessable(f"the original ({source.size} bytes) is larger than the whole storage tier "
                                "(CACHE_STORAGE_SIZE); it cannot be copied here to make an image of it")
        entry = await _fetch(ctx, source).wait()
        if entry is None:
            raise Unprocessable("the original could not be kept in the storage tier to make an image of it")
    return entry.path
