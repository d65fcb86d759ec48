"""Content-addressed objects in ``<prefix>-public``: one object per distinct content.

An upload streams to ``.staging/<random>`` while it is hashed, then is renamed to the key its
SHA-256 gives (or, if that content is already stored, kept until the row is written). The catalog row
comes after, so an interrupted upload leaves at most a staging or an unreferenced object, which
``cargohold gc`` removes; never a row without its bytes.

Content already stored may be content no row uses any more, which a ``gc`` running beside the
server (on any replica) is about to delete. So the row is written under ``locks.content_guard``,
shared by uploads, exclusive to gc's deletions: inside it, ``ensure_content`` checks the object is
there, putting it back from the kept staging copy if gc took it first.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import secrets
from collections.abc import AsyncIterator
from dataclasses import dataclass, replace
from typing import Any

from ..errors import BackendUnavailable, NotFound, TooLarge
from ..media import Limits
from ..media.probe import HEAD_SIZE, TAIL_SIZE, TIFF_MAGIC, Probe, probe
from ..media.video import probe_ranged, probe_video
from ..storage import ByteRange, Store
from ..storage.base import InPlaceWrites

STAGING_PREFIX = ".staging"
CONTENT_PREFIX = "sha256"


def content_key(sha256: str) -> str:
    return f"{CONTENT_PREFIX}/{sha256[:2]}/{sha256[2:4]}/{sha256}"


BLOCK = 4 * 1024 * 1024
"""Request bodies arrive in chunks of about 256 KB; storing and hashing them in 4 MiB blocks takes
one thread hop per block instead of one per chunk (bench/upload.py)."""


async def gathered(source: AsyncIterator[bytes], size: int = BLOCK) -> AsyncIterator[bytes]:
    # A list joined once costs one copy per byte; a growing bytearray cost five times as much here.
    parts: list[bytes] = []
    held = 0
    async for chunk in source:
        parts.append(chunk)
        held += len(chunk)
        if held >= size:
            yield b"".join(parts)
            parts, held = [], 0
    if parts:
        yield b"".join(parts)


class Digests:
    """Hash objects (hashlib's, and ``checksums.CHECKSUMS``') fed a stream a block behind: block N is hashed in a
    thread while the caller stores it and reads block N+1. hashlib and zlib release the GIL for large buffers, so
    the hashing of a body goes on the other core while the event loop reads the next one (bench/s3.py's profile:
    hashed on the loop, a multipart PutObject was bound by that one core)."""

    THREAD_MIN = 1024 * 1024

    def __init__(self, *hashes: Any) -> None:
        self.hashes = [h for h in hashes if h is not None]
        self._slow = any(getattr(h, "slow", False) for h in self.hashes)
        self._pending: asyncio.Future[None] | None = None

    def _update(self, block: bytes) -> None:
        for h in self.hashes:
            h.update(block)

    async def add(self, block: bytes) -> None:
        await self.done()
        if not self.hashes:
            return
        if len(block) >= self.THREAD_MIN or self._slow:
            self._pending = asyncio.ensure_future(asyncio.to_thread(self._update, block))
        else:
            self._update(block)

    async def done(self) -> None:
        if self._pending is not None:
            pending, self._pending = self._pending, None
            await pending


class Hasher(Digests):
    """SHA-256 (the content's key) and MD5 (its S3 ETag: S3 clients check it) of a stream, and any ``also``;
    ``md5`` False: an S3 multipart upload's ETag is made of its parts' MD5s, not of its bytes."""

    def __init__(self, md5: bool = True, also: tuple[Any, ...] = ()) -> None:
        self.sha = hashlib.sha256()
        self.md5 = hashlib.md5(usedforsecurity=False) if md5 else None
        super().__init__(self.sha, self.md5, *also)

    def hexdigest(self) -> str:
        assert self._pending is None, "await done() first"
        return self.sha.hexdigest()


@dataclass(frozen=True)
class Blob:
    sha256: str
    size: int
    probe: Probe
    staging: str | None = None
    md5: str | None = None
    """Its S3 ETag (``Item.md5``): the MD5 of the bytes, or an S3 multipart upload's ``hex-N``."""
    """The upload's own copy, kept when the content was stored already (``ensure_content``)."""


class _Meter:
    """Hashes, counts and keeps the head of a stream as it passes to the store."""

    def __init__(self, source: AsyncIterator[bytes], name: str, max_size: int, limits: Limits,
                 hasher: Hasher) -> None:
        self.source = source
        self.name = name
        self.max_size = max_size
        self.limits = limits
        self.sha = hasher
        self.size = 0
        self.head = bytearray()
        self.probe: Probe | None = None
        self.tiff = False
        self.tail = b""

    async def stream(self) -> AsyncIterator[bytes]:
        async for chunk in gathered(self.source):
            self.size += len(chunk)
            if self.size > self.max_size:
                raise TooLarge(f"{self.name!r} is over the upload limit of {self.max_size:,} bytes (UPLOAD_MAX_SIZE)")
            await self.sha.add(chunk)
            if self.probe is None and not self.tiff:
                self.head += chunk[: HEAD_SIZE - len(self.head)]
                if len(self.head) >= HEAD_SIZE:
                    # Checked here, mid-stream: a bomb is refused before the rest of it is stored.
                    self.probe = probe(self.name, bytes(self.head), self.limits.pixels)
                    if self.probe.kind != "image" and self.head.startswith(TIFF_MAGIC):
                        self.probe = None  # its header may be at the end: look again there
                        self.tiff = True
            if self.tiff:
                self.tail = (self.tail + chunk)[-TAIL_SIZE:]
            yield chunk
        await self.sha.done()

    def finish(self) -> Probe:
        return self.probe or probe(self.name, bytes(self.head), self.limits.pixels, self.tail, self.size)


async def store_blob(store: Store, name: str, chunks: AsyncIterator[bytes], max_size: int, limits: Limits,
                     hasher: Hasher | None = None) -> Blob:
    """``hasher``: to hash the stream into more (or less) than SHA-256 and MD5."""
    meter = _Meter(chunks, name, max_size, limits, hasher or Hasher())
    staging = f"{STAGING_PREFIX}/{secrets.token_hex(16)}"
    try:
        await store.put(staging, meter.stream())  # all-or-nothing: a failed put leaves no object
    except BackendUnavailable as exc:
        # The store's own retries (per request, per part) are spent; the client may send it again.
        raise type(exc)(f"{name!r} was not stored, nothing of it is kept; send it again: {exc.message}") from exc
    return await _settled(store, staging, meter)


async def adopt_blob(in_place: InPlaceWrites, store: Store, name: str, source: str, chunks: AsyncIterator[bytes],
                     max_size: int, limits: Limits, hasher: Hasher) -> Blob:
    """The first bytes of ``source`` (``chunks``: them, read back), already in the store, as a blob without a
    copy: hashed and probed as they are read, then given a staging name by ``link`` and settled as
    ``store_blob`` settles its own (an S3 upload's parts written in place)."""
    meter = _Meter(chunks, name, max_size, limits, hasher)
    async for _ in meter.stream():
        pass
    staging = f"{STAGING_PREFIX}/{secrets.token_hex(16)}"
    await in_place.link(source, staging, meter.size)
    return await _settled(store, staging, meter)


async def _settled(store: Store, staging: str, meter: _Meter) -> Blob:
    """The staged bytes renamed to their content key, or kept aside when that content is stored already."""
    try:
        found = meter.finish()
        if found.kind == "video":
            found = await _probed_video(store, staging, meter.size, meter.name, meter.limits, found)
        sha256 = meter.sha.hexdigest()
        final = content_key(sha256)
        try:
            await store.head(final)
            kept: str | None = staging  # the same bytes are stored already: dropped once the row is written
        except NotFound:
            await store.rename(staging, final)
            kept = None
    except BaseException:
        with contextlib.suppress(Exception):
            await store.delete(staging)
        raise
    md5 = meter.sha.md5.hexdigest() if meter.sha.md5 is not None else None
    return Blob(sha256, meter.size, found, kept, md5)


async def _probed_video(store: Store, key: str, size: int, name: str, limits: Limits, found: Probe) -> Probe:
    """The video's probe from its stored bytes (a file on local disk, ranged reads elsewhere), before its row is
    written: one that is not a readable video, declares frames over IMAGE_MAX_PIXELS or runs past
    VIDEO_MAX_DURATION, is refused here."""
    path = store.local_path(key) if store.features.local_paths else None
    if path is not None:
        info = await asyncio.to_thread(probe_video, str(path), name, limits)
    else:
        async def fetch(start: int, end: int) -> bytes:
            return await (await store.get(key, ByteRange(start, end))).read()

        info, _ = await probe_ranged(fetch, size, name, limits)
    return replace(found, width=info.width, height=info.height, video=info.as_json())


async def ensure_content(store: Store, blob: Blob) -> None:
    """Make sure the blob's content object exists, under ``content_guard``, before its row is committed."""
    key = content_key(blob.sha256)
    try:
        await store.head(key)
    except NotFound:
        if blob.staging is None:  # only a gc with a grace shorter than this upload could do that
            raise BackendUnavailable("the uploaded content was deleted by `cargohold gc` before it was saved "
                                     "(is gc run with a very short --older-than?); upload it again") from None
        await store.rename(blob.staging, key)


async def drop_staging(store: Store, blob: Blob) -> None:
    """Delete the upload's kept copy, if any (after the row is written, or given up)."""
    if blob.staging is not None:
        with contextlib.suppress(Exception):  # gc removes what is left over
            await store.delete(blob.staging)
