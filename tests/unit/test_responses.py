"""The sender's choices that are not about bytes: which types go as attachments, and how names are written."""

from __future__ import annotations

import pytest

from cargohold.errors import Overloaded, Unauthenticated
from cargohold.http.responses import content_disposition, is_active, send_error


@pytest.mark.parametrize("content_type", ["text/html", "text/html; charset=utf-7", "TEXT/HTML", "image/svg+xml",
                                          "application/pdf", "application/xhtml+xml", "text/xml",
                                          "application/rss+xml", "text/javascript"])
def test_active_types_are_attachments(content_type: str) -> None:
    assert is_active(content_type)
    assert content_disposition("a/b/page", content_type).startswith('attachment; filename="page"')


@pytest.mark.parametrize("content_type", ["image/jpeg", "image/png", "video/mp4", "text/plain",
                                          "application/octet-stream", "application/json", ""])
def test_other_types_are_inline(content_type: str) -> None:
    assert not is_active(content_type)
    assert content_disposition("x.jpg", content_type).startswith("inline;")


def test_names_are_quoted_safely_and_in_full() -> None:
    assert content_disposition('dir/a "b"\\c é.jpg', "image/jpeg") == (
        "inline; filename=\"a 'b'_c ?.jpg\"; filename*=UTF-8''a%20%22b%22%5Cc%20%C3%A9.jpg")


@pytest.mark.parametrize(("error", "header"), [(Overloaded("busy; ask again in 3 s", 3), (b"retry-after", b"3")),
                                               (Unauthenticated("no token"), (b"www-authenticate", b"Bearer"))])
async def test_an_errors_headers_go_out_with_its_envelope(error: Exception, header: tuple[bytes, bytes]) -> None:
    sent: list[dict[str, object]] = []

    async def send(message: dict[str, object]) -> None:
        sent.append(message)

    assert isinstance(error, Overloaded | Unauthenticated)
    await send_error(send, error)  # type: ignore[arg-type]
    assert header in sent[0]["headers"]  # type: ignore[operator]
    assert sent[1]["body"] == f'{{"error": {{"code": "{error.code}", "message": "{error.message}"}}}}'.encode()
