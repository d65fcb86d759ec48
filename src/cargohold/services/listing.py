"""A dataset's items listed by prefix and delimiter, in S3's order: the one listing that the S3 endpoint
(ListObjects v1 and v2) and the web UI's folders use.

Names are listed in UTF-8 byte order, as S3 lists keys: SQLite compares text by its bytes, PostgreSQL
compares ``COLLATE "C"`` (whatever the database's collation), seeking ``ix_items_dataset_name_bytes``.
Python's ``str`` comparison is code-point order, which is the same order, so bounds are worked out here.

A listing costs a page, not a dataset: it scans ids and names in batches, each query starting where the
last stopped, a common prefix costing one seek past every name that starts with it (``_above_all``),
never a read of them; then the page's items are loaded by id, in one query.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import ColumnElement, Row, Select, collate, select
from sqlalchemy.ext.asyncio import AsyncSession

from ..catalog.models import Item
from ..errors import BadInput
from .context import Context

MAX_LIMIT = 1000
"""The most entries (items and common prefixes) one page holds: S3's ``max-keys`` cap."""
_LAST_CHAR = 0x10FFFF
_SURROGATES = range(0xD800, 0xE000)
"""Code points that are no characters: no UTF-8 text holds them, so no bound may be one."""


@dataclass(frozen=True)
class Page:
    items: list[Row[Any]]
    """Catalog rows, in name order, with the ``items`` table's columns as attributes (``.name``, ``.size``...):
    read-only rows, not ORM objects, which were a third of a 1,000-key listing's time (bench/s3.py's profile)."""
    prefixes: list[str]
    """Common prefixes, each ending with the delimiter, in order; by name they interleave with ``items``."""
    truncated: bool
    next_after: str | None
    """When ``truncated``: the last name or prefix of the page, the ``after`` of the next (S3's NextMarker,
    the continuation token's content); None otherwise."""


@dataclass(frozen=True)
class _From:
    name: str
    inclusive: bool


def _above_all(prefix: str) -> str | None:
    """The least string above every string that starts with ``prefix``; None when none is (``prefix`` is
    only U+10FFFF). Exact: a name sorts below it if and only if it sorts below ``prefix`` or starts with it."""
    while prefix:
        code = ord(prefix[-1]) + 1
        if code <= _LAST_CHAR:
            return prefix[:-1] + chr(_SURROGATES.stop if code in _SURROGATES else code)
        prefix = prefix[:-1]
    return None


def _common_prefix(name: str, prefix: str, delimiter: str) -> str | None:
    """The common prefix ``name`` is rolled up into: up to the first delimiter after ``prefix``; None: none."""
    if not delimiter:
        return None
    at = name.find(delimiter, len(prefix))
    return None if at < 0 else name[: at + len(delimiter)]


def _first(prefix: str, delimiter: str, after: str) -> _From | None:
    """Where the listing starts; None: at the dataset's first name. Raises ``LookupError`` when nothing
    can follow ``after``."""
    if after < prefix or not after:  # code-point order: UTF-8 byte order
        return _From(prefix, True) if prefix else None
    if after.startswith(prefix) and (common := _common_prefix(after, prefix, delimiter)) is not None:
        # ``after`` is inside a common prefix, which sorts before it and so was listed already: the
        # names it stands for are not listed one by one, nor is it listed again (S3, moto, Ceph's RGW).
        above = _above_all(common)
        if above is None:
            raise LookupError
        return _From(above, True)
    return _From(after, False)


def _batch(dataset_id: int, name: ColumnElement[str], start: _From | None, stop: str | None,
           size: int) -> Select[int, str]:
    query = select(Item.id, Item.name).where(Item.dataset_id == dataset_id)
    if start is not None:
        query = query.where(name >= start.name if start.inclusive else name > start.name)
    if stop is not None:
        query = query.where(name < stop)
    return query.order_by(name).limit(size)


