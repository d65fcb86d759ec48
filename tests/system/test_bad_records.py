"""The restart test of names and paths (docs/API.md, "Names and paths"), on the real ``cargohold up``.

Every kind of bad team-file path and file-over-folder clash is sent, and each answers 400 ``bad_input``
(never 500) and leaves no write record and no staged object. Then the server is killed (``kill -9``),
write records that can never be published are written straight into the catalog, as an older version
left them (the issue's ``PUT /api/v1/files/notes/<256 x A>`` left one that made every start fail with
``OSError: [Errno 36] File name too long``), and the server starts again: it starts, and its log names
each record by id and path; more such records, and ``cargohold gc`` exits 0 and names them too. On
local disk and S3 with the catalog in SQLite, and on local disk with the catalog in PostgreSQL.
"""

from __future__ import annotations

import contextlib
import secrets
import sqlite3
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import quote

import httpx
import pytest

from ..support.api import (
    assert_error,
    bucket_name,
    cli,
    create_dataset,
    is_s3,
    local_bucket,
    s3_client,
    stored_objects,
    upload,
)
from ..support.api_server import RunningServer
from ..support.postgres import PostgresServer

LONG = "A" * 256
BIDI = ["\u202a", "\u202b", "\u202c", "\u202d", "\u202e", "\u2066", "\u2067", "\u2068", "\u2069", "\u200e", "\u200f"]
BAD_PATHS = [
    f"notes/{LONG}",  # the request
    LONG,
    f"{LONG}/file.bin",
    "é" * 128,  # 128 characters, 256 bytes
    "long/" + "a/" * 520 + "b",  # over 1024 bytes in all
    *(f"bidi/invoice{c}fdp.exe" for c in BIDI),
    "sep/line\u2028break", "sep/para\u2029break",
    "ctl/tab\there", "ctl/bell\x07", "ctl/del\x7f", "ctl/c1\x85",
    "back\\slash",
]
CLASHES = [  # (made first, then refused)
    ("t/file", "t/file/child"),  # the issue's: a file, then a file under it
    ("t/file", "t/file/deeper/child"),
    ("r/file/child", "r/file"),  # the reverse: a folder, then a file of its name
    ("r/file/child", "r"),
]
BAD_ITEM_NAMES = ["invoice\u202efdp.exe", "a\u2066b.jpg", "line\u2028break.png"]
CASES = len(BAD_PATHS) + len(CLASHES) + len(BAD_ITEM_NAMES)
BAD_RECORDS = [  # (path, staged key): writes that can never be published, as an older version left them
    (f"notes/{LONG}", ".staging/long"),
    ("t/file/child", ".staging/under-a-file"),
    ("r/file", ".staging/over-a-folder"),
    ("bidi/invoice\u202efdp.exe", ".staging/bidi"),
    ("sep/a\u2028b", ".staging/sep"),
    ("steal.bin", "t/file"),  # its staged key names another file's bytes: never moved, never deleted
]
GC_RECORDS = [(f"gc/{LONG}", ".staging/gc-long"), ("t/file/gc", ".staging/gc-clash")]


