"""docs/API.md, route by route and status by status, over HTTP against the real ``cargohold up`` process.

Every test runs on local disk and on the S3 (moto) server; those sharing ``shared_server`` also run
with the catalog in PostgreSQL (``s3-postgres``). Tests that need a server of their
own (other settings, exact bucket contents) take conftest's ``api_server``; the others share one
server per provider (``shared_server``, module scope), each in datasets and team-file paths of its
own, since a server start costs seconds. Every error body is checked by ``assert_error``.
"""

from __future__ import annotations

import base64
import random
import secrets
import time
from collections.abc import Iterator
from datetime import timedelta
from email.utils import parsedate_to_datetime
from typing import Any
from urllib.parse import parse_qs, quote, urlencode, urlsplit

import httpx
import pytest

from cargohold.services.memo import TOKEN_TTL

from ..support.api import (  # noqa: F401 - shared with the other HTTP tests
    DATASET_KEYS,
    ITEM_KEYS,
    TEAM_FILE_KEYS,
    assert_error,
    assert_item_shape,
    assert_timestamp,
    bucket_name,
    chunked_multipart,
    cli,
    content_key,
    create_dataset,
    is_s3,
    local_bucket,
    make_image,
    png_declaring,
    random_bytes,
    read_object,
    s3_client,
    sha256,
    stored_objects,
    unfinished_uploads,
    upload,
    upload_one,
    upload_results,
)
from ..support.api_server import RunningServer
from ..support.videos import make_video


@pytest.fixture(scope="module", params=["local", "s3", "s3-postgres"])
def shared_server(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningServer]:
    """As conftest's ``api_server``, but one per provider for this module's tests that share it; the
    third has its catalog in PostgreSQL (``postgres_server``) instead of SQLite."""
    env: dict[str, str] = {}
    if request.param.startswith("s3"):
        moto = request.getfixturevalue("moto_server")
        env = {"STORAGE_PROVIDER": "minio", "STORAGE_ENDPOINT": moto.url, "STORAGE_ACCESS_KEY": "testing",
               "STORAGE_SECRET_KEY": "testing", "STORAGE_BUCKET_PREFIX": f"api-shared-{secrets.token_hex(4)}"}
    if request.param.endswith("postgres"):
        env["DATABASE_URL"] = request.getfixturevalue("postgres_server").create_database("api")
    server = RunningServer(tmp_path_factory.mktemp("shared-home"), env).start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def client(shared_server: RunningServer) -> Iterator[httpx.Client]:
    with shared_server.client() as c:
        yield c


# --- datasets -----------------------------------------------------------------------------------------------------


def test_datasets_create_list_get_delete(client: httpx.Client) -> None:
    created = client.post("/datasets", json={"name": "cars"})
    assert created.status_code == 201, created.text
    cars = created.json()
    assert set(cars) == DATASET_KEYS
    assert cars["name"] == "cars" and cars["item_count"] == 0 and cars["total_size"] == 0
    assert isinstance(cars["id"], int)
    assert_timestamp(cars["created_at"])
    assert_error(client.post("/datasets", json={"name": "cars"}), 409, "already_exists")

    for bad in ({"name": ""}, {"name": "   "}, {"name": "a/b"}, {"name": "tab\there"}, {"name": "x" * 256}, {},
                {"name": 5}, {"title": "cars"}):
        assert_error(client.post("/datasets", json=bad), 400)
    assert_error(client.post("/datasets", content=b"{not json", headers={"content-type": "application/json"}), 400)

    bikes = create_dataset(client, "bikes ☂")  # not ASCII: allowed
    listed = client.get("/datasets")
    assert listed.status_code == 200
    assert set(listed.json()) == {"datasets"}
    names = [d["name"] for d in listed.json()["datasets"]]
    assert {"bikes ☂", "cars"} <= set(names) and names == sorted(names), names
    assert all(set(d) == DATASET_KEYS for d in listed.json()["datasets"])
    assert [d for d in listed.json()["datasets"] if d["id"] == cars["id"]] == [cars]

    upload(client, cars["id"], [("a.txt", b"hello"), ("b.txt", b"world!")])
    got = client.get(f"/datasets/{cars['id']}")
    assert got.status_code == 200
    assert got.json() == {**cars, "item_count": 2, "total_size": 11}
    assert client.get(f"/datasets/{bikes['id']}").json() == bikes
    assert_error(client.get("/datasets/999999"), 404, "not_found")
    assert_error(client.get("/datasets/not-a-number"), 400)

    items = client.get(f"/datasets/{cars['id']}/items").json()["items"]
    deleted = client.delete(f"/datasets/{cars['id']}")
    assert deleted.status_code == 204 and deleted.content == b""
    assert_error(client.get(f"/datasets/{cars['id']}"), 404, "not_found")
    assert_error(client.get(f"/datasets/{cars['id']}/items"), 404, "not_found")
    assert_error(client.delete(f"/datasets/{cars['id']}"), 404, "not_found")
    for item in items:  # its items went with it
        assert_error(client.get(f"/items/{item['id']}"), 404, "not_found")
        assert_error(client.get(f"/items/{item['id']}/content"), 404, "not_found")
    names = [d["name"] for d in client.get("/datasets").json()["datasets"]]
    assert "cars" not in names and "bikes ☂" in names
    again = create_dataset(client, "cars")  # the name is free again, and the new dataset is empty
    assert again["item_count"] == 0 and client.get(f"/datasets/{again['id']}/items").json()["items"] == []


# --- items: pages, uploads, conflicts -------------------------------------------------------------------------------


