"""Connections as the API and the web UI see them: list, create or change, delete, test, browse.

File connections (``remote_links.yml``) are read-only here. A server folder (``fs``) may be connected
only under the operator's ``LINKS_FS_ROOTS``. Secrets are write-only: no answer holds
one, and a change that omits one keeps the stored value. Text a provider sends back (a test's
error) has every secret of the connection masked out before it leaves.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from ..catalog.connections import SECRET_FIELDS, CatalogConnections
from ..errors import AlreadyExists, BadInput, CargoholdError, FieldProblem, NotFound, Unsupported
from ..storage import ByteRange, Store
from ..storage.base import FolderPage
from ..storage.connections import PROVIDERS, NamedConnection, fields_of
from .context import Context

TEST_TIMEOUT = 20.0
"""Seconds a test of one bucket may take (an endpoint that does not answer is retried by the library)."""


def catalog_connections(ctx: Context) -> CatalogConnections:
    return CatalogConnections.of(ctx.catalog, ctx.secret, ctx.settings)


async def _file_connection(ctx: Context, name: str) -> NamedConnection | None:
    for named in await ctx.connections.all():
        if named.name == name and named.origin == "file":
            return named
    return None


async def _refuse_file_connection(ctx: Context, name: str) -> None:
    named = await _file_connection(ctx, name)
    if named is not None:
        raise AlreadyExists(f"connection {name!r} is defined in {ctx.connections.file_path} (line {named.line}) and "
                            "is read-only here; change it in that file")


async def put_connection(ctx: Context, name: str, body: Mapping[str, Any]) -> tuple[NamedConnection, bool]:
    """Create or replace a catalog connection from the fields in ``body`` (those given; a secret left out
    keeps its stored value when the provider stays the same). Returns it and whether it is new."""
    ctx.connections.invalidate()  # check against what every replica wrote, not what this one read 2 s ago
    await _refuse_file_connection(ctx, name)
    provider = body.get("provider")
    if provider not in PROVIDERS:
        raise BadInput(f"provider: {provider!r} is not one of {', '.join(PROVIDERS)}")
    values: dict[str, Any] = {"provider": provider}
    for field, value in body.items():
        if field == "provider" or value is None or value == "":
            continue
        if field == "credentials_json" and isinstance(value, dict):
            value = json.dumps(value)
        values[field] = value
    rows = catalog_connections(ctx)
    old = await rows.fields(name)
    if old is not None and old.provider == provider and old.secrets is not None:
        for field in SECRET_FIELDS:
            if field not in body and field in old.secrets and field in fields_of(provider, "catalog"):
                values[field] = old.secrets[field]
    try:
        named = rows.make(name, values)
    except FieldProblem as exc:
        raise BadInput(f"{exc.field or 'connection'}: {exc.problem}. Fix: {exc.fix}") from None
    for other in await ctx.connections.all():
        if other.name == name or other.provider != named.provider:
            continue
        shared = [b for b in named.buckets if b in other.buckets]
        if shared:
            where = f"in {ctx.connections.file_path}" if other.origin == "file" else "made in the API"
            raise AlreadyExists(f"bucket {shared[0]!r} is listed by connection {other.name!r} ({where}) already; "
                                f"connection {name!r} cannot list it too: a link's bucket picks one connection")
    settings = {k: v for k, v in values.items() if k not in SECRET_FIELDS and k != "provider"}
    created = await rows.save(named, settings, {k: v for k, v in values.items() if k in SECRET_FIELDS})
    ctx.connections.invalidate()
    return await ctx.connections.get(name), created


async def delete_connection(ctx: Context, name: str) -> None:
    ctx.connections.invalidate()
    await _refuse_file_connection(ctx, name)
    if not await catalog_connections(ctx).delete(name):
        raise NotFound(f"no connection is called {name!r}")
    ctx.connections.invalidate()


@dataclass(frozen=True)
class BucketCheck:
    bucket: str
    list: bool
    read: bool | None
    """None: the bucket is empty, so nothing could be read."""
    error: str | None


def scrub(text: str, secrets: list[str]) -> str:
    """``text`` with every secret (and each line of a multi-line one, such as a private key) masked."""
    for secret in secrets:
        for part in [secret, *(line.strip() for line in secret.splitlines())]:
            if len(part) >= 8:
                text = text.replace(part, "****")
    return text


async def check_connection(ctx: Context, name: str) -> list[BucketCheck]:
    """Per bucket: can it be listed (one page), can its first object be read (a head and one byte)."""
    named = await ctx.connections.get(name)
    return list(await asyncio.gather(*(_test_bucket(ctx, named, bucket) for bucket in named.buckets)))


async def _test_bucket(ctx: Context, named: NamedConnection, bucket: str) -> BucketCheck:
    listed = False
    try:
        async with asyncio.timeout(TEST_TIMEOUT):
            store = await ctx.connections.store(named, bucket)
            first = await _first_object(store)
            listed = True
            if first is None:
                return BucketCheck(bucket, True, None, None)
            meta = await store.head(first)
            if meta.size:
                await (await store.get(first, ByteRange(0, 1))).read()
        return BucketCheck(bucket, True, True, None)
    except TimeoutError:
        error = f"no answer within {TEST_TIMEOUT:.0f} s"
    except CargoholdError as exc:
        error = exc.message
    except Exception as exc:  # a diagnosis: whatever a library raised is reported, not a 500
        error = f"{type(exc).__name__}: {(str(exc).splitlines() or [''])[0]}"
    return BucketCheck(bucket, listed, False, scrub(error, named.secrets()))


async def _first_object(store: Store) -> str | None:
    async for page in store.list("", page_size=1):
        if page:
            return page[0].key
    return None


async def browse(ctx: Context, name: str, bucket: str | None, prefix: str, cursor: str | None,
                 limit: int) -> tuple[str, FolderPage]:
    """One page of one folder level of one of the connection's buckets (the only one when ``bucket`` is None)."""
    named = await ctx.connections.get(name)
    if bucket is None:
        if len(named.buckets) != 1:
            raise BadInput(f"bucket: connection {name!r} lists {len(named.buckets)} buckets; name one of "
                           f"{', '.join(named.buckets)}")
        bucket = named.buckets[0]
    store = await ctx.connections.store(named, bucket)
    folders = store.features.folders
    if folders is None:
        raise Unsupported(f"{named.provider} stores cannot be browsed folder by folder")
    return bucket, await folders.list_folder(prefix, cursor, limit)
