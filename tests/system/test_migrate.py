"""``cargohold migrate`` between real providers: local disk → S3 (moto) → Azure (Azurite) → GCS
(fake-gcs-server) → local disk, each hop checked byte for byte with the provider's own SDK and by a
server started on the new provider; and a migration killed (``kill -9``) in the middle of a multipart copy,
then finished: every catalog row's bytes on the new provider by SHA-256, and ``cargohold gc`` there
accounting for what the kill left."""

from __future__ import annotations

import contextlib
import hashlib
import os
import random
import re
import signal
import sqlite3
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import unquote

import boto3
import httpx
import pytest
from azure.storage.blob import BlobServiceClient
from dotenv import dotenv_values
from google.auth.credentials import AnonymousCredentials
from google.cloud import storage as gcs

import cargohold

from ..support.api_server import RunningServer
from ..support.fake_services import RecordingProxy
from ..support.servers import AZURITE_ACCOUNT, AZURITE_KEY, Server

MB = 1024 * 1024


def data(size: int, seed: int) -> bytes:
    return random.Random(seed).randbytes(size)


def sha(blob: bytes) -> str:
    return hashlib.sha256(blob).hexdigest()


def cargohold_cli(home: Path, *args: str, timeout: float = 600) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("STORAGE_", "CACHE_", "DATA_PATH"))}
    env.update(CARGOHOLD_HOME=str(home), COLUMNS="200")
    return subprocess.run([sys.executable, "-m", "cargohold", *args], env=env, capture_output=True, text=True,
                          timeout=timeout)


def write_env(path: Path, **values: object) -> Path:
    path.write_text("".join(f"{k}={v}\n" for k, v in values.items()))
    return path


ITEMS = {"cat.jpg": data(50_000, 1), "café ☕/naïve 雪.png": data(70_000, 2), "empty.bin": b"",
         "weights-100mb.bin": data(100 * MB, 3)}
TEAM_FILES = {"models/yolo.pt": data(200_000, 4), "données/模型 v2.bin": data(10_000, 5), "notes/empty.txt": b""}


def expected_objects() -> dict[str, str]:
    """bucket/key → SHA-256 of what own storage must hold after populating."""
    out = {f"public/sha256/{sha(b)[:2]}/{sha(b)[2:4]}/{sha(b)}": sha(b) for b in ITEMS.values()}
    out.update({f"private/{path}": sha(b) for path, b in TEAM_FILES.items()})
    return out


def populate(home: Path) -> None:
    server = RunningServer(home, {}).start()
    try:
        with cargohold.Client(server.url, server.token) as client:
            client.create_dataset("cv")
            sources = home.parent / "sources"
            for name, blob in ITEMS.items():
                local = sources / name
                local.parent.mkdir(parents=True, exist_ok=True)
                local.write_bytes(blob)
                client.upload("cv", [(name, local)])
            for path, blob in TEAM_FILES.items():
                client.put_file(path, blob)
    finally:
        server.stop()


def serves_everything(home: Path) -> None:
    # The server runs on what .env says now (RunningServer writes the .env it is given).
    settings = {k: v or "" for k, v in dotenv_values(home / ".env").items() if k != "SERVER_PORT"}
    server = RunningServer(home, settings).start()
    try:
        with cargohold.Client(server.url, server.token) as client:
            items = {i["name"]: i for i in client.list_items("cv")}
            assert set(items) == set(ITEMS)
            for name, blob in ITEMS.items():
                answer = httpx.get(client.sign(items[name]), timeout=120)
                assert answer.status_code == 200 and sha(answer.content) == sha(blob), name
            for path, blob in TEAM_FILES.items():
                local = home.parent / "check.bin"
                client.get_file(path, local)
                assert sha(local.read_bytes()) == sha(blob), path
    finally:
        server.stop()


# -- each provider's own view of its buckets ---------------------------------------------------------


def on_local(root: Path, prefix: str) -> dict[str, str]:
    out = {}
    for visibility in ("public", "private"):
        bucket = root / f"{prefix}-{visibility}"
        for path in bucket.rglob("*"):
            if path.is_file() and ".staging" not in path.parts:
                out[f"{visibility}/{path.relative_to(bucket)}"] = sha(path.read_bytes())
    return out


