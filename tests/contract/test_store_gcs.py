from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
from google.auth.credentials import AnonymousCredentials
from google.cloud import storage as gcs

from cargohold.storage import Connection

from ..support.servers import Server
from .suite import StoreContract


def gcs_connection(server: Server, credentials: Path) -> Connection:
    return Connection("google", endpoint=server.url, credentials_path=credentials)


@pytest.fixture
def connection(gcs_server: Server, gcs_credentials: Path) -> Connection:
    return gcs_connection(gcs_server, gcs_credentials)


@pytest.fixture
def put_foreign(gcs_server: Server, bucket_name: str) -> Callable[[str, bytes], bool]:
    client = gcs.Client(project="test", credentials=AnonymousCredentials(),  # type: ignore[no-untyped-call]
                        client_options={"api_endpoint": gcs_server.url})

    def put(key: str, data: bytes) -> bool:
        client.bucket(bucket_name).blob(key).upload_from_string(data)
        return True

    return put


class TestGoogle(StoreContract):
    folder_pages_exact = False  # fake-gcs-server: sub-folders on every page, not counted
