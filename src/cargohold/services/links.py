"""Adding links to a dataset: files that stay in their bucket, folder or web server.

Entries come as a stream (a links file being uploaded, or a JSON list) and are handled in batches:
each link's bucket picks its connection, links are verified concurrently unless told not to (it
exists; size and ETag; an image's MIME and size from a ranged read of its first bytes), then each
batch is written in one transaction. A link already in the dataset is left as it is, so adding the
same file twice adds nothing twice. Nothing is ever written to, moved in or deleted from the
linked storage.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Any, cast

import re2
from sqlalchemy import Table, insert, select

from ..catalog.models import Dataset, Item, is_row_id, utcnow
from ..catalog.sql import starts_with
from ..errors import BadInput, CargoholdError, NotFound, RangeNotSatisfiable
from ..media import Limits
from ..media.probe import HEAD_SIZE, TAIL_SIZE, TIFF_MAGIC, Probe, guess_type, probe, probe_name
from ..media.video import probe_ranged
from ..storage import ByteRange, Download, ObjectMeta
from ..storage.links_file import Entry, Refused
from ..storage.uris import Link, ObjectLink, UrlLink, parse_link, parse_prefix
from . import access
from .access import Scope
from .context import Context
from .items import Conflict, check_name, free_name

BATCH = 2000
VERIFY_CONCURRENCY = 32
HEAD_READ = 64 * 1024
"""Bytes read from the start of a linked file to learn an image's format and size."""
BIG_HEAD_READ = HEAD_SIZE
"""Read when the first bytes were not enough (a JPEG with a large EXIF block)."""


FILTER_MAX_LENGTH = 1000
"""Characters of a sync filter."""
FILTER_MAX_MEM = 8 * 2**20
"""RE2's memory for one compiled filter; a pattern whose automaton needs more is refused."""
FILTER_INLINE = 64
"""Keys matched on the event loop; a larger page of keys is matched in a thread."""
KeyFilter = Callable[[str], object]
"""A compiled filter's ``search``: None when the key does not match."""


MAX_REPORTED = 10_000
"""Refused lines listed one by one in a report; past that only counted (a file of garbage must not
make an answer of gigabytes)."""


@dataclass
class LinkReport:
    added: int = 0
    unchanged: int = 0
    renamed: int = 0
    replaced: int = 0
    skipped: int = 0
    refused: list[Refused] = field(default_factory=list)
    refused_count: int = 0

    def refuse(self, refused: Refused) -> None:
        self.refused_count += 1
        if len(self.refused) < MAX_REPORTED:
            self.refused.append(refused)

    def as_dict(self) -> dict[str, Any]:
        return {
            "added": self.added, "unchanged": self.unchanged, "renamed": self.renamed, "replaced": self.replaced,
            "skipped": self.skipped, "refused_count": self.refused_count,
            "refused": [{"line": r.line, "url": as_text(r.url), "reason": r.reason} for r in self.refused],
        }


def as_text(text: str) -> str:
    """``text`` with what is no UTF-8 (a file name's bytes, as ``os.scandir`` gives them) as U+FFFD."""
    try:
        text.encode()
        return text
    except UnicodeEncodeError:
        return text.encode(errors="surrogateescape").decode(errors="replace")


@dataclass
class _Checked:
    entry: Entry
    name: str
    size: int | None = None
    etag: str | None = None
    probe: Probe | None = None


async def open_link(ctx: Context, link: Link, byte_range: ByteRange | None = None) -> Download:
    if isinstance(link, UrlLink):
        return await ctx.http_links.get(link.url, byte_range)
    _, store = await ctx.connections.store_for(link.provider, link.bucket)
    return await store.get(link.key, byte_range)


async def head_link(ctx: Context, link: Link) -> ObjectMeta:
    if isinstance(link, UrlLink):
        return await ctx.http_links.head(link.url)
    _, store = await ctx.connections.store_for(link.provider, link.bucket)
    return await store.head(link.key)




