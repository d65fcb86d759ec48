"""Team files by path: model weights, archives, anything else, in ``<prefix>-private``."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Query, Request, Response

from ...services import team_files as svc
from ...services.context import Context
from ...storage import ByteRange, Download
from ..auth import context, require_user
from ..responses import send_content
from ..schemas import TeamFileOut, TeamFilePage

router = APIRouter(tags=["team files"], dependencies=[Depends(require_user)])
Ctx = Annotated[Context, Depends(context)]


@router.get("/files")
async def list_files(
    ctx: Ctx, prefix: str = "", limit: Annotated[int, Query(ge=1, le=1000)] = 100, cursor: str | None = None
) -> TeamFilePage:
    rows, next_cursor = await svc.list_files(ctx, prefix, limit, cursor)
    return TeamFilePage(files=[TeamFileOut.of(r) for r in rows], next_cursor=next_cursor)


@router.put(
    "/files/{path:path}", status_code=201,
    openapi_extra={"requestBody": {"required": True, "content": {"application/octet-stream": {}}}},
)
async def put_file(path: str, request: Request, ctx: Ctx) -> TeamFileOut:
    """Streams the request body into the file at ``path``, replacing it whole or not at all."""
    row = await svc.put_file(ctx, path, request.stream(), request.headers.get("content-type"))
    return TeamFileOut.of(row)


@router.get("/files/{path:path}", response_class=Response,
            responses={200: {"content": {"*/*": {"schema": {"type": "string", "format": "binary"}}}},
                       206: {"description": "a byte range", "content": {"*/*": {"schema": {"type": "string"}}}}})
async def get_file(path: str, request: Request, ctx: Ctx) -> Response:
    row = await svc.get_file(ctx, path)

    async def open_bytes(byte_range: ByteRange | None) -> Download:
        return await svc.open_file(ctx, row, byte_range)

    return await send_content(
        request, size=row.size, etag=f'"{row.sha256}"', last_modified=row.updated_at,
        content_type=row.content_type, filename=row.path, open_bytes=open_bytes,
    )


@router.delete("/files/{path:path}", status_code=204)
async def delete_file(path: str, ctx: Ctx) -> Response:
    await svc.delete_file(ctx, path)
    return Response(status_code=204)
