"""``fs://`` mounts: a folder on the server that cargohold reads and never writes."""

from __future__ import annotations

from pathlib import Path

import pytest

from cargohold.errors import NotFound
from cargohold.storage import Connection, Store

from .suite import ReadOnlyStoreContract, all_keys, fill, read


@pytest.fixture
def connection(tmp_path: Path) -> Connection:
    return Connection("fs", root=fill(tmp_path / "mount"))


@pytest.fixture
def missing_connection(tmp_path: Path) -> Connection:
    return Connection("fs", root=tmp_path / "not-there")


class TestFolderMount(ReadOnlyStoreContract):
    async def test_links_out_of_the_folder_are_neither_read_nor_listed(
        self, store: Store, connection: Connection, tmp_path: Path
    ) -> None:
        assert connection.root is not None
        (tmp_path / "outside").mkdir()
        (tmp_path / "outside" / "secret.txt").write_bytes(b"not linked")
        (connection.root / "escape").symlink_to(tmp_path / "outside")
        with pytest.raises(NotFound):
            await read(store, "escape/secret.txt")
        assert store.local_path("escape/secret.txt") is None
        assert await all_keys(store, "escape") == []
        assert store.features.folders is not None
        assert await store.features.folders.list_folder("escape") == ([], [], None)
        assert "escape/" not in (await store.features.folders.list_folder(""))[0]
