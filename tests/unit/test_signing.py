from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from urllib.parse import parse_qsl

import pytest

from cargohold.errors import Unauthenticated
from cargohold.services import signing

SECRET = b"s" * 32
PATH = "/api/v1/items/7/content"
BOUND = {"signer": 3, "version": "0123456789abcdef"}


def query(path: str = PATH, expires_in: int = 60, now: float = 1000, params: signing.Params = (),
          **bound: object) -> dict[str, str]:
    """The signed URL's query as a dict (each parameter appears once)."""
    args = {**BOUND, **bound}
    _, text = signing.sign(SECRET, path, expires_in, signer=int(str(args["signer"])), version=str(args["version"]),
                           now=now, params=params)
    return dict(parse_qsl(text, keep_blank_values=True))


def test_a_signature_is_good_for_its_path_until_it_expires() -> None:
    signed = query()
    assert signed["expires"] == "1060"
    assert signing.verify(SECRET, PATH, signed, now=1059) == signing.Signed(1060, 3, "0123456789abcdef")
    with pytest.raises(Unauthenticated, match="expired"):
        signing.verify(SECRET, PATH, signed, now=1061)


@pytest.mark.parametrize(
    ("path", "changes", "secret"),
    [("/api/v1/items/8/content", {}, SECRET), (PATH, {"expires": "1061"}, SECRET), (PATH, {}, b"x" * 32),
     (PATH, {"signer": "4"}, SECRET), (PATH, {"version": "fedcba9876543210"}, SECRET)],
    ids=["other item", "longer expiry", "other instance", "other signer", "other version"],
)
def test_any_change_breaks_it(path: str, changes: dict[str, str], secret: bytes) -> None:
    with pytest.raises(Unauthenticated, match="does not match"):
        signing.verify(secret, path, {**query(), **changes}, now=1000)


def test_garbage_expiry() -> None:
    with pytest.raises(Unauthenticated, match="not a number"):
        signing.verify(SECRET, PATH, {"expires": "soon", "signature": "abc"})


def test_a_preview_signature_covers_its_parameters() -> None:
    path = "/api/v1/items/7/preview"
    params = {"w": "256", "h": "256", "format": "jpeg"}
    signed = query(path, params=params)
    bound = [("version", signed["version"]), ("signer", signed["signer"])]
    # Order does not matter, and the signature's own parameters are not part of what is signed.
    signing.verify(SECRET, path, [("format", "jpeg"), ("h", "256"), *bound, ("w", "256"),
                                  ("expires", signed["expires"]), ("signature", signed["signature"])], now=1000)
    for changed in ({**params, "w": "2048"}, {**params, "q": "100"}, {"w": "256", "h": "256"}):
        with pytest.raises(Unauthenticated, match="does not match"):
            signing.verify(SECRET, path, _with(signed, params, changed), now=1000)
    # A content URL signed without parameters cannot be given some.
    with pytest.raises(Unauthenticated, match="does not match"):
        signing.verify(SECRET, PATH, {**query(), "format": "png"}, now=1000)


def _with(signed: dict[str, str], params: dict[str, str], changed: dict[str, str]) -> dict[str, str]:
    """The signed query with its preview parameters replaced by ``changed``."""
    return {**{k: v for k, v in signed.items() if k not in params}, **changed}


def test_a_signature_without_a_signer_or_version_opens_nothing() -> None:
    """What an older cargohold signed (path, parameters, expiry only) is refused, though its MAC is good."""
    expires = 1060
    old = signing._mac(SECRET, PATH, expires)
    with pytest.raises(Unauthenticated, match="names no token or item version"):
        signing.verify(SECRET, PATH, {"expires": str(expires), "signature": old}, now=1000)


@dataclass
class Row:
    sha256: str | None
    uri: str | None
    created_at: datetime


def test_the_version_is_the_content_or_for_an_unhashed_link_its_uri_and_creation() -> None:
    made = datetime(2026, 1, 2, 3, 4, 5, 678901, tzinfo=UTC)
    assert signing.item_version(Row("ab" * 32, None, made)) == "ab" * 8
    assert signing.item_version(Row("ab" * 32, "s3://b/k", made)) == "ab" * 8, "a link whose bytes are hashed"
    link = signing.item_version(Row(None, "s3://b/k", made))
    assert len(link) == 16 and link != "ab" * 8
    assert signing.item_version(Row(None, "s3://b/other", made)) != link
    assert signing.item_version(Row(None, "s3://b/k", made.replace(microsecond=0))) != link
    assert signing.item_version(Row(None, "s3://b/k", made.astimezone())) == link, "the same instant"
