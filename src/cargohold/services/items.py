"""Datasets and their items in the catalog."""

from __future__ import annotations

import base64
import binascii
from collections.abc import Container, Sequence
from dataclasses import dataclass
from pathlib import PurePosixPath
from typing import Any, Literal

from sqlalchemy import RowMapping, delete, func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from ..catalog.models import MAX_ID, Dataset, Item, is_row_id, utcnow
from ..catalog.sql import starts_with
from ..errors import AlreadyExists, BadInput, InvalidKey, NotFound
from ..storage.base import check_new_key, hidden_character
from .blobs import Blob, content_key, drop_staging, ensure_content
from .bucket_names import bucket_for
from .context import Context
from .listing import list_names
from .locks import content_guard

Conflict = Literal["rename", "skip", "replace"]
Moved = Literal["moved", "renamed", "replaced", "skipped", "unchanged"]
CONFLICTS: tuple[Conflict, ...] = ("rename", "skip", "replace")


@dataclass(frozen=True)
class DatasetInfo:
    dataset: Dataset
    item_count: int
    total_size: int


FOLDER = "folder"
"""The ``source`` of an empty folder's row (its name ends in ``/``): what an S3 client's folder marker, a
zero-byte key ending in ``/``, is kept as. No bytes, never an item: lists, counts and content routes skip it;
the listing primitive (services/listing.py) shows it where S3 would."""


def check_name(name: str, what: str = "item name") -> str:
    """An item's name: a key (``check_key``) without control, bidi or line-separator characters, checked
    before anything of an upload is stored (docs/API.md, "Names and paths")."""
    try:
        return check_new_key(name, segments=False)  # no key of its own: items are stored by content
    except InvalidKey as exc:
        raise BadInput(exc.message.replace("object key", what)) from None


async def create_dataset(ctx: Context, name: str) -> DatasetInfo:
    name = name.strip()
    if not name or len(name) > 255 or "/" in name or any(ord(c) < 32 or c == "\x7f" for c in name):
        raise BadInput("a dataset name is 1 to 255 characters, without '/' or control characters")
    if hidden := hidden_character(name):
        raise BadInput(f"dataset name {name!r} has {hidden}: control, bidi and line-separator characters change "
                       "how a name is shown without showing themselves")
    for _ in range(3):  # another dataset may take the bucket name derived here meanwhile: derive again
        async with ctx.catalog.session() as session:
            if await session.scalar(select(Dataset.id).where(Dataset.name == name)) is not None:
                raise AlreadyExists(f"a dataset named {name!r} exists")
            dataset = Dataset(name=name, bucket=bucket_for(name, await _buckets_like(session, name)))
            session.add(dataset)
            try:
                await session.commit()
            except IntegrityError:
                continue
            return DatasetInfo(dataset, 0, 0)
    raise AlreadyExists(f"a dataset named {name!r} exists")


async def _buckets_like(session: AsyncSession, name: str) -> set[str]:
    """The bucket names a name derived from ``name`` could collide with: those starting as it would."""
    stem = bucket_for(name, ())
    rows = await session.scalars(select(Dataset.bucket).where(starts_with(Dataset.bucket, stem)))
    return {b for b in rows.all() if b}


async def _info(session: AsyncSession, datasets: Sequence[Dataset]) -> list[DatasetInfo]:
    ids = [d.id for d in datasets]
    stats: dict[int, tuple[int, int]] = {}
    if ids:
        rows = await session.execute(
            select(Item.dataset_id, func.count(Item.id), func.coalesce(func.sum(Item.size), 0))
            .where(Item.dataset_id.in_(ids), Item.source != FOLDER).group_by(Item.dataset_id)
        )
        stats = {row[0]: (int(row[1]), int(row[2] or 0)) for row in rows}
    return [DatasetInfo(d, *stats.get(d.id, (0, 0))) for d in datasets]


async def list_datasets(ctx: Context) -> list[DatasetInfo]:
    async with ctx.catalog.session() as session:
        datasets = (await session.scalars(select(Dataset).order_by(Dataset.name))).all()
        return await _info(session, datasets)


