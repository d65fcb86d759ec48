"""Multipart uploads: CreateMultipartUpload, UploadPart, UploadPartCopy, CompleteMultipartUpload,
AbortMultipartUpload, ListParts, ListMultipartUploads (services/multipart.py keeps the parts)."""

from __future__ import annotations

import dataclasses
from typing import TYPE_CHECKING

from ..errors import BadInput
from ..services import items as items_svc
from ..services import multipart as svc
from ..services.access import Role
from ..storage import ByteRange
from . import metadata
from .buckets import dataset, owner, timestamp
from .etags import s3_etag
from .objects import _copy_source, _item, check_write
from .xml import children, document, parse, text

if TYPE_CHECKING:
    from ..catalog.models import S3Upload
    from .app import S3Request


async def _upload(request: S3Request, need: Role) -> S3Upload:
    found = await dataset(request, need)
    return await svc.upload(request.ctx, found.id, request.key, request.query["uploadId"])


def _part_number(request: S3Request) -> int:
    try:
        return int(request.query.get("partNumber", ""))
    except ValueError:
        raise BadInput(f"Part number must be an integer between 1 and {svc.MAX_PARTS}, inclusive") from None


async def create(request: S3Request) -> None:
    found = await dataset(request, "write")
    upload_id = await svc.create(request.ctx, found.id, request.key, metadata.from_headers(request.headers))
    await request.answer(200, document("InitiateMultipartUploadResult", {
        "Bucket": request.bucket, "Key": request.key, "UploadId": upload_id}, namespace=True))


async def upload_part(request: S3Request) -> None:
    row = await _upload(request, "write")
    reader = request.body()
    part = await svc.put_part(request.ctx, row, _part_number(request), reader.chunks())
    headers = [(b"etag", f'"{part.md5}"'.encode())]
    if reader.checksum_name and reader.checksum_value:
        headers.append((f"x-amz-checksum-{reader.checksum_name}".encode(), reader.checksum_value.encode()))
    await request.answer(200, headers=headers)


async def upload_part_copy(request: S3Request) -> None:
    row = await _upload(request, "write")
    bucket, key = _copy_source(request.headers["x-amz-copy-source"])
    _, source = await _item(_with(request, bucket, key), "read")
    byte_range = None
    wanted = request.headers.get("x-amz-copy-source-range")
    if wanted:
        first, _, last = wanted.removeprefix("bytes=").partition("-")
        try:
            byte_range = ByteRange(int(first), int(last) + 1)
        except ValueError:
            raise BadInput("x-amz-copy-source-range must be bytes=FIRST-LAST") from None
    part = await svc.put_part(request.ctx, row, _part_number(request),
                              svc.part_source(request.ctx, source.id, byte_range))
    await request.answer(200, document("CopyPartResult", {
        "ETag": f'"{part.md5}"', "LastModified": timestamp(part.created_at)}, namespace=True))


def _with(request: S3Request, bucket: str, key: str) -> S3Request:
    return dataclasses.replace(request, bucket=bucket, key=key)


async def complete(request: S3Request) -> None:
    row = await _upload(request, "write")
    check_write(request, await items_svc.find_item(request.ctx, row.dataset_id, row.key))
    root = parse(await request.body().read(4 * 1024 * 1024), "CompleteMultipartUpload")
    asked: list[tuple[int, str]] = []
    for element in children(root, "Part"):
        try:
            asked.append((int(text(element, "PartNumber") or ""), text(element, "ETag") or ""))
        except ValueError:
            raise BadInput("a Part's PartNumber must be a whole number") from None
    if len(asked) > svc.MAX_PARTS:
        raise BadInput(f"an upload has at most {svc.MAX_PARTS} parts")
    item = await svc.complete(request.ctx, row, asked)
    await request.answer(200, document("CompleteMultipartUploadResult", {
        "Location": f"/{request.bucket}/{request.key}", "Bucket": request.bucket, "Key": request.key,
        "ETag": s3_etag(item)}, namespace=True))


async def abort(request: S3Request) -> None:
    row = await _upload(request, "write")
    await svc.abort(request.ctx, row.id)
    await request.answer(204)


async def list_parts(request: S3Request) -> None:
    row = await _upload(request, "read")
    try:
        after = int(request.query.get("part-number-marker", "0") or 0)
        limit = min(int(request.query.get("max-parts", "1000") or 1000), 1000)
    except ValueError:
        raise BadInput("part-number-marker and max-parts are whole numbers") from None
    found = await svc.parts(request.ctx, row.id, after, limit + 1)
    truncated = len(found) > limit
    found = found[:limit]
    await request.answer(200, document("ListPartsResult", {
        "Bucket": request.bucket, "Key": request.key, "UploadId": row.id,
        "Initiator": owner(request), "Owner": owner(request), "StorageClass": "STANDARD",
        "PartNumberMarker": after, "NextPartNumberMarker": found[-1].number if found else after,
        "MaxParts": limit, "IsTruncated": truncated,
        "Part": [{"PartNumber": p.number, "LastModified": timestamp(p.created_at), "ETag": f'"{p.md5}"',
                  "Size": p.size} for p in found],
    }, namespace=True))


async def list_uploads(request: S3Request) -> None:
    found = await dataset(request, "read")
    prefix = request.query.get("prefix", "")
    rows = [r for r in await svc.uploads(request.ctx, found.id) if r.key.startswith(prefix)]
    await request.answer(200, document("ListMultipartUploadsResult", {
        "Bucket": request.bucket, "KeyMarker": "", "UploadIdMarker": "", "Prefix": prefix, "MaxUploads": 1000,
        "IsTruncated": False,
        "Upload": [{"Key": r.key, "UploadId": r.id, "Initiator": owner(request), "Owner": owner(request),
                    "StorageClass": "STANDARD", "Initiated": timestamp(r.created_at)} for r in rows],
    }, namespace=True))

