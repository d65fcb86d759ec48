"""Serving an item: its bytes, a preview, or a browser-friendly conversion, through the cache tiers.

Where an item's original lives decides the path (docs/CACHE.md):

- on local disk (own storage on ``http``, or an ``fs://`` link): read in place, never copied;
- on a remote (own storage on S3/Azure/GCS, or an ``s3://``, ``azure://``, ``google://``, ``https://``
  link): through the storage tier. A miss starts one fetch of the whole object, which every waiting
  request follows as its bytes land; a ``Range`` request on a miss is answered from the remote while
  that fetch runs in the background.

Previews and conversions are made from a local copy: the original in place, or the storage tier's
copy (made first if missing). A preview whose original is in the storage tier never contacts the remote.

Cache keys carry the original's version: the SHA-256 of a stored item (its bytes cannot change under
the same key), the ETag of a linked object, or the size and modification time of a linked file.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import functools
import hashlib
import os
import time
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime
from pathlib import Path

from ..cache import Entry, Fill, Tier
from ..errors import BadGateway, GatewayTimeout, NotFound, Unprocessable
from ..media.convert import convert_image, needs_conversion
from ..media.preview import MEDIA_TYPES, ImageFormat, PreviewSpec, make_preview
from ..storage import ByteRange, Download
from ..storage.uris import ObjectLink, parse_link
from . import items as items_svc
from . import links as links_svc
from .blobs import content_key
from .context import Context
from .memo import ItemView
from .representation import Body, Original, Representation, in_memory, remote
from .uncached import MEMORY_LIMIT, made_without_cache, write_image

__all__ = ["Body", "Representation", "content", "in_memory", "item_view", "local_copy", "original", "preview"]


async def item_view(ctx: Context, item_id: int) -> ItemView:
    view = ctx.memo.get(item_id)
    if view is None:
        view = ItemView.of(await items_svc.get_item(ctx, item_id))
        ctx.memo.put(view)
    return view


# -- where the original is ----------------------------------------------------------------------------


async def original(ctx: Context, item: ItemView) -> Original:
    if item.source == "link" and item.uri:
        return await _linked(ctx, item)
    sha = item.sha256 or ""
    memo_key = f"{item.id}:{sha}"
    known: Original | None = ctx.memo.originals.get(memo_key)  # content never changes under its key
    if known is not None:
        return known
    key = content_key(sha)
    store = ctx.storage.public
    path = None
    if store.features.local_paths:
        path = store.local_path(key)
        if path is None:
            raise NotFound(f"the bytes of item {item.id} are missing from storage (key {key})")

    async def get(byte_range: ByteRange | None) -> Download:
        return await store.get(key, byte_range)

    found = Original(f"stored:{sha}@{sha}", item.size or 0, item.created_at, path, None if path else get,
                     ctx.settings.storage_provider)
    ctx.memo.remember(memo_key, found)
    return found


async def _linked(ctx: Context, item: ItemView) -> Original:
    assert item.uri is not None
    link = parse_link(item.uri)
    if isinstance(link, ObjectLink):
        _, store = await ctx.connections.store_for(link.provider, link.bucket)
        if store.features.local_paths:  # a server folder: read in place; its version is the file's own stat
            path = store.local_path(link.key)  # None when missing, or a link leading out of the folder
            try:
                st = path.stat() if path is not None else None
            except FileNotFoundError:
                st = None
            if path is None or st is None:
                raise NotFound(f"the linked file {item.uri} no longer exists")
            version = f"{st.st_size}-{st.st_mtime_ns}"
            return Original(f"link:{item.uri}@{version}", st.st_size, datetime.fromtimestamp(st.st_mtime, UTC),
                            path, None, link.provider)
        provider = link.provider
    else:
        provider = "https"
    last_key = f"link-last:{item.uri}"
    meta = ctx.link_versions.get(item.uri)
    if meta is None:
        try:
            meta = await remote(provider, links_svc.head_link(ctx, link), ctx.settings.cache_fetch_timeout)
        except (BadGateway, GatewayTimeout) as exc:
            last: Original | None = ctx.memo.originals.get(last_key)
            if last is None:
                raise
            return _stale(last, exc)
        ctx.link_versions.put(item.uri, meta)
    linked = link

    async def get(byte_range: ByteRange | None) -> Download:
        return await links_svc.open_link(ctx, linked, byte_range)

    version = meta.etag or f"{meta.size}-{meta.last_modified.timestamp() if meta.last_modified else 0}"
    found = Original(f"link:{item.uri}@{version}", meta.size, meta.last_modified or item.created_at, None, get,
                     provider, meta.etag)
    ctx.memo.remember(last_key, found)
    return found


def _stale(last: Original, error: BadGateway | GatewayTimeout) -> Original:
    """The version a linked object had when last asked, while its store cannot say its current one (as
    nginx's ``proxy_cache_use_stale error timeout``): what the cache holds of it is served; anything
    that needs the store fails at once with the store's error, without asking it a second time."""

    async def unreachable(byte_range: ByteRange | None) -> Download:
        raise type(error)(error.message)

    return dataclasses.replace(last, get=unreachable)


# -- content ------------------------------------------------------------------------------------------


@functools.lru_cache(maxsize=8192)
def _etag(text: str) -> str:
    return '"' + hashlib.sha256(text.encode()).hexdigest()[:32] + '"'


async def content(ctx: Context, item_id: int, format: ImageFormat | None = None) -> Representation:
    item = await item_view(ctx, item_id)
    source = await original(ctx, item)
    if format is not None:
        converted = await _converted(ctx, item, source, format)
        if converted is not None:
            return converted
    etag = f'"{item.sha256}"' if item.source == "stored" and item.sha256 else _etag(source.cache_key)

    async def open_(byte_range: ByteRange | None) -> Body:
        return await _open_original(ctx, source, byte_range)

    return Representation(source.size, etag, source.last_modified, item.mime_type, item.name, open_)


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


async def _open_original(ctx: Context, source: Original, byte_range: ByteRange | None) -> Body:
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
        return await _fromremote(ctx, source, byte_range)
    fill = _fetch(ctx, source)
    if byte_range is not None:  # the whole object comes in the background; this range straight away
        return await _fromremote(ctx, source, byte_range)
    try:
        await fill.started()
    except OSError:  # the cache's disk (full, read-only): serve from the remote, keep nothing
        return await _fromremote(ctx, source, byte_range)
    if fill.done:
        entry = fill.entry
        if entry is not None:
            body = _open_file(entry.path, entry.size, None)
            if body is not None:
                return body
        return await _fromremote(ctx, source, None)
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


async def _fromremote(ctx: Context, source: Original, byte_range: ByteRange | None) -> Body:
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


# -- previews and conversions -------------------------------------------------------------------------


def _check_pixels(ctx: Context, item: ItemView) -> None:
    limit = ctx.settings.image_max_pixels
    if item.width and item.height and item.width * item.height > limit:
        raise Unprocessable(
            f"the image declares {item.width} x {item.height} pixels "
            f"({item.width * item.height / 1e6:.1f} megapixels), "
            f"above IMAGE_MAX_PIXELS ({limit / 1e6:.1f} megapixels); it was not decoded"
        )


async def preview(ctx: Context, item_id: int, spec: PreviewSpec) -> Representation:
    item = await item_view(ctx, item_id)
    if item.kind != "image":
        raise Unprocessable(f"previews are made of images; {item.name!r} is {item.mime_type}")
    _check_pixels(ctx, item)
    source = await original(ctx, item)
    key = f"{source.cache_key}/{spec.name}"
    tier = ctx.cache.previews
    filename = f"{_stem(item.name)}.{spec.format}"
    entry = tier.lookup(key)
    if entry is None:
        max_pixels = ctx.settings.image_max_pixels

        def made(path: Path, dest: Path) -> None:
            make_preview(path, dest, spec, max_pixels)

        async def make(fill: Fill) -> None:
            path = await local_copy(ctx, source)
            started = time.monotonic()
            await asyncio.to_thread(write_image, made, path, fill.tmp)
            ctx.metrics.generate_seconds.labels("preview").observe(time.monotonic() - started)
            ctx.metrics.previews_made.labels(spec.format).inc()

        try:
            entry = await tier.fill(key, make).wait()
        except OSError:
            # The cache's disk cannot take it (full, read-only; the tier logs that once): made in the
            # temporary folder from the original, sent from memory, kept nowhere.
            data = await made_without_cache(ctx, source, made, MEMORY_LIMIT, "preview")
            ctx.metrics.previews_made.labels(spec.format).inc()
            return in_memory(data, _etag(key), source.last_modified, spec.media_type, filename)
        if entry is None:
            raise Unprocessable("the preview is larger than the whole previews tier (CACHE_PREVIEWS_SIZE)")
    return _cached(tier, entry, _etag(key), source.last_modified, spec.media_type, filename)


async def _converted(ctx: Context, item: ItemView, source: Original, format: ImageFormat) -> Representation | None:
    """The conversion of the original to ``format``, or None when the original can be sent as it is."""
    if item.kind != "image":
        raise Unprocessable(f"only images convert; {item.name!r} is {item.mime_type}")
    _check_pixels(ctx, item)
    key = f"{source.cache_key}/{format}"
    tier = ctx.cache.converter
    filename = f"{_stem(item.name)}.{format}"
    max_pixels = ctx.settings.image_max_pixels

    def made(path: Path, dest: Path) -> None:
        convert_image(path, dest, format, max_pixels)

    entry = tier.lookup(key, count=False)
    if entry is None:
        try:
            path = await local_copy(ctx, source)
        except OSError:  # the cache's disk takes no writes: made without it, as previews are
            return await _converted_without_cache(ctx, item, source, format, made, key, filename)
        if not await asyncio.to_thread(needs_conversion, path, item.mime_type, format):
            return None
        tier.stats.misses += 1

        async def convert(fill: Fill) -> None:
            started = time.monotonic()
            await asyncio.to_thread(write_image, made, path, fill.tmp)
            ctx.metrics.generate_seconds.labels("conversion").observe(time.monotonic() - started)
            ctx.metrics.conversions_made.labels(format).inc()

        try:
            entry = await tier.fill(key, convert).wait()
        except OSError:
            return await _converted_without_cache(ctx, item, source, format, made, key, filename)
        if entry is None:
            raise Unprocessable("the conversion is larger than the whole converter tier (CACHE_IMAGE_CONVERTER_SIZE)")
    else:
        tier.stats.hits += 1
    return _cached(tier, entry, _etag(key), source.last_modified, MEDIA_TYPES[format], filename)


async def _converted_without_cache(ctx: Context, item: ItemView, source: Original, format: ImageFormat,
                                   made: Callable[[Path, Path], None], key: str,
                                   filename: str) -> Representation | None:
    converted: list[bool] = []

    def make(path: Path, dest: Path) -> None:
        if needs_conversion(path, item.mime_type, format):
            made(path, dest)
            converted.append(True)
        else:
            dest.write_bytes(b"")

    data = await made_without_cache(ctx, source, make, MEMORY_LIMIT, "conversion")
    if not converted:
        return None  # the original itself is sent, straight from the remote
    ctx.metrics.conversions_made.labels(format).inc()
    return in_memory(data, _etag(key), source.last_modified, MEDIA_TYPES[format], filename)


def _stem(name: str) -> str:
    base = name.rpartition("/")[2]
    stem, dot, _ = base.rpartition(".")
    return stem if dot and stem else base


def _cached(tier: Tier, entry: Entry, etag: str, last_modified: datetime, content_type: str,
            filename: str) -> Representation:
    async def open_(byte_range: ByteRange | None) -> Body:
        body = _open_file(entry.path, entry.size, byte_range)
        if body is None:
            tier.discard(entry.key)
            raise NotFound("the cached copy was removed while being opened; ask again")
        body.tier = tier
        return body

    return Representation(entry.size, etag, last_modified, content_type, filename, open_)

