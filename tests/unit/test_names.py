"""Names and paths (docs/API.md, "Names and paths"): the rules of ``storage.base.check_new_key``, as team-file
paths (``team_files.check_path``), item names (``items.check_name``) and dataset names take them, each
refusal naming its problem; and a team-file write that can never be published never stays behind: not
after a refused request, and not at a start or a gc that meets one written straight into the catalog
(SQLite and PostgreSQL)."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from sqlalchemy import insert, select
from starlette.testclient import TestClient

from cargohold.catalog.models import TeamFile, TeamFileWrite
from cargohold.cli._context import shown
from cargohold.errors import BadInput, InvalidKey
from cargohold.http.app import create_app
from cargohold.services import items, team_files
from cargohold.services.context import Context
from cargohold.settings import load_settings
from cargohold.storage.base import MAX_KEY_BYTES, MAX_SEGMENT_BYTES, check_key, check_new_key

from ..support.postgres import PostgresServer

# (name, what the message must say)
BAD_NAMES = [
    ("notes/" + "A" * 256, "is 256 bytes; a segment is at most 255"),
    ("é" * 128, "is 256 bytes"),  # 128 characters, 256 bytes
    ("a/" * 600 + "b", f"must be 1 to {MAX_KEY_BYTES} bytes (S3's limit), not 1,201"),
    ("invoice\u202efdp.exe", "U+202E (RIGHT-TO-LEFT OVERRIDE)"),
    ("a\u202ab", "U+202A (LEFT-TO-RIGHT EMBEDDING)"),
    ("a\u2066b", "U+2066 (LEFT-TO-RIGHT ISOLATE)"),
    ("a\u2069b", "U+2069 (POP DIRECTIONAL ISOLATE)"),
    ("a\u200eb", "U+200E (LEFT-TO-RIGHT MARK)"),
    ("a\u200fb", "U+200F (RIGHT-TO-LEFT MARK)"),
    ("a\u061cb", "U+061C (ARABIC LETTER MARK)"),
    ("line\u2028break", "U+2028 (LINE SEPARATOR)"),
    ("para\u2029break", "U+2029 (PARAGRAPH SEPARATOR)"),
    ("a\x85b", "U+0085"),
    ("tab\there", "control character (U+0009)"),
    ("new\nline", "control character (U+000A)"),
    ("nul\x00", "control character (U+0000)"),
    ("del\x7f", "control character (U+007F)"),
    ("back\\slash", "backslash"),
    ("a/../b", "'..'"),
    ("latin1-\udce9t\udce9.jpg", "is not UTF-8 text"),  # a file name's bytes, as os.scandir gives them
]
GOOD_NAMES = ["a", "models/yolo v8.pt", "données/été.jpg", "写真/猫.png", "emoji 🐈.gif", "A" * MAX_SEGMENT_BYTES,
              "/".join(["A" * 255] * 4), "/".join(["x" * 200] * 5) + "/" + "x" * 19, "عربي/ملف.txt"]


@pytest.mark.parametrize(("name", "says"), BAD_NAMES)
def test_every_bad_name_is_refused_naming_its_problem(name: str, says: str) -> None:
    with pytest.raises(InvalidKey) as refused:
        check_new_key(name)
    assert says in refused.value.message
    with pytest.raises(BadInput) as as_path:
        team_files.check_path(name)
    assert says in as_path.value.message and "team-file path" in as_path.value.message
    assert type(as_path.value) is BadInput and as_path.value.code == "bad_input"
    if "bytes" in says and "1 to" not in says:
        assert items.check_name(name) == name, "an item's name is no key: its segments are not limited"
    else:
        with pytest.raises(BadInput) as as_item:
            items.check_name(name)
        assert says in as_item.value.message and as_item.value.code == "bad_input"


@pytest.mark.parametrize("name", GOOD_NAMES)
def test_names_in_any_script_are_kept(name: str) -> None:
    assert check_new_key(name) == team_files.check_path(name) == items.check_name(name) == name


def test_messages_show_hidden_characters_escaped() -> None:
    with pytest.raises(BadInput) as refused:
        team_files.check_path("invoice\u202efdp.exe")
    assert "\u202e" not in refused.value.message and "'invoice\\u202efdp.exe'" in refused.value.message
    # The CLI prints what the server answered (a refused link, a key) the same way, without the quotes.
    assert shown("s3://b/invoice\u202efdp\t.exe") == "s3://b/invoice\\u202efdp\\t.exe"
    assert shown("s3://b/données [1].jpg") == "s3://b/données [1].jpg"


def test_a_file_stored_before_the_rules_can_still_be_read_and_deleted() -> None:
    old = "old/invoice\u202efdp.exe"
    assert check_key(old) == team_files.check_path(old, new=False) == old
    with pytest.raises(BadInput):
        team_files.check_path(old)


@pytest.fixture(params=["sqlite", "postgres"])
def environ(request: pytest.FixtureRequest) -> dict[str, str]:
    if request.param == "postgres":
        server: PostgresServer = request.getfixturevalue("postgres_server")
        return {"DATABASE_URL": server.create_database("names")}
    return {}


@pytest.fixture
async def ctx(environ: dict[str, str], tmp_path: Path) -> AsyncIterator[Context]:
    ctx = await Context.open(load_settings(home=tmp_path, environ=environ), serve=False)
    try:
        yield ctx
    finally:
        await ctx.close()


async def body(data: bytes) -> AsyncIterator[bytes]:
    yield data


async def records(ctx: Context) -> list[tuple[int, str, str]]:
    async with ctx.catalog.session() as session:
        return [(w.id, w.path, w.staged_key)
                for w in (await session.scalars(select(TeamFileWrite).order_by(TeamFileWrite.id))).all()]


def staged(ctx: Context) -> list[str]:
    folder = ctx.settings.home / "data" / "storage" / ctx.settings.bucket("private") / ".staging"
    return sorted(p.name for p in folder.iterdir()) if folder.is_dir() else []


async def test_refused_writes_leave_no_record_and_no_bytes(ctx: Context) -> None:
    await team_files.put_file(ctx, "t/file", body(b"file"), None)
    await team_files.put_file(ctx, "u/file/child", body(b"child"), None)
    refused = {
        "notes/" + "A" * 256: "is 256 bytes",
        "t/file/child": "under 't/file', which is a file",
        "t/file/deeper/child": "under 't/file', which is a file",
        "u/file": "is a folder (it holds 'u/file/child')",
        "u": "is a folder",
        "invoice\u202efdp.exe": "U+202E",
        "a\u2028b": "U+2028",
        "tab\tb": "U+0009",
    }
    for path, says in refused.items():
        with pytest.raises(BadInput) as answer:
            await team_files.put_file(ctx, path, body(b"never"), None)
        assert says in answer.value.message and answer.value.code == "bad_input", path
    assert await records(ctx) == [] and staged(ctx) == []
    files, _ = await team_files.list_files(ctx, "", 100, None)
    assert sorted(f.path for f in files) == ["t/file", "u/file/child"]
    await team_files.put_file(ctx, "t/file", body(b"again"), None)  # a replacement is no clash
    await team_files.put_file(ctx, "t/other", body(b"beside"), None)


async def test_a_clash_only_the_store_sees_drops_the_write_whole(ctx: Context) -> None:
    """An object no row names (a left-over gc has not removed) where the path needs a folder: the catalog
    sees no clash, local disk refuses the move; the write is dropped, record and staged bytes."""
    await ctx.storage.private.put("orphan", b"no row")
    with pytest.raises(BadInput) as answer:
        await team_files.put_file(ctx, "orphan/child", body(b"x"), None)
    assert "clashes" in answer.value.message and "nothing of it is kept" in answer.value.message
    assert await records(ctx) == [] and staged(ctx) == []


async def write_records(ctx: Context, rows: list[tuple[str, str]]) -> list[int]:
    """``team_file_writes`` rows written straight into the catalog, as an older version or a hand left them."""
    ids = []
    async with ctx.catalog.session() as session:
        for path, staged_key in rows:
            result = await session.execute(insert(TeamFileWrite).values(
                path=path, staged_key=staged_key, size=5, sha256="0" * 64, content_type="application/octet-stream"))
            assert result.inserted_primary_key is not None
            ids.append(int(result.inserted_primary_key[0]))
        await session.commit()
    return ids


BAD_RECORDS = [
    ("notes/" + "A" * 256, ".staging/long"),  # the issue's: a start stopped with OSError: [Errno 36]
    ("t/file/child", ".staging/clash"),  # under a file
    ("t", ".staging/folder"),  # a folder of files
    ("invoice\u202efdp.exe", ".staging/bidi"),
    ("a\u2028b", ".staging/sep"),
    ("ctl\x01", ".staging/ctl"),
    ("../escape", ".staging/dots"),
    ("steal.bin", "t/file"),  # staged key outside .staging/: another file's bytes, never moved
    ("weird.bin", "../../outside"),
    (".staging/x", ".staging/reserved"),
]


async def test_start_and_gc_report_each_bad_record_drop_it_and_finish_the_others(ctx: Context) -> None:
    await team_files.put_file(ctx, "t/file", body(b"file!"), None)
    store = ctx.storage.private
    for _, key in BAD_RECORDS:
        if key.startswith(".staging/"):
            await store.put(key, b"bytes")
    await store.put(".staging/good", b"good!")
    ids = await write_records(ctx, [*BAD_RECORDS, ("fine/ok.bin", ".staging/good")])
    done = await team_files.finish_writes(ctx)
    assert done.count == len(BAD_RECORDS) + 1 and done.finished == 1 and done.left == []
    assert [(i, p) for i, p, _ in done.dropped] == [(i, p) for i, (p, _) in zip(ids, BAD_RECORDS, strict=False)]
    problems = done.problems()
    for (id_, path, _), line in zip(done.dropped, problems, strict=True):
        assert line.startswith(f"team-file write {id_} of {path!r} dropped"), line
        assert "\u202e" not in line and "\u2028" not in line and "\x01" not in line
    assert await records(ctx) == [] and staged(ctx) == []
    assert (await team_files.get_file(ctx, "fine/ok.bin")).size == 5
    got = await store.get("t/file")
    assert await got.read() == b"file!", "a record naming another file's key never moves it"
    assert (await team_files.finish_writes(ctx)).count == 0


async def test_a_write_that_fails_otherwise_is_left_and_the_others_go_on(ctx: Context,
                                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    store = ctx.storage.private
    await store.put(".staging/a", b"aaaaa")
    await store.put(".staging/b", b"bbbbb")
    ids = await write_records(ctx, [("a.bin", ".staging/a"), ("b.bin", ".staging/b")])
    rename = store.rename

    async def failing(src: str, dst: str) -> None:
        if dst == "a.bin":
            raise RuntimeError("the disk is on fire")
        await rename(src, dst)

    monkeypatch.setattr(store, "rename", failing)
    done = await team_files.finish_writes(ctx)
    assert done.left == [(ids[0], "a.bin", "RuntimeError: the disk is on fire")] and done.finished == 1
    assert [p for _, p, _ in await records(ctx)] == ["a.bin"], "left for the next start or gc"
    monkeypatch.setattr(store, "rename", rename)
    assert (await team_files.finish_writes(ctx)).finished == 1 and await records(ctx) == []


def test_the_server_starts_on_bad_records_and_logs_each(tmp_path: Path, environ: dict[str, str],
                                                       caplog: pytest.LogCaptureFixture) -> None:
    settings = load_settings(home=tmp_path, environ=environ)

    async def plant(ctx: Context) -> list[int]:
        await team_files.put_file(ctx, "t/file", body(b"file!"), None)
        return await write_records(ctx, BAD_RECORDS[:4])

    with TestClient(create_app(settings)) as client:
        ids = client.portal.call(plant, client.app.state.ctx)  # type: ignore[attr-defined]
    with caplog.at_level(logging.WARNING, "cargohold"), TestClient(create_app(settings)) as client:
        assert client.get("/healthz").status_code == 200
        async def rows(ctx: Context) -> list[str]:
            async with ctx.catalog.session() as session:
                return list((await session.scalars(select(TeamFile.path))).all())
        assert client.portal.call(rows, client.app.state.ctx) == ["t/file"]  # type: ignore[attr-defined]
    logged = caplog.text
    for id_, (path, _) in zip(ids, BAD_RECORDS[:4], strict=True):
        assert f"team-file write {id_} of {path!r} dropped" in logged
    assert "\u202e" not in logged
