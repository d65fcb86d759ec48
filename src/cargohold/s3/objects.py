"""Object operations: HeadObject, GetObject, PutObject, CopyObject, DeleteObject, DeleteObjects. An object is an
item named by its key; its bytes go out through the one sender (http/responses.py), stored and linked alike."""

from __future__ import annotations

import base64
import contextlib
import dataclasses
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import TYPE_CHECKING, Any
from urllib.parse import unquote

from starlette.types import Message

from ..catalog.models import Item
from ..errors import BadInput, CargoholdError, InvalidPart, InvalidRequest, NotFound, PreconditionFailed
from ..http.responses import etag_matches, http_date, request_headers, send_representation
from ..media import Limits
from ..services import access, checksums, serving
from ..services import items as items_svc
from ..services.blobs import store_blob
from ..services.multipart import MAX_PARTS
from ..storage.base import chain, peek
from . import metadata
from .buckets import MAX_KEYS, dataset, timestamp
from .etags import s3_etag
from .xml import children, document, parse, text

if TYPE_CHECKING:
    from .app import S3Request

OVERRIDES = {"response-content-type": b"content-type", "response-content-language": b"content-language",
             "response-expires": b"expires", "response-cache-control": b"cache-control",
             "response-content-disposition": b"content-disposition",
             "response-content-encoding": b"content-encoding"}
MAX_DELETE = 1000


def no_such_key() -> NotFound:
    return NotFound("The specified key does not exist.")


async def _item(request: S3Request, need: access.Role) -> tuple[int, Item]:
    found = await dataset(request, need)
    item = await items_svc.find_item_remembered(request.ctx, found.id, request.key)
    if item is None:
        raise no_such_key()
    return found.id, item


async def get_object(request: S3Request) -> None:
    await _send(request, head=False)


async def head_object(request: S3Request) -> None:
    await _send(request, head=True)


def _part_number(request: S3Request) -> int | None:
    given = request.query.get("partNumber")
    if given is None:
        return None
    if not given.isdigit() or not 1 <= int(given) <= MAX_PARTS:
        raise BadInput(f"Part number must be an integer between 1 and {MAX_PARTS}, inclusive")
    return int(given)


def _checksum(item: Item) -> tuple[str, str, str] | None:
    """``(algorithm, type, value)`` of the whole object: the one it kept, else cargohold's SHA-256 of it."""
    kept = checksums.kept(item.s3)
    if kept:
        return kept["algorithm"], kept["type"], kept["value"]
    if item.source == "stored" and item.sha256:
        return "sha256", checksums.FULL_OBJECT, base64.b64encode(bytes.fromhex(item.sha256)).decode()
    return None


async def _send(request: S3Request, head: bool) -> None:
    number = _part_number(request)
    _, item = await _item(request, "read")
    if item.source == items_svc.FOLDER:  # an empty folder's marker: no bytes
        await request.answer(200, headers=[(b"etag", s3_etag(item).encode()), (b"content-length", b"0"),
                                           (b"last-modified", http_date(item.created_at))])
        return
    representation = dataclasses.replace(await serving.content(request.ctx, item.id), etag=s3_etag(item))
    extra = request.base_headers() + metadata.to_headers(item.meta)
    for param, header in OVERRIDES.items():
        if param in request.query:
            extra.append((header, request.query[param].encode("latin-1", "replace")))
    headers = request_headers(request.scope)
    parts = checksums.parts(item.s3)
    # The checksum for a whole-object answer, or a part's: S3 sends none with a range (clients check it
    # against the bytes they get), nor with a 304 (botocore, asking for checksums by default, reads a 304's
    # checksum and fails on its empty body).
    conditional = any(h in request.headers for h in ("if-none-match", "if-modified-since"))
    checksum = None if "range" in request.headers or conditional else _checksum(item)
    if number is not None and (parts or number > 1):
        if number > len(parts):
            raise InvalidPart(f"The requested partNumber {number} is not satisfiable: the object has "
                              f"{len(parts) or 1} part{'s' if len(parts) > 1 else ''}")
        start = sum(size for size, _ in parts[:number - 1])
        size, part_checksum = parts[number - 1]
        headers = {k: v for k, v in headers.items() if k != b"range"}
        headers[b"range"] = f"bytes={start}-{start + size - 1}".encode()
        extra.append((b"x-amz-mp-parts-count", str(len(parts)).encode()))
        checksum = (checksum[0], checksum[1], part_checksum) if checksum and part_checksum and \
            checksums.kept(item.s3) else None
    if checksum is not None and request.headers.get("x-amz-checksum-mode", "").upper() == "ENABLED":
        algorithm, kind, value = checksum
        extra += [(checksums.header(algorithm), value.encode()), (b"x-amz-checksum-type", kind.encode())]

    async def tracked(message: Message) -> None:
        request.started = True
        await request.send(message)

    await send_representation(tracked, head, representation, headers, extra=extra, on_error=request.send_error)


