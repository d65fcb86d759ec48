"""Link URIs: ``s3://bucket/key``, ``azure://container/blob``, ``google://`` or ``gs://bucket/object``,
``fs://storage-id/path`` (the schemes of ``providers.py``) and public ``http(s)://`` URLs.

The part after the bucket is taken literally as the object key (S3 keys may hold ``%`` and spaces),
and checked like every key: no ``..``, no empty segment, no absolute path.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from urllib.parse import urlsplit

from ..errors import BadInput, InvalidKey
from .base import check_key
from .providers import SCHEMES, one_of

__all__ = ["SCHEMES", "URL_SCHEMES", "BucketPrefix", "Link", "ObjectLink", "UrlLink", "parse_link", "parse_prefix"]

URL_SCHEMES = ("http", "https")
"""Public web links, read by ``http_links.py`` with no connection."""
MAX_URI_BYTES = 4096
_NOT_A_LINK = f"not a link: write scheme://bucket/key ({', '.join(SCHEMES)}) or an http(s) URL"
_NOT_A_FOLDER = f"name a bucket folder: {one_of([f'{s}://' for s in SCHEMES])}bucket/prefix/"

_URL_UNSAFE = re.compile(r"[\x00-\x20\x7f]")


@dataclass(frozen=True)
class ObjectLink:
    scheme: str
    provider: str
    bucket: str
    key: str

    @property
    def uri(self) -> str:
        return f"{self.scheme}://{self.bucket}/{self.key}"

    @property
    def default_name(self) -> str:
        return self.key


@dataclass(frozen=True)
class UrlLink:
    url: str
    host: str

    @property
    def uri(self) -> str:
        return self.url

    @property
    def default_name(self) -> str:
        path = urlsplit(self.url).path.strip("/")
        return path or self.host


Link = ObjectLink | UrlLink


def parse_link(text: str) -> Link:
    uri = text.strip()
    if not uri:
        raise BadInput("empty link")
    if len(uri.encode()) > MAX_URI_BYTES:
        raise BadInput(f"link longer than {MAX_URI_BYTES} bytes")
    scheme, sep, rest = uri.partition("://")
    if not sep:
        raise BadInput(_NOT_A_LINK)
    scheme = scheme.lower()
    if scheme in URL_SCHEMES:
        if _URL_UNSAFE.search(uri):
            # urlsplit() silently drops tabs and line breaks, so the link stored would not be the one read.
            raise BadInput("the URL holds spaces or control characters (CR, LF, tab...); percent-encode them")
        try:
            parts = urlsplit(uri)
            parts.port  # noqa: B018 - raises ValueError for a port that is not a number from 0 to 65535
        except ValueError as exc:
            raise BadInput(f"not a usable URL: {exc}") from None
        if not parts.hostname:
            raise BadInput("the URL names no host")
        if parts.username or parts.password:
            raise BadInput("URLs with credentials in them are refused; use a connection instead")
        return UrlLink(uri, parts.hostname)
    if scheme not in SCHEMES:
        raise BadInput(f"unknown scheme {scheme!r}: use {one_of([*SCHEMES, *URL_SCHEMES])}")
    bucket, slash, key = rest.partition("/")
    if not bucket:
        raise BadInput("the link names no bucket")
    if not slash or not key:
        raise BadInput(f"the link names bucket {bucket!r} but no object in it")
    try:
        check_key(key)
    except InvalidKey as exc:
        raise BadInput(exc.message) from None
    return ObjectLink(scheme, SCHEMES[scheme], bucket, key)


@dataclass(frozen=True)
class BucketPrefix:
    """A folder of a bucket, as sync and browsing take it: ``s3://bucket/prefix/``."""

    scheme: str
    provider: str
    bucket: str
    prefix: str  # without leading or trailing '/'; empty for the whole bucket


def parse_prefix(text: str) -> BucketPrefix:
    scheme, sep, rest = text.strip().partition("://")
    provider = SCHEMES.get(scheme.lower())
    if not sep or provider is None:
        raise BadInput(_NOT_A_FOLDER)
    bucket, _, prefix = rest.partition("/")
    if not bucket:
        raise BadInput("the source names no bucket")
    return BucketPrefix(scheme.lower(), provider, bucket, prefix.strip("/"))
