"""The ``Store`` protocol over obstore (S3-compatible stores and Azure Blob).

obstore signs and sends every request; this module only shapes its calls and translates its
errors into cargohold's. Creating a bucket is not an object-store operation, so each provider
module passes in its own ``create_bucket`` (done with that provider's SDK), and what only one provider
has (S3's unfinished multipart uploads and copies in parts, Azure's SAS signing) the same way.

obstore (object_store underneath) cannot hold every key a bucket may: one with a control character or an
empty, ``.`` or ``..`` segment fails the whole page of a listing it is in. The provider module passes in a
listing by its SDK (``list_keys``), which takes keys as they are, and ``list`` goes on with it from there.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import replace
from datetime import datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

import obstore
import obstore.exceptions as obx

from ..errors import (
    BackendUnavailable,
    CargoholdError,
    Forbidden,
    InvalidKey,
    NotFound,
    RangeNotSatisfiable,
    StoreTimeout,
)
from .base import (
    CHUNK_SIZE,
    META_TIMEOUT,
    PART_SIZE,
    ByteRange,
    Data,
    Download,
    Features,
    FolderEntries,
    FolderPage,
    ObjectMeta,
    Unfinished,
    chain,
    check_key,
    folder_prefix,
    page_after,
    peek,
)

if TYPE_CHECKING:
    from obstore.store import AzureStore, S3Store

    RawStore = S3Store | AzureStore

CreateBucket = Callable[[], Awaitable[None]]
ListUnfinished = Callable[[datetime, bool], Awaitable[Unfinished]]
LargeCopy = Callable[[str, str], Awaitable[None]]
SignUrl = Callable[[str, timedelta], Awaitable[str]]
ListKeys = Callable[[str, str | None, int], AsyncIterator[list[ObjectMeta]]]
"""``(folder, after, page_size)``: pages of the objects under ``folder`` (``""`` or ending in ``/``) whose
keys sort after ``after``, keys as the provider holds them."""


# obstore reports these as generic errors; the provider's own code in the body says what they are.
_MISSING_BUCKET = ("<Code>NoSuchBucket</Code>", "ContainerNotFound")
_REFUSED = ("<Code>AccessDenied</Code>", "<Code>InvalidAccessKeyId</Code>", "<Code>SignatureDoesNotMatch</Code>",
            "AuthenticationFailed", "AuthorizationFailure", "403 Forbidden")


@contextlib.contextmanager
def translated(what: str) -> Iterator[None]:
    """Turn obstore's errors into cargohold's, naming what was being done."""
    try:
        yield
    except CargoholdError:
        raise
    except (obx.NotFoundError, FileNotFoundError) as exc:
        raise NotFound(f"{what}: not found") from exc
    except obx.UnauthenticatedError as exc:
        # obstore turns any exception of our credential provider (imds.py) into this class and
        # keeps only its text: an unreachable metadata service is an outage, not refused keys.
        if f"{BackendUnavailable.__name__}:" in str(exc):
            raise BackendUnavailable(f"{what}: {_first_line(exc)}") from exc
        raise Forbidden(f"{what}: the credentials are refused ({_first_line(exc)})") from exc
    except (obx.PermissionDeniedError, PermissionError) as exc:
        raise Forbidden(f"{what}: the credentials are refused ({_first_line(exc)})") from exc
    except obx.InvalidPathError as exc:
        raise InvalidKey(f"{what}: {_first_line(exc)}") from exc
    except obx.BaseError as exc:
        text = str(exc)
        if any(marker in text for marker in _MISSING_BUCKET):
            raise NotFound(f"{what}: the bucket does not exist") from exc
        if any(marker in text for marker in _REFUSED):
            raise Forbidden(f"{what}: the credentials are refused ({_first_line(exc)})") from exc
        if "Range" in text and ("416" in text or "not satisfiable" in text.lower() or "InvalidRange" in text):
            raise RangeNotSatisfiable(f"{what}: the range is outside the object") from exc
        if any(marker in text for marker in _TIMED_OUT):
            raise StoreTimeout(f"{what}: no answer in time ({_first_line(exc)})") from exc
        raise BackendUnavailable(f"{what}: {_first_line(exc)}") from exc


# reqwest's timeouts, as obstore's debug text shows them (its message says only "error sending request").
_TIMED_OUT = ("kind: Timeout", "TimedOut", "operation timed out")


def _first_line(exc: BaseException) -> str:
    """The message without obstore's "Debug source:" dump (a struct over many lines)."""
    lines = []
    for line in str(exc).splitlines():
        if line.strip().startswith("Debug source"):
            break
        if line.strip():
            lines.append(line.strip())
    return " ".join(lines[:3])[:500] if lines else type(exc).__name__


