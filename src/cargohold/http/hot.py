"""The hot routes: ``GET``/``HEAD /api/v1/items/{id}/content`` and ``/preview``, as a plain ASGI app.

These are the requests a browser makes by the hundred for a page of thumbnails, so they skip
FastAPI's routing and validation (about 57 µs a request, LAB.md) and Starlette's ``FileResponse``
(thread hops per chunk): a cache hit costs a signature check, two dictionary lookups, an ``open``,
a ``pread`` from the page cache and two ``send`` calls. The FastAPI routes of the same paths exist
for the OpenAPI description and answer through this same code.

Conditional requests (``If-None-Match``, ``If-Range``) and one ``Range`` follow RFC 9110.
"""

from __future__ import annotations

import asyncio
import functools
import json
import logging
import os
import re
import time
from dataclasses import dataclass
from datetime import datetime
from email.utils import format_datetime
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, quote

from starlette.types import Message, Scope, Send

from ..errors import BadInput, CargoholdError, RangeNotSatisfiable, Unauthenticated
from ..media.preview import PreviewSpec
from ..services import serving, signing
from ..services.context import Context
from ..services.serving import Body, Representation
from ..services.tokens import authenticate
from ..storage.local import in_page_cache
from .ranges import parse_range
from .responses import content_disposition, etag_matches

log = logging.getLogger("cargohold")
ROUTE = re.compile(r"^/api/v1/items/([0-9]{1,30})/(content|preview)$")  # ASCII: \d takes any script's digits
CHUNK = 1024 * 1024
FORMATS = ("jpeg", "png", "webp")
PREVIEW_PARAMS = {"w": "width", "h": "height", "fit": "fit", "format": "format", "q": "quality"}
_SECURITY_HEADERS = [
    (b"x-content-type-options", b"nosniff"),
    # An uploaded HTML or SVG file opened from a content URL must not run scripts as cargohold's origin.
    (b"content-security-policy", b"sandbox"),
]


def hot_route(scope: Scope) -> tuple[int, str] | None:
    """``(item id, "content" | "preview")`` when ``scope`` is a request the hot route answers."""
    if scope["type"] == "http" and scope["method"] in ("GET", "HEAD"):
        match = ROUTE.match(scope["path"])
        if match is not None:
            return int(match[1]), match[2]
    return None


def _headers(scope: Scope) -> dict[bytes, bytes]:
    wanted = (b"authorization", b"range", b"if-none-match", b"if-range")
    return {k: v for k, v in scope["headers"] if k in wanted}


async def serve(ctx: Context, scope: Scope, send: Send, item_id: int, what: str) -> None:
    headers = _headers(scope)
    params = parse_qsl(scope["query_string"].decode("latin-1"), keep_blank_values=True)
    started = [False]

    async def tracked(message: Message) -> None:
        started[0] = True
        await send(message)

    try:
        signed_until = await _authorize(ctx, scope["path"], params, headers)
        query = dict(params)
        if what == "preview":
            representation = await serving.preview(ctx, item_id, preview_spec(query))
        else:
            representation = await serving.content(ctx, item_id, content_format(query))
        front = _front(ctx, signed_until)
        await send_representation(tracked, scope["method"] == "HEAD", representation, headers, front)
    except CargoholdError as exc:
        if exc.http_status >= 500:
            log.warning("%s %s: %s: %s", scope["method"], scope["path"], type(exc).__name__, exc.message)
        if started[0]:
            raise  # the answer has begun: cutting the connection is the only honest thing left
        await send_error(send, exc)


async def _authorize(ctx: Context, path: str, params: list[tuple[str, str]],
                     headers: dict[bytes, bytes]) -> int | None:
    """Checks the token or the signature; a signed URL's expiry (Unix seconds), None for a token."""
    authorization = headers.get(b"authorization")
    if authorization is None:
        query = dict(params)
        signature = query.get("signature")
        if signature is None:
            raise Unauthenticated("send Authorization: Bearer <token>, or use a signed URL (POST .../sign)")
        expires = _verified(ctx.secret, path, query.get("expires", ""), signature, tuple(params))
        if time.time() > expires:
            raise Unauthenticated("the signed URL has expired; ask for a new one")
        return expires
    scheme, _, token = authorization.decode("latin-1").partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise Unauthenticated("send Authorization: Bearer <token> (cargohold token create makes one)")
    await authenticate(ctx, token.strip())
    return None


@dataclass(frozen=True)
class Front:
    """What nginx in front may do for this answer (deploy/nginx.conf, SERVER_ACCEL_REDIRECT)."""

    redirect: str  # the internal location mapped to DATA_PATH
    data_path: str
    cache_for: int | None  # a signed answer: nginx may keep it this many seconds (until the URL expires)

    def location_of(self, path: Path) -> bytes | None:
        text = os.fspath(path)
        if not text.startswith(self.data_path):
            return None  # a server folder (fs://) outside DATA_PATH: sent by cargohold
        return (self.redirect + quote(text[len(self.data_path):].lstrip("/"))).encode("latin-1")