def on_s3(moto: Server, prefix: str) -> dict[str, str]:
    s3 = boto3.client("s3", endpoint_url=moto.url, aws_access_key_id="testing", aws_secret_access_key="testing",
                      region_name="us-east-1")
    out = {}
    for visibility in ("public", "private"):
        for page in s3.get_paginator("list_objects_v2").paginate(Bucket=f"{prefix}-{visibility}"):
            for obj in page.get("Contents", []):
                body = s3.get_object(Bucket=f"{prefix}-{visibility}", Key=obj["Key"])["Body"].read()
                out[f"{visibility}/{obj['Key']}"] = sha(body)
    return out


def on_azure(azurite: Server, prefix: str) -> dict[str, str]:
    service = BlobServiceClient(f"{azurite.url}/{AZURITE_ACCOUNT}",
                                credential={"account_name": AZURITE_ACCOUNT, "account_key": AZURITE_KEY})
    out = {}
    for visibility in ("public", "private"):
        container = service.get_container_client(f"{prefix}-{visibility}")
        for blob in container.list_blobs():
            out[f"{visibility}/{blob.name}"] = sha(container.download_blob(blob.name).readall())
    return out


def on_gcs(gcs_server: Server, prefix: str) -> dict[str, str]:
    client = gcs.Client(project="test", credentials=AnonymousCredentials(),  # type: ignore[no-untyped-call]
                        client_options={"api_endpoint": gcs_server.url})
    out = {}
    for visibility in ("public", "private"):
        for blob in client.list_blobs(f"{prefix}-{visibility}"):
            out[f"{visibility}/{blob.name}"] = sha(blob.download_as_bytes())
    return out


def test_local_to_s3_to_azure_to_gcs_to_local(tmp_path: Path, moto_server: Server, azurite_server: Server,
                                              gcs_server: Server, gcs_credentials: Path) -> None:
    home = tmp_path / "home"
    populate(home)
    expected = expected_objects()
    assert on_local(home / "data" / "storage", "cargohold") == expected

    hops = [
        ("s3", write_env(tmp_path / "s3.env", STORAGE_PROVIDER="minio", STORAGE_ENDPOINT=moto_server.url,
                         STORAGE_ACCESS_KEY="testing", STORAGE_SECRET_KEY="testing", STORAGE_BUCKET_PREFIX="mig-s3"),
         lambda: on_s3(moto_server, "mig-s3")),
        ("azure", write_env(tmp_path / "azure.env", STORAGE_PROVIDER="azure", STORAGE_ENDPOINT="127.0.0.1",
                            STORAGE_PORT=azurite_server.port, STORAGE_ACCESS_KEY=AZURITE_ACCOUNT,
                            STORAGE_SECRET_KEY=AZURITE_KEY, STORAGE_BUCKET_PREFIX="mig-az"),
         lambda: on_azure(azurite_server, "mig-az")),
        ("google", write_env(tmp_path / "gcs.env", STORAGE_PROVIDER="google", STORAGE_ENDPOINT=gcs_server.url,
                             STORAGE_CREDENTIALS_PATH=gcs_credentials, STORAGE_BUCKET_PREFIX="mig-gcs"),
         lambda: on_gcs(gcs_server, "mig-gcs")),
        ("local", write_env(tmp_path / "local.env", STORAGE_PROVIDER="http", STORAGE_BUCKET_PREFIX="back"),
         lambda: on_local(home / "data" / "storage", "back")),
    ]
    for name, env_file, view in hops:
        before = (home / ".env").read_text() if (home / ".env").exists() else ""
        result = cargohold_cli(home, "migrate", "--to", str(env_file), "--jobs", "4")
        assert result.returncode == 0, f"{name}: {result.stdout}\n{result.stderr}"
        assert f"copied {len(expected)}, skipped 0" in result.stdout, result.stdout
        assert view() == expected, f"{name}: the provider's own SDK sees other objects"
        checked = cargohold_cli(home, "migrate", "--to", str(env_file), "--verify-only")
        assert checked.returncode == 0, checked.stdout + checked.stderr
        assert f"verified {len(expected)} of {len(expected)} objects" in checked.stdout, checked.stdout
        switched = cargohold_cli(home, "migrate", "--to", str(env_file), "--switch")
        assert switched.returncode == 0 and f"copied 0, skipped {len(expected)}" in switched.stdout, switched.stdout
        assert (home / ".env.bak").read_text() == before
        provider = {"s3": "minio", "local": "http"}.get(name, name)
        assert f"STORAGE_PROVIDER={provider}" in (home / ".env").read_text()
        serves_everything(home)
    assert on_local(home / "data" / "storage", "cargohold") == expected, "the first source is untouched"


