"""Single items: metadata, content, signed URLs."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated

from fastapi import APIRouter, Depends, Request, Response

from ..services import items as svc
from ..services import links as links_svc
from ..services import signing
from ..services.blobs import content_key
from ..services.context import Context
from ..storage import ByteRange, Download
from ..storage.uris import parse_link
from .auth import context, require_user
from .content import send_content
from .schemas import ItemOut, SignIn, SignOut

router = APIRouter(tags=["items"])
Ctx = Annotated[Context, Depends(context)]


@router.get("/items/{item_id}", dependencies=[Depends(require_user)])
async def get_item(item_id: int, ctx: Ctx) -> ItemOut:
    return ItemOut.of(await svc.get_item(ctx, item_id))


@router.delete("/items/{item_id}", status_code=204, dependencies=[Depends(require_user)])
async def delete_item(item_id: int, ctx: Ctx) -> Response:
    """Removes the item from the catalog. Stored bytes no other item uses are left to `cargohold gc`;
    a linked file is never touched."""
    await svc.delete_item(ctx, item_id)
    return Response(status_code=204)


@router.get(
    "/items/{item_id}/content",
    dependencies=[Depends(require_user)],
    response_class=Response,
    responses={200: {"content": {"application/octet-stream": {}}}, 206: {"description": "a byte range"},
               304: {"description": "not modified"}, 416: {"description": "range not satisfiable"}},
)
async def get_content(item_id: int, request: Request, ctx: Ctx) -> Response:
    item = await svc.get_item(ctx, item_id)
    if item.source == "link" and item.uri:
        return await _linked_content(request, ctx, item.uri, item.mime_type, item.name)

    async def open_bytes(byte_range: ByteRange | None) -> Download:
        return await ctx.storage.public.get(content_key(item.sha256 or ""), byte_range)

    return await send_content(
        request, size=item.size or 0, etag=f'"{item.sha256}"', last_modified=item.created_at,
        content_type=item.mime_type, filename=item.name, open_bytes=open_bytes,
    )


async def _linked_content(request: Request, ctx: Context, uri: str, mime_type: str, name: str) -> Response:
    """A linked file, read with its connection's credentials. Its size and ETag are asked for on each
    request: the file may have changed since it was linked. (The storage cache tier will keep a copy.)"""
    link = parse_link(uri)
    meta = await links_svc.head_link(ctx, link)

    async def open_bytes(byte_range: ByteRange | None) -> Download:
        return await links_svc.open_link(ctx, link, byte_range)

    etag = meta.etag if meta.etag and meta.etag.startswith(('"', 'W/"')) else f'"{meta.etag or meta.size}"'
    return await send_content(
        request, size=meta.size, etag=etag, last_modified=meta.last_modified or datetime.now(UTC),
        content_type=mime_type, filename=name, open_bytes=open_bytes,
    )


@router.post("/items/{item_id}/sign", dependencies=[Depends(require_user)])
async def sign_item(item_id: int, body: SignIn, request: Request, ctx: Ctx) -> SignOut:
    """A content URL that works without a token until it expires (HMAC over path and expiry)."""
    await svc.get_item(ctx, item_id)
    path = request.app.url_path_for("get_content", item_id=str(item_id))
    expires, signature = signing.sign(ctx.secret, path, body.expires_in)
    url = str(request.base_url).rstrip("/") + f"{path}?expires={expires}&signature={signature}"
    return SignOut(url=url, expires_at=datetime.fromtimestamp(expires, UTC))
