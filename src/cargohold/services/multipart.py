"""S3 multipart uploads: parts kept in own storage's public bucket under ``.multipart/`` with a row each
(``s3_parts``), put together into one content object when the upload completes, all removed when it is
aborted. A row names only a part whose bytes are there (written, and made durable, before it); an upload left
alone (nothing written for ``cargohold gc``'s ``--older-than``) is aborted by gc.

Where the store writes in place (local disk: ``Features.in_place``), the parts of an upload go into one file,
``.multipart/<upload>/data``: the first part of at least 5 MiB sets the upload's stride (every client sends
parts of one size but the last), and part ``n`` is written at ``(n - 1) * stride``. Completing parts that lie
back to back from the start (every client's upload) reads the file once to hash it and makes it the object by
a hard link: no byte is written twice. A part that does not fit (larger than the stride, sent again while its
place is taken, a file already linked) is a file of its own, and an upload with such parts is streamed, in
order, through the same path as an upload (``blobs.store_blob``: SHA-256, probe, all-or-nothing). Either way
the item is like any other; its ETag is S3's MD5 of the parts' MD5s and their count. The item keeps its parts'
sizes and checksums (``items.s3``: GetObject by ``partNumber``, GetObjectAttributes). A completed upload's row
stays, its parts gone, with the answer it got: S3 answers a repeated CompleteMultipartUpload (a client's retry)
as the first, and gc removes the row with the others."""

from __future__ import annotations

import hashlib
import secrets
from collections.abc import AsyncIterator
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any

from sqlalchemy import delete, func, select, update

from ..catalog.models import Item, S3Part, S3Upload, utcnow
from ..errors import BadDigest, BadInput, EntityTooSmall, InvalidPart, InvalidPartOrder, NoSuchUpload, TooLarge
from ..media import Limits
from ..storage import ByteRange
from ..storage.base import SharedFile
from . import checksums
from .blobs import Blob, Digests, Hasher, adopt_blob, drop_staging, store_blob
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
    checksum: str | None = None
    """Base64, in the upload's checksum algorithm (when it has one)."""


@dataclass(frozen=True)
class Asked:
    """A part as CompleteMultipartUpload names it."""

    number: int
    etag: str
    checksum: str | None = None


@dataclass(frozen=True)
class Completed:
    item: Item | None
    """None when the upload had been completed before (the answer is then ``etag`` and ``checksum`` again)."""
    etag: str
    checksum: dict[str, str] | None


async def create(ctx: Context, dataset_id: int, key: str, meta: dict[str, str] | None,
                 checksum: tuple[str, str] | None = None) -> str:
    """A new upload; ``checksum``: ``(algorithm, COMPOSITE | FULL_OBJECT)`` its parts and object keep."""
    check_name(key, "object key")
    upload_id = secrets.token_hex(16)
    content_type = (meta or {}).get("content-type")
    algorithm, kind = checksum or (None, None)
    async with ctx.catalog.session() as session:
        session.add(S3Upload(id=upload_id, dataset_id=dataset_id, key=key, content_type=content_type, meta=meta,
                             checksum_algorithm=algorithm, checksum_type=kind))
        await session.commit()
    return upload_id


async def upload(ctx: Context, dataset_id: int, key: str, upload_id: str, completed_too: bool = False) -> S3Upload:
    """The upload in progress; with ``completed_too`` also one completed (for a repeated completion)."""
    async with ctx.catalog.session() as session:
        row = await session.get(S3Upload, upload_id)
    if row is None or row.dataset_id != dataset_id or row.key != key or (row.completed and not completed_too):
        raise NoSuchUpload("The specified upload does not exist. The upload ID may be invalid, or the upload may "
                           "have been aborted or completed.")
    return row


_writing: set[tuple[str, int]] = set()
"""(upload, part number) being written in place in this process: a second write of that part meanwhile goes to a
file of its own, and completing the upload meanwhile copies instead of linking. In-process, as the cache's lock
already allows one server per DATA_PATH."""
_sealed: set[str] = set()
"""Uploads being completed by a link in this process: no part is written in place into them from then on."""


