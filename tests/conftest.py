"""Session-wide servers, started on 127.0.0.1 only when a test asks for them."""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from pathlib import Path

import pytest

from . import servers

_bucket_numbers = itertools.count()


@pytest.fixture(scope="session")
def server_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("servers")


def _run(server: servers.Server) -> Iterator[servers.Server]:
    server.start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="session")
def moto_server(server_dir: Path) -> Iterator[servers.Server]:
    yield from _run(servers.moto(server_dir))


@pytest.fixture(scope="session")
def azurite_server(server_dir: Path) -> Iterator[servers.Server]:
    yield from _run(servers.azurite(server_dir))


@pytest.fixture(scope="session")
def gcs_server(server_dir: Path) -> Iterator[servers.Server]:
    yield from _run(servers.fake_gcs(server_dir))


@pytest.fixture(scope="session")
def gcs_credentials(server_dir: Path) -> Path:
    return servers.service_account_file(server_dir / "service-account.json")


@pytest.fixture
def bucket_name() -> str:
    """A bucket name no other test in this session uses."""
    return f"contract-{next(_bucket_numbers):04d}"
