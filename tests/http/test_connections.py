"""Connections: ``remote_links.yml`` and the catalog, against the real S3, Azure and GCS emulators and a folder.

In-process: every provider's store comes out of ``store_for`` and reads what the provider's own SDK
wrote; every bad file names its file, line and connection; a changed file is picked up, a file turned
bad leaves the last good one in force. Over HTTP, through the real server process: the API's routes,
read-only file connections, 403 for a user token, and no secret in any answer, in the log or in the
catalog file.
"""

from __future__ import annotations

import base64
import json
import os
import secrets
import shutil
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from cargohold.errors import ConfigError, ConnectionsFileError, NotFound
from cargohold.storage.base import FolderListing, ObjectMeta
from cargohold.storage.connections import ConnectionRegistry, load_file

from ..support.api import assert_error, cli
from ..support.api_server import RunningServer
from ..support.servers import AZURITE_ACCOUNT, AZURITE_KEY, Server

MOTO_SECRET = "moto-file-secret-" + secrets.token_hex(8)  # moto takes any key pair; this one is looked for


def s3(moto: Server) -> Any:
    import boto3

    return boto3.client("s3", endpoint_url=moto.url, aws_access_key_id="testing", aws_secret_access_key="x",
                        region_name="us-east-1")


def azure(azurite: Server) -> Any:
    from azure.storage.blob import BlobServiceClient

    return BlobServiceClient(account_url=f"{azurite.url}/{AZURITE_ACCOUNT}",
                             credential={"account_name": AZURITE_ACCOUNT, "account_key": AZURITE_KEY})


def gcs(gcs_server: Server) -> Any:
    from google.auth.credentials import AnonymousCredentials
    from google.cloud import storage

    return storage.Client(project="cargohold-test", credentials=AnonymousCredentials(),  # type: ignore[no-untyped-call]
                          client_options={"api_endpoint": gcs_server.url})


def yml(connections: dict[str, dict[str, Any]]) -> str:
    """The file as users write it: block mappings, flow lists."""
    out = []
    for name, fields in connections.items():
        out.append(f"{name}:")
        for key, value in fields.items():
            out.append(f"  {key}: [{', '.join(value)}]" if isinstance(value, list) else f"  {key}: {value}")
    return "\n".join(out) + "\n"


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    root = tmp_path / "datasets"
    (root / "persons").mkdir(parents=True)
    (root / "persons" / "1.jpg").write_bytes(b"person one")
    (root / "persons" / "2.jpg").write_bytes(b"person two")
    (root / "readme.txt").write_bytes(b"hello")
    return root


# --- the file ---------------------------------------------------------------------------------------------------


def test_a_good_file_gives_every_provider(tmp_path: Path, folder: Path, gcs_credentials: Path) -> None:
    path = tmp_path / "remote_links.yml"
    path.write_text(f"""# connections
my-car-datasets:
  provider: minio            # minio | azure | google | fs
  endpoint: http://10.0.0.5:9000
  access_key: AKIA123
  secret_key: 0123
  region: eu-central-1
  buckets: [cars_2020_20_10, 2020]
role:
  provider: minio
  iam_role: reader
  buckets:
    - logs
blobs:
  provider: azure
  access_key: acct
  secret_key: "a2V5LWJ5dGVz"
  buckets: [photos]
gcp:
  provider: google
  credentials_path: {gcs_credentials}
  buckets: [photos]
server-datasets:
  provider: fs
  path: {folder}
  storage_id: local-datasets
""")
    found = {n.name: n for n in load_file(path, "http://imds.test")}
    assert list(found) == ["my-car-datasets", "role", "blobs", "gcp", "server-datasets"]
    cars = found["my-car-datasets"]
    assert cars.buckets == ("cars_2020_20_10", "2020"), "scalars are taken as written, not as YAML numbers"
    assert cars.connection.secret_key == "0123" and cars.connection.endpoint_url() == "http://10.0.0.5:9000"
    assert cars.line == 2 and cars.origin == "file" and cars.read_only and cars.has_secret
    assert "0123" not in repr(cars), "a connection's repr holds no secret"
    assert found["role"].connection.metadata_endpoint == "http://imds.test" and not found["role"].has_secret
    assert found["blobs"].connection.access_key == "acct"
    assert found["gcp"].connection.credentials_path == gcs_credentials
    assert found["server-datasets"].buckets == ("local-datasets",)
    assert found["server-datasets"].connection.root == folder
    assert found["blobs"].buckets == found["gcp"].buckets, "one bucket name on two providers is no clash"