@pytest.fixture(params=["local", "s3", "local-postgres"])
def server(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[RunningServer]:
    env: dict[str, str] = {}
    if request.param == "s3":
        moto = request.getfixturevalue("moto_server")
        env = {"STORAGE_PROVIDER": "minio", "STORAGE_ENDPOINT": moto.url, "STORAGE_ACCESS_KEY": "testing",
               "STORAGE_SECRET_KEY": "testing", "STORAGE_BUCKET_PREFIX": f"bad-records-{secrets.token_hex(4)}"}
    if request.param.endswith("postgres"):
        postgres: PostgresServer = request.getfixturevalue("postgres_server")
        env["DATABASE_URL"] = postgres.create_database("bad_records")
    started = RunningServer(tmp_path / "home", env).start()
    try:
        yield started
    finally:
        started.stop()


def sql(server: RunningServer, statement: str, *params: object) -> list[tuple[object, ...]]:
    """One statement on the server's catalog, behind its back (``?`` placeholders)."""
    url = server.env.get("DATABASE_URL")
    if url:
        import psycopg

        with psycopg.connect(url, autocommit=True) as conn, conn.cursor() as cur:
            cur.execute(statement.replace("?", "%s"), params)  # type: ignore[arg-type]
            return list(cur.fetchall()) if cur.description else []
    catalog = server.home / "data" / "catalog.sqlite3"
    with contextlib.closing(sqlite3.connect(catalog)) as db, db:
        return list(db.execute(statement, params).fetchall())


def plant(server: RunningServer, records: list[tuple[str, str]]) -> list[int]:
    """Write records (and the staged bytes they name, in ``.staging/``) straight into catalog and bucket."""
    for _, staged in records:
        if staged.startswith(".staging/"):
            if is_s3(server):
                s3_client(server).put_object(Bucket=bucket_name(server, "private"), Key=staged, Body=b"bytes")
            else:
                path = local_bucket(server, "private") / staged
                path.parent.mkdir(parents=True, exist_ok=True)
                path.write_bytes(b"bytes")
    ids = []
    for path, staged in records:
        sql(server, "INSERT INTO team_file_writes (path, staged_key, size, sha256, content_type, created_at) "
                    "VALUES (?, ?, 5, ?, 'application/octet-stream', '2026-01-01 00:00:00')", path, staged, "0" * 64)
        ids.append(int(str(sql(server, "SELECT max(id) FROM team_file_writes")[0][0])))
    return ids


def put(client: httpx.Client, path: str, data: bytes = b"x") -> httpx.Response:
    return client.put("/files/" + quote(path, safe="/"), content=data)


def staged_objects(server: RunningServer) -> list[str]:
    return sorted(k for k in stored_objects(server, "private") if k.startswith(".staging/"))


@pytest.mark.reliability(kind="bad input", what="every kind of bad team-file path (a segment over 255 bytes, "
                         "among them the issue's `PUT /api/v1/files/notes/<256 x A>`; a path over 1024 bytes; "
                         "control, bidi and line-separator characters) and file-over-folder clash (`PUT t/file` "
                         "then `PUT t/file/child`, and the reverse), and item names with bidi and line-separator "
                         "characters; then `kill -9`, bad write records written into the catalog, a restart and "
                         "`cargohold gc`", cases=CASES)
def test_bad_paths_answer_400_and_bad_records_never_stop_a_start_or_gc(
        server: RunningServer, request: pytest.FixtureRequest) -> None:
    answers: dict[str, str] = {}
    with server.client() as client:
        for path in BAD_PATHS:
            error = assert_error(put(client, path), 400, "bad_input")
            assert path not in error["message"] or (path.isascii() and path.isprintable()), error
            answers.setdefault(path, error["message"])
        for first, then in CLASHES:
            assert put(client, first, b"first").status_code in (200, 201)
            error = assert_error(put(client, then), 400, "bad_input")
            assert repr(then) in error["message"] and ("is under" if then.startswith(first) else "is a folder") in \
                error["message"], error
            answers.setdefault(then, error["message"])
        dataset = create_dataset(client, "names")["id"]
        for name in BAD_ITEM_NAMES:
            error = assert_error(upload(client, dataset, [(name, b"data")], status=400), 400, "bad_input")
            assert name not in error["message"], "shown escaped"
        assert client.get(f"/datasets/{dataset}").json()["item_count"] == 0
        assert client.get("/files/t/file").content == b"first" and client.get("/files/r/file/child").content == b"first"
    assert sql(server, "SELECT count(*) FROM team_file_writes") == [(0,)], "no refused request left its record"
    assert staged_objects(server) == [], "nor its bytes"
    assert "Traceback" not in server.log.read_text()

    server.kill()
    ids = plant(server, BAD_RECORDS)
    server.start()  # before: OSError: [Errno 36] File name too long ... Application startup failed
    logged = server.log.read_text()
    for id_, (path, _) in zip(ids, BAD_RECORDS, strict=True):
        assert f"team-file write {id_} of {path!r} dropped" in logged, logged
    assert "\u202e" not in logged and "\u2028" not in logged, "names are logged escaped"
    assert sql(server, "SELECT count(*) FROM team_file_writes") == [(0,)]
    with server.client() as client:
        assert client.get("/files/t/file").content == b"first", "a record naming another file's key moved nothing"
        assert put(client, "after/restart.bin", b"fine").status_code == 201

    gc_ids = plant(server, GC_RECORDS)
    gc = cli(server, "gc", "--older-than", "0")  # exits 0: asserted by cli()
    for id_, (path, _) in zip(gc_ids, GC_RECORDS, strict=True):
        assert f"team-file write {id_} of {path!r} dropped" in gc.stdout, gc.stdout
    assert sql(server, "SELECT count(*) FROM team_file_writes") == [(0,)]
    assert cli(server, "gc", "--older-than", "0", "--yes").returncode == 0
    assert staged_objects(server) == []

    provider = ("S3" if is_s3(server) else "local disk") + (", PostgreSQL" if "DATABASE_URL" in server.env
                                                            else ", SQLite")
    request.node.user_properties.append(("reliability_result", (
        f"{provider}: {CASES} requests each answered 400 `bad_input`, none left a write record; "
        f"`PUT /api/v1/files/notes/<256 x A>`: \"{answers[f'notes/{LONG}']}\"; `PUT t/file/child` after "
        f"`PUT t/file`: \"{answers['t/file/child']}\"; after `kill -9` and {len(BAD_RECORDS)} bad records "
        f"written into the catalog the server started and logged each by id and path (dropped); gc exited 0 and "
        f"named {len(GC_RECORDS)} more")))
