from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from cargohold.storage import Connection, Store, open_store

from ..support.servers import Server
from .suite import StoreContract


def gcs_connection(server: Server, credentials: Path) -> Connection:
    return Connection("google", endpoint=server.url, credentials_path=credentials)


@pytest.fixture
async def store(gcs_server: Server, gcs_credentials: Path, bucket_name: str) -> AsyncIterator[Store]:
    store = open_store(gcs_connection(gcs_server, gcs_credentials), bucket_name)
    await store.ensure_bucket()
    yield store
    await store.close()


class TestGoogle(StoreContract):
    pass
