"""Locks in the catalog database, for what must not run twice at once across replicas and hosts.

``exclusive(ctx, "gc")`` is held for a whole command (``cargohold gc``, ``cargohold migrate``): a
second one, from any replica or host sharing the catalog, is refused at once with who holds it.
``content_guard`` is held for moments: uploads share it while they make sure the content object they
point a row at exists and write the row; ``gc`` takes it alone while it checks a batch of objects
against the catalog and deletes them. So gc never deletes bytes an upload is committing a row for,
even content that was unreferenced (and old) until that upload.

How, per database:

- **PostgreSQL**: advisory locks, keyed ``(ADVISORY_NAMESPACE, hashtext(name))``. ``exclusive``
  holds ``pg_try_advisory_lock`` on a connection of its own for as long as it runs; the connection's
  ``application_name`` says which command, host and process holds it, and the refused side reads that
  (and when the connection started) from ``pg_stat_activity``. ``content_guard`` takes
  ``pg_advisory_xact_lock[_shared]`` inside the caller's transaction, released by its commit.
- **SQLite**: ``flock`` on a file beside the database (``catalog.sqlite3.gc.lock``); the holder writes
  who it is into the file. A row in a table would do on one machine too, but a process killed (or a
  machine losing power) would leave the row behind, and someone would have to tell a stale row from a
  live one; an advisory lock and a file lock both end with the process or connection that holds them,
  however it ends, so there is never a lock to clear by hand.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import json
import os
import re
import socket
import zlib
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession, create_async_engine
from sqlalchemy.pool import NullPool

from ..catalog.db import Catalog, advisory_key
from ..errors import Locked

CONTENT = "content objects"
"""The name of the guard between uploads and gc's deletions."""


@dataclass(frozen=True)
class Holder:
    command: str
    host: str | None = None
    pid: int | None = None
    started: datetime | None = None

    def describe(self) -> str:
        details = []
        if self.started is not None:
            local = self.started.astimezone()
            same_day = local.date() == datetime.now().astimezone().date()
            details.append(f"started {local.strftime('%H:%M:%S' if same_day else '%Y-%m-%d %H:%M:%S')}")
        if self.host:
            details.append(f"on host {self.host}" + (f", pid {self.pid}" if self.pid else ""))
        return f" ({' '.join(details)})" if details else ""


def _catalog(target: object) -> Catalog:
    catalog = getattr(target, "catalog", target)
    if not isinstance(catalog, Catalog):
        raise TypeError(f"a Context or a Catalog, not {type(target).__name__}")
    return catalog


def _refused(name: str, holder: Holder | None) -> Locked:
    about = holder.describe() if holder else ""
    return Locked(f"another cargohold {name} is running{about}; try again when it ends")


@contextlib.asynccontextmanager
async def exclusive(target: object, name: str) -> AsyncIterator[Holder]:
    """Hold the lock ``name`` for the block, or raise ``Locked`` at once naming who holds it.

    ``target`` is a ``Context`` or a ``Catalog``. The lock ends with the block, and also with the
    process (or its database connection), however it ends."""
    catalog = _catalog(target)
    me = Holder(name, socket.gethostname(), os.getpid(), datetime.now(UTC))
    if catalog.urls.is_sqlite:
        async with _file_lock(catalog, name, me):
            yield me
    else:
        async with _advisory_lock(catalog, name, me):
            yield me


# --- PostgreSQL -------------------------------------------------------------------------------------------------

_APP_PREFIX = "cargohold lock:"


@contextlib.asynccontextmanager
async def _advisory_lock(catalog: Catalog, name: str, me: Holder) -> AsyncIterator[None]:
    # A connection of its own, outside the pool: a session lock must not go back to the pool with it.
    tag = f"{_APP_PREFIX}{me.pid}:{me.host}"[:63]  # PostgreSQL keeps 63 bytes of application_name
    engine = create_async_engine(catalog.urls.async_url, poolclass=NullPool,
                                 connect_args={"application_name": tag})
    try:
        async with engine.connect() as conn:
            conn = await conn.execution_options(isolation_level="AUTOCOMMIT")
            got = await conn.scalar(text("SELECT pg_try_advisory_lock(:ns, hashtext(:name))"), advisory_key(name))
            if not got:
                raise _refused(name, await _advisory_holder(conn, name))
            try:
                yield
            finally:
                with contextlib.suppress(Exception):  # a lost connection has let go of the lock already
                    await conn.execute(text("SELECT pg_advisory_unlock(:ns, hashtext(:name))"), advisory_key(name))
    finally:
        await engine.dispose()


