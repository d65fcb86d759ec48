"""Signed URLs bound to what they sign (issue 18, finding 2), on a real server over SQLite and PostgreSQL:
a URL opens only the item it was signed for as it was then (deleted: 404, replaced: 404, and ids are never
given again), dies with the token that signed it (401 once the revocation is seen, within ``TOKEN_TTL``),
and names the configured address (``SERVER_PUBLIC_URL``, default the listening one), never the request's
``Host``."""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from urllib.parse import parse_qsl, urlsplit

import httpx
import pytest

from cargohold.services.memo import TOKEN_TTL

from ..support.api import assert_error, cli, create_dataset, make_image, upload_one, upload_results
from ..support.api_server import RunningServer
from ..support.postgres import PostgresServer


@pytest.fixture(scope="module", params=["sqlite", "postgres"])
def server(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningServer]:
    env: dict[str, str] = {}
    if request.param == "postgres":
        postgres: PostgresServer = request.getfixturevalue("postgres_server")
        env["DATABASE_URL"] = postgres.create_database()
    running = RunningServer(tmp_path_factory.mktemp(f"bound-{request.param}") / "home", env).start()
    try:
        yield running
    finally:
        running.stop()


def on(server: RunningServer, url: str) -> str:
    """The URL as this test reaches the server (same path and query)."""
    parts = urlsplit(url)
    return f"{server.url}{parts.path}?{parts.query}"


def sign(client: httpx.Client, item: int, **body: object) -> str:
    answer = client.post(f"/items/{item}/sign", json={"expires_in": 600, **body})
    assert answer.status_code == 200, answer.text
    return str(answer.json()["url"])


@pytest.mark.reliability(kind="attack", cases=6, what="signed URL of a deleted or replaced item: sign item 10 for "
                         "7 days, delete it, let anyone upload another file (SQLite gave it id 10 again)")
def test_a_url_for_a_deleted_or_replaced_item_never_opens_another_file(server: RunningServer,
                                                                       request: pytest.FixtureRequest) -> None:
    first, second, third = os.urandom(3000), os.urandom(3000), os.urandom(3000)
    with server.client() as client, httpx.Client(timeout=30) as anonymous:
        dataset = create_dataset(client, f"deleted-{time.monotonic_ns()}")["id"]
        item = upload_one(client, dataset, "a.bin", first)  # the last item of the catalog
        url = sign(client, item["id"], expires_in=604800)
        many = client.post("/sign", json={"items": [item["id"]], "expires_in": 604800}).json()["urls"][str(item["id"])]
        assert anonymous.get(url).content == first and anonymous.get(many).content == first

        assert client.delete(f"/items/{item['id']}").status_code == 204
        other = upload_one(client, dataset, "b.bin", second)
        assert other["id"] > item["id"], "a deleted item's id was given again"
        for old in (url, many):
            error = assert_error(anonymous.get(old), 404, "not_found")
            assert f"item {item['id']} was deleted after this URL was signed" in error["message"]
        moved = url.replace(f"/items/{item['id']}/", f"/items/{other['id']}/")  # the old signature on the new id
        assert_error(anonymous.get(moved), 401, "unauthenticated")

        # Replaced under the same id (an upload with conflict=replace): the old URL stops, a new one opens it.
        before = sign(client, other["id"])
        (replaced,) = upload_results(client, dataset, [("b.bin", third)], conflict="replace")
        assert replaced["status"] == "replaced" and replaced["item"]["id"] == other["id"]
        error = assert_error(anonymous.get(before), 404, "not_found")
        assert "was replaced since this URL was signed" in error["message"]
        assert anonymous.get(sign(client, other["id"])).content == third
    request.node.user_properties.append((
        "reliability_result", f"{server_kind(server)}: the deleted item's URL answers 404 (\"{error_text(url)}\"); "
        f"the next upload got id {other['id']}, not {item['id']}; a replaced item's URL answers 404"))


@pytest.mark.reliability(kind="attack", cases=6, what="signed URL after the token that made it is revoked (and a "
                         "new token of the same name made)")
