"""deploy/nginx.conf in front of a real cargohold on the S3 server: cache hits sent by nginx from disk
after cargohold authorised them (X-Accel-Redirect), signed URLs answered from nginx's cache, nothing
without authorisation."""

from __future__ import annotations

import io
import random
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from PIL import Image

from ..support.api_server import RunningServer
from ..support.nginx_front import NGINX, NginxFront, Replica
from ..support.servers import Server

pytestmark = pytest.mark.skipif(not Path(NGINX).exists(), reason="nginx is not installed: `make test` installs it")


@pytest.fixture
def front(tmp_path: Path, moto_server: Server) -> Iterator[tuple[RunningServer, NginxFront]]:
    env = {"STORAGE_PROVIDER": "minio", "STORAGE_ENDPOINT": moto_server.url, "STORAGE_ACCESS_KEY": "testing",
           "STORAGE_SECRET_KEY": "testing", "STORAGE_BUCKET_PREFIX": "nginx-front",
           "SERVER_ACCEL_REDIRECT": "/_cargohold/r1/"}
    replica = RunningServer(tmp_path / "r1", env).start()
    nginx = NginxFront(tmp_path / "nginx", [Replica("r1", replica.port, replica.home / "data")])
    try:
        nginx.start()
        yield replica, nginx
    finally:
        nginx.stop()
        replica.stop()


def storage_tier(client: httpx.Client) -> dict[str, Any]:
    tiers = {t["name"]: t for t in client.get("/api/v1/cache").json()["tiers"]}
    return dict(tiers["storage"])


def test_hits_are_sent_by_nginx_after_cargohold_authorised_them(front: tuple[RunningServer, NginxFront]) -> None:
    replica, nginx = front
    data = random.Random(3).randbytes(300_000)
    picture = io.BytesIO()
    Image.new("RGB", (800, 600), (10, 120, 240)).save(picture, "JPEG")
    auth = {"Authorization": f"Bearer {replica.token}"}
    with httpx.Client(base_url=nginx.url, headers=auth, timeout=60) as client:
        ds = client.post("/api/v1/datasets", json={"name": "front"}).json()["id"]
        upload = client.post(f"/api/v1/datasets/{ds}/items", files=[("files", ("a.bin", data)),
                                                                    ("files", ("p.jpg", picture.getvalue()))])
        assert upload.status_code == 201, upload.text  # uploads stream through nginx
        item, photo = (r["item"] for r in upload.json()["results"])

        first = client.get(f"/api/v1/items/{item['id']}/content")  # a miss: cargohold fetches and sends
        assert first.status_code == 200 and first.content == data
        served = storage_tier(client)["bytes_served"]
        hit = client.get(f"/api/v1/items/{item['id']}/content")
        assert hit.status_code == 200 and hit.content == data
        assert hit.headers["etag"] == f'"{item["sha256"]}"'
        assert hit.headers["content-type"] == "application/octet-stream"
        assert "x-accel-redirect" not in hit.headers
        assert storage_tier(client)["bytes_served"] == served, "nginx sent the hit, not cargohold"
        part = client.get(f"/api/v1/items/{item['id']}/content", headers={"Range": "bytes=100-199"})
        assert part.status_code == 206 and part.content == data[100:200]
        assert client.get(f"/api/v1/items/{item['id']}/content",
                          headers={"If-None-Match": hit.headers["etag"]}).status_code == 304

        # Signed URLs: the first answer is kept by nginx until the URL expires.
        for body in ({"expires_in": 600}, {"expires_in": 600, "preview": {"w": 64}}):
            url = client.post(f"/api/v1/items/{photo['id']}/sign", json=body).json()["url"]
            url = url.replace(replica.url, nginx.url)
            hits = storage_tier(client)["hits"]
            with httpx.Client(timeout=60) as browser:
                miss = browser.get(url)
                assert miss.status_code == 200 and miss.headers["x-cache-status"] == "MISS"
                again = browser.get(url)
                assert again.status_code == 200 and again.headers["x-cache-status"] == "HIT"
                assert again.content == miss.content and "x-accel-expires" not in again.headers
                if "preview" in body:
                    assert Image.open(io.BytesIO(again.content)).size == (64, 48)
                else:
                    assert again.content == picture.getvalue()
                assert storage_tier(client)["hits"] <= hits + 1, "the second answer came from nginx"
                tampered = url.replace("signature=", "signature=A")
                assert browser.get(tampered).status_code == 401


