"""The hot route's checks of a signed URL (its signer still a token, its item in the version signed) are
memory hits in the common case: the app in-process, the catalog's queries counted. And the address a
signed URL names (``SERVER_PUBLIC_URL``) as settings read it."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import event

from cargohold.errors import ConfigError, Unauthenticated
from cargohold.http.app import create_app
from cargohold.services import tokens
from cargohold.services.context import Context
from cargohold.settings import load_settings


class Rig:
    def __init__(self, ctx: Context, client: httpx.AsyncClient) -> None:
        self.ctx, self.client = ctx, client
        self.queries: list[str] = []

        def counted(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
            self.queries.append(statement)

        event.listen(ctx.catalog.engine.sync_engine, "before_cursor_execute", counted)


@pytest.fixture
async def rig(tmp_path: Path) -> AsyncIterator[Rig]:
    app = create_app(load_settings(home=tmp_path, environ={}))
    async with app.router.lifespan_context(app):
        ctx: Context = app.state.ctx
        token = (await tokens.create_token(ctx, "hot", "write")).token
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://in-process/api/v1",
                                     headers={"Authorization": f"Bearer {token}"}) as client:
            yield Rig(ctx, client)


async def test_a_signed_hit_asks_the_catalog_nothing(rig: Rig) -> None:
    dataset = (await rig.client.post("/datasets", json={"name": "hot"})).json()["id"]
    upload = await rig.client.post(f"/datasets/{dataset}/items", files=[("files", ("a.bin", os.urandom(4096)))])
    item = upload.json()["results"][0]["item"]["id"]
    url = (await rig.client.post(f"/items/{item}/sign", json={"expires_in": 600})).json()["url"]
    path = url.split("/api/v1", 1)[1]
    rig.client.headers.pop("Authorization")  # the signed URL alone from here
    assert (await rig.client.get(path)).status_code == 200  # fills the memories
    rig.queries.clear()
    for _ in range(50):
        assert (await rig.client.get(path)).status_code == 200
    assert rig.queries == [], "a signed hit queried the catalog"

    # Past the memories' time (TOKEN_TTL, ITEM_TTL): one query each, then hits again.
    rig.ctx.memo.live_tokens.clear()
    rig.ctx.memo.items.clear()
    for _ in range(10):
        assert (await rig.client.get(path)).status_code == 200
    assert len(rig.queries) == 2, rig.queries

    # Revoked in this process: refused at once, without waiting for the memory to expire.
    await tokens.revoke_token(rig.ctx, "hot")
    answer = await rig.client.get(path)
    assert answer.status_code == 401 and "revoked" in answer.json()["error"]["message"]


async def test_a_revoked_signer_is_asked_about_once_per_token_ttl(rig: Rig) -> None:
    signer = (await tokens.authenticate(rig.ctx, (await tokens.create_token(rig.ctx, "gone", "write")).token)).token_id
    await tokens.check_live(rig.ctx, signer)
    await tokens.revoke_token(rig.ctx, "gone")
    rig.queries.clear()
    for _ in range(20):
        with pytest.raises(Unauthenticated, match="revoked"):
            await tokens.check_live(rig.ctx, signer)
    assert rig.queries == []


@pytest.mark.parametrize(("environ", "expected"), [
    ({}, "http://127.0.0.1:8080"),
    ({"SERVER_HOST": "0.0.0.0", "SERVER_PORT": "9000"}, "http://0.0.0.0:9000"),
    ({"SERVER_HOST": "::1"}, "http://[::1]:8080"),
    ({"SERVER_PUBLIC_URL": "https://data.example.com/"}, "https://data.example.com"),
    ({"SERVER_PUBLIC_URL": " https://data.example.com:8443/cargohold "}, "https://data.example.com:8443/cargohold"),
])
def test_the_public_url_is_the_setting_or_the_listening_address(tmp_path: Path, environ: dict[str, str],
                                                                 expected: str) -> None:
    assert load_settings(home=tmp_path, environ=environ).public_url == expected


@pytest.mark.parametrize("value", ["data.example.com", "ftp://data.example.com", "https://", "https://a.b/?x=1",
                                   "https://a.b/#f", "https://user:pw@a.b", "https://a.b:99999", "https://a.b:port"])
def test_a_public_url_that_is_no_http_address_is_refused(tmp_path: Path, value: str) -> None:
    with pytest.raises(ConfigError, match="SERVER_PUBLIC_URL"):
        load_settings(home=tmp_path, environ={"SERVER_PUBLIC_URL": value})
