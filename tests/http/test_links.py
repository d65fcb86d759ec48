"""Links end to end, through the real server: a links file mixing every scheme, good and bad lines,
against moto (S3), Azurite, fake-gcs-server, a real folder and a web server on loopback."""

from __future__ import annotations

import hashlib
import io
import os
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from functools import partial
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import boto3
import httpx
import pytest
from azure.storage.blob import BlobServiceClient
from google.auth.credentials import AnonymousCredentials
from google.cloud import storage as gcs
from PIL import Image

from ..support.api_server import RunningServer
from ..support.servers import AZURITE_ACCOUNT, AZURITE_KEY, Server

S3_SECRET = "moto-secret-never-shown-7f3a"


def jpeg(size: tuple[int, int], color: str) -> bytes:
    out = io.BytesIO()
    Image.new("RGB", size, color).save(out, "JPEG")
    return out.getvalue()


FILES = {
    "cars/2020/red car.jpg": jpeg((64, 48), "red"),
    "cars/2020/blue+car.jpg": jpeg((32, 80), "blue"),
    "docs/readme.txt": b"just text\n" * 100,
}


@dataclass
class Sources:
    s3: boto3.client  # type: ignore[valid-type]
    azure: BlobServiceClient
    gcs: gcs.Client
    folder: Path
    web: str

    def snapshot(self) -> dict[str, str]:
        """Every object of every source, with its checksum: to show nothing was changed."""
        seen: dict[str, str] = {}
        for obj in self.s3.list_objects_v2(Bucket="src-s3").get("Contents", []):  # type: ignore[attr-defined]
            body = self.s3.get_object(Bucket="src-s3", Key=obj["Key"])["Body"].read()  # type: ignore[attr-defined]
            seen[f"s3/{obj['Key']}"] = hashlib.sha256(body).hexdigest()
        container = self.azure.get_container_client("src-az")
        for blob in container.list_blobs():
            seen[f"az/{blob.name}"] = hashlib.sha256(container.download_blob(blob.name).readall()).hexdigest()
        for blob in self.gcs.list_blobs("src-gcs"):
            seen[f"gcs/{blob.name}"] = hashlib.sha256(blob.download_as_bytes()).hexdigest()
        for path in sorted(self.folder.rglob("*")):
            if path.is_file() and not path.is_symlink():
                seen[f"fs/{path.relative_to(self.folder)}"] = hashlib.sha256(path.read_bytes()).hexdigest()
        return seen


@pytest.fixture(scope="module")
def sources(moto_server: Server, azurite_server: Server, gcs_server: Server,
            tmp_path_factory: pytest.TempPathFactory) -> Iterator[Sources]:
    """The linked storage, made once for the module: every test must leave it unchanged anyway."""
    tmp_path = tmp_path_factory.mktemp("sources")
    s3 = boto3.client("s3", endpoint_url=moto_server.url, aws_access_key_id="AKIAEXAMPLE",
                      aws_secret_access_key=S3_SECRET, region_name="us-east-1")
    s3.create_bucket(Bucket="src-s3")
    azure = BlobServiceClient(f"{azurite_server.url}/{AZURITE_ACCOUNT}",
                              credential={"account_name": AZURITE_ACCOUNT, "account_key": AZURITE_KEY})
    azure.create_container("src-az")
    google = gcs.Client(project="test", credentials=AnonymousCredentials(),  # type: ignore[no-untyped-call]
                        client_options={"api_endpoint": gcs_server.url})
    google.create_bucket("src-gcs")
    folder = tmp_path / "nas"
    outside = tmp_path / "outside.txt"
    outside.write_text("must never be served")
    for key, data in FILES.items():
        s3.put_object(Bucket="src-s3", Key=key, Body=data)
        azure.get_container_client("src-az").upload_blob(key, data)
        google.bucket("src-gcs").blob(key).upload_from_string(data)
        (folder / key).parent.mkdir(parents=True, exist_ok=True)
        (folder / key).write_bytes(data)
    os.symlink(outside, folder / "docs" / "escape.txt")
    web_root = tmp_path / "web"
    (web_root / "img").mkdir(parents=True)
    (web_root / "img" / "green.jpg").write_bytes(jpeg((20, 10), "green"))
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), partial(SimpleHTTPRequestHandler, directory=str(web_root)))
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield Sources(s3, azure, google, folder, f"http://127.0.0.1:{httpd.server_address[1]}")
    finally:
        httpd.shutdown()
        httpd.server_close()