BAD_FILES = [
    # (file text, line, connection, words of the message)
    ("a:\n  provider: minio\n  secret_key: abc: {SECRET}\n", 3, "a", "not valid YAML"),
    ("a:\n  provider: minio\n  buckets: [x\nb:\n  provider: fs\n", 4, "a", "not valid YAML"),
    ("a:\n  provider: minioo\n  buckets: [x]\n", 2, "a", "unknown provider 'minioo'"),
    ("a:\n  buckets: [x]\n", 1, "a", "names no provider"),
    ("ok:\n  provider: minio\n  access_key: k\n  secret_key: {SECRET}\n  buckets: [x]\n"
     "b:\n  provider: minio\n  access_key: k\n  secret_key: {SECRET}\n", 6, "b", "lists no buckets"),
    ("b:\n  provider: minio\n  access_key: k\n  buckets: [x]\n", 1, "b", "secret_key is missing"),
    ("b:\n  provider: azure\n  secret_key: {SECRET}\n  buckets: [x]\n", 1, "b", "access_key is missing"),
    ("b:\n  provider: google\n  buckets: [x]\n", 1, "b", "credentials_path is missing"),
    ("b:\n  provider: google\n  credentials_path: /no/such.json\n  buckets: [x]\n", 3, "b", "cannot read"),
    ("b:\n  provider: minio\n  access_key: k\n  secret_key: {SECRET}\n  bucket: [x]\n", 5, "b",
     "'bucket' is not a field of minio connections"),
    ("b:\n  provider: azure\n  access_key: k\n  secret_key: {SECRET}\n  region: eu\n  buckets: [x]\n", 5, "b",
     "'region' is not a field of azure connections"),
    ("one:\n  provider: minio\n  access_key: k\n  secret_key: {SECRET}\n  buckets: [x, y]\n"
     "two:\n  provider: minio\n  iam_role: r\n  buckets:\n    - z\n    - y\n", 11, "two",
     "bucket 'y' is listed by connection 'one' too"),
    ("one:\n  provider: fs\n  path: {FOLDER}\n  storage_id: d\n"
     "two:\n  provider: fs\n  path: {FOLDER}\n  storage_id: d\n", 8, "two", "storage_id 'd' is listed by connection"),
    ("f:\n  provider: fs\n  path: relative/folder\n  storage_id: d\n", 3, "f", "not an absolute path"),
    ("f:\n  provider: fs\n  path: {FOLDER}/missing\n  storage_id: d\n", 3, "f", "not an existing folder"),
    ("f:\n  provider: fs\n  path: {FOLDER}/persons/1.jpg\n  storage_id: d\n", 3, "f", "not an existing folder"),
    ("f:\n  provider: fs\n  path: {FOLDER}\n", 1, "f", "storage_id is missing"),
    ("a:\n  provider: fs\n  path: {FOLDER}\n  storage_id: d\na:\n  provider: fs\n", 5, "a", "used already at line 1"),
    ("b:\n  provider: minio\n  endpoint: ftp://host\n  access_key: k\n  secret_key: {SECRET}\n  buckets: [x]\n", 3,
     "b", "scheme 'ftp' is not http or https"),
    ("b:\n  provider: minio\n  endpoint: host:99999\n  access_key: k\n  secret_key: {SECRET}\n  buckets: [x]\n", 3,
     "b", "port"),
    ("b:\n  provider: minio\n  iam_role: r\n  access_key: k\n  buckets: [x]\n", 3, "b", "both keys and an IAM role"),
    ("b:\n  provider: minio\n  iam_role: r\n  buckets: [x, x]\n", 4, "b", "'x' is listed twice"),
    ("b:\n  provider: minio\n  iam_role: r\n  buckets: x\n", 4, "b", "buckets must be a list"),
    ("b: just text\n", 1, "b", "must be a mapping of fields"),
    ("bad name:\n  provider: fs\n", 1, "bad name", "a name is 1-128 letters"),
]


@pytest.mark.parametrize(("text", "line", "name", "words"), BAD_FILES)
def test_a_bad_file_names_the_file_line_and_connection(
    tmp_path: Path, folder: Path, text: str, line: int, name: str, words: str
) -> None:
    secret = "sEcReT-" + secrets.token_hex(8)
    path = tmp_path / "remote_links.yml"
    path.write_text(text.replace("{SECRET}", secret).replace("{FOLDER}", str(folder)))
    with pytest.raises(ConnectionsFileError) as caught:
        load_file(path)
    message = str(caught.value)
    assert isinstance(caught.value, ConfigError)
    assert message.startswith(f"{path}, line {line}, connection {name!r}: "), message
    assert words in message and "Fix: " in message, message
    assert (caught.value.path, caught.value.line, caught.value.connection) == (path, line, name)
    assert secret not in message


