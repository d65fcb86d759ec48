"""S3 multipart uploads: parts kept in own storage's public bucket under ``.multipart/`` with a row each
(``s3_parts``), put together into one content object when the upload completes, all removed when it is
aborted. A part is written whole or not at all (the store's ``put``), and a row names only a part whose bytes
are there; an upload left alone (nothing written for ``cargohold gc``'s ``--older-than``) is aborted by gc.

Completing streams the parts, in order, through the same path as an upload (``blobs.store_blob``: SHA-256,
MD5, probe, all-or-nothing), so the item is like any other; its ETag is S3's MD5 of the parts' MD5s and
their count.
"""

from __future__ import annotations

import hashlib
import secrets
from collections.abc import AsyncIterator
from dataclasses import dataclass, replace
from datetime import datetime

from sqlalchemy import delete, func, select

from ..catalog.models import Item, S3Part, S3Upload, utcnow
from ..errors import BadInput, EntityTooSmall, InvalidPart, InvalidPartOrder, NoSuchUpload, TooLarge
from ..storage import ByteRange
from .blobs import store_blob
from .context import Context
from .items import add_stored_item, check_name

PREFIX = ".multipart"
MIN_PART = 5 * 1024 * 1024
"""Every part but the last is at least this big (S3's EntityTooSmall)."""
MAX_PARTS = 10_000


@dataclass(frozen=True)
class Part:
    number: int
    size: int
    md5: str
    created_at: datetime


async def create(ctx: Context, dataset_id: int, key: str, meta: dict[str, str] | None) -> str:
    check_name(key, "object key")
    upload_id = secrets.token_hex(16)
    content_type = (meta or {}).get("content-type")
    async with ctx.catalog.session() as session:
        session.add(S3Upload(id=upload_id, dataset_id=dataset_id, key=key, content_type=content_type, meta=meta))
        await session.commit()
    return upload_id


async def upload(ctx: Context, dataset_id: int, key: str, upload_id: str) -> S3Upload:
    async with ctx.catalog.session() as session:
        row = await session.get(S3Upload, upload_id)
    if row is None or row.dataset_id != dataset_id or row.key != key:
        raise NoSuchUpload("The specified upload does not exist. The upload ID may be invalid, or the upload may "
                           "have been aborted or completed.")
    return row


async def put_part(ctx: Context, row: S3Upload, number: int, chunks: AsyncIterator[bytes]) -> Part:
    if not 1 <= number <= MAX_PARTS:
        raise BadInput(f"Part number must be an integer between 1 and {MAX_PARTS}, inclusive")
    md5 = hashlib.md5(usedforsecurity=False)
    size = 0
    limit = ctx.settings.upload_max_size

    async def counted() -> AsyncIterator[bytes]:
        nonlocal size
        async for chunk in chunks:
            size += len(chunk)
            if size > limit:
                raise TooLarge(f"a part is over the upload limit of {limit:,} bytes (UPLOAD_MAX_SIZE)")
            md5.update(chunk)
            yield chunk

    staged = f"{PREFIX}/{row.id}/{number}-{secrets.token_hex(8)}"
    store = ctx.storage.public
    await store.put(staged, counted())
    async with ctx.catalog.session() as session:
        if await session.get(S3Upload, row.id) is None:  # aborted or completed meanwhile
            await store.delete(staged)
            raise NoSuchUpload("The specified upload does not exist: it was aborted or completed meanwhile")
        old = await session.get(S3Part, (row.id, number))
        replaced = old.staged_key if old is not None else None
        if old is None:
            old = S3Part(upload_id=row.id, number=number)
            session.add(old)
        old.size, old.md5, old.staged_key, old.created_at = size, md5.hexdigest(), staged, utcnow()
        await session.commit()
    if replaced:
        await store.delete(replaced)  # a part sent again: the newer one counts
    return Part(number, size, md5.hexdigest(), utcnow())


async def parts(ctx: Context, upload_id: str, after: int = 0, limit: int = 1000) -> list[Part]:
    async with ctx.catalog.session() as session:
        rows = (await session.scalars(select(S3Part).where(S3Part.upload_id == upload_id, S3Part.number > after)
                                      .order_by(S3Part.number).limit(limit))).all()
    return [Part(r.number, r.size, r.md5, r.created_at) for r in rows]


