from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from cargohold.storage import Connection

from .suite import StoreContract


@pytest.fixture
def connection(tmp_path: Path) -> Connection:
    return Connection("http", root=tmp_path / "storage")


@pytest.fixture
def leave_unfinished_upload(tmp_path: Path) -> Callable[[int], None]:
    """What a write killed half-way leaves: its temporary file in ``.partial``, beside the buckets."""

    def leave(size: int) -> None:
        (tmp_path / "storage" / ".partial").mkdir(parents=True, exist_ok=True)
        (tmp_path / "storage" / ".partial" / "killed.part").write_bytes(b"x" * size)

    return leave


@pytest.fixture
def put_foreign(tmp_path: Path, bucket_name: str) -> Callable[[str, bytes], bool]:
    """A file written into the bucket's folder by another program; no file has an empty name."""

    def put(key: str, data: bytes) -> bool:
        if "" in key.split("/"):
            return False
        path = tmp_path / "storage" / bucket_name / key
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
        return True

    return put


class TestLocalDisk(StoreContract):
    pass
