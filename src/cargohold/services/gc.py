"""``cargohold gc``: objects in own storage that no catalog row refers to.

Found: unfinished uploads (``.staging/``), content no item uses any more, team-file objects without
a row, probes ``cargohold check`` could not remove, S3 multipart uploads nothing was written to for the
grace period (aborted: their rows, then their parts) and parts no upload's row names (``.multipart/``).
Objects younger than the grace period are left alone: an upload may be between storing its bytes and writing its row.

Safe while servers (any number of replicas) keep serving and uploading: what was found is deleted in
batches, each under ``locks.content_guard`` held alone, which uploads share while they commit a row
(``blobs.ensure_content``). Inside it, each object of the batch is looked at again, in the catalog
(a row may have come to use it since it was found) and in the store (written again since: young), and
only what is still garbage is deleted. ``cargohold gc`` also holds ``locks.exclusive(ctx, "gc")``, so
two runs never race each other.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from ..catalog.models import Item, TeamFile, TeamFileWrite
from ..errors import NotFound
from ..storage import ObjectMeta, Store
from . import multipart
from .blobs import CONTENT_PREFIX, STAGING_PREFIX
from .context import Context
from .locks import content_guard
from .storage_check import PROBE_PREFIX


@dataclass
class Garbage:
    found: list[tuple[Store, ObjectMeta, str]] = field(default_factory=list)
    unfinished: list[tuple[str, int]] = field(default_factory=list)
    """Interrupted uploads the provider still holds (local ``.partial`` files, S3 multipart parts)."""
    s3_uploads: list[tuple[str, int]] = field(default_factory=list)
    """S3 multipart uploads left alone (id, bytes of their parts): aborted by ``delete_garbage``."""
    cutoff: datetime = field(default_factory=lambda: datetime.now(UTC))
    deleted_size: int = 0
    """Bytes ``delete_garbage`` deleted: what was found, less what came into use meanwhile."""

    @property
    def size(self) -> int:
        return sum(meta.size for _, meta, _ in self.found) + sum(size for _, size in self.unfinished) + \
            sum(size for _, size in self.s3_uploads)

    @property
    def count(self) -> int:
        return len(self.found) + len(self.unfinished) + len(self.s3_uploads)


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
    for upload_id in await multipart.abandoned(ctx, cutoff):
        parts = await multipart.parts(ctx, upload_id, limit=multipart.MAX_PARTS)
        garbage.s3_uploads.append((upload_id, sum(p.size for p in parts)))
    async for page in public.list(multipart.PREFIX):
        candidates = {m.key: m for m in page if old(m)}
        known = await multipart.staged_keys(ctx, list(candidates))
        garbage.found += [(public, m, "S3 multipart part of no upload") for k, m in candidates.items()
                          if k not in known]
    async for page in private.list():
        candidates = {m.key: m for m in page if old(m)}
        async with ctx.catalog.session() as session:
            known = await _team_file_keys(session, list(candidates))
        for key, meta in candidates.items():
            if key not in known:
                reason = "left-over check probe" if key.startswith(PROBE_PREFIX + "/") else "no team file row"
                garbage.found.append((private, meta, reason))
    seen: set[str] = set()  # local disk keeps one .partial folder for both buckets
    for store in (public, private):
        for name, size in await _unfinished(store, cutoff, abort=False):
            if name not in seen:
                seen.add(name)
                garbage.unfinished.append((name, size))
    return garbage


DELETE_BATCH = 100
"""Objects checked again and deleted under one hold of the content guard (uploads wait meanwhile)."""
DELETE_CONCURRENCY = 16


async def delete_garbage(ctx: Context, garbage: Garbage) -> int:
    deleted = 0
    garbage.deleted_size = 0
    for upload_id, size in garbage.s3_uploads:
        await multipart.abort(ctx, upload_id)
        deleted += 1
        garbage.deleted_size += size
    for pos in range(0, len(garbage.found), DELETE_BATCH):
        sizes = await _delete_batch(ctx, garbage.found[pos : pos + DELETE_BATCH], garbage.cutoff)
        deleted += len(sizes)
        garbage.deleted_size += sum(sizes)
    aborted: set[str] = set()
    for store in ctx.storage.buckets:
        aborted.update(name for name, _ in await _unfinished(store, garbage.cutoff, abort=True))
    unfinished = {name: size for name, size in garbage.unfinished if name in aborted}
    garbage.deleted_size += sum(unfinished.values())
    return deleted + len(unfinished)


async def _unfinished(store: Store, before: datetime, abort: bool) -> list[tuple[str, int]]:
    """``store``'s interrupted uploads begun before ``before`` (aborted when ``abort``); none where the
    provider keeps none or expires them itself (``features.unfinished``)."""
    uploads = store.features.unfinished
    return await uploads.unfinished_uploads(before, abort) if uploads is not None else []


async def _delete_batch(ctx: Context, batch: list[tuple[Store, ObjectMeta, str]], cutoff: datetime) -> list[int]:
    """Deletes what is still garbage of ``batch``; returns the sizes deleted."""
    public, private = ctx.storage.public, ctx.storage.private
    gate = asyncio.Semaphore(DELETE_CONCURRENCY)

    async def still_old(store: Store, key: str) -> bool:
        async with gate:
            try:
                meta = await store.head(key)
            except NotFound:
                return False  # gone already
            return meta.last_modified is None or meta.last_modified <= cutoff

    async def delete(store: Store, key: str) -> None:
        async with gate:
            await store.delete(key)

    async with ctx.catalog.session() as session, content_guard(ctx.catalog, session, shared=False):
        shas = [meta.key.rsplit("/", 1)[-1] for store, meta, _ in batch
                if store is public and meta.key.startswith(CONTENT_PREFIX + "/")]
        paths = [meta.key for store, meta, _ in batch if store is private]
        parts = [meta.key for store, meta, _ in batch if store is public and meta.key.startswith(multipart.PREFIX)]
        named = await multipart.staged_keys(ctx, parts) if parts else set()
        used = set((await session.scalars(
            select(Item.sha256).where(Item.sha256.in_(shas), Item.source == "stored"))).all()) if shas else set()
        known = await _team_file_keys(session, paths) if paths else set()
        candidates = [(store, meta) for store, meta, _ in batch
                      if not (store is public and meta.key.rsplit("/", 1)[-1] in used)
                      and not (store is private and meta.key in known)
                      and meta.key not in named]
        old = await asyncio.gather(*(still_old(store, meta.key) for store, meta in candidates))
        doomed = [candidate for candidate, is_old in zip(candidates, old, strict=True) if is_old]
        await asyncio.gather(*(delete(store, meta.key) for store, meta in doomed))
        await session.commit()  # ends the transaction, and with it the guard on PostgreSQL
    return [meta.size for _, meta in doomed]


async def _team_file_keys(session: AsyncSession, keys: list[str]) -> set[str]:
    """Those of ``keys`` a team file's row names, or a team-file write still to finish (its staged bytes)."""
    paths = (await session.scalars(select(TeamFile.path).where(TeamFile.path.in_(keys)))).all()
    staged = (await session.scalars(select(TeamFileWrite.staged_key).where(TeamFileWrite.staged_key.in_(keys)))).all()
    return set(paths) | set(staged)
