"""Serving an item: its bytes, a preview, or a browser-friendly conversion, through the cache tiers
(docs/CACHE.md). The use cases are here; the rooms behind them:

- ``originals``: what the item is and where its original is (in place or remote), in which version;
- ``bodies``: what is answered (``Representation``, ``Body``) and where its bytes come from: a file, a
  cache entry, or the original through the storage tier (one fetch, followed as it lands);
- ``fallback``: previews and conversions made when the cache's disk takes no writes;
- ``budget``: image work admitted by memory (IMAGE_MEMORY_BUDGET), each decode's cost from its header;

Previews and conversions are made from a local copy: the original in place, or the storage tier's
copy (made first if missing). A preview whose original is in the storage tier never contacts the remote.
A preview's box and quality are snapped to one of a few first (``PreviewSpec.snapped``): they name the
cache entry and the ETag, so an item has a bounded number of previews. A signed URL names what was asked
(its signature covers that) and is snapped like any other after it is verified.
"""

from __future__ import annotations

import asyncio
import bisect
import functools
import hashlib
import time
from collections.abc import Awaitable, Callable
from fractions import Fraction
from pathlib import Path
from typing import Literal

from ...cache import Fill
from ...errors import NotFound, Unprocessable
from ...media import isolated
from ...media.convert import conversion_cost, convert_image, needs_conversion
from ...media.preview import (
    MEDIA_TYPES,
    Header,
    ImageFormat,
    PreviewSpec,
    check_pixels,
    make_preview,
    preview_cost,
    read_header,
)
from ...media.video import (
    Gops,
    frame_at,
    frame_cost,
    frame_times,
    open_gops,
    write_frame,
    write_nth,
    write_still,
)
from ...storage import ByteRange
from ..context import Context
from ..memo import ItemView
from . import budget, playback
from .bodies import Body, Representation, cached, in_memory, local_copy, open_original, video_memory, video_source
from .fallback import MEMORY_LIMIT, made_without_cache, write_image
from .originals import Original, item_view, original

__all__ = ["Body", "Original", "Representation", "content", "frame", "in_memory", "item_view", "local_copy",
           "original", "preview"]


@functools.lru_cache(maxsize=8192)
def _etag(text: str) -> str:
    return '"' + hashlib.sha256(text.encode()).hexdigest()[:32] + '"'


async def content(ctx: Context, item_id: int, format: ImageFormat | Literal["mp4"] | None = None) -> Representation:
    item = await item_view(ctx, item_id)
    source = await original(ctx, item)
    if format == "mp4":
        if item.kind != "video":
            raise Unprocessable(f"format=mp4 makes a video playable; {item.name!r} is {item.mime_type}")
        return await playback.playable(ctx, item, source, _etag(f"{source.cache_key}/mp4"), _stem(item.name))
    if format is not None:
        converted = await _converted(ctx, item, source, format)
        if converted is not None:
            return converted
    etag = f'"{item.sha256}"' if item.source == "stored" and item.sha256 else _etag(source.cache_key)

    async def open_(byte_range: ByteRange | None) -> Body:
        return await open_original(ctx, source, byte_range)

    return Representation(source.size, etag, source.last_modified, item.mime_type, item.name, open_)


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
    spec = spec.snapped()
    item = await item_view(ctx, item_id)
    if item.kind not in ("image", "video"):
        raise Unprocessable(f"previews are made of images and videos; {item.name!r} is {item.mime_type}")
    _check_pixels(ctx, item)
    source = await original(ctx, item)
    if item.kind == "image":
        return await _sized(ctx, source, f"{source.cache_key}/{spec.name}", spec, _stem(item.name), None)

    async def poster(path: Path) -> None:  # media/video.py: the frame at a tenth of it
        await _decoding(ctx, item, write_still, video_source(ctx, source), path, ctx.settings.image_max_pixels)

    return await _sized(ctx, source, f"{source.cache_key}/poster/{spec.name}", spec, _stem(item.name), poster)