def _no_dataset(dataset_id: int) -> NotFound:
    return NotFound(f"no dataset with id {dataset_id}")


def _no_item(item_id: int) -> NotFound:
    return NotFound(f"no item with id {item_id}")


async def require_dataset(ctx: Context, dataset_id: int) -> None:
    """NotFound unless the dataset exists: one primary-key lookup, where ``get_dataset`` also counts its items
    (a scan of a large dataset, which a request that only needs it to exist must not pay)."""
    if not is_row_id(dataset_id):
        raise _no_dataset(dataset_id)
    async with ctx.catalog.session() as session:
        if await session.get(Dataset, dataset_id) is None:
            raise _no_dataset(dataset_id)


async def get_dataset(ctx: Context, dataset_id: int) -> DatasetInfo:
    if not is_row_id(dataset_id):
        raise _no_dataset(dataset_id)
    async with ctx.catalog.session() as session:
        dataset = await session.get(Dataset, dataset_id)
        if dataset is None:
            raise _no_dataset(dataset_id)
        return (await _info(session, [dataset]))[0]


async def find_dataset(ctx: Context, id_or_name: str) -> DatasetInfo:
    """A dataset by id or by name, as the CLI takes it."""
    async with ctx.catalog.session() as session:
        dataset = await session.scalar(select(Dataset).where(Dataset.name == id_or_name))
        if dataset is None and id_or_name.isdigit() and is_row_id(int(id_or_name)):
            dataset = await session.get(Dataset, int(id_or_name))
        if dataset is None:
            raise NotFound(f"no dataset named {id_or_name!r}")
        return (await _info(session, [dataset]))[0]


async def delete_dataset(ctx: Context, dataset_id: int) -> None:
    if not is_row_id(dataset_id):
        raise _no_dataset(dataset_id)
    async with ctx.catalog.session() as session:
        dataset = await session.get(Dataset, dataset_id)
        if dataset is None:
            raise _no_dataset(dataset_id)
        await session.execute(delete(Item).where(Item.dataset_id == dataset_id))
        await session.delete(dataset)
        await session.commit()
    ctx.memo.forget()


def encode_cursor(last_id: int) -> str:
    return base64.urlsafe_b64encode(str(last_id).encode()).decode().rstrip("=")


def decode_cursor(cursor: str | None) -> int:
    if not cursor:
        return 0
    try:
        after = int(base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode())
    except (ValueError, binascii.Error, UnicodeDecodeError):
        after = -1
    if not 0 <= after <= MAX_ID:  # not a row id: not a cursor given out here
        raise BadInput("the cursor is not one this server gave out")
    return after


async def list_items(
    ctx: Context, dataset_id: int, limit: int, cursor: str | None, name: str | None = None
) -> tuple[list[RowMapping], str | None]:
    """One page of a dataset's items, in id order; ``name`` keeps those whose name contains it (any
    case). Rows, not ORM objects: a page is read-only, and skipping the identity map halves the time
    of a 100-row page."""
    if not 1 <= limit <= 1000:
        raise BadInput("limit must be between 1 and 1000")
    after = decode_cursor(cursor)
    if not is_row_id(dataset_id):
        raise _no_dataset(dataset_id)
    query = select(*Item.__table__.columns).where(Item.dataset_id == dataset_id, Item.id > after,
                                                  Item.source != FOLDER)
    if name:
        escaped = name.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
        query = query.where(Item.name.ilike(f"%{escaped}%", escape="\\"))
    async with ctx.catalog.session() as session:
        result = await session.execute(query.order_by(Item.id).limit(limit + 1))
        rows = list(result.mappings().all())
        if not rows and await session.get(Dataset, dataset_id) is None:
            raise _no_dataset(dataset_id)
    more = len(rows) > limit
    rows = rows[:limit]
    return rows, encode_cursor(rows[-1]["id"]) if more and rows else None