ATTRIBUTES = frozenset({"ETag", "Checksum", "ObjectParts", "StorageClass", "ObjectSize"})


async def get_object_attributes(request: S3Request) -> None:
    """GetObjectAttributes: the ETag (unquoted, as S3 gives it here), checksum, parts (paged by
    ``x-amz-max-parts`` and ``x-amz-part-number-marker``), storage class and size asked for."""
    asked = {a.strip() for a in request.headers.get("x-amz-object-attributes", "").split(",") if a.strip()}
    if not asked or asked - ATTRIBUTES:
        raise BadInput(f"x-amz-object-attributes names one or more of {', '.join(sorted(ATTRIBUTES))}")
    _, item = await _item(request, "read")
    fields: dict[str, Any] = {}
    if "ETag" in asked:
        fields["ETag"] = s3_etag(item).strip('"')
    checksum = _checksum(item)
    if "Checksum" in asked and checksum is not None:
        fields["Checksum"] = {checksums.element(checksum[0]): checksum[2], "ChecksumType": checksum[1]}
    parts = checksums.parts(item.s3)
    if "ObjectParts" in asked and parts:
        try:
            marker = int(request.headers.get("x-amz-part-number-marker", "0") or 0)
            limit = min(int(request.headers.get("x-amz-max-parts", str(MAX_KEYS)) or MAX_KEYS), MAX_KEYS)
        except ValueError:
            raise BadInput("x-amz-part-number-marker and x-amz-max-parts are whole numbers") from None
        page = list(enumerate(parts, start=1))[marker:marker + limit]
        algorithm = checksum[0] if checksum and checksums.kept(item.s3) else None
        fields["ObjectParts"] = {
            "PartsCount": len(parts), "PartNumberMarker": marker,
            "NextPartNumberMarker": page[-1][0] if page else marker, "MaxParts": limit,
            "IsTruncated": marker + limit < len(parts),
            "Part": [{"PartNumber": n, "Size": size} | ({checksums.element(algorithm): value}
                                                       if algorithm and value else {})
                     for n, (size, value) in page]}
    if "StorageClass" in asked:
        fields["StorageClass"] = "STANDARD"
    if "ObjectSize" in asked and item.size is not None:
        fields["ObjectSize"] = item.size
    await request.answer(200, document("GetObjectAttributesResponse", fields, namespace=True),
                         [(b"last-modified", http_date(item.created_at))])


async def put_object(request: S3Request) -> None:
    found = await dataset(request, "write")
    name = request.key
    reader = request.body()
    chunks = reader.chunks()
    if name.endswith("/"):
        items_svc.check_name(name.rstrip("/") or "/", "object key")
        head, rest = await peek(chunks, 0)
        if rest is None:  # no byte (with a limit of 0, any byte comes back with the rest)
            # A folder marker (consoles, rclone, PyArrow write them): kept as an empty folder, not an item.
            check_write(request, existing := await items_svc.find_item(request.ctx, found.id, name))
            if existing is not None:  # an object with bytes under the folder's key: S3 puts the empty one over it
                await items_svc.delete_item(request.ctx, existing.id)
            folder = await items_svc.add_folder(request.ctx, found.id, name)
            await request.answer(200, headers=[(b"etag", s3_etag(folder).encode())])
            return
        # Bytes under a key ending in '/': an object like any other in S3 (listed under its own prefix).
        chunks = chain(head, rest)
    else:
        name = items_svc.check_name(name, "object key")
    check_write(request, await items_svc.find_item(request.ctx, found.id, name))
    meta = metadata.from_headers(request.headers)
    settings = request.ctx.settings
    blob = await store_blob(request.ctx.storage.public, name, chunks, settings.upload_max_size,
                            Limits.of(settings))
    checksum = {"algorithm": reader.checksum_name, "type": checksums.FULL_OBJECT, "value": reader.checksum_value} \
        if reader.checksum_name and reader.checksum_value else None
    _, item = await items_svc.add_stored_item(request.ctx, found.id, name, blob, "replace", meta,
                                              {"checksum": checksum} if checksum else None)
    headers = [(b"etag", s3_etag(item).encode())]
    if checksum:
        headers += [(checksums.header(checksum["algorithm"]), checksum["value"].encode()),
                    (b"x-amz-checksum-type", checksums.FULL_OBJECT.encode())]
    await request.answer(200, headers=headers)


def _copy_source(header: str) -> tuple[str, str]:
    source = unquote(header.split("?", 1)[0]).lstrip("/")
    bucket, _, key = source.partition("/")
    if not bucket or not key:
        raise BadInput("x-amz-copy-source must be /bucket/key")
    return bucket, key