def test_a_signed_url_dies_with_the_token_that_made_it(server: RunningServer, request: pytest.FixtureRequest) -> None:
    name = f"signer-{time.monotonic_ns()}"
    token = cli(server, "token", "create", "--name", name).stdout.strip()
    with server.client() as admin, server.client(token) as user, httpx.Client(timeout=30) as anonymous:
        dataset = create_dataset(admin, f"revoked-{time.monotonic_ns()}")["id"]
        data = os.urandom(2000)
        item = upload_one(admin, dataset, "r.bin", data)
        by_user = sign(user, item["id"])
        by_user_many = user.post("/sign", json={"items": [item["id"]]}).json()["urls"][str(item["id"])]
        by_admin = sign(admin, item["id"])
        for url in (by_user, by_user_many, by_admin):
            assert anonymous.get(url).content == data
        picture = upload_one(admin, dataset, "p.png", make_image("PNG", (64, 48)))
        preview = sign(user, picture["id"], preview={"w": 32, "format": "png"})
        converted = sign(user, picture["id"], format="jpeg")
        assert anonymous.get(preview).headers["content-type"] == "image/png"
        assert anonymous.get(converted).headers["content-type"] == "image/jpeg"
        signers = {dict(parse_qsl(urlsplit(u).query))["signer"] for u in (by_user, by_admin)}
        assert len(signers) == 2, "each URL names the token that signed it"

        cli(server, "token", "revoke", name)  # another process: the server learns it from the catalog
        time.sleep(TOKEN_TTL + 0.2)
        for url in (by_user, by_user_many, preview, converted):
            error = assert_error(anonymous.get(url), 401, "unauthenticated")
            assert "the token that signed this URL was revoked" in error["message"]
        cli(server, "token", "create", "--name", name)  # the same name again: a new id
        time.sleep(TOKEN_TTL + 0.2)
        assert_error(anonymous.get(by_user), 401, "unauthenticated")
        assert anonymous.get(by_admin).content == data, "another token's URLs are untouched"
        cli(server, "token", "revoke", name)
    request.node.user_properties.append((
        "reliability_result", f"{server_kind(server)}: 401 (\"{error['message']}\") within TOKEN_TTL "
        f"({TOKEN_TTL:g} s) of the revocation, also after a new token of the same name"))


@pytest.fixture(scope="module")
def public_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningServer]:
    env = {"SERVER_PUBLIC_URL": "https://data.example.com:8443/"}
    running = RunningServer(tmp_path_factory.mktemp("public") / "home", env).start()
    try:
        yield running
    finally:
        running.stop()


@pytest.mark.reliability(kind="attack", cases=8, what="`Host: evil.example` (and X-Forwarded-Host) on `/sign` and "
                         "`/items/{id}/sign`")
def test_signed_urls_name_the_configured_address_never_the_host_header(
        server: RunningServer, public_server: RunningServer, request: pytest.FixtureRequest) -> None:
    found = []
    forged = ({"Host": "evil.example"}, {"Host": "evil.example", "X-Forwarded-Host": "evil.example",
                                         "X-Forwarded-Proto": "https"})
    for running, expected in ((server, server.url), (public_server, "https://data.example.com:8443")):
        with running.client() as client, httpx.Client(timeout=30) as anonymous:
            dataset = create_dataset(client, f"host-{time.monotonic_ns()}")["id"]
            item = upload_one(client, dataset, "h.bin", b"host bytes")
            for headers in forged:
                one = client.post(f"/items/{item['id']}/sign", json={}, headers=headers)
                many = client.post("/sign", json={"items": [item["id"]]}, headers=headers)
                assert one.status_code == 200 and many.status_code == 200, (one.text, many.text)
                for url in (one.json()["url"], many.json()["urls"][str(item["id"])]):
                    assert url.startswith(f"{expected}/api/v1/items/{item['id']}/content?"), url
                    assert "evil" not in url
                    assert anonymous.get(on(running, url)).content == b"host bytes"
            found.append(f"{'SERVER_PUBLIC_URL' if running is public_server else 'default'}: {url.split('/api')[0]}")
    request.node.user_properties.append((
        "reliability_result", f"{server_kind(server)}: the URLs name " + ", ".join(found)))


def server_kind(server: RunningServer) -> str:
    return "PostgreSQL" if "DATABASE_URL" in server.env else "SQLite"


def error_text(url: str) -> str:
    answer = httpx.get(url, timeout=30)
    return str(answer.json()["error"]["message"])