def remote_links(home: Path, moto: Server, azurite: Server, gcs_server: Server, credentials: Path,
                 folder: Path) -> None:
    home.mkdir(parents=True, exist_ok=True)
    (home / "remote_links.yml").write_text(f"""
my-s3:
  provider: minio
  endpoint: {moto.url}
  access_key: AKIAEXAMPLE
  secret_key: {S3_SECRET}
  region: us-east-1
  buckets: [src-s3]
my-azure:
  provider: azure
  endpoint: {azurite.url}
  access_key: {AZURITE_ACCOUNT}
  secret_key: {AZURITE_KEY}
  buckets: [src-az]
my-gcs:
  provider: google
  endpoint: {gcs_server.url}
  credentials_path: {credentials}
  buckets: [src-gcs]
server-datasets:
  provider: fs
  path: {folder}
  storage_id: nas
""")


@pytest.fixture(scope="module", params=["sqlite", "postgres"])
def linked_server(request: pytest.FixtureRequest, sources: Sources, moto_server: Server, azurite_server: Server,
                  gcs_server: Server, gcs_credentials: Path,
                  tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningServer]:
    """One server per catalog database for the module (each test works in datasets of its own names):
    SQLite, and PostgreSQL (``postgres_server``)."""
    home = tmp_path_factory.mktemp("linked") / "home"
    remote_links(home, moto_server, azurite_server, gcs_server, gcs_credentials, sources.folder)
    env = {"LINKS_ALLOW_PRIVATE_NETWORKS": "true"}
    if request.param == "postgres":
        env["DATABASE_URL"] = request.getfixturevalue("postgres_server").create_database("links")
    server = RunningServer(home, env).start()
    try:
        yield server
    finally:
        server.stop()


def links_file(web: str) -> str:
    return "\r\n".join([
        "# cars from every store",                      # 1
        "s3://src-s3/cars/2020/red car.jpg",            # 2
        "azure://src-az/cars/2020/blue+car.jpg",        # 3
        "gs://src-gcs/cars/2020/red car.jpg",           # 4
        "google://src-gcs/docs/readme.txt",             # 5
        "fs://nas/cars/2020/blue+car.jpg",              # 6
        f"{web}/img/green.jpg",                         # 7
        "",                                             # 8
        "s3://no-such-bucket/a.jpg",                    # 9  no connection lists it
        "s3://src-s3/cars/missing.jpg",                 # 10 not there
        "fs://nas/../outside.txt",                      # 11 '..'
        "fs://nas/docs/escape.txt",                     # 12 symlink out of the folder
        "this is not a link",                           # 13
        "ftp://src-s3/a.jpg",                           # 14
        f"{web}/img/nothing.jpg",                       # 15 404
    ]) + "\r\n"


