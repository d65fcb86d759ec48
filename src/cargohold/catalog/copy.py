"""The whole catalog copied into another database: how one machine on SQLite becomes replicas on PostgreSQL.

Rows are read from one snapshot of the source (one read transaction) and written in one transaction of
the target, so an interrupted copy leaves the target as it was and can be run again. Ids are kept (links,
signed URLs and scripts name items by id), and PostgreSQL's id sequences are moved past them. Stored
connection secrets are copied sealed: the replicas need the same ``SECRET_KEY`` (or ``secret.key``).
"""

from __future__ import annotations

import fcntl
import os
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from sqlalchemy import Connection, Engine, Integer, Row, Table, create_engine, event, func, insert, select, text
from sqlalchemy.exc import DBAPIError

from ..errors import AlreadyExists, BadInput
from .db import DatabaseUrls, migrate
from .models import Base

BATCH = 5000


def server_running(data_path: Path) -> bool:
    """A server on this DATA_PATH holds its cache lock (cache/__init__.py) for as long as it runs."""
    lock = data_path / "cache" / ".lock"
    if not lock.exists():
        return False
    fd = os.open(lock, os.O_RDONLY)
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
    except BlockingIOError:
        return True
    finally:
        os.close(fd)  # closing drops a lock taken here
    return False


def describe(urls: DatabaseUrls) -> str:
    """The database for a message: the URL without its password."""
    return urls.sync_url.render_as_string(hide_password=True)


def count_rows(urls: DatabaseUrls) -> dict[str, int]:
    engine = _engine(urls)
    try:
        with engine.connect() as conn:
            return {t.name: conn.scalar(select(func.count()).select_from(t)) or 0 for t in _tables()}
    finally:
        engine.dispose()


def copy_catalog(source: DatabaseUrls, target: DatabaseUrls,
                 progress: Callable[[str, int], None] = lambda table, rows: None) -> None:
    """Every row of every catalog table from ``source`` into ``target``, which must hold none yet.
    Both are brought to the newest schema first. ``progress(table, rows)`` is called per batch."""
    if describe(source) == describe(target):
        raise BadInput(f"{describe(target)} is the catalog in use now: give another database")
    migrate(source)
    migrate(target)
    src, dst = _engine(source), _engine(target)
    try:
        with src.connect() as reading, dst.begin() as writing:
            reading.begin()  # one snapshot for every table (see _engine): no item without its dataset
            for table in _tables():
                held = writing.scalar(select(func.count()).select_from(table)) or 0
                if held:
                    raise AlreadyExists(f"{describe(target)} already holds {held} rows in {table.name}: copy into "
                                        "an empty database (create a new one, or drop this one's tables)")
            for table in _tables():
                rows = 0
                result = reading.execution_options(yield_per=BATCH).execute(select(table).order_by(*table.primary_key))
                for batch in result.partitions(BATCH):
                    try:
                        _write(writing, table, batch)
                    except (DBAPIError, writing.dialect.loaded_dbapi.Error) as exc:
                        reason = (str(getattr(exc, "orig", exc)).splitlines() or ["refused"])[0]
                        raise BadInput(f"{table.name}: {describe(target)} refuses a row ({reason}); nothing was "
                                       "copied: correct that row, then copy again") from None
                    rows += len(batch)
                    progress(table.name, len(batch))
                written = writing.scalar(select(func.count()).select_from(table)) or 0
                if written != rows:
                    raise AssertionError(f"{table.name}: {rows} rows read but {written} in the target")
            if dst.dialect.name == "postgresql":
                for table in _tables():
                    _move_sequence(writing, table)
    finally:
        src.dispose()
        dst.dispose()


def _tables() -> list[Table]:
    """Parents before children, so foreign keys hold at every insert."""
    return list(Base.metadata.sorted_tables)


def _engine(urls: DatabaseUrls) -> Engine:
    engine = create_engine(urls.sync_url)
    if urls.is_sqlite:
        # sqlite3 opens a transaction only before a write, so each SELECT would see the database as it is
        # then; SQLAlchemy's recipe for real transactions on pysqlite: BEGIN when SQLAlchemy begins.
        @event.listens_for(engine, "connect")
        def _no_driver_transactions(dbapi_connection: Any, _record: Any) -> None:
            dbapi_connection.isolation_level = None

        @event.listens_for(engine, "begin")
        def _begin(conn: Connection) -> None:
            conn.exec_driver_sql("BEGIN")
    return engine


def _write(writing: Connection, table: Table, rows: Sequence[Row[Any]]) -> None:
    if writing.dialect.name != "postgresql":
        writing.execute(insert(table), [dict(row._mapping) for row in rows])
        return
    # COPY, in the same transaction: about 4x the rows per second of batched INSERTs (bench/catalog_copy.py).
    columns = list(table.c)
    bind = [c.type.bind_processor(writing.dialect) for c in columns]
    quote = writing.dialect.identifier_preparer.quote
    statement = f"COPY {quote(table.name)} ({', '.join(quote(c.name) for c in columns)}) FROM STDIN"
    driver = writing.connection.driver_connection
    assert driver is not None
    with driver.cursor() as cursor, cursor.copy(statement) as copy:
        for row in rows:
            copy.write_row([v if process is None else process(v) for process, v in zip(bind, row, strict=True)])


def _move_sequence(writing: Connection, table: Table) -> None:
    if "id" not in table.c or not isinstance(table.c.id.type, Integer):  # s3_uploads' ids are strings: no sequence
        return
    name = table.name
    # setval(seq, max, true) makes the next id max + 1; an empty table starts again at 1.
    writing.execute(text(
        f"SELECT setval(pg_get_serial_sequence('{name}', 'id'), COALESCE(MAX(id), 1), MAX(id) IS NOT NULL) "
        f"FROM {name}"))