async def _advisory_holder(conn: AsyncConnection, name: str) -> Holder | None:
    # pg_locks shows the two-key form as classid = key 1, objid = key 2 (both oid: unsigned).
    row = (await conn.execute(text(
        "SELECT a.application_name, a.backend_start FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid"
        " WHERE l.locktype = 'advisory' AND l.granted AND l.objsubid = 2"
        " AND l.classid = CAST(:ns AS bigint)::oid"
        " AND l.objid = ((hashtext(:name)::bigint + 4294967296) % 4294967296)::oid"
        " LIMIT 1"), advisory_key(name))).first()
    if row is None:
        return None
    app, started = row
    pid: int | None = None
    host: str | None = None
    if isinstance(app, str) and app.startswith(_APP_PREFIX):
        pid_text, _, host = app.removeprefix(_APP_PREFIX).partition(":")
        pid = int(pid_text) if pid_text.isdigit() else None
    return Holder(name, host or None, pid, started)


# --- SQLite -----------------------------------------------------------------------------------------------------


def lock_path(catalog: Catalog, name: str) -> Path:
    """The file ``name``'s lock is taken on: beside the SQLite database, which every process using
    that catalog reaches (an in-memory database has no such place: its processes' data folder)."""
    slug = re.sub(r"[^A-Za-z0-9_.-]+", "-", name).strip("-") or "lock"
    database = catalog.urls.sync_url.database
    if database and database != ":memory:":
        path = Path(database)
        return path.with_name(f"{path.name}.{slug}.lock")
    return catalog.data_path / f"catalog.{slug}.lock"


def _open(path: Path) -> int:
    path.parent.mkdir(parents=True, exist_ok=True)
    return os.open(path, os.O_RDWR | os.O_CREAT, 0o600)


@contextlib.asynccontextmanager
async def _file_lock(catalog: Catalog, name: str, me: Holder) -> AsyncIterator[None]:
    fd = _open(lock_path(catalog, name))
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise _refused(name, _file_holder(fd, name)) from None
        about = {"pid": me.pid, "host": me.host, "started": me.started.isoformat() if me.started else None}
        os.ftruncate(fd, 0)
        os.pwrite(fd, json.dumps(about).encode(), 0)
        try:
            yield
        finally:
            os.ftruncate(fd, 0)
    finally:
        os.close(fd)  # closing lets go of the flock


def _file_holder(fd: int, name: str) -> Holder | None:
    try:
        about = json.loads(os.pread(fd, 4096, 0) or b"null")
        started = datetime.fromisoformat(about["started"]) if about.get("started") else None
        return Holder(name, about.get("host"), about.get("pid"), started)
    except (ValueError, TypeError, AttributeError, KeyError):
        return None  # being written this instant, or empty


# --- the guard between uploads and gc ---------------------------------------------------------------------------


Guard = contextlib.AbstractAsyncContextManager[None]


def content_guard(catalog: Catalog, session: AsyncSession, *, shared: bool) -> Guard:
    """Wait for, then hold, the guard between uploads (``shared``: any number at once) and gc's
    deletions (not shared). On PostgreSQL it is part of ``session``'s transaction and ends with it (the
    caller commits or rolls back inside the block); on SQLite it is a file lock held for the block."""
    return _guard(catalog, session, CONTENT, CONTENT, shared)


TEAM_FILE_SLOTS = 64
"""SQLite: team-file paths share this many lock files (two paths may wait for each other, rarely)."""


def team_file_guard(catalog: Catalog, session: AsyncSession, path: str) -> Guard:
    """Held alone by whoever publishes a team file's bytes at ``path`` and writes its row, so the bytes
    and the row always come from the same write (services/team_files.py), as ``content_guard`` is."""
    slot = zlib.crc32(path.encode()) % TEAM_FILE_SLOTS
    return _guard(catalog, session, f"team file {path}", f"team files {slot}", False)


@contextlib.asynccontextmanager
async def _guard(catalog: Catalog, session: AsyncSession, name: str, file_name: str, shared: bool
                 ) -> AsyncIterator[None]:
    if not catalog.urls.is_sqlite:
        call = "pg_advisory_xact_lock_shared" if shared else "pg_advisory_xact_lock"
        await session.execute(text(f"SELECT {call}(:ns, hashtext(:name))"), advisory_key(name))
        yield
        return
    fd = _open(lock_path(catalog, file_name))
    try:
        mode = fcntl.LOCK_SH if shared else fcntl.LOCK_EX
        while True:  # polled, not a blocking flock in a thread: a cancelled wait must leave nothing behind
            try:
                fcntl.flock(fd, mode | fcntl.LOCK_NB)
                break
            except BlockingIOError:  # gc is deleting a batch (or, for gc, uploads are committing)
                await asyncio.sleep(0.01)
        yield
    finally:
        os.close(fd)
