"""``cargohold migrate``: copy own storage (both buckets) to another provider, verified, resumable.

Every object is streamed from the source store to the target store (memory flat; the target's
``put`` goes in parts where it can), hashed on the way. A put is all-or-nothing on every provider, and
a stream whose SHA-256 differs from what it must be is aborted before the put completes, so an
object present in the target is a whole, verified object: a run cut short (even by ``kill -9``) is
started again and skips what is there.

What an object must hash to: its key for content (``sha256/aa/bb/<sha256>``), the catalog's row for
a team file. Other objects (team files without a row) are compared by size after the copy, and
by hashing both sides with ``verify_only``.

Nothing is ever written, changed or deleted at the source.
"""

from __future__ import annotations

import asyncio
import hashlib
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field

from ..errors import CargoholdError, ChecksumMismatch
from ..storage import ObjectMeta, OwnStorage, Store
from .blobs import CONTENT_PREFIX, STAGING_PREFIX
from .storage_check import PROBE_PREFIX

SKIPPED_PREFIXES = (STAGING_PREFIX + "/", PROBE_PREFIX + "/")
"""Not data: unfinished uploads and ``cargohold check`` probes stay behind."""
DEFAULT_JOBS = 8


@dataclass(frozen=True)
class Work:
    bucket: str  # "public" | "private"
    meta: ObjectMeta
    sha256: str | None  # what the bytes must hash to, when known


@dataclass
class Failure:
    bucket: str
    key: str
    reason: str


@dataclass
class Report:
    objects: int = 0
    bytes_total: int = 0
    copied: int = 0
    skipped: int = 0
    bytes_copied: int = 0
    verified: int = 0
    failed: list[Failure] = field(default_factory=list)
    seconds: float = 0.0

    @property
    def ok(self) -> bool:
        return not self.failed

    @property
    def throughput(self) -> float:
        return self.bytes_copied / self.seconds if self.seconds else 0.0


Progress = Callable[[int, int], None]
"""Called with (bytes, objects) as they are done: copied, skipped or verified."""


TeamFileSums = Callable[[list[str]], Awaitable[dict[str, str]]]


async def plan(source: OwnStorage, team_file_sha: TeamFileSums | None = None) -> list[Work]:
    """Every object to move, with its expected SHA-256 where the key or ``team_file_sha`` says it."""
    work: list[Work] = []
    for name, store in (("public", source.public), ("private", source.private)):
        async for page in store.list():
            metas = [m for m in page if not m.key.startswith(SKIPPED_PREFIXES)]
            known: dict[str, str] = {}
            if name == "private" and team_file_sha is not None and metas:
                known = await team_file_sha([m.key for m in metas])
            for meta in metas:
                expected = known.get(meta.key)
                if name == "public" and meta.key.startswith(CONTENT_PREFIX + "/"):
                    expected = meta.key.rsplit("/", 1)[-1]
                work.append(Work(name, meta, expected))
    return work