def test_an_empty_or_missing_file_has_no_connections(tmp_path: Path) -> None:
    path = tmp_path / "remote_links.yml"
    path.write_text("# nothing yet\n")
    assert load_file(path) == []
    path.write_text("[a, b]\n")
    with pytest.raises(ConnectionsFileError, match="not a mapping of connection names"):
        load_file(path)


# --- the registry over the real servers ------------------------------------------------------------------------


@pytest.fixture
async def registry(tmp_path: Path) -> AsyncIterator[ConnectionRegistry]:
    registry = ConnectionRegistry(tmp_path / "remote_links.yml", check_every=0)
    yield registry
    await registry.close()


async def test_store_for_reads_what_each_provider_holds(
    registry: ConnectionRegistry, folder: Path, moto_server: Server, azurite_server: Server, gcs_server: Server,
    gcs_credentials: Path, bucket_name: str,
) -> None:
    s3(moto_server).create_bucket(Bucket=bucket_name)
    s3(moto_server).put_object(Bucket=bucket_name, Key="cars/a.jpg", Body=b"from s3")
    azure(azurite_server).create_container(bucket_name).upload_blob("cars/a.jpg", b"from azure")
    gcs(gcs_server).create_bucket(bucket_name).blob("cars/a.jpg").upload_from_string(b"from gcs")
    registry.file_path.write_text(yml({
        "s3": {"provider": "minio", "endpoint": moto_server.url, "access_key": "testing", "secret_key": MOTO_SECRET,
               "buckets": [bucket_name]},
        "blobs": {"provider": "azure", "endpoint": f"127.0.0.1:{azurite_server.port}", "access_key": AZURITE_ACCOUNT,
                  "secret_key": AZURITE_KEY, "buckets": [bucket_name]},
        "gcp": {"provider": "google", "endpoint": gcs_server.url, "credentials_path": gcs_credentials.name,
                "buckets": [bucket_name]},
        "server-datasets": {"provider": "fs", "path": folder, "storage_id": "local-datasets"},
    }))
    shutil.copy(gcs_credentials, registry.file_path.parent / gcs_credentials.name)  # named by a relative path
    await registry.open()
    for provider, expected in (("minio", b"from s3"), ("azure", b"from azure"), ("google", b"from gcs")):
        named, store = await registry.store_for(provider, bucket_name)
        assert named.provider == provider
        assert await (await store.get("cars/a.jpg")).read() == expected
        assert (await registry.store_for(provider, bucket_name))[1] is store, "stores are kept"
    named, store = await registry.store_for("fs", "local-datasets")
    assert named.name == "server-datasets"
    assert await (await store.get("persons/1.jpg")).read() == b"person one"
    with pytest.raises(NotFound) as missing:
        await registry.store_for("minio", "unlisted")
    assert str(missing.value) == ("no connection lists bucket 'unlisted' for s3:// links; add it to remote_links.yml "
                                  "or Settings → Cloud connections")
    with pytest.raises(NotFound, match="for fs:// links"):
        await registry.store_for("fs", bucket_name)


async def _pages(store: FolderListing, prefix: str, size: int, exact: bool = True) -> tuple[list[str], list[str], int]:
    """Every page of a folder. ``exact``: no page holds more than ``size`` entries. fake-gcs-server sends
    every sub-folder on the first page and counts only objects against maxResults (GCS counts both)."""
    folders: list[str] = []
    objects: list[ObjectMeta] = []
    cursor, pages = None, 0
    while True:
        more_folders, more_objects, cursor = await store.list_folder(prefix, cursor, size)
        folders += more_folders
        objects += more_objects
        pages += 1
        assert len(more_folders) + len(more_objects) <= size or not exact
        if cursor is None:
            keys = [o.key for o in objects]
            assert len(set(folders)) == len(folders) and len(set(keys)) == len(keys), "no entry comes twice"
            return folders, keys, pages