async def frame(ctx: Context, item_id: int, number: int | None, at: float | None, spec: PreviewSpec) -> Representation:
    """Frame ``number`` of a video (0-based, in presentation order), or the one shown at ``at`` seconds, sized
    and encoded as a preview, kept in the previews tier. Read by its GOP when the container's index lists every
    frame (MP4, MOV, AVI: ``media.video.Gops``), a remote one by ranges; else from the frames' times, counted once
    from a local copy (Matroska)."""
    spec = spec.snapped()
    item = await item_view(ctx, item_id)
    if item.kind != "video":
        raise Unprocessable(f"frames are a video's; {item.name!r} is {item.mime_type}")
    _check_pixels(ctx, item)
    source = await original(ctx, item)
    stem = _stem(item.name)
    if number is not None:
        found = _cached_frame(ctx, source, number, spec, stem)
        if found is not None:  # a frame asked for again: no index, no remote
            return found
    index = await _frame_index(ctx, source)
    count = index.count if isinstance(index, Gops) else len(index[0])
    if at is not None:
        if isinstance(index, Gops):
            number = await asyncio.to_thread(frame_at, video_source(ctx, source), index, at)
        else:
            number = max(0, bisect.bisect_right(index[0], at / float(index[1]) + 1e-6) - 1)
        found = _cached_frame(ctx, source, number, spec, stem)
        if found is not None:
            return found
    assert number is not None
    if not 0 <= number < count:
        raise NotFound(f"{item.name!r} has {count:,} frames: 0 to {count - 1:,}")
    shown, limit = number, ctx.settings.image_max_pixels

    async def still(path: Path) -> None:
        if isinstance(index, Gops):
            await _decoding(ctx, item, write_nth, video_source(ctx, source), path, index, shown, limit)
        else:
            await _decoding(ctx, item, write_frame, await local_copy(ctx, source), path, index[0][shown], limit)

    return await _sized(ctx, source, f"{source.cache_key}/frame/{number}/{spec.name}", spec, f"{stem}-{number}", still)


async def _decoding(ctx: Context, item: ItemView, write: Callable[..., None], *args: object) -> None:
    """``write(*args)``, a video's frame decoded, once its memory is admitted by the image memory budget
    (``media.video.frame_cost``, from the probed size), in the image threads."""
    pixels = item.width * item.height if item.width and item.height else None
    await budget.shared(ctx.settings.image_memory_budget).run(frame_cost(pixels), write, *args)


def _cached_frame(ctx: Context, source: Original, number: int, spec: PreviewSpec, stem: str) -> Representation | None:
    key = f"{source.cache_key}/frame/{number}/{spec.name}"
    entry = ctx.cache.previews.lookup(key)
    if entry is None:
        return None
    return cached(ctx.cache.previews, entry, _etag(key), source.last_modified, spec.media_type,
                  f"{stem}-{number}.{spec.format}")


async def _frame_index(ctx: Context, source: Original) -> Gops | tuple[list[int], Fraction]:
    """The video's ``Gops``, or else its frames' times (the whole file read once, from a local copy), remembered
    in ``ctx.memo.videos``."""
    memory = video_memory(ctx, source)
    if memory.index is None:
        gops = await asyncio.to_thread(open_gops, video_source(ctx, source))
        memory.index = gops if gops is not None else await asyncio.to_thread(
            frame_times, await local_copy(ctx, source), ctx.settings.video_max_duration)
    index: Gops | tuple[list[int], Fraction] = memory.index
    return index


