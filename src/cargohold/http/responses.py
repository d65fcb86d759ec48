"""THE sender: every answer that carries a file's bytes (items, previews, conversions, team files) and
every error body goes out through this module, so they all get the same conditionals, ranges and
security headers.

Conditional requests (``If-Match``, ``If-Unmodified-Since``, ``If-None-Match``, ``If-Modified-Since``,
``If-Range``) and one ``Range`` follow RFC 9110, in its order of evaluation (13.2.2). Bytes from an
open file are read from the page cache on the event loop and from a thread when they would wait for
the disk (``storage.local.read_range``); streams are passed through as they come.
"""

from __future__ import annotations

import functools
import os
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import format_datetime, parsedate_to_datetime
from pathlib import Path
from typing import Any
from urllib.parse import quote

from starlette.responses import JSONResponse, Response
from starlette.types import Receive, Scope, Send

from ..errors import CargoholdError, PreconditionFailed, RangeNotSatisfiable, error_body, error_json
from ..services.serving import Body, Representation
from ..storage.page_cache import read_range
from .ranges import parse_range

Headers = list[tuple[bytes, bytes]]

SECURITY_HEADERS: Headers = [
    (b"x-content-type-options", b"nosniff"),
    # An uploaded HTML or SVG file opened from a content URL must not run scripts as cargohold's origin,
    # where the web UI keeps its token.
    (b"content-security-policy", b"sandbox"),
]
WANTED = (b"authorization", b"range", b"if-match", b"if-unmodified-since", b"if-none-match", b"if-modified-since",
          b"if-range")
"""The request headers the sender (and the hot route's authorisation) reads."""


def request_headers(scope: Scope) -> dict[bytes, bytes]:
    return {k: v for k, v in scope["headers"] if k in WANTED}


ACTIVE_TYPES = frozenset({
    "text/html", "application/xhtml+xml", "image/svg+xml", "text/xml", "application/xml", "application/pdf",
    "text/javascript", "application/javascript", "application/x-javascript", "text/xsl", "application/xslt+xml",
    "multipart/x-mixed-replace",
})
"""Types a browser runs or renders with a viewer of its own (scripts, PDF actions) even under ``CSP: sandbox``
(Chromium's PDF viewer runs a PDF's OpenAction script regardless): sent as attachments, never shown."""


def is_active(content_type: str) -> bool:
    essence = content_type.split(";", 1)[0].strip().lower()
    return essence in ACTIVE_TYPES or essence.endswith(("+xml", "/xml"))


def content_disposition(filename: str, content_type: str = "") -> str:
    base = filename.rstrip("/").rsplit("/", 1)[-1]  # an S3 object may be named 'a/b/': then 'b'
    ascii_name = base.encode("ascii", "replace").decode().replace('"', "'").replace("\\", "_")
    kind = "attachment" if is_active(content_type) else "inline"
    return f"{kind}; filename=\"{ascii_name}\"; filename*=UTF-8''{quote(base, safe='')}"


def etag_matches(header: str, etag: str) -> bool:
    candidates = [c.strip().removeprefix("W/") for c in header.split(",")]
    return "*" in candidates or etag in candidates


@dataclass(frozen=True)
class Front:
    """What nginx in front may do for this answer (deploy/nginx.conf, SERVER_ACCEL_REDIRECT)."""

    redirect: str  # the internal location mapped to DATA_PATH
    data_path: str
    cache_for: int | None  # a signed answer: nginx may keep it this many seconds (SERVER_ACCEL_CACHE at most)

    def location_of(self, path: Path) -> bytes | None:
        text = os.fspath(path)
        if not text.startswith(self.data_path):
            return None  # a server folder (fs://) outside DATA_PATH: sent by cargohold
        return (self.redirect + quote(text[len(self.data_path):].lstrip("/"))).encode("latin-1")


@functools.lru_cache(maxsize=4096)
def http_date(when: datetime) -> bytes:
    return format_datetime(when, usegmt=True).encode()


@functools.lru_cache(maxsize=4096)
def _disposition(filename: str, content_type: str) -> bytes:
    return content_disposition(filename, content_type).encode("latin-1")


ErrorSender = Callable[[Send, CargoholdError, Headers | None], Awaitable[None]]


def _http_time(value: bytes) -> datetime | None:
    try:
        when = parsedate_to_datetime(value.decode("latin-1"))
    except (TypeError, ValueError):
        return None  # an unparsable date is ignored (RFC 9110 13.1.3)
    return when if when.tzinfo is not None else when.replace(tzinfo=UTC)  # "-0000": UTC, said without a zone


def _unmodified_since(last_modified: datetime, value: bytes) -> bool | None:
    since = _http_time(value)
    return None if since is None else last_modified.replace(microsecond=0) <= since


