from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import timedelta

import httpx
import pytest

from cargohold.storage import Connection, Store, open_store

from ..support.servers import AZURITE_ACCOUNT, AZURITE_KEY, Server
from .suite import StoreContract


def azurite_connection(server: Server) -> Connection:
    return Connection("azure", endpoint="127.0.0.1", port=server.port, access_key=AZURITE_ACCOUNT,
                      secret_key=AZURITE_KEY)


@pytest.fixture
async def store(azurite_server: Server, bucket_name: str) -> AsyncIterator[Store]:
    store = open_store(azurite_connection(azurite_server), bucket_name)
    await store.ensure_bucket()
    yield store
    await store.close()


class TestAzure(StoreContract):
    async def test_tampered_signature_is_refused(self, store: Store) -> None:
        # Azurite checks SAS signatures for real, so this proves obstore signs them correctly.
        await store.put("sas.txt", b"secret bytes")
        url = await store.sign_url("sas.txt", timedelta(minutes=5))
        async with httpx.AsyncClient() as client:
            assert (await client.get(url)).status_code == 200
            other = await client.get(url.replace("sas.txt", "sas.txx"))
            tampered = await client.get(url.replace("sig=", "sig=A"))
        assert other.status_code in (403, 404)
        assert tampered.status_code == 403