def test_items_are_paged_with_a_cursor(client: httpx.Client) -> None:
    dataset = create_dataset(client, "many")
    names = [f"f{i:03d}.txt" for i in range(120)]
    for start in range(0, 120, 40):
        upload(client, dataset["id"], [(n, b"same bytes") for n in names[start:start + 40]])
    assert client.get(f"/datasets/{dataset['id']}").json()["item_count"] == 120

    pages: list[list[dict[str, Any]]] = []
    cursor: str | None = None
    while True:
        params: dict[str, Any] = {"limit": 50} | ({"cursor": cursor} if cursor else {})
        answer = client.get(f"/datasets/{dataset['id']}/items", params=params)
        assert answer.status_code == 200, answer.text
        body = answer.json()
        assert set(body) == {"items", "folders", "next_cursor"} and body["folders"] == []
        pages.append(body["items"])
        cursor = body["next_cursor"]
        if cursor is None:
            break
        assert isinstance(cursor, str) and cursor
        assert len(pages) < 10, "the cursor does not advance"
    assert [len(p) for p in pages] == [50, 50, 20]
    seen = [item["name"] for page in pages for item in page]
    assert sorted(seen) == names and len(set(seen)) == 120, "every item once, none twice"
    ids = [item["id"] for page in pages for item in page]
    assert ids == sorted(ids)
    assert all(item["dataset_id"] == dataset["id"] for page in pages for item in page)

    default = client.get(f"/datasets/{dataset['id']}/items").json()
    assert len(default["items"]) == 100 and default["next_cursor"] is not None, "limit defaults to 100"
    everything = client.get(f"/datasets/{dataset['id']}/items", params={"limit": 1000}).json()
    assert len(everything["items"]) == 120 and everything["next_cursor"] is None
    exact = client.get(f"/datasets/{dataset['id']}/items", params={"limit": 120}).json()
    assert len(exact["items"]) == 120 and exact["next_cursor"] is None, "no cursor to an empty page"

    for bad in ({"cursor": "!!not-a-cursor!!"}, {"cursor": "%%%"}, {"limit": 0}, {"limit": 1001}, {"limit": -1},
                {"limit": "ten"}):
        assert_error(client.get(f"/datasets/{dataset['id']}/items", params=bad), 400)
    assert_error(client.get("/datasets/999999/items"), 404, "not_found")


def test_uploads_one_and_many_files_with_each_conflict_mode(client: httpx.Client) -> None:
    dataset = create_dataset(client, "uploads")
    ds = dataset["id"]

    (one,) = upload_results(client, ds, [("a.txt", b"one")])
    assert one["status"] == "created"
    original = one["item"]
    assert original["name"] == "a.txt" and original["dataset_id"] == ds and original["size"] == 3
    assert original["sha256"] == sha256(b"one") and original["kind"] == "file"
    assert original["mime_type"] == "text/plain" and original["width"] is None and original["height"] is None

    many = upload_results(client, ds, [("b.bin", b"\x00" * 100), ("c.mp4", make_video(10)),
                                       ("sub/d.txt", b"in a folder")])
    assert [r["status"] for r in many] == ["created"] * 3
    assert [r["item"]["name"] for r in many] == ["b.bin", "c.mp4", "sub/d.txt"]
    assert many[1]["item"]["kind"] == "video" and many[1]["item"]["mime_type"] == "video/mp4"
    assert many[1]["item"]["video"]["frame_count"] == 10 and many[1]["item"]["width"] == 64  # probed, on any store
    assert len({r["item"]["id"] for r in many} | {original["id"]}) == 4

    # rename (the default, and by name)
    (renamed,) = upload_results(client, ds, [("a.txt", b"two")])
    assert renamed["status"] == "renamed" and renamed["item"]["name"] == "a (1).txt"
    assert renamed["item"]["sha256"] == sha256(b"two")
    (renamed2,) = upload_results(client, ds, [("a.txt", b"three")], conflict="rename")
    assert renamed2["status"] == "renamed" and renamed2["item"]["name"] == "a (2).txt"
    assert client.get(f"/items/{original['id']}").json() == original, "a rename leaves the original alone"

    # skip: the existing item comes back, unchanged
    skipped = upload_results(client, ds, [("a.txt", b"four"), ("e.txt", b"new")], conflict="skip")
    assert [r["status"] for r in skipped] == ["skipped", "created"]
    assert skipped[0]["item"] == original
    assert client.get(f"/items/{original['id']}/content").content == b"one"

    # replace: same id, new bytes
    (replaced,) = upload_results(client, ds, [("a.txt", b"five!")], conflict="replace")
    assert replaced["status"] == "replaced"
    assert replaced["item"]["id"] == original["id"] and replaced["item"]["name"] == "a.txt"
    assert replaced["item"]["sha256"] == sha256(b"five!") != original["sha256"]
    assert replaced["item"]["size"] == 5
    assert client.get(f"/items/{original['id']}").json() == replaced["item"]
    assert client.get(f"/items/{original['id']}/content").content == b"five!"
    (fresh,) = upload_results(client, ds, [("f.txt", b"six")], conflict="replace")
    assert fresh["status"] == "created", "replace with nothing to replace creates"

    listing = client.get(f"/datasets/{ds}/items").json()["items"]
    assert sorted(i["name"] for i in listing) == sorted(
        ["a.txt", "b.bin", "c.mp4", "sub/d.txt", "a (1).txt", "a (2).txt", "e.txt", "f.txt"])
    info = client.get(f"/datasets/{ds}").json()
    assert info["item_count"] == 8 and info["total_size"] == sum(i["size"] for i in listing)

    # refused requests
    assert_error(client.post(f"/datasets/{ds}/items", params={"conflict": "overwrite"},
                             files={"files": ("g.txt", b"x")}), 400)
    assert_error(client.post(f"/datasets/{ds}/items", data={"just": "a field"}, files={"x": (None, b"no filename")}),
                 400, "bad_input")
    assert_error(client.post(f"/datasets/{ds}/items", json={"files": []}), 400, "bad_input")
    assert_error(client.post(f"/datasets/{ds}/items", content=b"",
                             headers={"content-type": "multipart/form-data; boundary=xyz"}), 400, "bad_input")
    assert_error(client.post(f"/datasets/{ds}/items", files={"files": ("../escape.txt", b"x")}), 400)
    assert_error(client.post("/datasets/999999/items", files={"files": ("g.txt", b"x")}), 404, "not_found")
    assert len(client.get(f"/datasets/{ds}/items").json()["items"]) == 8, "refused uploads add no item"

    # one item: get, 404, delete
    got = client.get(f"/items/{many[0]['item']['id']}")
    assert got.status_code == 200 and got.json() == many[0]["item"]
    assert_error(client.get("/items/999999"), 404, "not_found")
    assert_error(client.get("/items/abc"), 400)
    gone = client.delete(f"/items/{many[0]['item']['id']}")
    assert gone.status_code == 204 and gone.content == b""
    assert_error(client.get(f"/items/{many[0]['item']['id']}"), 404, "not_found")
    assert_error(client.get(f"/items/{many[0]['item']['id']}/content"), 404, "not_found")
    assert_error(client.delete(f"/items/{many[0]['item']['id']}"), 404, "not_found")
    assert client.get(f"/datasets/{ds}").json()["item_count"] == 7


