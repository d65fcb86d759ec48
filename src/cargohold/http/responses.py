"""Answering a content request: conditional GET, one byte range, and streamed bytes."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import datetime
from email.utils import format_datetime
from urllib.parse import quote

from fastapi import Request, Response
from fastapi.responses import JSONResponse, StreamingResponse

from ..errors import RangeNotSatisfiable
from ..storage import ByteRange, Download
from .ranges import parse_range

Opener = Callable[[ByteRange | None], Awaitable[Download]]


def content_disposition(filename: str) -> str:
    base = filename.rsplit("/", 1)[-1]
    ascii_name = base.encode("ascii", "replace").decode().replace('"', "'").replace("\\", "_")
    return f"inline; filename=\"{ascii_name}\"; filename*=UTF-8''{quote(base, safe='')}"


def etag_matches(header: str, etag: str) -> bool:
    candidates = [c.strip().removeprefix("W/") for c in header.split(",")]
    return "*" in candidates or etag in candidates


async def send_content(
    request: Request, *, size: int, etag: str, last_modified: datetime, content_type: str, filename: str,
    open_bytes: Opener,
) -> Response:
    headers = {
        "ETag": etag,
        "Last-Modified": format_datetime(last_modified, usegmt=True),
        "Accept-Ranges": "bytes",
        "Cache-Control": "private, max-age=0, must-revalidate",
    }
    if_none_match = request.headers.get("if-none-match")
    if if_none_match and etag_matches(if_none_match, etag):
        return Response(status_code=304, headers=headers)
    range_header = request.headers.get("range")
    if_range = request.headers.get("if-range")
    if if_range is not None and if_range.strip() != etag:
        # The client's partial copy is of other bytes (RFC 9110 13.1.5): send the whole new one.
        range_header = None
    try:
        byte_range = parse_range(range_header, size)
    except RangeNotSatisfiable as exc:
        return JSONResponse({"error": {"code": exc.code, "message": exc.message}}, status_code=416,
                            headers={"Content-Range": f"bytes */{size}"})
    download = await open_bytes(byte_range)
    headers["Content-Length"] = str(download.end - download.start)
    headers["Content-Disposition"] = content_disposition(filename)
    status = 200
    if byte_range is not None:
        status = 206
        headers["Content-Range"] = f"bytes {download.start}-{download.end - 1}/{download.meta.size}"
    return StreamingResponse(download.chunks, status_code=status, headers=headers, media_type=content_type)
