from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from cargohold.storage import Connection, Store, open_store

from .contract import StoreContract
from .servers import Server


def moto_connection(server: Server) -> Connection:
    # moto accepts any key pair; the endpoint carries its scheme and port as users may write it.
    return Connection("minio", endpoint=server.url, access_key="testing", secret_key="testing")


@pytest.fixture
async def store(moto_server: Server, bucket_name: str) -> AsyncIterator[Store]:
    store = open_store(moto_connection(moto_server), bucket_name)
    await store.ensure_bucket()
    yield store
    await store.close()


class TestS3(StoreContract):
    pass