def meta_client_options(allow_http: bool) -> dict[str, Any]:
    """obstore client and retry options for the metadata store (``ObstoreStore(meta=...)``): each
    request bounded by ``META_TIMEOUT``, retried only within it."""
    return {
        "client_options": {"allow_http": allow_http, "connect_timeout": f"{META_TIMEOUT:g}s",
                           "timeout": f"{META_TIMEOUT:g}s"},
        "retry_config": {"max_retries": 3, "retry_timeout": timedelta(seconds=META_TIMEOUT)},
    }


def _meta(raw: Any) -> ObjectMeta:
    return ObjectMeta(key=raw["path"], size=raw["size"], etag=raw.get("e_tag"), last_modified=raw.get("last_modified"))


class ObstoreStore:
    def __init__(
        self,
        raw: RawStore,
        *,
        name: str,
        provider: str,
        create_bucket: CreateBucket,
        sign_url: SignUrl | None = None,
        suffix_ranges: bool = True,
        unfinished: ListUnfinished | None = None,
        large_copy: tuple[int, LargeCopy] | None = None,
        list_keys: ListKeys | None = None,
        meta: RawStore | None = None,
    ) -> None:
        """``meta``: the same bucket with short time limits (``meta_client_options``), for HEAD, listings
        and DELETE; ``raw`` keeps long ones for data, whose time grows with its size. ``unfinished``: the
        provider's interrupted uploads (S3); without it the store has no ``features.unfinished``.
        ``large_copy``: (size limit, copy) for objects a rename cannot copy in one request. ``list_keys``:
        the provider SDK's listing, for the rest of a listing once obstore met a key it cannot parse."""
        self.raw = raw
        self.meta = meta if meta is not None else raw
        self.name = name
        self.provider = provider
        self._create_bucket = create_bucket
        self._sign_url = sign_url
        self._suffix_ranges = suffix_ranges
        self._unfinished = unfinished
        self._large_copy = large_copy
        self._list_keys = list_keys
        features = Features.of(self)
        self.features = features if unfinished is not None else replace(features, unfinished=None)

    async def ensure_bucket(self, create: bool = True) -> None:
        try:
            await self._probe_list()
        except NotFound:
            if not create:
                raise NotFound(f"bucket {self.name!r} does not exist") from None
            await self._create_bucket()
            await self._probe_list()

    async def _probe_list(self) -> None:
        with translated(f"list bucket {self.name!r}"):
            stream = obstore.list(self.meta, chunk_size=1)
            async for _page in stream:
                break

    async def head(self, key: str) -> ObjectMeta:
        with translated(f"{self.name}/{check_key(key)}"):
            return _meta(await obstore.head_async(self.meta, key))

    async def get(self, key: str, byte_range: ByteRange | None = None) -> Download:
        what = f"{self.name}/{check_key(key)}"
        options: dict[str, Any] = {}
        if byte_range is not None and byte_range.suffix is not None and not self._suffix_ranges:
            # Azure has no suffix ranges: ask for the size, then for an absolute range.
            start, end = byte_range.resolve((await self.head(key)).size)
            byte_range = ByteRange(start, end) if end > start else None
        if byte_range is not None:
            if byte_range.suffix is not None:
                options["range"] = {"suffix": byte_range.suffix}
            elif byte_range.end is None:
                options["range"] = {"offset": byte_range.start}
            else:
                options["range"] = (byte_range.start, byte_range.end)
        with translated(what):
            result = await obstore.get_async(self.raw, key, options=options or None)  # type: ignore[arg-type]
        meta = _meta(result.meta)
        start, end = result.range
        attrs = result.attributes
        content_type = attrs.get("Content-Type") if attrs else None
        return Download(meta, start, end, _stream(result, what), content_type=content_type)

    async def put(self, key: str, data: Data, content_type: str | None = None) -> ObjectMeta:
        what = f"{self.name}/{check_key(key)}"
        attributes = {"Content-Type": content_type} if content_type else None
        head, rest = await peek(data, PART_SIZE)
        with translated(what):
            if rest is None:
                await obstore.put_async(self.raw, key, head, attributes=attributes, use_multipart=False)
            else:
                await obstore.put_async(
                    self.raw, key, chain(head, rest), attributes=attributes,
                    use_multipart=True, chunk_size=PART_SIZE, max_concurrency=4,
                )
        return await self.head(key)

    async def delete(self, key: str) -> None:
        with contextlib.suppress(NotFound), translated(f"delete {self.name}/{check_key(key)}"):
            await obstore.delete_async(self.meta, key)

    async def list(self, prefix: str = "", page_size: int = 1000) -> AsyncIterator[list[ObjectMeta]]:
        folder = folder_prefix(prefix)
        after: str | None = None  # the last key listed: pages come in key order
        try:
            with translated(f"list {self.name}/{folder}"):
                stream = obstore.list(self.meta, prefix=folder.rstrip("/") or None, chunk_size=page_size)
                async for page in stream:
                    found = [_meta(m) for m in page]
                    if found:
                        after = found[-1].key
                    yield found
            return
        except InvalidKey:
            # A key object_store cannot parse: the page holding it failed whole, and the stream with it.
            if self._list_keys is None:
                raise
        async for found in self._list_keys(folder, after, page_size):
            yield found

    async def list_folder(self, prefix: str, cursor: str | None = None, page_size: int = 1000) -> FolderPage:
        # obstore's delimiter listing follows the provider's continuation tokens to the end and returns
        # the folder whole; each page is cut from it after the cursor (the last key sent).
        folder = folder_prefix(prefix)
        with translated(f"list {self.name}/{folder}"):
            result = await obstore.list_with_delimiter_async(self.meta, prefix=folder.rstrip("/") or None)
        entries: FolderEntries = [(p.rstrip("/") + "/", None) for p in result["common_prefixes"]]
        entries += [(m["path"], _meta(m)) for m in result["objects"]]
        return page_after(entries, cursor, page_size)

    async def _copy_large(self, src: str, dst: str) -> bool:
        """Copy with the provider's own multipart copy when the object is over its single-copy limit
        (S3: 5 GiB per CopyObject). False when a plain copy will do."""
        if self._large_copy is None:
            return False
        limit, copy = self._large_copy
        if (await self.head(src)).size <= limit:
            return False
        await copy(src, dst)
        return True

    async def rename(self, src: str, dst: str) -> None:
        what = f"rename {self.name}/{check_key(src)} to {check_key(dst)}"
        if await self._copy_large(src, dst):
            with translated(what):
                await obstore.delete_async(self.raw, src)
            return
        with translated(what):
            await obstore.rename_async(self.raw, src, dst)

    async def sign_url(self, key: str, expires_in: timedelta) -> str:
        with translated(f"sign {self.name}/{check_key(key)}"):
            if self._sign_url is not None:
                return await self._sign_url(key, expires_in)
            return await obstore.sign_async(self.raw, "GET", key, expires_in)

    def local_path(self, key: str) -> Path | None:
        return None

    async def unfinished_uploads(self, before: datetime, abort: bool) -> Unfinished:
        return await self._unfinished(before, abort) if self._unfinished else []

    async def close(self) -> None:
        return None


async def _stream(result: Any, what: str) -> AsyncIterator[bytes]:
    with translated(what):
        async for chunk in result.stream(min_chunk_size=CHUNK_SIZE):
            yield bytes(chunk)
