"""``services/listing.py`` on SQLite and PostgreSQL: every listing equals a plain Python one over the same
names sorted by their UTF-8 bytes (S3's order), page by page, and a delimiter listing costs a seek per
common prefix, not a read of the names under it.

The PostgreSQL catalog is a database whose collation is ICU's ``en-US`` (``a`` < ``B``, punctuation
nearly ignored), not C: byte order there comes only from the listing's own ``COLLATE "C"``.
"""

from __future__ import annotations

import itertools
import os
import time
from collections.abc import AsyncIterator, Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, cast

import pytest
from sqlalchemy import Table, event, insert, text
from sqlalchemy.ext.asyncio import AsyncEngine

from cargohold.catalog.db import database_urls, migrate
from cargohold.catalog.models import Item, utcnow
from cargohold.errors import BadInput
from cargohold.services import items as items_svc
from cargohold.services.context import Context
from cargohold.services.listing import MAX_LIMIT, Page, list_names
from cargohold.settings import load_settings

from ..support.postgres import PostgresServer

_databases = itertools.count()

NAMES = [
    "a", "a/", "a/b", "a/b/c", "a/c", "a/c/", "a-b", "a0", "a//x", "ab", "B", "b/x", "b/y/z", "Team/x", "team/y",
    "a%b/c", "axb/c", "a_b", "aXb", "é", "é/1", "e/1", "éa", "日本/東京.jpg", "日本/大阪/x.png", "日本語.txt",
    "🐈/cat.gif", "🐈.gif", "\ufffd/x", "\ufffd", "\U00010000/y", "\U00010000", "\uffff", "z--a--b", "z--c", "z-",
    "z---d", "z--", "x\U0010ffffy/1", "x\U0010ffff", "\U0010ffff", "\U0010ffff/\U0010ffff", "\U0010ffff\U0010ffff",
    "\ud7ff/x", "\ud7ffz", "\ue000", "folder/é/x", "folder/e/x", "folder/E/x",
]
PREFIXES = ["", "a", "a/", "a%", "Team/", "é", "日本/", "z-", "\ud7ff", "\U0010ffff", "folder/"]
DELIMITERS = ["", "/", "--", "é", "\U0010ffff"]


def byte_order(names: Iterable[str]) -> list[str]:
    return sorted(names, key=lambda name: name.encode())


def reference(names: Iterable[str], prefix: str = "", delimiter: str = "", after: str = "") -> list[tuple[str, str]]:
    """Every entry S3 lists after ``after``, as ``(name, "item" | "prefix")``: names rolled up into their
    common prefix, once; an entry is listed when it sorts after ``after`` (a prefix before it was listed)."""
    entries: list[tuple[str, str]] = []
    for name in byte_order(set(names)):
        if not name.startswith(prefix):
            continue
        rest = name[len(prefix):]
        at = rest.find(delimiter) if delimiter else -1
        entry = (name, "item") if at < 0 else (prefix + rest[: at + len(delimiter)], "prefix")
        if entry[0].encode() > after.encode() and (not entries or entries[-1] != entry):
            entries.append(entry)
    return entries


def entries_of(page: Page) -> list[tuple[str, str]]:
    """The page's items and prefixes interleaved by name, checking that each list is in order itself."""
    names = [item.name for item in page.items]
    assert names == byte_order(names), names
    assert page.prefixes == byte_order(page.prefixes), page.prefixes
    return sorted([(n, "item") for n in names] + [(p, "prefix") for p in page.prefixes], key=lambda e: e[0].encode())


def icu_database(server: PostgresServer) -> str:
    name = f"listing_{next(_databases)}_{os.getpid()}"
    server.execute(server.url(), f"CREATE DATABASE {name} TEMPLATE template0 LOCALE_PROVIDER icu "
                                 "ICU_LOCALE 'en-US' LOCALE 'C.UTF-8'")
    return server.url(name)


@pytest.fixture(params=["sqlite", "postgres"])
async def ctx(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Context]:
    environ: dict[str, str] = {}
    if request.param == "postgres":
        environ["DATABASE_URL"] = icu_database(request.getfixturevalue("postgres_server"))
    ctx = await Context.open(load_settings(home=tmp_path, environ=environ), serve=False)
    try:
        yield ctx
    finally:
        await ctx.close()


async def dataset_of(ctx: Context, names: Iterable[str], dataset: str = "d") -> int:
    """A dataset holding ``names``, written as the links service writes a batch (Core executemany)."""
    dataset_id = (await items_svc.create_dataset(ctx, dataset)).dataset.id
    now = utcnow()
    rows = [{"dataset_id": dataset_id, "name": name, "kind": "file", "size": 1, "mime_type": "text/plain",
             "source": "stored", "sha256": "0" * 64, "created_at": now} for name in names]
    async with ctx.catalog.session() as session:
        for at in range(0, len(rows), 20_000):
            await session.execute(insert(cast(Table, Item.__table__)), rows[at : at + 20_000])
        await session.commit()
    return dataset_id