def test_dry_run_lists_and_copies_nothing(tmp_path: Path, moto_server: Server) -> None:
    home = tmp_path / "home"
    home.mkdir()
    private = home / "data" / "storage" / "cargohold-private" / "a"
    private.mkdir(parents=True)
    (private / "x.txt").write_bytes(b"hello")
    target = write_env(tmp_path / "t.env", STORAGE_PROVIDER="minio", STORAGE_ENDPOINT=moto_server.url,
                       STORAGE_ACCESS_KEY="testing", STORAGE_SECRET_KEY="testing", STORAGE_BUCKET_PREFIX="mig-dry")
    result = cargohold_cli(home, "migrate", "--to", str(target), "--dry-run")
    assert result.returncode == 0, result.stderr
    assert "private\ta/x.txt\t5" in result.stdout and "would copy 1 of 1 objects" in result.stdout
    s3 = boto3.client("s3", endpoint_url=moto_server.url, aws_access_key_id="testing",
                      aws_secret_access_key="testing", region_name="us-east-1")
    assert "mig-dry-private" not in {b["Name"] for b in s3.list_buckets()["Buckets"]}
    same = cargohold_cli(home, "migrate", "--to", str(write_env(tmp_path / "same.env", STORAGE_PROVIDER="http")))
    assert same.returncode == 2 and "describes the storage in use now" in same.stderr


@pytest.fixture
def proxy(moto_server: Server) -> Iterator[RecordingProxy]:
    with RecordingProxy(moto_server.url) as recording:
        yield recording


LARGE_SEEDS = (500, 504)
"""32 MiB items whose SHA-256 starts with 9: the source lists content in key order, so about half the small
items are copied before them, and each goes to S3 as a multipart upload the kill can cut."""


def s3_objects(s3: Any, bucket: str) -> dict[str, int]:
    try:
        pages = list(s3.get_paginator("list_objects_v2").paginate(Bucket=bucket))
    except s3.exceptions.NoSuchBucket:
        return {}
    return {o["Key"]: o["Size"] for page in pages for o in page.get("Contents", [])}


def s3_uploads(s3: Any, bucket: str) -> list[str]:
    try:
        return [u["Key"] for u in s3.list_multipart_uploads(Bucket=bucket).get("Uploads", [])]
    except s3.exceptions.NoSuchBucket:
        return []


def catalog_rows(home: Path) -> tuple[dict[str, str], dict[str, str]]:
    """Straight from the catalog: stored items' content key -> SHA-256, team files' path -> SHA-256."""
    with contextlib.closing(sqlite3.connect(f"file:{home / 'data' / 'catalog.sqlite3'}?mode=ro", uri=True)) as db:
        items = {f"sha256/{s[:2]}/{s[2:4]}/{s}": s
                 for (s,) in db.execute("SELECT sha256 FROM items WHERE source = 'stored'")}
        files = dict(db.execute("SELECT path, sha256 FROM team_files").fetchall())
    return items, files


@pytest.mark.reliability(kind="crash", what="`kill -9` of `cargohold migrate` (local disk to S3) in the middle of "
                         "a multipart copy, then run again: every catalog row's bytes on S3 by SHA-256, nothing "
                         "copied twice or missed, the server serves from S3, `cargohold gc` there finds every orphan "
                         "(the cut multipart upload, content and team files without rows) and leaves none", cases=1)