def _front(ctx: Context, signed_until: int | None) -> Front | None:
    redirect = ctx.settings.server_accel_redirect
    if not redirect:
        return None
    cache_for = max(0, signed_until - int(time.time())) if signed_until is not None else None
    return Front(redirect, _data_root(ctx.settings.data_path), cache_for)


@functools.lru_cache(maxsize=8)
def _data_root(data_path: Path) -> str:
    """Resolved once, not a realpath walk per request."""
    return os.fspath(data_path.resolve()) + "/"


@functools.lru_cache(maxsize=4096)
def _verified(secret: bytes, path: str, expires: str, signature: str, params: tuple[tuple[str, str], ...]) -> int:
    """Checks a signature once; a page shown again asks for the same URLs, and an HMAC per request
    was a tenth of a hit's time. A bad signature raises, and exceptions are never cached; the expiry
    is checked again on every call."""
    signing.verify(secret, path, expires, signature, now=0, params=params)
    return int(expires)


def preview_spec(query: dict[str, str]) -> PreviewSpec:
    return _preview_spec(tuple(sorted(query.items())))


@functools.lru_cache(maxsize=1024)
def _preview_spec(pairs: tuple[tuple[str, str], ...]) -> PreviewSpec:
    """Parsed once per distinct query: a page of thumbnails asks for the same size again and again."""
    query = {k: v for k, v in pairs if k not in signing.SIGNATURE_PARAMS}
    unknown = sorted(set(query) - set(PREVIEW_PARAMS))
    if unknown:
        raise BadInput(f"unknown preview parameter {unknown[0]!r}; use w, h, fit, format, q")
    values: dict[str, Any] = {}
    for param, field in PREVIEW_PARAMS.items():
        if param not in query:
            continue
        if param in ("w", "h", "q"):
            # ASCII digits (isdigit() also takes '²', which int() refuses), and few of them.
            if not re.fullmatch(r"[0-9]{1,9}", query[param]):
                raise BadInput(f"{param} must be a whole number, not {query[param][:20]!r}")
            values[field] = int(query[param])
        else:
            values[field] = query[param]
    return PreviewSpec(**values)


def content_format(query: dict[str, str]) -> Any:
    fmt = query.get("format")
    if fmt is not None and fmt not in FORMATS:
        raise BadInput(f"format must be one of {', '.join(FORMATS)}, not {fmt!r}")
    return fmt


@functools.lru_cache(maxsize=4096)
def _http_date(when: datetime) -> bytes:
    return format_datetime(when, usegmt=True).encode()


@functools.lru_cache(maxsize=4096)
def _disposition(filename: str) -> bytes:
    return content_disposition(filename).encode("latin-1")


async def send_representation(send: Send, head_only: bool, rep: Representation,
                              headers: dict[bytes, bytes], front: Front | None = None) -> None:
    etag = rep.etag
    out = [
        (b"etag", etag.encode()),
        (b"last-modified", _http_date(rep.last_modified)),
        (b"accept-ranges", b"bytes"),
        (b"cache-control", b"private, max-age=0, must-revalidate"),
        *_SECURITY_HEADERS,
    ]
    if_none_match = headers.get(b"if-none-match")
    if if_none_match is not None and etag_matches(if_none_match.decode("latin-1"), etag):
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
        out.append((b"content-range", f"bytes */{rep.size}".encode()))
        await send_error(send, exc, out)
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
                    (b"content-disposition", _disposition(rep.filename)), (b"x-accel-redirect", location)]
            await send({"type": "http.response.start", "status": 200, "headers": out})
            await send({"type": "http.response.body", "body": b""})
            return
    out += [
        (b"content-type", rep.content_type.encode("latin-1", "replace")),
        (b"content-length", str(body.end - body.start).encode()),
        (b"content-disposition", _disposition(rep.filename)),
    ]
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
            fd, pos, end = body.fd, body.start, body.end
            if pos == end:
                await send({"type": "http.response.body", "body": b""})
            while pos < end:
                want = min(CHUNK, end - pos)
                # A chunk in the page cache is read on the event loop (cheaper than a thread hop); one
                # that would wait for the disk goes to a thread, so a cold file never stalls the server.
                if in_page_cache(fd, pos + want - 1):
                    data = os.pread(fd, want, pos)
                else:
                    data = await asyncio.to_thread(os.pread, fd, want, pos)
                if not data:
                    raise OSError("the file shrank while being sent")
                pos += len(data)
                sent += len(data)
                await send({"type": "http.response.body", "body": data, "more_body": pos < end})
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


async def send_error(send: Send, exc: CargoholdError, extra: list[tuple[bytes, bytes]] | None = None) -> None:
    payload = json.dumps({"error": {"code": exc.code, "message": exc.message}}).encode()
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(payload)).encode())]
    if exc.http_status == 401:
        headers.append((b"www-authenticate", b"Bearer"))
    headers += [h for h in extra or [] if h[0] in (b"content-range",)]
    await send({"type": "http.response.start", "status": exc.http_status, "headers": headers})
    await send({"type": "http.response.body", "body": payload})