async def names_dataset(ctx: Context) -> int:
    """``NAMES``, beside another dataset whose names must never show."""
    await dataset_of(ctx, [*NAMES, "other/only"], dataset="other")
    return await dataset_of(ctx, NAMES)


async def every_page(ctx: Context, dataset_id: int, limit: int, **options: str) -> tuple[list[tuple[str, str]], int]:
    """The whole listing, page after page, each continuing after the last one's ``next_after``."""
    entries: list[tuple[str, str]] = []
    after = options.pop("after", "")
    for pages in itertools.count(1):
        page = await list_names(ctx, dataset_id, after=after, limit=limit, **options)
        got = entries_of(page)
        assert len(got) <= limit
        entries += got
        if not page.truncated:
            assert page.next_after is None
            return entries, pages
        assert len(got) == limit and page.next_after == got[-1][0]
        after = page.next_after
    raise AssertionError("unreachable")


@contextmanager
def statements(engine: AsyncEngine) -> Iterator[list[tuple[str, Any]]]:
    """The SQL statements run on ``engine`` inside the block, with their parameters as the driver got them."""
    seen: list[tuple[str, Any]] = []

    def count(conn: Any, cursor: Any, statement: str, parameters: Any, context: Any, executemany: bool) -> None:
        seen.append((statement, parameters))

    event.listen(engine.sync_engine, "before_cursor_execute", count)
    try:
        yield seen
    finally:
        event.remove(engine.sync_engine, "before_cursor_execute", count)


async def test_a_flat_listing_is_every_name_in_byte_order(ctx: Context) -> None:
    dataset_id = await names_dataset(ctx)
    page = await list_names(ctx, dataset_id)
    assert [item.name for item in page.items] == byte_order(NAMES)
    assert (page.prefixes, page.truncated, page.next_after) == ([], False, None)
    assert all(item.dataset_id == dataset_id and item.size is not None for item in page.items)  # whole rows
    # Byte order, not the database's collation, not UTF-16's: upper case first, U+FFFD before U+10000.
    names = [item.name for item in page.items]
    assert names.index("B") < names.index("a") < names.index("ab") < names.index("é")
    assert names.index("\ufffd") < names.index("\uffff") < names.index("\U00010000") < names.index("\U0010ffff")
    assert names.index("a-b") < names.index("a/") < names.index("a0")


async def test_a_prefix_is_exact_case_and_wildcards_included(ctx: Context) -> None:
    dataset_id = await names_dataset(ctx)
    assert [i.name for i in (await list_names(ctx, dataset_id, prefix="Team/")).items] == ["Team/x"]
    assert [i.name for i in (await list_names(ctx, dataset_id, prefix="a%")).items] == ["a%b/c"]
    assert [i.name for i in (await list_names(ctx, dataset_id, prefix="a_")).items] == ["a_b"]
    japan = await list_names(ctx, dataset_id, prefix="日本/")
    assert [i.name for i in japan.items] == ["日本/大阪/x.png", "日本/東京.jpg"]
    assert [i.name for i in (await list_names(ctx, dataset_id, prefix="\ud7ff")).items] == ["\ud7ff/x", "\ud7ffz"]
    assert (await list_names(ctx, dataset_id, prefix="nothing/")).items == []
    # A name equal to the prefix is listed: it starts with it.
    assert [i.name for i in (await list_names(ctx, dataset_id, prefix="a/c"))
            .items] == ["a/c", "a/c/"]


async def test_a_delimiter_rolls_names_up_into_common_prefixes(ctx: Context) -> None:
    dataset_id = await names_dataset(ctx)
    root = await list_names(ctx, dataset_id, delimiter="/")
    assert entries_of(root) == reference(NAMES, delimiter="/")
    assert {"a/", "b/", "Team/", "team/", "日本/", "🐈/", "folder/"} <= set(root.prefixes)
    assert {"a", "ab", "日本語.txt", "🐈.gif"} <= {i.name for i in root.items}
    folder = await list_names(ctx, dataset_id, prefix="a/", delimiter="/")
    assert [i.name for i in folder.items] == ["a/", "a/b", "a/c"]  # "a/", the folder's own name, is an item here
    assert folder.prefixes == ["a//", "a/b/", "a/c/"]
    assert (await list_names(ctx, dataset_id, prefix="folder/", delimiter="/")).prefixes == [
        "folder/E/", "folder/e/", "folder/é/"]