async def test_folders_are_listed_one_level_one_page_at_a_time(
    registry: ConnectionRegistry, folder: Path, moto_server: Server, azurite_server: Server, gcs_server: Server,
    gcs_credentials: Path, bucket_name: str,
) -> None:
    keys = ["top.txt", "a/1.txt", "a/2.txt", "a/deep/3.txt", "b/4.txt", "c.txt", "d/5.txt"]
    s3(moto_server).create_bucket(Bucket=bucket_name)
    container = azure(azurite_server).create_container(bucket_name)
    bucket = gcs(gcs_server).create_bucket(bucket_name)
    for key in keys:
        s3(moto_server).put_object(Bucket=bucket_name, Key=key, Body=b"x" * 3)
        container.upload_blob(key, b"x" * 3)
        bucket.blob(key).upload_from_string(b"x" * 3)
        (folder / "tree" / key).parent.mkdir(parents=True, exist_ok=True)
        (folder / "tree" / key).write_bytes(b"x" * 3)
    outside = folder.parent / "outside"
    outside.mkdir()
    (outside / "secret.txt").write_bytes(b"not linked")
    (folder / "tree" / "escape").symlink_to(outside)  # neither listed nor followed
    registry.file_path.write_text(yml({
        "s3": {"provider": "minio", "endpoint": moto_server.url, "access_key": "testing", "secret_key": "t",
               "buckets": [bucket_name]},
        "blobs": {"provider": "azure", "endpoint": azurite_server.url, "access_key": AZURITE_ACCOUNT,
                  "secret_key": AZURITE_KEY, "buckets": [bucket_name]},
        "gcp": {"provider": "google", "endpoint": gcs_server.url, "credentials_path": gcs_credentials,
                "buckets": [bucket_name]},
        "tree": {"provider": "fs", "path": folder / "tree", "storage_id": "tree"},
    }))
    await registry.open()
    for provider, name in (("minio", bucket_name), ("azure", bucket_name), ("google", bucket_name), ("fs", "tree")):
        _, store = await registry.store_for(provider, name)
        assert isinstance(store, FolderListing), provider
        folders, objects, pages = await _pages(store, "", 2, exact=provider != "google")
        assert sorted(folders) == ["a/", "b/", "d/"], provider
        assert sorted(objects) == ["c.txt", "top.txt"], provider
        assert pages == 3 or provider == "google", provider
        folders, objects, pages = await _pages(store, "", 1, exact=provider != "google")
        assert (len(folders), len(objects)) == (3, 2), provider
        assert pages == 5 or provider == "google", provider
        folders, objects, _ = await _pages(store, "a", 1000)
        assert (folders, sorted(objects)) == (["a/deep/"], ["a/1.txt", "a/2.txt"]), provider
        meta = (await store.list_folder("a/deep/"))[1][0]
        assert (meta.key, meta.size) == ("a/deep/3.txt", 3) and meta.last_modified is not None, provider
        assert await store.list_folder("nothing-here") == ([], [], None), provider
    _, tree = await registry.store_for("fs", "tree")
    assert isinstance(tree, FolderListing)
    assert await tree.list_folder("escape") == ([], [], None)
    assert [m.key async for page in tree.list("escape") for m in page] == []


async def test_a_changed_file_is_picked_up_and_a_bad_one_keeps_the_last_good(
    registry: ConnectionRegistry, folder: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = registry.file_path
    path.write_text(yml({"one": {"provider": "fs", "path": folder, "storage_id": "one"}}))
    await registry.open()
    _, first = await registry.store_for("fs", "one")

    (folder / "persons" / "sub").mkdir()
    path.write_text(yml({"one": {"provider": "fs", "path": folder / "persons", "storage_id": "one"},
                         "two": {"provider": "fs", "path": folder, "storage_id": "two"}}))
    assert [n.name for n in await registry.all()] == ["one", "two"]
    _, second = await registry.store_for("fs", "one")
    assert second is not first, "a changed connection gets a new store"
    assert await (await second.get("1.jpg")).read() == b"person one"

    secret = "sEcReT-" + secrets.token_hex(8)
    path.write_text(f"one:\n  provider: minio\n  secret_key: {secret}\n  bucketz: [a]\n")
    assert [n.name for n in await registry.all()] == ["one", "two"], "the last good file stays in force"
    assert registry.file_error is not None and "line 4, connection 'one'" in registry.file_error
    assert (await registry.store_for("fs", "one"))[1] is second
    assert "line 4, connection 'one'" in caplog.text and secret not in caplog.text

    path.unlink()
    assert await registry.all() == [] and registry.file_error is None
    with pytest.raises(NotFound):
        await registry.store_for("fs", "one")


async def test_start_up_stops_on_a_bad_file(tmp_path: Path) -> None:
    path = tmp_path / "remote_links.yml"
    path.write_text("x:\n  provider: nope\n")
    with pytest.raises(ConnectionsFileError, match="line 2, connection 'x'"):
        await ConnectionRegistry(path).open()


def test_cargohold_up_refuses_a_bad_file(tmp_path: Path) -> None:
    secret = "sEcReT-" + secrets.token_hex(8)
    (tmp_path / "remote_links.yml").write_text(f"x:\n  provider: minio\n  secret_key: {secret}\n  buckets: [a]\n")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("STORAGE_", "DATA_PATH", "SERVER_"))}
    result = subprocess.run([sys.executable, "-m", "cargohold", "up"], capture_output=True, text=True, timeout=60,
                            env={**env, "CARGOHOLD_HOME": str(tmp_path), "SERVER_PORT": "9"})
    assert result.returncode == 2
    assert f"{tmp_path / 'remote_links.yml'}, line 1, connection 'x': access_key is missing" in result.stderr
    assert secret not in result.stdout + result.stderr