async def _verify(ctx: Context, checked: _Checked, limits: Limits) -> None:
    link = checked.entry.link
    guessed = guess_type(checked.name) or ""
    if guessed.startswith("video/"):
        meta = checked.entry.meta or await head_link(ctx, link)
        checked.size, checked.etag, checked.probe = meta.size, meta.etag, probe_name(checked.name)
        if meta.size:  # read in place, by ranges: the index and one frame, never the whole video
            async def fetch(start: int, end: int) -> bytes:
                return await (await open_link(ctx, link, ByteRange(start, end))).read()

            info, fetched = await probe_ranged(fetch, meta.size, checked.name, limits)
            ctx.metrics.video_read_bytes.labels(link.provider if isinstance(link, ObjectLink) else "https").inc(fetched)
            checked.probe = replace(checked.probe, width=info.width, height=info.height, video=info.as_json())
        return
    if guessed and not guessed.startswith("image/"):
        meta = checked.entry.meta or await head_link(ctx, link)
        checked.size, checked.etag, checked.probe = meta.size, meta.etag, probe_name(checked.name)
        return
    # One ranged GET tells the object's size and ETag as well as its first bytes: no HEAD needed,
    # half the round trips of head-then-read (bench/links.py).
    try:
        download = await open_link(ctx, link, ByteRange(0, HEAD_READ))
        head = await download.read()
        meta = download.meta
    except RangeNotSatisfiable:  # an empty object
        meta, head = await head_link(ctx, link), b""
    checked.size, checked.etag = meta.size, meta.etag
    found = probe(checked.name, head, limits.pixels)
    if found.kind != "image" and guessed.startswith("image/") and (meta.size or 0) > HEAD_READ:
        head = await (await open_link(ctx, link, ByteRange(0, BIG_HEAD_READ))).read()
        tail = b""
        if head.startswith(TIFF_MAGIC) and meta.size > BIG_HEAD_READ:  # libtiff writes the header last
            tail = await (await open_link(ctx, link, ByteRange.last(TAIL_SIZE))).read()
        found = probe(checked.name, head, limits.pixels, tail, meta.size)
    checked.probe = found


async def add_links(
    ctx: Context,
    dataset_id: int,
    entries: AsyncIterator[Entry | Refused],
    *,
    verify: bool = True,
    conflict: Conflict = "rename",
    progress: Callable[[int], None] | None = None,
) -> LinkReport:
    async with ctx.catalog.session() as session:
        if not is_row_id(dataset_id) or await session.get(Dataset, dataset_id) is None:
            raise NotFound(f"no dataset with id {dataset_id}")
    report = LinkReport()
    batch: list[Entry] = []
    # One batch is written while the next is read and parsed; batches still go in order, each after
    # the one before has committed, so name clashes across batches are seen.
    writing: asyncio.Task[None] | None = None

    async def written() -> None:
        nonlocal writing
        if writing is not None:
            task, writing = writing, None
            await task

    def write(entries_: list[Entry]) -> asyncio.Task[None]:
        async def run() -> None:
            await _add_batch(ctx, dataset_id, entries_, verify, conflict, report)
            if progress:
                progress(len(entries_))
        return asyncio.create_task(run())

    try:
        async for parsed in entries:
            if isinstance(parsed, Refused):
                report.refuse(parsed)
                continue
            batch.append(parsed)
            if len(batch) >= BATCH:
                await written()
                writing, batch = write(batch), []
        await written()
        if batch:
            writing = write(batch)
            await written()
    finally:
        if writing is not None:
            writing.cancel()
            with contextlib.suppress(BaseException):
                await writing
    report.refused.sort(key=lambda r: r.line)
    return report


async def _add_batch(
    ctx: Context, dataset_id: int, batch: list[Entry], verify: bool, conflict: Conflict, report: LinkReport
) -> None:
    checked: list[_Checked] = []
    connected: dict[tuple[str, str], str | None] = {}  # (provider, bucket) → why not, once per batch
    for entry in batch:
        try:
            link = entry.link
            # The item's name, given or taken from the key or the URL, follows every item name's rules: a key
            # that could not be one (a control, bidi or line-separator character) is refused unless named.
            named_by_key = entry.name is None and isinstance(link, ObjectLink)
            name = check_name(entry.name or link.default_name, "object key" if named_by_key else "item name")
            if isinstance(link, ObjectLink):
                where = (link.provider, link.bucket)
                if where not in connected:
                    try:
                        await ctx.connections.store_for(*where)
                        connected[where] = None
                    except CargoholdError as exc:
                        connected[where] = exc.message
                if connected[where] is not None:
                    report.refuse(Refused(entry.line, link.uri, connected[where] or ""))
                    continue
            known = entry.meta
            checked.append(_Checked(entry, name, known.size if known else None, known.etag if known else None))
        except CargoholdError as exc:
            report.refuse(Refused(entry.line, entry.link.uri, exc.message))
    if verify:
        gate = asyncio.Semaphore(VERIFY_CONCURRENCY)

        timeout = ctx.settings.cache_fetch_timeout

        async def one(c: _Checked) -> _Checked | None:
            async with gate:
                try:
                    # Bounded: a store that does not answer refuses the line, it does not hold the batch.
                    async with asyncio.timeout(timeout):
                        await _verify(ctx, c, Limits.of(ctx.settings))
                    return c
                except TimeoutError:
                    report.refuse(Refused(c.entry.line, c.entry.link.uri,
                                          f"no answer from its store within {timeout:g} s (CACHE_FETCH_TIMEOUT); "
                                          "nothing was added for it"))
                except CargoholdError as exc:
                    report.refuse(Refused(c.entry.line, c.entry.link.uri, exc.message))
                return None

        checked = [c for c in await asyncio.gather(*(one(c) for c in checked)) if c is not None]
    await _write(ctx, dataset_id, checked, conflict, report)