async def test_any_string_is_a_delimiter(ctx: Context) -> None:
    dataset_id = await names_dataset(ctx)
    dashes = await list_names(ctx, dataset_id, prefix="z", delimiter="--")
    assert entries_of(dashes) == [("z-", "item"), ("z--", "prefix")]
    inside = await list_names(ctx, dataset_id, prefix="z--", delimiter="--")
    assert entries_of(inside) == [("z--", "item"), ("z---d", "item"), ("z--a--", "prefix"), ("z--c", "item")]
    accents = await list_names(ctx, dataset_id, delimiter="é")
    assert {"é", "folder/é"} <= set(accents.prefixes) and "éa" not in {i.name for i in accents.items}
    for delimiter in DELIMITERS:
        listed = await list_names(ctx, dataset_id, delimiter=delimiter)
        assert entries_of(listed) == reference(NAMES, delimiter=delimiter), delimiter


async def test_after_inside_a_common_prefix_skips_it_and_after_it_continues(ctx: Context) -> None:
    dataset_id = await names_dataset(ctx)

    async def listed(after: str, prefix: str = "") -> list[tuple[str, str]]:
        page = await list_names(ctx, dataset_id, prefix=prefix, delimiter="/", after=after, limit=3)
        return entries_of(page)

    # "a/" sorts before "a/b": listed already, not again, and none of its names one by one.
    assert await listed("a/b") == [("a0", "item"), ("aXb", "item"), ("a_b", "item")]
    assert await listed("a/") == await listed("a/b") == await listed("a/zzz")
    assert await listed("a-b") == [("a/", "prefix"), ("a0", "item"), ("aXb", "item")]  # past an item
    assert await listed("a") == [("a%b/", "prefix"), ("a-b", "item"), ("a/", "prefix")]
    assert await listed("a/b", prefix="a/") == [("a/b/", "prefix"), ("a/c", "item"), ("a/c/", "prefix")]
    assert await listed("a/b/", prefix="a/") == [("a/c", "item"), ("a/c/", "prefix")]
    assert await listed("a", prefix="b/") == [("b/x", "item"), ("b/y/", "prefix")]  # before the prefix: all of it
    assert await listed("c", prefix="b/") == []  # past the prefix: none of it
    assert await listed("\U0010ffff/") == [("\U0010ffff\U0010ffff", "item")]


async def test_markers_as_s3_tests_expect_them(ctx: Context) -> None:
    """Ceph's s3-tests ``test_bucket_list_delimiter_prefix`` (written against AWS): a page ending in a
    common prefix continues after all of it, and ``max-keys`` counts prefixes with keys."""
    dataset_id = await dataset_of(ctx, ["asdf", "boo/bar", "boo/baz/xyzzy", "cquux/thud", "cquux/bla"])

    async def page(prefix: str, after: str, limit: int) -> tuple[bool, list[str], list[str], str | None]:
        got = await list_names(ctx, dataset_id, prefix=prefix, delimiter="/", after=after, limit=limit)
        return got.truncated, [i.name for i in got.items], got.prefixes, got.next_after

    assert await page("", "", 1) == (True, ["asdf"], [], "asdf")
    assert await page("", "asdf", 1) == (True, [], ["boo/"], "boo/")
    assert await page("", "boo/", 1) == (False, [], ["cquux/"], None)
    assert await page("", "", 2) == (True, ["asdf"], ["boo/"], "boo/")
    assert await page("", "boo/", 2) == (False, [], ["cquux/"], None)
    assert await page("boo/", "", 1) == (True, ["boo/bar"], [], "boo/bar")
    assert await page("boo/", "boo/bar", 1) == (False, [], ["boo/baz/"], None)
    assert await page("boo/", "", 2) == (False, ["boo/bar"], ["boo/baz/"], None)