async def send_representation(send: Send, head_only: bool, rep: Representation,
                              headers: dict[bytes, bytes], front: Front | None = None, *,
                              extra: Headers | None = None, on_error: ErrorSender | None = None) -> None:
    """``extra`` headers replace the sender's own of the same names (the S3 door's ``response-content-*``
    overrides and ``x-amz-*``); ``on_error`` sends a 412 or 416 in the door's own error format."""
    on_error = on_error or send_error
    etag = rep.etag
    out = [
        (b"etag", etag.encode()),
        (b"last-modified", http_date(rep.last_modified)),
        (b"accept-ranges", b"bytes"),
        (b"cache-control", b"private, max-age=0, must-revalidate"),
        *SECURITY_HEADERS,
    ]
    if extra:
        replaced = {name for name, _ in extra}
        out = [h for h in out if h[0] not in replaced] + list(extra)
    if_match = headers.get(b"if-match")
    if if_match is not None:
        if not etag_matches(if_match.decode("latin-1"), etag):
            await on_error(send, PreconditionFailed("At least one of the pre-conditions you specified did not hold "
                                                    "(If-Match)"), None)
            return
    elif (since := headers.get(b"if-unmodified-since")) is not None and \
            _unmodified_since(rep.last_modified, since) is False:
        await on_error(send, PreconditionFailed("At least one of the pre-conditions you specified did not hold "
                                                "(If-Unmodified-Since)"), None)
        return
    if_none_match = headers.get(b"if-none-match")
    not_modified = if_none_match is not None and etag_matches(if_none_match.decode("latin-1"), etag)
    if if_none_match is None and (since := headers.get(b"if-modified-since")) is not None:
        not_modified = _unmodified_since(rep.last_modified, since) is True
    if not_modified:
        await send({"type": "http.response.start", "status": 304, "headers": out})
        await send({"type": "http.response.body", "body": b""})
        return
    range_header = headers.get(b"range")
    if_range = headers.get(b"if-range")
    if if_range is not None and if_range.decode("latin-1").strip() != etag:
        range_header = None  # the client's partial copy is of other bytes (RFC 9110 13.1.5): send all
    try:
        byte_range = parse_range(range_header.decode("latin-1") if range_header else None, rep.size)
    except RangeNotSatisfiable as exc:
        await on_error(send, exc, [*SECURITY_HEADERS, (b"content-range", f"bytes */{rep.size}".encode())])
        return
    body = await rep.open(byte_range)
    if front is not None:
        if front.cache_for is not None:
            # A signed URL names one representation until it expires: nginx may answer it from its
            # cache until then (the header is nginx's; it does not reach the client).
            out.append((b"x-accel-expires", str(front.cache_for).encode()))
        elif body.path is not None and (location := front.location_of(body.path)) is not None:
            # Authorised here, sent by nginx from disk (sendfile); nginx applies the Range itself.
            await _close(body)
            out = [h for h in out if h[0] != b"accept-ranges"]  # nginx says it for the file
            out += [(b"content-type", rep.content_type.encode("latin-1", "replace")),
                    (b"content-disposition", _disposition(rep.filename, rep.content_type)),
                    (b"x-accel-redirect", location)]
            await send({"type": "http.response.start", "status": 200, "headers": out})
            await send({"type": "http.response.body", "body": b""})
            return
    own = [
        (b"content-type", rep.content_type.encode("latin-1", "replace")),
        (b"content-length", str(body.end - body.start).encode()),
        (b"content-disposition", _disposition(rep.filename, rep.content_type)),
    ]
    given = {name for name, _ in out}
    out += [h for h in own if h[0] not in given or h[0] == b"content-length"]
    status = 200
    if byte_range is not None:
        status = 206
        out.append((b"content-range", f"bytes {body.start}-{body.end - 1}/{body.total}".encode()))
    await send({"type": "http.response.start", "status": status, "headers": out})
    if head_only:
        await _close(body)
        await send({"type": "http.response.body", "body": b""})
        return
    await _send_body(send, body)


async def _close(body: Body) -> None:
    if body.fd is not None:
        os.close(body.fd)
    if body.chunks is not None:
        closer = getattr(body.chunks, "aclose", None)
        if closer is not None:
            await closer()


async def _send_body(send: Send, body: Body) -> None:
    sent = 0
    try:
        if body.fd is not None:
            if body.start == body.end:
                await send({"type": "http.response.body", "body": b""})
            async for data in read_range(body.fd, body.start, body.end):
                sent += len(data)
                await send({"type": "http.response.body", "body": data, "more_body": body.start + sent < body.end})
        else:
            assert body.chunks is not None
            async for chunk in body.chunks:
                sent += len(chunk)
                await send({"type": "http.response.body", "body": chunk, "more_body": True})
            await send({"type": "http.response.body", "body": b""})
    finally:
        if body.tier is not None:
            body.tier.served(sent)
        await _close(body)


async def send_error(send: Send, exc: CargoholdError, extra: Headers | None = None) -> None:
    payload = error_json(exc)
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(payload)).encode())]
    if exc.http_status == 401:
        headers.append((b"www-authenticate", b"Bearer"))
    headers += [(k.lower().encode("latin-1"), v.encode("latin-1")) for k, v in exc.headers.items()]
    await send({"type": "http.response.start", "status": exc.http_status, "headers": headers + (extra or [])})
    await send({"type": "http.response.body", "body": payload})


def error_response(status: int, code: str, message: str, headers: dict[str, str] | None = None,
                   fields: dict[str, Any] | None = None) -> JSONResponse:
    """An error answer for the FastAPI side (exception handlers, the auth middleware); ``fields``: more of the
    envelope (``CargoholdError.fields``)."""
    if status == 401:
        headers = {"WWW-Authenticate": "Bearer", **(headers or {})}
    body = error_body(code, message)
    body["error"].update(fields or {})
    return JSONResponse(body, status_code=status, headers=headers)


class RepresentationResponse(Response):
    """A FastAPI route's answer sent by ``send_representation``: the same bytes, headers and errors
    as the hot route's."""

    def __init__(self, representation: Representation) -> None:
        super().__init__()
        self.representation = representation

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        rep = self.representation
        await send_representation(send, scope["method"] == "HEAD", rep, request_headers(scope))
