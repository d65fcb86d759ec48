"""Single items: metadata, content, previews, signed URLs."""

from __future__ import annotations

import time
from datetime import UTC, datetime
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request, Response
from starlette.types import Receive, Scope, Send

from ...errors import BadInput
from ...media.preview import ImageFormat
from ...services import access, signing
from ...services import bulk as bulk_svc
from ...services import items as svc
from ...services.context import Context
from ...services.tokens import Principal
from .. import params
from ..auth import User, context, read_item, require_write, write_item
from ..hot import serve
from ..schemas import (
    BulkIn,
    BulkOut,
    BulkResult,
    ErrorBody,
    ItemOut,
    ItemPatch,
    MoveOut,
    SignIn,
    SignManyIn,
    SignManyOut,
    SignOut,
)

router = APIRouter(tags=["items"])
Ctx = Annotated[Context, Depends(context)]


@router.get("/items/{item_id}", dependencies=[Depends(read_item)])
async def get_item(item_id: int, ctx: Ctx) -> ItemOut:
    return ItemOut.of(await svc.get_item(ctx, item_id))


@router.patch("/items/{item_id}", dependencies=[Depends(write_item)])
async def move_item(item_id: int, body: ItemPatch, principal: User, ctx: Ctx,
                    conflict: svc.Conflict = "rename") -> MoveOut:
    """Rename the item and/or move it to another dataset: its catalog row changes, no bytes are copied or moved
    (a linked file stays where it is). A name taken there is settled by `conflict`, as for uploads: `rename`
    (`name (1).ext`), `skip` (nothing changes), `replace` (the item there is deleted)."""
    if body.name is None and body.dataset_id is None:
        raise BadInput("give the item's new name, its new dataset_id, or both")
    if body.dataset_id is not None:
        access.require(principal.scope, "write", dataset=body.dataset_id)
    status, item = await svc.move_item(ctx, item_id, body.name, body.dataset_id, conflict)
    return MoveOut(status=status, item=ItemOut.of(item))


@router.post("/items/bulk", dependencies=[Depends(require_write)])
async def bulk(body: BulkIn, principal: User, ctx: Ctx) -> BulkOut:
    """Delete or move a selection (`ids`) or every item under a folder (`dataset_id` + `prefix`), each item on
    its own with its own result: one that fails (gone, out of the token's reach, a name it cannot take) says
    why, and the others are done. At most 1,000 items a request; a larger folder answers `more` and is asked
    again. Nothing is copied: a move changes rows, a delete leaves stored bytes to gc and never touches a
    linked file."""
    if body.dataset_id is not None:
        access.require(principal.scope, "write", dataset=body.dataset_id)
    chosen, names, more = await bulk_svc.selected(ctx, body.ids, body.dataset_id, body.prefix)
    outcomes = await bulk_svc.run(ctx, principal.scope, body.action, chosen, names, prefix=body.prefix,
                                  to_dataset=body.to_dataset_id, to_prefix=body.to_prefix, conflict=body.conflict)
    return BulkOut(more=more, results=[BulkResult(
        id=o.id, status=o.status,
        item=ItemOut.of(o.item) if o.item is not None else None,
        error=ErrorBody(code=o.error.code, message=o.error.message) if o.error is not None else None,
    ) for o in outcomes])


@router.delete("/items/{item_id}", status_code=204, dependencies=[Depends(write_item)])
async def delete_item(item_id: int, ctx: Ctx) -> Response:
    """Removes the item from the catalog. Stored bytes no other item uses are left to `cargohold gc`;
    a linked file is never touched."""
    await svc.delete_item(ctx, item_id)
    return Response(status_code=204)


_ANY = {"*/*": {"schema": {"type": "string", "format": "binary"}}}  # the item's own type
_BYTES: dict[int | str, dict[str, Any]] = {
    200: {"content": _ANY}, 206: {"description": "a byte range", "content": _ANY},
    304: {"description": "not modified"}, 416: {"description": "range not satisfiable"},
    422: {"description": "not an image, or more pixels than IMAGE_MAX_PIXELS"},
    502: {"description": "the remote holding the original failed"},
    504: {"description": "the remote holding the original sent nothing in time"},
}


class _Served(Response):
    """Answers through the hot route's code (http/hot.py), which normally takes these paths before
    FastAPI sees them; the routes below describe them in the OpenAPI document."""

    def __init__(self, item_id: int, what: str) -> None:
        super().__init__()
        self.item_id, self.what = item_id, what

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        await serve(scope["app"].state.ctx, scope, send, self.item_id, self.what)


@router.get("/items/{item_id}/content", response_class=Response, responses=_BYTES)
async def get_content(
    item_id: int,
    format: params.Conversion = None,
) -> Response:
    """The item's bytes: ``Range``, ``If-None-Match`` and ``If-Range`` honoured. Remote originals come
    through the storage cache tier. Opens with a token or with a signed URL (``POST .../sign``)."""
    return _Served(item_id, "content")