def data_key(upload_id: str) -> str:
    """The one file an upload's parts are written in place into (a store with ``in_place`` writes)."""
    return f"{PREFIX}/{upload_id}/data"


async def put_part(ctx: Context, row: S3Upload, number: int, chunks: AsyncIterator[bytes], md5: Any = None,
                   checksum: Any = None, length: int | None = None) -> Part:
    """``md5``, ``checksum`` (of the upload's algorithm): hash objects the caller feeds ``chunks`` into (the S3
    body reader, which hashes the body anyway), read once they end; the part hashes itself into those not given.
    ``length``: the size the request announced, for a part written in place (module docstring)."""
    if not 1 <= number <= MAX_PARTS:
        raise BadInput(f"Part number must be an integer between 1 and {MAX_PARTS}, inclusive")
    own_md5 = hashlib.md5(usedforsecurity=False) if md5 is None else None
    own_checksum = checksums.CHECKSUMS[row.checksum_algorithm]() \
        if row.checksum_algorithm and checksum is None else None
    md5, checksum = md5 or own_md5, checksum or own_checksum
    digests = Digests(own_md5, own_checksum)
    size = 0
    limit = ctx.settings.upload_max_size

    async def counted() -> AsyncIterator[bytes]:
        nonlocal size
        async for chunk in chunks:
            size += len(chunk)
            if size > limit:
                raise TooLarge(f"a part is over the upload limit of {limit:,} bytes (UPLOAD_MAX_SIZE)")
            await digests.add(chunk)
            yield chunk
        await digests.done()

    store = ctx.storage.public
    in_place = store.features.in_place
    start = await _place(ctx, row, number, length) if in_place is not None and length else None
    try:
        staged = data_key(row.id)
        if in_place is not None and start is not None and length is not None:
            try:
                await in_place.write_at(staged, start, counted(), length)
            except SharedFile:  # linked as an object by a completion that did not finish: never written again
                start = None
            else:
                if size != length:
                    raise BadInput(f"the part has {size:,} bytes, its request announced {length:,}")
        if start is None:
            staged = f"{PREFIX}/{row.id}/{number}-{secrets.token_hex(8)}"
            await store.put(staged, counted())
        async with ctx.catalog.session() as session:
            current = await session.get(S3Upload, row.id)
            if current is None or current.completed:  # aborted or completed meanwhile
                await store.delete(staged)  # only a name: a completion's object keeps its own
                raise NoSuchUpload("The specified upload does not exist: it was aborted or completed meanwhile")
            value = checksums.digest(checksum) if checksum is not None else None
            old = await session.get(S3Part, (row.id, number))
            replaced = old.staged_key if old is not None and old.start is None else None
            if old is None:
                old = S3Part(upload_id=row.id, number=number)
                session.add(old)
            old.size, old.md5, old.staged_key, old.start = size, md5.hexdigest(), staged, start
            old.checksum, old.created_at = value, utcnow()
            await session.commit()
    finally:
        _writing.discard((row.id, number))
    if replaced:
        await store.delete(replaced)  # a part sent again: the newer one counts
    return Part(number, size, md5.hexdigest(), utcnow(), value)


async def _place(ctx: Context, row: S3Upload, number: int, length: int) -> int | None:
    """Where part ``number`` goes in the upload's one file, or None for a file of its own: the first part of at
    least 5 MiB sets the stride, a part of at most the stride goes to ``(number - 1) * stride``; one already there,
    or being written there, is not overwritten (a failed rewrite would spoil what its row names)."""
    key = (row.id, number)
    if key in _writing or row.id in _sealed:
        return None
    _writing.add(key)  # checked and taken with no await between: one writer per place
    try:
        async with ctx.catalog.session() as session:
            if length >= MIN_PART:
                await session.execute(update(S3Upload).where(S3Upload.id == row.id, S3Upload.stride.is_(None))
                                      .values(stride=length))
                await session.commit()
            stride = await session.scalar(select(S3Upload.stride).where(S3Upload.id == row.id))
            there = await session.scalar(select(S3Part.start).where(S3Part.upload_id == row.id,
                                                                    S3Part.number == number))
        if stride is None or length > stride or there is not None:
            _writing.discard(key)
            return None
        return (number - 1) * stride
    except BaseException:
        _writing.discard(key)
        raise


