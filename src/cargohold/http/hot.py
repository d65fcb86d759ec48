"""The hot routes: ``GET``/``HEAD /api/v1/items/{id}/content``, ``/preview`` and ``/frames/{n}``, as a plain ASGI
app.

These are the requests a browser makes by the hundred for a page of thumbnails, so they skip
FastAPI's routing and validation (about 57 µs a request, LAB.md) and Starlette's ``FileResponse``
(thread hops per chunk): a cache hit costs a signature check (remembered: the signer's token and the
item's version are then dictionary lookups), two dictionary lookups, an ``open``,
a ``pread`` from the page cache and two ``send`` calls. The FastAPI routes of the same paths exist
for the OpenAPI description and answer through this same code. What is sent, and how, is
``responses.py``'s, as for every other answer that carries a file.
"""

from __future__ import annotations

import functools
import logging
import os
import re
import time
from pathlib import Path
from urllib.parse import parse_qsl

from starlette.types import Message, Scope, Send

from ..errors import CargoholdError, NotFound, Unauthenticated
from ..services import access, serving, signing
from ..services.context import Context
from ..services.memo import ItemView
from ..services.tokens import authenticate, check_live
from .params import content_format, frame_position, preview_spec
from .responses import Front, request_headers, send_error, send_representation

log = logging.getLogger("cargohold")
ROUTE = re.compile(r"^/api/v1/items/([0-9]{1,30})/(content|preview|frames(?:/[0-9]{1,9})?)$")  # ASCII: \d takes any
# script's digits


def hot_route(scope: Scope) -> tuple[int, str] | None:
    """``(item id, "content" | "preview" | "frames" | "frames/<n>")`` when ``scope`` is a request the hot route
    answers."""
    if scope["type"] == "http" and scope["method"] in ("GET", "HEAD"):
        match = ROUTE.match(scope["path"])
        if match is not None:
            return int(match[1]), match[2]
    return None


async def serve(ctx: Context, scope: Scope, send: Send, item_id: int, what: str) -> None:
    headers = request_headers(scope)
    params = parse_qsl(scope["query_string"].decode("latin-1"), keep_blank_values=True)
    started = [False]

    async def tracked(message: Message) -> None:
        started[0] = True
        await send(message)

    try:
        signed_until = await _authorize(ctx, item_id, scope["path"], params, headers)
        query = dict(params)
        if what == "preview":
            representation = await serving.preview(ctx, item_id, preview_spec(query))
        elif what.startswith("frames"):
            number, at = frame_position(what, query)
            representation = await serving.frame(ctx, item_id, number, at, preview_spec(query))
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


async def _authorize(ctx: Context, item_id: int, path: str, params: list[tuple[str, str]],
                     headers: dict[bytes, bytes]) -> int | None:
    """Checks the token (and that it reaches the item: services/access.py) or the signature (checked when
    signed); a signed URL's expiry (Unix seconds), None for a token."""
    authorization = headers.get(b"authorization")
    if authorization is None:
        if "signature" not in dict(params):
            raise Unauthenticated("send Authorization: Bearer <token>, or use a signed URL (POST .../sign)")
        signed = _verified(ctx.secret, path, tuple(params))
        if time.time() > signed.expires:
            raise Unauthenticated("the signed URL has expired; ask for a new one")
        # The signer and the item from memory (services/memo.py) in the common case: no await, no query.
        if ctx.memo.live_tokens.get(signed.signer) is not True:
            await check_live(ctx, signed.signer)
        item = ctx.memo.items.get(item_id) or await _signed_item(ctx, item_id)
        if signing.item_version(item) != signed.version:
            raise NotFound(f"item {item_id} was replaced since this URL was signed (it names another version "
                           "of its content); ask for a new URL")
        return signed.expires
    scheme, _, token = authorization.decode("latin-1").partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise Unauthenticated("send Authorization: Bearer <token> (cargohold token create makes one)")
    principal = await authenticate(ctx, token.strip())
    await access.require_item(ctx, principal.scope, "read", item_id)
    return None


async def _signed_item(ctx: Context, item_id: int) -> ItemView:
    try:
        return await serving.item_view(ctx, item_id)
    except NotFound:  # it existed when signed: ids are never reused, so no other item will ever answer here
        raise NotFound(f"item {item_id} was deleted after this URL was signed") from None


def _front(ctx: Context, signed_until: int | None) -> Front | None:
    redirect = ctx.settings.server_accel_redirect
    if not redirect:
        return None
    # Until the URL expires, but no longer than SERVER_ACCEL_CACHE: nginx cannot know of a revoked token or a
    # deleted item, so this bounds how long it answers for one.
    cache_for = None if signed_until is None else \
        max(0, min(signed_until - int(time.time()), int(ctx.settings.server_accel_cache)))
    return Front(redirect, _data_root(ctx.settings.data_path), cache_for)


@functools.lru_cache(maxsize=8)
def _data_root(data_path: Path) -> str:
    """Resolved once, not a realpath walk per request."""
    return os.fspath(data_path.resolve()) + "/"


@functools.lru_cache(maxsize=4096)
def _verified(secret: bytes, path: str, params: tuple[tuple[str, str], ...]) -> signing.Signed:
    """Checks a signature once; a page shown again asks for the same URLs, and an HMAC per request
    was a tenth of a hit's time. A bad signature raises, and exceptions are never cached; the expiry,
    the signer and the item's version are checked again on every call (from memory)."""
    return signing.verify(secret, path, params, now=0)
