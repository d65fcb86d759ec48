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


class TestLocalDisk(StoreContract):
    pass
