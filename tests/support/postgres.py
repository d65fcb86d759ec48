"""A throw-away PostgreSQL server for the tests: Debian's package (``make test`` installs it), a cluster
made with ``initdb`` in a temporary folder, listening on 127.0.0.1 only, trust authentication, no
fsync (nothing here must survive a power cut). One per session; every test or module that wants a
catalog of its own gets a fresh database on it (``create_database``).

PostgreSQL refuses to run as root: when the tests run as root (a container), the cluster belongs to
the ``postgres`` user the package creates, and its commands run through ``runuser``.
"""

from __future__ import annotations

import glob
import itertools
import os
import pwd
import shutil
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

from .servers import free_port

SUPERUSER = "postgres"
_numbers = itertools.count()


def find_bin_dir() -> Path:
    """The newest Debian PostgreSQL's ``bin`` folder (``/usr/lib/postgresql/<major>/bin``)."""
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"), key=lambda p: int(p.split("/")[4]))
    if not found:
        on_path = shutil.which("initdb")
        if on_path is None:
            raise RuntimeError("PostgreSQL is not installed: run `make test` (it installs Debian's postgresql)")
        return Path(on_path).parent
    return Path(found[-1]).parent


@dataclass
class PostgresServer:
    port: int = field(default_factory=free_port)
    bin_dir: Path = field(default_factory=find_bin_dir)
    root: Path | None = None
    """The cluster's folder: outside pytest's tmp_path, whose parents are private to root."""

    @property
    def data_dir(self) -> Path:
        assert self.root is not None
        return self.root / "data"

    @property
    def log_path(self) -> Path:
        assert self.root is not None
        return self.root / "postgres.log"

    def url(self, database: str = "postgres") -> str:
        """A ``DATABASE_URL`` for ``database`` (what cargohold's settings take)."""
        return f"postgresql://{SUPERUSER}@127.0.0.1:{self.port}/{database}"

    def _run(self, *args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
        command = [str(self.bin_dir / args[0]), *args[1:]]
        if os.geteuid() == 0:
            command = ["runuser", "-u", SUPERUSER, "--", *command]
        result = subprocess.run(command, capture_output=True, text=True, timeout=timeout,
                                env={**os.environ, "LC_ALL": "C.UTF-8"})
        if result.returncode != 0:
            log = self.log_path.read_text() if self.log_path.exists() else ""
            raise RuntimeError(f"{args[0]} failed ({result.returncode}):\n{result.stdout}\n{result.stderr}\n{log}")
        return result

    def start(self) -> PostgresServer:
        self.root = Path(tempfile.mkdtemp(prefix="cargohold-pg-"))
        if os.geteuid() == 0:
            owner = pwd.getpwnam(SUPERUSER)
            os.chown(self.root, owner.pw_uid, owner.pw_gid)
        # C collation: text sorts by code point, as on SQLite, and LIKE 'prefix%' can use a plain index.
        self._run("initdb", "-D", str(self.data_dir), "-U", SUPERUSER, "--auth=trust", "-E", "UTF8",
                  "--locale=C.UTF-8", "--lc-collate=C", "--no-sync", "--no-instructions")
        options = " ".join([
            "-c listen_addresses=127.0.0.1", f"-c port={self.port}", "-c unix_socket_directories=''",
            "-c fsync=off", "-c synchronous_commit=off", "-c full_page_writes=off", "-c max_connections=300",
            "-c shared_buffers=64MB",
            # Not UTC, on purpose: timestamps must come back right whatever zone the server's sessions use.
            "-c timezone=America/New_York",
        ])
        self._run("pg_ctl", "-D", str(self.data_dir), "-l", str(self.log_path), "-o", options, "-w", "-t", "60",
                  "start")
        return self

    def stop(self) -> None:
        if self.root is None:
            return
        try:
            if (self.data_dir / "postmaster.pid").exists():
                self._run("pg_ctl", "-D", str(self.data_dir), "-m", "immediate", "-w", "stop")
        finally:
            shutil.rmtree(self.root, ignore_errors=True)
            self.root = None

    def create_database(self, prefix: str = "cargohold") -> str:
        """A new, empty database; returns its ``DATABASE_URL``."""
        import psycopg

        name = f"{prefix}_{next(_numbers)}_{os.getpid()}".replace("-", "_").lower()
        for attempt in range(5):
            try:
                with psycopg.connect(self.url(), autocommit=True) as conn:
                    conn.execute(f'CREATE DATABASE "{name}"')  # type: ignore[arg-type]
                break
            except psycopg.errors.ObjectInUse:  # template1 busy with another CREATE DATABASE: wait a little
                time.sleep(0.2 * (attempt + 1))
        return self.url(name)

    def execute(self, database_url: str, sql: str) -> list[tuple[object, ...]]:
        """Run one statement on a database (a test's look behind the API); returns the rows, if any."""
        import psycopg

        with psycopg.connect(database_url, autocommit=True) as conn, conn.cursor() as cur:
            cur.execute(sql)  # type: ignore[arg-type]
            return list(cur.fetchall()) if cur.description else []