async def parts(ctx: Context, upload_id: str, after: int = 0, limit: int = 1000) -> list[Part]:
    async with ctx.catalog.session() as session:
        rows = (await session.scalars(select(S3Part).where(S3Part.upload_id == upload_id, S3Part.number > after)
                                      .order_by(S3Part.number).limit(limit))).all()
    return [Part(r.number, r.size, r.md5, r.created_at, r.checksum) for r in rows]


async def uploads(ctx: Context, dataset_id: int, limit: int = 1000) -> list[S3Upload]:
    async with ctx.catalog.session() as session:
        return list((await session.scalars(select(S3Upload).where(S3Upload.dataset_id == dataset_id,
                                                                  S3Upload.completed.is_(None))
                                           .order_by(S3Upload.key, S3Upload.created_at).limit(limit))).all())


async def complete(ctx: Context, row: S3Upload, asked: list[Asked], whole: str | None = None) -> Completed:
    """Puts the parts named in ``asked``, in that order, into the item at the upload's key. A part named twice
    counts once, as its last mention (S3: the last upload of a part wins). ``whole``: the object's checksum the
    client expects (the ``x-amz-checksum-*`` of the request), checked before the item is made: BadDigest."""
    if row.completed:
        return Completed(None, row.completed["etag"], row.completed.get("checksum"))
    if not asked:
        raise BadInput("You must specify at least one part")
    numbers = [a.number for a in asked]
    if numbers != sorted(numbers):
        raise InvalidPartOrder("The list of parts was not in ascending order. The parts list must be specified "
                               "in order by part number.")
    asked = list({a.number: a for a in asked}.values())  # the last of each number
    async with ctx.catalog.session() as session:
        # Every part of the upload (at most MAX_PARTS rows), not an IN of the asked numbers: a 10,000-part
        # manifest would be 10,000 bound parameters.
        rows = {p.number: p for p in (await session.scalars(
            select(S3Part).where(S3Part.upload_id == row.id))).all()}
    chosen: list[S3Part] = []
    for one in asked:
        part = rows.get(one.number)
        if part is None or one.etag.strip().strip('"').lower() != part.md5 or (
                one.checksum is not None and one.checksum.strip() != (part.checksum or "")):
            raise InvalidPart("One or more of the specified parts could not be found. The part may not have been "
                              "uploaded, or the specified entity tag may not match the part's entity tag.")
        chosen.append(part)
    for part in chosen[:-1]:
        if part.size < MIN_PART:
            raise EntityTooSmall("Your proposed upload is smaller than the minimum allowed object size: every part "
                                 "but the last must be at least 5 MiB")
    algorithm, kind = row.checksum_algorithm, row.checksum_type
    expected = None
    if algorithm and kind == checksums.COMPOSITE:
        expected = checksums.composite(algorithm, [p.checksum or "" for p in chosen])
        _check_whole(algorithm, whole, expected)
    full = checksums.CHECKSUMS[algorithm]() if algorithm and kind == checksums.FULL_OBJECT else None
    store = ctx.storage.public

    async def joined() -> AsyncIterator[bytes]:
        for part in chosen:
            where = ByteRange(part.start, part.start + part.size) if part.start is not None else None
            download = await store.get(part.staged_key, where)
            async for chunk in download.chunks:
                yield chunk

    settings = ctx.settings
    # No MD5 of the whole: the ETag is made of the parts' MD5s (bench/s3.py: a second MD5 per byte was 10% of it).
    hasher = Hasher(md5=False, also=(full,) if full is not None else ())
    in_place = store.features.in_place
    linked = in_place is not None and _in_order(row.id, chosen) and not any(u == row.id for u, _ in _writing)
    if linked:
        _sealed.add(row.id)  # with no await since the check: no part is being written in place now
    try:
        blob = None
        if in_place is not None and linked:
            # The parts lie in order in one file: read back once (from the page cache) to hash, then linked as
            # the object. Not a byte is written again (bench/s3.py: rewriting 1 GiB was half of a PutObject).
            total = sum(p.size for p in chosen)
            download = await store.get(data_key(row.id), ByteRange(0, total))
            try:
                blob = await adopt_blob(in_place, store, row.key, data_key(row.id), download.chunks,
                                        settings.upload_max_size, Limits.of(settings), hasher)
            except SharedFile:  # linked before by a completion cut short, with other parts: copy instead
                full = checksums.CHECKSUMS[algorithm]() if algorithm and full is not None else None
                hasher = Hasher(md5=False, also=(full,) if full is not None else ())
        if blob is None:
            blob = await store_blob(store, row.key, joined(), settings.upload_max_size, Limits.of(settings),
                                    hasher)
        return await _made(ctx, row, chosen, blob, whole, full, expected)
    finally:
        _sealed.discard(row.id)