async def _sized(ctx: Context, source: Original, key: str, spec: PreviewSpec, stem: str,
                 still: Callable[[Path], Awaitable[None]] | None) -> Representation:
    """The preview ``key`` of the original, from the previews tier or made into it: the original itself sized
    (an image), or ``still(path)`` first (a video's frame, written as an image from where the video is read)."""
    tier = ctx.cache.previews
    filename = f"{stem}.{spec.format}"
    entry = tier.lookup(key)
    if entry is None:
        # A partial of a module-level function: it may be sent to a process of its own (``_imaged``).
        made = functools.partial(make_preview, spec=spec, max_pixels=ctx.settings.image_max_pixels)

        def cost(header: Header) -> int:
            return preview_cost(header, spec)

        async def make(fill: Fill) -> None:
            started = time.monotonic()
            if still is None:
                await _imaged(ctx, made, cost, await local_copy(ctx, source), fill.tmp)
            else:
                await from_still(fill.tmp)
            ctx.metrics.generate_seconds.labels("preview").observe(time.monotonic() - started)
            ctx.metrics.previews_made.labels(spec.format).inc()

        async def from_still(dest: Path) -> None:
            assert still is not None
            still_file = dest.with_name(dest.name + ".still.tiff")
            try:
                await still(still_file)
                await _imaged(ctx, made, cost, still_file, dest)
            finally:
                still_file.unlink(missing_ok=True)

        async def make_here(path: Path, dest: Path) -> None:
            if still is None:
                await _imaged(ctx, made, cost, path, dest)
            else:
                await from_still(dest)

        try:
            entry = await tier.fill(key, make).wait()
        except OSError:
            # The cache's disk cannot take it (full, read-only; the tier logs that once): made in the
            # temporary folder from the original, sent from memory, kept nowhere.
            data = await made_without_cache(ctx, source, make_here, MEMORY_LIMIT, "preview")
            ctx.metrics.previews_made.labels(spec.format).inc()
            return in_memory(data, _etag(key), source.last_modified, spec.media_type, filename)
        if entry is None:
            raise Unprocessable("the preview is larger than the whole previews tier (CACHE_PREVIEWS_SIZE)")
    return cached(tier, entry, _etag(key), source.last_modified, spec.media_type, filename)


async def _imaged(ctx: Context, make: Callable[..., None], cost: Callable[[Header], int],
                  path: Path, dest: Path) -> None:
    """``make(path, dest, header=header)`` once its cost, estimated from the header, is admitted by the image
    memory budget (``budget``): it may wait, or be refused (503, or 422 for an image over the budget alone).
    An image whose Pillow decoder is Python code is made in a process of its own (``media.isolated``: that
    decoder would hold the GIL the event loop needs), so ``make`` must pickle: a partial of a module-level
    function of ``media``."""
    header = await asyncio.to_thread(read_header, path)
    check_pixels(header, ctx.settings.image_max_pixels)
    if header.python_decoder:
        run = functools.partial(isolated.run, make, header=header)
    else:
        run = functools.partial(make, header=header)
    await budget.shared(ctx.settings.image_memory_budget).run(cost(header), write_image, run, path, dest)


async def _converted(ctx: Context, item: ItemView, source: Original, format: ImageFormat) -> Representation | None:
    """The conversion of the original to ``format``, or None when the original can be sent as it is."""
    if item.kind != "image":
        raise Unprocessable(f"only images convert; {item.name!r} is {item.mime_type}")
    _check_pixels(ctx, item)
    key = f"{source.cache_key}/{format}"
    tier = ctx.cache.converter
    filename = f"{_stem(item.name)}.{format}"
    made = functools.partial(convert_image, format=format, max_pixels=ctx.settings.image_max_pixels)

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
            await _imaged(ctx, made, conversion_cost, path, fill.tmp)
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
    return cached(tier, entry, _etag(key), source.last_modified, MEDIA_TYPES[format], filename)


async def _converted_without_cache(ctx: Context, item: ItemView, source: Original, format: ImageFormat,
                                   made: Callable[..., None], key: str,
                                   filename: str) -> Representation | None:
    converted: list[bool] = []

    async def make(path: Path, dest: Path) -> None:
        if await asyncio.to_thread(needs_conversion, path, item.mime_type, format):
            await _imaged(ctx, made, conversion_cost, path, dest)
            converted.append(True)
        else:
            await asyncio.to_thread(dest.write_bytes, b"")

    data = await made_without_cache(ctx, source, make, MEMORY_LIMIT, "conversion")
    if not converted:
        return None  # the original itself is sent, straight from the remote
    ctx.metrics.conversions_made.labels(format).inc()
    return in_memory(data, _etag(key), source.last_modified, MEDIA_TYPES[format], filename)


def _stem(name: str) -> str:
    base = name.rpartition("/")[2]
    stem, dot, _ = base.rpartition(".")
    return stem if dot and stem else base