async def test_pages_continue_exactly_and_equal_one_listing(ctx: Context) -> None:
    """Every prefix, delimiter and page size, paged to the end; and a page from every entry's name."""
    dataset_id = await names_dataset(ctx)
    for prefix, delimiter in itertools.product(PREFIXES, DELIMITERS):
        options = {"prefix": prefix, "delimiter": delimiter}
        expected = reference(NAMES, prefix, delimiter)
        whole = await list_names(ctx, dataset_id, **options)
        assert entries_of(whole) == expected, options
        for limit in (1, 2, 5):
            entries, pages = await every_page(ctx, dataset_id, limit, **options)
            assert entries == expected, (options, limit)
            assert pages == max(1, -(-len(expected) // limit)), (options, limit)  # no empty page at the end
        for after in {e[0] for e in expected} | {prefix, prefix + "a/zz", prefix + "\U0010ffff"}:
            page = await list_names(ctx, dataset_id, after=after, limit=2, **options)
            later = reference(NAMES, prefix, delimiter, after)
            assert entries_of(page) == later[:2], (options, after)
            assert page.truncated == (len(later) > 2), (options, after)


async def test_limit_zero_lists_nothing_untruncated_and_limit_one_lists_one(ctx: Context) -> None:
    dataset_id = await names_dataset(ctx)
    nothing = await list_names(ctx, dataset_id, delimiter="/", limit=0)
    assert nothing == Page([], [], truncated=False, next_after=None)  # as S3 answers max-keys=0
    first = byte_order(NAMES)[0]
    one = await list_names(ctx, dataset_id, limit=1)
    assert ([i.name for i in one.items], one.truncated, one.next_after) == ([first], True, first)
    folder = await list_names(ctx, dataset_id, prefix="a/", delimiter="/", after="a/", limit=1)
    assert (folder.prefixes, folder.truncated, folder.next_after) == (["a//"], True, "a//")
    last = await list_names(ctx, dataset_id, prefix="b/", delimiter="/", after="b/x", limit=1)
    assert (last.prefixes, last.truncated, last.next_after) == (["b/y/"], False, None)
    with pytest.raises(BadInput):
        await list_names(ctx, dataset_id, limit=-1)
    assert len((await list_names(ctx, dataset_id, limit=MAX_LIMIT + 5)).items) == len(NAMES)  # cut to MAX_LIMIT


async def test_the_root_of_a_big_dataset_costs_a_seek_per_folder(ctx: Context) -> None:
    """200,000 names in 4 folders: the root's delimiter listing runs a query per folder, one to find nothing
    after the last, and one to load its items, each scan an index seek (no table scan, no sort); a page
    inside a folder is a scan and a load."""
    folders = ["cars/", "cats/", "dogs/", "日本/"]
    names = [f"{folder}{n:06d}.jpg" for folder in folders for n in range(50_000)] + ["README.md"]
    dataset_id = await dataset_of(ctx, names)
    postgres = not ctx.catalog.urls.is_sqlite
    if postgres:  # as autovacuum does after a bulk load: the planner learns the table's size
        async with ctx.catalog.engine.connect() as conn:
            await conn.execute(text("ANALYZE items"))
            await conn.commit()
    started = time.perf_counter()
    with statements(ctx.catalog.engine) as run:
        root = await list_names(ctx, dataset_id, delimiter="/")
    took = time.perf_counter() - started
    assert (root.prefixes, [i.name for i in root.items], root.truncated) == (folders, ["README.md"], False)
    assert len(run) == len(folders) + 2, run
    print(f"\n{ctx.catalog.urls.async_url.get_backend_name()}: the root of 200,000 names in {len(run)} queries, "
          f"{took * 1000:.1f} ms")
    async with ctx.catalog.engine.connect() as conn:
        explain = "EXPLAIN " if postgres else "EXPLAIN QUERY PLAN "
        for statement, parameters in run[:-1]:  # the scans; the last loads README.md by id
            rows = (await conn.exec_driver_sql(explain + statement, parameters)).all()
            plan = "\n".join(" ".join(str(column) for column in row) for row in rows)
            assert "Sort" not in plan and "TEMP B-TREE" not in plan, plan
            assert "ix_items_dataset_name_bytes" in plan if postgres else "SEARCH items USING" in plan, plan
    with statements(ctx.catalog.engine) as run:
        page = await list_names(ctx, dataset_id, prefix="dogs/", delimiter="/", after="dogs/000100.jpg")
    assert len(run) == 2 and len(page.items) == MAX_LIMIT and page.truncated
    assert page.items[0].name == "dogs/000101.jpg" and page.next_after == "dogs/001100.jpg"
    with statements(ctx.catalog.engine) as run:
        tail = await list_names(ctx, dataset_id, prefix="cats/", after="cats/049990.jpg")
    assert len(run) == 2 and len(tail.items) == 9 and not tail.truncated


def test_the_postgresql_index_sorts_bytes(postgres_server: PostgresServer, tmp_path: Path) -> None:
    """``alembic check`` compares an index's columns, not their collation: the collation is checked here."""
    url = icu_database(postgres_server)
    migrate(database_urls(load_settings(home=tmp_path, environ={"DATABASE_URL": url})))
    rows = postgres_server.execute(url, "SELECT pg_get_indexdef('ix_items_dataset_name_bytes'::regclass)")
    assert rows == [('CREATE INDEX ix_items_dataset_name_bytes ON public.items USING btree (dataset_id, name '
                     'COLLATE "C")',)]