NAME_CURSOR = "n:"
"""What starts a name-ordered listing's cursor (a folder's), inside its base64: an id cursor is digits."""


async def list_folder(ctx: Context, dataset_id: int, prefix: str, delimiter: str, limit: int,
                      cursor: str | None) -> tuple[list[Any], list[str], str | None]:
    """One page of the items and folders whose names start with ``prefix``, in name order (UTF-8 bytes, as
    S3 lists): with a ``delimiter``, the names holding it after the prefix come as their folder, once
    (``services/listing.list_names``: a page costs a page, a folder one index seek). Empty folders' rows are
    folders, never items. Returns rows, folders, and the next page's cursor."""
    if not 1 <= limit <= 1000:
        raise BadInput("limit must be between 1 and 1000")
    after = ""
    if cursor:
        try:
            text = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
        except (ValueError, binascii.Error, UnicodeDecodeError):
            text = ""
        if not text.startswith(NAME_CURSOR):
            raise BadInput("the cursor is not one this server gave out for a listing by prefix or delimiter")
        after = text.removeprefix(NAME_CURSOR)
    await require_dataset(ctx, dataset_id)
    page = await list_names(ctx, dataset_id, prefix=prefix, delimiter=delimiter, after=after, limit=limit)
    items = [row for row in page.items if row.source != FOLDER]
    next_cursor = None
    if page.truncated and page.next_after is not None:
        next_cursor = base64.urlsafe_b64encode((NAME_CURSOR + page.next_after).encode()).decode().rstrip("=")
    return items, page.prefixes, next_cursor


async def get_item(ctx: Context, item_id: int) -> Item:
    if not is_row_id(item_id):
        raise _no_item(item_id)
    async with ctx.catalog.session() as session:
        item = await session.get(Item, item_id)
        if item is None or item.source == FOLDER:
            raise _no_item(item_id)
        return item


async def existing_item_ids(ctx: Context, item_ids: list[int]) -> set[int]:
    item_ids = [i for i in item_ids if is_row_id(i)]
    if not item_ids:
        return set()
    async with ctx.catalog.session() as session:
        rows = await session.scalars(select(Item.id).where(Item.id.in_(item_ids)))
        return set(rows)


async def find_item_remembered(ctx: Context, dataset_id: int, name: str) -> Item | None:
    """``find_item``, remembered for ``memo.ITEM_TTL`` as the token route remembers items: a GET of an object
    costs no query when it was found just before. A change through this process forgets it at once; another
    replica's change is seen within that (behind nginx, a key's requests all go to one replica)."""
    known: Item | None = ctx.memo.names.get((dataset_id, name))
    if known is not None:
        return known
    found = await find_item(ctx, dataset_id, name)
    if found is not None:
        ctx.memo.names.put((dataset_id, name), found)
    return found


async def find_item(ctx: Context, dataset_id: int, name: str) -> Item | None:
    if not is_row_id(dataset_id):
        return None
    async with ctx.catalog.session() as session:
        return await session.scalar(select(Item).where(Item.dataset_id == dataset_id, Item.name == name))


async def delete_item(ctx: Context, item_id: int) -> None:
    if not is_row_id(item_id):
        raise _no_item(item_id)
    async with ctx.catalog.session() as session:
        item = await session.get(Item, item_id)
        if item is None:
            raise _no_item(item_id)
        await session.delete(item)
        await session.commit()
    ctx.memo.forget(item_id)


