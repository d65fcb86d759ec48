"""Multipart uploads: CreateMultipartUpload, UploadPart, UploadPartCopy, CompleteMultipartUpload,
AbortMultipartUpload, ListParts, ListMultipartUploads (services/multipart.py keeps the parts)."""

from __future__ import annotations

import dataclasses
import re
from typing import TYPE_CHECKING, Any

from ..errors import BadInput, RangeNotSatisfiable
from ..services import checksums
from ..services import items as items_svc
from ..services import multipart as svc
from ..services.access import Role
from ..storage import ByteRange
from . import metadata
from .buckets import dataset, owner, timestamp
from .objects import _copy_source, _item, check_write
from .xml import children, document, parse, text

if TYPE_CHECKING:
    from ..catalog.models import S3Upload
    from .app import S3Request


COPY_RANGE = re.compile(r"bytes=([0-9]+)-([0-9]+)")


async def _upload(request: S3Request, need: Role, completed_too: bool = False) -> S3Upload:
    found = await dataset(request, need)
    return await svc.upload(request.ctx, found.id, request.key, request.query["uploadId"], completed_too)


def _checksum_headers(algorithm: str | None, kind: str | None, value: str | None = None) -> list[tuple[bytes, bytes]]:
    headers = []
    if algorithm and value:
        headers.append((checksums.header(algorithm), value.encode()))
    if algorithm and kind:
        headers.append((b"x-amz-checksum-type", kind.encode()))
    return headers


def _part_number(request: S3Request) -> int:
    try:
        return int(request.query.get("partNumber", ""))
    except ValueError:
        raise BadInput(f"Part number must be an integer between 1 and {svc.MAX_PARTS}, inclusive") from None


async def create(request: S3Request) -> None:
    found = await dataset(request, "write")
    wanted = checksums.requested(request.headers)
    upload_id = await svc.create(request.ctx, found.id, request.key, metadata.from_headers(request.headers), wanted)
    headers = [(b"x-amz-checksum-algorithm", wanted[0].upper().encode()),
               (b"x-amz-checksum-type", wanted[1].encode())] if wanted else []
    await request.answer(200, document("InitiateMultipartUploadResult", {
        "Bucket": request.bucket, "Key": request.key, "UploadId": upload_id}, namespace=True), headers)


async def upload_part(request: S3Request) -> None:
    row = await _upload(request, "write")
    reader = request.body(md5=True)
    same = reader.checksum if reader.checksum_name == row.checksum_algorithm else None
    part = await svc.put_part(request.ctx, row, _part_number(request), reader.chunks(), reader.md5, same,
                              _announced(request))
    headers = [(b"etag", f'"{part.md5}"'.encode())]
    if reader.checksum_name and reader.checksum_value and reader.checksum_name != row.checksum_algorithm:
        headers.append((checksums.header(reader.checksum_name), reader.checksum_value.encode()))
    await request.answer(200, headers=headers + _checksum_headers(row.checksum_algorithm, None, part.checksum))


def _announced(request: S3Request) -> int | None:
    """The part's size as its request says it (the decoded size of an ``aws-chunked`` body); None if it does not."""
    streaming = request.verified.payload.startswith("STREAMING-")
    value = request.headers.get("x-amz-decoded-content-length" if streaming else "content-length", "")
    value = value.strip()
    return int(value) if value.isascii() and value.isdigit() else None


async def upload_part_copy(request: S3Request) -> None:
    row = await _upload(request, "write")
    bucket, key = _copy_source(request.headers["x-amz-copy-source"])
    _, source = await _item(_with(request, bucket, key), "read")
    byte_range = None
    wanted = request.headers.get("x-amz-copy-source-range")
    if wanted is not None:
        match = COPY_RANGE.fullmatch(wanted.strip())
        if match is None:
            raise BadInput("The x-amz-copy-source-range value must be of the form bytes=first-last where first "
                           "and last are the zero-based offsets of the first and last bytes to copy")
        first, last = int(match[1]), int(match[2])
        if last < first or source.size is None or last >= source.size:
            raise RangeNotSatisfiable(f"The requested range bytes={first}-{last} is not satisfiable: the source "
                                      f"has {source.size if source.size is not None else 'an unknown number of'} "
                                      "bytes")
        byte_range = ByteRange(first, last + 1)
    part = await svc.put_part(request.ctx, row, _part_number(request),
                              svc.part_source(request.ctx, source.id, byte_range))
    fields: dict[str, Any] = {"ETag": f'"{part.md5}"', "LastModified": timestamp(part.created_at)}
    if row.checksum_algorithm and part.checksum:
        fields[checksums.element(row.checksum_algorithm)] = part.checksum
    await request.answer(200, document("CopyPartResult", fields, namespace=True))


def _with(request: S3Request, bucket: str, key: str) -> S3Request:
    return dataclasses.replace(request, bucket=bucket, key=key)


async def complete(request: S3Request) -> None:
    row = await _upload(request, "write", completed_too=True)
    if not row.completed:
        check_write(request, await items_svc.find_item(request.ctx, row.dataset_id, row.key))
    # Its x-amz-checksum-* header is the object's checksum, not the manifest's.
    root = parse(await request.body(checksum_headers=False).read(4 * 1024 * 1024), "CompleteMultipartUpload")
    element = checksums.element(row.checksum_algorithm) if row.checksum_algorithm else None
    asked: list[svc.Asked] = []
    for part in children(root, "Part"):
        try:
            number = int(text(part, "PartNumber") or "")
        except ValueError:
            raise BadInput("a Part's PartNumber must be a whole number") from None
        asked.append(svc.Asked(number, text(part, "ETag") or "", text(part, element) if element else None))
    if len(asked) > svc.MAX_PARTS:
        raise BadInput(f"an upload has at most {svc.MAX_PARTS} parts")
    whole = request.headers.get(f"x-amz-checksum-{row.checksum_algorithm}") if row.checksum_algorithm else None
    done = await svc.complete(request.ctx, row, asked, whole)
    fields: dict[str, Any] = {"Location": f"/{request.bucket}/{request.key}", "Bucket": request.bucket,
                                 "Key": request.key, "ETag": f'"{done.etag}"'}
    if done.checksum:
        fields[checksums.element(done.checksum["algorithm"])] = done.checksum["value"]
        fields["ChecksumType"] = done.checksum["type"]
    await request.answer(200, document("CompleteMultipartUploadResult", fields, namespace=True))


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
                  "Size": p.size} | ({checksums.element(row.checksum_algorithm): p.checksum}
                                    if row.checksum_algorithm and p.checksum else {}) for p in found],
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

