from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta

import httpx
import pytest
from azure.storage.blob import BlobServiceClient

from cargohold.storage import Connection, Store

from ..support.servers import AZURITE_ACCOUNT, AZURITE_KEY, Server
from .suite import StoreContract


def azurite_connection(server: Server) -> Connection:
    return Connection("azure", endpoint="127.0.0.1", port=server.port, access_key=AZURITE_ACCOUNT,
                      secret_key=AZURITE_KEY)


@pytest.fixture
def connection(azurite_server: Server) -> Connection:
    return azurite_connection(azurite_server)


@pytest.fixture
def put_foreign(azurite_server: Server, bucket_name: str) -> Callable[[str, bytes], bool]:
    client = BlobServiceClient(f"{azurite_server.url}/{AZURITE_ACCOUNT}",
                               credential={"account_name": AZURITE_ACCOUNT, "account_key": AZURITE_KEY})

    def put(key: str, data: bytes) -> bool:
        client.get_container_client(bucket_name).upload_blob(key, data)
        return True

    return put


class TestAzure(StoreContract):
    async def test_tampered_signature_is_refused(self, store: Store) -> None:
        # Azurite checks SAS signatures for real, so this proves the SAS (azure.py) is signed correctly.
        await store.put("sas.txt", b"secret bytes")
        assert store.features.signing is not None
        url = await store.features.signing.sign_url("sas.txt", timedelta(minutes=5))
        async with httpx.AsyncClient() as client:
            assert (await client.get(url)).status_code == 200
            other = await client.get(url.replace("sas.txt", "sas.txx"))
            tampered = await client.get(url.replace("sig=", "sig=A"))
        assert other.status_code in (403, 404)
        assert tampered.status_code == 403
