from __future__ import annotations

import pytest

from cargohold.errors import Unauthenticated
from cargohold.services import signing

SECRET = b"s" * 32
PATH = "/api/v1/items/7/content"


def test_a_signature_is_good_for_its_path_until_it_expires() -> None:
    expires, signature = signing.sign(SECRET, PATH, 60, now=1000)
    assert expires == 1060
    signing.verify(SECRET, PATH, str(expires), signature, now=1059)
    with pytest.raises(Unauthenticated, match="expired"):
        signing.verify(SECRET, PATH, str(expires), signature, now=1061)


@pytest.mark.parametrize(
    ("path", "expires", "secret"),
    [("/api/v1/items/8/content", "1060", SECRET), (PATH, "1061", SECRET), (PATH, "1060", b"x" * 32)],
    ids=["other item", "longer expiry", "other instance"],
)
def test_any_change_breaks_it(path: str, expires: str, secret: bytes) -> None:
    _, signature = signing.sign(SECRET, PATH, 60, now=1000)
    with pytest.raises(Unauthenticated, match="does not match"):
        signing.verify(secret, path, expires, signature, now=1000)


def test_garbage_expiry() -> None:
    with pytest.raises(Unauthenticated, match="not a number"):
        signing.verify(SECRET, PATH, "soon", "abc")


def test_a_preview_signature_covers_its_parameters() -> None:
    path = "/api/v1/items/7/preview"
    params = {"w": "256", "h": "256", "format": "jpeg"}
    expires, signature = signing.sign(SECRET, path, 60, now=1000, params=params)
    # Order does not matter, and the signature's own parameters are not part of what is signed.
    signing.verify(SECRET, path, str(expires), signature, now=1000,
                   params=[("format", "jpeg"), ("h", "256"), ("w", "256"), ("expires", "x"), ("signature", "y")])
    for changed in ({**params, "w": "2048"}, {**params, "q": "100"}, {"w": "256", "h": "256"}):
        with pytest.raises(Unauthenticated, match="does not match"):
            signing.verify(SECRET, path, str(expires), signature, now=1000, params=changed)
    # A content URL signed without parameters cannot be given some.
    expires, signature = signing.sign(SECRET, PATH, 60, now=1000)
    with pytest.raises(Unauthenticated, match="does not match"):
        signing.verify(SECRET, PATH, str(expires), signature, now=1000, params={"format": "png"})
