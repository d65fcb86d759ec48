"""Opening the catalog database and bringing its schema up to date.

SQLite under ``DATA_PATH`` by default; ``DATABASE_URL`` names any other (PostgreSQL through psycopg 3).
The server talks to it asynchronously; Alembic migrates it synchronously, with the same URL's sync
driver.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqlalchemy import event
from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import ArgumentError
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker, create_async_engine

from ..errors import ConfigError
from ..settings import Settings

MIGRATIONS = Path(__file__).parent / "migrations"

ADVISORY_NAMESPACE = 0x63686431
"""``"chd1"``: the first key of cargohold's PostgreSQL advisory locks, apart from other programs' locks."""
MIGRATION_LOCK = "schema migrations"


def advisory_key(name: str) -> dict[str, object]:
    """Parameters for ``pg_*advisory*lock(:ns, hashtext(:name))``: the two-key form, so cargohold's
    locks never meet another program's that share the database server."""
    return {"ns": ADVISORY_NAMESPACE, "name": name}


@dataclass(frozen=True)
class DatabaseUrls:
    async_url: URL
    sync_url: URL

    @property
    def is_sqlite(self) -> bool:
        return self.async_url.get_backend_name() == "sqlite"


def database_urls(settings: Settings) -> DatabaseUrls:
    if not settings.database_url:
        path = settings.data_path / "catalog.sqlite3"
        return DatabaseUrls(make_url(f"sqlite+aiosqlite:///{path}"), make_url(f"sqlite:///{path}"))
    try:
        url = make_url(settings.database_url)
    except ArgumentError:
        raise ConfigError("DATABASE_URL", "it is not a database URL",
                          "write postgresql://user:password@host:5432/dbname, or leave it empty for SQLite") from None
    backend = url.get_backend_name()
    if backend == "sqlite":
        return DatabaseUrls(url.set(drivername="sqlite+aiosqlite"), url.set(drivername="sqlite"))
    if backend == "postgresql":
        driver = url.set(drivername="postgresql+psycopg")
        return DatabaseUrls(driver, driver)
    raise ConfigError("DATABASE_URL", f"{backend!r} databases are not supported",
                      "use postgresql://... or leave it empty for SQLite")


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute("PRAGMA busy_timeout=10000")
    cursor.close()


def create_engine(urls: DatabaseUrls) -> AsyncEngine:
    if urls.is_sqlite:
        Path(urls.async_url.database or "").parent.mkdir(parents=True, exist_ok=True)
        engine = create_async_engine(urls.async_url)
        event.listen(engine.sync_engine, "connect", _sqlite_pragmas)
        return engine
    return create_async_engine(urls.async_url, pool_pre_ping=True, pool_size=10, max_overflow=10)


def migrate(urls: DatabaseUrls) -> None:
    """Bring the schema to the newest migration (creating it on an empty database)."""
    from alembic import command
    from alembic.config import Config

    if urls.is_sqlite:
        Path(urls.sync_url.database or "").parent.mkdir(parents=True, exist_ok=True)
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    config.attributes["url"] = urls.sync_url
    command.upgrade(config, "head")


class Catalog:
    """The engine and a session factory; one per process."""

    def __init__(self, settings: Settings) -> None:
        self.urls = database_urls(settings)
        self.data_path = settings.data_path
        self.engine = create_engine(self.urls)
        self.sessions = async_sessionmaker(self.engine, expire_on_commit=False)

    def session(self) -> AsyncSession:
        return self.sessions()

    async def close(self) -> None:
        await self.engine.dispose()
