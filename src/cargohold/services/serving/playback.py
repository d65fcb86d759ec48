"""Videos made playable in any browser (``GET /items/{id}/content?format=mp4``): a remux to MP4 with its index
first when the streams are H.264 and AAC, else a transcode to them (media/video.py ``to_mp4``), kept in the
image-converter tier.

A conversion runs once per video (the tier's fill is single-flight, and so is the job here), in the
background, at most VIDEO_CONVERSIONS at once; until its copy is in the tier, every request answers 202 with
its progress and ``Retry-After`` (``errors.Preparing``). The copy is written to the tier's temporary file and
becomes visible only whole: a conversion that fails or is killed leaves nothing that is served, and the next
request starts it again.
"""

from __future__ import annotations

import asyncio
import functools
from dataclasses import dataclass, field

from ...cache import Fill
from ...errors import CargoholdError, Preparing, Unprocessable
from ...media import Limits
from ...media.video import to_mp4
from ..context import Context
from ..memo import ItemView
from .bodies import Representation, cached, local_copy
from .originals import Original


@dataclass
class _Job:
    progress: float = 0.0
    error: CargoholdError | None = None
    task: asyncio.Task[None] | None = field(default=None, repr=False)


_JOBS: dict[str, _Job] = {}
_GATES: dict[int, asyncio.Semaphore] = {}


async def playable(ctx: Context, item: ItemView, source: Original, etag: str, stem: str) -> Representation:
    """The video's MP4 copy from the tier; raises ``Preparing`` while it is being made (started here if not)."""
    tier = ctx.cache.converter
    key = f"{source.cache_key}/mp4"
    entry = tier.lookup(key)
    if entry is not None:
        return cached(tier, entry, etag, source.last_modified, "video/mp4", f"{stem}.mp4")
    job = _JOBS.get(key)
    if job is not None and job.error is not None:
        del _JOBS[key]  # told once; the next request tries again
        raise job.error
    if job is None or (job.task is not None and job.task.done()):
        job = _JOBS[key] = _Job()
        job.task = asyncio.create_task(_convert(ctx, key, source, job))
    raise Preparing(job.progress)


async def _convert(ctx: Context, key: str, source: Original, job: _Job) -> None:
    limit = ctx.settings.video_conversions
    gate = _GATES.setdefault(limit, asyncio.Semaphore(limit))
    loop = asyncio.get_running_loop()

    def progress(done: float) -> None:  # from the converting thread
        loop.call_soon_threadsafe(setattr, job, "progress", done)

    async def make(fill: Fill) -> None:
        path = await local_copy(ctx, source)
        await asyncio.to_thread(functools.partial(to_mp4, limits=Limits.of(ctx.settings), progress=progress),
                                path, fill.tmp)

    try:
        async with gate:
            entry = await ctx.cache.converter.fill(key, make).wait()
        if entry is None:
            job.error = Unprocessable("the video's playable copy is larger than the whole image-converter tier "
                                      "(CACHE_IMAGE_CONVERTER_SIZE)")
    except CargoholdError as exc:
        job.error = exc
    except Exception as exc:  # FFmpeg's errors and the like: the reason, for the next request to tell
        job.error = Unprocessable(f"the video could not be converted for playback: {type(exc).__name__}: {exc}")
    finally:
        if job.error is None:
            _JOBS.pop(key, None)
