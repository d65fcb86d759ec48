"""Team files by path: model weights, archives, anything else, in ``<prefix>-private``."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Query, Request, Response

from ...services import team_files as svc
from ...services.context import Context
from ..auth import User, context, read_file, require_user, write_file
from ..responses import RepresentationResponse
from ..schemas import TeamFileOut, TeamFilePage

router = APIRouter(tags=["team files"], dependencies=[Depends(require_user)])
Ctx = Annotated[Context, Depends(context)]


@router.get("/files")
async def list_files(
    ctx: Ctx, principal: User, prefix: str = "", limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    cursor: str | None = None,
) -> TeamFilePage:
    """The team files under ``prefix`` that this token reaches."""
    rows, next_cursor = await svc.list_files(ctx, prefix, limit, cursor, principal.scope.files)
    return TeamFilePage(files=[TeamFileOut.of(r) for r in rows], next_cursor=next_cursor)


@router.put(
    "/files/{path:path}", status_code=201, dependencies=[Depends(write_file)],
    openapi_extra={"requestBody": {"required": True, "content": {"application/octet-stream": {}}}},
)
async def put_file(path: str, request: Request, ctx: Ctx) -> TeamFileOut:
    """Streams the request body into the file at ``path``, replacing it whole or not at all."""
    row = await svc.put_file(ctx, path, request.stream(), request.headers.get("content-type"))
    return TeamFileOut.of(row)


@router.api_route("/files/{path:path}", methods=["GET", "HEAD"], response_class=Response,
                  dependencies=[Depends(read_file)],
                  responses={200: {"content": {"*/*": {"schema": {"type": "string", "format": "binary"}}}},
                             206: {"description": "a byte range", "content": {"*/*": {"schema": {"type": "string"}}}}})
async def get_file(path: str, ctx: Ctx) -> Response:
    """The file's bytes, answered as an item's content is: ``Range``, ``If-None-Match`` and ``If-Range``
    honoured, ``X-Content-Type-Options: nosniff`` and ``Content-Security-Policy: sandbox``."""
    row = await svc.get_file(ctx, path)
    return RepresentationResponse(svc.representation(ctx, row))


@router.delete("/files/{path:path}", status_code=204, dependencies=[Depends(write_file)])
async def delete_file(path: str, ctx: Ctx) -> Response:
    await svc.delete_file(ctx, path)
    return Response(status_code=204)