ETAG_MAX = 255
"""The ``etag`` column's size. Cloud stores' ETags are short; a web server may send anything."""


def short_etag(etag: str | None) -> str | None:
    """The ETag to keep in the catalog: none when it does not fit (PostgreSQL refuses a longer value).
    Only shown, never compared: serving asks the linked object for its current version."""
    return etag if etag is not None and len(etag) <= ETAG_MAX else None


def _row(dataset_id: int, c: _Checked, name: str, now: datetime) -> dict[str, Any]:
    found = c.probe or probe_name(name)
    return {
        "dataset_id": dataset_id, "name": name, "kind": found.kind, "size": c.size, "sha256": None,
        "etag": short_etag(c.etag), "mime_type": found.mime_type, "width": found.width, "height": found.height,
        "source": "link", "uri": c.entry.link.uri, "created_at": now, "video": found.video,
    }


async def _write(
    ctx: Context, dataset_id: int, checked: list[_Checked], conflict: Conflict, report: LinkReport
) -> None:
    if not checked:
        return
    async with ctx.catalog.session() as session:
        uris = list({c.entry.link.uri for c in checked})
        linked: set[str] = set()
        for pos in range(0, len(uris), 500):
            found = await session.scalars(
                select(Item.uri).where(Item.dataset_id == dataset_id, Item.uri.in_(uris[pos : pos + 500]))
            )
            linked.update(u for u in found if u is not None)
        report.unchanged += sum(1 for c in checked if c.entry.link.uri in linked)
        checked = [c for c in checked if c.entry.link.uri not in linked]
        names = {c.name for c in checked}
        existing: dict[str, tuple[int, str | None]] = {}
        name_list = list(names)
        for pos in range(0, len(name_list), 500):
            rows = await session.execute(
                select(Item.name, Item.id, Item.uri)
                .where(Item.dataset_id == dataset_id, Item.name.in_(name_list[pos : pos + 500]))
            )
            existing.update({r.name: (r.id, r.uri) for r in rows})
        new_rows: list[dict[str, Any]] = []
        now = utcnow()
        for c in checked:
            taken = existing.get(c.name)
            if taken is None:
                new_rows.append(_row(dataset_id, c, c.name, now))
                existing[c.name] = (0, c.entry.link.uri)
                report.added += 1
            elif taken[1] == c.entry.link.uri:
                report.unchanged += 1
            elif conflict == "skip":
                report.skipped += 1
            elif conflict == "replace" and taken[0]:
                item = await session.get(Item, taken[0])
                assert item is not None
                for key, value in _row(dataset_id, c, c.name, now).items():
                    if key not in ("dataset_id", "name", "created_at"):
                        setattr(item, key, value)
                existing[c.name] = (taken[0], c.entry.link.uri)
                report.replaced += 1
                ctx.memo.forget(taken[0])
            else:
                name = await free_name(session, dataset_id, c.name, also_taken=existing)
                new_rows.append(_row(dataset_id, c, name, now))
                existing[name] = (0, c.entry.link.uri)
                report.renamed += 1
        if new_rows:
            # Core, not the ORM's bulk insert: a million links spend their time here.
            await session.execute(insert(cast(Table, Item.__table__)), new_rows)
        await session.commit()


async def json_entries(links: list[str | tuple[str, str | None]]) -> AsyncIterator[Entry | Refused]:
    """Entries from ``{"links": [...]}``: a URL, or ``(url, name)``; numbered from 1 as a file would be."""
    for number, raw in enumerate(links, start=1):
        url, name = (raw, None) if isinstance(raw, str) else raw
        try:
            yield Entry(number, parse_link(url), name)
        except CargoholdError as exc:
            yield Refused(number, url, exc.message)