# --- the API, through the real server -----------------------------------------------------------------------------


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory, moto_server: Server) -> Iterator[RunningServer]:
    home = tmp_path_factory.mktemp("connections-home")
    mount = home / "mount"
    (mount / "persons").mkdir(parents=True)
    (mount / "persons" / "1.jpg").write_bytes(b"person one")
    (home / "remote_links.yml").write_text(yml({
        "file-s3": {"provider": "minio", "endpoint": moto_server.url, "access_key": "testing",
                    "secret_key": MOTO_SECRET, "buckets": ["file-bucket"]},
        "server-datasets": {"provider": "fs", "path": mount, "storage_id": "local-datasets"},
    }))
    server = RunningServer(home, {}).start()
    try:
        yield server
    finally:
        server.stop()


def secrets_nowhere(server: RunningServer, *values: str) -> None:
    """None of ``values`` is in the server's log or, in plain text, in any file of the catalog database."""
    log = server.log.read_bytes()
    database = b"".join(p.read_bytes() for p in (server.home / "data").glob("catalog.sqlite3*"))
    assert database, "the catalog was found"
    for value in values:
        assert value.encode() not in log, "a secret is in the server log"
        assert value.encode() not in database, "a secret is in the catalog in plain text"


def names(client: httpx.Client) -> dict[str, dict[str, Any]]:
    answer = client.get("/connections")
    assert answer.status_code == 200, answer.text
    return {c["name"]: c for c in answer.json()["connections"]}


