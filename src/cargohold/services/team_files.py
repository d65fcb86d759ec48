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

A path is checked before anything is written (``check_path``, and ``clash`` against the catalog), so a
write that could never be published is refused with 400 and leaves nothing. One the store still refuses
(a race of two writers on a file and a folder of one name, a record written by an older version or by
hand) is dropped whole, its record and its staged bytes, by whoever meets it: the request (400), the
start, gc. ``finish_writes`` reports each write it dropped or could not finish, and goes on.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import secrets
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import Select, false, or_, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import InstrumentedAttribute

from ..catalog.db import Catalog
from ..catalog.models import TeamFile, TeamFileWrite, utcnow
from ..catalog.sql import starts_with
from ..errors import BackendUnavailable, BadInput, CargoholdError, InvalidKey, NotFound, TooLarge
from ..media.probe import probe_name
from ..storage.base import ByteRange, check_key, check_new_key
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


def check_path(path: str, new: bool = True) -> str:
    """A team-file path as docs/API.md, "Names and paths", says: 1 to 1024 bytes, segments of 1 to 255
    bytes, none ``.`` or ``..``, no control, bidi or line-separator character, no backslash. Not ``new``
    (a read or a deletion), only ``check_key``: a file stored before these rules can still be read and deleted."""
    try:
        check_new_key(path) if new else check_key(path)
    except InvalidKey as exc:
        raise BadInput(exc.message.replace("object key", "team-file path")) from None
    if path.startswith(RESERVED):
        raise BadInput(f"team-file paths may not start with {' or '.join(RESERVED)}")
    return path


async def clash(session: AsyncSession, path: str, before: int | None = None) -> str | None:
    """Why ``path`` cannot be a file beside the team files (and, with ``before``, the writes announced before
    that id), or None: a file cannot be a folder of other files, nor under one, on any provider (local disk
    could not hold both, and a copy to it would fail)."""
    folders = [path[:n] for n, c in enumerate(path) if c == "/"]
    sources: list[tuple[Select[Any], InstrumentedAttribute[str]]] = [(select(TeamFile.path), TeamFile.path)]
    if before is not None:  # of two clashing writes announced at once, the first wins
        sources.append((select(TeamFileWrite.path).where(TeamFileWrite.id < before, TeamFileWrite.staged_key != DELETE),
                        TeamFileWrite.path))
    for query, column in sources:
        if folders and (file := await session.scalar(query.where(column.in_(folders)).limit(1))) is not None:
            return f"team-file path {path!r} is under {file!r}, which is a file: a file cannot hold other files"
        if (inside := await session.scalar(query.where(starts_with(column, path + "/")).limit(1))) is not None:
            return f"team-file path {path!r} is a folder (it holds {inside!r}): it cannot be a file too"
    return None


def _unusable(write: TeamFileWrite) -> str | None:
    """Why an announced write can never be published (a record an older version or a hand wrote), or None."""
    try:
        check_path(write.path, new=write.staged_key != DELETE)
    except BadInput as exc:
        return exc.message
    if write.staged_key != DELETE and not _staged(write.staged_key):
        return f"its staged key {write.staged_key!r} is not one of {STAGING}"
    return None


def _staged(key: str) -> bool:
    """Whether ``key`` is in ``.staging/``, where ``put_file`` stages bytes: a write's record may move and
    delete those, never another file's."""
    try:
        check_key(key)
    except InvalidKey:
        return False
    return key.startswith(STAGING) and "/" not in key.removeprefix(STAGING)


