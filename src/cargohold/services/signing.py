"""Signed URLs: HMAC-SHA256 with the instance secret over the path, the other query parameters, the
expiry, and what the URL is bound to: the version of the item it opens and the token that signed it.

A signature is good for one path with exactly its parameters (a preview's size and format, a
conversion's format) until its expiry; changing any of them breaks it. It also opens only the item as
it was signed (``version``: the first 16 hex digits of its SHA-256, or for a link whose bytes were never
hashed, of its URI and creation), and only while its ``signer`` (a token id) exists: the hot route
checks both after the signature (http/hot.py). Ids are never reused (catalog/models.py ``NEVER_REUSED``),
so a deleted item's or a revoked token's URL never comes back to life.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Protocol
from urllib.parse import urlencode

from sqlalchemy import select

from ..catalog.models import Item, is_row_id
from ..errors import Unauthenticated
from .context import Context

VERSION, SIGNER = "version", "signer"
"""The parameters a URL is bound by; signed like the others."""
UNSIGNED = ("expires", "signature")
"""The parameters left out of the signed text (the expiry is signed beside it)."""
SIGNATURE_PARAMS = (VERSION, SIGNER, *UNSIGNED)
"""What signing adds to a URL: not the route's own parameters (``http/params.py`` leaves them out)."""

Params = Mapping[str, str] | Iterable[tuple[str, str]]


class Versioned(Protocol):
    """What an item's version is made of: a catalog row or its memory (``memo.ItemView``)."""

    @property
    def sha256(self) -> str | None: ...
    @property
    def uri(self) -> str | None: ...
    @property
    def created_at(self) -> datetime: ...


@dataclass(frozen=True)
class Signed:
    """What a good signature vouches for; the expiry, the signer and the version are checked by the caller."""

    expires: int
    signer: int
    version: str


def item_version(item: Versioned) -> str:
    if item.sha256:
        return item.sha256[:16]
    made = item.created_at.astimezone(UTC).isoformat(timespec="microseconds")
    return hashlib.sha256(f"{item.uri}\n{made}".encode()).hexdigest()[:16]


async def item_versions(ctx: Context, item_ids: list[int], datasets: frozenset[int] | None = None) -> dict[int, str]:
    """The version of each item that exists (and is in one of ``datasets``, unless None), by id (one query);
    other ids are left out."""
    item_ids = [i for i in item_ids if is_row_id(i)]
    if not item_ids:
        return {}
    async with ctx.catalog.session() as session:
        columns = (Item.id, Item.sha256, Item.uri, Item.created_at)
        query = select(*columns).where(Item.id.in_(item_ids), Item.source != "folder")
        if datasets is not None:
            query = query.where(Item.dataset_id.in_(datasets))
        rows = (await session.execute(query)).all()
    return {row.id: item_version(row) for row in rows}


def _pairs(params: Params) -> list[tuple[str, str]]:
    return list(params.items() if isinstance(params, Mapping) else params)


def _canonical(path: str, pairs: list[tuple[str, str]]) -> str:
    kept = sorted((k, v) for k, v in pairs if k not in UNSIGNED)
    return f"{path}?{urlencode(kept)}" if kept else path


def _mac(secret: bytes, resource: str, expires: int) -> str:
    digest = hmac.new(secret, f"{resource}\n{expires}".encode(), hashlib.sha256).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode()


def sign(secret: bytes, path: str, expires_in: int, *, signer: int, version: str, now: float | None = None,
         params: Params = ()) -> tuple[int, str]:
    """The expiry (Unix seconds) and the URL's query: ``params``, the version, the signer, the expiry and
    the signature, in that order."""
    pairs = [*_pairs(params), (VERSION, version), (SIGNER, str(signer))]
    expires = int((now if now is not None else time.time()) + expires_in)
    signature = _mac(secret, _canonical(path, pairs), expires)
    return expires, urlencode([*pairs, ("expires", str(expires)), ("signature", signature)])


def verify(secret: bytes, path: str, params: Params, now: float | None = None) -> Signed:
    """``params``: the URL's whole query, as pairs in their order."""
    pairs = _pairs(params)
    query = dict(pairs)
    expires, signature = query.get("expires", ""), query.get("signature", "")
    # Exactly as signed: int() would also take '017', ' +1_700', fullwidth digits, or fail on 5,000 digits.
    if not (expires.isascii() and expires.isdigit() and len(expires) <= 12 and expires == str(int(expires))):
        raise Unauthenticated("the signed URL's expiry is not a number as it was signed")
    when = int(expires)
    # Bytes: compare_digest() raises TypeError for a str with anything but ASCII in it.
    if not hmac.compare_digest(_mac(secret, _canonical(path, pairs), when).encode(), signature.encode()):
        raise Unauthenticated("the URL's signature does not match it (altered, or signed for another item)")
    signer, version = query.get(SIGNER, ""), query.get(VERSION, "")
    if not (signer.isascii() and signer.isdigit() and len(signer) <= 10 and version):
        raise Unauthenticated("the signed URL names no token or item version (signed by an older cargohold); "
                              "ask for a new one")
    if (now if now is not None else time.time()) > when:
        raise Unauthenticated("the signed URL has expired; ask for a new one")
    return Signed(when, int(signer), version)
