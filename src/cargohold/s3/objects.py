"""Object operations: HeadObject, GetObject, PutObject, CopyObject, DeleteObject, DeleteObjects. An object is an
item named by its key; its bytes go out through the one sender (http/responses.py), stored and linked alike."""

from __future__ import annotations

import base64
import contextlib
import dataclasses
from typing import TYPE_CHECKING
from urllib.parse import unquote

from starlette.types import Message

from ..catalog.models import Item
from ..errors import BadInput, CargoholdError, NotFound, Unsupported
from ..http.responses import http_date, request_headers, send_representation
from ..services import access, serving
from ..services import items as items_svc
from ..services.blobs import store_blob
from .buckets import dataset, timestamp
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
    item = await items_svc.find_item(request.ctx, found.id, request.key)
    if item is None:
        raise no_such_key()
    return found.id, item


async def get_object(request: S3Request) -> None:
    await _send(request, head=False)


async def head_object(request: S3Request) -> None:
    await _send(request, head=True)


async def _send(request: S3Request, head: bool) -> None:
    if request.query.get("partNumber") not in (None, "1"):
        raise Unsupported("GetObject by partNumber is not implemented")
    _, item = await _item(request, "read")
    if item.source == items_svc.FOLDER:  # an empty folder's marker: no bytes
        await request.answer(200, headers=[(b"etag", s3_etag(item).encode()), (b"content-length", b"0"),
                                           (b"last-modified", http_date(item.created_at))])
        return
    representation = dataclasses.replace(await serving.content(request.ctx, item.id), etag=s3_etag(item))
    extra = request.base_headers()
    for param, header in OVERRIDES.items():
        if param in request.query:
            extra.append((header, request.query[param].encode("latin-1", "replace")))
    # The whole object's checksum, for a whole-object answer only (S3 sends none with a range: clients check it
    # against the bytes they get).
    whole = "range" not in request.headers
    if whole and request.headers.get("x-amz-checksum-mode", "").upper() == "ENABLED" and item.source == "stored" \
            and item.sha256:
        checksum = base64.b64encode(bytes.fromhex(item.sha256)).decode()
        extra += [(b"x-amz-checksum-sha256", checksum.encode()), (b"x-amz-checksum-type", b"FULL_OBJECT")]

    async def tracked(message: Message) -> None:
        request.started = True
        await request.send(message)

    await send_representation(tracked, head, representation, request_headers(request.scope), extra=extra,
                              on_error=request.send_error)


async def put_object(request: S3Request) -> None:
    found = await dataset(request, "write")
    name = request.key
    reader = request.body()
    if name.endswith("/"):
        # A folder marker (consoles, rclone, PyArrow write them): kept as an empty folder, not an item.
        if await reader.read(0):
            raise BadInput("a key ending in '/' names a folder: it holds no bytes")
        folder = await items_svc.add_folder(request.ctx, found.id, name)
        await request.answer(200, headers=[(b"etag", s3_etag(folder).encode())])
        return
    name = items_svc.check_name(name, "object key")
    settings = request.ctx.settings
    blob = await store_blob(request.ctx.storage.public, name, reader.chunks(), settings.upload_max_size,
                            settings.image_max_pixels)
    _, item = await items_svc.add_stored_item(request.ctx, found.id, name, blob, "replace")
    headers = [(b"etag", s3_etag(item).encode())]
    if reader.checksum_name and reader.checksum_value:
        headers.append((f"x-amz-checksum-{reader.checksum_name}".encode(), reader.checksum_value.encode()))
    await request.answer(200, headers=headers)


def _copy_source(header: str) -> tuple[str, str]:
    source = unquote(header.split("?", 1)[0]).lstrip("/")
    bucket, _, key = source.partition("/")
    if not bucket or not key:
        raise BadInput("x-amz-copy-source must be /bucket/key")
    return bucket, key


async def copy_object(request: S3Request) -> None:
    target = await dataset(request, "write")
    bucket, key = _copy_source(request.headers["x-amz-copy-source"])
    source_request = dataclasses.replace(request, bucket=bucket, key=key)
    _, source = await _item(source_request, "read")
    if source.source == items_svc.FOLDER:
        copied = await items_svc.add_folder(request.ctx, target.id, request.key)
    else:
        copied = await items_svc.copy_item(request.ctx, source, target.id,
                                           items_svc.check_name(request.key, "object key"))
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