_IMAGE = {"schema": {"type": "string", "format": "binary"}}
_PREVIEW = {**_BYTES, 200: {"content": {"image/jpeg": _IMAGE, "image/png": _IMAGE, "image/webp": _IMAGE}}}


@router.get("/items/{item_id}/preview", response_class=Response, responses=_PREVIEW)
async def get_preview(
    item_id: int,
    w: params.Width = params.DEFAULT.width,
    h: params.Height = params.DEFAULT.height,
    fit: params.FitParam = params.DEFAULT.fit,
    format: ImageFormat = params.DEFAULT.format,
    q: params.Quality = params.DEFAULT.quality,
) -> Response:
    """A preview of an image item, made once and kept in the previews tier. EXIF orientation applied;
    never larger than the original. A video's preview is its poster: the frame at a tenth of its duration."""
    return _Served(item_id, "preview")


_FRAMES_DOC = """Frame ``n`` of a video (0-based, in presentation order: B-frames, variable rates and edit lists
    included), or with ``?t=SECONDS`` the frame shown at that time, sized and encoded as a preview (the same
    ``w``, ``h``, ``fit``, ``format``, ``q``), rotation applied, kept in the previews tier (docs/VIDEO.md)."""


@router.get("/items/{item_id}/frames/{n}", response_class=Response, responses=_PREVIEW, description=_FRAMES_DOC)
async def get_frame(
    item_id: int,
    n: int,
    w: params.Width = params.DEFAULT.width,
    h: params.Height = params.DEFAULT.height,
    fit: params.FitParam = params.DEFAULT.fit,
    format: ImageFormat = params.DEFAULT.format,
    q: params.Quality = params.DEFAULT.quality,
) -> Response:
    return _Served(item_id, f"frames/{n}")


@router.get("/items/{item_id}/frames", response_class=Response, responses=_PREVIEW, description=_FRAMES_DOC)
async def get_frame_at(
    item_id: int,
    t: float,
    w: params.Width = params.DEFAULT.width,
    h: params.Height = params.DEFAULT.height,
    fit: params.FitParam = params.DEFAULT.fit,
    format: ImageFormat = params.DEFAULT.format,
    q: params.Quality = params.DEFAULT.quality,
) -> Response:
    return _Served(item_id, "frames")


def _signed_url(request: Request, ctx: Context, item_id: int, version: str, principal: Principal,
                body: SignIn) -> tuple[str, int]:
    params: dict[str, str] = {}
    if body.frame is not None:
        if body.format is not None:
            raise BadInput("a frame is sized by `preview`; `format` signs a content conversion: give one of them")
        path = request.app.url_path_for("get_frame", item_id=str(item_id), n=str(body.frame))
        if body.preview is not None:
            params = {k: str(v) for k, v in body.preview.model_dump().items()}
    elif body.preview is not None:
        path = request.app.url_path_for("get_preview", item_id=str(item_id))
        params = {k: str(v) for k, v in body.preview.model_dump().items()}
    else:
        path = request.app.url_path_for("get_content", item_id=str(item_id))
        if body.format is not None:
            params = {"format": body.format}
    expires, query = signing.sign(ctx.secret, path, body.expires_in, signer=principal.token_id, version=version,
                                  params=params)
    # The configured address, never the request's Host header: a URL handed on must lead to this server.
    return f"{ctx.settings.public_url}{path}?{query}", expires


@router.post("/items/{item_id}/sign", dependencies=[Depends(read_item)])
async def sign_item(item_id: int, body: SignIn, request: Request, ctx: Ctx, principal: User) -> SignOut:
    """A URL that opens the item's content, a conversion (``format``) or a preview (``preview``) without a
    token until it expires: HMAC over the path, its parameters, the expiry, the item's version and the
    signing token. It stops opening when the item is deleted or replaced, or the token revoked."""
    version = signing.item_version(await svc.get_item(ctx, item_id))
    url, expires = _signed_url(request, ctx, item_id, version, principal, body)
    return SignOut(url=url, expires_at=datetime.fromtimestamp(expires, UTC))


@router.post("/sign")
async def sign_items(body: SignManyIn, request: Request, ctx: Ctx, principal: User) -> SignManyOut:
    """Signed URLs for many items at once (a page of thumbnails): one per item that exists and this token
    reaches; other ids are left out."""
    versions = await signing.item_versions(ctx, body.items, principal.scope.datasets)
    urls: dict[str, str] = {}
    expires = 0
    for item_id in body.items:
        if item_id in versions:
            urls[str(item_id)], expires = _signed_url(request, ctx, item_id, versions[item_id], principal, body)
    return SignManyOut(urls=urls, expires_at=datetime.fromtimestamp(expires or time.time() + body.expires_in, UTC))
