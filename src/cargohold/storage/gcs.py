"""Google Cloud Storage on google-cloud-storage, the official SDK.

Not obstore: obstore speaks only GCS's XML API for uploads, which no emulator available here
accepts, so its uploads could not pass the contract suite (docs/ARCHITECTURE.md). The SDK is
synchronous; each call runs in a worker thread. Downloads stream as a series of ranged reads of
one generation of the object, uploads of more than one part as a resumable upload, which GCS
publishes only when it is finalised.

An ``http://`` endpoint is an emulator: Google serves only https, and emulators check no
credentials, so requests go unauthenticated; URLs are still signed with the service account's key.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable, Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any, TypeVar

import requests
from google.api_core import exceptions as gexc
from google.auth.credentials import AnonymousCredentials
from google.auth.exceptions import GoogleAuthError
from google.cloud import storage
from google.cloud.storage.retry import DEFAULT_RETRY
from google.oauth2 import service_account

from ..errors import (
    BackendUnavailable,
    BadInput,
    CargoholdError,
    Forbidden,
    NotFound,
    RangeNotSatisfiable,
    StoreTimeout,
)
from ..settings import parse_service_account, read_service_account
from .base import (
    CHUNK_SIZE,
    META_TIMEOUT,
    PART_SIZE,
    ByteRange,
    Data,
    Download,
    Features,
    FolderPage,
    ObjectMeta,
    check_key,
    folder_prefix,
    peek,
)
from .connection import Connection

T = TypeVar("T")
DOWNLOAD_CHUNK = 8 * CHUNK_SIZE

# The SDK's defaults (60 s a request, retried for 120 s) kept a browse of a dead endpoint waiting for
# two minutes. Metadata calls (HEAD, listings, DELETE) get META_TIMEOUT a request and retries within
# it; reads of data 60 s a request, retried for 30 s, as obstore's stores are.
META = {"timeout": (META_TIMEOUT, META_TIMEOUT), "retry": DEFAULT_RETRY.with_timeout(META_TIMEOUT)}
DATA = {"timeout": (5.0, 60.0), "retry": DEFAULT_RETRY.with_timeout(30.0)}


@contextlib.contextmanager
def translated(what: str) -> Iterator[None]:
    try:
        yield
    except CargoholdError:
        raise
    except gexc.NotFound as exc:
        raise NotFound(f"{what}: not found") from exc
    except (gexc.Forbidden, gexc.Unauthorized, GoogleAuthError) as exc:
        raise Forbidden(f"{what}: the credentials are refused ({exc})") from exc
    except gexc.RequestRangeNotSatisfiable as exc:
        raise RangeNotSatisfiable(f"{what}: the range is outside the object") from exc
    except requests.Timeout as exc:
        raise StoreTimeout(f"{what}: no answer in time ({exc})") from exc
    except gexc.RetryError as exc:  # retried until its time was up; the cause says what kept failing
        cause = exc.cause
        if isinstance(cause, requests.Timeout):
            raise StoreTimeout(f"{what}: no answer in time ({cause})") from exc
        message = f"{what}: no success in the time its retries may take; last error: {cause or exc}"
        raise BackendUnavailable(message[:600]) from exc
    except (gexc.GoogleAPIError, OSError, ValueError) as exc:
        raise BackendUnavailable(f"{what}: {exc}") from exc
    except Exception as exc:  # requests' and urllib3's connection errors
        if type(exc).__module__.split(".")[0] in ("requests", "urllib3", "google"):
            raise BackendUnavailable(f"{what}: {exc}") from exc
        raise


def _meta(blob: Any) -> ObjectMeta:
    return ObjectMeta(key=blob.name, size=int(blob.size or 0), etag=blob.etag, last_modified=blob.updated)


class GcsStore:
    """No ``unfinished_uploads``: a resumable session that is never finalised expires after a week."""

    provider = "google"

    def __init__(self, conn: Connection, bucket: str) -> None:
        self.features = Features.of(self)
        if conn.credentials_json:
            info = parse_service_account(conn.credentials_json, "the service-account JSON",
                                         conn.key("credentials_json"))
        else:
            info = read_service_account(conn.credentials_path, conn.key("credentials_path"))
        self.name = bucket
        self._project = info["project_id"]
        self._signer = service_account.Credentials.from_service_account_info(info)  # type: ignore[no-untyped-call]
        endpoint = conn.endpoint_url()
        self._endpoint = endpoint or "https://storage.googleapis.com"
        emulator = endpoint.startswith("http://")
        self._client = storage.Client(
            project=self._project,
            credentials=AnonymousCredentials() if emulator else self._signer,  # type: ignore[no-untyped-call]
            client_options={"api_endpoint": endpoint} if endpoint else None,
        )
        self._bucket = self._client.bucket(bucket)

    async def _run(self, what: str, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        def call() -> T:
            with translated(what):
                return fn(*args, **kwargs)

        return await asyncio.to_thread(call)

    async def ensure_bucket(self, create: bool = True) -> None:
        what = f"bucket {self.name!r}"
        exists = await self._run(what, self._bucket.exists, **META)
        if not exists:
            if not create:
                raise NotFound(f"{what} does not exist")
            try:
                await self._run(f"create {what}", self._client.create_bucket, self.name, project=self._project,
                                timeout=META["timeout"])  # not retried: a second create of the same bucket is a 409
            except BackendUnavailable as exc:
                if not isinstance(exc.__cause__, gexc.Conflict):
                    raise
        await self._run(f"list {what}", lambda: next(iter(self._client.list_blobs(self.name, max_results=1, **META)),
                                                     None))

    async def head(self, key: str) -> ObjectMeta:
        what = f"{self.name}/{check_key(key)}"
        blob = await self._run(what, self._bucket.get_blob, key, **META)
        if blob is None:
            raise NotFound(f"{what}: not found")
        return _meta(blob)

    async def get(self, key: str, byte_range: ByteRange | None = None) -> Download:
        what = f"{self.name}/{check_key(key)}"
        blob = await self._run(what, self._bucket.get_blob, key, **META)
        if blob is None:
            raise NotFound(f"{what}: not found")
        meta = _meta(blob)
        start, end = byte_range.resolve(meta.size) if byte_range else (0, meta.size)
        return Download(meta, start, end, self._chunks(blob, start, end, what), content_type=blob.content_type)

    async def _chunks(self, blob: Any, start: int, end: int, what: str) -> AsyncIterator[bytes]:
        # Every ranged read names the generation seen at open, so a concurrent overwrite makes the
        # read fail instead of mixing two versions.
        pinned = self._bucket.blob(blob.name, generation=blob.generation)
        pos = start
        while pos < end:
            stop = min(end, pos + DOWNLOAD_CHUNK)
            chunk = await self._run(what, pinned.download_as_bytes, start=pos, end=stop - 1, checksum=None, **DATA)
            if not chunk:
                raise BackendUnavailable(f"{what}: object ended early at byte {pos}")
            pos += len(chunk)
            yield chunk

    async def put(self, key: str, data: Data, content_type: str | None = None) -> ObjectMeta:
        what = f"{self.name}/{check_key(key)}"
        blob = self._bucket.blob(key)
        head, rest = await peek(data, PART_SIZE)
        ctype = content_type or "application/octet-stream"
        if rest is None:
            await self._run(what, blob.upload_from_string, head, content_type=ctype)
        else:
            writer = blob.open("wb", chunk_size=PART_SIZE, content_type=ctype)
            try:
                await self._run(what, writer.write, head)
                async for chunk in rest:
                    await self._run(what, writer.write, chunk)
                await self._run(what, writer.close)
            except BaseException:
                # Cancels the resumable upload: nothing becomes visible.
                with contextlib.suppress(Exception):
                    await asyncio.to_thread(writer.terminate)
                raise
        return await self.head(key)

    async def delete(self, key: str) -> None:
        with contextlib.suppress(NotFound):
            await self._run(f"delete {self.name}/{check_key(key)}", self._bucket.delete_blob, key, **META)

    async def list(self, prefix: str = "", page_size: int = 1000) -> AsyncIterator[list[ObjectMeta]]:
        folder = folder_prefix(prefix)
        what = f"list {self.name}/{folder}"
        iterator = self._client.list_blobs(self.name, prefix=folder or None, page_size=page_size, **META)
        pages = await self._run(what, lambda: iterator.pages)
        while True:
            page = await self._run(what, lambda: [_meta(b) for b in next(pages, [])])
            if not page:
                return
            yield page

    async def list_folder(self, prefix: str, cursor: str | None = None, page_size: int = 1000) -> FolderPage:
        """One page of GCS's own delimiter listing; the cursor is its page token."""
        folder = folder_prefix(prefix)

        def first_page() -> FolderPage:
            iterator = self._client.list_blobs(self.name, prefix=folder or None, delimiter="/", page_size=page_size,
                                               page_token=cursor or None, **META)
            try:
                page = next(iterator.pages, None)
            except gexc.BadRequest as exc:
                if cursor:
                    raise BadInput(f"cursor {cursor[:40]!r} is not one this listing gave") from exc
                raise
            objects = [_meta(b) for b in page] if page is not None else []
            folders = sorted(page.prefixes) if page is not None else []
            return folders, objects, iterator.next_page_token or None

        return await self._run(f"list {self.name}/{folder}", first_page)

    async def _copy(self, src: str, dst: str) -> None:
        what = f"copy {self.name}/{check_key(src)} to {check_key(dst)}"
        source = self._bucket.blob(src)
        target = self._bucket.blob(dst)
        # rewrite, not copy_blob: large objects take several calls, each returning a token.
        token, _, _ = await self._run(what, target.rewrite, source)
        while token is not None:
            token, _, _ = await self._run(what, target.rewrite, source, token=token)

    async def rename(self, src: str, dst: str) -> None:
        await self._copy(src, dst)
        await self.delete(src)

    async def sign_url(self, key: str, expires_in: timedelta) -> str:
        blob = self._bucket.blob(check_key(key))
        return await self._run(
            f"sign {self.name}/{key}", blob.generate_signed_url,
            version="v4", expiration=expires_in, method="GET", credentials=self._signer,
            api_access_endpoint=self._endpoint,
        )

    def local_path(self, key: str) -> Path | None:
        return None

    async def close(self) -> None:
        await asyncio.to_thread(self._client.close)