async def move_item(ctx: Context, item_id: int, name: str | None, dataset_id: int | None,
                    conflict: Conflict = "rename") -> tuple[Moved, Item]:
    """The item renamed (``name``) and/or moved to another dataset (``dataset_id``): its row changes, no bytes
    move (stored content is shared by SHA-256; a linked file stays where it is). A name taken at the target
    is settled as an upload's is: ``rename`` to ``name (1).ext``, ``skip`` (nothing changes), ``replace``
    (the item there is deleted: its stored bytes are left to gc, a linked file is never touched). Returns
    (moved|renamed|replaced|skipped|unchanged, item)."""
    if name is not None:
        name = check_name(name)
        if name.endswith("/"):
            raise BadInput(f"an item's name does not end in '/' (that is a folder): {name!r}")
    if dataset_id is not None and not is_row_id(dataset_id):
        raise _no_dataset(dataset_id)
    if not is_row_id(item_id):
        raise _no_item(item_id)
    for _attempt in range(100):
        async with ctx.catalog.session() as session:
            item = await session.get(Item, item_id)
            if item is None or item.source == FOLDER:
                raise _no_item(item_id)
            target_ds = dataset_id if dataset_id is not None else item.dataset_id
            target = name if name is not None else item.name
            if (target_ds, target) == (item.dataset_id, item.name):
                return "unchanged", item
            if target_ds != item.dataset_id and await session.get(Dataset, target_ds) is None:
                raise _no_dataset(target_ds)
            existing = await session.scalar(select(Item).where(Item.dataset_id == target_ds, Item.name == target))
            status: Moved = "moved"
            if existing is not None:
                if conflict == "skip":
                    return "skipped", item
                if conflict == "replace":
                    replaced = existing.id
                    await session.delete(existing)
                    await session.flush()
                    status = "replaced"
                else:
                    status, target = "renamed", await free_name(session, target_ds, target)
            item.dataset_id, item.name = target_ds, target
            try:
                await session.commit()
            except IntegrityError:
                continue  # another request took the name between our look and our write
            ctx.memo.forget(item_id)
            if status == "replaced":
                ctx.memo.forget(replaced)
            return status, item
    raise AlreadyExists(f"could not find a free name for {name!r}")


def _numbered(name: str, n: int) -> str:
    path = PurePosixPath(name)
    suffix = "".join(path.suffixes[-1:])
    stem = path.name[: -len(suffix)] if suffix else path.name
    return str(path.with_name(f"{stem} ({n}){suffix}"))


async def add_stored_item(
    ctx: Context, dataset_id: int, name: str, blob: Blob, conflict: Conflict, meta: dict[str, str] | None = None,
    s3: dict[str, Any] | None = None,
) -> tuple[str, Item]:
    """The catalog row for bytes already stored; returns (created|renamed|replaced|skipped, item). ``meta``
    and ``s3``: what the S3 endpoint keeps with an object (``Item.meta``, ``Item.s3``).

    The row is committed under the content guard, after checking its content object is there: a gc
    on another replica cannot delete it in between (``blobs.ensure_content``)."""
    if not is_row_id(dataset_id):
        raise _no_dataset(dataset_id)
    try:
        return await _add_stored_item(ctx, dataset_id, name, blob, conflict, meta, s3)
    finally:
        await drop_staging(ctx.storage.public, blob)


async def _add_stored_item(
    ctx: Context, dataset_id: int, name: str, blob: Blob, conflict: Conflict, meta: dict[str, str] | None,
    s3: dict[str, Any] | None,
) -> tuple[str, Item]:
    for _attempt in range(100):
        async with ctx.catalog.session() as session:
            if await session.get(Dataset, dataset_id) is None:
                raise _no_dataset(dataset_id)
            existing = await session.scalar(select(Item).where(Item.dataset_id == dataset_id, Item.name == name))
            status, target = "created", name
            if existing is not None:
                if conflict == "skip":
                    return "skipped", existing
                if conflict == "replace":
                    _fill(existing, blob)
                    existing.meta, existing.s3 = meta, s3
                    async with content_guard(ctx.catalog, session, shared=True):
                        await ensure_content(ctx.storage.public, blob)
                        await session.commit()
                    ctx.memo.forget(existing.id)
                    return "replaced", existing
                status, target = "renamed", await free_name(session, dataset_id, name)
            item = Item(dataset_id=dataset_id, name=target, source="stored")
            _fill(item, blob)
            item.meta, item.s3 = meta, s3
            session.add(item)
            try:
                async with content_guard(ctx.catalog, session, shared=True):
                    await ensure_content(ctx.storage.public, blob)
                    await session.commit()
            except IntegrityError:
                continue  # a concurrent upload took the name between our look and our write
            return status, item
    raise AlreadyExists(f"could not find a free name for {name!r}")