def _raw_upload(client: httpx.Client, dataset: int, filename: bytes, data: bytes = b"x") -> httpx.Response:
    """One file part whose ``filename`` bytes are exactly these, as a browser writes them."""
    boundary = b"cargohold-names-" + secrets.token_hex(8).encode()
    body = (b"--" + boundary + b'\r\nContent-Disposition: form-data; name="files"; filename="' + filename
            + b'"\r\nContent-Type: application/octet-stream\r\n\r\n' + data + b"\r\n--" + boundary + b"--\r\n")
    return client.post(f"/datasets/{dataset}/items", content=body,
                       headers={"Content-Type": f"multipart/form-data; boundary={boundary.decode()}"})


def test_upload_names_are_kept_as_the_user_named_the_files(client: httpx.Client) -> None:
    """Browsers, curl and httpx write ``"``, CR and LF in a part's file name as %22, %0D and %0A (the HTML
    standard's form encoding) and nothing else: those three are undone, a ``%41`` the user typed stays."""
    ds = create_dataset(client, "names")["id"]
    kept = {}
    for sent, named in ((b"quote'%22s.jpg", "quote'\"s.jpg"), (b"%41 and %2F.jpg", "%41 and %2F.jpg"),
                        ("caf\u00e9 %25.txt".encode(), "caf\u00e9 %25.txt")):
        answer = _raw_upload(client, ds, sent)
        assert answer.status_code == 201, answer.text
        kept[named] = answer.json()["results"][0]["item"]["name"]
    assert kept == {named: named for named in kept}, kept
    refused = _raw_upload(client, ds, b"new%0Aline.jpg")  # a line feed: the name is refused, never mangled
    assert_error(refused, 400)
    assert "control" in refused.text, refused.text
    names = sorted(i["name"] for i in client.get(f"/datasets/{ds}/items").json()["items"])
    assert names == sorted(kept), names


def test_machine_learning_files_have_their_types(client: httpx.Client) -> None:
    ds = create_dataset(client, "weights")["id"]
    types = {r["item"]["name"]: r["item"]["mime_type"] for r in upload_results(client, ds, [
        (name, b"\x00weights") for name in ("yolo.pt", "m.pth", "m.ckpt", "m.safetensors", "m.onnx", "a.npy",
                                             "t.parquet")])}
    assert types == {"yolo.pt": "application/octet-stream", "m.pth": "application/octet-stream",
                     "m.ckpt": "application/octet-stream", "m.safetensors": "application/octet-stream",
                     "m.onnx": "application/octet-stream", "a.npy": "application/octet-stream",
                     "t.parquet": "application/vnd.apache.parquet"}, types


def test_a_dataset_is_listed_by_folder(client: httpx.Client) -> None:
    """``?prefix=&delimiter=/``: one folder level, items and subfolders in name order (UTF-8 bytes: ``z`` before
    ``é``, on PostgreSQL as on SQLite), paged by a cursor of its own."""
    ds = create_dataset(client, "folders")["id"]
    names = ["top.txt", "a/e.txt", "a/b/c.jpg", "a/b/d.txt", "a/b/deep/x.txt", "a/\u00e9.txt", "a/z.txt"]
    upload_results(client, ds, [(name, name.encode()) for name in names])

    def level(prefix: str | None, delimiter: str | None = "/", **params: Any) -> dict[str, Any]:
        query = {k: v for k, v in (("prefix", prefix), ("delimiter", delimiter)) if v is not None}
        answer = client.get(f"/datasets/{ds}/items", params={**query, **params})
        assert answer.status_code == 200, answer.text
        body: dict[str, Any] = answer.json()
        return body

    def shown(page: dict[str, Any]) -> tuple[list[str], list[str]]:
        return [i["name"] for i in page["items"]], page["folders"]

    assert shown(level("")) == (["top.txt"], ["a/"])
    assert shown(level(None)) == (["top.txt"], ["a/"])
    assert shown(level("a/")) == (["a/e.txt", "a/z.txt", "a/\u00e9.txt"], ["a/b/"])
    assert shown(level("a/b/")) == (["a/b/c.jpg", "a/b/d.txt"], ["a/b/deep/"])
    assert shown(level("a/b/", None)) == (["a/b/c.jpg", "a/b/d.txt", "a/b/deep/x.txt"], [])
    seen: list[list[str]] = []
    page = level("a/b/", limit=1)
    while True:
        items, folders = shown(page)
        seen.append(items + folders)
        if page["next_cursor"] is None:
            break
        page = level("a/b/", limit=1, cursor=page["next_cursor"])
    assert seen == [["a/b/c.jpg"], ["a/b/d.txt"], ["a/b/deep/"]], seen
    flat_cursor = client.get(f"/datasets/{ds}/items", params={"limit": 1}).json()["next_cursor"]
    assert_error(client.get(f"/datasets/{ds}/items", params={"prefix": "a/", "cursor": flat_cursor}), 400)
    assert_error(client.get(f"/datasets/{ds}/items", params={"prefix": "a/", "name": "e"}), 400)
    assert_error(client.get("/datasets/999999/items", params={"prefix": "a/"}), 404)


def test_items_are_renamed_and_moved_without_copying(shared_server: RunningServer, client: httpx.Client) -> None:
    """``PATCH /items/{id}``: a new name and/or dataset, the row changed and no bytes moved; a name taken there
    settled as an upload's (rename, skip, replace); the target dataset checked against the token."""
    first = create_dataset(client, "move-from")["id"]
    second = create_dataset(client, "move-to")["id"]
    [one] = upload_results(client, first, [("a.txt", b"the bytes of a")])
    [taken, spare] = upload_results(client, second, [("taken.txt", b"already there"), ("spare.txt", b"spare")])
    item = one["item"]["id"]

    def patch(body: dict[str, Any], **params: str) -> dict[str, Any]:
        answer = client.patch(f"/items/{item}", json=body, params=params)
        assert answer.status_code == 200, answer.text
        moved: dict[str, Any] = answer.json()
        return moved

    moved = patch({"name": "sub/renamed.txt"})
    assert (moved["status"], moved["item"]["name"], moved["item"]["dataset_id"]) == ("moved", "sub/renamed.txt", first)
    assert patch({"name": "sub/renamed.txt"})["status"] == "unchanged"
    moved = patch({"name": "taken.txt", "dataset_id": second})
    assert (moved["status"], moved["item"]["name"], moved["item"]["dataset_id"]) == ("renamed", "taken (1).txt",
                                                                                    second)
    assert patch({"name": "spare.txt"}, conflict="skip")["status"] == "skipped"
    assert client.get(f"/items/{item}").json()["name"] == "taken (1).txt"
    moved = patch({"name": "spare.txt"}, conflict="replace")
    assert (moved["status"], moved["item"]["name"]) == ("replaced", "spare.txt")
    assert_error(client.get(f"/items/{spare['item']['id']}"), 404)  # the item that was there: its row deleted
    assert client.get(f"/items/{item}/content").content == b"the bytes of a"
    assert moved["item"]["sha256"] == one["item"]["sha256"]  # the same content: nothing was copied
    assert client.get(f"/items/{taken['item']['id']}/content").content == b"already there"
    assert client.get(f"/datasets/{first}").json()["item_count"] == 0
    assert sorted(i["name"] for i in client.get(f"/datasets/{second}/items").json()["items"]) == [
        "spare.txt", "taken.txt"]
    for body, status in (({}, 400), ({"name": "folder/"}, 400), ({"name": "bad\u202ename"}, 400),
                         ({"dataset_id": 999_999}, 404), ({"name": "x", "size": 1}, 400)):
        assert_error(client.patch(f"/items/{item}", json=body), status)
    assert_error(client.patch("/items/999999", json={"name": "x"}), 404)
    limited = client.post("/tokens", json={"name": f"move-{secrets.token_hex(3)}", "role": "write",
                                           "datasets": ["move-to"], "files": []})
    assert limited.status_code == 201, limited.text
    with shared_server.client(limited.json()["token"]) as other:
        assert_error(other.patch(f"/items/{item}", json={"dataset_id": first}), 403)  # it does not reach "move-from"
        assert other.patch(f"/items/{item}", json={"name": "by-the-limited-token.txt"}).status_code == 200