def test_a_migration_killed_midway_goes_on_where_it_stopped(
        tmp_path: Path, proxy: RecordingProxy, moto_server: Server, request: pytest.FixtureRequest) -> None:
    home = tmp_path / "home"
    small = {f"img-{i:03d}.jpg": data(8_000 + 200 * i, 100 + i) for i in range(150)}
    large = {f"weights-{seed}.bin": data(32 * MB, seed) for seed in LARGE_SEEDS}
    assert all(sha(blob)[0] == "9" for blob in large.values())
    team = {f"models/{i:02d}.pt": data(1_000 + 997 * i, 400 + i) for i in range(40)}
    orphan = data(30_000, 99)
    server = RunningServer(home, {}).start()
    try:
        with server.client() as client:
            dataset = client.post("/datasets", json={"name": "cv"}).json()["id"]
            names = list(small.items()) + list(large.items()) + [("deleted.bin", orphan)]
            for start in range(0, len(names), 50):
                answer = client.post(f"/datasets/{dataset}/items",
                                     files=[("files", (n, b)) for n, b in names[start:start + 50]])
                assert answer.status_code == 201, answer.text
            deleted = client.get(f"/datasets/{dataset}/items", params={"name": "deleted.bin"}).json()["items"]
            assert client.delete(f"/items/{deleted[0]['id']}").status_code == 204  # its content stays: gc's to find
            for path, blob in team.items():
                assert client.put(f"/files/{path}", content=blob).status_code in (200, 201)
    finally:
        server.stop()
    source = home / "data" / "storage"
    rowless = {"stray/a.bin": data(5_000, 98), "stray/b.bin": data(6_000, 97)}  # team-file objects without rows
    for key, blob in rowless.items():
        (source / "cargohold-private" / key).parent.mkdir(parents=True, exist_ok=True)
        (source / "cargohold-private" / key).write_bytes(blob)
    items, files = catalog_rows(home)
    assert len(items) == len(small) + len(large) and set(files) == set(team)
    before = on_local(source, "cargohold")
    total = len(before)
    assert total == len(items) + 1 + len(files) + len(rowless)

    target = write_env(tmp_path / "s3.env", STORAGE_PROVIDER="minio", STORAGE_ENDPOINT=proxy.url,
                       STORAGE_ACCESS_KEY="testing", STORAGE_SECRET_KEY="testing", STORAGE_BUCKET_PREFIX="mig-kill")
    s3 = boto3.client("s3", endpoint_url=moto_server.url, aws_access_key_id="testing",
                      aws_secret_access_key="testing", region_name="us-east-1")
    buckets = ("mig-kill-public", "mig-kill-private")

    def copied() -> int:
        return sum(len(s3_objects(s3, bucket)) for bucket in buckets)

    env = {k: v for k, v in os.environ.items() if not k.startswith(("STORAGE_", "CACHE_", "DATA_PATH"))}
    env["CARGOHOLD_HOME"] = str(home)
    first = subprocess.Popen([sys.executable, "-m", "cargohold", "migrate", "--to", str(target), "--jobs", "2"],
                             env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 120
    while not s3_uploads(s3, "mig-kill-public"):  # a large item is being copied in parts
        assert first.poll() is None, "the migration ended before it could be killed"
        assert time.monotonic() < deadline
        time.sleep(0.01)
    first.send_signal(signal.SIGKILL)
    first.wait()
    done_before = copied()
    assert 40 <= done_before < total, done_before
    cut = s3_uploads(s3, "mig-kill-public")
    assert cut and all(key in items for key in cut), cut

    second = cargohold_cli(home, "migrate", "--to", str(target), "--jobs", "4")
    assert second.returncode == 0, second.stdout + second.stderr
    match = re.search(r"copied (\d+), skipped (\d+)", second.stdout)
    assert match, second.stdout
    assert int(match.group(2)) == done_before and int(match.group(1)) == total - done_before
    # Each object went up whole exactly once over both runs: one PUT, or one completed multipart upload.
    whole: dict[str, int] = {}
    for seen in proxy.requests:
        bucket, _, rest = seen.path.lstrip("/").partition("/")
        key, _, query = rest.partition("?")
        in_parts = "uploadId=" in query
        whole_put = (seen.method == "PUT" and not in_parts) or (seen.method == "POST" and in_parts)  # or completed
        if bucket in buckets and key and seen.status == 200 and whole_put:  # not the PUT making the bucket
            name = f"{bucket.removeprefix('mig-kill-')}/{unquote(key)}"
            whole[name] = whole.get(name, 0) + 1
    assert set(whole) == set(before) and set(whole.values()) == {1}, "nothing copied twice, nothing missing"
    # Every catalog row's bytes are on S3, by the provider's own SDK, with the row's SHA-256.
    on_target = on_s3(moto_server, "mig-kill")
    assert on_target == before and on_local(source, "cargohold") == before
    assert all(on_target[f"public/{key}"] == expected for key, expected in items.items())
    assert all(on_target[f"private/{path}"] == expected for path, expected in files.items())

    switched = cargohold_cli(home, "migrate", "--to", str(target), "--switch")
    assert switched.returncode == 0 and f"copied 0, skipped {total}" in switched.stdout, switched.stdout
    settings = {k: v or "" for k, v in dotenv_values(home / ".env").items() if k != "SERVER_PORT"}
    server = RunningServer(home, settings).start()
    try:
        # On the destination gc finds exactly the orphans: the multipart upload the kill cut, the content of
        # the deleted item and the team-file objects without rows (copied as they were); then none are left.
        listed = cargohold_cli(home, "gc", "--older-than", "0")
        assert listed.returncode == 0, listed.stdout + listed.stderr
        lines = listed.stdout.splitlines()
        orphan_key = f"sha256/{sha(orphan)[:2]}/{sha(orphan)[2:4]}/{sha(orphan)}"
        expected_lines = {f"mig-kill-public/{orphan_key}\t{len(orphan)}\tno item uses it"}
        expected_lines |= {f"mig-kill-private/{k}\t{len(b)}\tno team file row" for k, b in rowless.items()}
        found = set(lines[:-1])
        interrupted = {line for line in found if line.endswith("\tinterrupted upload")}
        assert found - interrupted == expected_lines, lines
        assert len(interrupted) == len(cut) and all(any(f"mig-kill-public/{k} (multipart" in line for line in
                                                        interrupted) for k in cut), lines
        assert lines[-1].startswith(f"found {len(found)} unreferenced objects"), lines
        deleted_lines = cargohold_cli(home, "gc", "--older-than", "0", "--yes").stdout.splitlines()
        assert deleted_lines[-1].startswith(f"deleted {len(found)} objects"), deleted_lines
        again = cargohold_cli(home, "gc", "--older-than", "0").stdout.splitlines()
        assert again == ["found 0 unreferenced objects, 0 bytes"], again
        assert s3_uploads(s3, "mig-kill-public") == [] and s3_uploads(s3, "mig-kill-private") == []
        sizes = {f"public/{k}": n for k, n in s3_objects(s3, "mig-kill-public").items()}
        sizes |= {f"private/{k}": n for k, n in s3_objects(s3, "mig-kill-private").items()}
        kept = {f"public/{k}" for k in items} | {f"private/{p}" for p in files}
        assert sizes == {name: (home / "data" / "storage" / f"cargohold-{name}").stat().st_size for name in kept}
        # The server on S3 lists every item and serves them (a sample; every object was hashed above), after gc.
        with server.client() as client:
            page = client.get(f"/datasets/{dataset}/items", params={"limit": 1000}).json()["items"]
            assert {i["name"] for i in page} == set(small) | set(large)
            for item in page[::15]:
                assert sha(client.get(f"/items/{item['id']}/content").content) == item["sha256"], item["name"]
            for path in list(team)[::8]:
                assert client.get(f"/files/{path}").content == team[path]
    finally:
        server.stop()
    assert on_local(source, "cargohold") == before, "the source is untouched"
    request.node.user_properties.append(("reliability_result", (
        f"killed with {done_before} of {total} objects copied and {len(cut)} multipart upload(s) cut; the second run "
        f"copied {total - done_before}, skipped {done_before}; {len(items) + len(files)} rows verified on S3; "
        f"gc there found {len(found)} orphans ({len(interrupted)} multipart upload(s), {len(found) - len(interrupted)} "
        "objects without rows), then none")))
