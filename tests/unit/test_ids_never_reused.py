"""Ids never given again (issue 18, finding 2): migration 0006 rebuilds SQLite's tables with AUTOINCREMENT,
keeping every row; on PostgreSQL the sequences already never go back. Checked on both from revision 0005,
then by deleting the last row of each table and inserting another."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

from alembic import command
from sqlalchemy import text

from cargohold.catalog.db import DatabaseUrls, migrate
from cargohold.catalog.models import NEVER_REUSED, Base

from .test_migrations import alembic_config, engine_for
from .test_migrations import urls as urls  # the fixture: SQLite and PostgreSQL

CREATED = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)
INSERTS = {
    "datasets": "INSERT INTO datasets (id, name, created_at) VALUES (:id, :name, :t)",
    "items": "INSERT INTO items (id, dataset_id, name, kind, size, sha256, mime_type, source, created_at)"
             " VALUES (:id, 1, :name, 'file', 3, :sha, 'text/plain', 'stored', :t)",
    "team_files": "INSERT INTO team_files (id, path, size, sha256, content_type, updated_at)"
                  " VALUES (:id, :name, 3, :sha, 'text/plain', :t)",
    "api_tokens": "INSERT INTO api_tokens (id, name, role, token_hash, created_at)"
                  " VALUES (:id, :name, 'user', :sha, :t)",
    "connections": "INSERT INTO connections (id, name, provider, settings, created_at, updated_at)"
                   " VALUES (:id, :name, 'minio', '{}', :t, :t)",
}


def insert(conn: object, table: str, row_id: int | None, name: str) -> int:
    sql = INSERTS[table]
    if row_id is None:
        sql = sql.replace("(id, ", "(").replace("(:id, ", "(")
    execute = conn.execute  # type: ignore[attr-defined]
    execute(text(sql), {"id": row_id, "name": name, "sha": name.ljust(64, "0")[:64], "t": CREATED})
    found = execute(text(f"SELECT max(id) FROM {table}")).scalar_one()
    return int(found)


def test_the_tables_named_from_outside_never_reuse_ids() -> None:
    named = {"datasets", "items", "team_files", "api_tokens", "connections"}
    for table in Base.metadata.sorted_tables:
        if table.name in named:
            assert table.dialect_kwargs.get("sqlite_autoincrement") is True, table.name
    assert NEVER_REUSED == {"sqlite_autoincrement": True}


def test_0006_keeps_the_rows_and_a_deleted_last_id_is_never_given_again(urls: DatabaseUrls) -> None:
    sqlite = urls.sync_url.get_backend_name() == "sqlite"
    if sqlite and urls.sync_url.database:
        Path(urls.sync_url.database).parent.mkdir(parents=True, exist_ok=True)
    command.upgrade(alembic_config(urls), "0005")
    engine = engine_for(urls)
    try:
        with engine.begin() as conn:
            for table in INSERTS:
                for row_id in (1, 2, 3):
                    insert(conn, table, row_id, f"{table}-{row_id}")
            if not sqlite:  # rows inserted with explicit ids: move the sequences past them, as `catalog copy` does
                for table in INSERTS:
                    conn.execute(text(f"SELECT setval(pg_get_serial_sequence('{table}', 'id'), 3)"))
            # Before 0006, SQLite gives the deleted last id again; the rebuild keeps that history only from now.
            conn.execute(text("DELETE FROM items WHERE id = 3"))
            reused = insert(conn, "items", None, "items-again")
            assert reused == (3 if sqlite else 4)
            conn.execute(text("DELETE FROM items WHERE id = :id"), {"id": reused})

        migrate(urls)
        command.check(alembic_config(urls))

        with engine.begin() as conn:
            if sqlite:
                schema = conn.execute(text("SELECT name, sql FROM sqlite_master WHERE type = 'table'")).all()
                for name, sql in schema:
                    assert ("AUTOINCREMENT" in sql) == (name in INSERTS), name
            kept = {table: conn.execute(text(f"SELECT id, {'path' if table == 'team_files' else 'name'} FROM {table}"
                                              " ORDER BY id")).all() for table in INSERTS}
            for table, rows in kept.items():
                expected = [1, 2] if table == "items" else [1, 2, 3]
                assert [r[0] for r in rows] == expected, table
                assert [r[1] for r in rows] == [f"{table}-{i}" for i in expected], table
            for table in INSERTS:
                last = max(r[0] for r in kept[table])
                conn.execute(text(f"DELETE FROM {table} WHERE id = :id"), {"id": last})
                new = insert(conn, table, None, f"{table}-new")
                assert new > last, f"{table}: the deleted id {last} was given again"
                again = conn.execute(text(f"DELETE FROM {table} WHERE id = :id"), {"id": new})
                assert again.rowcount == 1
                assert insert(conn, table, None, f"{table}-newer") > new, table
    finally:
        engine.dispose()


def test_0006_goes_back_down_and_up(urls: DatabaseUrls) -> None:
    migrate(urls)
    command.downgrade(alembic_config(urls), "0005")
    migrate(urls)
    command.check(alembic_config(urls))