def test_links_file_mixing_every_scheme(sources: Sources, linked_server: RunningServer) -> None:
    before = sources.snapshot()
    with linked_server.client() as client:
        dataset = client.post("/datasets", json={"name": "linked"}).json()["id"]
        report = client.post(f"/datasets/{dataset}/links", content=links_file(sources.web),
                             headers={"Content-Type": "text/plain"}).json()
        # The same key from S3 and GCS (and from Azure and the folder) make one name each: renamed.
        assert (report["added"], report["renamed"]) == (4, 2), report
        refused = {r["line"]: r["reason"] for r in report["refused"]}
        assert sorted(refused) == [9, 10, 11, 12, 13, 14, 15], report
        assert "no-such-bucket" in refused[9] and "connection" in refused[9]
        assert "not found" in refused[10].lower()
        assert "'..'" in refused[11]
        assert "outside" in refused[12]
        assert "not a link" in refused[13]
        assert "unknown scheme" in refused[14]
        assert "not found" in refused[15].lower() or "404" in refused[15]

        again = client.post(f"/datasets/{dataset}/links", content=links_file(sources.web),
                            headers={"Content-Type": "text/plain"}).json()
        assert (again["added"], again["renamed"], again["unchanged"]) == (0, 0, 6), again

        items = client.get(f"/datasets/{dataset}/items").json()["items"]
        assert len(items) == 6
        by_uri = {i["uri"]: i for i in items}
        red = by_uri["s3://src-s3/cars/2020/red car.jpg"]
        assert (red["source"], red["kind"], red["width"], red["height"]) == ("link", "image", 64, 48)
        assert red["sha256"] is None and red["etag"] and red["size"] == len(FILES["cars/2020/red car.jpg"])
        assert by_uri["azure://src-az/cars/2020/blue+car.jpg"]["width"] == 32
        assert by_uri["google://src-gcs/docs/readme.txt"]["kind"] == "file"
        assert by_uri[f"{sources.web}/img/green.jpg"]["height"] == 10

        expected = {
            "s3://src-s3/cars/2020/red car.jpg": FILES["cars/2020/red car.jpg"],
            "azure://src-az/cars/2020/blue+car.jpg": FILES["cars/2020/blue+car.jpg"],
            "gs://src-gcs/cars/2020/red car.jpg": FILES["cars/2020/red car.jpg"],
            "google://src-gcs/docs/readme.txt": FILES["docs/readme.txt"],
            "fs://nas/cars/2020/blue+car.jpg": FILES["cars/2020/blue+car.jpg"],
            f"{sources.web}/img/green.jpg": (sources.folder.parent / "web/img/green.jpg").read_bytes(),
        }
        for uri, data in expected.items():
            content = client.get(f"/items/{by_uri[uri]['id']}/content")
            assert content.status_code == 200 and content.content == data, uri
            part = client.get(f"/items/{by_uri[uri]['id']}/content", headers={"Range": "bytes=5-14"})
            assert part.status_code == 206 and part.content == data[5:15], uri

        assert client.delete(f"/items/{red['id']}").status_code == 204
        assert client.get(f"/items/{red['id']}").status_code == 404
    assert sources.snapshot() == before, "linked storage must never be written, moved or deleted"
    for secret in (S3_SECRET, AZURITE_KEY):
        assert secret not in linked_server.log.read_text()


def test_json_links_with_names_and_no_verify(sources: Sources, linked_server: RunningServer) -> None:
    with linked_server.client() as client:
        dataset = client.post("/datasets", json={"name": "json"}).json()["id"]
        report = client.post(f"/datasets/{dataset}/links", params={"verify": "false"}, json={"links": [
            {"url": "s3://src-s3/cars/2020/red car.jpg", "name": "red.jpg"},
            "s3://src-s3/cars/never-checked.jpg",
            "s3://no-such-bucket/x.jpg",
        ]}).json()
        assert report["added"] == 2 and [r["line"] for r in report["refused"]] == [3], report
        items = {i["name"]: i for i in client.get(f"/datasets/{dataset}/items").json()["items"]}
        assert items["red.jpg"]["size"] is None and items["red.jpg"]["width"] is None  # nothing fetched
        assert items["red.jpg"]["mime_type"] == "image/jpeg"
        assert client.get(f"/items/{items['red.jpg']['id']}/content").content == FILES["cars/2020/red car.jpg"]
        assert client.get(f"/items/{items['cars/never-checked.jpg']['id']}/content").status_code == 404


def test_private_addresses_are_refused_by_default(sources: Sources, tmp_path: Path) -> None:
    server = RunningServer(tmp_path / "plain", {}).start()
    try:
        with server.client() as client:
            dataset = client.post("/datasets", json={"name": "ssrf"}).json()["id"]
            urls = [f"{sources.web}/img/green.jpg", "http://169.254.169.254/latest/meta-data/",
                    "http://[::1]/x.jpg", "http://localhost/x.jpg"]
            report = client.post(f"/datasets/{dataset}/links", json={"links": urls}).json()
            assert report["added"] == 0 and len(report["refused"]) == 4, report
            for refused in report["refused"]:
                assert "public addresses" in refused["reason"], refused
    finally:
        server.stop()


