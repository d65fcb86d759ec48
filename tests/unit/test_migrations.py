"""The catalog's Alembic migrations, on SQLite and on a real PostgreSQL server: a new database gets
exactly the models' schema, and a database made by an older cargohold is upgraded with its rows kept."""

from __future__ import annotations

import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

import pytest
from alembic import command
from alembic.config import Config
from alembic.script import ScriptDirectory
from sqlalchemy import create_engine, inspect, text
from sqlalchemy.engine import Engine

from cargohold.catalog.db import MIGRATIONS, DatabaseUrls, database_urls, migrate
from cargohold.settings import load_settings

from ..support.postgres import PostgresServer


@pytest.fixture(params=["sqlite", "postgres"])
def urls(request: pytest.FixtureRequest, tmp_path: Path) -> DatabaseUrls:
    environ: dict[str, str] = {}
    if request.param == "postgres":
        server: PostgresServer = request.getfixturevalue("postgres_server")
        environ["DATABASE_URL"] = server.create_database("migrations")
    return database_urls(load_settings(home=tmp_path, environ=environ))


def alembic_config(urls: DatabaseUrls) -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    config.attributes["url"] = urls.sync_url
    return config


def engine_for(urls: DatabaseUrls) -> Engine:
    return create_engine(urls.sync_url)


def test_migrations_build_exactly_the_models_and_run_twice(urls: DatabaseUrls) -> None:
    migrate(urls)
    migrate(urls)  # a second start finds nothing to do
    command.check(alembic_config(urls))  # raises if the models and the migrated schema differ
    engine = engine_for(urls)
    try:
        tables = set(inspect(engine).get_table_names())
    finally:
        engine.dispose()
    assert {"datasets", "items", "team_files", "api_tokens", "connections", "alembic_version"} <= tables


def test_an_existing_database_is_upgraded_with_its_rows(urls: DatabaseUrls) -> None:
    """A catalog made by the first release (revision 0001), with rows, brought to the newest schema."""
    if urls.sync_url.database and urls.sync_url.get_backend_name() == "sqlite":
        Path(urls.sync_url.database).parent.mkdir(parents=True, exist_ok=True)
    command.upgrade(alembic_config(urls), "0001")
    created = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)
    engine = engine_for(urls)
    try:
        with engine.begin() as conn:
            conn.execute(text("INSERT INTO datasets (id, name, created_at) VALUES (1, 'cars', :t), (2, 'bikes', :t)"),
                         {"t": created})
            conn.execute(text(
                "INSERT INTO items (id, dataset_id, name, kind, size, sha256, etag, mime_type, width, height, source,"
                " uri, created_at) VALUES"
                " (1, 1, 'red.jpg', 'image', 1234, :sha, NULL, 'image/jpeg', 64, 48, 'stored', NULL, :t),"
                " (2, 1, 'link.jpg', 'image', 99, NULL, '\"e1\"', 'image/jpeg', NULL, NULL, 'link',"
                " 's3://b/link.jpg', :t),"
                " (3, 2, 'notes.txt', 'file', 10, :sha, NULL, 'text/plain', NULL, NULL, 'stored', NULL, :t)"),
                {"sha": "ab" * 32, "t": created})
            conn.execute(text("INSERT INTO api_tokens (id, name, role, token_hash, created_at, last_used_at)"
                              " VALUES (1, 'admin', 'admin', :h, :t, NULL)"), {"h": "cd" * 32, "t": created})
            conn.execute(text("INSERT INTO team_files (id, path, size, sha256, content_type, updated_at)"
                              " VALUES (1, 'team/a.txt', 3, :sha, 'text/plain', :t)"), {"sha": "ef" * 32, "t": created})
            if urls.sync_url.get_backend_name() == "postgresql":  # rows inserted with explicit ids: move the sequences
                for table in ("datasets", "items", "api_tokens", "team_files"):
                    conn.execute(text(f"SELECT setval(pg_get_serial_sequence('{table}', 'id'), 10)"))

        migrate(urls)

        command.check(alembic_config(urls))
        with engine.begin() as conn:
            version = conn.execute(text("SELECT version_num FROM alembic_version")).scalar_one()
            items = conn.execute(text("SELECT id, dataset_id, name, size, sha256, etag, uri, source, width"
                                      " FROM items ORDER BY id")).all()
            datasets = conn.execute(text("SELECT id, name, created_at FROM datasets ORDER BY id")).all()
            tokens = conn.execute(text("SELECT name, role, token_hash FROM api_tokens")).all()
            files = conn.execute(text("SELECT path, size, content_type FROM team_files")).all()
            # What the upgrade added is usable: a link of unknown size (0003), a connection (0002).
            conn.execute(text(
                "INSERT INTO items (dataset_id, name, kind, size, mime_type, source, uri, created_at)"
                " VALUES (1, 'unknown-size.jpg', 'image', NULL, 'image/jpeg', 'link', 's3://b/u.jpg', :t)"),
                {"t": created})
            conn.execute(text("INSERT INTO connections (name, provider, settings, secrets, created_at, updated_at)"
                              " VALUES ('nas', 'minio', '{}', NULL, :t, :t)"), {"t": created})
            new_id = conn.execute(text("SELECT id FROM items WHERE name = 'unknown-size.jpg'")).scalar_one()
    finally:
        engine.dispose()
    heads = ScriptDirectory.from_config(alembic_config(urls)).get_heads()
    assert [version] == heads
    assert [tuple(r) for r in items] == [
        (1, 1, "red.jpg", 1234, "ab" * 32, None, None, "stored", 64),
        (2, 1, "link.jpg", 99, None, '"e1"', "s3://b/link.jpg", "link", None),
        (3, 2, "notes.txt", 10, "ab" * 32, None, None, "stored", None),
    ]
    assert [(r[0], r[1]) for r in datasets] == [(1, "cars"), (2, "bikes")]
    stamp = datasets[0][2]
    if isinstance(stamp, str):  # SQLite keeps text
        stamp = datetime.fromisoformat(stamp)
    assert stamp.replace(tzinfo=stamp.tzinfo or UTC) == created
    assert [tuple(r) for r in tokens] == [("admin", "admin", "cd" * 32)]
    assert [tuple(r) for r in files] == [("team/a.txt", 3, "text/plain")]
    assert new_id > 3


def test_replicas_starting_together_migrate_once(postgres_server: PostgresServer, tmp_path: Path) -> None:
    """Replicas started at the same moment on an empty PostgreSQL database: one creates the schema, the
    others wait for it and find nothing left to do (no 'relation already exists')."""
    database_url = postgres_server.create_database()
    script = ("import sys, time; from cargohold.catalog.db import database_urls, migrate; "
              "from cargohold.settings import load_settings; "
              "urls = database_urls(load_settings(home=__import__('pathlib').Path(sys.argv[1]), "
              "environ={'DATABASE_URL': sys.argv[2]})); "
              "time.sleep(max(0.0, float(sys.argv[3]) - time.time())); migrate(urls)")
    at = str(time.time() + 2)  # every process starts migrating at the same moment, imports done
    processes = [subprocess.Popen([sys.executable, "-c", script, str(tmp_path), database_url, at],
                                  stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True) for _ in range(4)]
    outputs = [p.communicate(timeout=60)[0] for p in processes]
    assert [p.returncode for p in processes] == [0] * 4, outputs
    urls = database_urls(load_settings(home=tmp_path, environ={"DATABASE_URL": database_url}))
    command.check(alembic_config(urls))
