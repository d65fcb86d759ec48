"""Where an item's original is, and in which version: on local disk (own storage on ``http``, an
``fs://`` link: read in place) or on a remote (own storage on S3/Azure/GCS, an ``s3://``, ``azure://``,
``google://``, ``https://`` link), and the errors a reader sees of that remote (502, 504).

The version goes into every cache key: the SHA-256 of a stored item (its bytes cannot change under the
same key), the ETag of a linked object (one HEAD, trusted for ``CACHE_LINKS_REVALIDATE``), or the size
and modification time of a linked file. A linked object whose store cannot say its version is served
in the version last seen (stale-if-error).
"""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TypeVar

from ...errors import BackendUnavailable, BadGateway, GatewayTimeout, NotFound, StoreTimeout
from ...storage import ByteRange, Download
from ...storage.uris import ObjectLink, parse_link
from .. import items as items_svc
from .. import links as links_svc
from ..blobs import content_key
from ..context import Context
from ..memo import ItemView

Getter = Callable[[ByteRange | None], Awaitable[Download]]
T = TypeVar("T")


@dataclass
class Original:
    cache_key: str  # "<where>@<version>"
    size: int
    last_modified: datetime
    path: Path | None  # on local disk: read in place
    get: Getter | None  # on a remote
    provider: str
    etag: str | None = None  # a linked object's, to check a read resumed after a fault is of the same version


async def remote(provider: str, call: Awaitable[T], timeout: float) -> T:  # noqa: ASYNC109 - a setting
    """A call to a remote, with the errors a reader of the cache should see: 502 when it cannot be
    reached or answers an error, 504 when it says nothing in time."""
    try:
        async with asyncio.timeout(timeout):
            return await call
    except TimeoutError:
        raise GatewayTimeout(f"the {provider} store sent nothing for {timeout:g} s (CACHE_FETCH_TIMEOUT)") from None
    except StoreTimeout as exc:
        raise GatewayTimeout(f"the {provider} store did not answer: {exc.message}") from exc
    except BackendUnavailable as exc:
        raise BadGateway(f"the {provider} store is unreachable: {exc.message}") from exc


async def item_view(ctx: Context, item_id: int) -> ItemView:
    view = ctx.memo.items.get(item_id)
    if view is None:
        view = ItemView.of(await items_svc.get_item(ctx, item_id))
        ctx.memo.items.put(item_id, view)
    return view


async def original(ctx: Context, item: ItemView) -> Original:
    if item.source == "link" and item.uri:
        return await _linked(ctx, item)
    sha = item.sha256 or ""
    memo_key = f"{item.id}:{sha}"
    known = ctx.memo.originals.get(memo_key)  # content never changes under its key
    if known is not None:
        return known
    key = content_key(sha)
    store = ctx.storage.public
    path = None
    if store.features.local_paths:
        path = store.local_path(key)
        if path is None:
            raise NotFound(f"the bytes of item {item.id} are missing from storage (key {key})")

    async def get(byte_range: ByteRange | None) -> Download:
        return await store.get(key, byte_range)

    found = Original(f"stored:{sha}@{sha}", item.size or 0, item.created_at, path, None if path else get,
                     ctx.settings.storage_provider)
    ctx.memo.originals.put(memo_key, found)
    return found


async def _linked(ctx: Context, item: ItemView) -> Original:
    assert item.uri is not None
    link = parse_link(item.uri)
    if isinstance(link, ObjectLink):
        _, store = await ctx.connections.store_for(link.provider, link.bucket)
        if store.features.local_paths:  # a server folder: read in place; its version is the file's own stat
            path = store.local_path(link.key)  # None when missing, or a link leading out of the folder
            try:
                st = path.stat() if path is not None else None
            except FileNotFoundError:
                st = None
            if path is None or st is None:
                raise NotFound(f"the linked file {item.uri} no longer exists")
            version = f"{st.st_size}-{st.st_mtime_ns}"
            return Original(f"link:{item.uri}@{version}", st.st_size, datetime.fromtimestamp(st.st_mtime, UTC),
                            path, None, link.provider)
        provider = link.provider
    else:
        provider = "https"
    last_key = f"link-last:{item.uri}"
    meta = ctx.link_versions.get(item.uri)
    if meta is None:
        try:
            meta = await remote(provider, links_svc.head_link(ctx, link), ctx.settings.cache_fetch_timeout)
        except (BadGateway, GatewayTimeout) as exc:
            last = ctx.memo.originals.get(last_key)
            if last is None:
                raise
            return _stale(last, exc)
        ctx.link_versions.put(item.uri, meta)
    linked = link

    async def get(byte_range: ByteRange | None) -> Download:
        return await links_svc.open_link(ctx, linked, byte_range)

    version = meta.etag or f"{meta.size}-{meta.last_modified.timestamp() if meta.last_modified else 0}"
    found = Original(f"link:{item.uri}@{version}", meta.size, meta.last_modified or item.created_at, None, get,
                     provider, meta.etag)
    ctx.memo.originals.put(last_key, found)
    return found


def _stale(last: Original, error: BadGateway | GatewayTimeout) -> Original:
    """The version a linked object had when last asked, while its store cannot say its current one (as
    nginx's ``proxy_cache_use_stale error timeout``): what the cache holds of it is served; anything
    that needs the store fails at once with the store's error, without asking it a second time."""

    async def unreachable(byte_range: ByteRange | None) -> Download:
        raise type(error)(error.message)

    return dataclasses.replace(last, get=unreachable)
