"""Images made when the cache's disk takes no writes (full, read-only): from the original in place, the
storage tier's copy, or a copy fetched into the temporary folder, and sent from memory (docs/CACHE.md)."""

from __future__ import annotations

import asyncio
import contextlib
import errno
import os
import shutil
import tempfile
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

from ...errors import BackendUnavailable, BadGateway, Unprocessable
from ..context import Context
from .originals import Original, remote

MEMORY_LIMIT = 64 * 1024 * 1024
"""Largest image made without the cache (its disk full) and sent from memory; a larger conversion
answers 503 until the disk takes writes again. Previews are far smaller (2048 px at most)."""


def write_image(make: Callable[[Path, Path], None], path: Path, dest: Path) -> None:
    """``make(path, dest)``, where a failure of libvips' saver to write ``dest`` (a full or read-only
    disk: the image was read, its output could not be written) is the disk's ``OSError``, not a bad image."""
    try:
        make(path, dest)
    except Unprocessable as exc:
        cause = exc.__cause__
        failed = f"{getattr(cause, 'message', '')} {getattr(cause, 'detail', '')}".lower()
        if "save" in failed and "write" in failed:
            raise OSError(errno.EIO, f"libvips could not write the image in {dest.parent}") from exc
        raise


@contextlib.asynccontextmanager
async def _scratch() -> AsyncIterator[Path]:
    """A folder of its own in the temporary folder (``TMPDIR``, outside the cache), removed after."""
    folder = Path(await asyncio.to_thread(tempfile.mkdtemp, prefix="cargohold-"))
    try:
        yield folder
    finally:
        await asyncio.to_thread(shutil.rmtree, folder, True)


async def _original_file(ctx: Context, source: Original, scratch: Path) -> Path:
    """A file with the original's bytes without writing to the cache: the original in place, the
    storage tier's copy, or else a copy fetched into ``scratch``."""
    if source.path is not None:
        return source.path
    tier = ctx.cache.storage
    entry = tier.lookup(source.cache_key, count=False)
    if entry is not None:
        return entry.path
    if source.size > tier.max_size:
        raise Unprocessable(f"the original ({source.size} bytes) is larger than the whole storage tier "
                            "(CACHE_STORAGE_SIZE); it cannot be copied here to make an image of it")
    assert source.get is not None
    timeout = ctx.settings.cache_fetch_timeout
    download = await remote(source.provider, source.get(None), timeout)
    dest = scratch / "original"
    fd = os.open(dest, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        while (chunk := await remote(source.provider, anext(download.chunks, None), timeout)) is not None:
            view = memoryview(chunk)
            while view:
                view = view[os.write(fd, view):]
    finally:
        os.close(fd)
    if dest.stat().st_size != download.meta.size:
        raise BadGateway(f"the source sent {dest.stat().st_size} of {download.meta.size} bytes")
    return dest


async def made_without_cache(ctx: Context, source: Original, make: Callable[[Path, Path], Awaitable[None]],
                              limit: int, what: str) -> bytes:
    """``make(original, dest)`` (it runs the image work: ``serving._imaged``, within the memory budget) in
    a scratch folder of the temporary folder; ``dest``'s bytes."""
    try:
        async with _scratch() as folder:
            path = await _original_file(ctx, source, folder)
            dest = folder / "made"
            started = time.monotonic()
            await make(path, dest)
            ctx.metrics.generate_seconds.labels(what).observe(time.monotonic() - started)
            size = dest.stat().st_size
            if size > limit:
                raise BackendUnavailable(f"the cache's disk takes no writes (full or read-only, see the log) and "
                                         f"this image ({size:,} bytes) is too large to send from memory; ask again "
                                         "once the disk has room")
            return await asyncio.to_thread(dest.read_bytes)
    except OSError as exc:
        raise BackendUnavailable(f"the cache's disk takes no writes (full or read-only), nor does the temporary "
                                 f"folder {tempfile.gettempdir()}: {exc}") from exc