@pytest.mark.reliability(kind="attack", cases=2, what="behind nginx: a signed URL of a deleted item, and one of a "
                         "revoked token, answered from nginx's cache (SERVER_ACCEL_CACHE bounds it)")
def test_nginx_answers_a_signed_url_no_longer_than_server_accel_cache(tmp_path: Path, moto_server: Server,
                                                                      request: pytest.FixtureRequest) -> None:
    env = {"STORAGE_PROVIDER": "minio", "STORAGE_ENDPOINT": moto_server.url, "STORAGE_ACCESS_KEY": "testing",
           "STORAGE_SECRET_KEY": "testing", "STORAGE_BUCKET_PREFIX": "nginx-bound",
           "SERVER_ACCEL_REDIRECT": "/_cargohold/r1/", "SERVER_ACCEL_CACHE": "2s"}
    replica = RunningServer(tmp_path / "r1", env).start()
    nginx = NginxFront(tmp_path / "nginx", [Replica("r1", replica.port, replica.home / "data")])
    try:
        nginx.start()
        auth = {"Authorization": f"Bearer {replica.token}"}
        with httpx.Client(base_url=nginx.url, timeout=60, headers=auth) as admin:
            ds = admin.post("/api/v1/datasets", json={"name": "bound"}).json()["id"]
            items = [admin.post(f"/api/v1/datasets/{ds}/items", files=[("files", (f"{n}.bin", n.encode() * 100))])
                     .json()["results"][0]["item"]["id"] for n in ("deleted", "revoked")]
            signer = admin.post("/api/v1/tokens", json={"name": "signer", "role": "read"}).json()["token"]
            with httpx.Client(base_url=nginx.url, timeout=60, headers={"Authorization": f"Bearer {signer}"}) as other:
                urls = [client.post(f"/api/v1/items/{i}/sign", json={"expires_in": 600}).json()["url"]
                        .replace(replica.url, nginx.url) for client, i in zip((admin, other), items, strict=True)]
            with httpx.Client(timeout=60) as browser:
                for url in urls:
                    assert browser.get(url).headers["x-cache-status"] == "MISS"
                    kept = browser.get(url)
                    assert kept.status_code == 200 and kept.headers["x-cache-status"] == "HIT"
                assert admin.delete(f"/api/v1/items/{items[0]}").status_code == 204
                assert admin.delete("/api/v1/tokens/signer").status_code == 204
                # SERVER_ACCEL_CACHE, and a second more: nginx counts whole seconds and keeps an answer until its
                # second has passed (2 s of X-Accel-Expires measured 2.6-3.0 s here).
                time.sleep(3.5)
                gone, revoked = (browser.get(url) for url in urls)
        assert gone.status_code == 404 and "deleted after this URL was signed" in gone.text, gone.headers
        assert revoked.status_code == 401 and "revoked" in revoked.text
    finally:
        nginx.stop()
        replica.stop()
    request.node.user_properties.append(("reliability_result", (
        "with SERVER_ACCEL_CACHE=2s, nginx answered both URLs from its cache (HIT), and 3.5 s after the item's "
        "deletion and the token's revocation: 404 and 401 from cargohold (nginx keeps an answer up to a second "
        "past SERVER_ACCEL_CACHE: it counts whole seconds)")))


def test_nothing_is_served_without_authorisation(front: tuple[RunningServer, NginxFront]) -> None:
    replica, nginx = front
    with httpx.Client(base_url=nginx.url, timeout=60) as anonymous:
        auth = {"Authorization": f"Bearer {replica.token}"}
        ds = anonymous.post("/api/v1/datasets", json={"name": "closed"}, headers=auth).json()["id"]
        item = anonymous.post(f"/api/v1/datasets/{ds}/items", files=[("files", ("s.bin", b"secret bytes"))],
                              headers=auth).json()["results"][0]["item"]
        anonymous.get(f"/api/v1/items/{item['id']}/content", headers=auth)  # now a cache hit on disk
        for path in (f"/api/v1/items/{item['id']}/content", f"/api/v1/items/{item['id']}/preview",
                     "/api/v1/datasets", "/metrics"):
            assert anonymous.get(path).status_code == 401, path
        assert anonymous.get(f"/api/v1/items/{item['id']}/content",
                             headers={"Authorization": "Bearer wrong"}).status_code == 401
        sha = item["sha256"]
        for path in (f"/_cargohold/r1/storage/nginx-front-public/sha256/{sha[:2]}/{sha[2:4]}/{sha}",
                     "/_cargohold/r1/catalog.sqlite3", "/_cargohold/r1/"):
            answer = anonymous.get(path)
            assert answer.status_code in (401, 404) and b"secret bytes" not in answer.content, path