@dataclass
class _Scan:
    """What a page lists: its items' ids and names, and its common prefixes, in order."""

    items: list[tuple[int, str]] = field(default_factory=list)
    prefixes: list[str] = field(default_factory=list)
    last: str = ""

    @property
    def count(self) -> int:
        return len(self.items) + len(self.prefixes)


async def _scan(session: AsyncSession, dataset_id: int, name: ColumnElement[str], start: _From | None,
                stop: str | None, prefix: str, delimiter: str, limit: int) -> tuple[_Scan, bool]:
    """The page's entries, and whether more follow. Ids and names only: the names a batch reads past a
    common prefix's first (when it ends inside one) are cheap, and no row is built for them."""
    page = _Scan()
    size = limit + 1  # one more than fits tells whether the page is truncated
    while True:
        rows = (await session.execute(_batch(dataset_id, name, start, stop, size))).all()
        produced = 0
        skipping: str | None = None
        for item_id, item_name in rows:
            if skipping is not None and item_name.startswith(skipping):
                continue  # read in the same batch as its common prefix
            if page.count == limit:
                return page, True
            produced += 1
            common = _common_prefix(item_name, prefix, delimiter)
            if common is None:
                page.items.append((item_id, item_name))
                page.last, skipping, start = item_name, None, _From(item_name, False)
                continue
            page.prefixes.append(common)
            above = _above_all(common)
            if above is None:  # nothing sorts after it: the rest of the batch starts with it
                return page, False
            page.last, skipping, start = common, common, _From(above, True)
        if len(rows) < size:  # the range holds nothing after these rows
            return page, False
        # A batch that ended inside a common prefix read some of its names for nothing: the next reads
        # twice what this one gave, so a run of common prefixes costs a row or two each; batches of
        # items double, to the page's end.
        size = min(limit - page.count + 1, 2 * (produced if skipping is not None else size))


async def list_names(ctx: Context, dataset_id: int, *, prefix: str = "", delimiter: str = "", after: str = "",
                     limit: int = MAX_LIMIT) -> Page:
    """The items and common prefixes after ``after`` (exclusive) whose names start with ``prefix``, at most
    ``limit`` of them together (more are cut to ``MAX_LIMIT``). With a ``delimiter`` (any string), the names
    that hold it after the prefix are given as their common prefix, up to and including the delimiter, once.
    ``limit`` 0 lists nothing and is not truncated, as S3 answers ``max-keys=0``. A dataset that does not
    exist lists nothing: the caller has found it."""
    if limit < 0:
        raise BadInput(f"a listing's limit is 0 or more, not {limit}")
    limit = min(limit, MAX_LIMIT)
    try:
        start = _first(prefix, delimiter, after)
    except LookupError:
        return Page([], [], truncated=False, next_after=None)
    if limit == 0:
        return Page([], [], truncated=False, next_after=None)
    # Strings starting with ``prefix`` are exactly those in [prefix, _above_all(prefix)): a range is exact
    # and an index seeks it, where LIKE 'prefix%' (catalog.sql.starts_with) is a filter on these indexes.
    stop = _above_all(prefix) if prefix else None
    name: ColumnElement[str] = Item.name.expression if ctx.catalog.urls.is_sqlite else collate(Item.name, "C")
    async with ctx.catalog.session() as session:
        page, truncated = await _scan(session, dataset_id, name, start, stop, prefix, delimiter, limit)
        loaded: dict[int, Row[Any]] = {}
        if page.items:
            query = select(*Item.__table__.columns).where(Item.id.in_([item_id for item_id, _ in page.items]))
            loaded = {row.id: row for row in (await session.execute(query)).all()}
    # In the scan's order (sorting again costs more than the load); one deleted or renamed since is left out.
    items = [item for item_id, item_name in page.items
             if (item := loaded.get(item_id)) is not None and item.name == item_name]
    return Page(items, page.prefixes, truncated, page.last if truncated else None)
