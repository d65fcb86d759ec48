"""Signed URLs: HMAC-SHA256 over the path, the other query parameters and the expiry, with the
instance secret.

A signature is good for one path with exactly its parameters (a preview's size and format, a
conversion's format) until its expiry; changing any of them breaks it.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import time
from collections.abc import Iterable, Mapping
from urllib.parse import urlencode

from ..errors import Unauthenticated

SIGNATURE_PARAMS = ("expires", "signature")

Params = Mapping[str, str] | Iterable[tuple[str, str]]


def _canonical(path: str, params: Params) -> str:
    pairs = sorted(params.items() if isinstance(params, Mapping) else params)
    kept = [(k, v) for k, v in pairs if k not in SIGNATURE_PARAMS]
    return f"{path}?{urlencode(kept)}" if kept else path


def _mac(secret: bytes, resource: str, expires: int) -> str:
    digest = hmac.new(secret, f"{resource}\n{expires}".encode(), hashlib.sha256).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode()


def sign(secret: bytes, path: str, expires_in: int, now: float | None = None, params: Params = ()) -> tuple[int, str]:
    expires = int((now if now is not None else time.time()) + expires_in)
    return expires, _mac(secret, _canonical(path, params), expires)


def verify(secret: bytes, path: str, expires: str, signature: str, now: float | None = None,
           params: Params = ()) -> None:
    # Exactly as signed: int() would also take '017', ' +1_700', fullwidth digits, or fail on 5,000 digits.
    if not (expires.isascii() and expires.isdigit() and len(expires) <= 12 and expires == str(int(expires))):
        raise Unauthenticated("the signed URL's expiry is not a number as it was signed")
    when = int(expires)
    # Bytes: compare_digest() raises TypeError for a str with anything but ASCII in it.
    if not hmac.compare_digest(_mac(secret, _canonical(path, params), when).encode(), signature.encode()):
        raise Unauthenticated("the URL's signature does not match it (altered, or signed for another item)")
    if (now if now is not None else time.time()) > when:
        raise Unauthenticated("the signed URL has expired; ask for a new one")
