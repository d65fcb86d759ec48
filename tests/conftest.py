"""Session-wide servers, started on 127.0.0.1 only when a test asks for them."""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from pathlib import Path

import pytest

from .support import servers
from .support.api_server import RunningServer
from .support.postgres import PostgresServer

pytest_plugins = ["tests.support.reliability_report"]  # docs/RELIABILITY.md from @pytest.mark.reliability tests
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
def postgres_server() -> Iterator[PostgresServer]:
    """A PostgreSQL server on 127.0.0.1 (Debian's package); ``create_database()`` gives a test its own catalog."""
    server = PostgresServer().start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def postgres_url(postgres_server: PostgresServer) -> str:
    """A fresh, empty PostgreSQL database for one test, as a ``DATABASE_URL``."""
    return postgres_server.create_database()


@pytest.fixture(scope="session")
def gcs_credentials(server_dir: Path) -> Path:
    return servers.service_account_file(server_dir / "service-account.json")


@pytest.fixture(params=["local", "s3"])
def api_server(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[RunningServer]:
    """A real cargohold server process, on local disk and on the S3 server, each with a fresh home."""
    if request.param == "local":
        env: dict[str, object] = {}
    else:
        moto = request.getfixturevalue("moto_server")
        env = {"STORAGE_PROVIDER": "minio", "STORAGE_ENDPOINT": moto.url, "STORAGE_ACCESS_KEY": "testing",
               "STORAGE_SECRET_KEY": "testing", "STORAGE_BUCKET_PREFIX": f"api-{next(_bucket_numbers):04d}"}
    server = RunningServer(tmp_path / "home", {k: str(v) for k, v in env.items()}).start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def bucket_name() -> str:
    """A bucket name no other test in this session uses."""
    return f"contract-{next(_bucket_numbers):04d}"


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    """One line per provider of the storage contract suite, so a run shows each provider ran."""
    counts: dict[str, dict[str, int]] = {}
    for outcome in ("passed", "failed", "skipped", "error", "xfailed", "xpassed"):
        for report in terminalreporter.stats.get(outcome, []):
            module = getattr(report, "nodeid", "").split("::")[0]
            if "/test_store_" in module and getattr(report, "when", "call") in ("call", "setup"):
                if outcome == "passed" and report.when != "call":
                    continue
                name = module.rsplit("/test_store_", 1)[1].removesuffix(".py")
                counts.setdefault(name, {}).setdefault(outcome, 0)
                counts[name][outcome] += 1
    if counts:
        terminalreporter.section("storage contract suite by provider")
        for name, outcomes in sorted(counts.items()):
            terminalreporter.write_line(f"{name:<8} " + ", ".join(f"{n} {o}" for o, n in sorted(outcomes.items())))
