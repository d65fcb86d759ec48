"""Scoped tokens (issue 18, finding 7), against the real ``cargohold up`` over SQLite and PostgreSQL: every
route of the OpenAPI document (read from the server, not listed here) asked by tokens of each scope, for what
their limits name and for what they do not, through both doors (the FastAPI routes and the hot route of
content and previews).

What each request must answer is decided here from the issue's rules, not from the code: ``read`` is GET
and HEAD (and signing, which changes nothing); admin routes are those that depend on ``require_admin``
(the same list tests/http/test_access.py checks); a route that names a dataset, an item or a team file is
refused (403) to a token whose limits do not name it; syncing a bucket needs a grant on its connection.
"""

from __future__ import annotations

import itertools
import re
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest

from ..support.api import assert_error, cli, create_dataset, make_image, upload_one
from ..support.api_server import RunningServer
from ..support.postgres import PostgresServer
from .test_access import app_routes, documented_operations, needs_admin

SIGNING = {("POST", "/api/v1/items/{item_id}/sign"), ("POST", "/api/v1/sign")}
"""Routes that are POSTs but change nothing: a read token signs URLs for what it may read."""


@dataclass
class Token:
    name: str
    role: str
    datasets: set[str] | None = None
    """Dataset names it is limited to; None: not limited."""
    files: tuple[str, ...] | None = None
    connections: set[str] = field(default_factory=set)
    value: str = ""

    @property
    def limited(self) -> bool:
        return self.datasets is not None or self.files is not None

    def reaches_dataset(self, name: str) -> bool:
        return self.role == "admin" or not self.limited or name in (self.datasets or set())

    def reaches_file(self, path: str) -> bool:
        return self.role == "admin" or not self.limited or any(path.startswith(f) for f in self.files or ())


@dataclass
class World:
    server: RunningServer
    datasets: dict[str, int]
    items: dict[str, int]
    """An image item in each of cars and boats."""
    tokens: list[Token]
    counter: Iterator[int] = field(default_factory=itertools.count)

    def admin(self) -> httpx.Client:
        return self.server.client()

    def unique(self, prefix: str) -> str:
        return f"{prefix}-{next(self.counter)}"


