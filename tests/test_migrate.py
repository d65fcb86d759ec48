"""``cargohold migrate`` between real providers: local disk → S3 (moto) → Azure (Azurite) → GCS
(fake-gcs-server) → local disk, each hop checked byte for byte with the provider's own SDK and by a
server started on the new provider; and a migration killed midway, then finished."""

from __future__ import annotations

import hashlib
import os
import random
import re
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import boto3
import httpx
import pytest
from azure.storage.blob import BlobServiceClient
from dotenv import dotenv_values
from google.auth.credentials import AnonymousCredentials
from google.cloud import storage as gcs

import cargohold

from .api_server import RunningServer
from .fake_services import RecordingProxy
from .servers import AZURITE_ACCOUNT, AZURITE_KEY, Server

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


def test_a_migration_killed_midway_goes_on_where_it_stopped(tmp_path: Path, proxy: RecordingProxy,
                                                             moto_server: Server) -> None:
    home = tmp_path / "home"
    files = {f"batch/{i:04d}.bin": data(20_000 + i, 100 + i) for i in range(300)}
    bucket = home / "data" / "storage" / "cargohold-private"
    for key, blob in files.items():
        (bucket / key).parent.mkdir(parents=True, exist_ok=True)
        (bucket / key).write_bytes(blob)
    target = write_env(tmp_path / "s3.env", STORAGE_PROVIDER="minio", STORAGE_ENDPOINT=proxy.url,
                       STORAGE_ACCESS_KEY="testing", STORAGE_SECRET_KEY="testing", STORAGE_BUCKET_PREFIX="mig-kill")
    s3 = boto3.client("s3", endpoint_url=moto_server.url, aws_access_key_id="testing",
                      aws_secret_access_key="testing", region_name="us-east-1")

    def copied() -> int:
        try:
            return int(s3.list_objects_v2(Bucket="mig-kill-private").get("KeyCount", 0))
        except s3.exceptions.NoSuchBucket:
            return 0

    env = {k: v for k, v in os.environ.items() if not k.startswith(("STORAGE_", "CACHE_", "DATA_PATH"))}
    env["CARGOHOLD_HOME"] = str(home)
    first = subprocess.Popen([sys.executable, "-m", "cargohold", "migrate", "--to", str(target), "--jobs", "2"],
                             env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 120
    while copied() < 40:
        assert first.poll() is None, "the migration ended before it could be killed"
        assert time.monotonic() < deadline
        time.sleep(0.02)
    first.send_signal(signal.SIGKILL)
    first.wait()
    done_before = copied()
    assert 40 <= done_before < len(files)

    second = cargohold_cli(home, "migrate", "--to", str(target), "--jobs", "4")
    assert second.returncode == 0, second.stdout + second.stderr
    match = re.search(r"copied (\d+), skipped (\d+)", second.stdout)
    assert match, second.stdout
    assert int(match.group(2)) == done_before and int(match.group(1)) == len(files) - done_before
    puts: dict[str, int] = {}
    for seen in proxy.requests:
        if seen.method == "PUT" and seen.status == 200 and "/mig-kill-private/" in seen.path:
            key = seen.path.split("/mig-kill-private/", 1)[1].split("?", 1)[0]
            puts[key] = puts.get(key, 0) + 1
    assert set(puts) == set(files) and set(puts.values()) == {1}, "nothing copied twice, nothing missing"
    for key, blob in files.items():
        assert sha(s3.get_object(Bucket="mig-kill-private", Key=key)["Body"].read()) == sha(blob)
    shutil.rmtree(bucket.parent)  # the source was never touched: removing it is the test's own cleanup
