"""The S3 endpoint (docs/S3.md): a plain ASGI app on ``SERVER_S3_PORT``, path-style
(``http://host:8081/<bucket>/<key>``). Buckets are datasets, keys are item names. Like the API, it is a door:
authenticate (s3/auth.py), parse, call services, render S3's XML; it never reaches into storage or the catalog
itself. It shares the API app's context (catalog, storage, caches), opened by the API app's lifespan.
"""

from __future__ import annotations

import functools
import logging
import secrets
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qsl, unquote

from starlette.types import ASGIApp, Receive, Scope, Send

from ..errors import BadInput, CargoholdError, Unsupported
from ..services.context import Context
from . import buckets, multipart, objects
from .auth import Verified, verify
from .body import BodyReader
from .errors import error_document, error_headers, s3_error

log = logging.getLogger("cargohold")

Headers = list[tuple[bytes, bytes]]
Handler = Callable[["S3Request"], Awaitable[None]]

BUCKET_SUBRESOURCES_IGNORED = frozenset({"encoding-type", "list-type", "prefix", "delimiter", "max-keys", "marker",
                                         "continuation-token", "start-after", "fetch-owner", "key-marker",
                                         "upload-id-marker", "max-uploads", "x-id", "version-id-marker"})
LIST_BUCKETS_PARAMS = frozenset({"max-buckets", "continuation-token", "prefix", "bucket-region", "x-id"})
OBJECT_PARAMS = frozenset({"partNumber", "uploadId", "uploads", "versionId", "x-id", "max-parts", "part-number-marker",
                           "attributes",
                           "response-content-type", "response-content-language", "response-expires",
                           "response-cache-control", "response-content-disposition", "response-content-encoding"})
SIGNATURE_PARAMS = frozenset({"X-Amz-Algorithm", "X-Amz-Credential", "X-Amz-Date", "X-Amz-Expires",
                              "X-Amz-SignedHeaders", "X-Amz-Signature", "X-Amz-Security-Token"})


@dataclass
class S3Request:
    ctx: Context
    scope: Scope
    receive: Receive
    send: Send
    method: str
    bucket: str
    key: str
    query: dict[str, str]
    headers: dict[str, str]
    request_id: str
    verified: Verified
    started: bool = False
    _reader: BodyReader | None = field(default=None, repr=False)

    @property
    def principal(self) -> Any:
        return self.verified.principal

    def body(self, checksum_headers: bool = True, md5: bool = False) -> BodyReader:
        """The body; ``checksum_headers`` False: its ``x-amz-checksum-*`` headers are not the body's own; ``md5``:
        keep its MD5 (an UploadPart's ETag)."""
        if self._reader is None:
            self._reader = BodyReader(self._raw(), self.verified, self.headers, checksum_headers, md5)
        return self._reader

    async def _raw(self) -> AsyncIterator[bytes]:
        while True:
            message = await self.receive()
            if message["type"] == "http.disconnect":
                raise BadInput("the client went away before the body ended")
            data = message.get("body", b"")
            if data:
                yield data
            if not message.get("more_body", False):
                return

    def base_headers(self) -> Headers:
        return [(b"x-amz-request-id", self.request_id.encode()), (b"server", b"cargohold")]

    async def answer(self, status: int, body: bytes = b"", headers: Headers | None = None,
                     content_type: bytes = b"application/xml") -> None:
        out = self.base_headers() + (headers or [])
        if body or status not in (200, 204, 206, 304):
            out += [(b"content-type", content_type), (b"content-length", str(len(body)).encode())]
        elif not any(name == b"content-length" for name, _ in out):
            out.append((b"content-length", b"0"))
        self.started = True
        await self.send({"type": "http.response.start", "status": status, "headers": out})
        await self.send({"type": "http.response.body", "body": b"" if self.method == "HEAD" else body})

    async def send_error(self, send: Send, exc: CargoholdError, extra: Headers | None = None) -> None:
        """The sender's error callback (http/responses.py): an S3 XML error instead of the JSON envelope."""
        await self.error(exc, extra)

    async def error(self, exc: CargoholdError, extra: Headers | None = None) -> None:
        code, status = s3_error(exc)
        resource = "/" + self.bucket + ("/" + self.key if self.key else "") if self.bucket else "/"
        headers = [(k.lower().encode("latin-1"), v.encode("latin-1")) for k, v in error_headers(exc, status).items()]
        condition = getattr(exc, "condition", None)
        await self.answer(status, error_document(code, exc.message, resource, self.request_id, condition),
                          headers + (extra or []))


@functools.lru_cache(maxsize=1024)
def _query(query_string: str) -> tuple[tuple[str, str], ...]:
    """A query string's pairs; remembered, since a presigned URL comes again and again with the same one (its
    seven X-Amz-* parameters were a tenth of a GetObject's time to decode)."""
    return tuple(parse_qsl(query_string, keep_blank_values=True))