@pytest.fixture(scope="module", params=["sqlite", "postgres"])
def world(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    root = tmp_path_factory.mktemp(f"scopes-{request.param}")
    shelf = root / "shelf"
    shelf.mkdir()
    (shelf / "a.txt").write_bytes(b"on the shelf")
    env = {"LINKS_FS_ROOTS": str(shelf)}
    if request.param == "postgres":
        postgres: PostgresServer = request.getfixturevalue("postgres_server")
        env["DATABASE_URL"] = postgres.create_database()
    server = RunningServer(root / "home", env).start()
    try:
        with server.client() as admin:
            datasets = {name: create_dataset(admin, name)["id"] for name in ("cars", "boats", "spare-w", "spare-s")}
            image = make_image("PNG", (64, 48))
            items = {name: upload_one(admin, datasets[name], f"{name}.png", image)["id"] for name in ("cars", "boats")}
            for path in ("models/m.bin", "notes/n.txt"):
                assert admin.put(f"/files/{path}", content=b"team bytes").status_code == 201
            assert admin.put("/connections/shelf", json={"provider": "fs", "path": str(shelf),
                                                         "storage_id": "shelf"}).status_code == 201
            tokens = [
                Token("reader", "read"),
                Token("writer", "write"),
                Token("cars-reader", "read", {"cars"}, ()),
                Token("cars-writer", "write", {"cars", "spare-w"}, ("models/",)),
                Token("syncer", "write", {"cars", "spare-s"}, (), {"shelf"}),
                Token("admin", "admin", value=server.token),
            ]
            for token in tokens:
                if token.name == "admin":
                    continue
                if token.name == "cars-reader":  # the issue's command line, exactly
                    token.value = cli(server, "token", "create", "--name", "cars-reader", "--read",
                                      "--datasets", "cars").stdout.strip()
                    continue
                body: dict[str, Any] = {"name": token.name, "role": token.role}
                if token.limited:
                    body |= {"datasets": sorted(token.datasets or ()), "files": list(token.files or ())}
                if token.connections:
                    body["connections"] = sorted(token.connections)
                made = admin.post("/tokens", json=body)
                assert made.status_code == 201, made.text
                token.value = made.json()["token"]
        yield World(server, datasets, items, tokens)
    finally:
        server.stop()


def route_needs() -> dict[tuple[str, str], str]:
    """What each route needs, by the issue's rules: admin (from the code's ``require_admin``, checked against
    a list in test_access.py), else read for GET, HEAD and signing, else write."""
    needs = {}
    for method, route_path, route in app_routes():
        path = route_path.replace(":path}", "}")  # as the OpenAPI document writes it
        dependant = getattr(route, "dependant", None)
        if dependant is not None and needs_admin(dependant):
            needs[(method, path)] = "admin"
        elif method in ("GET", "HEAD") or (method, path) in SIGNING:
            needs[(method, path)] = "read"
        else:
            needs[(method, path)] = "write"
    return needs


@dataclass
class Case:
    """One request of one operation: ``target`` names what it touches (``("dataset", "cars")``,
    ``("file", "notes/x")``), ``ok`` the status of its success."""

    method: str
    url: str
    ok: int
    target: tuple[str, str] | None = None
    kwargs: dict[str, Any] = field(default_factory=dict)
    connection: str | None = None
    unlimited_only: bool = False
    """What no limit can name (creating a dataset): a limited token is refused."""


def cases(world: World, token: Token, method: str, path: str) -> list[Case]:
    """The requests made of ``method path`` with ``token``: one inside its limits and one outside, where the
    route names something. Resources a request removes are made for it first (with the admin token)."""
    ds, items = world.datasets, world.items
    def item_in(dataset: str) -> int:
        with world.admin() as admin:
            return int(upload_one(admin, ds[dataset], world.unique("gone") + ".png", make_image("PNG", (8, 8)))["id"])

    def file_at(folder: str) -> str:
        name = f"{folder}{world.unique('gone')}.bin"
        with world.admin() as admin:
            assert admin.put(f"/files/{name}", content=b"x").status_code == 201
        return name

    api = "/api/v1"
    p = path.removeprefix(api)
    upload = {"files": [("files", (world.unique("up") + ".txt", b"up"))]}
    out: list[Case] = []
    by_dataset: dict[tuple[str, str], tuple[str, int, dict[str, Any]]] = {
        ("GET", "/datasets/{dataset_id}"): ("", 200, {}),
        ("GET", "/datasets/{dataset_id}/items"): ("/items", 200, {}),
        ("POST", "/datasets/{dataset_id}/items"): ("/items", 201, upload),
        ("POST", "/datasets/{dataset_id}/links"): ("/links", 200, {"content": b"fs://shelf/a.txt\n",
                                                                    "headers": {"content-type": "text/plain"}}),
        ("POST", "/datasets/{dataset_id}/sync"): ("/sync", 200, {"json": {"source": "fs://shelf/"}}),
    }
    by_item: dict[tuple[str, str], tuple[str, int, dict[str, Any]]] = {
        ("GET", "/items/{item_id}"): ("", 200, {}),
        ("GET", "/items/{item_id}/content"): ("/content", 200, {}),
        ("HEAD", "/items/{item_id}/content"): ("/content", 200, {}),
        ("GET", "/items/{item_id}/preview"): ("/preview?w=32&h=32", 200, {}),
        ("HEAD", "/items/{item_id}/preview"): ("/preview?w=32&h=32", 200, {}),
        ("POST", "/items/{item_id}/sign"): ("/sign", 200, {"json": {}}),
        # The world's items are images: past the scope check, a frame of one is refused as not a video (422).
        ("GET", "/items/{item_id}/frames/{n}"): ("/frames/0", 422, {}),
        ("GET", "/items/{item_id}/frames"): ("/frames?t=0", 422, {}),
    }
    by_file = {("GET", "/files/{path}"): 200, ("HEAD", "/files/{path}"): 200, ("PUT", "/files/{path}"): 201,
               ("DELETE", "/files/{path}"): 204}
    key = (method, p)
    if key in by_dataset:
        suffix, ok, kwargs = by_dataset[key]
        for name in ("cars", "boats"):
            connection = "shelf" if p.endswith("/sync") else None
            out.append(Case(method, f"{api}/datasets/{ds[name]}{suffix}", ok, ("dataset", name), kwargs, connection))
    elif key == ("DELETE", "/datasets/{dataset_id}"):
        # Inside: a limited token's own spare dataset (it can make none); outside: one made now, which only
        # unlimited tokens reach. cars and boats stay for what follows.
        spare = {"cars-writer": "spare-w", "syncer": "spare-s"}.get(token.name)
        with world.admin() as admin:
            fresh = create_dataset(admin, world.unique("fresh"))
        ds[fresh["name"]] = fresh["id"]
        if spare is not None:
            out.append(Case(method, f"{api}/datasets/{ds[spare]}", 204, ("dataset", spare)))
        out.append(Case(method, f"{api}/datasets/{fresh['id']}", 204, ("dataset", fresh["name"])))
    elif key in by_item:
        suffix, ok, kwargs = by_item[key]
        for name in ("cars", "boats"):
            out.append(Case(method, f"{api}/items/{items[name]}{suffix}", ok, ("dataset", name), kwargs))
    elif key == ("DELETE", "/items/{item_id}"):
        for name in ("cars", "boats"):
            out.append(Case(method, f"{api}/items/{item_in(name)}", 204, ("dataset", name)))
    elif key == ("POST", "/items/bulk"):  # a folder names its dataset, checked before any of its items
        for name in ("cars", "boats"):
            out.append(Case(method, f"{api}/items/bulk", 200, ("dataset", name), {"json": {
                "action": "delete", "dataset_id": ds[name], "prefix": world.unique("none") + "/"}}))
    elif key == ("PATCH", "/items/{item_id}"):  # renamed in its own dataset: the item's dataset is what is named
        for name in ("cars", "boats"):
            out.append(Case(method, f"{api}/items/{item_in(name)}", 200, ("dataset", name),
                            {"json": {"name": world.unique("renamed") + ".png"}}))
    elif key in by_file:
        for folder in ("models/", "notes/"):
            if method == "DELETE":
                target = file_at(folder)
            elif method == "PUT":
                target = f"{folder}{world.unique('new')}.bin"
            else:
                target = {"models/": "models/m.bin", "notes/": "notes/n.txt"}[folder]
            kwargs = {"content": b"new bytes"} if method == "PUT" else {}
            out.append(Case(method, f"{api}/files/{target}", by_file[key], ("file", target), kwargs))
    elif key == ("POST", "/datasets"):
        out.append(Case(method, f"{api}/datasets", 201, None, {"json": {"name": world.unique("made")}},
                        unlimited_only=True))
    else:
        out.append(unnamed(world, method, path))
    return out


def unnamed(world: World, method: str, path: str) -> Case:
    """The routes that name no dataset, item or team file: what each asks, and its success."""
    api = "/api/v1"
    scratch = world.unique("scratch")
    if method in ("DELETE",) and path == "/api/v1/tokens/{name}":
        with world.admin() as admin:
            assert admin.post("/tokens", json={"name": scratch}).status_code == 201
        return Case(method, f"{api}/tokens/{scratch}", 204)
    if method == "DELETE" and path == "/api/v1/connections/{name}":
        with world.admin() as admin:
            assert admin.put(f"/connections/{scratch}", json={
                "provider": "minio", "endpoint": "http://127.0.0.1:9", "access_key": "k", "secret_key": "s",
                "buckets": [scratch]}).status_code == 201
        return Case(method, f"{api}/connections/{scratch}", 204)
    known: dict[tuple[str, str], tuple[str, int, dict[str, Any]]] = {
        ("GET", "/healthz"): ("/healthz", 200, {}),
        ("GET", "/metrics"): ("/metrics", 200, {}),
        ("GET", "/api/v1/storage"): (f"{api}/storage", 200, {}),
        ("GET", "/api/v1/datasets"): (f"{api}/datasets", 200, {}),
        ("POST", "/api/v1/sign"): (f"{api}/sign", 200, {"json": {"items": list(world.items.values())}}),
        ("GET", "/api/v1/files"): (f"{api}/files", 200, {}),
        ("GET", "/api/v1/cache"): (f"{api}/cache", 200, {}),
        ("DELETE", "/api/v1/cache/{tier}"): (f"{api}/cache/image-converter", 200, {}),
        ("GET", "/api/v1/providers"): (f"{api}/providers", 200, {}),
        ("GET", "/api/v1/connections"): (f"{api}/connections", 200, {}),
        ("PUT", "/api/v1/connections/{name}"): (f"{api}/connections/{scratch}", 201, {"json": {
            "provider": "minio", "endpoint": "http://127.0.0.1:9", "access_key": "k", "secret_key": "s",
            "buckets": [scratch]}}),
        ("POST", "/api/v1/connections/{name}/test"): (f"{api}/connections/shelf/test", 200, {}),
        ("GET", "/api/v1/connections/{name}/browse"): (f"{api}/connections/shelf/browse", 200, {}),
        ("GET", "/api/v1/tokens"): (f"{api}/tokens", 200, {}),
        ("POST", "/api/v1/tokens"): (f"{api}/tokens", 201, {"json": {"name": scratch, "role": "read"}}),
        ("GET", "/api/v1/me"): (f"{api}/me", 200, {}),
    }
    assert (method, path) in known, f"no case for {method} {path}: add one to tests/http/test_scopes.py"
    url, ok, kwargs = known[(method, path)]
    return Case(method, url, ok, None, kwargs)


def allowed(token: Token, need: str, case: Case) -> bool:
    rank = {"read": 0, "write": 1, "admin": 2}
    if rank[token.role] < rank[need]:
        return False
    if case.unlimited_only and token.limited:
        return False
    if case.target is not None:
        kind, name = case.target
        if not (token.reaches_dataset(name) if kind == "dataset" else token.reaches_file(name)):
            return False
    return case.connection is None or token.role == "admin" or case.connection in token.connections


@pytest.mark.reliability(kind="attack", cases=0, what="every route (from the OpenAPI document) with read, write, "
                         "dataset- and folder-limited and sync-granted tokens, inside and outside their limits, "
                         "both doors, SQLite and PostgreSQL: 403 exactly where the scope does not reach")
def test_every_route_answers_each_scope_as_its_limits_say(world: World, request: pytest.FixtureRequest) -> None:
    needs = route_needs()
    operations = [op for op in documented_operations(world.server) if op != ("GET", "/healthz")]
    assert len(operations) >= 30, operations
    tried = refused = 0
    order = sorted(operations, key=lambda op: op[0] == "DELETE")  # deletions after the reads of the same things
    for token in sorted(world.tokens, key=lambda t: t.role == "admin"):
        with httpx.Client(base_url=world.server.url, timeout=30,
                          headers={"Authorization": f"Bearer {token.value}"}) as client:
            for method, path in order:
                for case in cases(world, token, method, path):
                    answer = client.request(case.method, case.url, **case.kwargs)
                    tried += 1
                    what = f"{token.name}: {case.method} {case.url}"
                    if allowed(token, needs[(method, path)], case):
                        assert answer.status_code == case.ok, f"{what}: {answer.status_code} {answer.text[:300]}"
                    else:
                        refused += 1
                        if method == "HEAD":
                            assert answer.status_code == 403 and not answer.content, what
                        else:
                            assert_error(answer, 403, "forbidden")
    assert refused > 100, refused
    request.node.user_properties.append(("reliability_cases", tried))
    request.node.user_properties.append(("reliability_result", (
        f"{server_kind(world.server)}: {tried} requests by 6 tokens, {refused} refused with 403 where the scope "
        "does not reach, every other answered as it would an admin")))


def server_kind(server: RunningServer) -> str:
    return "PostgreSQL" if "DATABASE_URL" in server.env else "SQLite"


def client_of(world: World, name: str) -> httpx.Client:
    (token,) = [t for t in world.tokens if t.name == name]
    return world.server.client(token.value)


@pytest.mark.reliability(kind="attack", cases=6, what="lists of a limited token: datasets, team files, signed URLs "
                         "of many items; `GET /me`")
def test_lists_show_only_what_a_limited_token_reaches(world: World) -> None:
    with client_of(world, "cars-reader") as reader:
        assert [d["name"] for d in reader.get("/datasets").json()["datasets"]] == ["cars"]
        assert reader.get("/files").json()["files"] == []
        urls = reader.post("/sign", json={"items": list(world.items.values())}).json()["urls"]
        assert set(urls) == {str(world.items["cars"])}
        me = reader.get("/me").json()
        assert me == {"name": "cars-reader", "role": "read", "datasets": [world.datasets["cars"]], "files": [],
                      "connections": []}
        message = assert_error(reader.delete(f"/items/{world.items['cars']}"), 403, "forbidden")["message"]
        assert "--read" in message
    with client_of(world, "cars-writer") as writer:
        paths = [f["path"] for f in writer.get("/files").json()["files"]]
        assert paths and all(p.startswith("models/") for p in paths), paths
        assert [f["path"] for f in writer.get("/files", params={"prefix": "notes/"}).json()["files"]] == []
        message = assert_error(writer.post(f"/datasets/{world.datasets['cars']}/sync",
                                           json={"source": "fs://shelf/"}), 403, "forbidden")["message"]
        assert "--connections shelf" in message
    with client_of(world, "syncer") as syncer:
        report = syncer.post(f"/datasets/{world.datasets['cars']}/sync", json={"source": "fs://shelf/"})
        assert report.status_code == 200, report.text


@pytest.mark.reliability(kind="attack", cases=4, what="signed URLs of a limited token: only for what it reaches; "
                         "they die with it")
def test_a_limited_tokens_signed_urls(world: World) -> None:
    with client_of(world, "cars-reader") as reader, httpx.Client(timeout=30) as anonymous:
        signed = reader.post(f"/items/{world.items['cars']}/sign", json={}).json()["url"]
        assert anonymous.get(signed).status_code == 200
        assert_error(reader.post(f"/items/{world.items['boats']}/sign", json={}), 403, "forbidden")
        # The hot route, by token: its door refuses what the token does not reach, whatever the format.
        for suffix in ("content", "content?format=png", "preview", "preview?w=64&h=64&format=webp"):
            assert_error(reader.get(f"/items/{world.items['boats']}/{suffix}"), 403, "forbidden")
        assert reader.get(f"/items/{world.items['cars']}/content").status_code == 200


def test_token_creation_refuses_what_it_cannot_make(world: World) -> None:
    with world.admin() as admin:
        for body, words in (
            ({"name": "x1", "role": "admin", "datasets": ["cars"]}, "admin token reaches everything"),
            ({"name": "x2", "role": "read", "datasets": ["no-such-dataset"]}, "no-such-dataset"),
            ({"name": "x3", "role": "read", "files": ["../up"]}, "../up"),
            ({"name": "x4", "role": "read", "connections": ["bad name!"]}, "bad name!"),
            ({"name": "x5\u202e", "role": "read"}, "bidi"),
            ({"name": "reader", "role": "read"}, "exists"),
        ):
            answer = admin.post("/tokens", json=body)
            assert answer.status_code in (400, 409), (body, answer.text)
            assert words in answer.json()["error"]["message"], (body, answer.text)
        assert_error(admin.post("/tokens", json={"name": "x6", "role": "owner"}), 400)
        listed = {t["name"]: t for t in admin.get("/tokens").json()["tokens"]}
        assert listed["cars-reader"]["datasets"] == ["cars"] and listed["cars-reader"]["files"] == []
        assert listed["reader"]["datasets"] is None and listed["syncer"]["connections"] == ["shelf"]
        assert not any(n.startswith("x") for n in listed)
    shown = cli(world.server, "token", "list").stdout
    assert re.search(r"cars-reader\s+│\s+read\s+│\s+cars\s+│\s+none", shown), shown
    revoked = cli(world.server, "token", "create", "--name", "x7", "--admin", "--datasets", "cars", check=False)
    assert revoked.returncode != 0 and "admin token reaches everything" in revoked.stderr + revoked.stdout


def test_a_revoked_scoped_token_is_refused(world: World) -> None:
    with world.admin() as admin:
        made = admin.post("/tokens", json={"name": "short-lived", "role": "read", "datasets": ["cars"]}).json()
        token = made["token"]
        with world.server.client(token) as short:
            assert short.get("/me").status_code == 200
        assert admin.delete("/tokens/short-lived").status_code == 204
    time.sleep(1.2)  # memo.TOKEN_TTL: a checked token is trusted that long
    with world.server.client(token) as short:
        assert_error(short.get("/me"), 401, "unauthenticated")