@dataclass
class SyncReport:
    links: LinkReport
    listed: int = 0
    removed: list[str] = field(default_factory=list)
    removed_count: int = 0

    def as_dict(self) -> dict[str, Any]:
        return {**self.links.as_dict(), "listed": self.listed, "removed_count": self.removed_count,
                "removed": self.removed}


def key_filter(pattern: str | None) -> KeyFilter | None:
    """A sync filter compiled by RE2: matching takes time linear in the key, whatever the pattern. What RE2
    cannot run in linear time (backreferences, lookaround) is refused, with RE2's reason."""
    if not pattern:
        return None
    if len(pattern) > FILTER_MAX_LENGTH:
        raise BadInput(f"filter: longer than {FILTER_MAX_LENGTH} characters")
    options = re2.Options()
    options.log_errors = False
    options.max_mem = FILTER_MAX_MEM
    try:
        return cast(KeyFilter, re2.compile(pattern, options).search)
    except re2.error as exc:
        reason = exc.args[0].decode(errors="replace") if exc.args and isinstance(exc.args[0], bytes) else str(exc)
        raise BadInput(f"filter: not a regular expression RE2 can run in linear time: {reason} (backreferences "
                       "and lookaround are not supported; see docs/LINKS.md)") from None


async def matching(wanted: KeyFilter | None, keys: Sequence[str]) -> list[bool]:
    """Which keys the filter finds a match in; a large batch in a thread, off the event loop."""
    if wanted is None:
        return [True] * len(keys)

    def found(key: str) -> bool:
        try:
            return wanted(key) is not None
        except UnicodeEncodeError:  # RE2 takes UTF-8: a key that is none is matched as it is shown
            return wanted(as_text(key)) is not None

    def run() -> list[bool]:
        return [found(key) for key in keys]

    return run() if len(keys) <= FILTER_INLINE else await asyncio.to_thread(run)


async def sync_prefix(
    ctx: Context, dataset_id: int, source: str, pattern: str | None, *, verify: bool = False,
    conflict: Conflict = "rename", scope: Scope | None = None,
) -> SyncReport:
    """Register every object under a prefix as a link. Run again, it adds only new keys, and reports
    the links whose objects are gone (nothing is deleted: not in the bucket, not in the catalog)."""
    base = parse_prefix(source)
    prefix = base.prefix
    wanted = key_filter(pattern)
    named, store = await ctx.connections.store_for(base.provider, base.bucket)
    if scope is not None:  # None: the CLI on the catalog itself, the operator's
        access.require(scope, "write", dataset=dataset_id, connection=named.name)
    report = SyncReport(LinkReport())
    # 8-byte digests, not the keys: a million-object prefix costs tens of MB here, never a list of keys.
    listed: set[int] = set()

    async def entries() -> AsyncIterator[Entry | Refused]:
        async for page in store.list(prefix):
            for meta, wanted_key in zip(page, await matching(wanted, [m.key for m in page]), strict=True):
                if not wanted_key:
                    continue
                report.listed += 1
                link = ObjectLink(base.scheme, base.provider, base.bucket, meta.key)
                listed.add(_digest(link.uri))
                yield Entry(report.listed, link, meta=meta)

    report.links = await add_links(ctx, dataset_id, entries(), verify=verify, conflict=conflict)
    start = f"{base.scheme}://{base.bucket}/" + (f"{prefix}/" if prefix else "")
    after = 0
    while True:
        async with ctx.catalog.session() as session:
            rows = (await session.execute(
                select(Item.id, Item.uri).where(Item.dataset_id == dataset_id, Item.source == "link",
                                                starts_with(Item.uri, start), Item.id > after)
                .order_by(Item.id).limit(5000)
            )).all()
        if not rows:
            break
        after = rows[-1].id
        gone = [row.uri for row in rows if row.uri and _digest(row.uri) not in listed]
        keys = [uri[len(f"{base.scheme}://{base.bucket}/"):] for uri in gone]
        for uri, wanted_key in zip(gone, await matching(wanted, keys), strict=True):
            if wanted_key:
                report.removed_count += 1
                if len(report.removed) < 1000:
                    report.removed.append(uri)
    return report


def _digest(uri: str) -> int:
    return int.from_bytes(hashlib.blake2b(uri.encode(errors="surrogateescape"), digest_size=8).digest(), "big")