def test_bulk_moves_and_deletes_report_each_item(shared_server: RunningServer, client: httpx.Client) -> None:
    """``POST /items/bulk``: a folder moved to another dataset and folder (a taken name renamed, the rest
    moved, paths below the folder kept), then a selection deleted by a limited token, half of which fails
    (gone, out of its reach): each item says what happened, the rest is done."""
    tag = secrets.token_hex(3)
    source = create_dataset(client, f"bulk-from-{tag}")
    target = create_dataset(client, f"bulk-to-{tag}")
    made = upload_results(client, source["id"], [(n, n.encode()) for n in ("f/a.txt", "f/b.txt", "f/sub/c.txt",
                                                                             "keep.txt")])
    [clash] = upload_results(client, target["id"], [("x/a.txt", b"already there")])
    answer = client.post("/items/bulk", json={"action": "move", "dataset_id": source["id"], "prefix": "f/",
                                              "to_dataset_id": target["id"], "to_prefix": "x/"})
    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert body["more"] is False
    moved = {r["item"]["name"]: r["status"] for r in body["results"]}
    assert moved == {"x/a (1).txt": "renamed", "x/b.txt": "moved", "x/sub/c.txt": "moved"}, body
    assert {i["name"] for i in client.get(f"/datasets/{target['id']}/items").json()["items"]} == {
        "x/a.txt", "x/a (1).txt", "x/b.txt", "x/sub/c.txt"}
    assert [i["name"] for i in client.get(f"/datasets/{source['id']}/items").json()["items"]] == ["keep.txt"]
    assert client.get(f"/items/{made[0]['item']['id']}/content").content == b"f/a.txt"  # the same bytes
    whole = client.post("/items/bulk", json={"action": "move", "dataset_id": source["id"], "prefix": "",
                                             "to_prefix": "old/"}).json()  # the whole dataset, paths kept
    assert [r["item"]["name"] for r in whole["results"]] == ["old/keep.txt"], whole
    picked = client.post("/items/bulk", json={"action": "move", "ids": [made[2]["item"]["id"]],
                                              "to_prefix": "picked/"}).json()  # a selection: its file name
    assert [r["item"]["name"] for r in picked["results"]] == ["picked/c.txt"], picked

    limited = client.post("/tokens", json={"name": f"bulk-{tag}", "role": "write", "datasets": [target["name"]],
                                           "files": []})
    assert limited.status_code == 201, limited.text
    selection = [made[0]["item"]["id"], 999_999, made[3]["item"]["id"], clash["item"]["id"]]
    with shared_server.client(limited.json()["token"]) as other:
        answer = other.post("/items/bulk", json={"action": "delete", "ids": selection})
    assert answer.status_code == 200, answer.text
    results = {r["id"]: (r["status"], (r["error"] or {}).get("code")) for r in answer.json()["results"]}
    assert results == {made[0]["item"]["id"]: ("deleted", None), 999_999: ("failed", "not_found"),
                       made[3]["item"]["id"]: ("failed", "forbidden"), clash["item"]["id"]: ("deleted", None)}
    assert_error(client.get(f"/items/{made[0]['item']['id']}"), 404)
    assert client.get(f"/items/{made[3]['item']['id']}").status_code == 200  # out of the token's reach: kept
    for wrong in ({"action": "delete"}, {"action": "delete", "ids": []}, {"action": "move", "ids": [1]},
                  {"action": "delete", "ids": [1], "dataset_id": source["id"]}):
        assert_error(client.post("/items/bulk", json=wrong), 400)


def test_images_report_kind_mime_and_size(shared_server: RunningServer, client: httpx.Client) -> None:
    ds = create_dataset(client, "images")["id"]
    jpeg, png = make_image("JPEG", (64, 48)), make_image("PNG", (20, 10))
    rotated = make_image("JPEG", (64, 32), orientation=6)
    results = upload_results(client, ds, [("photo.jpg", jpeg), ("icon.png", png), ("rotated.jpg", rotated),
                                          ("png-named.bin", png)])
    items = {r["item"]["name"]: r["item"] for r in results}
    assert {k: (v["kind"], v["mime_type"], v["width"], v["height"]) for k, v in items.items()} == {
        "photo.jpg": ("image", "image/jpeg", 64, 48),
        "icon.png": ("image", "image/png", 20, 10),
        "rotated.jpg": ("image", "image/jpeg", 32, 64),  # EXIF orientation 6: shown turned a quarter
        "png-named.bin": ("image", "image/png", 20, 10),  # the bytes say what it is, not the name
    }
    content = client.get(f"/items/{items['photo.jpg']['id']}/content")
    assert content.content == jpeg and content.headers["content-type"] == "image/jpeg"

    before = stored_objects(shared_server)
    bomb = png_declaring(50_000, 50_000)
    assert len(bomb) < 200
    error = assert_error(upload(client, ds, [("bomb.png", bomb)], status=422), 422, "unprocessable")
    assert "IMAGE_MAX_PIXELS" in error["message"] and "bomb.png" in error["message"]
    assert "2,500,000,000" in error["message"] or "2500000000" in error["message"], error
    names = [i["name"] for i in client.get(f"/datasets/{ds}/items").json()["items"]]
    assert "bomb.png" not in names and len(names) == 4, "a refused image gets no item row"
    assert stored_objects(shared_server) == before, "a refused image leaves no object behind"
    assert unfinished_uploads(shared_server) == []
    assert client.get(f"/datasets/{ds}").json()["item_count"] == 4


