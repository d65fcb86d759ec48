"""What an S3 client gives with an object and gets back with it: its Content-Type, the other standard headers
S3 keeps, and ``x-amz-meta-*``. Kept as ``items.meta`` and answered by the S3 endpoint only: the HTTP API types
items itself (from their bytes and names).

Values are kept as text: a value's bytes read as UTF-8 (what botocore, Go and curl send), else as Latin-1. They are
sent back as Latin-1 when every character has a Latin-1 byte, else as UTF-8: botocore (boto3, the AWS CLI) reads
response headers with ``http.client``, as Latin-1, so this is what gives its users back the text they wrote. ASCII
values, nearly all metadata, are the same bytes either way; a client that reads headers as UTF-8 (Go, aiohttp) gets
a non-ASCII Latin-1 character back as its Latin-1 byte."""

from __future__ import annotations

from ..errors import BadInput

KEPT = ("content-type", "cache-control", "content-disposition", "content-encoding", "content-language", "expires")
USER = "x-amz-meta-"
MAX_USER_BYTES = 2048
"""S3's limit on the user metadata of an object (names and values, as sent)."""


def _text(value: str) -> str:
    """A header value (read as Latin-1, a character a byte) as the text its client meant."""
    try:
        return value.encode("latin-1").decode("utf-8")
    except (UnicodeEncodeError, UnicodeDecodeError):
        return value


def _wire(value: str) -> bytes:
    try:
        return value.encode("latin-1")
    except UnicodeEncodeError:
        return value.encode("utf-8")


def from_headers(headers: dict[str, str]) -> dict[str, str] | None:
    meta = {name: _text(headers[name]) for name in KEPT if name in headers}
    encoding = [e.strip() for e in meta.get("content-encoding", "").split(",") if e.strip()]
    encoding = [e for e in encoding if e.lower() != "aws-chunked"]  # the transfer's framing, not the object's
    if encoding:
        meta["content-encoding"] = ", ".join(encoding)
    else:
        meta.pop("content-encoding", None)
    user = {name: _text(value) for name, value in headers.items() if name.startswith(USER)}
    if sum(len(k.encode()) + len(v.encode()) for k, v in user.items()) > MAX_USER_BYTES:
        raise BadInput(f"Your metadata headers exceed the maximum allowed metadata size ({MAX_USER_BYTES} bytes)")
    meta |= user
    return meta or None


def to_headers(meta: dict[str, str] | None) -> list[tuple[bytes, bytes]]:
    return [(name.encode("latin-1"), _wire(value)) for name, value in (meta or {}).items()]
