"""Helpers for tests that talk to a running ``cargohold up`` over HTTP: error checks, the CLI,
uploads, images, and what a provider holds (read with its own means)."""

from __future__ import annotations

import hashlib
import io
import os
import random
import struct
import subprocess
import sys
import zlib
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
from PIL import Image

from ..support.api_server import RunningServer

DATASET_KEYS = {"id", "name", "bucket", "created_at", "item_count", "total_size"}
ITEM_KEYS = {"id", "dataset_id", "name", "kind", "size", "sha256", "etag", "mime_type", "browser_shows", "width",
             "height", "source", "uri", "created_at", "video"}
TEAM_FILE_KEYS = {"path", "size", "sha256", "content_type", "updated_at"}




def assert_error(response: httpx.Response, status: int, code: str | None = None) -> dict[str, str]:
    """The response is ``status`` with exactly ``{"error": {"code": str, "message": str}}`` (a non-empty message)."""
    assert response.status_code == status, f"expected {status}, got {response.status_code}: {response.text}"
    assert response.headers.get("content-type", "").startswith("application/json"), response.headers
    body = response.json()
    assert isinstance(body, dict) and set(body) == {"error"}, body
    error = body["error"]
    assert isinstance(error, dict) and set(error) == {"code", "message"}, body
    assert isinstance(error["code"], str) and error["code"], body
    assert isinstance(error["message"], str) and error["message"].strip(), body
    if code is not None:
        assert error["code"] == code, body
    return error