def test_two_replicas_behind_nginx_each_item_on_one_replica(tmp_path: Path, moto_server: Server,
                                                           postgres_url: str) -> None:
    shared = {"STORAGE_PROVIDER": "minio", "STORAGE_ENDPOINT": moto_server.url, "STORAGE_ACCESS_KEY": "testing",
              "STORAGE_SECRET_KEY": "testing", "STORAGE_BUCKET_PREFIX": "nginx-two", "DATABASE_URL": postgres_url,
              "SECRET_KEY": "the-same-secret-on-every-replica"}
    replicas = [RunningServer(tmp_path / name, {**shared, "SERVER_ACCEL_REDIRECT": f"/_cargohold/{name}/"})
                for name in ("r1", "r2")]
    nginx = NginxFront(tmp_path / "nginx", [Replica(r.home.name, r.port, r.home / "data") for r in replicas])
    try:
        replicas[0].start()
        replicas[1].start()
        nginx.start()
        token = replicas[0].token  # the first start made it; it works on every replica
        auth = {"Authorization": f"Bearer {token}"}
        with httpx.Client(base_url=nginx.url, headers=auth, timeout=60) as client:
            ds = client.post("/api/v1/datasets", json={"name": "two"}).json()["id"]
            blobs = {f"{i}.bin": random.Random(i).randbytes(20_000 + i) for i in range(12)}
            items = [client.post(f"/api/v1/datasets/{ds}/items", files=[("files", (name, blob))]).json()
                     ["results"][0]["item"] for name, blob in blobs.items()]
            for _ in range(3):
                for item in items:
                    assert client.get(f"/api/v1/items/{item['id']}/content").content == blobs[item["name"]]
        # Each item was fetched into exactly one replica's storage tier, and both replicas got some.
        entries = []
        for replica in replicas:
            with replica.client(token) as direct:
                tiers = {t["name"]: t for t in direct.get("/cache").json()["tiers"]}
                entries.append(tiers["storage"]["entries"])
        assert sum(entries) == len(items) and all(n > 0 for n in entries), entries
    finally:
        nginx.stop()
        for replica in replicas:
            replica.stop()


def test_s3_clients_reach_the_s3_endpoint_through_nginx(tmp_path: Path) -> None:
    """deploy/nginx.conf's S3 server block passes requests through as signed: SigV4 covers the Host header, the
    path and the query, so boto3 signing for nginx's address is answered by the replica behind it."""
    import json

    import boto3
    from botocore.config import Config

    from ..support.api import cli

    replica = RunningServer(tmp_path / "r1", {"SERVER_ACCEL_REDIRECT": "/_cargohold/r1/"}).start()
    nginx = NginxFront(tmp_path / "nginx", [Replica("r1", replica.port, replica.home / "data", replica.s3_port)])
    try:
        nginx.start()
        keys = json.loads(cli(replica, "token", "create", "--name", "s3", "--admin", "--s3", "--json").stdout)
        s3 = boto3.client("s3", endpoint_url=nginx.s3_url, aws_access_key_id=keys["s3_access_key_id"],
                          aws_secret_access_key=keys["s3_secret_access_key"], region_name="us-east-1",
                          config=Config(s3={"addressing_style": "path"}, signature_version="s3v4"))
        s3.create_bucket(Bucket="through-nginx")
        data = random.Random(5).randbytes(2_000_000)
        s3.put_object(Bucket="through-nginx", Key="dir/a b+c.bin", Body=data)  # a key that must stay encoded
        assert s3.get_object(Bucket="through-nginx", Key="dir/a b+c.bin")["Body"].read() == data
        listed = s3.list_objects_v2(Bucket="through-nginx", Prefix="dir/", Delimiter="/")
        assert [c["Key"] for c in listed["Contents"]] == ["dir/a b+c.bin"]
        url = s3.generate_presigned_url("get_object", Params={"Bucket": "through-nginx", "Key": "dir/a b+c.bin"})
        assert httpx.get(url, timeout=30).content == data
    finally:
        nginx.stop()
        replica.stop()
