"""The ETag an S3 client sees. rclone and the AWS CLI take a 32-hex-digit ETag for the MD5 of the bytes and
report corruption when it is not, so only an MD5 (or S3's multipart ``md5-of-part-md5s-N``) looks like one."""

from __future__ import annotations

import re
from datetime import datetime
from typing import Protocol


class Tagged(Protocol):
    """What an ETag is made of: an ``Item``, or a row of the ``items`` table (services/listing.py)."""

    id: int
    md5: str | None
    etag: str | None
    sha256: str | None
    source: str
    created_at: datetime

_MD5 = re.compile(r"[0-9a-f]{32}(-[0-9]+)?")


def s3_etag(item: Tagged) -> str:
    if item.md5:
        return f'"{item.md5}"'
    source = (item.etag or "").strip('"').lower()
    if item.source == "link" and _MD5.fullmatch(source):
        return f'"{source}"'  # the source's own MD5 (an S3 object written in one piece, or its multipart form)
    # A stored item from before MD5s were kept, a link whose source gives none: its SHA-256 or version,
    # 64 characters or with a prefix, never taken for an MD5.
    return f'"{item.sha256}"' if item.sha256 else f'"cargohold-{item.id}-{int(item.created_at.timestamp())}"'