def test_upload_limits_from_the_server_settings(api_server: RunningServer) -> None:
    api_server.stop()
    api_server.env.update({"UPLOAD_MAX_SIZE": "10m", "IMAGE_MAX_PIXELS": "1000"})
    api_server.start()
    limit = 10 * 1024 * 1024
    with api_server.client() as client:
        ds = create_dataset(client, "limits")["id"]
        fits = b"x" * limit
        assert upload_results(client, ds, [("fits.bin", fits)])[0]["status"] == "created"

        # the limit is per file: one file over it is refused once its bytes pass the limit
        too_big = client.post(f"/datasets/{ds}/items", files={"files": ("declared.bin", b"d" * (limit + 100_000))})
        error = assert_error(too_big, 413, "too_large")
        assert "declared.bin" in error["message"] and "UPLOAD_MAX_SIZE" in error["message"]

        # no Content-Length (chunked): refused once the file passes the limit, its partial bytes dropped
        content, headers = chunked_multipart("chunked.bin", limit + 100_000)
        error = assert_error(client.post(f"/datasets/{ds}/items", content=content, headers=headers), 413, "too_large")
        assert "chunked.bin" in error["message"] and "UPLOAD_MAX_SIZE" in error["message"]
        assert unfinished_uploads(api_server) == [], "a refused upload leaves no unfinished write behind"

        small, large = make_image("PNG", (30, 30)), make_image("PNG", (40, 40))
        assert upload_results(client, ds, [("small.png", small)])[0]["item"]["width"] == 30
        error = assert_error(upload(client, ds, [("large.png", large)], status=422), 422, "unprocessable")
        assert "1,600" in error["message"] and "1,000" in error["message"], error

        names = sorted(i["name"] for i in client.get(f"/datasets/{ds}/items").json()["items"])
        assert names == ["fits.bin", "small.png"], "refused uploads get no item row"
        objects = stored_objects(api_server)
        assert sorted(objects) == sorted(content_key(sha256(d)) for d in (fits, small)), objects

        # team files have the same limit
        content, _ = chunked_multipart("unused", limit + 100_000)
        assert_error(client.put("/files/too/big.bin", content=content), 413, "too_large")
        assert_error(client.get("/files/too/big.bin"), 404, "not_found")
        assert stored_objects(api_server, "private") == {}
        assert unfinished_uploads(api_server) == []

        # Two files, each under the limit, together over it: the answer must not depend on whether the
        # client sent a Content-Length (httpx does for bytes) or streamed the same body chunked.
        half = limit // 2 + 100_000
        declared = client.post(f"/datasets/{ds}/items", files=[("files", ("half1.bin", b"1" * half)),
                                                                ("files", ("half2.bin", b"2" * half))])
        boundary = "two-halves"
        two_parts = b"".join(
            f"--{boundary}\r\nContent-Disposition: form-data; name=\"files\"; filename=\"{name}\"\r\n\r\n".encode()
            + fill * half + b"\r\n" for name, fill in (("half3.bin", b"3"), ("half4.bin", b"4"))
        ) + f"--{boundary}--\r\n".encode()
        streamed = client.post(f"/datasets/{ds}/items", content=iter([two_parts]),
                               headers={"content-type": f"multipart/form-data; boundary={boundary}"})
        assert declared.status_code == streamed.status_code, (
            f"the same two {half:,}-byte files (limit {limit:,} each): with Content-Length {declared.status_code} "
            f"{declared.text[:200]}; chunked {streamed.status_code} {streamed.text[:200]}")
        for answer in (declared, streamed):
            if answer.status_code != 201:
                assert_error(answer, 413, "too_large")


# --- content ------------------------------------------------------------------------------------------------------


def test_content_headers_ranges_and_conditional_get(client: httpx.Client) -> None:
    ds = create_dataset(client, "content")["id"]
    data = random_bytes(1000, seed=1)
    name = "naïve ☕ notes.txt"
    item = upload_one(client, ds, name, data)
    url = f"/items/{item['id']}/content"

    full = client.get(url)
    assert full.status_code == 200
    assert full.content == data
    etag = f'"{sha256(data)}"'
    assert full.headers["etag"] == etag == f'"{item["sha256"]}"'
    assert full.headers["content-length"] == "1000"
    assert full.headers["content-type"].split(";")[0] == "text/plain" == item["mime_type"]
    assert full.headers["accept-ranges"] == "bytes"
    modified = parsedate_to_datetime(full.headers["last-modified"])
    created = assert_timestamp(item["created_at"])
    assert abs(modified - created) < timedelta(seconds=2)
    disposition = full.headers["content-disposition"]
    assert f"filename*=UTF-8''{quote(name, safe='')}" in disposition, disposition
    assert disposition.startswith("inline; filename=\"")

    def ranged(header: str, status: int = 206) -> httpx.Response:
        answer = client.get(url, headers={"Range": header})
        assert answer.status_code == status, f"{header}: {answer.status_code} {answer.text[:200]}"
        return answer

    cases = {
        "bytes=0-0": (0, 0),  # the first byte
        "bytes=999-999": (999, 999),  # the last byte
        "bytes=-10": (990, 999),  # a suffix
        "bytes=900-": (900, 999),  # open-ended
        "bytes=10-19": (10, 19),
        "bytes=995-5000": (995, 999),  # the end clipped to the object
        "bytes=-5000": (0, 999),  # a suffix longer than the object
    }
    for header, (first, last) in cases.items():
        answer = ranged(header)
        assert answer.content == data[first:last + 1], header
        assert answer.headers["content-range"] == f"bytes {first}-{last}/1000", header
        assert answer.headers["content-length"] == str(last - first + 1), header
        assert answer.headers["etag"] == etag

    for header in ("bytes=1000-", "bytes=5000-6000", "bytes=-0"):
        answer = ranged(header, 416)
        assert_error(answer, 416, "range_not_satisfiable")
        assert answer.headers["content-range"] == "bytes */1000", header

    assert ranged("bytes=0-1,5-6", 200).content == data, "several ranges: the whole object"
    assert ranged("items=0-1", 200).content == data, "another unit: the whole object"

    for match in (etag, f"W/{etag}", f'"other", {etag}', "*"):
        not_modified = client.get(url, headers={"If-None-Match": match})
        assert not_modified.status_code == 304, match
        assert not_modified.content == b""
        assert not_modified.headers["etag"] == etag
    assert client.get(url, headers={"If-None-Match": '"something-else"'}).status_code == 200

    empty = upload_one(client, ds, "empty.txt", b"")
    assert empty["size"] == 0 and empty["sha256"] == sha256(b"")
    answer = client.get(f"/items/{empty['id']}/content")
    assert answer.status_code == 200 and answer.content == b"" and answer.headers["content-length"] == "0"
    answer = client.get(f"/items/{empty['id']}/content", headers={"Range": "bytes=0-"})
    assert_error(answer, 416, "range_not_satisfiable")
    assert answer.headers["content-range"] == "bytes */0"


