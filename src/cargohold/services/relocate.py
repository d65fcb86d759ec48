"""Moving items between *linked* and *stored* without changing what they are.

``materialize``: a linked item's bytes are copied into own storage (content-addressed, as an upload)
and the item becomes stored. The linked file is only read.

``relink``: a stored item is pointed at a copy that already exists in a bucket, under
``<prefix><item name>``, after checking that the copy's bytes hash to the item's SHA-256. Its stored
bytes stay in own storage until ``cargohold gc`` finds no item uses them.

Both go item by item, commit each change, and can be run again: items already moved are skipped.
"""

from __future__ import annotations

import hashlib
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

from sqlalchemy import select

from ..catalog.models import Item
from ..errors import CargoholdError, NotFound
from ..media import Limits
from ..storage.uris import Link, parse_link, parse_prefix
from . import links as links_svc
from .blobs import drop_staging, ensure_content, store_blob
from .context import Context
from .locks import content_guard

BATCH = 500


@dataclass
class RelocateReport:
    moved: int = 0
    skipped: int = 0
    bytes: int = 0
    failed: list[tuple[str, str]] = field(default_factory=list)  # (item name, reason)

    def as_dict(self) -> dict[str, object]:
        return {"moved": self.moved, "skipped": self.skipped, "bytes": self.bytes,
                "failed": [{"name": n, "reason": r} for n, r in self.failed]}


async def _items(ctx: Context, dataset_id: int, source: str) -> AsyncIterator[list[Item]]:
    after = 0
    while True:
        async with ctx.catalog.session() as session:
            page = list(await session.scalars(
                select(Item).where(Item.dataset_id == dataset_id, Item.source == source, Item.id > after)
                .order_by(Item.id).limit(BATCH)))
        if not page:
            return
        after = page[-1].id
        yield page


async def materialize(ctx: Context, dataset_id: int) -> RelocateReport:
    report = RelocateReport()
    async for page in _items(ctx, dataset_id, "link"):
        for item in page:
            try:
                download = await links_svc.open_link(ctx, parse_link(item.uri or ""))
                blob = await store_blob(ctx.storage.public, item.name, download.chunks, ctx.settings.upload_max_size,
                                        Limits.of(ctx.settings))
            except CargoholdError as exc:
                report.failed.append((item.name, exc.message))
                continue
            try:
                async with ctx.catalog.session() as session:
                    row = await session.get(Item, item.id)
                    if row is None or row.source != "link":  # deleted or changed meanwhile
                        report.skipped += 1
                        continue
                    row.source, row.sha256, row.size, row.uri, row.etag = "stored", blob.sha256, blob.size, None, None
                    row.md5 = blob.md5
                    row.kind, row.mime_type = blob.probe.kind, blob.probe.mime_type
                    row.width, row.height = blob.probe.width, blob.probe.height
                    async with content_guard(ctx.catalog, session, shared=True):  # as an upload: see blobs.py
                        await ensure_content(ctx.storage.public, blob)
                        await session.commit()
            except CargoholdError as exc:
                report.failed.append((item.name, exc.message))
                continue
            finally:
                await drop_staging(ctx.storage.public, blob)
            ctx.memo.forget(item.id)
            report.moved += 1
            report.bytes += blob.size
    return report


async def relink(ctx: Context, dataset_id: int, target: str) -> RelocateReport:
    prefix = parse_prefix(target)
    base = f"{prefix.scheme}://{prefix.bucket}/" + (f"{prefix.prefix}/" if prefix.prefix else "")
    report = RelocateReport()
    async for page in _items(ctx, dataset_id, "stored"):
        for item in page:
            uri = base + item.name
            link = parse_link(uri)
            try:
                found = await _sha256_and_meta(ctx, link)
            except NotFound:
                report.failed.append((item.name, f"no copy at {uri}"))
                continue
            except CargoholdError as exc:
                report.failed.append((item.name, f"{uri}: {exc.message}"))
                continue
            digest, size, etag = found
            if digest != item.sha256:
                report.failed.append((item.name, f"{uri} holds other bytes (SHA-256 {digest[:12]}..., "
                                                 f"the item's is {(item.sha256 or '')[:12]}...)"))
                continue
            async with ctx.catalog.session() as session:
                row = await session.get(Item, item.id)
                if row is None or row.source != "stored" or row.sha256 != digest:
                    report.skipped += 1
                    continue
                row.source, row.uri, row.etag, row.size = "link", uri, links_svc.short_etag(etag), size
                row.md5 = None  # a link's ETag is its source's
                await session.commit()
            ctx.memo.forget(item.id)
            report.moved += 1
            report.bytes += size
    return report


async def _sha256_and_meta(ctx: Context, link: Link) -> tuple[str, int, str | None]:
    download = await links_svc.open_link(ctx, link)
    hasher = hashlib.sha256()
    size = 0
    async for chunk in download.chunks:
        hasher.update(chunk)
        size += len(chunk)
    return hasher.hexdigest(), size, download.meta.etag
