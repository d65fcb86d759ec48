"""``cargohold gc``: objects in own storage that no catalog row refers to.

Found: unfinished uploads (``.staging/``), content no item uses any more, team-file objects without
a row, and probes ``cargohold check`` could not remove. Objects younger than the grace period are
left alone: an upload may be between storing its bytes and writing its row.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from sqlalchemy import select

from ..catalog.models import Item, TeamFile
from ..storage import ObjectMeta, Store
from .blobs import CONTENT_PREFIX, STAGING_PREFIX
from .context import Context
from .storage_check import PROBE_PREFIX


@dataclass
class Garbage:
    found: list[tuple[Store, ObjectMeta, str]] = field(default_factory=list)
    unfinished: list[tuple[str, int]] = field(default_factory=list)
    """Interrupted uploads the provider still holds (local ``.partial`` files, S3 multipart parts)."""
    cutoff: datetime = field(default_factory=lambda: datetime.now(UTC))

    @property
    def size(self) -> int:
        return sum(meta.size for _, meta, _ in self.found) + sum(size for _, size in self.unfinished)

    @property
    def count(self) -> int:
        return len(self.found) + len(self.unfinished)


async def find_garbage(ctx: Context, grace: timedelta = timedelta(hours=1)) -> Garbage:
    cutoff = datetime.now(UTC) - grace
    garbage = Garbage(cutoff=cutoff)

    def old(meta: ObjectMeta) -> bool:
        return meta.last_modified is None or meta.last_modified <= cutoff

    public, private = ctx.storage.public, ctx.storage.private
    async for page in public.list(STAGING_PREFIX):
        garbage.found += [(public, m, "unfinished upload") for m in page if old(m)]
    async for page in public.list(CONTENT_PREFIX):
        shas = {m.key.rsplit("/", 1)[-1]: m for m in page if old(m)}
        async with ctx.catalog.session() as session:
            used = set((await session.scalars(
                select(Item.sha256).where(Item.sha256.in_(list(shas)), Item.source == "stored"))).all())
        garbage.found += [(public, m, "no item uses it") for sha, m in shas.items() if sha not in used]
    async for page in public.list(PROBE_PREFIX):
        garbage.found += [(public, m, "left-over check probe") for m in page if old(m)]
    async for page in private.list():
        candidates = {m.key: m for m in page if old(m)}
        async with ctx.catalog.session() as session:
            known = set((await session.scalars(select(TeamFile.path).where(TeamFile.path.in_(list(candidates))))).all())
        for key, meta in candidates.items():
            if key not in known:
                reason = "left-over check probe" if key.startswith(PROBE_PREFIX + "/") else "no team file row"
                garbage.found.append((private, meta, reason))
    seen: set[str] = set()  # local disk keeps one .partial folder for both buckets
    for store in (public, private):
        for name, size in await store.unfinished_uploads(cutoff, abort=False):
            if name not in seen:
                seen.add(name)
                garbage.unfinished.append((name, size))
    return garbage


async def delete_garbage(ctx: Context, garbage: Garbage) -> int:
    for store, meta, _ in garbage.found:
        await store.delete(meta.key)
    aborted: set[str] = set()
    for store in ctx.storage.buckets:
        aborted.update(name for name, _ in await store.unfinished_uploads(garbage.cutoff, abort=True))
    return len(garbage.found) + len(aborted & {name for name, _ in garbage.unfinished})
