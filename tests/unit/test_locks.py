"""``services/locks.py`` on SQLite (file locks beside the database) and PostgreSQL (advisory locks):
a second holder is refused at once and told who holds the lock; a holder that dies, however it dies,
leaves no lock behind; the content guard lets uploads share it and gc wait for them."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import sys
import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from cargohold.catalog.db import Catalog, migrate
from cargohold.services import locks
from cargohold.settings import load_settings

from ..support.postgres import PostgresServer


@pytest.fixture(params=["sqlite", "postgres"])
def environ(request: pytest.FixtureRequest) -> dict[str, str]:
    if request.param == "postgres":
        server: PostgresServer = request.getfixturevalue("postgres_server")
        return {"DATABASE_URL": server.create_database("locks")}
    return {}


@pytest.fixture
async def catalogs(environ: dict[str, str], tmp_path: Path) -> AsyncIterator[tuple[Catalog, Catalog]]:
    """Two processes' worth of catalog on one database (two engines, as two replicas have)."""
    settings = load_settings(home=tmp_path, environ=environ)
    first, second = Catalog(settings), Catalog(settings)
    await asyncio.to_thread(migrate, first.urls)
    try:
        yield first, second
    finally:
        await first.close()
        await second.close()


async def test_a_second_holder_is_refused_and_told_who_holds_it(catalogs: tuple[Catalog, Catalog]) -> None:
    first, second = catalogs
    async with locks.exclusive(first, "gc") as me:
        assert me.pid == os.getpid()
        with pytest.raises(locks.Locked) as refused:
            async with locks.exclusive(second, "gc"):
                pytest.fail("two holders at once")
        message = refused.value.message
        assert message.startswith("another cargohold gc is running (started "), message
        assert f"on host {socket.gethostname()}, pid {os.getpid()}" in message, message
        assert message.endswith("; try again when it ends"), message
        assert refused.value.http_status == 409
        async with locks.exclusive(second, "migrate"):  # another name is another lock
            pass
    async with locks.exclusive(second, "gc"):  # let go at the end of the block
        pass


HOLD = """
import asyncio, sys
from cargohold.catalog.db import Catalog
from cargohold.services import locks
from cargohold.settings import load_settings
from cargohold.errors import Locked

async def main():
    catalog = Catalog(load_settings(home=__import__("pathlib").Path(sys.argv[1])))
    async with locks.exclusive(catalog, "gc"):
        print("held", flush=True)
        await asyncio.sleep(600)

asyncio.run(main())
"""


async def test_a_holder_killed_leaves_no_lock(catalogs: tuple[Catalog, Catalog], environ: dict[str, str],
                                              tmp_path: Path) -> None:
    env = {**os.environ, **environ, "CARGOHOLD_HOME": str(tmp_path)}
    holder = await asyncio.create_subprocess_exec(sys.executable, "-c", HOLD, str(tmp_path), env=env,
                                                  stdout=asyncio.subprocess.PIPE)
    try:
        assert holder.stdout is not None
        assert (await asyncio.wait_for(holder.stdout.readline(), 60)).strip() == b"held"
        with pytest.raises(locks.Locked, match=f"pid {holder.pid}"):
            async with locks.exclusive(catalogs[0], "gc"):
                pass
    finally:
        os.kill(holder.pid, signal.SIGKILL)  # no cleanup of any kind
        await holder.wait()
    deadline = time.monotonic() + 10
    while True:  # PostgreSQL ends the dead client's session as soon as it sees the socket closed
        try:
            async with locks.exclusive(catalogs[0], "gc"):
                break
        except locks.Locked:
            assert time.monotonic() < deadline, "the killed holder's lock outlived it"
            await asyncio.sleep(0.1)


async def test_uploads_share_the_content_guard_and_gc_waits_for_them(catalogs: tuple[Catalog, Catalog]) -> None:
    first, second = catalogs
    events: list[str] = []
    async with first.session() as upload_a, second.session() as upload_b:
        async with locks.content_guard(first, upload_a, shared=True), \
                locks.content_guard(second, upload_b, shared=True):  # two uploads at once: no wait
            events.append("uploads hold it")

            async def gc() -> None:
                async with second.session() as session, locks.content_guard(second, session, shared=False):
                    events.append("gc holds it")
                    await session.commit()

            waiting = asyncio.create_task(gc())
            await asyncio.sleep(0.5)
            assert events == ["uploads hold it"], "gc went in while uploads held the guard"
            await upload_a.commit()  # the guard ends with the transaction on PostgreSQL ...
            await upload_b.commit()
        # ... and with the block on SQLite
        await asyncio.wait_for(waiting, 10)
    assert events == ["uploads hold it", "gc holds it"]
