"""Team files: model weights, archives and anything else, by path in ``<prefix>-private``.

The object is written first (atomically), the catalog row after; a crash between the two leaves an
object without a row, which ``cargohold gc`` reports.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from ..catalog.models import TeamFile, utcnow
from ..catalog.sql import starts_with
from ..errors import BackendUnavailable, BadInput, InvalidKey, NotFound, TooLarge
from ..storage.base import ByteRange, Download, check_key
from .blobs import Hasher, gathered
from .context import Context
from .items import decode_cursor, encode_cursor
from .locks import content_guard

RESERVED = (".staging/", ".cargohold-check/")
MAX_CONTENT_TYPE = 255


def check_path(path: str) -> str:
    try:
        check_key(path)
    except InvalidKey as exc:
        raise BadInput(exc.message.replace("object key", "team-file path")) from None
    if path.startswith(RESERVED):
        raise BadInput(f"team-file paths may not start with {' or '.join(RESERVED)}")
    return path


@dataclass
class _Hashing:
    source: AsyncIterator[bytes]
    max_size: int
    path: str
    size: int = 0

    def __post_init__(self) -> None:
        self.sha = Hasher()

    async def stream(self) -> AsyncIterator[bytes]:
        async for chunk in gathered(self.source):
            self.size += len(chunk)
            if self.size > self.max_size:
                raise TooLarge(f"{self.path!r} is over the upload limit of {self.max_size:,} bytes (UPLOAD_MAX_SIZE)")
            await self.sha.add(chunk)
            yield chunk
        await self.sha.done()


async def put_file(ctx: Context, path: str, chunks: AsyncIterator[bytes], content_type: str | None) -> TeamFile:
    check_path(path)
    hashing = _Hashing(chunks, ctx.settings.upload_max_size, path)
    ctype = content_type or "application/octet-stream"
    if len(ctype) > MAX_CONTENT_TYPE:  # the column's size: PostgreSQL refuses longer, SQLite would keep it
        raise BadInput(f"a team file's Content-Type is at most {MAX_CONTENT_TYPE} characters")
    await ctx.storage.private.put(path, hashing.stream(), content_type=ctype)
    for attempt in range(2):
        async with ctx.catalog.session() as session:
            row = await session.scalar(select(TeamFile).where(TeamFile.path == path))
            if row is None:
                row = TeamFile(path=path)
                session.add(row)
            row.size = hashing.size
            row.sha256 = hashing.sha.hexdigest()
            row.content_type = ctype
            row.updated_at = utcnow()
            try:
                # As an upload's row (blobs.py): gc may have found an old object at this path without a
                # row and be deleting it; the row is committed only with the object there.
                async with content_guard(ctx.catalog, session, shared=True):
                    await _ensure_object(ctx, path)
                    await session.commit()
            except IntegrityError:
                if attempt:
                    raise
                continue  # the same new path written at once through another request (or replica): update it
            return row
    raise AssertionError("unreachable")


async def _ensure_object(ctx: Context, path: str) -> None:
    try:
        await ctx.storage.private.head(path)
    except NotFound:
        raise BackendUnavailable(f"{path!r} was deleted by `cargohold gc` before it was saved (is gc run with a "
                                 "very short --older-than?); upload it again") from None


async def get_file(ctx: Context, path: str) -> TeamFile:
    check_path(path)
    async with ctx.catalog.session() as session:
        row = await session.scalar(select(TeamFile).where(TeamFile.path == path))
        if row is None:
            raise NotFound(f"no team file {path!r}")
        return row


async def open_file(ctx: Context, row: TeamFile, byte_range: ByteRange | None) -> Download:
    return await ctx.storage.private.get(row.path, byte_range)


async def delete_file(ctx: Context, path: str) -> None:
    row = await get_file(ctx, path)
    async with ctx.catalog.session() as session:
        await session.delete(await session.merge(row))
        await session.commit()
    await ctx.storage.private.delete(path)


async def list_files(ctx: Context, prefix: str, limit: int, cursor: str | None) -> tuple[list[TeamFile], str | None]:
    if not 1 <= limit <= 1000:
        raise BadInput("limit must be between 1 and 1000")
    after = decode_cursor(cursor)
    query = select(TeamFile).where(TeamFile.id > after)
    if prefix:
        query = query.where(starts_with(TeamFile.path, prefix))
    async with ctx.catalog.session() as session:
        rows = list((await session.scalars(query.order_by(TeamFile.id).limit(limit + 1))).all())
    more = len(rows) > limit
    rows = rows[:limit]
    return rows, encode_cursor(rows[-1].id) if more and rows else None