def test_signed_urls(shared_server: RunningServer, client: httpx.Client) -> None:
    ds = create_dataset(client, "signed")["id"]
    data, other_data = random_bytes(5000, seed=2), b"the other item"
    item, other = upload_one(client, ds, "a.bin", data), upload_one(client, ds, "b.bin", other_data)

    signed = client.post(f"/items/{item['id']}/sign", json={"expires_in": 600})
    assert signed.status_code == 200, signed.text
    assert set(signed.json()) == {"url", "expires_at"}
    url = signed.json()["url"]
    parts = urlsplit(url)
    query = {k: v[0] for k, v in parse_qs(parts.query).items()}
    assert parts.path == f"/api/v1/items/{item['id']}/content"
    assert set(query) == {"version", "signer", "expires", "signature"}  # the item's version, the signing token
    assert query["version"] == item["sha256"][:16]
    expires_at = assert_timestamp(signed.json()["expires_at"], after_now=timedelta(seconds=600))
    assert int(query["expires"]) == int(expires_at.timestamp())
    assert client.post(f"/items/{item['id']}/sign", json={}).status_code == 200, "expires_in has a default"

    with httpx.Client(timeout=30) as anonymous:
        answer = anonymous.get(url)
        assert answer.status_code == 200 and answer.content == data
        ranged = anonymous.get(url, headers={"Range": "bytes=0-9"})
        assert ranged.status_code == 206 and ranged.content == data[:10]

        def with_query(path: str, **changes: str) -> str:
            return f"{shared_server.url}{path}?{urlencode({**query, **changes})}"

        signature = query["signature"]
        tampered = ("A" if signature[0] != "A" else "B") + signature[1:]
        for bad in (
            with_query(parts.path, signature=tampered),
            with_query(parts.path, signature=""),
            with_query(parts.path, expires=str(int(query["expires"]) + 1)),
            with_query(parts.path, expires="soon"),
            with_query(parts.path, version=other["sha256"][:16]),
            with_query(parts.path, signer=str(int(query["signer"]) + 1)),
            with_query(f"/api/v1/items/{other['id']}/content"),  # another item, the same signature
        ):
            assert_error(anonymous.get(bad), 401, "unauthenticated")
        assert_error(anonymous.get(f"{shared_server.url}{parts.path}"), 401, "unauthenticated")

        short = client.post(f"/items/{item['id']}/sign", json={"expires_in": 1}).json()["url"]
        expiry = int(parse_qs(urlsplit(short).query)["expires"][0])
        time.sleep(max(0.0, expiry + 1.05 - time.time()))
        error = assert_error(anonymous.get(short), 401, "unauthenticated")
        assert "expired" in error["message"]

    for bad_body in ({"expires_in": 0}, {"expires_in": -5}, {"expires_in": 604801}, {"expires_in": "soon"}):
        assert_error(client.post(f"/items/{item['id']}/sign", json=bad_body), 400)
    assert client.post(f"/items/{item['id']}/sign", json={"expires_in": 604800}).status_code == 200
    assert_error(client.post("/items/999999/sign", json={"expires_in": 60}), 404, "not_found")


def test_many_signed_urls_at_once_and_the_name_filter(client: httpx.Client) -> None:
    ds = create_dataset(client, "grid")["id"]
    names = ["cat_1.jpg", "Cat-2.JPG", "dog.jpg", "100%_real.jpg", "under_score.png"]
    items = {n: upload_one(client, ds, n, random_bytes(100 + i, seed=i)) for i, n in enumerate(names)}

    def filtered(name: str) -> list[str]:
        answer = client.get(f"/datasets/{ds}/items", params={"name": name, "limit": 2})
        found = [i["name"] for i in answer.json()["items"]]
        if answer.json()["next_cursor"]:  # the filter holds across pages
            found += [i["name"] for i in client.get(f"/datasets/{ds}/items", params={
                "name": name, "cursor": answer.json()["next_cursor"]}).json()["items"]]
        return found

    assert filtered("cat") == ["cat_1.jpg", "Cat-2.JPG"]  # any case
    assert filtered("%") == ["100%_real.jpg"]  # LIKE's wildcards are plain characters here
    assert filtered("_") == ["cat_1.jpg", "100%_real.jpg", "under_score.png"]
    assert filtered("nothing") == []

    ids = [items[n]["id"] for n in names] + [999_999]
    signed = client.post("/sign", json={"items": ids, "expires_in": 60, "preview": {"w": 64}})
    assert signed.status_code == 200, signed.text
    urls = signed.json()["urls"]
    assert set(urls) == {str(items[n]["id"]) for n in names}, "an unknown id is left out"
    first = urlsplit(urls[str(items["dog.jpg"]["id"])])
    assert first.path == f"/api/v1/items/{items['dog.jpg']['id']}/preview"
    assert parse_qs(first.query)["w"] == ["64"]
    content = client.post("/sign", json={"items": ids[:1]}).json()["urls"][str(ids[0])]
    with httpx.Client(timeout=30) as anonymous:
        assert anonymous.get(content).content == random_bytes(100, seed=0)
    assert_error(client.post("/sign", json={"items": []}), 400)
    assert_error(client.post("/sign", json={"items": list(range(1001))}), 400)


# --- team files ---------------------------------------------------------------------------------------------------