def cli(server: RunningServer, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    """``python -m cargohold ARGS`` on the server's instance home, as an operator runs it beside the server."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("STORAGE_", "CACHE_", "DATA_PATH", "SERVER_"))}
    env["CARGOHOLD_HOME"] = str(server.home)
    env["COLUMNS"] = "200"
    result = subprocess.run([sys.executable, "-m", "cargohold", *args], env=env, capture_output=True, text=True,
                            timeout=60)
    if check:
        assert result.returncode == 0, f"cargohold {' '.join(args)}: {result.stdout}\n{result.stderr}"
    return result


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def is_s3(server: RunningServer) -> bool:
    return server.env.get("STORAGE_PROVIDER") == "minio"


def bucket_name(server: RunningServer, visibility: str = "public") -> str:
    return f"{server.env.get('STORAGE_BUCKET_PREFIX', 'cargohold')}-{visibility}"


def local_bucket(server: RunningServer, visibility: str = "public") -> Path:
    return server.home / "data" / "storage" / bucket_name(server, visibility)


def s3_client(server: RunningServer) -> Any:
    import boto3

    return boto3.client("s3", endpoint_url=server.env["STORAGE_ENDPOINT"], aws_access_key_id="testing",
                        aws_secret_access_key="testing", region_name="us-east-1")


def stored_objects(server: RunningServer, visibility: str = "public") -> dict[str, int]:
    """Every object in one of the server's buckets, key -> size, read with the provider's own means."""
    if is_s3(server):
        found: dict[str, int] = {}
        pages = s3_client(server).get_paginator("list_objects_v2").paginate(Bucket=bucket_name(server, visibility))
        for page in pages:
            found.update({o["Key"]: o["Size"] for o in page.get("Contents", [])})
        return found
    root = local_bucket(server, visibility)
    return {p.relative_to(root).as_posix(): p.stat().st_size for p in root.rglob("*") if p.is_file()}


def read_object(server: RunningServer, key: str, visibility: str = "public") -> bytes:
    if is_s3(server):
        answer = s3_client(server).get_object(Bucket=bucket_name(server, visibility), Key=key)
        return bytes(answer["Body"].read())
    return (local_bucket(server, visibility) / key).read_bytes()


def content_key(sha: str) -> str:
    return f"sha256/{sha[:2]}/{sha[2:4]}/{sha}"


def create_dataset(client: httpx.Client, name: str) -> dict[str, Any]:
    answer = client.post("/datasets", json={"name": name})
    assert answer.status_code == 201, answer.text
    return dict(answer.json())


def upload(client: httpx.Client, dataset_id: int, files: list[tuple[str, bytes]], conflict: str | None = None,
           status: int = 201) -> httpx.Response:
    params = {"conflict": conflict} if conflict else None
    answer = client.post(f"/datasets/{dataset_id}/items", params=params,
                         files=[("files", (name, data)) for name, data in files])
    assert answer.status_code == status, answer.text
    return answer


def upload_results(client: httpx.Client, dataset_id: int, files: list[tuple[str, bytes]],
                   conflict: str | None = None) -> list[dict[str, Any]]:
    results = upload(client, dataset_id, files, conflict).json()["results"]
    assert [r["filename"] for r in results] == [name for name, _ in files]
    for result in results:
        assert set(result) == {"filename", "status", "item"}
        assert_item_shape(result["item"])
    return list(results)


def upload_one(client: httpx.Client, dataset_id: int, name: str, data: bytes) -> dict[str, Any]:
    (result,) = upload_results(client, dataset_id, [(name, data)])
    assert result["status"] == "created", result
    return dict(result["item"])


def assert_timestamp(value: str, after_now: timedelta = timedelta(0)) -> datetime:
    """An ISO 8601 UTC time, ``after_now`` from now (within a minute)."""
    when = datetime.fromisoformat(value.replace("Z", "+00:00"))
    assert when.tzinfo is not None and when.utcoffset() == timedelta(0), value
    assert abs(datetime.now(UTC) + after_now - when) < timedelta(minutes=1), value
    return when


def assert_item_shape(item: dict[str, Any]) -> None:
    assert set(item) == ITEM_KEYS, item
    assert item["kind"] in ("image", "video", "file")
    assert item["source"] == "stored" and item["uri"] is None and item["etag"] is None
    assert len(item["sha256"]) == 64
    assert_timestamp(item["created_at"])


def make_image(fmt: str, size: tuple[int, int], orientation: int | None = None) -> bytes:
    image = Image.new("RGB", size, (200, 30, 30))
    buffer = io.BytesIO()
    if orientation is not None:
        exif = Image.Exif()
        exif[0x0112] = orientation
        image.save(buffer, fmt, exif=exif)
    else:
        image.save(buffer, fmt)
    return buffer.getvalue()


def png_declaring(width: int, height: int) -> bytes:
    """A tiny, well-formed PNG whose header declares ``width`` x ``height`` (a decompression bomb's header)."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\0" * 64)) + chunk(b"IEND", b"")


def random_bytes(size: int, seed: int) -> bytes:
    return random.Random(seed).randbytes(size)


def chunked_multipart(filename: str, size: int, boundary: str = "cargohold-test-boundary") -> tuple[Iterator[bytes],
                                                                                                    dict[str, str]]:
    """A multipart body of one ``size``-byte file as a generator: sent chunked, without a Content-Length."""

    def body() -> Iterator[bytes]:
        yield (f"--{boundary}\r\nContent-Disposition: form-data; name=\"files\"; filename=\"{filename}\"\r\n"
               "Content-Type: application/octet-stream\r\n\r\n").encode()
        left = size
        while left:
            step = min(left, 256 * 1024)
            yield b"z" * step
            left -= step
        yield f"\r\n--{boundary}--\r\n".encode()

    return body(), {"content-type": f"multipart/form-data; boundary={boundary}"}


def unfinished_uploads(server: RunningServer) -> list[str]:
    """Bytes of unfinished writes the bucket listing does not show: S3 multipart uploads, local ``.partial`` files."""
    if is_s3(server):
        answer = s3_client(server).list_multipart_uploads(Bucket=bucket_name(server))
        return [u["Key"] for u in answer.get("Uploads", [])]
    partial = server.home / "data" / "storage" / ".partial"
    return sorted(p.name for p in partial.iterdir()) if partial.is_dir() else []
