"""Team files: model weights, archives and anything else, by path in ``<prefix>-private``.

A path's bytes and its row must never disagree, though a write replaces both and no store changes an
object and a database row at once. So a write goes in three steps:

1. The bytes stream to ``.staging/<random>`` (all or nothing), hashed on the way.
2. The write is *announced*: a ``team_file_writes`` row names the path, the staged object, its size
   and SHA-256, and is committed.
3. Under the path's guard (``locks.team_file_guard``) the staged object is renamed to the path and the
   ``team_files`` row changed, and the announcement deleted, in one transaction.

A crash before 2 leaves a staged object no row names (``cargohold gc`` removes it); after 2, the
announcement is finished at the next start (``finish_writes``; gc runs it too), even when the crash came
between the rename and the commit. Concurrent writes of one path: the last announced wins, whole, and
the others' staged bytes are dropped. A deletion is announced the same way, with no bytes.
"""

from __future__ import annotations

import contextlib
import hashlib
import secrets
from collections.abc import AsyncIterator
from dataclasses import dataclass

from sqlalchemy import select

from ..catalog.db import Catalog
from ..catalog.models import TeamFile, TeamFileWrite, utcnow
from ..catalog.sql import starts_with
from ..errors import BackendUnavailable, BadInput, InvalidKey, NotFound, TooLarge
from ..storage.base import ByteRange, check_key
from .blobs import Hasher, gathered
from .context import Context
from .items import decode_cursor, encode_cursor
from .locks import content_guard, team_file_guard
from .serving import Body, Representation

STAGING = ".staging/"
DELETE = ""
"""The ``staged_key`` of an announced deletion."""
RESERVED = (STAGING, ".cargohold-check/")
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
    staged = f"{STAGING}{secrets.token_hex(16)}"
    try:
        await ctx.storage.private.put(staged, hashing.stream(), content_type=ctype)  # all or nothing
    except BackendUnavailable as exc:
        raise type(exc)(f"{path!r} was not stored, nothing of it is kept; send it again: {exc.message}") from exc
    write = TeamFileWrite(path=path, staged_key=staged, size=hashing.size, sha256=hashing.sha.hexdigest(),
                          content_type=ctype)
    async with ctx.catalog.session() as session:
        session.add(write)
        await session.commit()  # announced: from here a crash is finished by finish_writes
    row = await _publish(ctx, write)
    if row is not None:
        return row
    # A later write of the same path came first: this one's bytes were replaced before they were shown.
    return TeamFile(path=path, size=write.size, sha256=write.sha256, content_type=ctype, updated_at=write.created_at)


async def _publish(ctx: Context, write: TeamFileWrite) -> TeamFile | None:
    """Moves the write's bytes to its path and points the row at them, both under the path's guard; None
    when a later write of the path is announced (the last announced write wins), or this one is done."""
    store = ctx.storage.private
    async with (ctx.catalog.session() as session, team_file_guard(ctx.catalog, session, write.path),
                content_guard(ctx.catalog, session, shared=True)):  # gc deletes no object meanwhile
        writes = (await session.scalars(select(TeamFileWrite).where(TeamFileWrite.path == write.path)
                                        .order_by(TeamFileWrite.id))).all()
        if not writes or writes[-1].id != write.id:
            await session.commit()
            if write.staged_key != DELETE:
                with contextlib.suppress(NotFound):
                    await store.delete(write.staged_key)
            return None
        row = await session.scalar(select(TeamFile).where(TeamFile.path == write.path))
        if write.staged_key == DELETE:
            await store.delete(write.path)  # first: a crash before the commit leaves the write to finish
            if row is not None:
                await session.delete(row)
            for done in writes:
                await session.delete(done)
            await session.commit()
            return None
        try:
            await store.rename(write.staged_key, write.path)
        except NotFound:
            # Moved by a run cut short after the move (the row was not written): the path has its bytes.
            if not await _holds(ctx, write):
                for gone in writes:
                    await session.delete(gone)
                await session.commit()
                return None
        if row is None:
            row = TeamFile(path=write.path)
            session.add(row)
        row.size, row.sha256, row.content_type, row.updated_at = write.size, write.sha256, write.content_type, utcnow()
        for done in writes:
            await session.delete(done)
        await session.commit()
    for older in writes[:-1]:
        if older.staged_key != DELETE:
            with contextlib.suppress(NotFound):
                await store.delete(older.staged_key)
    return row


async def _holds(ctx: Context, write: TeamFileWrite) -> bool:
    """Whether the bytes at the write's path are the write's (read and hashed: this happens only after a crash)."""
    try:
        download = await ctx.storage.private.get(write.path)
    except NotFound:
        return False
    if download.meta.size != write.size:
        return False
    sha = hashlib.sha256()
    async for chunk in download.chunks:
        sha.update(chunk)
    return sha.hexdigest() == write.sha256


async def finish_writes(ctx: Context) -> int:
    """Finishes every announced write (a server killed between announcing and publishing one): run at
    start and by gc. Returns how many were looked at."""
    async with ctx.catalog.session() as session:
        pending = (await session.scalars(select(TeamFileWrite).order_by(TeamFileWrite.id))).all()
    latest = {w.path: w for w in pending}
    for write in latest.values():
        await _publish(ctx, write)
    return len(pending)


async def get_file(ctx: Context, path: str) -> TeamFile:
    check_path(path)
    async with ctx.catalog.session() as session:
        row = await session.scalar(select(TeamFile).where(TeamFile.path == path))
        if row is None:
            raise NotFound(f"no team file {path!r}")
        return row


def representation(ctx: Context, row: TeamFile) -> Representation:
    """What a read of the team file answers, sent by the same code as items (``http/responses.py``)."""

    async def open_(byte_range: ByteRange | None) -> Body:
        download = await ctx.storage.private.get(row.path, byte_range)
        return Body(download.start, download.end, download.meta.size, chunks=download.chunks)

    return Representation(row.size, f'"{row.sha256}"', row.updated_at, row.content_type, row.path, open_)


async def team_file_sums(catalog: Catalog, paths: list[str]) -> dict[str, str]:
    """The SHA-256 the catalog holds for each of ``paths`` that is a team file (``cargohold migrate``
    checks the copies by it)."""
    async with catalog.session() as session:
        rows = await session.execute(select(TeamFile.path, TeamFile.sha256).where(TeamFile.path.in_(paths)))
        return {path: sha for path, sha in rows.all()}


async def delete_file(ctx: Context, path: str) -> None:
    await get_file(ctx, path)
    write = TeamFileWrite(path=path, staged_key=DELETE, size=0, sha256="", content_type="")
    async with ctx.catalog.session() as session:
        session.add(write)
        await session.commit()
    await _publish(ctx, write)


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