def test_team_files(client: httpx.Client) -> None:
    weights = random_bytes(300_000, seed=3)
    put = client.put("/files/team/models/yolo.pt", content=weights)
    assert put.status_code == 201, put.text
    row = put.json()
    assert set(row) == TEAM_FILE_KEYS
    assert row["path"] == "team/models/yolo.pt" and row["size"] == len(weights) and row["sha256"] == sha256(weights)
    assert row["content_type"] == "application/octet-stream"
    assert_timestamp(row["updated_at"])
    config = client.put("/files/team/models/config.json", content=b'{"a": 1}',
                        headers={"content-type": "application/json"})
    assert config.status_code == 201 and config.json()["content_type"] == "application/json"
    assert client.put("/files/team/readme.md", content=b"# team\n").status_code == 201

    got = client.get("/files/team/models/yolo.pt")
    assert got.status_code == 200 and got.content == weights
    assert got.headers["etag"] == f'"{sha256(weights)}"' and got.headers["content-length"] == str(len(weights))
    assert "last-modified" in got.headers and "yolo.pt" in got.headers["content-disposition"]
    assert client.get("/files/team/models/config.json").headers["content-type"].startswith("application/json")
    part = client.get("/files/team/models/yolo.pt", headers={"Range": "bytes=1000-1999"})
    assert part.status_code == 206 and part.content == weights[1000:2000]
    assert part.headers["content-range"] == f"bytes 1000-1999/{len(weights)}"
    tail = client.get("/files/team/models/yolo.pt", headers={"Range": "bytes=-100"})
    assert tail.status_code == 206 and tail.content == weights[-100:]
    past = client.get("/files/team/models/yolo.pt", headers={"Range": f"bytes={len(weights)}-"})
    assert_error(past, 416, "range_not_satisfiable")
    assert past.headers["content-range"] == f"bytes */{len(weights)}"
    assert client.get("/files/team/models/yolo.pt", headers={"If-None-Match": got.headers["etag"]}).status_code == 304

    def paths(**params: Any) -> list[str]:
        answer = client.get("/files", params=params)
        assert answer.status_code == 200, answer.text
        assert set(answer.json()) == {"files", "next_cursor"}
        assert all(set(f) == TEAM_FILE_KEYS for f in answer.json()["files"])
        return [f["path"] for f in answer.json()["files"]]

    mine = ["team/models/config.json", "team/models/yolo.pt", "team/readme.md"]
    assert sorted(paths(prefix="team/")) == mine
    assert set(mine) <= set(paths())
    assert sorted(paths(prefix="team/models/")) == mine[:2]
    assert paths(prefix="team/read") == ["team/readme.md"]
    assert paths(prefix="team/nothing/") == []
    assert paths(prefix="team/%") == [] and paths(prefix="team_") == [], "LIKE wildcards are taken literally"
    first = client.get("/files", params={"prefix": "team/", "limit": 2}).json()
    second = client.get("/files", params={"prefix": "team/", "limit": 2, "cursor": first["next_cursor"]}).json()
    assert len(first["files"]) == 2 and len(second["files"]) == 1 and second["next_cursor"] is None
    assert sorted(f["path"] for f in first["files"] + second["files"]) == mine
    assert_error(client.get("/files", params={"limit": 0}), 400)
    assert_error(client.get("/files", params={"cursor": "!!"}), 400)

    replaced = client.put("/files/team/models/yolo.pt", content=b"v2")
    assert replaced.status_code == 201 and replaced.json()["sha256"] == sha256(b"v2") and replaced.json()["size"] == 2
    assert client.get("/files/team/models/yolo.pt").content == b"v2"
    assert sorted(paths(prefix="team/")) == mine, "a PUT on an existing path replaces it"

    deleted = client.delete("/files/team/models/yolo.pt")
    assert deleted.status_code == 204 and deleted.content == b""
    assert_error(client.get("/files/team/models/yolo.pt"), 404, "not_found")
    assert_error(client.delete("/files/team/models/yolo.pt"), 404, "not_found")
    assert_error(client.get("/files/team/never/there.bin"), 404, "not_found")
    assert sorted(paths(prefix="team/")) == ["team/models/config.json", "team/readme.md"]

    for bad in ("team/%2E%2E/b", "%2E%2E/escape", "team/%2E/b", "team//b", ".staging/x"):
        assert_error(client.put(f"/files/{bad}", content=b"x"), 400)
        assert_error(client.get(f"/files/{bad}"), 400)
    assert sorted(paths(prefix="team/")) == ["team/models/config.json", "team/readme.md"]
    assert not [p for p in paths() if ".." in p or p.startswith(("b", "escape", ".staging"))]


# --- what one catalog database let through and another refused ------------------------------------------------


def test_ids_cursors_and_long_values_answer_alike_on_every_database(client: httpx.Client) -> None:
    """Ids past 32 bits (PostgreSQL's ``integer``) or 64 bits (SQLite's), 4 KiB link URIs (past a
    PostgreSQL btree key), over-long Content-Types (past ``varchar(255)``), prefixes differing in case
    (SQLite's LIKE ignores it): the same answer whatever the catalog is."""
    ds = create_dataset(client, "edges")["id"]
    for huge in (2**31, 2**63, 10**30):
        assert_error(client.get(f"/items/{huge}"), 404, "not_found")
        assert_error(client.get(f"/items/{huge}/content"), 404)
        assert_error(client.delete(f"/items/{huge}"), 404, "not_found")
        assert_error(client.get(f"/datasets/{huge}"), 404, "not_found")
        assert_error(client.get(f"/datasets/{huge}/items"), 404, "not_found")
        assert_error(client.post(f"/datasets/{huge}/links", json={"links": []}), 404, "not_found")
        cursor = base64.urlsafe_b64encode(str(huge).encode()).decode().rstrip("=")
        assert_error(client.get(f"/datasets/{ds}/items", params={"cursor": cursor}), 400, "bad_input")
        assert_error(client.get("/files", params={"cursor": cursor}), 400, "bad_input")
    signed = client.post("/sign", json={"items": [2**31, 2**40]})
    assert signed.status_code == 200 and signed.json()["urls"] == {}, signed.text

    letters = "abcdefghijklmnopqrstuvwxyz0123456789"
    long_uri = "https://example.com/" + "".join(random.Random(7).choices(letters, k=4000))
    body = {"links": [{"url": long_uri, "name": "Long.jpg"}, {"url": long_uri + "?v=2", "name": "other.jpg"}]}
    added = client.post(f"/datasets/{ds}/links", params={"verify": "false"}, json=body)
    assert added.status_code == 200 and added.json()["added"] == 2, added.text
    again = client.post(f"/datasets/{ds}/links", params={"verify": "false"}, json=body).json()
    assert (again["added"], again["unchanged"]) == (0, 2), again
    found = client.get(f"/datasets/{ds}/items", params={"name": "LONG"}).json()["items"]
    assert [(i["name"], i["uri"]) for i in found] == [("Long.jpg", long_uri)]

    assert client.put("/files/edges/Case/a.txt", content=b"a").status_code == 201
    assert client.put("/files/edges/case/b.txt", content=b"b").status_code == 201
    for prefix, expected in (("edges/Case/", ["edges/Case/a.txt"]), ("edges/case/", ["edges/case/b.txt"]),
                             ("edges/CASE/", []), ("edges/", ["edges/Case/a.txt", "edges/case/b.txt"])):
        listed = client.get("/files", params={"prefix": prefix}).json()["files"]
        assert sorted(f["path"] for f in listed) == expected, prefix
    long_type = client.put("/files/edges/typed.txt", content=b"x",
                           headers={"content-type": "text/plain; x=" + "a" * 300})
    assert_error(long_type, 400, "bad_input")
    assert_error(client.get("/files/edges/typed.txt"), 404, "not_found")


