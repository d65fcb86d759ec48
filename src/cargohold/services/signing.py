"""Signed URLs: HMAC-SHA256 over the path and the expiry, with the instance secret.

A signature is good for one path until its expiry; changing either breaks it.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import time

from ..errors import Unauthenticated


def _mac(secret: bytes, path: str, expires: int) -> str:
    digest = hmac.new(secret, f"{path}\n{expires}".encode(), hashlib.sha256).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode()


def sign(secret: bytes, path: str, expires_in: int, now: float | None = None) -> tuple[int, str]:
    expires = int((now if now is not None else time.time()) + expires_in)
    return expires, _mac(secret, path, expires)


def verify(secret: bytes, path: str, expires: str, signature: str, now: float | None = None) -> None:
    try:
        when = int(expires)
    except ValueError:
        raise Unauthenticated("the signed URL's expiry is not a number") from None
    if not hmac.compare_digest(_mac(secret, path, when), signature):
        raise Unauthenticated("the URL's signature does not match it (altered, or signed for another item)")
    if (now if now is not None else time.time()) > when:
        raise Unauthenticated("the signed URL has expired; ask for a new one")