async def uploads(ctx: Context, dataset_id: int, limit: int = 1000) -> list[S3Upload]:
    async with ctx.catalog.session() as session:
        return list((await session.scalars(select(S3Upload).where(S3Upload.dataset_id == dataset_id)
                                           .order_by(S3Upload.key, S3Upload.created_at).limit(limit))).all())


async def complete(ctx: Context, row: S3Upload, asked: list[tuple[int, str]]) -> Item:
    """Puts the parts named in ``asked`` (number, ETag), in that order, into the item at the upload's key."""
    if not asked:
        raise BadInput("You must specify at least one part")
    numbers = [n for n, _ in asked]
    if numbers != sorted(numbers) or len(set(numbers)) != len(numbers):
        raise InvalidPartOrder("The list of parts was not in ascending order. The parts list must be specified "
                               "in order by part number.")
    async with ctx.catalog.session() as session:
        # Every part of the upload (at most MAX_PARTS rows), not an IN of the asked numbers: a 10,000-part
        # manifest would be 10,000 bound parameters.
        rows = {p.number: p for p in (await session.scalars(
            select(S3Part).where(S3Part.upload_id == row.id))).all()}
    chosen: list[S3Part] = []
    for number, etag in asked:
        part = rows.get(number)
        if part is None or etag.strip().strip('"').lower() != part.md5:
            raise InvalidPart("One or more of the specified parts could not be found. The part may not have been "
                              "uploaded, or the specified entity tag may not match the part's entity tag.")
        chosen.append(part)
    for part in chosen[:-1]:
        if part.size < MIN_PART:
            raise EntityTooSmall("Your proposed upload is smaller than the minimum allowed object size: every part "
                                 "but the last must be at least 5 MiB")
    store = ctx.storage.public

    async def joined() -> AsyncIterator[bytes]:
        for part in chosen:
            download = await store.get(part.staged_key)
            async for chunk in download.chunks:
                yield chunk

    settings = ctx.settings
    blob = await store_blob(store, row.key, joined(), settings.upload_max_size, settings.image_max_pixels)
    together = hashlib.md5(b"".join(bytes.fromhex(p.md5) for p in chosen), usedforsecurity=False).hexdigest()
    blob = replace(blob, md5=f"{together}-{len(chosen)}")
    _, item = await add_stored_item(ctx, row.dataset_id, row.key, blob, "replace", row.meta)
    await _drop(ctx, row.id)
    return item


async def abort(ctx: Context, upload_id: str) -> None:
    await _drop(ctx, upload_id)


async def _drop(ctx: Context, upload_id: str) -> None:
    """The upload's row first (a part written after this is refused and removed by its writer), then its parts."""
    async with ctx.catalog.session() as session:
        keys = (await session.scalars(select(S3Part.staged_key).where(S3Part.upload_id == upload_id))).all()
        await session.execute(delete(S3Part).where(S3Part.upload_id == upload_id))
        await session.execute(delete(S3Upload).where(S3Upload.id == upload_id))
        await session.commit()
    for key in keys:
        await ctx.storage.public.delete(key)


async def abandoned(ctx: Context, before: datetime) -> list[str]:
    """Uploads nothing was written to since ``before``: begun before it, with no part newer."""
    async with ctx.catalog.session() as session:
        newest = (select(S3Part.upload_id, func.max(S3Part.created_at).label("last"))
                  .group_by(S3Part.upload_id).subquery())
        rows = (await session.execute(
            select(S3Upload.id, newest.c.last).outerjoin(newest, newest.c.upload_id == S3Upload.id)
            .where(S3Upload.created_at < before))).all()
    return [r.id for r in rows if r.last is None or r.last < before]


async def staged_keys(ctx: Context, keys: list[str]) -> set[str]:
    """Those of ``keys`` that a part's row names."""
    async with ctx.catalog.session() as session:
        return set((await session.scalars(select(S3Part.staged_key).where(S3Part.staged_key.in_(keys)))).all())


async def part_source(ctx: Context, item_id: int, byte_range: ByteRange | None) -> AsyncIterator[bytes]:
    """The bytes of an item (or a range of them) as a part's source (UploadPartCopy)."""
    from . import serving  # serving reaches links, which reach items: not at import time

    representation = await serving.content(ctx, item_id)
    body = await representation.open(byte_range)
    if body.chunks is not None:
        async for chunk in body.chunks:
            yield chunk
        return
    import os

    from ..storage.page_cache import read_range

    assert body.fd is not None
    try:
        async for data in read_range(body.fd, body.start, body.end):
            yield data
    finally:
        os.close(body.fd)