async def add_folder(ctx: Context, dataset_id: int, name: str) -> Item:
    """The empty folder ``name`` (``a/b/``) of the dataset, made if it is not there."""
    if not name.endswith("/") or not name.strip("/"):
        raise BadInput(f"a folder's name ends in '/' and names something: {name!r}")
    check_name(name.rstrip("/"), "folder name")
    async with ctx.catalog.session() as session:
        found = await session.scalar(select(Item).where(Item.dataset_id == dataset_id, Item.name == name))
        if found is not None:
            return found
        folder = Item(dataset_id=dataset_id, name=name, kind=FOLDER, source=FOLDER, size=0,
                      md5="d41d8cd98f00b204e9800998ecf8427e", mime_type="application/x-directory")
        session.add(folder)
        try:
            await session.commit()
        except IntegrityError:  # made meanwhile
            await session.rollback()
            found = await session.scalar(select(Item).where(Item.dataset_id == dataset_id, Item.name == name))
            assert found is not None
            return found
        return folder


COPIED = ("kind", "size", "sha256", "md5", "etag", "mime_type", "width", "height", "source", "uri", "meta",
          "video")
"""What a copy of an item takes from it: everything but where it is and when it was made."""


async def copy_item(ctx: Context, source: Item, dataset_id: int, name: str, *, meta: dict[str, str] | None = None,
                    replace_meta: bool = False) -> Item:
    """A new row (or the row named ``name``, replaced) for the same content as ``source``: stored content is
    deduplicated, so no byte is written; a linked item's copy links the same object."""
    for _attempt in range(3):
        async with ctx.catalog.session() as session:
            if await session.get(Dataset, dataset_id) is None:
                raise _no_dataset(dataset_id)
            target = await session.scalar(select(Item).where(Item.dataset_id == dataset_id, Item.name == name))
            if target is None:
                target = Item(dataset_id=dataset_id, name=name)
                session.add(target)
            for column in COPIED:
                setattr(target, column, getattr(source, column))
            # A copy is one piece: its source's parts are not its own, a whole-object checksum is.
            checksum = (source.s3 or {}).get("checksum")
            target.s3 = {"checksum": checksum} if checksum and checksum.get("type") == "FULL_OBJECT" else None
            if replace_meta:  # S3's MetadataDirective=REPLACE
                target.meta = meta
            target.created_at = utcnow()
            try:
                # As an upload does: the content object must still be there once the row is committed.
                async with content_guard(ctx.catalog, session, shared=True):
                    if source.source == "stored" and source.sha256:
                        await ctx.storage.public.head(content_key(source.sha256))
                    await session.commit()
            except IntegrityError:
                continue  # the name was taken meanwhile: replace that one
            ctx.memo.forget(target.id)
            return target
    raise AlreadyExists(f"could not write {name!r}: it changed three times while being copied")


def _fill(item: Item, blob: Blob) -> None:
    item.size = blob.size
    item.sha256 = blob.sha256
    item.md5 = blob.md5
    item.etag = None
    item.uri = None
    item.source = "stored"
    item.kind = blob.probe.kind
    item.mime_type = blob.probe.mime_type
    item.width = blob.probe.width
    item.height = blob.probe.height
    item.video = blob.probe.video


async def free_name(
    session: AsyncSession, dataset_id: int, name: str, also_taken: Container[str] = ()
) -> str:
    """``name (1).ext``, ``name (2).ext``...: the first free in the dataset and not in ``also_taken``
    (names a caller is about to write in the same transaction)."""
    for n in range(1, 10_000):
        candidate = _numbered(name, n)
        if candidate in also_taken:
            continue
        taken = await session.scalar(select(Item.id).where(Item.dataset_id == dataset_id, Item.name == candidate))
        if taken is None:
            return candidate
    raise AlreadyExists(f"too many items named like {name!r}")