def wait_for(check: Any, timeout: float = 8.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, "the server did not pick up the change"
        time.sleep(0.3)


def test_file_connections_are_listed_read_only_and_the_last_good_file_stays(
    server: RunningServer, moto_server: Server
) -> None:
    path = server.home / "remote_links.yml"
    good = path.read_text()
    with server.client() as client:
        listed = client.get("/connections").json()
        assert listed["file"] == {"path": str(path), "error": None}
        found = {c["name"]: c for c in listed["connections"]}
        assert found["file-s3"] == {
            "name": "file-s3", "provider": "minio", "origin": "file", "read_only": True, "endpoint": moto_server.url,
            "region": None, "access_key": "testing", "iam_role": None, "buckets": ["file-bucket"], "storage_id": None,
            "path": None, "credentials_path": None, "has_secret": True, "line": 1, "updated_at": None, "problem": None,
        }
        assert found["server-datasets"]["storage_id"] == "local-datasets"
        assert found["server-datasets"]["path"] == str(server.home / "mount")
        assert MOTO_SECRET not in json.dumps(listed)
        for method, path_ in (("PUT", "/connections/file-s3"), ("DELETE", "/connections/file-s3")):
            body = {"provider": "minio", "iam_role": "r", "buckets": ["other"]} if method == "PUT" else None
            error = assert_error(client.request(method, path_, json=body), 409, "already_exists")
            assert "remote_links.yml (line 1)" in error["message"] and "read-only" in error["message"]

        secret = "sEcReT-" + secrets.token_hex(8)
        path.write_text(good + f"broken:\n  provider: azure\n  secret_key: {secret}\n  buckets: [a]\n")
        wait_for(lambda: client.get("/connections").json()["file"]["error"] is not None)
        listed = client.get("/connections").json()
        assert f"{path}, line 11, connection 'broken'" in listed["file"]["error"]
        assert "access_key is missing" in listed["file"]["error"]
        assert set(names(client)) == {"file-s3", "server-datasets"}, "the last good file stays in force"
        assert "line 11, connection 'broken'" in server.log.read_text()

        path.write_text(good.replace("local-datasets", "renamed-datasets"))
        wait_for(lambda: names(client)["server-datasets"]["storage_id"] == "renamed-datasets")
        assert client.get("/connections").json()["file"]["error"] is None
        path.write_text(good)
        wait_for(lambda: names(client)["server-datasets"]["storage_id"] == "local-datasets")
        secrets_nowhere(server, MOTO_SECRET, secret)


def test_api_connections_are_made_tested_browsed_and_deleted(
    server: RunningServer, moto_server: Server, azurite_server: Server, gcs_server: Server, gcs_credentials: Path,
    bucket_name: str,
) -> None:
    s3(moto_server).create_bucket(Bucket=bucket_name)
    s3(moto_server).put_object(Bucket=bucket_name, Key="cars/red/1.jpg", Body=b"red car")
    s3(moto_server).put_object(Bucket=bucket_name, Key="cars/2.jpg", Body=b"car two")
    container = f"{bucket_name}-az"
    azure(azurite_server).create_container(container).upload_blob("photo.jpg", b"azure photo")
    api_secret = "moto-api-secret-" + secrets.token_hex(8)
    wrong_key = base64.b64encode(secrets.token_bytes(64)).decode()
    gcs_key = json.loads(gcs_credentials.read_text())["private_key"]
    answers: list[bytes] = []

    def keep(response: httpx.Response) -> None:
        answers.append(response.read())

    with server.client(event_hooks={"response": [keep]}) as client:
        made = client.put("/connections/api-s3", json={
            "provider": "minio", "endpoint": moto_server.url, "access_key": "testing", "secret_key": api_secret,
            "buckets": [bucket_name]})
        assert made.status_code == 201, made.text
        assert made.json()["origin"] == "catalog" and not made.json()["read_only"] and made.json()["has_secret"]
        assert made.json()["updated_at"] is not None

        checked = client.post("/connections/api-s3/test")
        assert checked.json() == {"name": "api-s3", "buckets": [
            {"bucket": bucket_name, "list": True, "read": True, "error": None}]}

        top = client.get("/connections/api-s3/browse").json()
        assert top["bucket"] == bucket_name and top["folders"] == [{"name": "cars", "prefix": "cars/"}]
        assert top["objects"] == [] and top["next_cursor"] is None
        cars = client.get("/connections/api-s3/browse", params={"bucket": bucket_name, "prefix": "cars/", "limit": 1})
        page = cars.json()
        assert [o["name"] for o in page["objects"]] == ["2.jpg"] and page["objects"][0]["size"] == 7
        assert page["objects"][0]["key"] == "cars/2.jpg" and page["objects"][0]["modified"]
        assert page["next_cursor"]
        rest = client.get("/connections/api-s3/browse", params={"prefix": "cars/", "cursor": page["next_cursor"]})
        assert rest.json()["folders"] == [{"name": "red", "prefix": "cars/red/"}]
        assert_error(client.get("/connections/api-s3/browse", params={"bucket": "other"}), 404, "not_found")
        fs = client.get("/connections/server-datasets/browse", params={"prefix": "persons"}).json()
        assert [(o["key"], o["size"]) for o in fs["objects"]] == [("persons/1.jpg", 10)]

        # Changed without its secret: the stored one is kept.
        changed = client.put("/connections/api-s3", json={
            "provider": "minio", "endpoint": moto_server.url, "access_key": "testing", "region": "us-east-1",
            "buckets": [bucket_name, f"{bucket_name}-b"]})
        assert changed.status_code == 200, changed.text
        assert changed.json()["has_secret"] and changed.json()["region"] == "us-east-1"
        assert changed.json()["buckets"] == [bucket_name, f"{bucket_name}-b"]
        tests = client.post("/connections/api-s3/test").json()["buckets"]
        assert tests[0] == {"bucket": bucket_name, "list": True, "read": True, "error": None}
        assert tests[1]["list"] is False and tests[1]["read"] is False and "does not exist" in tests[1]["error"]

        clash = client.put("/connections/again", json={
            "provider": "minio", "iam_role": "r", "buckets": ["x", bucket_name]})
        message = assert_error(clash, 409, "already_exists")["message"]
        assert f"bucket {bucket_name!r}" in message and "'api-s3'" in message and "'again'" in message
        clash = client.put("/connections/again", json={"provider": "minio", "iam_role": "r",
                                                        "buckets": ["file-bucket"]})
        assert "'file-s3'" in assert_error(clash, 409, "already_exists")["message"]

        # Azure: the right key reads, a wrong one is refused with Azure's own words.
        azure_body = {"provider": "azure", "endpoint": azurite_server.url, "access_key": AZURITE_ACCOUNT,
                      "secret_key": AZURITE_KEY, "buckets": [container]}
        assert client.put("/connections/api-azure", json=azure_body).status_code == 201
        assert client.post("/connections/api-azure/test").json()["buckets"] == [
            {"bucket": container, "list": True, "read": True, "error": None}]
        assert client.put("/connections/api-azure", json={**azure_body, "secret_key": wrong_key}).status_code == 200
        bad = client.post("/connections/api-azure/test").json()["buckets"][0]
        assert bad["list"] is False and bad["read"] is False
        assert "credentials are refused" in bad["error"], bad
        assert "403" in bad["error"] and "AuthorizationFailure" in bad["error"], "Azure's own words are passed on"
        assert wrong_key not in bad["error"]

        # Google: the key file's content is stored (encrypted), not its path.
        gcs(gcs_server).create_bucket(f"{bucket_name}-gcs")
        google = client.put("/connections/api-gcs", json={
            "provider": "google", "endpoint": gcs_server.url, "credentials_json": gcs_credentials.read_text(),
            "buckets": [f"{bucket_name}-gcs"]})
        assert google.status_code == 201, google.text
        assert client.post("/connections/api-gcs/test").json()["buckets"] == [
            {"bucket": f"{bucket_name}-gcs", "list": True, "read": None, "error": None}]

        no_roots = client.put("/connections/x", json={"provider": "fs", "path": str(server.home / "mount"),
                                                      "storage_id": "x"})
        assert "LINKS_FS_ROOTS" in assert_error(no_roots, 400, "bad_input")["message"]
        assert_error(client.put("/connections/x", json={"provider": "minio", "buckets": ["a"], "secret": "s"}), 400)
        assert_error(client.put("/connections/x", json={"provider": "azure", "buckets": ["a"]}), 400, "bad_input")
        not_base64 = {**azure_body, "secret_key": "not-an-account-key"}
        error = assert_error(client.put("/connections/x", json=not_base64), 400, "bad_input")["message"]
        assert "secret_key" in error and "base64" in error and "not-an-account-key" not in error
        assert_error(client.put("/connections/bad%20name", json={"provider": "minio", "iam_role": "r",
                                                                  "buckets": ["a"]}), 400)

        listed = client.get("/connections").text
        for value in (api_secret, AZURITE_KEY, wrong_key, gcs_key.splitlines()[1]):
            assert value not in listed
        assert {"api-s3", "api-azure", "api-gcs"} <= set(names(client))

        assert client.delete("/connections/api-s3").status_code == 204
        assert_error(client.delete("/connections/api-s3"), 404, "not_found")
        assert_error(client.post("/connections/api-s3/test"), 404, "not_found")
        assert "api-s3" not in names(client)
    secrets_nowhere(server, api_secret, AZURITE_KEY, wrong_key, gcs_key.splitlines()[1], MOTO_SECRET)
    assert len(answers) > 25
    for value in (api_secret, AZURITE_KEY, wrong_key, gcs_key.splitlines()[1], MOTO_SECRET):
        assert not [a for a in answers if value.encode() in a], "a secret is in an answer"


def test_connections_need_an_admin_token(server: RunningServer) -> None:
    token = cli(server, "token", "create", "--name", "connections-user").stdout.strip()
    routes = [("GET", "/connections"), ("PUT", "/connections/x"), ("DELETE", "/connections/x"),
              ("POST", "/connections/x/test"), ("GET", "/connections/x/browse")]
    with server.client(token) as user:
        for method, path in routes:
            body = {"provider": "minio", "iam_role": "r", "buckets": ["a"]} if method == "PUT" else None
            assert "admin" in assert_error(user.request(method, path, json=body), 403, "forbidden")["message"]
    with httpx.Client(base_url=server.api) as anonymous:
        for method, path in routes:
            assert_error(anonymous.request(method, path), 401, "unauthenticated")
    paths = httpx.get(server.url + "/api/openapi.json").json()["paths"]
    assert {p: set(paths[p]) for p in paths if "/connections" in p} == {
        "/api/v1/connections": {"get"}, "/api/v1/connections/{name}": {"put", "delete"},
        "/api/v1/connections/{name}/test": {"post"}, "/api/v1/connections/{name}/browse": {"get"}}


@pytest.mark.reliability(kind="attack", what="server folder mounted by an admin token outside LINKS_FS_ROOTS", cases=9)
def test_server_folders_are_connected_only_under_links_fs_roots(tmp_path: Path) -> None:
    """An admin token may connect a folder of the server only under one the operator lists in LINKS_FS_ROOTS,
    never one holding (or inside) the instance home or DATA_PATH, and `..` or a symlink cannot step out."""
    root = tmp_path / "allowed"
    (root / "cars" / "red").mkdir(parents=True)
    (root / "cars" / "red" / "1.jpg").write_bytes(b"red car one")
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "secret.txt").write_text("not for links")
    (root / "escape").symlink_to(outside)
    home = root / "instance"  # a root may hold the instance home; mounting the home or above it is refused
    server = RunningServer(home, {"LINKS_FS_ROOTS": f"{root}, /nonexistent-second-root"}).start()
    try:
        with server.client() as client:
            assert client.get("/connections").json()["fs_roots"] == [str(root), "/nonexistent-second-root"]
            made = client.put("/connections/nas", json={"provider": "fs", "path": str(root / "cars"),
                                                        "storage_id": "nas-cars"})
            assert made.status_code == 201, made.text
            assert made.json() | {"updated_at": None} == {
                "name": "nas", "provider": "fs", "origin": "catalog", "read_only": False, "endpoint": None,
                "region": None, "access_key": None, "iam_role": None, "buckets": ["nas-cars"],
                "storage_id": "nas-cars", "path": str(root / "cars"), "credentials_path": None, "has_secret": False,
                "line": None, "updated_at": None, "problem": None}
            assert client.post("/connections/nas/test").json()["buckets"] == [
                {"bucket": "nas-cars", "list": True, "read": True, "error": None}]
            browsed = client.get("/connections/nas/browse", params={"prefix": "red/"}).json()
            assert [(o["key"], o["size"]) for o in browsed["objects"]] == [("red/1.jpg", 11)]
            dataset = client.post("/datasets", json={"name": "nas"}).json()["id"]
            report = client.post(f"/datasets/{dataset}/links", json={"links": ["fs://nas-cars/red/1.jpg"]}).json()
            assert report["added"] == 1, report
            item = client.get(f"/datasets/{dataset}/items").json()["items"][0]
            assert client.get(f"/items/{item['id']}/content").content == b"red car one"

            refused = {
                "outside the roots": (str(outside), "is not under a folder this server allows"),
                "dot-dot": (f"{root}/cars/../../outside", "is not under a folder this server allows"),
                "symlink escape": (str(root / "escape"), f"({outside} once links are followed)"),
                "the instance home": (str(home), "holds or lies in cargohold's own files"),
                "above the home": (str(root), "holds or lies in cargohold's own files"),
                "inside DATA_PATH": (str(home / "data"), "holds or lies in cargohold's own files"),
                "a file": (str(root / "cars" / "red" / "1.jpg"), "is not an existing folder"),
                "relative": ("allowed/cars", "is not an absolute path"),
            }
            for case, (path, reason) in refused.items():
                answer = client.put("/connections/bad", json={"provider": "fs", "path": path, "storage_id": "bad"})
                message = assert_error(answer, 400, "bad_input")["message"]
                assert reason in message and message.startswith("path:"), (case, message)
            outside_answer = client.put("/connections/bad", json={"provider": "fs", "path": str(outside),
                                                                  "storage_id": "bad"})
            assert "LINKS_FS_ROOTS" in assert_error(outside_answer, 400)["message"], "the fix names the setting"
            clash = client.put("/connections/again", json={"provider": "fs", "path": str(root / "cars"),
                                                           "storage_id": "nas-cars"})
            assert "'nas'" in assert_error(clash, 409, "already_exists")["message"]
            assert "bad" not in names(client)
        server.stop()

        # The operator takes the folder off the list: the connection stays listed, unusable, and says why.
        server = RunningServer(home, {"LINKS_FS_ROOTS": str(tmp_path / "elsewhere")}).start()
        with server.client() as client:
            listed = names(client)["nas"]
            assert listed["path"] == str(root / "cars") and listed["storage_id"] == "nas-cars"
            assert "is not under a folder this server allows" in listed["problem"]
            answer = client.get(f"/items/{item['id']}/content")
            assert answer.status_code >= 400 and answer.status_code != 500, answer.text
            assert (root / "cars" / "red" / "1.jpg").read_bytes() == b"red car one", "the linked file is untouched"
    finally:
        server.stop()