async def _drop(ctx: Context, session: AsyncSession, writes: Sequence[TeamFileWrite]) -> None:
    """Forgets writes that can never be published, records and staged bytes, so nothing waits on them."""
    for gone in writes:
        await session.delete(gone)
    await session.commit()
    for gone in writes:
        if gone.staged_key != DELETE and _staged(gone.staged_key):
            with contextlib.suppress(CargoholdError, OSError):  # else gc finds it: no record names it now
                await ctx.storage.private.delete(gone.staged_key)


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
    async with ctx.catalog.session() as session:
        if (why := await clash(session, path)) is not None:
            raise BadInput(why)
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
            if write.staged_key != DELETE and _staged(write.staged_key):
                with contextlib.suppress(NotFound):
                    await store.delete(write.staged_key)
            return None
        why = _unusable(write)
        if why is None and write.staged_key != DELETE:
            why = await clash(session, write.path, before=write.id)  # a write of a clashing path since the check
        if why is not None:
            await _drop(ctx, session, writes)
            raise BadInput(f"{why} (nothing of this write is kept)")
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
        except BadInput as exc:  # the store takes no such key: local disk, a file where a folder must be
            await _drop(ctx, session, writes)
            raise BadInput(f"{write.path!r} was not stored, nothing of it is kept: {exc.message}") from exc
        except OSError as exc:  # local disk refused the move (it is atomic: nothing moved)
            await _drop(ctx, session, writes)
            message = f"{write.path!r} was not stored, nothing of it is kept: {exc.strerror}"
            if exc.errno in (errno.ENAMETOOLONG, errno.ENOTDIR, errno.EISDIR, errno.EEXIST, errno.EILSEQ):
                raise BadInput(message) from exc
            raise BackendUnavailable(message) from exc
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


@dataclass
class Finished:
    """What ``finish_writes`` did with the announced writes it found (``count``): each one it dropped (it can
    never be published) or left for the next start or gc (the store or the catalog failed it), as
    ``(record id, path, why)``; the others are finished (or superseded, or their bytes were lost)."""

    count: int = 0
    dropped: list[tuple[int, str, str]] = field(default_factory=list)
    left: list[tuple[int, str, str]] = field(default_factory=list)

    @property
    def finished(self) -> int:
        return self.count - len(self.dropped) - len(self.left)

    def problems(self) -> list[str]:
        """One line per write dropped or left, naming its record and its path (escaped: ``repr``)."""
        return ([f"team-file write {id_} of {path!r} dropped with its staged bytes: {why}"
                 for id_, path, why in self.dropped]
                + [f"team-file write {id_} of {path!r} left for the next start or `cargohold gc`: {why}"
                   for id_, path, why in self.left])


async def finish_writes(ctx: Context) -> Finished:
    """Finishes every announced write (a server killed between announcing and publishing one): run at
    start and by gc. One that fails is reported and skipped, never stops the others: dropped when it can
    never be published, else left for the next run."""
    async with ctx.catalog.session() as session:
        pending = (await session.scalars(select(TeamFileWrite).order_by(TeamFileWrite.id))).all()
    done = Finished(len(pending))
    latest = {w.path: w for w in pending}
    for write in latest.values():
        ids = [w.id for w in pending if w.path == write.path]
        try:
            await _publish(ctx, write)
        except BadInput as exc:
            done.dropped += [(id_, write.path, exc.message) for id_ in ids]
        except Exception as exc:  # any: one record never stops a start or a gc
            why = exc.message if isinstance(exc, CargoholdError) else f"{type(exc).__name__}: {exc}"
            done.left += [(id_, write.path, why) for id_ in ids]
    return done


async def get_file(ctx: Context, path: str) -> TeamFile:
    check_path(path, new=False)
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

    # Sent as the type cargohold reads from the name, not the one the uploader declared (which may say
    # `text/html; charset=utf-7`); active types go as attachments (http/responses.py).
    served = probe_name(row.path).mime_type
    return Representation(row.size, f'"{row.sha256}"', row.updated_at, served, row.path, open_)


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


async def list_files(ctx: Context, prefix: str, limit: int, cursor: str | None,
                     within: tuple[str, ...] | None = None) -> tuple[list[TeamFile], str | None]:
    """A page of the files under ``prefix`` (and under one of the folders ``within``, unless None)."""
    if not 1 <= limit <= 1000:
        raise BadInput("limit must be between 1 and 1000")
    after = decode_cursor(cursor)
    query = select(TeamFile).where(TeamFile.id > after)
    if prefix:
        query = query.where(starts_with(TeamFile.path, prefix))
    if within is not None:
        query = query.where(or_(false(), *(starts_with(TeamFile.path, folder) for folder in within)))
    async with ctx.catalog.session() as session:
        rows = list((await session.scalars(query.order_by(TeamFile.id).limit(limit + 1))).all())
    more = len(rows) > limit
    rows = rows[:limit]
    return rows, encode_cursor(rows[-1].id) if more and rows else None