def check_write(request: S3Request, existing: Item | None) -> None:
    """PutObject's and CompleteMultipartUpload's conditions: ``If-None-Match: *`` (write only what is not
    there) and ``If-Match`` (replace only that version). Checked before the body is read; a write racing this
    one between the check and the row is not seen (the catalog has no compare-and-set on it yet)."""
    none_match = request.headers.get("if-none-match")
    if none_match is not None and existing is not None and (
            none_match.strip() == "*" or etag_matches(none_match, s3_etag(existing))):
        raise PreconditionFailed("At least one of the pre-conditions you specified did not hold (If-None-Match)",
                                 "If-None-Match")
    match = request.headers.get("if-match")
    if match is not None:
        if existing is None:
            raise no_such_key()
        if not etag_matches(match, s3_etag(existing)):
            raise PreconditionFailed("At least one of the pre-conditions you specified did not hold (If-Match)",
                                     "If-Match")


def _copy_conditions(request: S3Request, source: Item) -> None:
    etag = s3_etag(source)
    headers = request.headers
    failed = None
    if (match := headers.get("x-amz-copy-source-if-match")) is not None and not etag_matches(match, etag):
        failed = "x-amz-copy-source-if-match"
    if (none := headers.get("x-amz-copy-source-if-none-match")) is not None and etag_matches(none, etag):
        failed = "x-amz-copy-source-if-none-match"
    modified = source.created_at.replace(microsecond=0)
    if (since := _date(headers.get("x-amz-copy-source-if-unmodified-since"))) is not None and modified > since:
        failed = "x-amz-copy-source-if-unmodified-since"
    if (since := _date(headers.get("x-amz-copy-source-if-modified-since"))) is not None and modified <= since:
        failed = "x-amz-copy-source-if-modified-since"
    if failed:
        raise PreconditionFailed(f"At least one of the pre-conditions you specified did not hold ({failed})", failed)


def _date(value: str | None) -> datetime | None:
    if value is None:
        return None
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return when if when.tzinfo is not None else when.replace(tzinfo=UTC)  # "-0000": UTC, said without a zone


async def copy_object(request: S3Request) -> None:
    target = await dataset(request, "write")
    bucket, key = _copy_source(request.headers["x-amz-copy-source"])
    source_request = dataclasses.replace(request, bucket=bucket, key=key)
    _, source = await _item(source_request, "read")
    _copy_conditions(request, source)
    replace = request.headers.get("x-amz-metadata-directive", "COPY").upper() == "REPLACE"
    if (bucket, key) == (request.bucket, request.key) and not replace:
        raise InvalidRequest("This copy request is illegal because it is trying to copy an object to itself "
                             "without changing the object's metadata, storage class, website redirect location or "
                             "encryption attributes.")
    if source.source == items_svc.FOLDER:
        copied = await items_svc.add_folder(request.ctx, target.id, request.key)
    else:
        copied = await items_svc.copy_item(request.ctx, source, target.id,
                                           items_svc.check_name(request.key, "object key"),
                                           meta=metadata.from_headers(request.headers), replace_meta=replace)
    await request.answer(200, document("CopyObjectResult", {
        "ETag": s3_etag(copied), "LastModified": timestamp(copied.created_at)}, namespace=True))


async def delete_object(request: S3Request) -> None:
    """Removes the item's row; a linked item's object is never touched. An absent key is no error (S3)."""
    found = await dataset(request, "write")
    item = await items_svc.find_item(request.ctx, found.id, request.key)
    if item is not None:
        with contextlib.suppress(NotFound):  # deleted meanwhile
            await items_svc.delete_item(request.ctx, item.id)
    await request.answer(204)


async def delete_objects(request: S3Request) -> None:
    found = await dataset(request, "write")
    root = parse(await request.body().read(2 * 1024 * 1024), "Delete")
    quiet = (text(root, "Quiet") or "").strip().lower() == "true"
    keys = [text(element, "Key") or "" for element in children(root, "Object")]
    if len(keys) > MAX_DELETE:
        raise BadInput(f"a DeleteObjects request names at most {MAX_DELETE} keys")
    deleted: list[dict[str, str]] = []
    failed: list[dict[str, str]] = []
    for key in keys:
        try:
            item = await items_svc.find_item(request.ctx, found.id, key)
            if item is not None:
                await items_svc.delete_item(request.ctx, item.id)
        except NotFound:
            pass
        except CargoholdError as exc:
            failed.append({"Key": key, "Code": "InternalError", "Message": exc.message})
            continue
        deleted.append({"Key": key})
    await request.answer(200, document("DeleteResult", {
        "Deleted": [] if quiet else deleted, "Error": failed}, namespace=True))