def _split(raw_path: str) -> tuple[str, str]:
    path = raw_path.split("?", 1)[0]
    bucket, _, key = path.lstrip("/").partition("/")
    return unquote(bucket), unquote(key, errors="strict")


def _route(method: str, bucket: str, key: str, query: dict[str, str], headers: dict[str, str]) -> Handler:
    if "AWSAccessKeyId" in query or headers.get("authorization", "").startswith("AWS "):
        raise BadInput("Signature Version 2 is not supported: sign with Signature Version 4 (boto3: "
                       "Config(signature_version='s3v4'); the AWS CLI and rclone do by default)")
    if not bucket:
        if method == "GET" and not set(query) - LIST_BUCKETS_PARAMS - SIGNATURE_PARAMS:
            return buckets.list_buckets
        raise Unsupported(f"{method} / is not an S3 operation cargohold answers")
    if not key:
        return _bucket_route(method, query)
    unknown = set(query) - OBJECT_PARAMS - SIGNATURE_PARAMS
    if unknown:
        raise Unsupported(f"the object subresource {sorted(unknown)[0]!r} is not implemented")
    if "uploadId" in query:
        return {"PUT": multipart.upload_part_copy if "x-amz-copy-source" in headers else multipart.upload_part,
                "GET": multipart.list_parts, "POST": multipart.complete, "DELETE": multipart.abort}.get(
                    method, _not_implemented)
    if "uploads" in query:
        return multipart.create if method == "POST" else _not_implemented
    if "attributes" in query:
        return objects.get_object_attributes if method == "GET" else _not_implemented
    if method == "PUT":
        return objects.copy_object if "x-amz-copy-source" in headers else objects.put_object
    return {"GET": objects.get_object, "HEAD": objects.head_object, "DELETE": objects.delete_object}.get(
        method, _not_implemented)


def _bucket_route(method: str, query: dict[str, str]) -> Handler:
    subresources = set(query) - BUCKET_SUBRESOURCES_IGNORED - SIGNATURE_PARAMS
    if not subresources:
        return {"GET": buckets.list_objects, "HEAD": buckets.head_bucket, "PUT": buckets.create_bucket,
                "DELETE": buckets.delete_bucket}.get(method, _not_implemented)
    if subresources == {"location"} and method == "GET":
        return buckets.location
    if subresources == {"versions"} and method == "GET":
        return buckets.list_versions
    if subresources == {"versioning"} and method == "GET":
        return buckets.versioning
    if subresources == {"uploads"} and method == "GET":
        return multipart.list_uploads
    if subresources == {"delete"} and method == "POST":
        return objects.delete_objects
    raise Unsupported(f"the bucket subresource {sorted(subresources)[0]!r} is not implemented")


async def _not_implemented(request: S3Request) -> None:
    raise Unsupported(f"{request.method} with these parameters is not an S3 operation cargohold answers")


class S3App:
    """The ASGI app of the S3 listener; ``context`` gives the API app's open context."""

    def __init__(self, context: Callable[[], Context]) -> None:
        self.context = context

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            await _lifespan(receive, send)
            return
        if scope["type"] != "http":
            return
        raw_path = scope.get("raw_path", scope["path"].encode()).decode("latin-1")
        query_string = scope["query_string"].decode("latin-1")
        headers: dict[str, str] = {}
        for name, value in scope["headers"]:
            key = name.decode("latin-1").lower()
            text = value.decode("latin-1")
            headers[key] = f"{headers[key]},{text}" if key in headers else text
        request_id = secrets.token_hex(8).upper()
        request = S3Request(self.context(), scope, receive, send, scope["method"], "", "", {}, headers, request_id,
                            Verified(None, "", ""))  # type: ignore[arg-type]
        try:
            request.bucket, request.key = _split(raw_path)
            params = _query(query_string)
            request.query = dict(params)
            handler = _route(request.method, request.bucket, request.key, request.query, headers)
            request.verified = await verify(request.ctx, request.method, raw_path.split("?", 1)[0], params,
                                            scope["headers"])
            await handler(request)
        except UnicodeDecodeError:
            await request.error(BadInput("the path is not UTF-8 once percent-decoded"))
        except CargoholdError as exc:
            if exc.http_status >= 500 and not isinstance(exc, Unsupported):
                log.warning("S3 %s %s: %s: %s", request.method, raw_path[:200], type(exc).__name__, exc.message)
            if request.started:
                raise
            await request.error(exc)


async def _lifespan(receive: Receive, send: Send) -> None:
    while True:
        message = await receive()
        if message["type"] == "lifespan.startup":
            await send({"type": "lifespan.startup.complete"})
        elif message["type"] == "lifespan.shutdown":
            await send({"type": "lifespan.shutdown.complete"})
            return


__all__ = ["ASGIApp", "S3App", "S3Request"]
