"""Datasets, their items, and uploads into them."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Query, Request, Response

from ...errors import BadInput
from ...media import Limits
from ...services import access
from ...services import items as svc
from ...services.blobs import store_blob
from ...services.context import Context
from ..auth import User, context, read_dataset, require_user, require_write, write_dataset
from ..multipart import iter_parts
from ..schemas import DatasetIn, DatasetList, DatasetOut, ItemOut, ItemPage, UploadOut, UploadResult

router = APIRouter(tags=["datasets"], dependencies=[Depends(require_user)])
Ctx = Annotated[Context, Depends(context)]

UPLOAD_BODY = {
    "requestBody": {
        "required": True,
        "content": {"multipart/form-data": {"schema": {
            "type": "object",
            "properties": {"files": {"type": "array", "items": {"type": "string", "format": "binary"}}},
        }}},
    }
}


@router.post("/datasets", status_code=201, dependencies=[Depends(require_write)])
async def create_dataset(body: DatasetIn, ctx: Ctx, principal: User) -> DatasetOut:
    access.require_unlimited(principal.scope, "create a dataset")
    return DatasetOut.of(await svc.create_dataset(ctx, body.name))


@router.get("/datasets")
async def list_datasets(ctx: Ctx, principal: User) -> DatasetList:
    """The datasets this token reaches."""
    found = await svc.list_datasets(ctx)
    return DatasetList(datasets=[DatasetOut.of(d) for d in found if principal.scope.reaches_dataset(d.dataset.id)])


@router.get("/datasets/{dataset_id}", dependencies=[Depends(read_dataset)])
async def get_dataset(dataset_id: int, ctx: Ctx) -> DatasetOut:
    return DatasetOut.of(await svc.get_dataset(ctx, dataset_id))


@router.delete("/datasets/{dataset_id}", status_code=204, dependencies=[Depends(write_dataset)])
async def delete_dataset(dataset_id: int, ctx: Ctx) -> Response:
    await svc.delete_dataset(ctx, dataset_id)
    return Response(status_code=204)


@router.get("/datasets/{dataset_id}/items", dependencies=[Depends(read_dataset)])
async def list_items(
    dataset_id: int, ctx: Ctx, limit: Annotated[int, Query(ge=1, le=1000)] = 100, cursor: str | None = None,
    name: Annotated[str | None, Query(max_length=1024, description="Only items whose name contains this, any case")]
    = None,
    prefix: Annotated[str | None, Query(max_length=1024, description=(
        "Only items whose name starts with this (a folder: `a/b/`), in name order"))] = None,
    delimiter: Annotated[str | None, Query(min_length=1, max_length=16, description=(
        "With `/`: one folder level, the names holding it after the prefix given once as `folders`"))] = None,
) -> ItemPage:
    """Without `prefix` or `delimiter`: every item, in upload order. With them: one folder, in name order (UTF-8
    bytes, as S3 lists), its subfolders in `folders`; a page costs a page however large the folder."""
    if prefix is not None or delimiter is not None:
        if name is not None:
            raise BadInput("name filters the listing of every item; give it without prefix and delimiter")
        rows, folders, next_cursor = await svc.list_folder(ctx, dataset_id, prefix or "", delimiter or "", limit,
                                                           cursor)
        return ItemPage(items=[ItemOut.of(i) for i in rows], folders=folders, next_cursor=next_cursor)
    rows, next_cursor = await svc.list_items(ctx, dataset_id, limit, cursor, name)
    return ItemPage(items=[ItemOut.of(i) for i in rows], next_cursor=next_cursor)


@router.post("/datasets/{dataset_id}/items", status_code=201, openapi_extra=UPLOAD_BODY,
             dependencies=[Depends(write_dataset)])
async def upload_items(dataset_id: int, request: Request, ctx: Ctx, conflict: svc.Conflict = "rename") -> UploadOut:
    """Upload one or many files (multipart parts with a filename), streamed into own storage.

    Files before a refused one stay stored; the answer then is the error alone."""
    await svc.require_dataset(ctx, dataset_id)  # 404 before reading any of the body
    limit = ctx.settings.upload_max_size  # per file, however the request is sent
    results: list[UploadResult] = []
    async for part in iter_parts(request.headers.get("content-type"), request.stream()):
        if part.filename is None:
            continue  # a plain form field
        name = svc.check_name(part.filename)
        if conflict == "skip":
            existing = await svc.find_item(ctx, dataset_id, name)
            if existing is not None:
                results.append(UploadResult(filename=name, status="skipped", item=ItemOut.of(existing)))
                continue
        blob = await store_blob(ctx.storage.public, name, part.chunks, limit, Limits.of(ctx.settings))
        status, item = await svc.add_stored_item(ctx, dataset_id, name, blob, conflict)
        results.append(UploadResult(filename=name, status=status, item=ItemOut.of(item)))  # type: ignore[arg-type]
    if not results:
        raise BadInput("the request has no file part: send files as multipart/form-data parts with a filename")
    return UploadOut(results=results)


