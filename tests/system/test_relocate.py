"""``cargohold items materialize`` and ``items relink`` against a real server and the S3 server."""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import httpx
import pytest

from ..support.api_server import RunningServer
from ..support.servers import Server


def sha(blob: bytes) -> str:
    return hashlib.sha256(blob).hexdigest()


def cli(home: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "CARGOHOLD_HOME": str(home), "COLUMNS": "200"}
    return subprocess.run([sys.executable, "-m", "cargohold", *args], env=env, capture_output=True, text=True,
                          timeout=120)


@pytest.fixture
def s3(moto_server: Server) -> Any:
    client = boto3.client("s3", endpoint_url=moto_server.url, aws_access_key_id="k", aws_secret_access_key="s",
                          region_name="us-east-1")
    client.create_bucket(Bucket="relocate")
    return client


@pytest.fixture
def server(tmp_path: Path, moto_server: Server, s3: Any) -> Iterator[RunningServer]:
    home = tmp_path / "home"
    home.mkdir()
    (home / "remote_links.yml").write_text(
        f"bucket:\n  provider: minio\n  endpoint: {moto_server.url}\n  access_key: k\n  secret_key: s\n"
        "  buckets: [relocate]\n")
    running = RunningServer(home, {}).start()
    try:
        yield running
    finally:
        running.stop()


def bucket_state(s3: Any, prefix: str) -> dict[str, str]:
    listing = s3.list_objects_v2(Bucket="relocate", Prefix=prefix).get("Contents", [])
    return {o["Key"]: sha(s3.get_object(Bucket="relocate", Key=o["Key"])["Body"].read()) for o in listing}


def test_materialize_copies_linked_items_into_own_storage(server: RunningServer, s3: Any) -> None:
    files = {"linked/a.bin": b"a" * 5000, "linked/caf\u00e9 b.bin": b"b" * 7000}
    for key, blob in files.items():
        s3.put_object(Bucket="relocate", Key=key, Body=blob)
    before = bucket_state(s3, "linked/")
    with server.client() as client:
        ds = client.post("/datasets", json={"name": "m"}).json()["id"]
        links = "".join(f"s3://relocate/{k}\n" for k in files).encode()
        assert client.post(f"/datasets/{ds}/links", content=links).json()["added"] == 2
        result = cli(server.home, "items", "materialize", "m")
        assert result.returncode == 0, result.stdout + result.stderr
        assert "materialized 2 items (12,000 bytes)" in result.stdout
        items = {i["name"]: i for i in client.get(f"/datasets/{ds}/items").json()["items"]}
        for key, blob in files.items():
            item = items[key]  # a link is named after its key
            assert item["source"] == "stored" and item["uri"] is None and item["sha256"] == sha(blob)
            assert client.get(f"/items/{item['id']}/content").content == blob
        again = cli(server.home, "items", "materialize", "m")
        assert again.returncode == 0 and "materialized 0 items" in again.stdout
    assert bucket_state(s3, "linked/") == before, "the linked files are only read"
    # The bytes now live in own storage: the bucket may go.
    for key in files:
        s3.delete_object(Bucket="relocate", Key=key)
    with server.client() as client:
        assert client.get(f"/items/{items['linked/a.bin']['id']}/content").content == files["linked/a.bin"]


def test_relink_points_stored_items_at_checked_copies(server: RunningServer, s3: Any) -> None:
    blobs = {"same.bin": b"s" * 3000, "other.bin": b"o" * 3000, "nowhere.bin": b"n" * 3000}
    s3.put_object(Bucket="relocate", Key="copies/same.bin", Body=blobs["same.bin"])
    s3.put_object(Bucket="relocate", Key="copies/other.bin", Body=b"something else")
    with server.client() as client:
        ds = client.post("/datasets", json={"name": "r"}).json()["id"]
        for name, blob in blobs.items():
            assert client.post(f"/datasets/{ds}/items", files=[("files", (name, blob))]).status_code == 201
        result = cli(server.home, "items", "relink", "r", "--to", "s3://relocate/copies/")
        assert result.returncode == 1, result.stdout + result.stderr
        assert "relinked 1 items (3,000 bytes), skipped 0, failed 2" in result.stdout
        assert "holds other bytes" in result.stdout and "no copy at s3://relocate/copies/nowhere.bin" in result.stdout
        items = {i["name"]: i for i in client.get(f"/datasets/{ds}/items").json()["items"]}
        assert items["same.bin"]["source"] == "link" and items["same.bin"]["uri"] == "s3://relocate/copies/same.bin"
        assert items["other.bin"]["source"] == items["nowhere.bin"]["source"] == "stored"
        assert client.get(f"/items/{items['same.bin']['id']}/content").content == blobs["same.bin"]
    gc = cli(server.home, "gc", "--older-than", "0s")
    assert gc.returncode == 0 and "found 1 unreferenced objects, 3,000 bytes" in gc.stdout, gc.stdout
    assert httpx.get(server.url + "/healthz").status_code == 200
