from __future__ import annotations

from pathlib import Path

import pytest

from cargohold.storage import Connection

from ..support.servers import Server
from .suite import StoreContract


def gcs_connection(server: Server, credentials: Path) -> Connection:
    return Connection("google", endpoint=server.url, credentials_path=credentials)


@pytest.fixture
def connection(gcs_server: Server, gcs_credentials: Path) -> Connection:
    return gcs_connection(gcs_server, gcs_credentials)


class TestGoogle(StoreContract):
    folder_pages_exact = False  # fake-gcs-server: sub-folders on every page, not counted