# --- auth -----------------------------------------------------------------------------------------------------------

ALL_ROUTES = [
    ("GET", "/storage"), ("POST", "/datasets"), ("GET", "/datasets"), ("GET", "/datasets/1"),
    ("DELETE", "/datasets/1"), ("GET", "/datasets/1/items"), ("POST", "/datasets/1/items"), ("GET", "/items/1"),
    ("DELETE", "/items/1"), ("GET", "/items/1/content"), ("POST", "/items/1/sign"), ("PUT", "/files/a.bin"),
    ("GET", "/files"), ("GET", "/files/a.bin"), ("DELETE", "/files/a.bin"),
]


def test_auth_tokens_and_roles(shared_server: RunningServer) -> None:
    api_server = shared_server
    with api_server.client() as admin:
        ds = create_dataset(admin, "auth")["id"]
        item = upload_one(admin, ds, "a.bin", b"secret bytes")
        assert admin.put("/files/auth/a.bin", content=b"team").status_code == 201
    routes = [(m, p.replace("/1", f"/{ds}") if "dataset" in p else p.replace("/1", f"/{item['id']}"))
              for m, p in ALL_ROUTES]

    health = httpx.get(api_server.url + "/healthz")
    assert health.status_code == 200 and {"status", "provider", "buckets"} <= set(health.json())

    with httpx.Client(base_url=api_server.api, timeout=30) as anonymous:
        for method, path in routes:
            answer = anonymous.request(method, path)
            assert_error(answer, 401, "unauthenticated")
            assert answer.headers.get("www-authenticate", "").lower().startswith("bearer"), (method, path)
        for header in ("Bearer chd_not-a-real-token", "Bearer", "Basic dXNlcjpwYXNz", "chd_no-scheme"):
            for method, path in routes:
                assert_error(anonymous.request(method, path, headers={"Authorization": header}), 401,
                             "unauthenticated")

    user_token = cli(api_server, "token", "create", "--name", "u").stdout.strip()
    assert user_token.startswith("chd_") and len(user_token) > 30
    with api_server.client(user_token) as user:
        assert user.get("/datasets").status_code == 200
        assert user.get(f"/items/{item['id']}/content").content == b"secret bytes"
        assert user.get(f"/datasets/{ds}/items").status_code == 200
        assert user.get("/files/auth/a.bin").content == b"team"
        assert create_dataset(user, "made-by-user")["name"] == "made-by-user"
        error = assert_error(user.get("/storage"), 403, "forbidden")
        assert "admin" in error["message"]
    with api_server.client() as admin:
        storage = admin.get("/storage")
        assert storage.status_code == 200
        body = storage.json()
        assert body["provider"] == ("minio" if is_s3(api_server) else "http")
        assert sorted(b["name"] for b in body["buckets"]) == sorted(
            [bucket_name(api_server, "private"), bucket_name(api_server, "public")])
        assert all(b["status"] == "ok" for b in body["buckets"])

    assert "revoked" in cli(api_server, "token", "revoke", "u").stdout
    time.sleep(TOKEN_TTL + 0.1)  # a checked token is trusted that long by a server that saw it
    with api_server.client(user_token) as revoked:
        assert_error(revoked.get("/datasets"), 401, "unauthenticated")
        assert_error(revoked.get(f"/items/{item['id']}/content"), 401, "unauthenticated")
    with api_server.client() as admin:
        assert admin.get("/datasets").status_code == 200, "revoking one token leaves the others working"

    # The token is checked before the request is: no token and a bad request is still 401.
    with httpx.Client(base_url=api_server.api, timeout=30) as anonymous:
        assert_error(anonymous.post(f"/items/{item['id']}/sign", json={"expires_in": 0}), 401, "unauthenticated")
        assert_error(anonymous.get(f"/datasets/{ds}/items", params={"limit": 0}), 401, "unauthenticated")
        assert_error(anonymous.post("/datasets", content=b"{not json", headers={"content-type": "application/json"}),
                     401, "unauthenticated")


def test_openapi_describes_the_routes(shared_server: RunningServer) -> None:
    token = {"Authorization": f"Bearer {shared_server.token}"}
    docs = httpx.get(shared_server.url + "/api/docs", headers=token)
    assert docs.status_code == 200 and docs.headers["content-type"].startswith("text/html")
    assert "/api/openapi.json" in docs.text and "swagger" in docs.text.lower()
    schema = httpx.get(shared_server.url + "/api/openapi.json", headers=token)
    assert schema.status_code == 200
    paths = schema.json()["paths"]
    expected = {
        "/healthz": {"get"},
        "/api/v1/storage": {"get"},
        "/api/v1/datasets": {"get", "post"},
        "/api/v1/datasets/{dataset_id}": {"get", "delete"},
        "/api/v1/datasets/{dataset_id}/items": {"get", "post"},
        "/api/v1/items/{item_id}": {"get", "patch", "delete"},
        "/api/v1/items/bulk": {"post"},
        "/api/v1/items/{item_id}/content": {"get"},
        "/api/v1/items/{item_id}/preview": {"get"},
        "/api/v1/items/{item_id}/sign": {"post"},
        "/api/v1/sign": {"post"},
        "/api/v1/cache": {"get"},
        "/api/v1/cache/{tier}": {"delete"},
        "/metrics": {"get"},
        "/api/v1/files": {"get"},
        "/api/v1/files/{path}": {"get", "head", "put", "delete"},
    }
    documented = {p: set(ops) for p, ops in paths.items()}
    assert {p: documented.get(p) for p in expected} == expected  # later issues add routes of their own
    upload_route = paths["/api/v1/datasets/{dataset_id}/items"]["post"]
    assert "multipart/form-data" in upload_route["requestBody"]["content"]
    conflict = [p for p in upload_route["parameters"] if p["name"] == "conflict"]
    assert conflict and set(conflict[0]["schema"]["enum"]) == {"rename", "skip", "replace"}