@dataclass
class Migration:
    source: OwnStorage
    target: OwnStorage
    jobs: int = DEFAULT_JOBS
    progress: Progress | None = None

    def _stores(self, bucket: str) -> tuple[Store, Store]:
        if bucket == "public":
            return self.source.public, self.target.public
        return self.source.private, self.target.private

    async def _target_sizes(self) -> None:
        """One listing of the target instead of a HEAD per object (what rclone does too)."""
        self._sizes: dict[tuple[str, str], int] = {}
        for bucket, store in (("public", self.target.public), ("private", self.target.private)):
            try:
                async for page in store.list():
                    self._sizes.update(((bucket, m.key), m.size) for m in page)
            except CargoholdError as exc:
                if exc.code != "not_found":  # a bucket not made yet holds nothing
                    raise

    async def run(self, work: list[Work], verify_only: bool = False) -> Report:
        report = Report(objects=len(work), bytes_total=sum(w.meta.size for w in work))
        started = time.monotonic()
        if not verify_only:
            await self._target_sizes()
        queue: asyncio.Queue[Work] = asyncio.Queue()
        for item in work:
            queue.put_nowait(item)

        async def worker() -> None:
            while True:
                try:
                    item = queue.get_nowait()
                except asyncio.QueueEmpty:
                    return
                try:
                    if verify_only:
                        await self._verify(item, report)
                    else:
                        await self._copy(item, report)
                except CargoholdError as exc:
                    report.failed.append(Failure(item.bucket, item.meta.key, exc.message))
                except OSError as exc:
                    report.failed.append(Failure(item.bucket, item.meta.key, f"{type(exc).__name__}: {exc}"))
                if self.progress is not None:
                    self.progress(item.meta.size, 1)

        await asyncio.gather(*(worker() for _ in range(max(1, self.jobs))))
        report.seconds = time.monotonic() - started
        return report

    async def missing(self, work: list[Work]) -> list[Work]:
        """What a run would copy: objects not in the target whole and verified."""
        limit = asyncio.Semaphore(max(1, self.jobs))

        async def present(w: Work) -> bool:
            async with limit:
                return await self._present(self._stores(w.bucket)[1], w)

        found = await asyncio.gather(*(present(w) for w in work))
        return [w for w, present in zip(work, found, strict=True) if not present]

    async def _present(self, store: Store, item: Work) -> bool:
        sizes: dict[tuple[str, str], int] | None = getattr(self, "_sizes", None)
        if sizes is not None:
            size = sizes.get((item.bucket, item.meta.key))
        else:
            try:
                size = (await store.head(item.meta.key)).size
            except CargoholdError as exc:
                if exc.code != "not_found":
                    raise
                size = None
        if size != item.meta.size:
            return False
        if item.bucket == "public" and item.sha256 is not None:
            # A content key is its own checksum, and every put here is all-or-nothing after the hash
            # matched: a whole object of the right size under it is the right object.
            return True
        if item.sha256 is not None:
            return await _sha256_of(store, item.meta.key) == item.sha256
        return True  # no checksum known (a team file without a row): the size is all there is

    async def _copy(self, item: Work, report: Report) -> None:
        source, target = self._stores(item.bucket)
        if await self._present(target, item):
            report.skipped += 1
            return
        download = await source.get(item.meta.key)
        hasher = hashlib.sha256()
        size = 0

        async def checked() -> AsyncIterator[bytes]:
            nonlocal size
            async for chunk in download.chunks:
                hasher.update(chunk)
                size += len(chunk)
                yield chunk
            # Raised inside the stream, so the target's put is abandoned: nothing half-written shows.
            if size != item.meta.size:
                raise ChecksumMismatch(f"read {size} of {item.meta.size} bytes from the source")
            if item.sha256 is not None and hasher.hexdigest() != item.sha256:
                raise ChecksumMismatch(f"the source's bytes hash to {hasher.hexdigest()}, not {item.sha256}")

        written = await target.put(item.meta.key, checked(), download.content_type)
        if written.size != item.meta.size:
            raise ChecksumMismatch(f"the target holds {written.size} bytes, not {item.meta.size}")
        report.copied += 1
        report.verified += 1
        report.bytes_copied += size

    async def _verify(self, item: Work, report: Report) -> None:
        source, target = self._stores(item.bucket)
        expected = item.sha256 or await _sha256_of(source, item.meta.key)
        try:
            found = await _sha256_of(target, item.meta.key)
        except CargoholdError as exc:
            if exc.code == "not_found":
                raise ChecksumMismatch("missing in the target") from None
            raise
        if found != expected:
            raise ChecksumMismatch(f"the target's bytes hash to {found}, the source's to {expected}")
        report.verified += 1


async def _sha256_of(store: Store, key: str) -> str:
    hasher = hashlib.sha256()
    download = await store.get(key)
    async for chunk in download.chunks:
        hasher.update(chunk)
    return hasher.hexdigest()
