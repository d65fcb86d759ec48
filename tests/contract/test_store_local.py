from __future__ import annotations

from pathlib import Path

import pytest

from cargohold.storage import Connection, Store, open_store

from .suite import StoreContract


@pytest.fixture
async def store(tmp_path: Path, bucket_name: str) -> Store:
    store = open_store(Connection("http", root=tmp_path / "storage"), bucket_name)
    await store.ensure_bucket()
    return store


class TestLocalDisk(StoreContract):
    pass