async def _made(ctx: Context, row: S3Upload, chosen: list[S3Part], blob: Blob, whole: str | None, full: Any,
                expected: str | None) -> Completed:
    """The item made of the parts' bytes (``blob``), once its checksum is checked."""
    algorithm, kind = row.checksum_algorithm, row.checksum_type
    store = ctx.storage.public
    if full is not None:
        assert algorithm is not None
        expected = checksums.digest(full)
        try:
            _check_whole(algorithm, whole, expected)
        except BadDigest:
            await drop_staging(store, blob)  # the content object, if new, has no row: gc's to remove
            raise
    together = hashlib.md5(b"".join(bytes.fromhex(p.md5) for p in chosen), usedforsecurity=False).hexdigest()
    blob = replace(blob, md5=f"{together}-{len(chosen)}")
    checksum = {"algorithm": algorithm, "type": kind, "value": expected} if algorithm and kind and expected \
        else None
    s3: dict[str, Any] = {"parts": [[p.size, p.checksum] for p in chosen]}
    if checksum:
        s3["checksum"] = checksum
    _, item = await add_stored_item(ctx, row.dataset_id, row.key, blob, "replace", row.meta, s3)
    await _finish(ctx, row.id, {"etag": blob.md5, "checksum": checksum})
    return Completed(item, blob.md5 or "", checksum)


def _in_order(upload_id: str, chosen: list[S3Part]) -> bool:
    """Whether the parts are in the upload's one file back to back from its start: the object is then that file."""
    at = 0
    for part in chosen:
        if part.start != at or part.staged_key != data_key(upload_id):
            return False
        at += part.size
    return True


def _check_whole(algorithm: str, whole: str | None, computed: str) -> None:
    if whole is not None and whole.strip() != computed:
        raise BadDigest(f"The {algorithm.upper()} you specified did not match the calculated checksum.")


async def _finish(ctx: Context, upload_id: str, answer: dict[str, Any]) -> None:
    """The upload's parts removed, its row kept with the answer (a repeated completion gets it again)."""
    async with ctx.catalog.session() as session:
        keys = (await session.scalars(select(S3Part.staged_key).where(S3Part.upload_id == upload_id))).all()
        await session.execute(delete(S3Part).where(S3Part.upload_id == upload_id))
        found = await session.get(S3Upload, upload_id)
        if found is not None:
            found.completed = answer
        await session.commit()
    for key in set(keys):
        await ctx.storage.public.delete(key)


async def abort(ctx: Context, upload_id: str) -> None:
    await _drop(ctx, upload_id)


async def _drop(ctx: Context, upload_id: str) -> None:
    """The upload's row first (a part written after this is refused and removed by its writer), then its parts."""
    async with ctx.catalog.session() as session:
        keys = (await session.scalars(select(S3Part.staged_key).where(S3Part.upload_id == upload_id))).all()
        await session.execute(delete(S3Part).where(S3Part.upload_id == upload_id))
        await session.execute(delete(S3Upload).where(S3Upload.id == upload_id))
        await session.commit()
    for key in set(keys):
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