def test_links_cli(sources: Sources, linked_server: RunningServer, tmp_path: Path) -> None:
    import subprocess
    import sys

    path = tmp_path / "links.txt"
    path.write_text(links_file(sources.web))
    with linked_server.client() as client:
        client.post("/datasets", json={"name": "cli"})
    result = subprocess.run(
        [sys.executable, "-m", "cargohold", "links", "add", "cli", str(path), "--url", linked_server.url,
         "--token", linked_server.token], capture_output=True, text=True, timeout=120,
        env={**os.environ, "COLUMNS": "200"},
    )
    assert result.returncode == 1, result.stderr  # some lines were refused
    assert "added 4," in result.stdout and "renamed 2," in result.stdout and "refused 7" in result.stdout
    assert "no-such-bucket" in result.stdout
    with httpx.Client(base_url=linked_server.api, headers={"Authorization": f"Bearer {linked_server.token}"}) as c:
        dataset = next(d for d in c.get("/datasets").json()["datasets"] if d["name"] == "cli")
        assert dataset["item_count"] == 6


def test_sync_a_prefix_then_only_new_keys_and_ls(sources: Sources, linked_server: RunningServer) -> None:
    import subprocess
    import sys

    sync = f"sync-{linked_server.port}"  # the source bucket is the module's: a prefix of this run's own

    for i in range(3):
        sources.s3.put_object(Bucket="src-s3", Key=f"{sync}/{i}.jpg", Body=jpeg((8 + i, 8), "white"))  # type: ignore[attr-defined]
    sources.s3.put_object(Bucket="src-s3", Key=f"{sync}/notes.txt", Body=b"skip me")  # type: ignore[attr-defined]
    with linked_server.client() as client:
        dataset = client.post("/datasets", json={"name": "synced"}).json()["id"]
        body = {"source": f"s3://src-s3/{sync}/", "filter": r"\.jpg$", "verify": True}
        first = client.post(f"/datasets/{dataset}/sync", json=body).json()
        assert (first["listed"], first["added"], first["removed_count"]) == (3, 3, 0), first
        items = client.get(f"/datasets/{dataset}/items").json()["items"]
        assert sorted((i["name"], i["width"]) for i in items) == [(f"{sync}/0.jpg", 8), (f"{sync}/1.jpg", 9),
                                                                   (f"{sync}/2.jpg", 10)]
        sources.s3.put_object(Bucket="src-s3", Key=f"{sync}/3.jpg", Body=jpeg((4, 4), "black"))  # type: ignore[attr-defined]
        sources.s3.delete_object(Bucket="src-s3", Key=f"{sync}/0.jpg")  # type: ignore[attr-defined]
        before = sources.snapshot()
        second = client.post(f"/datasets/{dataset}/sync", json=body).json()
        assert (second["listed"], second["added"], second["unchanged"]) == (3, 1, 2), second
        assert second["removed"] == [f"s3://src-s3/{sync}/0.jpg"]
        assert client.get(f"/datasets/{dataset}").json()["item_count"] == 4, "gone objects are reported, not deleted"
        assert sources.snapshot() == before
        bad = client.post(f"/datasets/{dataset}/sync", json={"source": f"s3://src-s3/{sync}/", "filter": "("})
        assert bad.status_code == 400 and "regular expression" in bad.json()["error"]["message"]
        unknown = client.post(f"/datasets/{dataset}/sync", json={"source": "s3://nobody/x/"})
        assert unknown.status_code == 404 and "no connection" in unknown.json()["error"]["message"]

    listing = subprocess.run(
        [sys.executable, "-m", "cargohold", "links", "ls", "s3://src-s3/", "--url", linked_server.url,
         "--token", linked_server.token], capture_output=True, text=True, timeout=60,
        env={**os.environ, "COLUMNS": "200"},
    )
    assert listing.returncode == 0, listing.stderr
    assert "s3://src-s3/cars/" in listing.stdout and f"s3://src-s3/{sync}/" in listing.stdout
    deeper = subprocess.run(
        [sys.executable, "-m", "cargohold", "links", "ls", f"s3://src-s3/{sync}/", "--url", linked_server.url,
         "--token", linked_server.token], capture_output=True, text=True, timeout=60,
        env={**os.environ, "COLUMNS": "200"},
    )
    assert f"s3://src-s3/{sync}/3.jpg" in deeper.stdout and f"s3://src-s3/{sync}/0.jpg" not in deeper.stdout
